/**
 * `maxmemory-policy` changed to an evicting one while the service runs
 * (`CONFIG SET`): start-up refuses such a Redis, but a running process
 * went on serving, and once Redis filled up it would silently evict
 * records and ledger operation ids — a token whose record was evicted is
 * new again, and its retry is charged a second time.
 *
 * The service notices within a few seconds, refuses payment and account
 * requests with 503 `unavailable` (and /readyz) until the policy is
 * `noeviction` again, and writes nothing meanwhile. A Redis that refuses
 * `CONFIG` (as managed ones do) is served as before.
 */
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { pollUntil } from '../support/payment-load.ts';
import { startRedisServer, type TestRedisServer } from '../support/redis-server.ts';
import { startTestService, testConfig, type TestService } from '../support/service-harness.ts';

const NOTICED_WITHIN_MS = 5_000;

const payBody = (token: string) => ({
  body: { accountId: `acct-${token}`, amountCents: 1_000 },
  headers: { 'Idempotency-Key': token },
});

describe('maxmemory-policy changed to an evicting one while the service runs', () => {
  let redis: TestRedisServer;
  let admin: Redis;
  let service: TestService;

  beforeAll(async () => {
    redis = await startRedisServer();
    admin = new Redis(redis.url);
    service = await startTestService(testConfig(redis.url));
  });
  afterEach(async () => {
    await admin.config('SET', 'maxmemory-policy', 'noeviction');
    await pollUntil(async () => (await service.request('GET', '/readyz')).status === 200, 10_000);
  });
  afterAll(async () => {
    await service.stop();
    admin.disconnect();
    await redis.destroy();
  });

  const pay = (token: string) => service.request('POST', '/payments', payBody(token));

  const ready = async () => (await service.request('GET', '/readyz')).status;

  for (const policy of ['allkeys-lru', 'volatile-ttl']) {
    it(`refuses payment and account requests with 503 unavailable under ${policy}, writes nothing, and serves again under noeviction`, async () => {
      expect((await pay(`before-${policy}`)).status).toBe(201);
      await admin.config('SET', 'maxmemory-policy', policy);
      const changedAt = Date.now();
      expect(await pollUntil(async () => (await ready()) === 503, 10_000)).toBe(true);
      expect(Date.now() - changedAt).toBeLessThan(NOTICED_WITHIN_MS);

      const refused = await pay(`during-${policy}`);
      expect(refused.status).toBe(503);
      expect(refused.body).toEqual({
        error: { code: 'unavailable', message: expect.any(String) as unknown },
      });
      expect(refused.headers.get('retry-after')).toMatch(/^\d+$/);
      for (const [method, path] of [
        ['GET', `/payments/before-${policy}`],
        ['POST', `/payments/before-${policy}/cancel`],
        ['GET', `/accounts/acct-before-${policy}`],
      ] as const) {
        expect((await service.request(method, path)).status, `${method} ${path}`).toBe(503);
      }
      expect(await admin.exists(service.keys.state(`during-${policy}`))).toBe(0);
      expect((await service.request('GET', '/healthz')).status).toBe(200);

      await admin.config('SET', 'maxmemory-policy', 'noeviction');
      expect(await pollUntil(async () => (await ready()) === 200, 10_000)).toBe(true);
      expect((await pay(`during-${policy}`)).status).toBe(201);
      const before = await service.request('GET', `/payments/before-${policy}`);
      expect(before.body).toMatchObject({ status: 'processed' });
    });
  }
});

describe('a Redis that refuses CONFIG (as managed ones do)', () => {
  let redis: TestRedisServer;
  let service: TestService;

  beforeAll(async () => {
    redis = await startRedisServer({ extraArgs: ['--rename-command', 'CONFIG', ''] });
    service = await startTestService(testConfig(redis.url));
  });
  afterAll(async () => {
    await service.stop();
    await redis.destroy();
  });

  it('is served as before: the policy cannot be read, and nothing is concluded from that', async () => {
    await new Promise((resolve) => setTimeout(resolve, 2_500));
    const paid = await service.request('POST', '/payments', payBody('config-refused'));
    expect(paid.status).toBe(201);
    expect((await service.request('GET', '/readyz')).status).toBe(200);
  });
});
