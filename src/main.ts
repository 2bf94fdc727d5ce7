/**
 * `npm start`: API and expiry worker in one process (PAYSTATE_ROLES separates
 * them), stopped by SIGTERM, SIGINT or SIGHUP.
 *
 * The stop drains the API and closes the worker within SHUTDOWN_TIMEOUT_MS
 * whatever Redis does, then stops the managed Redis; a second signal ends it
 * at once. Exit codes:
 *   0          stopped cleanly
 *   1          failed to start
 *   2          invalid configuration
 *   3          stopped, but SHUTDOWN_TIMEOUT_MS cut something short (logged)
 *   128 + n    a second signal n (130 SIGINT, 143 SIGTERM, 129 SIGHUP) ended
 *              the stop at once, or a signal came during start-up
 */
import { main } from './service-process.ts';

main();
