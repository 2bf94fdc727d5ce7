/**
 * The expiry window runs from the token's last accepted event, with real
 * timers: each case moves a token on once the window has partly run, and
 * the token expires one whole window after that later event, not after the
 * first one.
 */
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import {
  startTestService,
  testConfig,
  waitFor,
  type TestService,
} from '../support/service-harness.ts';

const INITIAL_BALANCE_CENTS = 100_000;
const AMOUNT_CENTS = 700;
const EXPIRY_MS = 2_000;
/** How far into the window the later event comes: well past half of it. */
const LATER_MS = 1_200;

interface PaymentView {
  readonly status: string;
  readonly chargedAt: string | null;
  readonly refundedAt: string | null;
  readonly cancelledAt: string | null;
  readonly capturedAt: string | null;
  readonly expiredAt: string | null;
  readonly expiresAt: string | null;
  readonly lastDecline: { readonly at: string } | null;
  readonly history: readonly { event: string; state: string; at: string }[];
}

describe('the expiry window, from the last accepted event', () => {
  let service: TestService;
  let redis: Redis;

  beforeAll(async () => {
    redis = new Redis(inject('redisUrl'));
    service = await startTestService(
      testConfig(inject('redisUrl'), {
        PAYMENT_EXPIRY_MS: String(EXPIRY_MS),
        EXPIRED_RETENTION_MS: '60000',
        ACCOUNT_INITIAL_BALANCE_CENTS: String(INITIAL_BALANCE_CENTS),
      }),
    );
  });

  afterAll(async () => {
    await service.stop();
    redis.disconnect();
  });

  const ms = (iso: string | null | undefined) => Date.parse(iso ?? '');

  async function paymentOf(token: string): Promise<PaymentView> {
    const response = await service.request('GET', `/payments/${token}`);
    expect(response.status).toBe(200);
    return response.body as PaymentView;
  }

  const pay = (token: string, amountCents = AMOUNT_CENTS) =>
    service.request('POST', '/payments', {
      headers: { 'Idempotency-Key': token },
      body: { accountId: `acct-${token}`, amountCents },
    });

  /** Polls the service's own clock (Redis TIME, as the record's times) until `at` has passed. */
  const redisNow = async () => {
    const [seconds, micros] = await redis.time();
    return Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
  };
  const waitUntil = (at: number) =>
    waitFor(async () => ((await redisNow()) >= at ? true : undefined), {
      what: `the clock to pass ${new Date(at).toISOString()}`,
    });

  const waitForExpired = (token: string) =>
    waitFor(
      async () => {
        const view = await paymentOf(token);
        return view.status === 'expired' ? view : undefined;
      },
      { what: `${token} to expire`, timeoutMs: 4 * EXPIRY_MS + 5_000 },
    );

  it('restarts the window at a refund: a refunded payment outlives the deadline its charge set', async () => {
    const token = 'window-refund';
    expect((await pay(token)).status).toBe(201);
    const charged = await paymentOf(token);
    await waitUntil(ms(charged.chargedAt) + LATER_MS);

    const cancelled = await service.request('POST', `/payments/${token}/cancel`);
    expect(cancelled).toMatchObject({ status: 200, body: { status: 'refunded' } });
    const refunded = await paymentOf(token);
    const refundedAt = ms(refunded.refundedAt);
    expect(ms(refunded.expiresAt)).toBe(refundedAt + EXPIRY_MS);

    // The charge's deadline passes and the refunded payment stays.
    await waitUntil(ms(charged.chargedAt) + EXPIRY_MS + 300);
    expect((await paymentOf(token)).status).toBe('refunded');

    const expired = await waitForExpired(token);
    expect(ms(expired.expiredAt)).toBeGreaterThanOrEqual(refundedAt + EXPIRY_MS);
    expect(expired.history.map((h) => h.state)).toEqual([
      'pending',
      'charging',
      'processed',
      'refunding',
      'refunded',
      'expired',
    ]);
  });

  it('keeps an authorization past the window and starts it at the capture, then again at a partial refund', async () => {
    const token = 'window-capture';
    const authorized = await service.request('POST', '/payments', {
      headers: { 'Idempotency-Key': token },
      body: { accountId: `acct-${token}`, amountCents: AMOUNT_CENTS, capture: 'manual' },
    });
    expect(authorized).toMatchObject({
      status: 201,
      body: { status: 'authorized', expiresAt: null },
    });
    const authorizedAt = ms((await paymentOf(token)).chargedAt);
    // An authorization does not expire: its capture window (7 days here) governs it.
    await waitUntil(authorizedAt + EXPIRY_MS + 300);
    expect((await paymentOf(token)).status).toBe('authorized');

    const captured = await service.request('POST', `/payments/${token}/capture`, { body: {} });
    expect(captured).toMatchObject({ status: 200, body: { status: 'processed' } });
    const capturedAt = ms((await paymentOf(token)).capturedAt);
    expect(ms((await paymentOf(token)).expiresAt)).toBe(capturedAt + EXPIRY_MS);
    await waitUntil(capturedAt + LATER_MS);

    const refunded = await service.request('POST', `/payments/${token}/refunds`, {
      headers: { 'Idempotency-Key': 'part' },
      body: { amountCents: 100 },
    });
    expect(refunded).toMatchObject({ status: 201, body: { status: 'partially_refunded' } });
    const refundedAt = ms((await paymentOf(token)).refundedAt);
    // The capture's deadline passes and the partly refunded payment stays.
    await waitUntil(capturedAt + EXPIRY_MS + 300);
    expect((await paymentOf(token)).status).toBe('partially_refunded');

    const expired = await waitForExpired(token);
    expect(ms(expired.expiredAt)).toBeGreaterThanOrEqual(refundedAt + EXPIRY_MS);
  });

  it('restarts the window at each decline', async () => {
    const token = 'window-declines';
    expect((await pay(token, INITIAL_BALANCE_CENTS + 1)).status).toBe(402);
    const first = ms((await paymentOf(token)).lastDecline?.at);
    await waitUntil(first + LATER_MS);

    expect((await pay(token, INITIAL_BALANCE_CENTS + 2)).status).toBe(402);
    const second = await paymentOf(token);
    const secondAt = ms(second.lastDecline?.at);
    expect(ms(second.expiresAt)).toBe(secondAt + EXPIRY_MS);

    await waitUntil(first + EXPIRY_MS + 300);
    expect((await paymentOf(token)).status).toBe('pending');

    const expired = await waitForExpired(token);
    expect(ms(expired.expiredAt)).toBeGreaterThanOrEqual(secondAt + EXPIRY_MS);
  });

  it('restarts the window at a cancel after a decline', async () => {
    const token = 'window-decline-cancel';
    expect((await pay(token, INITIAL_BALANCE_CENTS + 1)).status).toBe(402);
    const declinedAt = ms((await paymentOf(token)).lastDecline?.at);
    await waitUntil(declinedAt + LATER_MS);

    const cancelled = await service.request('POST', `/payments/${token}/cancel`);
    expect(cancelled).toMatchObject({ status: 200, body: { status: 'cancelled' } });
    const cancelledAt = ms((await paymentOf(token)).cancelledAt);

    const expired = await waitForExpired(token);
    expect(ms(expired.expiredAt)).toBeGreaterThanOrEqual(cancelledAt + EXPIRY_MS);
  });

  it('restarts the window at a charge after a decline', async () => {
    const token = 'window-decline-charge';
    expect((await pay(token, INITIAL_BALANCE_CENTS + 1)).status).toBe(402);
    const declinedAt = ms((await paymentOf(token)).lastDecline?.at);
    await waitUntil(declinedAt + LATER_MS);

    expect((await pay(token)).status).toBe(201);
    const chargedAt = ms((await paymentOf(token)).chargedAt);

    const expired = await waitForExpired(token);
    expect(ms(expired.expiredAt)).toBeGreaterThanOrEqual(chargedAt + EXPIRY_MS);
    expect(expired.history.at(-2)?.state).toBe('processed');
  });
});
