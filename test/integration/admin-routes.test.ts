/**
 * Operators' routes over a real service and Redis: tokens listed by state
 * newest first, a page at a time; counts per state; tokens whose owed work
 * is older than a threshold; and recovering one of those now.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { PaymentStep } from '../../src/payments/payments.ts';
import { startTestService, testConfig, type TestService } from '../support/service-harness.ts';

interface ListBody {
  status: string;
  payments: { token: string; status: string; updatedAt: string }[];
  nextCursor: string | null;
}

interface StatsBody {
  counts: Record<string, number>;
  total: number;
}

interface StuckBody {
  olderThanMs: number;
  payments: { token: string; status: string | null; owedSince: string }[];
}

/** Long enough that no sweep runs unless a test asks for one. */
const NO_SWEEP_MS = String(10 * 60 * 1000);

describe('admin routes', () => {
  let service: TestService;
  let crashing: TestService;
  let crashAt: PaymentStep | null = null;

  const pay = (on: TestService, token: string) =>
    on.request('POST', '/payments', {
      body: { accountId: `acct-${token}`, amountCents: 500 },
      headers: { 'Idempotency-Key': token },
    });
  const list = async (query: string) => {
    const response = await service.request('GET', `/admin/payments?${query}`);
    expect(response.status).toBe(200);
    return response.body as ListBody;
  };
  const stats = async () => {
    const response = await service.request('GET', '/admin/payments/stats');
    expect(response.status).toBe(200);
    return response.body as StatsBody;
  };

  beforeAll(async () => {
    const config = testConfig(inject('redisUrl'), { RECOVERY_INTERVAL_MS: NO_SWEEP_MS });
    service = await startTestService(config);
    // Shares the store; fails a request at a named step, as a crash would leave it.
    crashing = await startTestService(
      testConfig(inject('redisUrl'), {
        REDIS_KEY_PREFIX: config.keyPrefix,
        RECOVERY_INTERVAL_MS: NO_SWEEP_MS,
        PAYSTATE_ROLES: 'api',
      }),
      {
        faultPoint: (step) => {
          if (step === crashAt) {
            crashAt = null;
            throw new Error(`simulated crash at ${step}`);
          }
        },
      },
    );
  });
  afterAll(async () => {
    await crashing.stop();
    await service.stop();
  });

  it('lists a token just paid under processed, newest first', async () => {
    expect((await pay(service, 'adm-first')).status).toBe(201);
    expect((await pay(service, 'adm-second')).status).toBe(201);

    const page = await list('status=processed');
    expect(page.status).toBe('processed');
    expect(page.payments.map((p) => p.token).slice(0, 2)).toEqual(['adm-second', 'adm-first']);
    expect(page.payments[0]).toMatchObject({ status: 'processed' });
    expect(Date.parse(page.payments[0]?.updatedAt ?? '')).toBeGreaterThan(Date.now() - 60_000);
    expect((await list('status=pending')).payments.map((p) => p.token)).not.toContain('adm-first');
  });

  it('moves a token to its new state when it changes', async () => {
    expect((await pay(service, 'adm-refund')).status).toBe(201);
    expect((await service.request('POST', '/payments/adm-refund/cancel')).status).toBe(200);

    expect((await list('status=refunded')).payments.map((p) => p.token)).toContain('adm-refund');
    expect((await list('status=processed')).payments.map((p) => p.token)).not.toContain(
      'adm-refund',
    );
  });

  it('pages through a state with nextCursor, every token once', async () => {
    for (let i = 0; i < 7; i++) await service.request('POST', `/payments/adm-page-${i}/cancel`);
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const query: string = `status=cancelled&limit=3${cursor === null ? '' : `&cursor=${cursor}`}`;
      const page = await list(query);
      expect(page.payments.length).toBeLessThanOrEqual(3);
      seen.push(...page.payments.map((p) => p.token));
      cursor = page.nextCursor;
    } while (cursor !== null);
    expect(seen).toEqual([6, 5, 4, 3, 2, 1, 0].map((i) => `adm-page-${i}`));
  });

  it('counts tokens per state, every state named', async () => {
    const before = await stats();
    expect(Object.keys(before.counts).sort()).toEqual(
      [
        'authorized',
        'authorizing',
        'cancelled',
        'capturing',
        'charging',
        'expired',
        'partially_refunded',
        'pending',
        'processed',
        'refunded',
        'refunding',
        'voiding',
      ].sort(),
    );
    await service.request('POST', '/payments/adm-count/cancel');
    const after = await stats();
    expect(after.counts.cancelled).toBe((before.counts.cancelled ?? 0) + 1);
    expect(after.total).toBe(before.total + 1);
  });

  it.each([
    ['no status', ''],
    ['an unknown status', 'status=lost'],
    ['a limit of 0', 'status=pending&limit=0'],
    ['a limit over 1000', 'status=pending&limit=1001'],
    ['a fractional limit', 'status=pending&limit=1.5'],
    ['an unknown parameter', 'status=pending&sort=asc'],
    ['a repeated status', 'status=pending&status=processed'],
  ])('refuses %s with 400', async (_name, query) => {
    const response = await service.request('GET', `/admin/payments?${query}`);
    expect(response.status).toBe(400);
    expect(response.body).toMatchObject({ error: { code: 'invalid_request' } });
  });

  it('refuses a cursor no page gave with 400 invalid_cursor', async () => {
    const response = await service.request('GET', '/admin/payments?status=pending&cursor=abc');
    expect(response.status).toBe(400);
    expect(response.body).toMatchObject({ error: { code: 'invalid_cursor' } });
  });

  it('names a token left charging by a crash once it is older than the threshold, and recovers it', async () => {
    crashAt = 'after-persist-intent';
    expect((await pay(crashing, 'adm-stuck')).status).toBe(500);
    expect((await list('status=charging')).payments.map((p) => p.token)).toContain('adm-stuck');

    const fresh = await service.request('GET', '/admin/payments/stuck?olderThan=1h');
    expect(fresh.status).toBe(200);
    expect((fresh.body as StuckBody).payments).toEqual([]);
    expect((fresh.body as StuckBody).olderThanMs).toBe(3_600_000);

    const stuck = await service.request('GET', '/admin/payments/stuck?olderThan=0ms');
    expect(stuck.status).toBe(200);
    const entry = (stuck.body as StuckBody).payments.find((p) => p.token === 'adm-stuck');
    expect(entry).toMatchObject({ status: 'charging' });
    expect(Date.parse(entry?.owedSince ?? '')).toBeGreaterThan(Date.now() - 60_000);

    const recovered = await service.request('POST', '/admin/payments/adm-stuck/recover');
    expect(recovered.status).toBe(200);
    expect(recovered.body).toMatchObject({ token: 'adm-stuck', status: 'processed' });
    const after = await service.request('GET', '/admin/payments/stuck?olderThan=0');
    expect((after.body as StuckBody).payments.map((p) => p.token)).not.toContain('adm-stuck');
    expect((await list('status=processed')).payments[0]?.token).toBe('adm-stuck');
  });

  it('refuses an unreadable olderThan with 400', async () => {
    const response = await service.request('GET', '/admin/payments/stuck?olderThan=soon');
    expect(response.status).toBe(400);
    expect(response.body).toMatchObject({ error: { code: 'invalid_request' } });
  });

  it('answers 404 when recovering a token with no record, and writes nothing', async () => {
    const response = await service.request('POST', '/admin/payments/adm-nobody/recover');
    expect(response.status).toBe(404);
    expect((await service.request('GET', '/payments/adm-nobody')).status).toBe(404);
  });

  it("serves the inspector's page and the data it polls, as the document says", async () => {
    expect((await pay(service, 'adm-inspect')).status).toBe(201);
    const page = await service.request('GET', '/inspect');
    expect(page.status).toBe(200);
    expect(page.headers.get('content-security-policy')).toContain("default-src 'none'");
    expect(page.body).toContain('data-state="processed"');
    const counts = await service.request('GET', '/inspect/api/counts');
    expect((counts.body as { counts: Record<string, number> }).counts.processed).toBeGreaterThan(0);
    const key = await service.request('GET', '/inspect/api/keys/adm-inspect');
    expect(key.body).toMatchObject({
      key: 'adm-inspect',
      state: 'processed',
      history: [{ event: 'CREATED' }, { event: 'PAY' }, { event: 'CHARGE_SUCCEEDED' }],
    });
    expect((await service.request('GET', '/inspect/api/keys/adm-none')).status).toBe(404);
    expect((await service.request('GET', '/inspect/api/keys/..')).status).toBe(404);
    expect((await service.request('GET', '/inspect/api/keys/a%20b')).status).toBe(400);
    const state = await service.request('GET', '/inspect/api/states/processed');
    expect((state.body as { keys: { key: string }[] }).keys[0]?.key).toBe('adm-inspect');
    expect((await service.request('GET', '/inspect/api/states/lost')).status).toBe(400);
    expect((await service.request('GET', '/inspect/assets/other.js')).status).toBe(404);
  });
});
