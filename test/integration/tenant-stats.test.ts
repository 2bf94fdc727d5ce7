/**
 * The operator routes as one tenant sees them, over a store shared with
 * another tenant: counts per state after pays, cancels and the removal of
 * expired records; listings a page at a time with none of the other
 * tenant's tokens; and the tokens left stuck by a crash, however many the
 * other tenant has stuck before them.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { PaymentStep } from '../../src/payments/payments.ts';
import { bearer, TEST_API_KEYS, TEST_KEYS } from '../support/api-keys.ts';
import { runCli } from '../support/processes.ts';
import {
  startTestService,
  testConfig,
  waitFor,
  type TestService,
} from '../support/service-harness.ts';

const A = bearer(TEST_KEYS.alpha);
const B = bearer(TEST_KEYS.beta);

/** Long enough that no sweep runs unless a test asks for one. */
const NO_SWEEP_MS = String(10 * 60 * 1000);

interface StuckBody {
  payments: { token: string; status: string | null }[];
}

describe("a tenant's counts, listings and stuck tokens", () => {
  let service: TestService;
  let crashing: TestService;
  let lasting: TestService;
  let short: TestService;
  let crashAt: PaymentStep | null = null;

  beforeAll(async () => {
    const base = {
      PAYSTATE_API_KEYS: TEST_API_KEYS,
      PAYSTATE_RATE_LIMIT_PER_SECOND: '0',
      RECOVERY_INTERVAL_MS: NO_SWEEP_MS,
    };
    const config = testConfig(inject('redisUrl'), base);
    service = await startTestService(config);
    const shared = { ...base, REDIS_KEY_PREFIX: config.keyPrefix };
    // Shares the store; fails a request at a named step, as a crash would leave it.
    crashing = await startTestService(
      testConfig(inject('redisUrl'), { ...shared, PAYSTATE_ROLES: 'api' }),
      {
        faultPoint: (step) => {
          if (step === crashAt) throw new Error(`simulated crash at ${step}`);
        },
      },
    );
    // Shares the store; its payments expire at once and are kept a day.
    lasting = await startTestService(
      testConfig(inject('redisUrl'), {
        ...shared,
        PAYMENT_EXPIRY_MS: '200',
        EXPIRED_RETENTION_MS: String(24 * 3600 * 1000),
      }),
    );
    // Shares the store; its payments expire at once and are removed soon after.
    short = await startTestService(
      testConfig(inject('redisUrl'), {
        ...shared,
        PAYMENT_EXPIRY_MS: '200',
        EXPIRED_RETENTION_MS: '300',
      }),
    );
  });
  afterAll(async () => {
    await short.stop();
    await lasting.stop();
    await crashing.stop();
    await service.stop();
  });

  const pay = (on: TestService, headers: Record<string, string>, token: string) =>
    on.request('POST', '/payments', {
      headers: { ...headers, 'Idempotency-Key': token },
      body: { accountId: 'stats', amountCents: 100 },
    });
  const cancel = (headers: Record<string, string>, token: string) =>
    service.request('POST', `/payments/${token}/cancel`, { headers });
  const counts = async (headers: Record<string, string>) => {
    const reply = await service.request('GET', '/admin/payments/stats', { headers });
    expect(reply.status).toBe(200);
    return reply.body as { counts: Record<string, number>; total: number };
  };
  const inspectorCounts = async (headers: Record<string, string>) => {
    const reply = await service.request('GET', '/inspect/api/counts', { headers });
    expect(reply.status).toBe(200);
    return (reply.body as { counts: Record<string, number> }).counts;
  };

  it('names every stuck token of a tenant up to the limit, whatever other tenants have stuck', async () => {
    crashAt = 'after-persist-intent';
    // Alpha's crashed payments are older: they come first in the store's outbox.
    for (let i = 0; i < 4; i++) expect((await pay(crashing, A, `stuck-a${i}`)).status).toBe(500);
    for (let i = 0; i < 3; i++) expect((await pay(crashing, B, `stuck-b${i}`)).status).toBe(500);
    crashAt = null;

    const stuck = async (headers: Record<string, string>, limit: number) => {
      const reply = await service.request(
        'GET',
        `/admin/payments/stuck?olderThan=0&limit=${limit}`,
        {
          headers,
        },
      );
      expect(reply.status).toBe(200);
      return (reply.body as StuckBody).payments;
    };
    const ofB = await stuck(B, 3);
    expect(ofB.map((p) => p.token)).toEqual(['stuck-b0', 'stuck-b1', 'stuck-b2']);
    expect(ofB.every((p) => p.status === 'charging')).toBe(true);
    expect((await stuck(B, 2)).map((p) => p.token)).toEqual(['stuck-b0', 'stuck-b1']);
    expect((await stuck(A, 10)).map((p) => p.token)).toEqual([
      'stuck-a0',
      'stuck-a1',
      'stuck-a2',
      'stuck-a3',
    ]);

    // Recovered, they are stuck no more, and counted where they went.
    for (let i = 0; i < 3; i++) {
      const reply = await service.request('POST', `/admin/payments/stuck-b${i}/recover`, {
        headers: B,
      });
      expect(reply.body).toMatchObject({ status: 'processed' });
    }
    expect(await stuck(B, 3)).toEqual([]);
    expect((await stuck(A, 10)).length).toBe(4);
    expect((await counts(B)).counts).toMatchObject({ charging: 0, processed: 3 });
    expect((await counts(A)).counts).toMatchObject({ charging: 4, processed: 0 });
  });

  it('counts each tenant its own tokens after pays, cancels and the removal of expired ones', async () => {
    const beforeA = await counts(A);
    const beforeB = await counts(B);
    for (const token of ['c1', 'c2', 'c3']) expect((await pay(service, A, token)).status).toBe(201);
    expect((await cancel(A, 'c1')).status).toBe(200);
    expect((await cancel(A, 'c9')).status).toBe(200);
    expect((await pay(service, B, 'c1')).status).toBe(201);

    const afterA = await counts(A);
    expect(afterA.counts.processed).toBe((beforeA.counts.processed ?? 0) + 2);
    expect(afterA.counts.refunded).toBe((beforeA.counts.refunded ?? 0) + 1);
    expect(afterA.counts.cancelled).toBe((beforeA.counts.cancelled ?? 0) + 1);
    expect(afterA.total).toBe(beforeA.total + 4);
    const afterB = await counts(B);
    expect(afterB.counts.processed).toBe((beforeB.counts.processed ?? 0) + 1);
    expect(afterB.total).toBe(beforeB.total + 1);
    // The inspector shows the engine's counts: with the records that cannot be read.
    expect(await inspectorCounts(A)).toEqual({ ...afterA.counts, unreadable: 0 });
    expect(await inspectorCounts(B)).toEqual({ ...afterB.counts, unreadable: 0 });

    // Expired, and kept: each tenant's expired count goes up and stays up, so
    // no read has to fall between one token's expiry and another's removal.
    expect((await pay(lasting, A, 'brief-a')).status).toBe(201);
    expect((await pay(lasting, B, 'brief-b1')).status).toBe(201);
    expect((await pay(lasting, B, 'brief-b2')).status).toBe(201);
    const expiredA = (afterA.counts.expired ?? 0) + 1;
    const expiredB = (afterB.counts.expired ?? 0) + 2;
    const kept = await waitFor(
      async () => {
        const [a, b] = [await counts(A), await counts(B)];
        return a.counts.expired === expiredA && b.counts.expired === expiredB
          ? { a, b }
          : undefined;
      },
      { what: "each tenant's payments to expire" },
    );
    expect(kept.a.total).toBe(afterA.total + 1);
    expect(kept.b.total).toBe(afterB.total + 2);
    expect(kept.a.counts.processed).toBe(afterA.counts.processed);
    expect(kept.b.counts.processed).toBe(afterB.counts.processed);

    // Expired at once, then removed: each tenant's count goes back to what it was.
    expect((await pay(short, A, 'gone-a')).status).toBe(201);
    expect((await pay(short, B, 'gone-b1')).status).toBe(201);
    expect((await pay(short, B, 'gone-b2')).status).toBe(201);
    await waitFor(
      async () => {
        const [a, b] = [await counts(A), await counts(B)];
        return a.total === kept.a.total && b.total === kept.b.total ? true : undefined;
      },
      { what: 'the expired records to be removed and uncounted' },
    );
    expect((await counts(A)).counts).toEqual(kept.a.counts);
    expect((await counts(B)).counts).toEqual(kept.b.counts);
    expect((await service.request('GET', '/payments/gone-b1', { headers: B })).status).toBe(404);
  });

  it("pages through a tenant's tokens of a state with none of the other's", async () => {
    const mine = Array.from({ length: 7 }, (_, i) => `page-a${i}`);
    for (const [i, token] of mine.entries()) {
      expect((await cancel(A, token)).status).toBe(200);
      // The other tenant writes between each: its tokens sit among alpha's.
      expect((await cancel(B, `page-b${i}`)).status).toBe(200);
    }
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const query: string = `status=cancelled&limit=3${cursor === null ? '' : `&cursor=${cursor}`}`;
      const reply = await service.request('GET', `/admin/payments?${query}`, { headers: A });
      expect(reply.status).toBe(200);
      const body = reply.body as { payments: { token: string }[]; nextCursor: string | null };
      seen.push(...body.payments.map((p) => p.token));
      cursor = body.nextCursor;
      pages++;
    } while (cursor !== null && pages < 20);
    const ours = seen.filter((token) => token.startsWith('page-'));
    expect(ours).toEqual([...mine].reverse());
    expect(seen.some((token) => token.startsWith('page-b'))).toBe(false);

    const inspected = await service.request('GET', '/inspect/api/states/cancelled', { headers: B });
    const keys = (inspected.body as { keys: { key: string }[] }).keys.map((k) => k.key);
    expect(keys.slice(0, 7)).toEqual(mine.map((_, i) => `page-b${6 - i}`));
  });

  it("gives a tenant's counts and stuck tokens in the CLI with --tenant", async () => {
    const env = { REDIS_URL: service.config.redisUrl, REDIS_KEY_PREFIX: service.config.keyPrefix };
    // One at a time: each CLI is a Node process compiling TypeScript as it loads.
    const cli = (args: string[]) => runCli(args, env, { killAfterMs: 60_000 });
    const stats = await cli(['stats', '--tenant', 'beta', '--json']);
    expect(stats.code, stats.output).toBe(0);
    expect(JSON.parse(stats.stdout)).toEqual(await counts(B));
    const stuck = await cli(['stuck', '--older-than', '0s', '--tenant', 'alpha', '--json']);
    expect(stuck.code, stuck.output).toBe(0);
    const listed = JSON.parse(stuck.stdout) as { payments: { token: string; status: string }[] };
    expect(listed.payments.map((p) => p.token)).toEqual([
      'stuck-a0',
      'stuck-a1',
      'stuck-a2',
      'stuck-a3',
    ]);
  }, 240_000);
});
