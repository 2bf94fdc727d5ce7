/**
 * Expiry timers delivered the way BullMQ really delivers them — at least
 * once — to real worker processes on a real redis-server: duplicates, late
 * deliveries, a timer from an earlier life of a reused token, and workers
 * killed with SIGKILL in the middle of the job (PAYSTATE_TEST_CRASH_AT) so
 * that BullMQ hands the stalled job to another worker. A token expires
 * exactly once and no delivery moves money or touches another life.
 */
import { randomBytes } from 'node:crypto';
import type { JobsOptions } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PaymentStep as FaultPointName } from '../../src/payments/payments.ts';
import { AppProcesses, type AppProcess, accountOf, tokenRequests } from '../support/app-process.ts';
import { iterations, reportScenario } from '../support/fault-report.ts';
import {
  movementsOf,
  paymentOf,
  StoreInspector,
  type Movements,
  type PaymentView,
} from '../support/payment-checks.ts';
import { startRedisServer, type TestRedisServer } from '../support/redis-server.ts';
import { randomPrefix, waitFor } from '../support/service-harness.ts';
import { fireNow, type TimerJobData } from '../support/timer-jobs.ts';

const INITIAL_BALANCE_CENTS = 100_000;
const AMOUNT_CENTS = 900;
const DAY_MS = String(24 * 3600 * 1000);
/** Short enough that a killed worker's job is handed to another worker within a second or so. */
const JOB_LOCK_MS = '500';
const RETENTION_MS = '300';
const DELIVERY_RUNS = iterations(2, 20);
const KILL_RUNS = iterations(2, 10);

/** Options of a delivery the test adds: kept once completed, so the test can see it ran. */
const DELIVERY: JobsOptions = {
  attempts: 50,
  backoff: { type: 'exponential', delay: 200 },
  removeOnComplete: false,
};

type Final = 'processed' | 'cancelled' | 'refunded';

const FINALS: readonly Final[] = ['processed', 'cancelled', 'refunded'];

const newToken = (what: string) => `${what}-${randomBytes(4).toString('hex')}`;
const expiredEntries = (view: PaymentView | null) =>
  view?.history.filter((h) => h.state === 'expired').length ?? 0;
const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);

/** Processes and inspector of one key prefix, and the client calls on it. */
function cluster(redisUrl: string) {
  const prefix = randomPrefix();
  const apps = new AppProcesses({
    REDIS_URL: redisUrl,
    REDIS_KEY_PREFIX: prefix,
    ACCOUNT_INITIAL_BALANCE_CENTS: String(INITIAL_BALANCE_CENTS),
    // Timers only fire when a test delivers them.
    PAYMENT_EXPIRY_MS: DAY_MS,
    EXPIRED_RETENTION_MS: DAY_MS,
    LOCK_TTL_MS: '1000',
    LOCK_WAIT_MS: '5000',
    EXPIRY_JOB_LOCK_MS: JOB_LOCK_MS,
  });
  const store = new StoreInspector(redisUrl, prefix);
  const { pay, cancel } = tokenRequests(AMOUNT_CENTS);

  /** Brings a new token to `final`; returns its life id. */
  async function prepare(app: AppProcess, token: string, final: Final): Promise<string> {
    if (final !== 'cancelled' && (await pay(app, token)).status !== 201) {
      throw new Error(`${token} was not charged`);
    }
    if (final !== 'processed' && (await cancel(app, token)).status !== 200) {
      throw new Error(`${token} was not cancelled`);
    }
    const lifeId = await store.lifeOf(token);
    if (lifeId === null) throw new Error(`${token} has no record`);
    return lifeId;
  }

  /** Fires the token's own timer (the one its record holds) now instead of in a day. */
  async function fireTimer(token: string): Promise<{ jobId: string; data: TimerJobData }> {
    const jobId = await store.expiryJobIdOf(token);
    const job = jobId === null ? undefined : await store.queue.getJob(jobId);
    if (jobId === null || job === undefined) throw new Error(`${token} has no timer`);
    const data = { ...job.data, dueAt: 0 };
    await fireNow(job);
    return { jobId, data };
  }

  /** Delivers a timer's job (its data, due) again as a job of its own. */
  async function deliver(jobId: string, data: TimerJobData): Promise<string> {
    const job = await store.queue.add(
      data.event.type,
      { ...data, dueAt: 0 },
      { ...DELIVERY, jobId },
    );
    return job.id ?? jobId;
  }

  /** Polls until the job ran: completed, or (the service's own timers) removed on completion. */
  async function ran(jobId: string): Promise<string | null> {
    return waitFor(
      async () => {
        const job = await store.queue.getJob(jobId);
        if (job === undefined) return null;
        const state = await job.getState();
        if (state === 'failed') return `job ${jobId} failed: ${job.failedReason}`;
        return state === 'completed' ? null : undefined;
      },
      { timeoutMs: 15_000, what: `job ${jobId} to run` },
    );
  }

  return { prefix, apps, store, pay, cancel, prepare, fireTimer, deliver, ran };
}

type Cluster = ReturnType<typeof cluster>;

describe('expiry timers delivered at least once to worker processes that may die', () => {
  let redis: TestRedisServer;

  beforeAll(async () => {
    redis = await startRedisServer();
  });

  afterAll(async () => {
    await redis.destroy();
  });

  describe('deliveries to a live worker', () => {
    let c: Cluster;
    let api: AppProcess;
    let shortRetention: AppProcess;

    beforeAll(async () => {
      c = cluster(redis.url);
      [api, shortRetention] = await Promise.all([
        c.apps.start('api', { PAYSTATE_ROLES: 'api' }),
        c.apps.start('api with short retention', {
          PAYSTATE_ROLES: 'api',
          EXPIRED_RETENTION_MS: RETENTION_MS,
        }),
        c.apps.start('worker', { PAYSTATE_ROLES: 'worker' }),
      ]);
    });

    afterAll(async () => {
      await c.apps.killAll();
      await c.store.close();
    });

    it(
      'expires a token exactly once when its timer and duplicates arrive together, and a late delivery changes nothing',
      async () => {
        const problems: string[] = [];
        let deliveries = 0;
        for (let i = 0; i < DELIVERY_RUNS; i++) {
          await Promise.all(
            FINALS.map(async (final) => {
              const token = newToken(`dup-${final}`);
              const found = (problem: string | null) => {
                if (problem !== null) problems.push(`${token}: ${problem}`);
              };
              const lifeId = await c.prepare(api, token, final);
              const moved = await movementsOf(api, accountOf(token), token);
              const timer = (await c.store.queue.getJob((await c.store.expiryJobIdOf(token)) ?? ''))
                ?.data;
              if (timer === undefined) throw new Error(`${token} has no timer`);

              // The real timer and two duplicates, all at once.
              const [real, ...duplicates] = await Promise.all([
                c.fireTimer(token),
                c.deliver(`dup1.${lifeId}.${token}`, timer),
                c.deliver(`dup2.${lifeId}.${token}`, timer),
              ]);
              const ids = [real.jobId, ...duplicates];
              for (const problem of await Promise.all(ids.map((id) => c.ran(id)))) found(problem);
              deliveries += ids.length;

              const expired = await paymentOf(api, token);
              found(expired?.status === 'expired' ? null : `status ${String(expired?.status)}`);
              found(
                expiredEntries(expired) === 1
                  ? null
                  : `${expiredEntries(expired)} 'expired' entries in the history`,
              );
              const version = await c.store.versionOf(token);

              // A late delivery, after the token expired.
              found(await c.ran(await c.deliver(`late.${lifeId}.${token}`, timer)));
              deliveries += 1;
              const after = await paymentOf(api, token);
              found(same(after, expired) ? null : 'a late delivery changed the record');
              const versionAfter = await c.store.versionOf(token);
              found(versionAfter === version ? null : 'a late delivery wrote the record');
              found(
                same(await movementsOf(api, accountOf(token), token), moved)
                  ? null
                  : 'expiry moved money',
              );
            }),
          );
        }
        reportScenario('duplicate and late expiry deliveries', {
          iterations: DELIVERY_RUNS,
          violations: problems.length,
          details: { tokens: DELIVERY_RUNS * FINALS.length, deliveries },
        });
        expect(problems.length, problems.join('\n')).toBe(0);
      },
      DELIVERY_RUNS * 20_000,
    );

    it(
      "ignores a timer from a token's earlier life, before and after the token is used again",
      async () => {
        const problems: string[] = [];
        for (let i = 0; i < DELIVERY_RUNS; i++) {
          const token = newToken('reused');
          const found = (problem: string | null) => {
            if (problem !== null) problems.push(`${token}: ${problem}`);
          };
          const oldLife = await c.prepare(shortRetention, token, 'processed');
          const oldTimer = await c.fireTimer(token);
          found(await c.ran(oldTimer.jobId));
          // Retention is short: the record goes and the token is new again.
          await waitFor(async () => ((await paymentOf(api, token)) === null ? true : undefined), {
            what: `${token} to be forgotten`,
          });

          // The old life's timer once more, while nobody knows the token.
          found(await c.ran(await c.deliver(`stale1.${oldLife}.${token}`, oldTimer.data)));
          found((await paymentOf(api, token)) === null ? null : 'a stale timer created a record');

          // A new life of the same token.
          const paid = await c.pay(api, token);
          found(paid.status === 201 ? null : `the new life's payment got ${paid.status}`);
          const newLife = await c.store.lifeOf(token);
          found(newLife !== null && newLife !== oldLife ? null : 'the token kept its old life');
          const fresh = await paymentOf(api, token);
          const version = await c.store.versionOf(token);

          // The old life's timer yet again: the new life is untouched.
          found(await c.ran(await c.deliver(`stale2.${oldLife}.${token}`, oldTimer.data)));
          const after = await paymentOf(api, token);
          found(after?.status === 'processed' ? null : `new life is ${String(after?.status)}`);
          found(same(after, fresh) ? null : 'a stale timer changed the new life');
          found(
            (await c.store.versionOf(token)) === version ? null : 'a stale timer wrote the record',
          );
          found(
            (await c.store.timerOf(token)) === 'delayed' ? null : "the new life's timer is gone",
          );
          const moved: Movements = await movementsOf(api, accountOf(token), token);
          found(
            same(moved, {
              withdrawals: 2,
              deposits: 0,
              balanceCents: INITIAL_BALANCE_CENTS - 2 * AMOUNT_CENTS,
            })
              ? null
              : `ledger ${JSON.stringify(moved)} after two charged lives`,
          );
        }
        reportScenario("stale expiry from a reused token's earlier life", {
          iterations: DELIVERY_RUNS,
          violations: problems.length,
          details: { staleDeliveries: 2 * DELIVERY_RUNS },
        });
        expect(problems.length, problems.join('\n')).toBe(0);
      },
      DELIVERY_RUNS * 20_000,
    );
  });

  describe('a worker killed in the middle of an expiry job', () => {
    let c: Cluster;
    let api: AppProcess;

    beforeAll(async () => {
      c = cluster(redis.url);
      api = await c.apps.start('api', { PAYSTATE_ROLES: 'api' });
    });

    afterAll(async () => {
      await c.apps.killAll();
      await c.store.close();
    });

    /**
     * Fires the timer of a processed token with only workers that die at
     * `kills` (in turn) running, then starts a sound worker: BullMQ must hand
     * it the stalled job. Returns the violations and how long it took.
     */
    async function killWorkers(
      kills: readonly FaultPointName[],
    ): Promise<{ problems: string[]; redeliveredInMs: number }> {
      const token = newToken(`kill-${kills.join('-')}`);
      const problems: string[] = [];
      const found = (problem: string | null) => {
        if (problem !== null) problems.push(`${token}: ${problem}`);
      };
      await c.prepare(api, token, 'processed');
      const moved = await movementsOf(api, accountOf(token), token);
      const timerJob = (await c.store.expiryJobIdOf(token)) ?? '';

      for (const [n, point] of kills.entries()) {
        const doomed = await c.apps.start(`worker killed at ${point}`, {
          PAYSTATE_ROLES: 'worker',
          PAYSTATE_TEST_CRASH_AT: `${point}:EXPIRE`,
        });
        if (n === 0) await c.fireTimer(token);
        const { signal } = await doomed.exited(15_000);
        found(signal === 'SIGKILL' ? null : `the worker ended by ${String(signal)}`);
      }
      const killedAfterWrite = kills.includes('after-persist-outcome');
      const between = await paymentOf(api, token);
      found(
        between?.status === (killedAfterWrite ? 'expired' : 'processed')
          ? null
          : `status ${String(between?.status)} after the kill`,
      );

      const started = Date.now();
      const sound = await c.apps.start('worker', { PAYSTATE_ROLES: 'worker' });
      found(await c.ran(timerJob).catch((e: unknown) => String(e)));
      const redeliveredInMs = Date.now() - started;
      await sound.stop();

      const expired = await paymentOf(api, token);
      found(expired?.status === 'expired' ? null : `status ${String(expired?.status)}`);
      found(
        expiredEntries(expired) === 1
          ? null
          : `${expiredEntries(expired)} 'expired' entries in the history`,
      );
      found(
        same(await movementsOf(api, accountOf(token), token), moved) ? null : 'expiry moved money',
      );
      return { problems, redeliveredInMs };
    }

    it.each<FaultPointName>(['after-lock', 'after-persist-outcome'])(
      'expires the token exactly once when the worker is killed at %s and the job goes to another worker',
      async (point) => {
        const problems: string[] = [];
        const times: number[] = [];
        for (let i = 0; i < KILL_RUNS; i++) {
          const run = await killWorkers([point]);
          problems.push(...run.problems);
          times.push(run.redeliveredInMs);
        }
        reportScenario(`kill expiry worker at ${point}, job redelivered`, {
          iterations: KILL_RUNS,
          violations: problems.length,
          details: { slowestRedeliveryMs: Math.max(...times) },
        });
        expect(problems.length, problems.join('\n')).toBe(0);
      },
      KILL_RUNS * 20_000,
    );

    it(
      'expires the token exactly once when two workers in turn are killed holding its job',
      async () => {
        const problems: string[] = [];
        const times: number[] = [];
        for (let i = 0; i < KILL_RUNS; i++) {
          const run = await killWorkers(['after-lock', 'after-lock']);
          problems.push(...run.problems);
          times.push(run.redeliveredInMs);
        }
        reportScenario('kill two expiry workers in turn, job redelivered', {
          iterations: KILL_RUNS,
          violations: problems.length,
          details: { slowestRedeliveryMs: Math.max(...times) },
        });
        expect(problems.length, problems.join('\n')).toBe(0);
      },
      KILL_RUNS * 30_000,
    );
  });
});
