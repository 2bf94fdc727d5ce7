/**
 * Crash and resume. An instance fails a request at a named point of the
 * request path (the charge or refund intent stored, or the ledger moved but
 * the outcome not yet stored) and is stopped, as a crashed process would be.
 * Instances without faults, sharing the key prefix, must then complete the
 * interrupted step exactly once: on the client's retry, or by the recovery
 * sweep when nobody comes back.
 */
import type { Queue } from 'bullmq';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { Config } from '../../src/config.ts';
import { Redis } from 'ioredis';
import type { PaymentStep as FaultPointName } from '../../src/payments/payments.ts';
import {
  expiryQueue,
  startTestService,
  testConfig,
  waitFor,
  type TestService,
} from '../support/service-harness.ts';
import { expiryJobIdOf, type TimerJobData as ExpiryJobData } from '../support/timer-jobs.ts';

const INITIAL_BALANCE_CENTS = 100_000;
const AMOUNT_CENTS = 2_300;
/** Long enough that no sweep runs unless a test asks for one. */
const NO_SWEEP_MS = String(10 * 60 * 1000);

interface PaymentView {
  readonly status: string;
}

interface AccountView {
  readonly balanceCents: number;
  readonly ledger: readonly { kind: string; token: string }[];
}

type Step = 'pay' | 'cancel with refund';

const CASES: readonly { step: Step; point: FaultPointName }[] = [
  { step: 'pay', point: 'after-persist-intent' },
  { step: 'pay', point: 'after-ledger' },
  { step: 'cancel with refund', point: 'after-persist-intent' },
  { step: 'cancel with refund', point: 'after-ledger' },
];

// Clients see every internal step (charging, refunding) as processing.
const IN_FLIGHT: Record<Step, string> = { pay: 'processing', 'cancel with refund': 'processing' };
const COMPLETED: Record<Step, string> = { pay: 'processed', 'cancel with refund': 'refunded' };

describe('resuming steps a crash interrupted', () => {
  let redisUrl: string;
  let base: Config;
  /** An instance without faults that outlives the crashed ones. */
  let survivor: TestService;
  let queue: Queue<ExpiryJobData>;
  let redis: Redis;
  const started: TestService[] = [];

  /** Another instance sharing the key prefix. */
  async function startInstance(
    env: Record<string, string>,
    faultPoint?: (name: FaultPointName) => void,
  ): Promise<TestService> {
    const service = await startTestService(
      testConfig(redisUrl, {
        REDIS_KEY_PREFIX: base.keyPrefix,
        LOCK_TTL_MS: String(base.lockTtlMs),
        RECOVERY_INTERVAL_MS: NO_SWEEP_MS,
        ACCOUNT_INITIAL_BALANCE_CENTS: String(INITIAL_BALANCE_CENTS),
        ...env,
      }),
      { faultPoint },
    );
    started.push(service);
    return service;
  }

  beforeAll(async () => {
    redisUrl = inject('redisUrl');
    // The sweep leaves tokens alone for LOCK_TTL_MS (a live request may own them): keep it short.
    base = testConfig(redisUrl, { LOCK_TTL_MS: '200' });
    survivor = await startInstance({});
    queue = expiryQueue(redisUrl, base);
    redis = new Redis(redisUrl);
  });

  afterAll(async () => {
    await Promise.all(started.map((s) => s.stop()));
    await queue.close();
    // The harness hands the queue a connection of its own; close() leaves it open.
    await queue.disconnect();
    redis.disconnect();
  });

  const pay = (service: TestService, token: string) =>
    service.request('POST', '/payments', {
      headers: { 'Idempotency-Key': token },
      body: { accountId: `acct-${token}`, amountCents: AMOUNT_CENTS },
    });
  const cancel = (service: TestService, token: string) =>
    service.request('POST', `/payments/${token}/cancel`);
  const send = (step: Step, service: TestService, token: string) =>
    step === 'pay' ? pay(service, token) : cancel(service, token);

  async function statusOf(token: string): Promise<string | null> {
    const response = await survivor.request('GET', `/payments/${token}`);
    return response.status === 200 ? (response.body as PaymentView).status : null;
  }

  async function movementsOf(token: string) {
    const response = await survivor.request('GET', `/accounts/acct-${token}`);
    const { balanceCents, ledger } = response.body as AccountView;
    const mine = ledger.filter((e) => e.token === token);
    return {
      balanceCents,
      withdrawals: mine.filter((e) => e.kind === 'withdrawal').length,
      deposits: mine.filter((e) => e.kind === 'deposit').length,
    };
  }

  async function timerStateOf(token: string): Promise<string | null> {
    const jobId = await expiryJobIdOf(redis, base.keyPrefix, token);
    if (jobId === null) return null;
    const job = await queue.getJob(jobId);
    return job === undefined ? null : await job.getState();
  }

  /**
   * Runs `step` for `token` on an instance that fails at `point`, then stops
   * that instance. Leaves the token with its step in flight.
   */
  async function crash(step: Step, point: FaultPointName, token: string): Promise<void> {
    // The charge a refund undoes is made without faults.
    if (step === 'cancel with refund') expect((await pay(survivor, token)).status).toBe(201);
    let armed = true;
    const crashing = await startInstance({}, (name) => {
      if (armed && name === point) {
        armed = false;
        throw new Error(`simulated crash at ${name}`);
      }
    });
    const response = await send(step, crashing, token);
    await crashing.stop();

    expect(armed).toBe(false);
    expect(response.status).toBeGreaterThanOrEqual(500);
    expect(await statusOf(token)).toBe(IN_FLIGHT[step]);
    // The ledger moved only if the crash came after it did.
    const moved = point === 'after-ledger' ? 1 : 0;
    expect(await movementsOf(token)).toMatchObject(
      step === 'pay' ? { withdrawals: moved, deposits: 0 } : { withdrawals: 1, deposits: moved },
    );
    // A charge that never completed has no expiry timer yet.
    if (step === 'pay') expect(await timerStateOf(token)).toBeNull();
  }

  /** Money moved exactly once each way the completed step requires; the timer is set. */
  async function expectCompleted(step: Step, token: string): Promise<void> {
    expect(await statusOf(token)).toBe(COMPLETED[step]);
    expect(await movementsOf(token)).toEqual(
      step === 'pay'
        ? { withdrawals: 1, deposits: 0, balanceCents: INITIAL_BALANCE_CENTS - AMOUNT_CENTS }
        : { withdrawals: 1, deposits: 1, balanceCents: INITIAL_BALANCE_CENTS },
    );
    // Armed right after the answer.
    await waitFor(async () => ((await timerStateOf(token)) === 'delayed' ? true : undefined), {
      what: `the expiry timer of ${token}`,
    });
  }

  describe.each(CASES)('a $step interrupted at $point', ({ step, point }) => {
    const slug = `${step === 'pay' ? 'pay' : 'refund'}-${point}`;

    it('is completed by the client retrying it, moving money once', async () => {
      const token = `retry-${slug}`;
      await crash(step, point, token);

      const retried = await send(step, survivor, token);
      expect([200, 201]).toContain(retried.status);
      expect((retried.body as PaymentView).status).toBe(COMPLETED[step]);
      await expectCompleted(step, token);
    });

    it('is completed by a recovery pass when nobody retries it', async () => {
      const token = `sweep-${slug}`;
      await crash(step, point, token);

      const recovery = survivor.recovery;
      if (recovery === null) throw new Error('the survivor runs no recovery sweep');
      await waitFor(
        async () => {
          await recovery.runOnce();
          return (await statusOf(token)) === COMPLETED[step] ? true : undefined;
        },
        { what: `${token} to be recovered` },
      );
      await expectCompleted(step, token);
      // Nothing is left owed: a further pass moves no money.
      await recovery.runOnce();
      await expectCompleted(step, token);
    });

    it('is completed by the periodic sweep of a running instance', async () => {
      const token = `periodic-${slug}`;
      await crash(step, point, token);

      const sweeper = await startInstance({ RECOVERY_INTERVAL_MS: '50' });
      await waitFor(async () => ((await statusOf(token)) === COMPLETED[step] ? true : undefined), {
        what: `${token} to be recovered by the sweep`,
      });
      await sweeper.stop();
      await expectCompleted(step, token);
    });
  });

  it('schedules the expiry timer a crash lost on the next access to the token', async () => {
    const token = 'retry-pay-after-persist-outcome';
    let armed = true;
    const crashing = await startInstance({}, (name) => {
      if (armed && name === 'after-persist-outcome') {
        armed = false;
        throw new Error(`simulated crash at ${name}`);
      }
    });
    const response = await pay(crashing, token);
    await crashing.stop();
    expect(response.status).toBeGreaterThanOrEqual(500);
    // The charge is recorded, but the timer that should follow it was never set.
    expect(await statusOf(token)).toBe('processed');
    expect(await timerStateOf(token)).toBeNull();

    const retried = await pay(survivor, token);
    expect(retried.status).toBe(200);
    await expectCompleted('pay', token);
  });
});
