import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRedisServer, type TestRedisServer } from '../support/redis-server.ts';
import {
  startTestService,
  testConfig,
  waitFor,
  type TestService,
} from '../support/service-harness.ts';

type Response = Awaited<ReturnType<TestService['request']>>;

/** How long a request may take to fail while Redis is away: it must not hang. */
const FAIL_FAST_MS = 8_000;

describe('Redis outage', () => {
  let redis: TestRedisServer;
  let service: TestService;
  let redisDown = false;

  const stopRedis = async () => {
    await redis.kill('SIGKILL');
    redisDown = true;
  };
  const startRedis = async () => {
    await redis.start();
    redisDown = false;
  };

  const pay = (token: string, amountCents = 100) =>
    service.request('POST', '/payments', {
      body: { accountId: 'acct-outage', amountCents },
      headers: { 'Idempotency-Key': token },
    });

  /** Sends the request and checks it failed fast with a retryable 503. */
  const expectUnavailable = async (send: () => Promise<Response>) => {
    const started = Date.now();
    const response = await send();
    expect(Date.now() - started).toBeLessThan(FAIL_FAST_MS);
    expect(response.status).toBe(503);
    expect(response.headers.get('retry-after')).toMatch(/^\d+$/);
    expect(response.body).toEqual({
      error: { code: 'unavailable', message: expect.any(String) as unknown },
    });
    expect(JSON.stringify(response.body)).not.toMatch(/ECONNREFUSED|ioredis|\bat .+:\d+:\d+/);
  };

  beforeAll(async () => {
    redis = await startRedisServer();
    service = await startTestService(testConfig(redis.url));
  });
  afterAll(async () => {
    // The service's connections close cleanly only against a live Redis.
    if (redisDown) await startRedis();
    await service.stop();
    await redis.destroy();
  });

  describe('while Redis is down', () => {
    beforeAll(async () => {
      expect((await pay('before-outage')).status).toBe(201);
      await stopRedis();
    });
    afterAll(async () => {
      await startRedis();
    });

    it('answers POST /payments with 503 and Retry-After', async () => {
      await expectUnavailable(() => pay('during-outage'));
    });

    it('answers the seed makePayment with 503 and Retry-After', async () => {
      await expectUnavailable(() =>
        service.request('POST', '/PaymentProcessor/during-outage-seed/makePayment', {
          body: { accountId: 'acct-outage', amountCents: 100 },
        }),
      );
    });

    it('answers the seed cancelPayment with 503 and Retry-After', async () => {
      await expectUnavailable(() =>
        service.request('POST', '/PaymentProcessor/before-outage/cancelPayment'),
      );
    });

    it('answers GET /payments/{token} with 503 and Retry-After', async () => {
      await expectUnavailable(() => service.request('GET', '/payments/x'));
    });

    it('answers GET /accounts/{id} with 503 and Retry-After', async () => {
      await expectUnavailable(() => service.request('GET', '/accounts/x'));
    });

    it('answers /readyz with 503 and Retry-After', async () => {
      await expectUnavailable(() => service.request('GET', '/readyz'));
    });

    it('keeps answering /healthz with 200, the process being alive', async () => {
      expect(await service.request('GET', '/healthz')).toMatchObject({ status: 200 });
    });
  });

  it('recovers without a restart once Redis is back', async () => {
    await stopRedis();
    await expectUnavailable(() => service.request('GET', '/readyz'));

    await startRedis();

    await waitFor(
      async () => ((await service.request('GET', '/readyz')).status === 200 ? true : undefined),
      { timeoutMs: 15_000, intervalMs: 100, what: '/readyz to answer 200' },
    );
    const paid = await waitFor(
      async () => {
        const response = await pay('after-outage', 250);
        return response.status === 503 ? undefined : response;
      },
      { timeoutMs: 15_000, intervalMs: 100, what: 'a payment to go through' },
    );
    expect(paid.status).toBe(201);
    expect(paid.headers.get('idempotent-replayed')).toBeNull();
    expect((await service.request('GET', '/payments/after-outage')).body).toMatchObject({
      status: 'processed',
      payment: { accountId: 'acct-outage', amountCents: 250 },
    });
    const account = await service.request('GET', '/accounts/acct-outage');
    expect(account).toMatchObject({ status: 200 });
    expect((account.body as { ledger: { token: string }[] }).ledger.map((e) => e.token)).toContain(
      'after-outage',
    );
  });

  it('leaves no trace of a payment that was refused during the outage', async () => {
    expect(await service.request('GET', '/payments/during-outage')).toMatchObject({
      status: 404,
    });
    expect((await pay('during-outage')).status).toBe(201);
  });
});
