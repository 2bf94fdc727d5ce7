/**
 * Expiry timers as real BullMQ delayed jobs, and the retention that follows.
 * Two instances share one key prefix: `fast` creates tokens whose timers fire
 * within the test, `slow` creates tokens whose timers only fire when a test
 * fires them, for checks that must not race a timer.
 */
import type { Queue } from 'bullmq';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { Redis } from 'ioredis';
import {
  expiryQueue,
  startTestService,
  testConfig,
  waitFor,
  type TestService,
} from '../support/service-harness.ts';
import {
  expiryJobData,
  expiryJobIdOf,
  fireNow,
  type TimerJobData as ExpiryJobData,
} from '../support/timer-jobs.ts';

const INITIAL_BALANCE_CENTS = 100_000;
const AMOUNT_CENTS = 700;
const EXPIRY_MS = 500;
const RETENTION_MS = 500;
const DAY_MS = 24 * 3600 * 1000;

interface PaymentView {
  readonly token: string;
  readonly status: string;
  readonly expiresAt: string | null;
  readonly removeAt: string | null;
  readonly history: readonly { event: string; state: string }[];
}

interface AccountView {
  readonly balanceCents: number;
  readonly ledger: readonly { operationId: string; kind: string; token: string }[];
}

describe('expiry timers and retention', () => {
  let fast: TestService;
  let slow: TestService;
  let queue: Queue<ExpiryJobData>;
  let redis: Redis;

  beforeAll(async () => {
    const redisUrl = inject('redisUrl');
    const fastConfig = testConfig(redisUrl, {
      PAYMENT_EXPIRY_MS: String(EXPIRY_MS),
      EXPIRED_RETENTION_MS: String(RETENTION_MS),
      ACCOUNT_INITIAL_BALANCE_CENTS: String(INITIAL_BALANCE_CENTS),
    });
    const slowConfig = testConfig(redisUrl, {
      REDIS_KEY_PREFIX: fastConfig.keyPrefix,
      PAYMENT_EXPIRY_MS: String(DAY_MS),
      EXPIRED_RETENTION_MS: String(DAY_MS),
      ACCOUNT_INITIAL_BALANCE_CENTS: String(INITIAL_BALANCE_CENTS),
    });
    fast = await startTestService(fastConfig);
    slow = await startTestService(slowConfig);
    queue = expiryQueue(redisUrl, fastConfig);
    redis = new Redis(redisUrl);
  });

  afterAll(async () => {
    await Promise.all([fast.stop(), slow.stop()]);
    await queue.close();
    // The harness hands the queue a connection of its own; close() leaves it open.
    await queue.disconnect();
    redis.disconnect();
  });

  /** The job id of the token's live expiry timer, as its record holds it. */
  async function timerJobOf(token: string): Promise<string> {
    const jobId = await expiryJobIdOf(redis, fast.config.keyPrefix, token);
    if (jobId === null) throw new Error(`${token} has no expiry timer`);
    return jobId;
  }

  const pay = (service: TestService, token: string, accountId = `acct-${token}`) =>
    service.request('POST', '/payments', {
      headers: { 'Idempotency-Key': token },
      body: { accountId, amountCents: AMOUNT_CENTS },
    });
  const cancel = (service: TestService, token: string) =>
    service.request('POST', `/payments/${token}/cancel`);

  async function paymentOf(token: string): Promise<PaymentView> {
    const response = await fast.request('GET', `/payments/${token}`);
    expect(response.status).toBe(200);
    return response.body as PaymentView;
  }

  async function accountOf(accountId: string): Promise<AccountView> {
    const response = await fast.request('GET', `/accounts/${accountId}`);
    expect(response.status).toBe(200);
    return response.body as AccountView;
  }

  const waitForStatus = (token: string, status: string) =>
    waitFor(
      async () => {
        const response = await fast.request('GET', `/payments/${token}`);
        return response.status === 200 && (response.body as PaymentView).status === status
          ? (response.body as PaymentView)
          : undefined;
      },
      { what: `${token} to be ${status}` },
    );

  const waitForRemoval = (token: string) =>
    waitFor(
      async () =>
        (await fast.request('GET', `/payments/${token}`)).status === 404 ? true : undefined,
      { what: `${token} to be removed` },
    );

  async function lifeOf(token: string): Promise<string> {
    const snapshot = await fast.payments.get(token);
    if (snapshot === null) throw new Error(`${token} has no record`);
    return snapshot.context.lifeId;
  }

  /** Polls until a job added by the test has run; fails fast if it failed. */
  async function waitUntilCompleted(jobId: string): Promise<void> {
    await waitFor(
      async () => {
        const job = await queue.getJob(jobId);
        if (job?.failedReason) throw new Error(`job ${jobId} failed: ${job.failedReason}`);
        return (await job?.getState()) === 'completed' ? true : undefined;
      },
      { what: `job ${jobId} to complete` },
    );
  }

  const states = (view: PaymentView) => view.history.map((h) => h.state);

  it('expires a processed payment when its timer fires, keeping the charge', async () => {
    const token = 'exp-processed';
    expect((await pay(fast, token)).status).toBe(201);
    const view = await waitForStatus(token, 'expired');
    expect(states(view)).toEqual(['pending', 'charging', 'processed', 'expired']);
    expect(view.history.at(-1)).toMatchObject({ event: 'EXPIRE', state: 'expired' });
    expect((await accountOf(`acct-${token}`)).balanceCents).toBe(
      INITIAL_BALANCE_CENTS - AMOUNT_CENTS,
    );
  });

  it('expires a declined token one window after its decline, then forgets it', async () => {
    const token = 'exp-declined';
    const declined = await fast.request('POST', '/payments', {
      headers: { 'Idempotency-Key': token },
      body: { accountId: `acct-${token}`, amountCents: INITIAL_BALANCE_CENTS + 1 },
    });
    expect(declined.status).toBe(402);
    const view = await waitForStatus(token, 'expired');
    expect(states(view)).toEqual(['pending', 'charging', 'pending', 'expired']);
    await waitForRemoval(token);
    expect((await accountOf(`acct-${token}`)).balanceCents).toBe(INITIAL_BALANCE_CENTS);
  });

  it("replaces a declined token's timer by one for the later deadline once the token is charged", async () => {
    const token = 'exp-declined-then-charged';
    const declined = await slow.request('POST', '/payments', {
      headers: { 'Idempotency-Key': token },
      body: { accountId: `acct-${token}`, amountCents: INITIAL_BALANCE_CENTS + 1 },
    });
    expect(declined.status).toBe(402);
    const atDecline = await timerJobOf(token);
    // Charged later: the deadline moves on, and the timer with it.
    expect((await pay(slow, token)).status).toBe(201);
    const charged = await paymentOf(token);
    const expiresAt = Date.parse(charged.expiresAt ?? '');
    const atCharge = await timerJobOf(token);
    expect(atCharge).not.toBe(atDecline);
    const job = await queue.getJob(atCharge);
    expect(await job?.getState()).toBe('delayed');
    expect(Math.abs((job?.data.dueAt ?? 0) - expiresAt)).toBeLessThan(1_000);
    // The timer set at the decline, delivered now, is not obeyed.
    const superseded = await queue.getJob(atDecline);
    expect(await superseded?.getState()).toBe('delayed');
    if (superseded !== undefined) await fireNow(superseded);
    await waitFor(async () => ((await queue.getJob(atDecline)) === undefined ? true : undefined), {
      what: `the timer ${atDecline} to be delivered`,
    });
    expect((await paymentOf(token)).status).toBe('processed');
  });

  it('expires a cancelled token when its timer fires', async () => {
    const token = 'exp-cancelled';
    const cancelled = await cancel(fast, token);
    expect(cancelled).toMatchObject({ status: 200, body: { status: 'cancelled' } });
    const view = await waitForStatus(token, 'expired');
    expect(states(view)).toEqual(['pending', 'cancelled', 'expired']);
  });

  it('expires a refunded payment when its timer fires, keeping the refund', async () => {
    const token = 'exp-refunded';
    expect((await pay(fast, token)).status).toBe(201);
    expect(await cancel(fast, token)).toMatchObject({ status: 200, body: { status: 'refunded' } });
    const view = await waitForStatus(token, 'expired');
    expect(states(view)).toEqual([
      'pending',
      'charging',
      'processed',
      'refunding',
      'refunded',
      'expired',
    ]);
    expect((await accountOf(`acct-${token}`)).balanceCents).toBe(INITIAL_BALANCE_CENTS);
  });

  it('forgets an expired token after retention, then charges it again as a new token', async () => {
    const token = 'exp-reused';
    const accountId = `acct-${token}`;
    expect((await pay(fast, token)).status).toBe(201);
    const firstLife = await lifeOf(token);
    await waitForStatus(token, 'expired');
    await waitForRemoval(token);

    const again = await pay(fast, token);
    expect(again.status).toBe(201);
    expect(again.body).toMatchObject({ token, status: 'processed' });
    expect(await lifeOf(token)).not.toBe(firstLife);
    // A new life: its history starts over.
    expect(states(await paymentOf(token)).slice(0, 3)).toEqual([
      'pending',
      'charging',
      'processed',
    ]);

    const { balanceCents, ledger } = await accountOf(accountId);
    const charges = ledger.filter((e) => e.kind === 'withdrawal' && e.token === token);
    expect(charges).toHaveLength(2);
    expect(new Set(charges.map((e) => e.operationId)).size).toBe(2);
    expect(balanceCents).toBe(INITIAL_BALANCE_CENTS - 2 * AMOUNT_CENTS);
  });

  it('ignores a duplicate expiry delivered after the token expired', async () => {
    const token = 'exp-duplicate';
    expect((await pay(slow, token)).status).toBe(201);
    const lifeId = await lifeOf(token);
    // Fire the real timer now rather than in a day.
    const timer = await queue.getJob(await timerJobOf(token));
    expect(await timer?.getState()).toBe('delayed');
    if (timer !== undefined) await fireNow(timer);
    const expired = await waitForStatus(token, 'expired');

    const duplicate = await queue.add('EXPIRE', expiryJobData(token, lifeId, timer?.data.seq ?? 0));
    await waitUntilCompleted(duplicate.id ?? '');
    expect(await paymentOf(token)).toEqual(expired);
    // And an expired token answers as expired, still without change.
    expect((await pay(slow, token)).status).toBe(410);
    expect((await cancel(slow, token)).status).toBe(410);
    expect(await paymentOf(token)).toEqual(expired);
  });

  it('ignores an expiry timer from an earlier life of a reused token', async () => {
    const token = 'exp-stale-life';
    expect((await pay(fast, token)).status).toBe(201);
    const earlierLife = await lifeOf(token);
    await waitForStatus(token, 'expired');
    await waitForRemoval(token);

    // The next life's timer is a day away: nothing but the stale timer can move it.
    expect((await pay(slow, token)).status).toBe(201);
    const before = await paymentOf(token);
    expect(before.status).toBe('processed');

    const stale = await queue.add('EXPIRE', expiryJobData(token, earlierLife, 1));
    await waitUntilCompleted(stale.id ?? '');
    expect(await paymentOf(token)).toEqual(before);
    expect(await lifeOf(token)).not.toBe(earlierLife);
  });

  it('keeps one timer job per token life however often it is armed', async () => {
    const token = 'exp-one-job';
    expect((await pay(slow, token)).status).toBe(201);
    const timersOf = async () => (await queue.getDelayed()).filter((job) => job.data.key === token);

    const [job] = await timersOf();
    expect(job?.id).toBe(await timerJobOf(token));

    // Armed again as a replay of the write's owed actions does, and replayed
    // payments on both instances.
    if (job !== undefined) await queue.add(job.name, job.data, { jobId: job.id, delay: 60_000 });
    expect((await pay(fast, token)).status).toBe(200);
    expect((await pay(slow, token)).status).toBe(200);

    const jobs = await timersOf();
    expect(jobs.map((j) => j.id)).toEqual([job?.id]);
    expect(jobs[0]?.timestamp).toBe(job?.timestamp);
  });
});
