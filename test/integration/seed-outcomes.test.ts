import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import {
  startTestService,
  testConfig,
  waitFor,
  type TestService,
} from '../support/service-harness.ts';

interface AccountBody {
  balanceCents: number;
  ledger: { kind: string }[];
}

describe('seed-compatible routes: business outcomes', () => {
  let service: TestService;

  const makePayment = (token: string, body: unknown) =>
    service.request('POST', `/PaymentProcessor/${token}/makePayment`, { body });
  const cancelPayment = (token: string) =>
    service.request('POST', `/PaymentProcessor/${token}/cancelPayment`);
  const account = async (accountId: string) =>
    (await service.request('GET', `/accounts/${accountId}`)).body as AccountBody;

  beforeAll(async () => {
    service = await startTestService(testConfig(inject('redisUrl'), { PAYMENT_EXPIRY_MS: '200' }));
  });
  afterAll(async () => {
    await service.stop();
  });

  it('reports a decline as 200 with success false and moves no money', async () => {
    const response = await makePayment('seed-declined', {
      accountId: 'seed-acct-declined',
      amountCents: 100_001,
    });

    expect(response.status).toBe(200);
    expect(response.body).toEqual({
      success: false,
      reason: 'Payment declined: insufficient_funds',
    });
    expect(await account('seed-acct-declined')).toMatchObject({
      balanceCents: 100_000,
      ledger: [],
    });
  });

  it('charges a declined token later when the amount fits', async () => {
    const token = 'seed-declined-then-paid';
    const declined = await makePayment(token, { accountId: 'seed-acct-dp', amountCents: 200_000 });
    expect(declined.body).toMatchObject({ success: false });

    const paid = await makePayment(token, { accountId: 'seed-acct-dp', amountCents: 100 });

    expect(paid).toMatchObject({
      status: 200,
      body: { success: true, reason: 'Payment successful' },
    });
    expect(await account('seed-acct-dp')).toMatchObject({ balanceCents: 99_900 });
  });

  it('reports a payment on a cancelled token as 200 with success false "Payment already cancelled"', async () => {
    expect(await cancelPayment('seed-cancelled')).toMatchObject({
      status: 200,
      body: { success: true, status: 'cancelled', reason: 'Payment cancelled' },
    });

    const response = await makePayment('seed-cancelled', {
      accountId: 'seed-acct-cancelled',
      amountCents: 100,
    });

    expect(response).toMatchObject({
      status: 200,
      body: { success: false, reason: 'Payment already cancelled' },
    });
    expect((await account('seed-acct-cancelled')).ledger).toEqual([]);
  });

  it('reports a payment on a refunded token as 200 with success false "Payment already refunded"', async () => {
    const body = { accountId: 'seed-acct-refunded', amountCents: 100 };
    expect((await makePayment('seed-refunded', body)).body).toMatchObject({ success: true });
    expect((await cancelPayment('seed-refunded')).body).toMatchObject({ status: 'refunded' });

    const response = await makePayment('seed-refunded', body);

    expect(response).toMatchObject({
      status: 200,
      body: { success: false, reason: 'Payment already refunded' },
    });
    expect(await account('seed-acct-refunded')).toMatchObject({ balanceCents: 100_000 });
  });

  it('reports a payment on an expired token as 200 with success false', async () => {
    const body = { accountId: 'seed-acct-expired', amountCents: 100 };
    expect((await makePayment('seed-expired', body)).body).toMatchObject({ success: true });
    await waitFor(
      async () => {
        const view = await service.request('GET', '/payments/seed-expired');
        return (view.body as { status?: string }).status === 'expired' ? true : undefined;
      },
      { what: 'seed-expired to expire' },
    );

    const response = await makePayment('seed-expired', body);

    expect(response).toMatchObject({
      status: 200,
      body: { success: false, reason: 'Payment token expired' },
    });
    const cancel = await cancelPayment('seed-expired');
    expect(cancel).toMatchObject({
      status: 200,
      body: { success: false, reason: 'Payment token expired', status: 'expired' },
    });
    expect((await account('seed-acct-expired')).ledger).toHaveLength(1);
  });

  it('answers 422 with a JSON error when a token is reused with a different body', async () => {
    const token = 'seed-reused';
    expect(
      (await makePayment(token, { accountId: 'seed-acct-reused', amountCents: 100 })).body,
    ).toMatchObject({ success: true });

    const response = await makePayment(token, { accountId: 'seed-acct-reused', amountCents: 101 });

    expect(response).toMatchObject({
      status: 422,
      body: {
        error: {
          code: 'idempotency_key_reused',
          message: 'Token already used for a different payment',
        },
      },
    });
    expect((await account('seed-acct-reused')).ledger).toHaveLength(1);
  });
});
