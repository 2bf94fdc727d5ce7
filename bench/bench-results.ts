/** The JSON a bench run writes, and docs/benchmarks.md is generated from. */
import type { Environment } from './environment.ts';
import type { LoadRun } from './load-run.ts';
import type { ExpiryResult } from './scenarios/expiry.ts';
import type { HttpFloorRun } from './scenarios/http-floor.ts';
import type { NewPaymentProfile } from './scenarios/new-payment-profile.ts';
import type { RedisMemoryResult } from './scenarios/redis-memory.ts';
import type { RoundTripResult } from './scenarios/round-trips.ts';
import type { BenchSettings } from './settings.ts';
import type { TargetCheck } from './targets.ts';

export interface BenchResults {
  readonly mode: BenchSettings['mode'];
  /** Scenarios run (all of them unless --only). */
  readonly scenarios: readonly string[];
  readonly startedAt: string;
  readonly finishedAt: string;
  readonly environment: Environment;
  /** 1, 5 and 15 minute load averages when the run started and ended. */
  readonly loadAverage: {
    readonly start: readonly number[];
    readonly end: readonly number[];
  };
  readonly settings: BenchSettings;
  readonly runs: readonly LoadRun[];
  readonly expiry: ExpiryResult | null;
  readonly redisMemory: RedisMemoryResult | null;
  /** The same with Redis's default hash encoding limits (absent in older results). */
  readonly redisMemoryDefaults?: RedisMemoryResult | null;
  /** One process answering with HTTP only (absent in older results). */
  readonly httpFloor?: readonly HttpFloorRun[] | null;
  readonly roundTrips: RoundTripResult | null;
  readonly profile: NewPaymentProfile | null;
  readonly targets: readonly TargetCheck[];
  /** Crashes and invariant violations; any makes the run exit non-zero. */
  readonly failures: readonly string[];
}
