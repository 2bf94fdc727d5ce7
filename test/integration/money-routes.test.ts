/**
 * The money routes end to end: manual capture, partial refunds, currencies,
 * and every bad input to them answered with a clear 4xx that writes nothing.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startTestService, testConfig, type TestService } from '../support/service-harness.ts';

const INITIAL = 100_000;

const codeOf = (body: unknown) => (body as { error?: { code?: string } }).error?.code ?? null;

describe('money routes', () => {
  let service: TestService;
  let serial = 0;

  beforeAll(async () => {
    service = await startTestService(
      testConfig(inject('redisUrl'), { ACCOUNT_INITIAL_BALANCE_CENTS: String(INITIAL) }),
    );
  });

  afterAll(async () => {
    await service.stop();
  });

  const fresh = () => {
    serial += 1;
    return { token: `money-${serial}`, account: `money-acct-${serial}` };
  };
  const pay = (token: string, body: Record<string, unknown>) =>
    service.request('POST', '/payments', { headers: { 'Idempotency-Key': token }, body });
  const capture = (token: string, body?: unknown) =>
    service.request('POST', `/payments/${token}/capture`, body === undefined ? {} : { body });
  const refund = (token: string, key: string | null, body?: unknown) =>
    service.request('POST', `/payments/${token}/refunds`, {
      ...(key === null ? {} : { headers: { 'Idempotency-Key': key } }),
      ...(body === undefined ? {} : { body }),
    });
  const get = (token: string) => service.request('GET', `/payments/${token}`);
  const account = async (id: string, currency?: string) => {
    const r = await service.request(
      'GET',
      `/accounts/${id}${currency === undefined ? '' : `?currency=${currency}`}`,
    );
    return r.body as {
      balances: Record<string, { availableCents: number; heldCents: number }>;
      ledger: unknown[];
    };
  };

  /** What a request must leave alone: the token's record and the account. */
  async function unchangedBy(
    token: string,
    accountId: string,
    request: () => Promise<{ status: number; body: unknown }>,
  ) {
    const record = async () => {
      const { status, body } = await get(token);
      return [status, body, await account(accountId)];
    };
    const before = await record();
    const answer = await request();
    expect(await record()).toEqual(before);
    return { status: answer.status, code: codeOf(answer.body) };
  }

  it('authorizes, captures part, refunds in parts, replays, and cancels what remains', async () => {
    const { token, account: acct } = fresh();
    const authorized = await pay(token, { accountId: acct, amountCents: 1_000, capture: 'manual' });
    expect(authorized.status).toBe(201);
    expect(authorized.body).toMatchObject({ status: 'authorized', capturedCents: 0 });
    expect((await account(acct)).balances.USD).toEqual({
      availableCents: INITIAL - 1_000,
      heldCents: 1_000,
    });
    const replay = await pay(token, { accountId: acct, amountCents: 1_000, capture: 'manual' });
    expect(replay.status).toBe(200);
    expect(replay.headers.get('idempotent-replayed')).toBe('true');

    const captured = await capture(token, { amountCents: 700 });
    expect(captured.status).toBe(200);
    expect(captured.body).toMatchObject({ status: 'processed', capturedCents: 700 });
    expect((await account(acct)).balances.USD).toEqual({
      availableCents: INITIAL - 700,
      heldCents: 0,
    });
    const again = await capture(token, { amountCents: 700 });
    expect(again.status).toBe(200);
    expect(again.headers.get('idempotent-replayed')).toBe('true');

    const first = await refund(token, 'r1', { amountCents: 200, reason: 'damaged' });
    expect(first.status).toBe(201);
    expect(first.body).toMatchObject({
      status: 'partially_refunded',
      refundedCents: 200,
      refunds: [{ refundId: 'r1', amountCents: 200, reason: 'damaged', status: 'succeeded' }],
    });
    const same = await refund(token, 'r1', { amountCents: 200, reason: 'damaged' });
    expect(same.status).toBe(200);
    expect(same.headers.get('idempotent-replayed')).toBe('true');
    expect((await account(acct)).balances.USD?.availableCents).toBe(INITIAL - 500);

    const cancelled = await service.request('POST', `/payments/${token}/cancel`);
    expect(cancelled.status).toBe(200);
    expect(cancelled.body).toMatchObject({ status: 'refunded', refundedCents: 700 });
    expect((await account(acct)).balances.USD).toEqual({ availableCents: INITIAL, heldCents: 0 });
  });

  it('keeps a payment in its currency: the same key with another currency is 422', async () => {
    const { token, account: acct } = fresh();
    const paid = await pay(token, { accountId: acct, amountCents: 500, currency: 'JPY' });
    expect(paid.status).toBe(201);
    expect(paid.body).toMatchObject({ payment: { currency: 'JPY', capture: 'automatic' } });
    expect((await account(acct, 'JPY')).balances).toEqual({
      JPY: { availableCents: INITIAL - 500, heldCents: 0 },
    });
    // The default currency is untouched.
    expect((await account(acct, 'USD')).balances).toEqual({
      USD: { availableCents: INITIAL, heldCents: 0 },
    });
    const other = await unchangedBy(token, acct, () =>
      pay(token, { accountId: acct, amountCents: 500, currency: 'EUR' }),
    );
    expect(other).toEqual({ status: 422, code: 'idempotency_key_reused' });
    // No currency is the default one: another body too.
    expect(
      await unchangedBy(token, acct, () => pay(token, { accountId: acct, amountCents: 500 })),
    ).toEqual({ status: 422, code: 'idempotency_key_reused' });
  });

  it.each([
    ['lower case', 'usd'],
    ['unknown', 'XYZ'],
    ['without a minor unit', 'XAU'],
    ['not a string', 840],
    ['empty', ''],
  ])(
    'refuses a %s currency with 400 invalid_currency, writing nothing',
    async (_what, currency) => {
      const { token, account: acct } = fresh();
      const answer = await pay(token, { accountId: acct, amountCents: 100, currency });
      expect(answer.status).toBe(400);
      expect(codeOf(answer.body)).toBe('invalid_currency');
      expect((await get(token)).status).toBe(404);
      expect((await account(acct)).ledger).toEqual([]);
    },
  );

  it('refuses a capture mode other than automatic or manual, writing nothing', async () => {
    const { token, account: acct } = fresh();
    const answer = await pay(token, { accountId: acct, amountCents: 100, capture: 'later' });
    expect(answer.status).toBe(400);
    expect(codeOf(answer.body)).toBe('invalid_request');
    expect((await get(token)).status).toBe(404);
  });

  it('refuses bad captures with a clear 4xx, moving nothing', async () => {
    const { token, account: acct } = fresh();
    await pay(token, { accountId: acct, amountCents: 1_000, capture: 'manual' });
    for (const [body, expected] of [
      [{ amountCents: 1_001 }, { status: 422, code: 'capture_too_large' }],
      [{ amountCents: -5 }, { status: 400, code: 'invalid_request' }],
      [{ amountCents: 0 }, { status: 400, code: 'invalid_request' }],
      [{ amountCents: 10.5 }, { status: 400, code: 'invalid_request' }],
      [{ amountCents: '100' }, { status: 400, code: 'invalid_request' }],
      [{ amount: 100 }, { status: 400, code: 'invalid_request' }],
      [[100], { status: 400, code: 'invalid_request' }],
    ] as const) {
      expect(
        await unchangedBy(token, acct, () => capture(token, body)),
        JSON.stringify(body),
      ).toEqual(expected);
    }
    expect((await get(token)).body).toMatchObject({ status: 'authorized' });
    // Captured, another amount is a conflict.
    expect((await capture(token, { amountCents: 400 })).status).toBe(200);
    expect(await unchangedBy(token, acct, () => capture(token, { amountCents: 300 }))).toEqual({
      status: 409,
      code: 'capture_conflict',
    });
  });

  it('refuses a capture of an automatic payment (409) and of an unknown token (404, nothing written)', async () => {
    const { token, account: acct } = fresh();
    await pay(token, { accountId: acct, amountCents: 300 });
    expect(await unchangedBy(token, acct, () => capture(token))).toEqual({
      status: 409,
      code: 'payment_not_capturable',
    });
    const unknown = fresh();
    expect((await capture(unknown.token)).status).toBe(404);
    expect((await refund(unknown.token, 'r1')).status).toBe(404);
    expect((await get(unknown.token)).status).toBe(404);
  });

  it('refuses bad refunds with a clear 4xx, moving nothing', async () => {
    const { token, account: acct } = fresh();
    await pay(token, { accountId: acct, amountCents: 1_000 });
    await refund(token, 'r1', { amountCents: 600 });
    for (const [key, body, expected] of [
      ['r2', { amountCents: 401 }, { status: 422, code: 'refund_too_large' }],
      ['r1', { amountCents: 300 }, { status: 422, code: 'idempotency_key_reused' }],
      [
        'r1',
        { amountCents: 600, reason: 'other' },
        { status: 422, code: 'idempotency_key_reused' },
      ],
      ['r2', { amountCents: -1 }, { status: 400, code: 'invalid_request' }],
      ['r2', { amountCents: 1.5 }, { status: 400, code: 'invalid_request' }],
      ['r2', { amountCents: null }, { status: 400, code: 'invalid_request' }],
      ['r2', { reason: '' }, { status: 400, code: 'invalid_request' }],
      ['r2', { reason: 'x'.repeat(501) }, { status: 400, code: 'invalid_request' }],
      ['r2', { reason: 7 }, { status: 400, code: 'invalid_request' }],
      ['r2', { currency: 'USD' }, { status: 400, code: 'invalid_request' }],
      [null, { amountCents: 1 }, { status: 400, code: 'missing_idempotency_key' }],
      ['bad key!', { amountCents: 1 }, { status: 400, code: 'invalid_token' }],
    ] as const) {
      expect(
        await unchangedBy(token, acct, () => refund(token, key, body)),
        `${String(key)} ${JSON.stringify(body)}`,
      ).toEqual(expected);
    }
  });

  it('refuses refunds of what was never captured: an authorization and a cancelled token (409)', async () => {
    const held = fresh();
    await pay(held.token, { accountId: held.account, amountCents: 500, capture: 'manual' });
    expect(await unchangedBy(held.token, held.account, () => refund(held.token, 'r1'))).toEqual({
      status: 409,
      code: 'payment_not_refundable',
    });
    const gone = fresh();
    await service.request('POST', `/payments/${gone.token}/cancel`);
    expect(await unchangedBy(gone.token, gone.account, () => refund(gone.token, 'r1'))).toEqual({
      status: 409,
      code: 'payment_cancelled',
    });
    expect(await unchangedBy(gone.token, gone.account, () => capture(gone.token))).toEqual({
      status: 409,
      code: 'payment_cancelled',
    });
  });

  it('voids an authorization on cancel: the hold goes back, nothing is charged', async () => {
    const { token, account: acct } = fresh();
    await pay(token, { accountId: acct, amountCents: 800, capture: 'manual' });
    const cancelled = await service.request('POST', `/payments/${token}/cancel`);
    expect(cancelled.body).toMatchObject({ status: 'cancelled', cancellationReason: 'requested' });
    expect((await account(acct)).balances.USD).toEqual({ availableCents: INITIAL, heldCents: 0 });
  });

  it('keeps the seed route as it was: currency and capture are unknown fields there', async () => {
    const { token, account: acct } = fresh();
    const answer = await service.request('POST', `/PaymentProcessor/${token}/makePayment`, {
      body: { accountId: acct, amountCents: 100, capture: 'manual' },
    });
    expect(answer.status).toBe(400);
    expect((await get(token)).status).toBe(404);
  });
});
