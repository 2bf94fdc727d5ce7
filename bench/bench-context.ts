/** What every scenario gets: the settings, a log, and where to record what must fail the run. */
import type { BenchSettings } from './settings.ts';
import type { Deployment } from './deployment.ts';

export interface BenchContext {
  readonly settings: BenchSettings;
  log(message: string): void;
  /**
   * Records something that makes the bench exit non-zero: a crashed
   * process, a violated invariant. Never a timing.
   */
  fail(message: string): void;
}

/** Stops the deployment and turns its crashes into failures. */
export async function finish(
  context: BenchContext,
  label: string,
  deployment: Deployment,
): Promise<void> {
  for (const problem of await deployment.stop()) context.fail(`${label}: ${problem}`);
}

/** Turns a run's invariant violations into failures. */
export function failOnViolations(
  context: BenchContext,
  label: string,
  invariants: { violations: number; examples: readonly string[] },
): void {
  if (invariants.violations === 0) return;
  context.fail(
    `${label}: ${invariants.violations} invariant violation(s), e.g.\n  ${invariants.examples.join('\n  ')}`,
  );
}
