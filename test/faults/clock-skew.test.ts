/**
 * Processes whose own clocks are 10 minutes off (libfaketime, from Debian's
 * `faketime` package) against one real redis-server: the time the machine sees, the
 * due times of timers and the retention deadlines are Redis's, so a worker
 * ahead of it cannot expire a token early, and a process behind it cannot
 * write a removal deadline already in the past (which made the token new
 * again, and chargeable a second time, at once).
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AppProcesses, tokenRequests, accountOf } from '../support/app-process.ts';
import { movementsOf, paymentOf, StoreInspector } from '../support/payment-checks.ts';
import { descendantsOf, isGone } from '../support/process-tree.ts';
import { startRedisServer, type TestRedisServer } from '../support/redis-server.ts';
import { skewedClock } from '../support/skewed-clock.ts';
import { randomPrefix, waitFor } from '../support/service-harness.ts';

const AHEAD = skewedClock('+10m');
const BEHIND = skewedClock('-10m');
const AMOUNT_CENTS = 700;
const newToken = (what: string) => `${what}-${randomBytes(4).toString('hex')}`;

describe('processes whose clocks are 10 minutes off Redis', () => {
  let redis: TestRedisServer;
  const { pay } = tokenRequests(AMOUNT_CENTS);

  beforeAll(async () => {
    redis = await startRedisServer();
  });

  afterAll(async () => {
    await redis.destroy();
  });

  function setUp(env: Record<string, string>) {
    const prefix = randomPrefix();
    const apps = new AppProcesses({ REDIS_URL: redis.url, REDIS_KEY_PREFIX: prefix, ...env });
    const store = new StoreInspector(redis.url, prefix);
    return { apps, store };
  }

  it('runs a process 10 minutes ahead that signals reach: nothing of it is left once it is killed', async () => {
    const { apps, store } = setUp({});
    try {
      const worker = await apps.start('worker 10 min ahead', { PAYSTATE_ROLES: 'worker' }, AHEAD);
      const started = JSON.parse(
        worker.process
          .output()
          .split('\n')
          .find((line) => line.includes('"paystate started"')) ?? '{}',
      ) as { time?: string };
      const [seconds = '0'] = await store.redis.time();
      const ahead = Date.parse(started.time ?? '') - Number(seconds) * 1000;
      expect(ahead).toBeGreaterThan(590_000);
      expect(ahead).toBeLessThan(610_000);
      const pids = [worker.pid, ...descendantsOf(worker.pid).map((p) => p.pid)];
      await apps.killAll();
      await waitFor(() => (pids.every(isGone) ? true : undefined), {
        timeoutMs: 5_000,
        what: `processes ${pids.join(', ')} to end`,
      });
    } finally {
      await apps.killAll();
      await store.close();
    }
  });

  it('does not expire a token early when the worker runs 10 minutes ahead, and expires it when Redis says it is due', async () => {
    const { apps, store } = setUp({ PAYMENT_EXPIRY_MS: '60000', EXPIRED_RETENTION_MS: '60000' });
    try {
      const api = await apps.start('api', { PAYSTATE_ROLES: 'api' });
      const worker = await apps.start('worker 10 min ahead', { PAYSTATE_ROLES: 'worker' }, AHEAD);
      const token = newToken('ahead');
      expect((await pay(api, token)).status).toBe(201);

      // BullMQ hands the skewed worker the job at once, by the worker's own
      // clock; wait until it has seen it (or, wrongly, expired the token).
      await waitFor(
        async () =>
          worker.process.output().includes('delivered early') ||
          (await paymentOf(api, token))?.status === 'expired'
            ? true
            : undefined,
        { timeoutMs: 15_000, what: 'the skewed worker to get the job' },
      );
      expect((await paymentOf(api, token))?.status).toBe('processed');
      const job = await store.queue.getJob((await store.expiryJobIdOf(token)) ?? '');
      expect(await job?.getState()).toBe('delayed');
      // Put back for its due time as the worker's clock counts it: 10 minutes
      // ahead of Redis's, so a worker with a true clock does not fire it early either.
      const dueAt = job?.data.dueAt ?? 0;
      const [seconds = '0'] = await store.redis.time();
      expect(dueAt - Number(seconds) * 1000).toBeGreaterThan(50_000);
      const score = Number(
        await store.redis.zscore(`${store.keys.queuePrefix}:payment-timers:delayed`, job?.id ?? ''),
      );
      expect(Math.floor(score / 0x1000)).toBeGreaterThanOrEqual(dueAt);
    } finally {
      await apps.killAll();
      await store.close();
    }
  }, 40_000);

  it("expires a token at its due time on Redis's clock when the only worker runs 10 minutes ahead", async () => {
    const { apps, store } = setUp({ PAYMENT_EXPIRY_MS: '3000', EXPIRED_RETENTION_MS: '60000' });
    try {
      const api = await apps.start('api', { PAYSTATE_ROLES: 'api' });
      await apps.start('worker 10 min ahead', { PAYSTATE_ROLES: 'worker' }, AHEAD);
      const token = newToken('ahead-due');
      expect((await pay(api, token)).status).toBe(201);
      const expired = await waitFor(
        async () => {
          const view = await paymentOf(api, token);
          return view?.status === 'expired' ? view : undefined;
        },
        { timeoutMs: 20_000, what: `${token} to expire` },
      );
      const { expiresAt, expiredAt } = expired as unknown as {
        expiresAt: string;
        expiredAt: string;
      };
      expect(Date.parse(expiredAt)).toBeGreaterThanOrEqual(Date.parse(expiresAt));
    } finally {
      await apps.killAll();
      await store.close();
    }
  }, 40_000);

  it('keeps an expired token for its retention when the process that expires it runs 10 minutes behind, so it is not charged again', async () => {
    const { apps, store } = setUp({ PAYMENT_EXPIRY_MS: '1000', EXPIRED_RETENTION_MS: '60000' });
    try {
      const behind = await apps.start('api and worker 10 min behind', {}, BEHIND);
      const token = newToken('behind');
      expect((await pay(behind, token)).status).toBe(201);
      // The worker's clock is 10 minutes late to promote the job: deliver it
      // once it is due on Redis's clock, as a worker with a true clock would.
      const expiresAt = Date.parse((await paymentOf(behind, token))?.expiresAt ?? '');
      await waitFor(
        async () => {
          const [seconds = '0'] = await store.redis.time();
          return Number(seconds) * 1000 >= expiresAt ? true : undefined;
        },
        { timeoutMs: 10_000, what: 'the due time' },
      );
      await (await store.queue.getJob((await store.expiryJobIdOf(token)) ?? ''))?.promote();
      await waitFor(
        async () => {
          // Gone counts too: a removal deadline written in the past drops the record at once.
          const view = await paymentOf(behind, token);
          return view === null || view.status === 'expired' ? true : undefined;
        },
        { timeoutMs: 10_000, what: `${token} to expire` },
      );

      // The record is kept for the retention period, by Redis's clock.
      const ttl = await store.redis.pttl(store.keys.state(token));
      expect(ttl).toBeGreaterThan(50_000);
      const again = await pay(behind, token);
      expect(again.status).toBe(410);
      const moved = await movementsOf(behind, accountOf(token), token);
      expect(moved.withdrawals).toBe(1);
    } finally {
      await apps.killAll();
      await store.close();
    }
  }, 40_000);
});
