/**
 * Named steps of the request path where tests can inject a fault (throw, or
 * kill or stop the process). Inert unless a test or one of the
 * PAYSTATE_TEST_CRASH_AT / PAYSTATE_TEST_PAUSE_AT test settings asks for one.
 */
export const FAULT_POINTS = [
  'after-lock',
  'after-persist-intent',
  'after-ledger',
  'after-persist-outcome',
  'before-response',
] as const;

export type FaultPointName = (typeof FAULT_POINTS)[number];
