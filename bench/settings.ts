/**
 * How big each scenario is. `full` is what docs/benchmarks.md reports; `smoke`
 * runs every scenario for a moment with small counts, so the harness is
 * exercised on every CI run without asserting anything about speed.
 */
export type BenchMode = 'full' | 'smoke';

export interface BenchSettings {
  readonly mode: BenchMode;
  /** Concurrent HTTP connections of the load generator. */
  readonly connections: number;
  /** Unmeasured load before each measured run (JIT, connection pools). */
  readonly warmupS: number;
  /** Length of each time-bound measured run. */
  readonly loadS: number;
  /** Tokens paid once and then replayed. */
  readonly replayTokens: number;
  /** Tokens paid, then each cancelled (refunded) once. */
  readonly cancelTokens: number;
  /** Tokens under contention at any moment. */
  readonly hotTokens: number;
  /** Requests a hot token receives before it is replaced by a fresh one. */
  readonly hotTokenRequests: number;
  /** Tokens created with a short expiry. */
  readonly expiryTokens: number;
  readonly expiryMs: number;
  /** Tokens stored to measure Redis memory per token. */
  readonly memoryTokens: number;
  /** Sequential repetitions of each operation when counting Redis commands. */
  readonly roundTripSamples: number;
  /** Length of the profiled new-payment run. */
  readonly profileS: number;
}

export const FULL: BenchSettings = {
  mode: 'full',
  connections: 50,
  warmupS: 3,
  loadS: 15,
  replayTokens: 5_000,
  cancelTokens: 20_000,
  hotTokens: 32,
  hotTokenRequests: 16,
  expiryTokens: 10_000,
  expiryMs: 2_000,
  memoryTokens: 20_000,
  roundTripSamples: 100,
  profileS: 10,
};

export const SMOKE: BenchSettings = {
  mode: 'smoke',
  connections: 50,
  warmupS: 0.3,
  loadS: 1,
  replayTokens: 200,
  cancelTokens: 300,
  hotTokens: 32,
  hotTokenRequests: 16,
  expiryTokens: 300,
  expiryMs: 1_000,
  memoryTokens: 300,
  roundTripSamples: 5,
  profileS: 1,
};
