import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startTestService, testConfig, type TestService } from '../support/service-harness.ts';

describe('seed-compatible routes', () => {
  let service: TestService;
  beforeAll(async () => {
    service = await startTestService(testConfig(inject('redisUrl')));
  });
  afterAll(async () => {
    await service.stop();
  });

  it('charges, replays, then refunds on cancel, like the seed session', async () => {
    const pay = () =>
      service.request('POST', '/PaymentProcessor/seed-token/makePayment', {
        body: { accountId: 'seed-acct', amountCents: 100 },
      });
    expect(await pay()).toMatchObject({
      status: 200,
      body: { success: true, reason: 'Payment successful' },
    });
    expect(await pay()).toMatchObject({
      status: 200,
      body: { success: true, reason: 'Payment already completed in prior call' },
    });
    const cancel = await service.request('POST', '/PaymentProcessor/seed-token/cancelPayment');
    expect(cancel).toMatchObject({ status: 200, body: { success: true, status: 'refunded' } });
    const view = await service.request('GET', '/payments/seed-token');
    expect(view.body).toMatchObject({
      status: 'refunded',
      payment: { accountId: 'seed-acct', amountCents: 100 },
    });
    const account = await service.request('GET', '/accounts/seed-acct');
    expect(account.body).toMatchObject({ balanceCents: 100_000 });
    expect((account.body as { ledger: unknown[] }).ledger).toHaveLength(2);
  });
});
