/**
 * One measured load against one deployment, as reported: throughput of the
 * expected answers, latency, every other answer counted as an error, the
 * resources each process used, and the invariant checks run afterwards.
 */
import type { DeploymentDescription } from './deployment.ts';
import type { InvariantReport } from './invariants.ts';
import type { LoadResult } from './http-load.ts';

export interface LoadRun {
  /** Stable id, e.g. `new-payments/everysec/1-process`. */
  readonly id: string;
  readonly scenario: string;
  readonly title: string;
  /** What each request is. */
  readonly workload: string;
  readonly deployment: DeploymentDescription;
  readonly connections: number;
  readonly load: LoadResult;
  /** Answers with one of the expected statuses. */
  readonly ok: number;
  readonly okPerSecond: number;
  /** Unexpected statuses, connection errors and timeouts. */
  readonly errors: number;
  readonly errorBreakdown: Readonly<Record<string, number>>;
  readonly invariants: ReturnType<InvariantReport['toJSON']>;
  readonly notes: readonly string[];
}

export function summarizeRun(options: {
  id: string;
  scenario: string;
  title: string;
  workload: string;
  deployment: DeploymentDescription;
  connections: number;
  load: LoadResult;
  expectedStatuses: readonly number[];
  /** Counts of answers that have an expected status but are errors all the same (e.g. 409 token_busy). */
  extraErrors?: Readonly<Record<string, number>>;
  invariants: InvariantReport;
  notes?: readonly string[];
}): LoadRun {
  const { load } = options;
  const expected = new Set(options.expectedStatuses.map(String));
  const errorBreakdown: Record<string, number> = {};
  let ok = 0;
  for (const [status, count] of Object.entries(load.statuses)) {
    if (expected.has(status)) ok += count;
    else errorBreakdown[`HTTP ${status}`] = count;
  }
  for (const [label, count] of Object.entries(options.extraErrors ?? {})) {
    if (count === 0) continue;
    ok -= count;
    errorBreakdown[label] = count;
  }
  if (load.connectionErrors > 0) errorBreakdown['connection errors'] = load.connectionErrors;
  if (load.timeouts > 0) errorBreakdown.timeouts = load.timeouts;
  const errors = Object.values(errorBreakdown).reduce((a, b) => a + b, 0);
  const internal = load.statuses['500'] ?? 0;
  if (internal > 0) options.invariants.violation(`${internal} answer(s) were 500 internal_error`);
  return {
    id: options.id,
    scenario: options.scenario,
    title: options.title,
    workload: options.workload,
    deployment: options.deployment,
    connections: options.connections,
    load,
    ok,
    okPerSecond: load.seconds > 0 ? ok / load.seconds : 0,
    errors,
    errorBreakdown,
    invariants: options.invariants.toJSON(),
    notes: options.notes ?? [],
  };
}
