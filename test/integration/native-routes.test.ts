import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import {
  startTestService,
  testConfig,
  waitFor,
  type TestService,
} from '../support/service-harness.ts';

interface LedgerEntryView {
  operationId: string;
  kind: 'withdrawal' | 'deposit';
  amountCents: number;
  balanceCents: number;
  token: string;
  at: string;
}

interface AccountBody {
  accountId: string;
  balanceCents: number;
  ledger: LedgerEntryView[];
}

interface PaymentBody {
  token: string;
  status: string;
  history: { at: string; event: string; state: string }[];
  [field: string]: unknown;
}

const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

describe('native routes', () => {
  let service: TestService;

  const pay = (token: string, body: unknown) =>
    service.request('POST', '/payments', { body, headers: { 'Idempotency-Key': token } });
  const cancel = (token: string) => service.request('POST', `/payments/${token}/cancel`);
  const view = (token: string) => service.request('GET', `/payments/${token}`);
  const account = async (accountId: string) => {
    const response = await service.request('GET', `/accounts/${accountId}`);
    expect(response.status).toBe(200);
    return response.body as AccountBody;
  };

  beforeAll(async () => {
    service = await startTestService(testConfig(inject('redisUrl')));
  });
  afterAll(async () => {
    await service.stop();
  });

  describe('POST /payments', () => {
    it('charges a new key with 201, a Location header and the payment view', async () => {
      const response = await pay('new-key', { accountId: 'acct-new', amountCents: 1_250 });

      expect(response.status).toBe(201);
      expect(response.headers.get('location')).toBe('/payments/new-key');
      expect(response.headers.get('idempotent-replayed')).toBeNull();
      expect(response.body).toMatchObject({
        token: 'new-key',
        status: 'processed',
        payment: { accountId: 'acct-new', amountCents: 1_250 },
        chargedAt: expect.stringMatching(ISO) as unknown,
        expiresAt: expect.stringMatching(ISO) as unknown,
      });
      expect(await account('acct-new')).toMatchObject({ balanceCents: 98_750 });
    });

    it('replays the original result with 200 and Idempotent-Replayed without charging twice', async () => {
      const body = { accountId: 'acct-replay', amountCents: 700 };
      const first = await pay('replay-key', body);
      expect(first.status).toBe(201);

      const again = await pay('replay-key', body);

      expect(again.status).toBe(200);
      expect(again.headers.get('idempotent-replayed')).toBe('true');
      expect(again.body).toEqual(first.body);
      const ledger = await account('acct-replay');
      expect(ledger.balanceCents).toBe(99_300);
      expect(ledger.ledger).toHaveLength(1);
    });

    it('declines with 402 above the balance, moves nothing and keeps the key payable', async () => {
      const declined = await pay('declined-key', {
        accountId: 'acct-declined',
        amountCents: 100_001,
      });

      expect(declined).toMatchObject({
        status: 402,
        body: {
          error: { code: 'payment_declined', message: 'Payment declined: insufficient_funds' },
        },
      });
      expect(await account('acct-declined')).toEqual({
        accountId: 'acct-declined',
        balanceCents: 100_000,
        balances: { USD: { availableCents: 100_000, heldCents: 0 } },
        ledger: [],
      });
      expect((await view('declined-key')).body).toMatchObject({
        status: 'pending',
        lastDecline: { reason: 'insufficient_funds' },
      });

      const retry = await pay('declined-key', { accountId: 'acct-declined', amountCents: 400 });

      expect(retry).toMatchObject({
        status: 201,
        body: { status: 'processed', lastDecline: null },
      });
      expect(await account('acct-declined')).toMatchObject({ balanceCents: 99_600 });
    });

    it('charges another body after a decline, then treats the declined body as a different body (422)', async () => {
      const declinedBody = { accountId: 'acct-redo', amountCents: 100_001 };
      const smallerBody = { accountId: 'acct-redo', amountCents: 2_500 };

      expect((await pay('redo-key', declinedBody)).status).toBe(402);
      const charged = await pay('redo-key', smallerBody);
      const declinedAgain = await pay('redo-key', declinedBody);
      const replay = await pay('redo-key', smallerBody);

      expect(charged).toMatchObject({ status: 201, body: { payment: smallerBody } });
      expect(declinedAgain).toMatchObject({
        status: 422,
        body: { error: { code: 'idempotency_key_reused' } },
      });
      expect(replay.status).toBe(200);
      expect(replay.headers.get('idempotent-replayed')).toBe('true');
      const ledger = await account('acct-redo');
      expect(ledger.balanceCents).toBe(100_000 - 2_500);
      expect(ledger.ledger.map((e) => [e.kind, e.amountCents, e.token])).toEqual([
        ['withdrawal', 2_500, 'redo-key'],
      ]);
    });

    it('rejects a payment with 409 once the key was cancelled', async () => {
      expect((await cancel('cancelled-key')).status).toBe(200);

      const response = await pay('cancelled-key', { accountId: 'acct-409c', amountCents: 100 });

      expect(response).toMatchObject({
        status: 409,
        body: { error: { code: 'payment_cancelled', message: 'Payment already cancelled' } },
      });
      expect((await account('acct-409c')).ledger).toEqual([]);
    });

    it('rejects a payment with 409 once the key was refunded', async () => {
      const body = { accountId: 'acct-409r', amountCents: 300 };
      expect((await pay('refunded-key', body)).status).toBe(201);
      expect((await cancel('refunded-key')).body).toMatchObject({ status: 'refunded' });

      const response = await pay('refunded-key', body);

      expect(response).toMatchObject({
        status: 409,
        body: { error: { code: 'payment_refunded', message: 'Payment already refunded' } },
      });
      const ledger = await account('acct-409r');
      expect(ledger.balanceCents).toBe(100_000);
      expect(ledger.ledger.map((e) => e.kind)).toEqual(['withdrawal', 'deposit']);
    });

    it('answers 422 when the key is reused with a different body, charging nothing more', async () => {
      expect((await pay('reused-key', { accountId: 'acct-422', amountCents: 500 })).status).toBe(
        201,
      );

      const otherAmount = await pay('reused-key', { accountId: 'acct-422', amountCents: 501 });
      const otherAccount = await pay('reused-key', { accountId: 'acct-422b', amountCents: 500 });

      for (const response of [otherAmount, otherAccount]) {
        expect(response).toMatchObject({
          status: 422,
          body: { error: { code: 'idempotency_key_reused' } },
        });
      }
      expect((await account('acct-422')).ledger).toHaveLength(1);
      expect((await account('acct-422b')).ledger).toEqual([]);
      expect((await view('reused-key')).body).toMatchObject({
        status: 'processed',
        payment: { accountId: 'acct-422', amountCents: 500 },
      });
    });

    it('answers 400 when the Idempotency-Key header is missing', async () => {
      const response = await service.request('POST', '/payments', {
        body: { accountId: 'acct-nokey', amountCents: 100 },
      });

      expect(response).toMatchObject({
        status: 400,
        body: { error: { code: 'missing_idempotency_key' } },
      });
      expect((await account('acct-nokey')).ledger).toEqual([]);
    });

    it('answers 400 when the Idempotency-Key header is not a valid token', async () => {
      for (const key of ['has space', 'a/b', 'x'.repeat(256), '']) {
        const response = await service.request('POST', '/payments', {
          body: { accountId: 'acct-badkey', amountCents: 100 },
          headers: { 'Idempotency-Key': key },
        });
        expect(response, `key "${key.slice(0, 20)}"`).toMatchObject({
          status: 400,
          body: {
            error: {
              code: expect.stringMatching(/^(invalid_token|missing_idempotency_key)$/) as unknown,
            },
          },
        });
      }
      expect((await account('acct-badkey')).ledger).toEqual([]);
    });
  });

  describe('POST /payments/{token}/cancel', () => {
    it('cancels a token never seen, so the cancel overtakes its payment', async () => {
      const response = await cancel('overtaken-key');

      expect(response).toMatchObject({
        status: 200,
        body: {
          token: 'overtaken-key',
          status: 'cancelled',
          payment: null,
          cancelledAt: expect.stringMatching(ISO) as unknown,
        },
      });
      const late = await pay('overtaken-key', { accountId: 'acct-overtaken', amountCents: 100 });
      expect(late.status).toBe(409);
      expect((await account('acct-overtaken')).ledger).toEqual([]);
    });

    it('refunds exactly once when cancel is repeated', async () => {
      const body = { accountId: 'acct-refund', amountCents: 2_500 };
      expect((await pay('refund-key', body)).status).toBe(201);

      const cancels = [await cancel('refund-key'), await cancel('refund-key')];
      cancels.push(...(await Promise.all([cancel('refund-key'), cancel('refund-key')])));

      for (const response of cancels) {
        expect(response).toMatchObject({
          status: 200,
          body: { status: 'refunded', refundedAt: expect.stringMatching(ISO) as unknown },
        });
      }
      const ledger = await account('acct-refund');
      expect(ledger.balanceCents).toBe(100_000);
      expect(ledger.ledger.filter((e) => e.kind === 'deposit')).toHaveLength(1);
      expect(ledger.ledger).toHaveLength(2);
    });
  });

  describe('GET /payments/{token}', () => {
    it('shows the status, payment, timestamps and history of transitions', async () => {
      expect((await pay('viewed-key', { accountId: 'acct-view', amountCents: 900 })).status).toBe(
        201,
      );
      expect((await cancel('viewed-key')).status).toBe(200);

      const response = await view('viewed-key');

      expect(response.status).toBe(200);
      const body = response.body as PaymentBody;
      expect(body).toMatchObject({
        token: 'viewed-key',
        status: 'refunded',
        payment: { accountId: 'acct-view', amountCents: 900 },
        createdAt: expect.stringMatching(ISO) as unknown,
        updatedAt: expect.stringMatching(ISO) as unknown,
        chargedAt: expect.stringMatching(ISO) as unknown,
        refundedAt: expect.stringMatching(ISO) as unknown,
        expiresAt: expect.stringMatching(ISO) as unknown,
        expiredAt: null,
      });
      expect(body.history.map((h) => [h.event, h.state])).toEqual([
        ['CREATED', 'pending'],
        ['PAY', 'charging'],
        ['CHARGE_SUCCEEDED', 'processed'],
        ['CANCEL', 'refunding'],
        ['REFUND_COMPLETED', 'refunded'],
      ]);
      const times = body.history.map((h) => Date.parse(h.at));
      expect(times).toEqual([...times].sort((a, b) => a - b));
    });

    it('answers 404 with a JSON error for a token never seen', async () => {
      const response = await view('never-seen-key');

      expect(response).toMatchObject({ status: 404, body: { error: { code: 'not_found' } } });
    });
  });

  describe('GET /accounts/{id}', () => {
    it('shows the initial balance and an empty ledger for an account never touched', async () => {
      expect(await account('acct-untouched')).toEqual({
        accountId: 'acct-untouched',
        balanceCents: 100_000,
        balances: { USD: { availableCents: 100_000, heldCents: 0 } },
        ledger: [],
      });
    });

    it('shows the balance and every movement after payments', async () => {
      expect((await pay('ledger-1', { accountId: 'acct-ledger', amountCents: 1_000 })).status).toBe(
        201,
      );
      expect((await pay('ledger-2', { accountId: 'acct-ledger', amountCents: 250 })).status).toBe(
        201,
      );
      expect((await cancel('ledger-1')).status).toBe(200);

      const body = await account('acct-ledger');

      expect(body.balanceCents).toBe(99_750);
      expect(body.ledger).toMatchObject([
        { kind: 'withdrawal', amountCents: 1_000, balanceCents: 99_000, token: 'ledger-1' },
        { kind: 'withdrawal', amountCents: 250, balanceCents: 98_750, token: 'ledger-2' },
        { kind: 'deposit', amountCents: 1_000, balanceCents: 99_750, token: 'ledger-1' },
      ]);
      for (const entry of body.ledger) {
        expect(entry.at).toMatch(ISO);
        expect(entry.operationId).toEqual(expect.any(String));
      }
      expect(new Set(body.ledger.map((e) => e.operationId)).size).toBe(3);
    });
  });

  describe('health', () => {
    it('answers 200 on /healthz', async () => {
      expect(await service.request('GET', '/healthz')).toMatchObject({
        status: 200,
        body: { status: 'ok' },
      });
    });

    it('answers 200 on /readyz while Redis is reachable', async () => {
      expect(await service.request('GET', '/readyz')).toMatchObject({
        status: 200,
        body: { status: 'ready' },
      });
    });
  });
});

describe('native routes on expired tokens', () => {
  let service: TestService;

  const pay = (token: string, body: unknown) =>
    service.request('POST', '/payments', { body, headers: { 'Idempotency-Key': token } });
  const untilExpired = (token: string) =>
    waitFor(
      async () => {
        const response = await service.request('GET', `/payments/${token}`);
        return (response.body as { status?: string }).status === 'expired'
          ? (response.body as PaymentBody)
          : undefined;
      },
      { what: `${token} to expire` },
    );

  beforeAll(async () => {
    service = await startTestService(testConfig(inject('redisUrl'), { PAYMENT_EXPIRY_MS: '200' }));
  });
  afterAll(async () => {
    await service.stop();
  });

  it('expires a processed payment once its window closes and keeps the record', async () => {
    const body = { accountId: 'acct-exp-view', amountCents: 100 };
    expect((await pay('exp-view', body)).status).toBe(201);

    const expired = await untilExpired('exp-view');

    expect(expired).toMatchObject({
      status: 'expired',
      payment: body,
      expiredAt: expect.stringMatching(ISO) as unknown,
      removeAt: expect.stringMatching(ISO) as unknown,
    });
    expect(expired.history.at(-1)).toMatchObject({ event: 'EXPIRE', state: 'expired' });
  });

  it('answers 410 to a payment on an expired token, with the same body or another', async () => {
    const body = { accountId: 'acct-exp-pay', amountCents: 100 };
    expect((await pay('exp-pay', body)).status).toBe(201);
    await untilExpired('exp-pay');

    for (const again of [body, { accountId: 'acct-exp-pay', amountCents: 5 }]) {
      expect(await pay('exp-pay', again)).toMatchObject({
        status: 410,
        body: { error: { code: 'token_expired', message: 'Payment token expired' } },
      });
    }
    const ledger = (await service.request('GET', '/accounts/acct-exp-pay')).body as AccountBody;
    expect(ledger.ledger).toHaveLength(1);
  });

  it('answers 410 to a cancel on an expired token and refunds nothing', async () => {
    const body = { accountId: 'acct-exp-cancel', amountCents: 100 };
    expect((await pay('exp-cancel', body)).status).toBe(201);
    await untilExpired('exp-cancel');

    const response = await service.request('POST', '/payments/exp-cancel/cancel');

    expect(response).toMatchObject({
      status: 410,
      body: { error: { code: 'token_expired' } },
    });
    const ledger = (await service.request('GET', '/accounts/acct-exp-cancel')).body as AccountBody;
    expect(ledger).toMatchObject({ balanceCents: 99_900 });
    expect(ledger.ledger.map((e) => e.kind)).toEqual(['withdrawal']);
  });

  it('expires a cancelled token too, after which a payment gets 410', async () => {
    expect((await service.request('POST', '/payments/exp-cancelled/cancel')).status).toBe(200);
    await untilExpired('exp-cancelled');

    const response = await pay('exp-cancelled', { accountId: 'acct-exp-c', amountCents: 100 });

    expect(response.status).toBe(410);
  });
});
