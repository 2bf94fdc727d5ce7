/**
 * What bench/overhead.ts and bench/compare.ts share: one measured run of a
 * workload against a fresh deployment (its own Redis, one api+worker
 * process), and the arithmetic of alternating pairs.
 */
import { freePort } from '../test/support/redis-server.ts';
import { startDeployment } from './deployment.ts';
import { countOf, runLoad, warmUpThenMeasure, type LoadResult } from './http-load.ts';
import { accountIds, cancellation, payment, tokenPrefix } from './requests.ts';

/**
 * - `new-payments`: POST /payments, a fresh Idempotency-Key each (201);
 * - `cancel-refunds`: tokens paid first (not measured), then each cancelled
 *   once (200, a refund each).
 */
export type Workload = 'new-payments' | 'cancel-refunds';

export const WORKLOADS: readonly Workload[] = ['new-payments', 'cancel-refunds'];

export interface Measured {
  readonly perSecond: number;
  /** CPU time the service process spent per answer. */
  readonly cpuMsPerAnswer: number;
}

export interface RunOptions {
  readonly workload: Workload;
  /** The service's settings on top of the bench's (a fixed free PORT is added). */
  readonly env: Readonly<Record<string, string>>;
  /** Measured seconds (new payments; cancels: about as many, from the rate of the paying). */
  readonly seconds: number;
  /** The service's stdout to /dev/null instead of a pipe this process reads. */
  readonly discardLogs?: boolean;
  /** Another checkout's build (bench/compare.ts). */
  readonly root?: string;
}

const CONNECTIONS = 50;
const WARMUP_S = 3;

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1
    ? (sorted[mid] ?? NaN)
    : ((sorted[mid - 1] ?? NaN) + (sorted[mid] ?? NaN)) / 2;
}

/** One fresh deployment, warmed up, then measured. */
export async function measureRun(options: RunOptions): Promise<Measured> {
  const deployment = await startDeployment({
    appendfsync: 'everysec',
    apiProcesses: 1,
    env: { ...options.env, PORT: String(await freePort()) },
    ...(options.discardLogs === true ? { stdout: 'discard' as const } : {}),
    ...(options.root === undefined ? {} : { root: options.root }),
  });
  let result: Measured | Error;
  try {
    const accounts = accountIds('account', 1_000);
    const prefix = tokenPrefix(options.workload);
    let paid = 0;
    const pay = () => {
      const i = paid++;
      return payment(`${prefix}-${i}`, accounts[i % accounts.length] ?? 'account');
    };
    let load: LoadResult;
    let expected: number;
    if (options.workload === 'new-payments') {
      ({ load } = await warmUpThenMeasure(
        deployment,
        { connections: CONNECTIONS, warmupS: WARMUP_S, loadS: options.seconds },
        pay,
      ));
      expected = 201;
    } else {
      // Paying for as long as the measured cancels should take (a cancel
      // costs about what a payment does), which also warms the process up.
      const paying = await runLoad({
        urls: deployment.urls,
        connections: CONNECTIONS,
        durationS: WARMUP_S + options.seconds,
        next: pay,
      });
      const tokens = countOf(paying, 201);
      let cancelled = 0;
      load = await runLoad({
        urls: deployment.urls,
        connections: CONNECTIONS,
        amount: tokens,
        next: () => cancellation(`${prefix}-${cancelled++}`),
        watch: deployment.watched(),
      });
      expected = 200;
    }
    const service = load.resources.find((r) => r.name === 'api-1');
    const cpuMsPerAnswer =
      service?.cpuPercent == null || load.responses === 0
        ? NaN
        : ((service.cpuPercent / 100) * load.seconds * 1000) / load.responses;
    const right = countOf(load, expected);
    result =
      right >= load.responses * 0.99
        ? { perSecond: load.responsesPerSecond, cpuMsPerAnswer }
        : new Error(
            `only ${right} of ${load.responses} answers were ${expected}: ${JSON.stringify(load.statuses)}`,
          );
  } catch (error) {
    result = error instanceof Error ? error : new Error(String(error));
  }
  const problems = await deployment.stop();
  if (result instanceof Error) throw result;
  if (problems.length > 0) throw new Error(problems.join('\n'));
  return result;
}
