/**
 * Nothing is silently lost: a processed token whose expiry job was deleted
 * from the queue (a lost write, an operator's clean-up) is listed as stuck
 * and expires after the worker's sweep re-arms it; a record whose snapshot
 * is missing or cannot be decoded is answered `record_unreadable`, listed
 * and counted, and keeps its outbox entry until an operator resolves it.
 */
import type { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { tenantKey } from '../../src/tenants.ts';
import { bearer, TEST_API_KEYS, TEST_KEYS } from '../support/api-keys.ts';
import { runCli } from '../support/processes.ts';
import {
  expiryQueue,
  startTestService,
  testConfig,
  waitFor,
  type TestService,
} from '../support/service-harness.ts';
import { expiryJobIdOf, recordKey, type TimerJobData } from '../support/timer-jobs.ts';

/** Long enough that no sweep runs unless a test asks for one. */
const NO_SWEEP_MS = String(10 * 60 * 1000);
/** Long enough that the job is still delayed when the test deletes it. */
const EXPIRY_MS = 2_000;

interface StuckList {
  readonly payments: readonly { token: string; status: string | null; reason: string }[];
}

describe('nothing is silently lost', () => {
  let service: TestService;
  let queue: Queue<TimerJobData>;
  let redis: Redis;
  let env: Record<string, string>;

  beforeAll(async () => {
    const redisUrl = inject('redisUrl');
    service = await startTestService(
      testConfig(redisUrl, {
        // The sweep leaves what is younger than LOCK_TTL_MS alone: keep it short.
        LOCK_TTL_MS: '200',
        RECOVERY_INTERVAL_MS: NO_SWEEP_MS,
        PAYMENT_EXPIRY_MS: String(EXPIRY_MS),
      }),
    );
    queue = expiryQueue(redisUrl, service.config);
    redis = new Redis(redisUrl);
    env = { REDIS_URL: redisUrl, REDIS_KEY_PREFIX: service.config.keyPrefix };
  });

  afterAll(async () => {
    await service.stop();
    await queue.close();
    await queue.disconnect();
    redis.disconnect();
  });

  const pay = (token: string) =>
    service.request('POST', '/payments', {
      headers: { 'Idempotency-Key': token },
      body: { accountId: `acct-${token}`, amountCents: 1_000 },
    });
  // Overdue by more than the sweep's grace (LOCK_TTL_MS): what the sweep re-arms.
  const stuck = async () =>
    (await service.request('GET', '/admin/payments/stuck?olderThan=500ms')).body as StuckList;
  const cliStuck = async () => {
    const run = await runCli(['stuck', '--older-than', '500ms', '--json'], env);
    expect(run.code).toBe(0);
    return JSON.parse(run.stdout) as StuckList;
  };
  const rearmedMetric = async () => {
    const { body } = await service.request('GET', '/metrics');
    const line = /^paystate_timers_rearmed_total\{machine="payment"\} (\d+)$/m.exec(String(body));
    return Number(line?.[1] ?? 0);
  };

  /** Deletes the token's expiry job from BullMQ's keys, as `redis-cli DEL`/`ZREM` would. */
  async function deleteExpiryJob(token: string): Promise<void> {
    const jobId = await waitFor(
      () => expiryJobIdOf(redis, service.config.keyPrefix, token).then((id) => id ?? undefined),
      {
        what: 'an expiry timer in the record',
      },
    );
    await waitFor(async () => ((await queue.getJob(jobId)) === undefined ? undefined : true), {
      what: 'the expiry job',
    });
    const base = `${service.config.keyPrefix}:bull:payment-timers`;
    await redis.del(`${base}:${jobId}`);
    const removed = await redis.zrem(`${base}:delayed`, jobId);
    expect(removed).toBe(1);
    expect(await queue.getJob(jobId)).toBeUndefined();
  }

  describe('a due timer without its job', () => {
    it('is listed as stuck, then re-armed by the sweep, counted, and the token expires', async () => {
      const token = 'lost-expiry-job';
      expect((await pay(token)).status).toBe(201);
      await deleteExpiryJob(token);
      const rearmedBefore = await rearmedMetric();

      // Due and past the grace, with no job: stuck, and nothing moves it.
      const listed = await waitFor(
        async () => (await stuck()).payments.find((p) => p.token === token),
        { what: 'the token in the stuck listing' },
      );
      expect(listed).toMatchObject({ status: 'processed', reason: 'timer' });
      expect((await cliStuck()).payments).toContainEqual(
        expect.objectContaining({ token, status: 'processed', reason: 'timer' }),
      );
      const view = await service.request('GET', `/payments/${token}`);
      expect(view.body).toMatchObject({ status: 'processed' });

      await service.recovery?.runOnce();

      await waitFor(
        async () => {
          const { body } = await service.request('GET', `/payments/${token}`);
          return (body as { status: string }).status === 'expired' ? true : undefined;
        },
        { what: 'the token to expire' },
      );
      expect(await rearmedMetric()).toBe(rearmedBefore + 1);
      expect((await stuck()).payments.map((p) => p.token)).not.toContain(token);
    });
  });

  describe('a record that cannot be read', () => {
    it.each([
      ['its snapshot removed', (key: string) => redis.hdel(key, 's')],
      ['its snapshot not JSON', (key: string) => redis.hset(key, 's', '{"value":')],
    ])(
      'with %s: answered record_unreadable, listed, counted, its outbox entry kept until resolved',
      async (_case, corrupt) => {
        const token = `unreadable-${_case.split(' ').at(-1) ?? ''}-${Date.now()}`;
        expect((await pay(token)).status).toBe(201);
        const key = recordKey(service.config.keyPrefix, token);
        const outbox = `${service.config.keyPrefix}:outbox`;
        // What a write that crashed before its effects ran leaves: owed work and an outbox entry.
        await redis.hset(key, 'o', '[]');
        await redis.zadd(outbox, 1, token);
        await corrupt(key);

        for (const request of [
          () => service.request('GET', `/payments/${token}`),
          () => pay(token),
          () =>
            service.request('POST', `/PaymentProcessor/${token}/makePayment`, {
              body: { accountId: `acct-${token}`, amountCents: 1_000 },
            }),
        ]) {
          const response = await request();
          expect(response.status).toBe(500);
          const { error } = response.body as { error: { code: string; message: string } };
          expect(error.code).toBe('record_unreadable');
          expect(error.message).not.toBe('internal error');
        }

        await service.recovery?.runOnce();
        await service.recovery?.runOnce();
        expect(await redis.zscore(outbox, token)).not.toBeNull();

        expect((await stuck()).payments).toContainEqual(
          expect.objectContaining({ token, status: null, reason: 'unreadable' }),
        );
        expect((await cliStuck()).payments).toContainEqual(
          expect.objectContaining({ token, status: null, reason: 'unreadable' }),
        );
        const stats = await service.request('GET', '/admin/payments/stats');
        expect(stats.body).toMatchObject({ unreadable: 1 });
        const cliStats = await runCli(['stats', '--json'], env);
        expect(JSON.parse(cliStats.stdout)).toMatchObject({ unreadable: 1 });

        // The operator's resolution (docs/operations.md): the record is deleted; the
        // next sweep takes what it left behind out of the outbox and the listings.
        await redis.del(key);
        await service.recovery?.runOnce();
        expect(await redis.zscore(outbox, token)).toBeNull();
        expect((await stuck()).payments.map((p) => p.token)).not.toContain(token);
        expect((await service.request('GET', '/admin/payments/stats')).body).toMatchObject({
          unreadable: 0,
        });
        expect((await service.request('GET', `/payments/${token}`)).status).toBe(404);
      },
    );
  });
});

describe("nothing is silently lost, in a tenant's own lists", () => {
  const A = bearer(TEST_KEYS.alpha);
  const B = bearer(TEST_KEYS.beta);
  let service: TestService;
  let queue: Queue<TimerJobData>;
  let redis: Redis;

  beforeAll(async () => {
    const redisUrl = inject('redisUrl');
    service = await startTestService(
      testConfig(redisUrl, {
        PAYSTATE_API_KEYS: TEST_API_KEYS,
        LOCK_TTL_MS: '200',
        RECOVERY_INTERVAL_MS: NO_SWEEP_MS,
        PAYMENT_EXPIRY_MS: String(EXPIRY_MS),
      }),
    );
    queue = expiryQueue(redisUrl, service.config);
    redis = new Redis(redisUrl);
  });

  afterAll(async () => {
    await service.stop();
    await queue.close();
    await queue.disconnect();
    redis.disconnect();
  });

  // Overdue by more than the sweep's grace (LOCK_TTL_MS): what the sweep re-arms.
  const stuckOf = async (headers: Record<string, string>) =>
    (
      (await service.request('GET', '/admin/payments/stuck?olderThan=500ms', { headers }))
        .body as StuckList
    ).payments;
  const unreadableOf = async (headers: Record<string, string>) =>
    (
      (await service.request('GET', '/admin/payments/stats', { headers })).body as {
        unreadable: number;
      }
    ).unreadable;

  it("lists a tenant's timer without a job and its unreadable record to that tenant only", async () => {
    const pay = (token: string) =>
      service.request('POST', '/payments', {
        headers: { ...A, 'Idempotency-Key': token },
        body: { accountId: 'acct', amountCents: 100 },
      });
    expect((await pay('lost-job')).status).toBe(201);
    expect((await pay('lost-snapshot')).status).toBe(201);
    const stored = (id: string) => tenantKey('alpha', id);
    const jobId = await waitFor(
      async () =>
        (await expiryJobIdOf(redis, service.config.keyPrefix, stored('lost-job'))) ?? undefined,
    );
    await waitFor(async () => ((await queue.getJob(jobId)) === undefined ? undefined : true));
    await queue.remove(jobId);
    await redis.hdel(recordKey(service.config.keyPrefix, stored('lost-snapshot')), 's');
    expect((await service.request('GET', '/payments/lost-snapshot', { headers: A })).status).toBe(
      500,
    );

    const listed = await waitFor(async () => {
      const found = await stuckOf(A);
      return found.some((p) => p.token === 'lost-job') ? found : undefined;
    });
    expect(listed).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ token: 'lost-job', reason: 'timer' }),
        expect.objectContaining({ token: 'lost-snapshot', reason: 'unreadable' }),
      ]),
    );
    expect(await stuckOf(B)).toEqual([]);
    expect(await unreadableOf(A)).toBe(1);
    expect(await unreadableOf(B)).toBe(0);

    await service.recovery?.runOnce();
    await waitFor(async () => {
      const { body } = await service.request('GET', '/payments/lost-job', { headers: A });
      return (body as { status: string }).status === 'expired' ? true : undefined;
    });
  });
});
