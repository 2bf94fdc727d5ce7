/**
 * Authentication and rate limits while Redis is away: keys are checked
 * without Redis, the limits fall back to each process's memory, and a
 * request with a valid key goes on to meet the outage (503), neither hung
 * nor waved through unlimited.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bearer, TEST_API_KEYS, TEST_KEYS } from '../support/api-keys.ts';
import { startRedisServer, type TestRedisServer } from '../support/redis-server.ts';
import { startTestService, testConfig, type TestService } from '../support/service-harness.ts';

type Reply = Awaited<ReturnType<TestService['request']>>;
const codeOf = (reply: Reply) => (reply.body as { error?: { code?: string } }).error?.code;

describe('authentication while Redis is down', () => {
  let redis: TestRedisServer;
  let service: TestService;
  beforeAll(async () => {
    redis = await startRedisServer();
    service = await startTestService(
      testConfig(redis.url, {
        PAYSTATE_API_KEYS: TEST_API_KEYS,
        PAYSTATE_RATE_LIMIT_PER_SECOND: '1000',
        PAYSTATE_AUTH_FAILURES_PER_MINUTE: '3',
      }),
    );
  });
  afterAll(async () => {
    await redis.start().catch(() => undefined);
    await service.stop();
    await redis.destroy();
  });

  it('answers 503 to a valid key, 401 then 429 to bad ones, counted in memory', async () => {
    await redis.kill();
    const started = Date.now();
    const withKey = await service.request('GET', '/accounts/abc', {
      headers: bearer(TEST_KEYS.alpha),
    });
    expect(withKey.status).toBe(503);
    expect(codeOf(withKey)).toBe('unavailable');

    const statuses: number[] = [];
    for (let i = 0; i < 5; i += 1) {
      const reply = await service.request('GET', '/accounts/abc', {
        headers: bearer(`sk_guess_${i}`),
      });
      statuses.push(reply.status);
    }
    expect(statuses).toEqual([401, 401, 401, 429, 429]);
    // Nothing waited for Redis's command timeout on the way.
    expect(Date.now() - started).toBeLessThan(5_000);
    expect((await service.request('GET', '/healthz')).status).toBe(200);
  });
});
