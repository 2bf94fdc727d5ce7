/**
 * Fault scenarios run a number of iterations and count violations of the
 * guarantees. CI runs the light mode; FAULTS_MODE=nightly runs many more
 * iterations of the same scenarios.
 */
export const FAULTS_MODE: 'ci' | 'nightly' =
  process.env.FAULTS_MODE === 'nightly' ? 'nightly' : 'ci';

export function iterations(ci: number, nightly: number): number {
  return FAULTS_MODE === 'nightly' ? nightly : ci;
}

export interface ScenarioSummary {
  readonly iterations: number;
  readonly violations: number;
  /** What was checked or seen, e.g. `{ charges: 40, refunds: 12 }`. */
  readonly details?: Record<string, number | string>;
}

/** Prints the one summary line a scenario gives: `fault scenario <name>: N iterations, M violations`. */
export function reportScenario(name: string, summary: ScenarioSummary): void {
  const details = summary.details
    ? ` (${Object.entries(summary.details)
        .map(([k, v]) => `${k} ${v}`)
        .join(', ')})`
    : '';
  console.log(
    `fault scenario ${name}: ${summary.iterations} iterations, ${summary.violations} violations${details} [${FAULTS_MODE}]`,
  );
}
