/**
 * Upgrading from the release before the engine: what that release stored
 * (test/fixtures/release-before-engine/records.json, dumped from a run of
 * it) is loaded into Redis and the service of this release continues it.
 * Records of that format have no machine name, an owed flag `o` = '1'
 * instead of owed actions, and expiry jobs of their own queue `expiry`.
 *
 * The fixture's times are moved by one offset to "now" on Redis's clock, as
 * if the upgrade came right after it was stored; nothing else is changed.
 */
import { readFileSync } from 'node:fs';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import {
  LEGACY_EXPIRY_QUEUE,
  type LegacyExpiryJobData,
} from '../../src/payments/legacy-records.ts';
import { createKeys } from '../../src/payments/keys.ts';
import { expiryJobIdOf, fireNow, paymentTimerQueue } from '../support/timer-jobs.ts';
import {
  randomPrefix,
  startTestService,
  testConfig,
  waitFor,
  type TestService,
} from '../support/service-harness.ts';

interface Fixture {
  readonly prefix: string;
  readonly redisTimeMs: number;
  readonly keys: Record<
    string,
    | { type: 'hash'; value: Record<string, string> }
    | { type: 'zset'; value: string[] }
    | { type: 'list'; value: string[] }
    | { type: 'string'; value: string }
  >;
  readonly expiryJobs: readonly {
    id: string;
    name: string;
    data: LegacyExpiryJobData;
    timestamp: number;
  }[];
}

const fixture = JSON.parse(
  readFileSync(new URL('../fixtures/release-before-engine/records.json', import.meta.url), 'utf8'),
) as Fixture;

/** Epoch ms in the fixture (amounts and balances stay far below). */
const EPOCH_MS = 1e12;

/** Moves every epoch-ms number inside a JSON text by `offset`. */
function redate(json: string, offset: number): string {
  return JSON.stringify(
    JSON.parse(json, (_key, value: unknown) =>
      typeof value === 'number' && value >= EPOCH_MS ? value + offset : value,
    ),
  );
}

const redateField = (value: string, offset: number) =>
  /^\d{13,}$/.test(value) ? String(Number(value) + offset) : value;

/** Writes the fixture under `prefix`, dated `offset` ms later; returns the expiry queue. */
async function loadFixture(redis: Redis, redisUrl: string, prefix: string, offset: number) {
  const rename = (key: string) => `${prefix}${key.slice(fixture.prefix.length)}`;
  for (const [key, entry] of Object.entries(fixture.keys)) {
    switch (entry.type) {
      case 'hash':
        await redis.hset(
          rename(key),
          Object.fromEntries(
            Object.entries(entry.value).map(([field, value]) => [
              field,
              field === 's' ? redate(value, offset) : redateField(value, offset),
            ]),
          ),
        );
        break;
      case 'zset':
        for (let i = 0; i + 1 < entry.value.length; i += 2) {
          await redis.zadd(
            rename(key),
            redateField(entry.value[i + 1] ?? '0', offset),
            entry.value[i] ?? '',
          );
        }
        break;
      case 'list':
        await redis.rpush(rename(key), ...entry.value.map((v) => redate(v, offset)));
        break;
      case 'string':
        await redis.set(rename(key), entry.value);
        break;
    }
  }
  const queue = new Queue<LegacyExpiryJobData>(LEGACY_EXPIRY_QUEUE, {
    connection: new Redis(redisUrl, { maxRetriesPerRequest: null }),
    prefix: `${prefix}:bull`,
  });
  for (const job of fixture.expiryJobs) {
    const dueAt = job.data.dueAt === undefined ? undefined : job.data.dueAt + offset;
    // As that release added them: due at dueAt, counted from "now".
    await queue.add(
      job.name,
      { ...job.data, ...(dueAt === undefined ? {} : { dueAt }) },
      {
        jobId: job.id,
        timestamp: job.timestamp + offset,
        delay: Math.max(0, (dueAt ?? 0) - (job.timestamp + offset)),
        attempts: 50,
        backoff: { type: 'exponential', delay: 200 },
        removeOnComplete: true,
      },
    );
  }
  return queue;
}

/** The fixture's tokens, their life ids and accounts, as stored. */
function tokenOf(name: string): { token: string; lifeId: string; accountId: string } {
  const token = `fx-${name}`;
  const record = fixture.keys[`${fixture.prefix}:{${token}}:state`];
  if (record?.type !== 'hash') throw new Error(`no record of ${token} in the fixture`);
  const lifeId = record.value.l ?? '';
  const { context } = JSON.parse(record.value.s ?? '{}') as {
    context: { payment: { accountId: string } | null };
  };
  return { token, lifeId, accountId: context.payment?.accountId ?? `acct-${token}` };
}

describe('records and timers of the release before the engine', () => {
  let redis: Redis;
  let redisUrl: string;
  const services: TestService[] = [];
  const queues: Queue[] = [];

  /** The fixture under a prefix of its own, and a service of this release on it. */
  async function upgrade(env: Record<string, string> = {}) {
    const prefix = randomPrefix();
    const [seconds = '0'] = await redis.time();
    const queue = await loadFixture(
      redis,
      redisUrl,
      prefix,
      Number(seconds) * 1000 - fixture.redisTimeMs,
    );
    queues.push(queue);
    const service = await startTestService(
      testConfig(redisUrl, { REDIS_KEY_PREFIX: prefix, LOCK_TTL_MS: '200', ...env }),
    );
    services.push(service);
    return { service, queue, keys: createKeys(prefix) };
  }

  const movements = async (service: TestService, accountId: string, token: string) => {
    const { body } = await service.request('GET', `/accounts/${accountId}`);
    const { ledger } = body as { ledger: { token: string; kind: string; operationId: string }[] };
    return ledger.filter((e) => e.token === token);
  };
  const statusOf = async (service: TestService, token: string) => {
    const { status, body } = await service.request('GET', `/payments/${token}`);
    return status === 200 ? (body as { status: string }).status : null;
  };

  /** Delivers a job of that release now, as its older form (no due time: due) is delivered. */
  async function fireLegacyJob(queue: Queue<LegacyExpiryJobData>, token: string, lifeId: string) {
    const jobId = `expire.${lifeId}.${token}`;
    const job = await queue.getJob(jobId);
    expect(await job?.getState()).toBe('delayed');
    await job?.updateData({ token, lifeId });
    await job?.promote();
    await waitFor(async () => ((await queue.getJob(jobId)) === undefined ? true : undefined), {
      what: `the job ${jobId} to run`,
    });
  }

  beforeAll(() => {
    redisUrl = inject('redisUrl');
    redis = new Redis(redisUrl);
  });

  afterAll(async () => {
    await Promise.all(services.map((s) => s.stop()));
    for (const queue of queues) {
      await queue.close();
      await queue.disconnect();
    }
    redis.disconnect();
  });

  it('replays the processed payment without a second charge, refunds it once on cancel, and expires it by the timer of its refund, not its old job', async () => {
    const { service, queue } = await upgrade();
    const { token, lifeId, accountId } = tokenOf('processed');
    const replay = await service.request('POST', '/payments', {
      headers: { 'Idempotency-Key': token },
      body: { accountId, amountCents: 1_500 },
    });
    expect(replay.status).toBe(200);
    expect(replay.headers.get('idempotent-replayed')).toBe('true');

    for (let i = 0; i < 2; i++) {
      const cancel = await service.request('POST', `/payments/${token}/cancel`);
      expect(cancel).toMatchObject({ status: 200, body: { status: 'refunded' } });
    }
    expect((await movements(service, accountId, token)).map((e) => e.operationId)).toEqual([
      `charge:${token}:${lifeId}:1`,
      `refund:${token}:${lifeId}`,
    ]);

    // The refund started the window again: the job of the charge's deadline changes nothing.
    await fireLegacyJob(queue, token, lifeId);
    expect(await statusOf(service, token)).toBe('refunded');

    const timers = paymentTimerQueue(redisUrl, service.config.keyPrefix);
    queues.push(timers);
    const jobId = await expiryJobIdOf(redis, service.config.keyPrefix, token);
    const job = jobId === null ? undefined : await timers.getJob(jobId);
    expect(await job?.getState()).toBe('delayed');
    if (job !== undefined) await fireNow(job);
    await waitFor(async () => ((await statusOf(service, token)) === 'expired' ? true : undefined), {
      what: `${token} to expire`,
    });
    expect((await movements(service, accountId, token)).length).toBe(2);
  });

  it('completes the charge a crash left in flight on the next access, with the same operation id', async () => {
    const { service, keys } = await upgrade({ RECOVERY_INTERVAL_MS: '3600000' });
    const { token, lifeId, accountId } = tokenOf('charging');
    expect(await statusOf(service, token)).toBe('processing');
    const retry = await service.request('POST', '/payments', {
      headers: { 'Idempotency-Key': token },
      body: { accountId, amountCents: 2_500 },
    });
    expect(retry.status).toBe(200);
    expect(retry.body).toMatchObject({ status: 'processed' });
    const moved = await movements(service, accountId, token);
    expect(moved.map((e) => [e.kind, e.operationId])).toEqual([
      ['withdrawal', `charge:${token}:${lifeId}:1`],
    ]);
    // The expiry timer is armed and the owed actions cleared right after the answer.
    await waitFor(
      async () =>
        (await redis.hget(keys.state(token), 'o')) === null &&
        (await redis.zscore(keys.outbox, token)) === null
          ? true
          : undefined,
      { what: `${token} to owe nothing` },
    );
  });

  it('completes the charge a crash left in flight by the recovery sweep, with the same operation id', async () => {
    const { service, keys } = await upgrade({ RECOVERY_INTERVAL_MS: '100' });
    const { token, lifeId, accountId } = tokenOf('charging');
    await waitFor(
      async () => ((await statusOf(service, token)) === 'processed' ? true : undefined),
      {
        what: `${token} to be recovered`,
      },
    );
    const moved = await movements(service, accountId, token);
    expect(moved.map((e) => [e.kind, e.operationId])).toEqual([
      ['withdrawal', `charge:${token}:${lifeId}:1`],
    ]);
    await waitFor(async () =>
      (await redis.zscore(keys.outbox, token)) === null ? true : undefined,
    );
    // Charged now, it got its expiry timer from the engine.
    expect(await redis.hget(keys.state(token), 't')).toContain('"expire"');
  });

  it('keeps the cancelled token blocking every payment', async () => {
    const { service } = await upgrade();
    const { token } = tokenOf('cancelled');
    const paid = await service.request('POST', '/payments', {
      headers: { 'Idempotency-Key': token },
      body: { accountId: `acct-${token}`, amountCents: 100 },
    });
    expect(paid.status).toBe(409);
    expect(paid.body).toMatchObject({ error: { code: 'payment_cancelled' } });
    expect(await movements(service, `acct-${token}`, token)).toEqual([]);
  });

  it('charges the declined token on a later payment, and its old timer for the earlier deadline is not obeyed', async () => {
    const { service, queue } = await upgrade();
    const { token, lifeId } = tokenOf('declined');
    expect(await statusOf(service, token)).toBe('pending');
    const paid = await service.request('POST', '/payments', {
      headers: { 'Idempotency-Key': token },
      body: { accountId: `acct-${token}`, amountCents: 1_000 },
    });
    expect(paid.status).toBe(201);
    expect((await movements(service, `acct-${token}`, token)).map((e) => e.operationId)).toEqual([
      `charge:${token}:${lifeId}:2`,
    ]);
    // The job of its decline, its deadline passed (the test stands in for the
    // wait): the token's deadline moved on since, so it is put back, not obeyed.
    const jobId = `expire.${lifeId}.${token}`;
    const job = await queue.getJob(jobId);
    const [seconds = '0'] = await redis.time();
    const now = Number(seconds) * 1000;
    await job?.updateData({ token, lifeId, dueAt: now - 1 });
    await job?.promote();
    await waitFor(
      async () => {
        const again = await queue.getJob(jobId);
        return (again?.data.dueAt ?? 0) > now && (await again?.getState()) === 'delayed'
          ? true
          : undefined;
      },
      { what: `the job ${jobId} to be put back` },
    );
    expect(await statusOf(service, token)).toBe('processed');
  });
});
