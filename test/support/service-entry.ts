/**
 * The service process of fault tests: `src/main.ts` plus a fault at a named
 * step of the payment commands, read from test-only settings that the
 * production config does not know:
 *
 *   PAYSTATE_TEST_CRASH_AT  die with SIGKILL at this step
 *   PAYSTATE_TEST_PAUSE_AT  stop with SIGSTOP there, every time (SIGCONT resumes)
 *
 * Each is "point" or "point:EVENT" (only commands for that client event, or
 * RECOVER for the sweep), point one of PAYMENT_STEPS.
 */
import { PAYMENT_STEPS, type PaymentStep } from '../../src/payments/payments.ts';
import { main } from '../../src/service-process.ts';

export interface FaultSetting {
  readonly point: PaymentStep;
  readonly event: string | null;
}

/** Reads one setting; throws with a message naming it when it is not a known step. */
export function faultSetting(name: string, raw: string | undefined): FaultSetting | null {
  if (raw === undefined || raw === '') return null;
  const [point = '', event] = raw.split(':');
  if (!(PAYMENT_STEPS as readonly string[]).includes(point)) {
    throw new Error(
      `${name} must be one of ${PAYMENT_STEPS.join(', ')} (optionally :EVENT), got "${raw}"`,
    );
  }
  return { point: point as PaymentStep, event: event ?? null };
}

function run(): void {
  let crashAt: FaultSetting | null;
  let pauseAt: FaultSetting | null;
  try {
    crashAt = faultSetting('PAYSTATE_TEST_CRASH_AT', process.env.PAYSTATE_TEST_CRASH_AT);
    pauseAt = faultSetting('PAYSTATE_TEST_PAUSE_AT', process.env.PAYSTATE_TEST_PAUSE_AT);
  } catch (error) {
    console.error(error instanceof Error ? error.message : String(error));
    process.exit(2);
  }
  const reached = (setting: FaultSetting | null, step: string, event: string) =>
    setting !== null &&
    step === setting.point &&
    (setting.event === null || setting.event === event);
  main({
    // Die like a killed process, or stop like a paused one, at the named step.
    faultPoint: (step, { event }) => {
      if (reached(crashAt, step, event)) process.kill(process.pid, 'SIGKILL');
      if (reached(pauseAt, step, event)) process.kill(process.pid, 'SIGSTOP');
    },
  });
}

if (process.argv[1]?.endsWith('service-entry.ts') === true) run();
