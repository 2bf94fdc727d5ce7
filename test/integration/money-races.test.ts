/**
 * Races of the money routes across two service instances sharing one Redis:
 * whatever the interleaving, each answer is one a serial order gives and the
 * account's available and held funds are exact.
 */
import type { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { CAPTURE_WINDOW_TIMER_ID } from '../../src/machine/payment.machine.ts';
import {
  expiryQueue,
  startTestService,
  testConfig,
  waitFor,
  type TestService,
} from '../support/service-harness.ts';
import { fireNow, timerJobIdOf, type TimerJobData } from '../support/timer-jobs.ts';

const INITIAL = 100_000;

interface View {
  readonly status: string;
  readonly capturedCents: number;
  readonly refundedCents: number;
  readonly cancellationReason: string | null;
  readonly refunds: readonly { refundId: string | null; amountCents: number }[];
}

const codeOf = (body: unknown) => (body as { error?: { code?: string } }).error?.code ?? null;

describe('money races across two instances', () => {
  let one: TestService;
  let two: TestService;
  let queue: Queue<TimerJobData>;
  let redis: Redis;
  let serial = 0;

  beforeAll(async () => {
    const redisUrl = inject('redisUrl');
    const config = testConfig(redisUrl, {
      ACCOUNT_INITIAL_BALANCE_CENTS: String(INITIAL),
      // The capture window is fired by the test, never by the clock.
      PAYMENT_CAPTURE_WINDOW_MS: String(86_400_000),
    });
    one = await startTestService(config);
    two = await startTestService(config);
    queue = expiryQueue(redisUrl, config);
    redis = new Redis(redisUrl);
  });

  afterAll(async () => {
    await Promise.all([one.stop(), two.stop()]);
    await queue.close();
    await queue.disconnect();
    redis.disconnect();
  });

  const fresh = () => {
    serial += 1;
    return { token: `race-${serial}`, account: `race-acct-${serial}` };
  };

  async function pay(token: string, account: string, amountCents: number, capture: string) {
    const response = await one.request('POST', '/payments', {
      headers: { 'Idempotency-Key': token },
      body: { accountId: account, amountCents, capture },
    });
    expect(response.status).toBe(201);
  }

  async function view(token: string): Promise<View> {
    const response = await one.request('GET', `/payments/${token}`);
    expect(response.status).toBe(200);
    return response.body as View;
  }

  async function funds(account: string) {
    const response = await two.request('GET', `/accounts/${account}`);
    expect(response.status).toBe(200);
    const { USD } = (
      response.body as { balances: Record<string, { availableCents: number; heldCents: number }> }
    ).balances;
    return USD;
  }

  it('applies exactly the refunds that fit of 20 concurrent ones, and refuses the rest', async () => {
    const { token, account } = fresh();
    await pay(token, account, 1_000, 'automatic');
    // 150 each: six fit in 1000, fourteen do not.
    const answers = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        (i % 2 === 0 ? one : two).request('POST', `/payments/${token}/refunds`, {
          headers: { 'Idempotency-Key': `refund-${i}` },
          body: { amountCents: 150 },
        }),
      ),
    );
    const statuses = answers.map((a) => `${a.status} ${codeOf(a.body) ?? ''}`.trim());
    expect(statuses.filter((s) => s === '201')).toHaveLength(6);
    expect(statuses.filter((s) => s === '422 refund_too_large')).toHaveLength(14);
    const after = await view(token);
    expect(after).toMatchObject({
      status: 'partially_refunded',
      capturedCents: 1_000,
      refundedCents: 900,
    });
    expect(after.refunds).toHaveLength(6);
    expect(await funds(account)).toEqual({ availableCents: INITIAL - 100, heldCents: 0 });
    // The refused ones wrote nothing: each is new again and still does not fit.
    const again = await one.request('POST', `/payments/${token}/refunds`, {
      headers: { 'Idempotency-Key': 'refund-late' },
      body: { amountCents: 101 },
    });
    expect(codeOf(again.body)).toBe('refund_too_large');
  });

  it('settles a capture racing a cancel one way or the other, with exact funds', async () => {
    const outcomes = new Set<string>();
    for (let round = 0; round < 6; round++) {
      const { token, account } = fresh();
      await pay(token, account, 1_000, 'manual');
      expect(await funds(account)).toEqual({ availableCents: INITIAL - 1_000, heldCents: 1_000 });
      const [capture, cancel] = await Promise.all([
        one.request('POST', `/payments/${token}/capture`, { body: { amountCents: 600 } }),
        two.request('POST', `/payments/${token}/cancel`),
      ]);
      expect(cancel.status).toBe(200);
      const after = await view(token);
      if (capture.status === 200) {
        // Captured first: the cancel then refunded the capture.
        expect(after).toMatchObject({ status: 'refunded', capturedCents: 600, refundedCents: 600 });
      } else {
        expect(capture.status).toBe(409);
        expect(codeOf(capture.body)).toBe('payment_cancelled');
        expect(after).toMatchObject({
          status: 'cancelled',
          capturedCents: 0,
          cancellationReason: 'requested',
        });
      }
      outcomes.add(after.status);
      // Either way every cent is back and nothing is held.
      expect(await funds(account)).toEqual({ availableCents: INITIAL, heldCents: 0 });
    }
    expect(outcomes.size).toBeGreaterThan(0);
  });

  it('settles a capture racing its capture window one way or the other, with exact funds', async () => {
    for (let round = 0; round < 6; round++) {
      const { token, account } = fresh();
      await pay(token, account, 1_000, 'manual');
      const jobId = await timerJobIdOf(redis, one.config.keyPrefix, token, CAPTURE_WINDOW_TIMER_ID);
      const job = await waitFor(async () => (jobId === null ? undefined : queue.getJob(jobId)), {
        what: 'the capture window job',
      });
      const [capture] = await Promise.all([
        two.request('POST', `/payments/${token}/capture`, { body: { amountCents: 600 } }),
        fireNow(job),
      ]);
      const settled = await waitFor(
        async () => {
          const v = await view(token);
          return v.status === 'processed' || v.status === 'cancelled' ? v : undefined;
        },
        { what: `token ${token} settled` },
      );
      if (capture.status === 200) {
        expect(settled).toMatchObject({ status: 'processed', capturedCents: 600 });
        // The window, delivered after, changed nothing.
        await waitFor(
          async () => ((await queue.getJob(job.id ?? '')) === undefined ? true : undefined),
          {
            what: 'the window job done',
          },
        );
        expect(await view(token)).toMatchObject({ status: 'processed', capturedCents: 600 });
        expect(await funds(account)).toEqual({ availableCents: INITIAL - 600, heldCents: 0 });
      } else {
        expect(capture.status).toBe(409);
        expect(settled).toMatchObject({
          status: 'cancelled',
          capturedCents: 0,
          cancellationReason: 'capture_window_elapsed',
        });
        expect(await funds(account)).toEqual({ availableCents: INITIAL, heldCents: 0 });
      }
    }
  });
});
