import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { bearer, TEST_API_KEYS, TEST_KEYS } from '../support/api-keys.ts';
import { runCli } from '../support/processes.ts';
import {
  startTestService,
  testConfig,
  waitFor,
  type TestService,
} from '../support/service-harness.ts';

const A = bearer(TEST_KEYS.alpha);
const A2 = bearer(TEST_KEYS.alphaRotated);
const B = bearer(TEST_KEYS.beta);

type Reply = Awaited<ReturnType<TestService['request']>>;

const errorOf = (reply: Reply) =>
  (reply.body as { error: { code: string; message: string } }).error;

describe('API keys and tenants', () => {
  let service: TestService;
  beforeAll(async () => {
    service = await startTestService(
      // Its cases fail authentication on purpose, more than the default 10 a minute.
      testConfig(inject('redisUrl'), {
        PAYSTATE_API_KEYS: TEST_API_KEYS,
        PAYSTATE_AUTH_FAILURES_PER_MINUTE: '1000',
      }),
    );
  });
  afterAll(async () => {
    await service.stop();
  });

  it('answers 401 unauthenticated, asking for a bearer key, on every route but the probes', async () => {
    const routes: [string, string, unknown?][] = [
      ['POST', '/PaymentProcessor/no-key/makePayment', { accountId: 'abc', amountCents: 100 }],
      ['POST', '/PaymentProcessor/no-key/cancelPayment'],
      ['POST', '/payments/no-key/cancel'],
      ['GET', '/payments/no-key'],
      ['GET', '/accounts/abc'],
      ['GET', '/metrics'],
      ['GET', '/openapi.json'],
      ['GET', '/docs'],
      ['GET', '/no-such-route'],
    ];
    for (const [method, path, body] of routes) {
      const reply = await service.request(method, path, body === undefined ? {} : { body });
      expect(reply.status, `${method} ${path}`).toBe(401);
      expect(errorOf(reply).code).toBe('unauthenticated');
      expect(reply.headers.get('www-authenticate')).toBe('Bearer realm="paystate"');
    }
    const native = await service.request('POST', '/payments', {
      headers: { 'Idempotency-Key': 'no-key' },
      body: { accountId: 'abc', amountCents: 100 },
    });
    expect(native.status).toBe(401);
    // Nothing was written, under any tenant or none.
    for (const key of ['no-key', 't/alpha/no-key', 't/beta/no-key']) {
      expect(await service.payments.get(key)).toBeNull();
    }
    expect(await service.ledger.view('abc')).toMatchObject({ ledger: [] });

    expect((await service.request('GET', '/healthz')).status).toBe(200);
    expect((await service.request('GET', '/readyz')).status).toBe(200);
  });

  it('refuses an unknown key, another scheme and a key in the wrong place', async () => {
    const tries: Record<string, string>[] = [
      bearer('sk_alpha_guess'),
      bearer(`${TEST_KEYS.alpha}x`),
      { authorization: `Basic ${Buffer.from(`alpha:${TEST_KEYS.alpha}`).toString('base64')}` },
      { authorization: TEST_KEYS.alpha },
      { 'x-api-key': TEST_KEYS.alpha },
    ];
    for (const headers of tries) {
      const reply = await service.request('GET', '/accounts/abc', { headers });
      expect(reply.status).toBe(401);
      expect(JSON.stringify(reply.body)).not.toContain(TEST_KEYS.alpha);
    }
    expect(errorOf(await service.request('GET', '/accounts/abc', { headers: tries[0] }))).toEqual({
      code: 'unauthenticated',
      message: 'the API key is not valid',
    });
    expect((await service.request('GET', '/metrics', { headers: B })).status).toBe(200);
  });

  it("keeps each tenant's tokens and accounts apart: the same key under two tenants is two payments", async () => {
    const pay = (headers: Record<string, string>, amountCents: number) =>
      service.request('POST', '/payments', {
        headers: { ...headers, 'Idempotency-Key': 'order-1' },
        body: { accountId: 'shared', amountCents },
      });
    const paidByA = await pay(A, 500);
    expect(paidByA.status).toBe(201);
    expect(paidByA.headers.get('location')).toBe('/payments/order-1');
    expect(paidByA.body).toMatchObject({
      token: 'order-1',
      status: 'processed',
      payment: { accountId: 'shared', amountCents: 500 },
    });

    // B has no such payment: it cannot see it, and its own is another one.
    expect((await service.request('GET', '/payments/order-1', { headers: B })).status).toBe(404);
    expect((await pay(B, 700)).status).toBe(201);
    const cancelledByB = await service.request('POST', '/payments/order-1/cancel', { headers: B });
    expect(cancelledByB.body).toMatchObject({ token: 'order-1', status: 'refunded' });
    const seedCancelByB = await service.request('POST', '/PaymentProcessor/order-1/cancelPayment', {
      headers: B,
    });
    expect(seedCancelByB.body).toMatchObject({ success: true, status: 'refunded' });

    // A's payment is still charged, its balance untouched by B.
    const seenByA = await service.request('GET', '/payments/order-1', { headers: A });
    expect(seenByA.body).toMatchObject({ token: 'order-1', status: 'processed' });
    const accountOfA = await service.request('GET', '/accounts/shared', { headers: A });
    expect(accountOfA.body).toMatchObject({ accountId: 'shared', balanceCents: 99_500 });
    const ledgerOfA = (accountOfA.body as { ledger: { operationId: string; token: string }[] })
      .ledger;
    expect(ledgerOfA).toHaveLength(1);
    expect(ledgerOfA[0]?.token).toBe('order-1');
    expect(ledgerOfA[0]?.operationId).toMatch(/^charge:order-1:/);
    const accountOfB = await service.request('GET', '/accounts/shared', { headers: B });
    expect(accountOfB.body).toMatchObject({ accountId: 'shared', balanceCents: 100_000 });
    expect((accountOfB.body as { ledger: unknown[] }).ledger).toHaveLength(2);

    // A replay under A is A's, not a mismatch with B's body.
    const replay = await pay(A, 500);
    expect(replay.status).toBe(200);
    expect(replay.headers.get('idempotent-replayed')).toBe('true');
    // The seed route scopes the same way.
    const seedPayByB = await service.request('POST', '/PaymentProcessor/order-1/makePayment', {
      headers: B,
      body: { accountId: 'shared', amountCents: 700 },
    });
    expect(seedPayByB.body).toEqual({ success: false, reason: 'Payment already refunded' });
  });

  it("lists, counts, finds and recovers a tenant's own tokens only on the operator routes and the inspector", async () => {
    const pay = (headers: Record<string, string>, token: string) =>
      service.request('POST', '/payments', {
        headers: { ...headers, 'Idempotency-Key': token },
        body: { accountId: 'ops', amountCents: 100 },
      });
    expect((await pay(A, 'ops-a')).status).toBe(201);
    expect((await pay(B, 'ops-b')).status).toBe(201);
    const tokensListed = async (headers: Record<string, string>) => {
      const reply = await service.request('GET', '/admin/payments?status=processed&limit=1000', {
        headers,
      });
      expect(reply.status).toBe(200);
      return (reply.body as { payments: { token: string }[] }).payments.map((p) => p.token);
    };
    const listedByA = await tokensListed(A);
    expect(listedByA).toContain('ops-a');
    expect(listedByA).not.toContain('ops-b');
    expect(listedByA.every((token) => !token.includes('/'))).toBe(true);
    expect(await tokensListed(B)).not.toContain('ops-a');

    const stats = async (headers: Record<string, string>) =>
      (
        (await service.request('GET', '/admin/payments/stats', { headers })).body as {
          counts: Record<string, number>;
        }
      ).counts;
    const before = await stats(B);
    expect((await pay(A, 'ops-a2')).status).toBe(201);
    expect(await stats(B)).toEqual(before);

    expect(
      (await service.request('POST', '/admin/payments/ops-a/recover', { headers: B })).status,
    ).toBe(404);
    const recovered = await service.request('POST', '/admin/payments/ops-a/recover', {
      headers: A,
    });
    expect(recovered.body).toMatchObject({ token: 'ops-a', status: 'processed' });

    expect((await service.request('GET', '/inspect/api/keys/ops-a', { headers: B })).status).toBe(
      404,
    );
    const found = await service.request('GET', '/inspect/api/keys/ops-a', { headers: A });
    expect(found.body).toMatchObject({ key: 'ops-a', state: 'processed' });
    const inspectList = await service.request('GET', '/inspect/api/states/processed', {
      headers: B,
    });
    const keys = (inspectList.body as { keys: { key: string }[] }).keys.map((k) => k.key);
    expect(keys).toContain('ops-b');
    expect(keys).not.toContain('ops-a');
  });

  it('accepts both keys of a tenant during a rotation, as the same tenant', async () => {
    const paid = await service.request('POST', '/payments', {
      headers: { ...A2, 'Idempotency-Key': 'rotated' },
      body: { accountId: 'rot', amountCents: 100 },
    });
    expect(paid.status).toBe(201);
    const seen = await service.request('GET', '/payments/rotated', { headers: A });
    expect(seen.body).toMatchObject({ token: 'rotated', status: 'processed' });
    expect((await service.request('GET', '/payments/rotated', { headers: B })).status).toBe(404);
  });

  it('shows a tenant its own token and account in the CLI with --tenant', async () => {
    const env = { REDIS_URL: service.config.redisUrl, REDIS_KEY_PREFIX: service.config.keyPrefix };
    // One at a time: each CLI is a Node process compiling TypeScript as it loads.
    const cli = (args: string[]) => runCli(args, env, { killAfterMs: 60_000 });
    const ofA = await cli(['get', 'order-1', '--tenant', 'alpha', '--json']);
    const ofB = await cli(['get', 'order-1', '--tenant', 'beta']);
    const account = await cli(['account', 'shared', '--tenant', 'alpha']);
    const bad = await cli(['get', 'order-1', '--tenant', 'Alpha']);
    expect(ofA.code).toBe(0);
    expect(JSON.parse(ofA.stdout)).toMatchObject({
      token: 'order-1',
      status: 'processed',
      payment: { accountId: 'shared', amountCents: 500 },
    });
    expect(ofB.code).toBe(0);
    expect(ofB.output).toMatch(/status\s+"refunded"/);
    expect(ofB.output).toMatch(/Tenant\s+beta/);
    expect(account.output).toMatch(/USD\s+99500 available, 0 held/);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--tenant must be');
  }, 240_000);
});

describe('rate limits', () => {
  let service: TestService;
  beforeAll(async () => {
    service = await startTestService(
      testConfig(inject('redisUrl'), {
        PAYSTATE_API_KEYS: TEST_API_KEYS,
        PAYSTATE_RATE_LIMIT_PER_SECOND: '3',
      }),
    );
  });
  afterAll(async () => {
    await service.stop();
  });

  it("answers 429 rate_limited with Retry-After past a tenant's requests per second, and not to another tenant", async () => {
    const started = Date.now();
    const burst = await Promise.all(
      Array.from({ length: 30 }, () =>
        service.request('GET', '/accounts/limited', { headers: A2 }),
      ),
    );
    const windows = Math.ceil((Date.now() - started) / 1000) + 1;
    const limited = burst.filter((r) => r.status === 429);
    const allowed = burst.filter((r) => r.status === 200);
    expect(limited.length + allowed.length).toBe(30);
    // At most 3 in each one-second window the burst touched.
    expect(allowed.length).toBeGreaterThanOrEqual(1);
    expect(allowed.length).toBeLessThanOrEqual(3 * windows);
    expect(limited.length).toBeGreaterThanOrEqual(1);
    for (const reply of limited) {
      expect(errorOf(reply).code).toBe('rate_limited');
      expect(Number(reply.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    }
    // Both keys of alpha share its limit; beta has its own.
    expect((await service.request('GET', '/accounts/limited', { headers: B })).status).toBe(200);
  });

  it('throttles a brute force of keys: 401 for the first ten failures in a minute, then 429 for that address', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 12; i += 1) {
      const reply = await service.request('GET', '/payments/x', {
        headers: bearer(`sk_guess_${i}`),
      });
      statuses.push(reply.status);
      if (reply.status === 429) {
        expect(errorOf(reply).code).toBe('rate_limited');
        expect(Number(reply.headers.get('retry-after'))).toBeGreaterThan(1);
        expect(Number(reply.headers.get('retry-after'))).toBeLessThanOrEqual(60);
      }
    }
    expect(statuses).toEqual([...Array<number>(10).fill(401), 429, 429]);
    // A right key from the throttled address tells the guesser nothing either.
    expect((await service.request('GET', '/payments/x', { headers: B })).status).toBe(429);
    expect((await service.request('GET', '/healthz')).status).toBe(200);
  });
});

describe('the request after ten failed keys', () => {
  let service: TestService;
  beforeAll(async () => {
    // Its own key prefix: no failures counted before these for this address.
    service = await startTestService(
      testConfig(inject('redisUrl'), { PAYSTATE_API_KEYS: TEST_API_KEYS }),
    );
  });
  afterAll(async () => {
    await service.stop();
  });

  it('is 429 rate_limited with Retry-After when it carries the right key, and writes nothing', async () => {
    for (let i = 0; i < 10; i += 1) {
      const reply = await service.request('GET', '/accounts/guessed', {
        headers: bearer(`sk_guess_${i}`),
      });
      expect(reply.status, `guess ${i + 1}`).toBe(401);
    }
    const eleventh = await service.request('POST', '/payments', {
      headers: { ...A, 'Idempotency-Key': 'after-guesses' },
      body: { accountId: 'guessed', amountCents: 100 },
    });
    expect(eleventh.status).toBe(429);
    expect(errorOf(eleventh).code).toBe('rate_limited');
    expect(Number(eleventh.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(Number(eleventh.headers.get('retry-after'))).toBeLessThanOrEqual(60);
    expect(await service.payments.get('t/alpha/after-guesses')).toBeNull();
    // The probes stay open.
    expect((await service.request('GET', '/healthz')).status).toBe(200);
  });
});

describe("a tenant's timers", () => {
  let service: TestService;
  beforeAll(async () => {
    service = await startTestService(
      testConfig(inject('redisUrl'), {
        PAYSTATE_API_KEYS: TEST_API_KEYS,
        PAYMENT_EXPIRY_MS: '200',
      }),
    );
  });
  afterAll(async () => {
    await service.stop();
  });

  it("expires a tenant's payment on its timer, and the same token of another tenant stays its own", async () => {
    const pay = (headers: Record<string, string>) =>
      service.request('POST', '/payments', {
        headers: { ...headers, 'Idempotency-Key': 'timed' },
        body: { accountId: 'timed-acct', amountCents: 100 },
      });
    expect((await pay(A)).status).toBe(201);
    const expired = await waitFor(async () => {
      const view = await service.request('GET', '/payments/timed', { headers: A });
      return (view.body as { status?: string }).status === 'expired' ? view.body : undefined;
    });
    expect(expired).toMatchObject({ token: 'timed', status: 'expired' });
    expect((await pay(A)).status).toBe(410);
    expect((await service.request('GET', '/payments/timed', { headers: B })).status).toBe(404);
    expect((await pay(B)).status).toBe(201);
  });
});
