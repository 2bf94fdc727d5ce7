/**
 * Redis full: at `maxmemory` with `maxmemory-policy noeviction`, Redis
 * refuses every command that could grow memory with an OOM error (plain
 * commands, the first write of a Lua script, the lock's SET). A private
 * redis-server with a small maxmemory is filled with a filler string until
 * writes fail, at chosen steps of a payment or under load.
 *
 * While it is full, a request that needs a write gets a 503 `storage_full`
 * with Retry-After, at once (not after the lock wait), never a 500 nor any
 * other final error. Once memory is freed, the retried requests and the
 * recovery sweep finish what the refused writes interrupted, and the store
 * shows: every token charged at most once, every answer a client was given
 * still true, and no token charged whose client was told a final error.
 */
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { PaymentStep as FaultPointName } from '../../src/payments/payments.ts';
import { RedlockKeyLock } from '../../src/runtime/redis/key-lock.ts';
import { iterations, reportScenario } from '../support/fault-report.ts';
import {
  describeAnswer,
  kindOf,
  lostAnswers,
  PaymentLoad,
  pollUntil,
  unexpectedAnswers,
  type Answer,
  type TokenRun,
} from '../support/payment-load.ts';
import { startRedisServer, type TestRedisServer } from '../support/redis-server.ts';
import { startTestService, testConfig, type TestService } from '../support/service-harness.ts';
import { storeAuditor, type StoreAudit, type StoreAuditor } from '../support/store-audit.ts';

const INITIAL_BALANCE_CENTS = 100_000;
/** Long, so that an answer that waited for the lock is told apart from one given at once. */
const LOCK_WAIT_MS = 5_000;
/** Every answer while Redis is full comes back well within the lock wait. */
const PROMPT_MS = LOCK_WAIT_MS / 2;
const MAXMEMORY = '32mb';
const FILLER_KEY = 'filler';
const FILLER_CHUNK = 'x'.repeat(256 * 1024);
const CLIENTS = 8;
const RECOVERY_TIMEOUT_MS = 20_000;

let redis: TestRedisServer;
let admin: Redis;
let service: TestService;
let auditor: StoreAuditor;
/** Tokens whose request fills Redis when it reaches the named step. */
const fillAt = new Map<string, FaultPointName>();

function isOom(error: unknown): boolean {
  return error instanceof Error && /^OOM /.test(error.message);
}

/** Appends to the filler until Redis refuses the write: it is then over maxmemory. */
async function fill(): Promise<void> {
  for (;;) {
    try {
      await admin.append(FILLER_KEY, FILLER_CHUNK);
    } catch (error) {
      if (isOom(error)) return;
      throw error;
    }
  }
}

/** DEL is allowed over maxmemory; memory is back below it at once. */
async function free(): Promise<void> {
  await admin.del(FILLER_KEY);
}

beforeAll(async () => {
  redis = await startRedisServer({
    extraArgs: ['--maxmemory', MAXMEMORY, '--maxmemory-policy', 'noeviction'],
  });
  admin = new Redis(redis.url);
  service = await startTestService(
    testConfig(redis.url, {
      ACCOUNT_INITIAL_BALANCE_CENTS: String(INITIAL_BALANCE_CENTS),
      LOCK_TTL_MS: '1000',
      LOCK_WAIT_MS: String(LOCK_WAIT_MS),
      // The test runs the sweep itself, after the clients' retries.
      RECOVERY_INTERVAL_MS: '3600000',
    }),
    {
      faultPoint: async (name, { token }) => {
        if (fillAt.get(token) !== name) return;
        fillAt.delete(token);
        await fill();
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
  await free();
  await service.stop();
  await auditor.close();
  await admin.quit();
  await redis.destroy();
});

const pay = (token: string, amountCents = 1_000) =>
  service.request('POST', '/payments', {
    body: { accountId: `acct-${token}`, amountCents },
    headers: { 'Idempotency-Key': token },
  });

type Reply = Awaited<ReturnType<TestService['request']>>;

/** Sends the request and checks it was refused at once with a retryable 503 storage_full. */
async function expectStorageFull(send: () => Promise<Reply>): Promise<void> {
  const started = Date.now();
  const reply = await send();
  const took = Date.now() - started;
  expect(reply.body).toEqual({
    error: { code: 'storage_full', message: expect.any(String) as unknown },
  });
  expect(reply.status).toBe(503);
  expect(reply.headers.get('retry-after')).toMatch(/^\d+$/);
  expect(took).toBeLessThan(PROMPT_MS);
  expect(JSON.stringify(reply.body)).not.toMatch(/OOM|maxmemory|ioredis/);
}

/** Runs the sweep until nothing is owed or in flight. */
async function sweep(): Promise<void> {
  const done = await pollUntil(async () => {
    await service.recovery?.runOnce();
    const audit = await auditor.audit({ settled: false });
    return audit.inFlight === 0 && audit.outbox === 0;
  }, RECOVERY_TIMEOUT_MS);
  if (!done) throw new Error(`recovery did not finish in ${RECOVERY_TIMEOUT_MS} ms`);
}

async function tokenAudit(token: string) {
  return (await auditor.audit({ settled: false })).tokens.get(token);
}

describe('Redis full (maxmemory reached, noeviction)', () => {
  describe('while full', () => {
    beforeAll(async () => {
      expect((await pay('paid-before-full')).status).toBe(201);
      await fill();
    });
    afterAll(free);

    it('refuses a new payment with 503 storage_full and Retry-After at once, not after the lock wait', async () => {
      await expectStorageFull(() => pay('new-while-full'));
    });

    it('refuses concurrent new payments, the seed routes and a cancel the same way', async () => {
      await Promise.all([
        ...Array.from({ length: 10 }, (_, i) => expectStorageFull(() => pay(`burst-${i}`))),
        expectStorageFull(() =>
          service.request('POST', '/PaymentProcessor/seed-while-full/makePayment', {
            body: { accountId: 'acct-seed', amountCents: 100 },
          }),
        ),
        expectStorageFull(() => service.request('POST', '/payments/cancel-while-full/cancel')),
      ]);
    });

    it('still answers the replay of a settled payment and reads', async () => {
      const replay = await pay('paid-before-full');
      expect(replay.status).toBe(200);
      expect(replay.headers.get('idempotent-replayed')).toBe('true');
      expect((await service.request('GET', '/payments/paid-before-full')).status).toBe(200);
    });

    it('refuses the token lock at once with storage_full', async () => {
      const connection = new Redis(redis.url);
      try {
        const lock = new RedlockKeyLock(connection, {
          ttlMs: 1_000,
          waitMs: LOCK_WAIT_MS,
          resource: (token) => `lock-test:{${token}}:lock`,
        });
        const started = Date.now();
        await expect(
          lock.withLock('lock-while-full', () => Promise.resolve()),
        ).rejects.toMatchObject({ code: 'storage_full', retryable: true });
        expect(Date.now() - started).toBeLessThan(PROMPT_MS);
      } finally {
        await connection.quit();
      }
    });
  });

  describe('once memory is freed', () => {
    // A failed assertion must not leave Redis full for the next test.
    afterEach(free);

    it('charges a refused payment on its retry: 201, one withdrawal', async () => {
      await fill();
      await expectStorageFull(() => pay('retried-after-free'));
      await free();
      const retry = await pay('retried-after-free');
      expect(retry.status).toBe(201);
      expect(await tokenAudit('retried-after-free')).toMatchObject({
        status: 'processed',
        withdrawals: 1,
      });
    });
  });

  describe('when Redis fills up in the middle of a payment', () => {
    afterEach(async () => {
      fillAt.clear();
      await free();
    });

    const steps: { step: FaultPointName; what: string; charged: number; answer: string }[] = [
      { step: 'after-persist-intent', what: 'the ledger withdrawal', charged: 0, answer: '503' },
      { step: 'after-ledger', what: 'the outcome write', charged: 1, answer: '503' },
      // The charge is written, owing the timer: the answer does not wait for it.
      { step: 'after-persist-outcome', what: 'the expiry timer', charged: 1, answer: '201' },
    ];

    /** The first payment's answer: 503 storage_full, or 201 when only the timer is left. */
    async function expectFirstAnswer(answer: string, token: string): Promise<void> {
      if (answer === '503') {
        await expectStorageFull(() => pay(token));
        return;
      }
      const paid = await pay(token);
      expect(paid.status).toBe(201);
      expect(paid.body).toMatchObject({ status: 'processed' });
    }

    for (const { step, what, charged, answer } of steps) {
      it(`answers ${answer} when ${what} is refused; the retry answers 200 replayed with one withdrawal`, async () => {
        const token = `mid-retry-${step}`;
        fillAt.set(token, step);
        await expectFirstAnswer(answer, token);
        expect(await tokenAudit(token)).toMatchObject({ withdrawals: charged });
        await free();
        const retry = await pay(token);
        expect(retry.status).toBe(200);
        expect(retry.headers.get('idempotent-replayed')).toBe('true');
        expect(retry.body).toMatchObject({ status: 'processed' });
        await sweep();
        expect(await tokenAudit(token)).toMatchObject({ status: 'processed', withdrawals: 1 });
        expect((await auditor.audit({ settled: true })).problems).toEqual([]);
      });

      it(`answers ${answer} when ${what} is refused; the sweep completes it and the retry answers 200 replayed`, async () => {
        const token = `mid-sweep-${step}`;
        fillAt.set(token, step);
        await expectFirstAnswer(answer, token);
        await free();
        await sweep();
        expect(await tokenAudit(token)).toMatchObject({ status: 'processed', withdrawals: 1 });
        const retry = await pay(token);
        expect(retry.status).toBe(200);
        expect(retry.headers.get('idempotent-replayed')).toBe('true');
        expect(retry.body).toMatchObject({ status: 'processed' });
        expect(await tokenAudit(token)).toMatchObject({ withdrawals: 1 });
        expect((await auditor.audit({ settled: true })).problems).toEqual([]);
      });
    }
  });

  describe('under load', () => {
    afterEach(free);

    /** Statuses that tell the client what happened and that a retry will not change. */
    const isFinalError = (answer: Answer) =>
      answer.status >= 400 && kindOf(answer) !== 'unavailable' && kindOf(answer) !== 'busy';

    /** Tokens that ended up charged although one of their answers was a final error. */
    function chargedAfterFinalError(runs: readonly TokenRun[], audit: StoreAudit): string[] {
      return runs.flatMap((run) => {
        const token = audit.tokens.get(run.token);
        if (token === undefined || token.withdrawals === 0) return [];
        // A payment retried after a cancel refunded its charge is rightly told so.
        const finals = run.answers.filter(
          (a) => isFinalError(a) && !(a.step === 'pay' && a.code === 'payment_refunded'),
        );
        return finals.map((a) => `${run.token}: charged, but told ${describeAnswer(a)}`);
      });
    }

    it('never answers 500, refuses at once, and loses or doubles no charge once memory is freed and clients retry', async () => {
      const rounds = iterations(1, 5);
      let violations = 0;
      const totals = { storageFull: 0, leftInFlight: 0, acknowledged: 0 };
      for (let round = 0; round < rounds; round++) {
        const load = new PaymentLoad({
          url: service.url,
          runId: `full${round}${Date.now().toString(36)}`,
          clients: CLIENTS,
          attemptsPerStep: 3,
          retryBackoffMs: 20,
          requestTimeoutMs: 60_000,
        });
        load.start();
        expect(await pollUntil(() => load.count('acknowledged') >= 30, 30_000)).toBe(true);
        const filledAt = Date.now();
        await fill();
        const refused = () => load.count('unavailable') + load.count('busy');
        const refusedBefore = refused();
        expect(await pollUntil(() => refused() >= refusedBefore + 40, 60_000)).toBe(true);
        await load.stop();
        const freedAt = Date.now();
        await free();
        totals.leftInFlight += (await auditor.audit({ settled: false })).inFlight;
        await load.retryUnfinished();
        await sweep();
        const audit = await auditor.audit({ settled: true });

        const answers = load.answers();
        const whileFull = answers.filter((a) => a.sentAt >= filledAt && a.answeredAt <= freedAt);
        const slow = whileFull.filter((a) => a.answeredAt - a.sentAt >= PROMPT_MS);
        const refusals = answers.filter((a) => a.status === 503);
        const notStorageFull = refusals.filter((a) => a.code !== 'storage_full');
        const unanswered = load.runs.filter((run) => {
          const last = run.answers.at(-1);
          return last !== undefined && kindOf(last) !== 'acknowledged';
        });
        const found = [
          ...audit.problems,
          ...unexpectedAnswers(answers).map((a) => `unexpected answer: ${describeAnswer(a)}`),
          ...slow.map((a) => `not at once: ${describeAnswer(a)}`),
          ...notStorageFull.map((a) => `503 other than storage_full: ${describeAnswer(a)}`),
          ...lostAnswers(load.runs, audit.tokens).map(
            (l) => `${l.token}: ${describeAnswer(l.answer)}, now ${l.found ?? 'no record'}`,
          ),
          ...chargedAfterFinalError(load.runs, audit),
          ...unanswered.map((run) => `${run.token}: no acknowledged answer after the retries`),
        ];
        if (found.length > 0) console.error(found.slice(0, 30).join('\n'));
        violations += found.length;
        totals.storageFull += refusals.length;
        totals.acknowledged += load.count('acknowledged');
      }
      reportScenario('redis-full under load', {
        iterations: rounds,
        violations,
        details: {
          'storage_full answers': totals.storageFull,
          'tokens left in flight': totals.leftInFlight,
          acknowledged: totals.acknowledged,
        },
      });
      expect(violations).toBe(0);
    }, 180_000);
  });
});
