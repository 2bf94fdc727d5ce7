/**
 * Redis up, answering reads, but refusing every write:
 *
 * - `MISCONF`: it is configured to save snapshots (`save`), the last save
 *   failed (disk full, directory gone, permissions) and
 *   `stop-writes-on-bgsave-error` is on (the default); the same code comes
 *   back when the append-only file cannot be written.
 * - `NOREPLICAS`: `min-replicas-to-write` asks for more replicas than are
 *   connected.
 *
 * Either is an outage, not a bug: a request that needs a write gets 503
 * `unavailable` with Retry-After at once, never a 500, and nothing is
 * written. A payment caught by it after its intent is stored is told 503 as
 * well, and once writes are accepted again its retry and the recovery sweep
 * finish it, charged once.
 */
import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { PaymentStep } from '../../src/payments/payments.ts';
import { pollUntil } from '../support/payment-load.ts';
import { startRedisServer, type TestRedisServer } from '../support/redis-server.ts';
import { startTestService, testConfig, type TestService } from '../support/service-harness.ts';
import { storeAuditor, type StoreAuditor } from '../support/store-audit.ts';

const INITIAL_BALANCE_CENTS = 100_000;
/** Long, so that an answer that waited for the lock is told apart from one given at once. */
const LOCK_WAIT_MS = 5_000;
const PROMPT_MS = LOCK_WAIT_MS / 2;

let redis: TestRedisServer;
let admin: Redis;
let service: TestService;
let auditor: StoreAuditor;
/** Tokens whose request makes Redis refuse writes when it reaches the named step. */
const refuseAt = new Map<string, PaymentStep>();

interface Refusal {
  readonly name: string;
  /** Starts the tokens of its tests. */
  readonly tag: string;
  readonly reply: RegExp;
  readonly start: () => Promise<void>;
  readonly stop: () => Promise<void>;
}

async function lastSaveFinished(): Promise<string> {
  for (;;) {
    const info = await admin.info('persistence');
    if (info.includes('rdb_bgsave_in_progress:0')) {
      return /rdb_last_bgsave_status:(\w+)/.exec(info)?.[1] ?? 'unknown';
    }
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** A snapshot that cannot be written: Redis's working directory is removed under it. */
const failedSave: Refusal = {
  name: 'the last snapshot could not be saved (MISCONF)',
  tag: 'misconf',
  reply: /^MISCONF /,
  async start() {
    const dir = path.join(redis.dir, 'snapshots');
    await mkdir(dir, { recursive: true });
    await admin.config('SET', 'dir', dir);
    await rm(dir, { recursive: true });
    await admin.bgsave();
    expect(await lastSaveFinished()).toBe('err');
  },
  async stop() {
    await admin.config('SET', 'dir', redis.dir);
    await admin.bgsave();
    expect(await lastSaveFinished()).toBe('ok');
  },
};

/** More replicas asked for than there are (none). */
const missingReplicas: Refusal = {
  name: 'too few replicas for min-replicas-to-write (NOREPLICAS)',
  tag: 'noreplicas',
  reply: /^NOREPLICAS /,
  async start() {
    await admin.config('SET', 'min-replicas-to-write', '1');
  },
  async stop() {
    await admin.config('SET', 'min-replicas-to-write', '0');
  },
};

let refusing: Refusal | null = null;
/** The refusal the fault point starts. */
let current: Refusal | null = null;

async function startRefusing(refusal: Refusal): Promise<void> {
  await refusal.start();
  refusing = refusal;
  await expect(admin.set('probe', '1')).rejects.toThrow(refusal.reply);
}

async function stopRefusing(): Promise<void> {
  const refusal = refusing;
  refusing = null;
  await refusal?.stop();
}

beforeAll(async () => {
  redis = await startRedisServer({
    extraArgs: ['--save', '3600 1', '--enable-protected-configs', 'yes'],
  });
  admin = new Redis(redis.url);
  service = await startTestService(
    testConfig(redis.url, {
      ACCOUNT_INITIAL_BALANCE_CENTS: String(INITIAL_BALANCE_CENTS),
      LOCK_TTL_MS: '1000',
      LOCK_WAIT_MS: String(LOCK_WAIT_MS),
      // The test runs the sweep itself.
      RECOVERY_INTERVAL_MS: '3600000',
    }),
    {
      faultPoint: async (name, { token }) => {
        const refusal = current;
        if (refuseAt.get(token) !== name || refusal === null) return;
        refuseAt.delete(token);
        await startRefusing(refusal);
      },
    },
  );
  auditor = storeAuditor({
    redisUrl: redis.url,
    keyPrefix: service.config.keyPrefix,
    initialBalanceCents: INITIAL_BALANCE_CENTS,
  });
});

afterAll(async () => {
  await stopRefusing();
  await service.stop();
  await auditor.close();
  await admin.quit();
  await redis.destroy();
});

const pay = (token: string) =>
  service.request('POST', '/payments', {
    body: { accountId: `acct-${token}`, amountCents: 1_000 },
    headers: { 'Idempotency-Key': token },
  });

type Reply = Awaited<ReturnType<TestService['request']>>;

async function expectUnavailable(send: () => Promise<Reply>): Promise<void> {
  const started = Date.now();
  const reply = await send();
  expect(reply.body).toEqual({
    error: { code: 'unavailable', message: expect.any(String) as unknown },
  });
  expect(reply.status).toBe(503);
  expect(reply.headers.get('retry-after')).toMatch(/^\d+$/);
  expect(Date.now() - started).toBeLessThan(PROMPT_MS);
  expect(JSON.stringify(reply.body)).not.toMatch(/MISCONF|NOREPLICAS|ioredis/);
}

/** Every key with its type and size. */
async function storedKeys(): Promise<string[]> {
  const keys = (await admin.keys('*')).filter((key) => key !== 'probe').sort();
  return Promise.all(
    keys.map(async (key) => `${key} ${await admin.type(key)} ${await admin.memory('USAGE', key)}`),
  );
}

async function tokenAudit(token: string) {
  return (await auditor.audit({ settled: false })).tokens.get(token);
}

async function sweep(): Promise<void> {
  const done = await pollUntil(async () => {
    await service.recovery?.runOnce();
    const audit = await auditor.audit({ settled: false });
    return audit.inFlight === 0 && audit.outbox === 0;
  }, 20_000);
  expect(done).toBe(true);
}

for (const refusal of [failedSave, missingReplicas]) {
  describe(`Redis refuses writes: ${refusal.name}`, () => {
    beforeAll(() => {
      current = refusal;
    });
    afterEach(async () => {
      refuseAt.clear();
      await stopRefusing();
    });

    it('answers 503 unavailable at once to a new payment, a seed payment and a cancel, and writes nothing', async () => {
      const { tag } = refusal;
      const paid = `${tag}-paid-before`;
      expect((await pay(paid)).status).toBe(201);
      // The work after the answer (arm the timer, clear what was owed, unlock) ends first.
      expect(await pollUntil(async () => (await admin.keys('*:lock')).length === 0, 5_000)).toBe(
        true,
      );
      const keysBefore = await storedKeys();
      await startRefusing(refusal);

      await expectUnavailable(() => pay(`${tag}-new`));
      await expectUnavailable(() =>
        service.request('POST', `/PaymentProcessor/${tag}-seed/makePayment`, {
          body: { accountId: 'acct-seed', amountCents: 100 },
        }),
      );
      await expectUnavailable(() => service.request('POST', `/payments/${tag}-cancel/cancel`));
      await expectUnavailable(() => service.request('POST', `/payments/${paid}/cancel`));
      // Reads and the replay of a settled payment need no write.
      const replay = await pay(paid);
      expect(replay.status).toBe(200);
      expect(replay.headers.get('idempotent-replayed')).toBe('true');
      expect(await storedKeys()).toEqual(keysBefore);

      await stopRefusing();
      expect((await pay(`${tag}-new`)).status).toBe(201);
      expect(await tokenAudit(`${tag}-new`)).toMatchObject({ status: 'processed', withdrawals: 1 });
      expect(await tokenAudit(paid)).toMatchObject({ status: 'processed', withdrawals: 1 });
    });

    for (const step of ['after-persist-intent', 'after-ledger'] as const) {
      it(`answers 503 when writes stop ${step}; the retry and the sweep charge it once`, async () => {
        const token = `${refusal.tag}-${step}`;
        refuseAt.set(token, step);
        await expectUnavailable(() => pay(token));
        await stopRefusing();
        const retry = await pay(token);
        expect(retry.status).toBe(200);
        expect(retry.headers.get('idempotent-replayed')).toBe('true');
        await sweep();
        expect(await tokenAudit(token)).toMatchObject({ status: 'processed', withdrawals: 1 });
        expect((await auditor.audit({ settled: true })).problems).toEqual([]);
      });
    }
  });
}
