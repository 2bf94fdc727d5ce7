/**
 * Expiry: many tokens paid with a short PAYMENT_EXPIRY_MS, then timed as the
 * worker expires them. Lateness is a record's `expiredAt` (when the worker
 * took up the EXPIRE) minus its `expiresAt` (when the timer was due).
 *
 * Two runs. `live`: a worker process runs all along, so timers come due at
 * the rate the tokens were paid and lateness shows whether the worker keeps
 * up with that rate. `backlog`: the worker starts only once every timer is
 * due, so it drains them as fast as it can: its capacity, which the live run
 * cannot show when payments arrive slower than the worker could expire them.
 */
import { Queue } from 'bullmq';
import { contextOf, statusOf } from '../../src/payments/payment.snapshot.ts';
import { timerQueueName } from '../../src/runtime/testing.ts';
import { failOnViolations, finish, type BenchContext } from '../bench-context.ts';
import { startDeployment, type Deployment } from '../deployment.ts';
import { runLoad, type LoadResult, type RequestSpec } from '../http-load.ts';
import { InvariantReport } from '../invariants.ts';
import { distribution, type Distribution } from '../percentiles.ts';
import { sampleResources, type ResourceReport, type ResourceUsage } from '../resource-sampler.ts';
import { accountIds, payment, tokenPrefix } from '../requests.ts';

export interface ExpiryRun {
  readonly mode: 'live' | 'backlog';
  readonly tokens: number;
  /** How fast the tokens were paid (and so how fast their timers come due). */
  readonly paidPerSecond: number;
  /** Timers due per second: tokens over the span of their `expiresAt`. */
  readonly duePerSecond: number;
  readonly expired: number;
  /** Tokens (first seen due to last expired) per second. */
  readonly expiriesPerSecond: number;
  readonly latenessMs: Distribution | null;
  readonly failedJobs: number;
  readonly resources: readonly ResourceUsage[];
  readonly machineCpuPercent: number | null;
  readonly invariants: ReturnType<InvariantReport['toJSON']>;
}

export interface ExpiryResult {
  readonly tokens: number;
  readonly expiryMs: number;
  readonly live: ExpiryRun;
  readonly backlog: ExpiryRun;
}

const DRAIN_TIMEOUT_MS = 120_000;

async function payAll(deployment: Deployment, count: number, connections: number) {
  const accounts = accountIds('account', 100);
  const prefix = tokenPrefix('expiry');
  const paid: string[] = [];
  let sent = 0;
  const load = await runLoad({
    urls: deployment.urls,
    connections,
    amount: count,
    next: () => {
      const i = sent++;
      return payment(`${prefix}-${i}`, accounts[i % accounts.length] ?? 'account');
    },
    onReply: (request: RequestSpec, status: number) => {
      if (status === 201) paid.push(request.headers?.['idempotency-key'] ?? '');
    },
  });
  return { paid, load };
}

function openQueue(deployment: Deployment): Queue {
  const { hostname, port } = new URL(deployment.redis.url);
  const queue = new Queue(timerQueueName('payment'), {
    connection: { host: hostname, port: Number(port) },
    prefix: deployment.keys.queuePrefix,
  });
  queue.on('error', () => undefined);
  return queue;
}

/** Waits until no expiry job is left to run; returns the number that failed for good. */
async function waitForDrain(queue: Queue): Promise<{ drained: boolean; failed: number }> {
  const deadline = Date.now() + DRAIN_TIMEOUT_MS;
  for (;;) {
    const counts = await queue.getJobCounts(
      'delayed',
      'waiting',
      'active',
      'prioritized',
      'failed',
    );
    const left =
      (counts.delayed ?? 0) +
      (counts.waiting ?? 0) +
      (counts.active ?? 0) +
      (counts.prioritized ?? 0);
    if (left === 0) return { drained: true, failed: counts.failed ?? 0 };
    if (Date.now() > deadline) return { drained: false, failed: counts.failed ?? 0 };
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

async function measure(
  deployment: Deployment,
  mode: 'live' | 'backlog',
  paid: readonly string[],
  creation: LoadResult,
  drain: { drained: boolean; failed: number },
  resources: ResourceReport,
): Promise<ExpiryRun> {
  const invariants = new InvariantReport();
  invariants.check('every paid token is expired once its timer is due');
  invariants.check('no expiry job fails for good');
  if (!drain.drained) {
    invariants.violation(
      `expiry jobs still pending ${DRAIN_TIMEOUT_MS / 1000} s after the last was due`,
    );
  }
  if (drain.failed > 0) invariants.violation(`${drain.failed} expiry job(s) failed`);
  const dueAt: number[] = [];
  const expiredAt: number[] = [];
  const lateness: number[] = [];
  for (let i = 0; i < paid.length; i += 500) {
    const batch = paid.slice(i, i + 500);
    const records = await Promise.all(batch.map((token) => deployment.store.load(token)));
    records.forEach((record, j) => {
      const token = batch[j] ?? '';
      if (record === null) {
        invariants.violation(`token ${token} has no record`);
        return;
      }
      const context = contextOf(record.snapshot);
      if (statusOf(record.snapshot) !== 'expired' || context.expiredAt === null) {
        invariants.violation(`token ${token} is ${statusOf(record.snapshot)}, not expired`);
        return;
      }
      if (context.expiresAt === null) {
        invariants.violation(`token ${token} expired without a due time`);
        return;
      }
      dueAt.push(context.expiresAt);
      expiredAt.push(context.expiredAt);
      lateness.push(context.expiredAt - context.expiresAt);
    });
  }
  const span = (values: number[]) =>
    values.length < 2 ? 0 : (Math.max(...values) - Math.min(...values)) / 1000;
  const firstDue = dueAt.length === 0 ? 0 : Math.min(...dueAt);
  const lastExpired = expiredAt.length === 0 ? 0 : Math.max(...expiredAt);
  // Live: from the first timer due to the last expiry. Backlog: every timer was
  // due before the worker started, so from its first expiry to its last.
  const expirySpan = mode === 'live' ? (lastExpired - firstDue) / 1000 : span(expiredAt);
  return {
    mode,
    tokens: paid.length,
    paidPerSecond: creation.responsesPerSecond,
    duePerSecond: span(dueAt) > 0 ? dueAt.length / span(dueAt) : 0,
    expired: expiredAt.length,
    expiriesPerSecond: expirySpan > 0 ? expiredAt.length / expirySpan : 0,
    latenessMs: mode === 'live' && lateness.length > 0 ? distribution(lateness) : null,
    failedJobs: drain.failed,
    resources: resources.processes,
    machineCpuPercent: resources.machineCpuPercent,
    invariants: invariants.toJSON(),
  };
}

async function runOnce(context: BenchContext, mode: 'live' | 'backlog'): Promise<ExpiryRun> {
  const { settings } = context;
  const id = `expiry/${mode}`;
  context.log(`${id}: starting`);
  const deployment = await startDeployment({
    appendfsync: 'everysec',
    apiProcesses: 1,
    apiRoles: 'api',
    workerProcesses: mode === 'live' ? 1 : 0,
    env: {
      PAYMENT_EXPIRY_MS: String(settings.expiryMs),
      // Keep expired records long enough to read them afterwards.
      EXPIRED_RETENTION_MS: '3600000',
    },
  });
  const queue = openQueue(deployment);
  try {
    const sampler = mode === 'live' ? sampleResources(deployment.watched()) : null;
    const { paid, load } = await payAll(deployment, settings.expiryTokens, settings.connections);
    if (mode === 'backlog') {
      // Every timer is due once the last payment's expiry has passed.
      await new Promise((resolve) => setTimeout(resolve, settings.expiryMs + 250));
      await deployment.addWorker();
    }
    const drainSampler = sampler ?? sampleResources(deployment.watched());
    const drain = await waitForDrain(queue);
    const run = await measure(deployment, mode, paid, load, drain, drainSampler.stop());
    failOnViolations(context, id, run.invariants);
    return run;
  } finally {
    await queue.close();
    await finish(context, id, deployment);
  }
}

export async function runExpiry(context: BenchContext): Promise<ExpiryResult> {
  return {
    tokens: context.settings.expiryTokens,
    expiryMs: context.settings.expiryMs,
    live: await runOnce(context, 'live'),
    backlog: await runOnce(context, 'backlog'),
  };
}
