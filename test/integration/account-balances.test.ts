/**
 * GET /accounts/{id}: a balance per currency, held funds apart from
 * available ones, `balanceCents` the default currency's available funds,
 * `?currency=` one currency alone; a code not on ISO 4217's list is
 * 400 invalid_currency and writes nothing.
 */
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { LedgerProcessor } from '../../src/processor/ledger-processor.ts';
import { startTestService, testConfig, type TestService } from '../support/service-harness.ts';

interface AccountBody {
  accountId: string;
  balanceCents: number;
  balances: Record<string, { availableCents: number; heldCents: number }>;
  ledger: { currency: string; kind: string; amountCents: number; heldCents: number }[];
}

describe('account balances per currency', () => {
  let service: TestService;
  let redis: Redis;
  let processor: LedgerProcessor;
  let n = 0;

  const account = async (path: string) => {
    const response = await service.request('GET', `/accounts/${path}`);
    expect(response.status).toBe(200);
    return response.body as AccountBody;
  };
  const move = (accountId: string, currency: string) => ({
    operationId: `op:${++n}`,
    accountId,
    currency,
    token: `tok-${n}`,
    at: service.clock.now(),
  });

  beforeAll(async () => {
    service = await startTestService(
      testConfig(inject('redisUrl'), { ACCOUNT_INITIAL_BALANCE_CENTS: '50000' }),
    );
    processor = new LedgerProcessor(service.ledger);
    redis = new Redis(inject('redisUrl'));
    await processor.charge({ ...move('multi', 'USD'), amountCents: 1_000, capture: true });
    await processor.charge({ ...move('multi', 'JPY'), amountCents: 3_000, capture: false });
    await processor.charge({ ...move('multi', 'KWD'), amountCents: 12_345, capture: true });
  });
  afterAll(async () => {
    await service.stop();
    await redis.quit();
  });

  it('shows each currency used, held funds apart, and balanceCents in the default currency', async () => {
    const body = await account('multi');
    expect(body.balanceCents).toBe(49_000);
    expect(body.balances).toEqual({
      JPY: { availableCents: 47_000, heldCents: 3_000 },
      KWD: { availableCents: 37_655, heldCents: 0 },
      USD: { availableCents: 49_000, heldCents: 0 },
    });
    expect(body.ledger.map((e) => [e.currency, e.kind, e.amountCents])).toEqual([
      ['USD', 'withdrawal', 1_000],
      ['JPY', 'hold', 3_000],
      ['KWD', 'withdrawal', 12_345],
    ]);
  });

  it('shows one currency alone with ?currency=', async () => {
    const body = await account('multi?currency=JPY');
    expect(body.balanceCents).toBe(47_000);
    expect(body.balances).toEqual({ JPY: { availableCents: 47_000, heldCents: 3_000 } });
    expect(body.ledger.map((e) => [e.currency, e.kind, e.heldCents])).toEqual([
      ['JPY', 'hold', 3_000],
    ]);
  });

  it('shows a currency never used at the initial balance, with no movements', async () => {
    expect(await account('multi?currency=EUR')).toEqual({
      accountId: 'multi',
      balanceCents: 50_000,
      balances: { EUR: { availableCents: 50_000, heldCents: 0 } },
      ledger: [],
    });
  });

  it.each(['usd', 'ABC', 'XAU', 'US', '', 'EUR&currency=USD'])(
    'answers 400 invalid_currency to ?currency=%s and writes nothing',
    async (currency) => {
      const response = await service.request('GET', `/accounts/untouched?currency=${currency}`);
      expect(response.status).toBe(400);
      expect(response.body).toMatchObject({ error: { code: 'invalid_currency' } });
      const keys = await redis.keys(`${service.config.keyPrefix}:{account:untouched}*`);
      expect(keys).toEqual([]);
    },
  );
});
