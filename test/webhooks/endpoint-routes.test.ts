/**
 * Registering webhook endpoints over HTTP, on the real service and a real
 * Redis: the secret shown once, listings without it, deletion, the bound per
 * tenant, bad and private URLs refused with nothing written, tenants
 * isolated both ways, and an outage answered 503. Nothing is sent to any
 * endpoint here (see deliver.test.ts).
 */
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { WEBHOOK_EVENT_TYPES } from '../../src/webhooks/events.ts';
import { bearer, TEST_API_KEYS, TEST_KEYS } from '../support/api-keys.ts';
import { startRedisServer, type TestRedisServer } from '../support/redis-server.ts';
import { startTestService, testConfig, type TestService } from '../support/service-harness.ts';

const ALPHA = bearer(TEST_KEYS.alpha);
const BETA = bearer(TEST_KEYS.beta);

interface Created {
  id: string;
  url: string;
  events: string[];
  secret: string;
  createdAt: string;
}

/** Every key the service stored under its prefix. */
async function storedKeys(redis: Redis, prefix: string): Promise<string[]> {
  return (await redis.keys(`${prefix}:*`)).sort();
}

describe('webhook endpoints with API keys', () => {
  let service: TestService;
  let redis: Redis;
  beforeAll(async () => {
    service = await startTestService(
      testConfig(inject('redisUrl'), {
        PAYSTATE_API_KEYS: TEST_API_KEYS,
        PAYSTATE_RATE_LIMIT_PER_SECOND: '0',
        PAYSTATE_ROLES: 'api',
      }),
    );
    redis = new Redis(inject('redisUrl'));
  });
  afterAll(async () => {
    await service.stop();
    redis.disconnect();
  });

  const create = (body: unknown, headers = ALPHA) =>
    service.request('POST', '/webhook-endpoints', { body, headers });
  const list = (headers = ALPHA) => service.request('GET', '/webhook-endpoints', { headers });
  const remove = (id: string, headers = ALPHA) =>
    service.request('DELETE', `/webhook-endpoints/${id}`, { headers });

  it('registers an endpoint with 201, showing its secret once; the listing never shows it', async () => {
    const created = await create({
      url: 'https://93.184.215.14/hooks/paystate',
      events: ['payment.refunded', 'payment.processed', 'payment.refunded'],
    });
    expect(created.status).toBe(201);
    const body = created.body as Created;
    expect(body).toEqual({
      id: expect.stringMatching(/^we_[0-9a-f]{24}$/) as unknown,
      url: 'https://93.184.215.14/hooks/paystate',
      // Each type once, in the documented order.
      events: ['payment.processed', 'payment.refunded'],
      secret: expect.stringMatching(/^whsec_[A-Za-z0-9_-]{43}$/) as unknown,
      createdAt: expect.any(String) as unknown,
    });
    expect(created.headers.get('location')).toBe(`/webhook-endpoints/${body.id}`);

    const listed = await list();
    expect(listed.status).toBe(200);
    expect(listed.body).toEqual({
      endpoints: [
        {
          id: body.id,
          url: body.url,
          events: body.events,
          createdAt: body.createdAt,
        },
      ],
    });
    expect(JSON.stringify(listed.body)).not.toContain(body.secret);

    // A second registration gets its own id and secret, and lists after the first.
    const second = (await create({ url: 'http://93.184.215.14:8080/' })).body as Created;
    expect(second.events).toEqual([...WEBHOOK_EVENT_TYPES]);
    expect(second.id).not.toBe(body.id);
    expect(second.secret).not.toBe(body.secret);
    const both = (await list()).body as { endpoints: { id: string }[] };
    expect(both.endpoints.map((e) => e.id)).toEqual([body.id, second.id]);

    expect((await remove(body.id)).status).toBe(204);
    expect((await remove(second.id)).status).toBe(204);
  });

  it('deletes an endpoint: 204, then it is gone from the listing and a second delete is 404', async () => {
    const { id } = (await create({ url: 'https://93.184.215.14/a' })).body as Created;
    const deleted = await remove(id);
    expect(deleted.status).toBe(204);
    expect(deleted.body).toBeNull();
    expect((await list()).body).toEqual({ endpoints: [] });
    const again = await remove(id);
    expect(again.status).toBe(404);
    expect(again.body).toEqual({
      error: { code: 'not_found', message: `no webhook endpoint ${id}` },
    });
    expect((await remove('not-an-id')).status).toBe(404);
  });

  it("keeps tenants apart both ways: neither lists nor deletes the other's endpoints", async () => {
    const alphas = (await create({ url: 'https://93.184.215.14/alpha' })).body as Created;
    const betas = (await create({ url: 'https://93.184.215.14/beta' }, BETA)).body as Created;

    expect((await list(ALPHA)).body).toMatchObject({ endpoints: [{ id: alphas.id }] });
    expect((await list(BETA)).body).toMatchObject({ endpoints: [{ id: betas.id }] });
    expect((await list(ALPHA)).body).toEqual({
      endpoints: [expect.objectContaining({ id: alphas.id }) as unknown],
    });
    expect((await remove(alphas.id, BETA)).status).toBe(404);
    expect((await remove(betas.id, ALPHA)).status).toBe(404);
    // Still there for their owners, and the rotated key of alpha sees alpha's.
    expect((await list(bearer(TEST_KEYS.alphaRotated))).body).toMatchObject({
      endpoints: [{ id: alphas.id }],
    });
    expect((await list(BETA)).body).toMatchObject({ endpoints: [{ id: betas.id }] });

    expect((await remove(alphas.id)).status).toBe(204);
    expect((await remove(betas.id, BETA)).status).toBe(204);
  });

  it('needs an API key', async () => {
    const response = await service.request('GET', '/webhook-endpoints');
    expect(response.status).toBe(401);
  });

  it.each([
    [{}, 'invalid_request', 'url is required'],
    [{ url: 42 }, 'invalid_request', 'url must be a string'],
    [{ url: 'https://93.184.215.14/', extra: 1 }, 'invalid_request', 'unknown field(s): extra'],
    [
      { url: 'https://93.184.215.14/', events: ['payment.charged'] },
      'invalid_request',
      `events[0] must be one of ${WEBHOOK_EVENT_TYPES.join(', ')}, got "payment.charged"`,
    ],
    [
      { url: 'https://93.184.215.14/', events: [] },
      'invalid_request',
      'events must name at least one event type',
    ],
    [
      { url: 'https://93.184.215.14/', events: 'payment.processed' },
      'invalid_request',
      'events must be an array of event types',
    ],
    [
      { url: 'ftp://93.184.215.14/' },
      'invalid_webhook_url',
      'the URL must be http or https, not ftp',
    ],
    [
      { url: 'https://u:p@93.184.215.14/' },
      'invalid_webhook_url',
      'the URL must not carry a user name or password',
    ],
    [{ url: 'not a url' }, 'invalid_webhook_url', 'the URL is not a valid absolute URL'],
    [{ url: 'http://127.0.0.1:9/' }, 'invalid_webhook_url', '127.0.0.1 is a loopback address'],
    [{ url: 'http://0x7f.1/' }, 'invalid_webhook_url', '127.0.0.1 is a loopback address'],
    [{ url: 'http://[::ffff:127.0.0.1]/' }, 'invalid_webhook_url', 'IPv4-mapped 127.0.0.1'],
    [{ url: 'http://10.0.0.8/' }, 'invalid_webhook_url', '10.0.0.8 is a private address'],
    [
      { url: 'http://169.254.169.254/latest' },
      'invalid_webhook_url',
      '169.254.169.254 is a cloud metadata address',
    ],
    [{ url: 'http://localhost:8080/' }, 'invalid_webhook_url', 'localhost is this machine'],
  ])('refuses %j with 400 %s, writing nothing', async (body, code, message) => {
    const before = await storedKeys(redis, service.config.keyPrefix);
    const response = await create(body);
    expect(response.status).toBe(400);
    const error = (response.body as { error: { code: string; message: string } }).error;
    expect(error.code).toBe(code);
    expect(error.message).toContain(message);
    expect(await storedKeys(redis, service.config.keyPrefix)).toEqual(before);
    expect((await list()).body).toEqual({ endpoints: [] });
  });

  it('refuses a 17th endpoint with 409 webhook_endpoint_limit; a deletion makes room', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 16; i += 1) {
      const created = await create({ url: `https://93.184.215.14/n${i}` });
      expect(created.status).toBe(201);
      ids.push((created.body as Created).id);
    }
    const refused = await create({ url: 'https://93.184.215.14/n16' });
    expect(refused.status).toBe(409);
    expect(refused.body).toEqual({
      error: {
        code: 'webhook_endpoint_limit',
        message: 'a tenant may register at most 16 webhook endpoints; delete one first',
      },
    });
    // The other tenant's bound is its own.
    const betas = await create({ url: 'https://93.184.215.14/beta' }, BETA);
    expect(betas.status).toBe(201);
    expect(((await list()).body as { endpoints: unknown[] }).endpoints).toHaveLength(16);

    expect((await remove(ids[0] ?? '')).status).toBe(204);
    expect((await create({ url: 'https://93.184.215.14/n16' })).status).toBe(201);
    for (const { id } of ((await list()).body as { endpoints: { id: string }[] }).endpoints) {
      expect((await remove(id)).status).toBe(204);
    }
    expect((await remove((betas.body as Created).id, BETA)).status).toBe(204);
  });

  it("keeps each tenant's endpoints under one hash tag, and the secret out of every listing", async () => {
    const { id, secret } = (await create({ url: 'https://93.184.215.14/tag' })).body as Created;
    const keys = await storedKeys(redis, service.config.keyPrefix);
    const prefix = service.config.keyPrefix;
    const alphas = keys.filter((key) => key.startsWith(`${prefix}:{webhooks:alpha}`));
    expect(alphas).toEqual([
      `${prefix}:{webhooks:alpha}:endpoints`,
      `${prefix}:{webhooks:alpha}:seq`,
    ]);
    // Nothing of a tenant's endpoints outside its own hash tag.
    expect(
      keys.filter(
        (key) =>
          key.includes('webhooks') && !/^[^:]+:\{webhooks:[a-z]+\}:(endpoints|seq)$/.test(key),
      ),
    ).toEqual([]);
    expect(JSON.stringify((await list()).body)).not.toContain(secret);
    expect((await remove(id)).status).toBe(204);
  });
});

describe('webhook endpoints in local mode', () => {
  it('lets a loopback URL through with PAYSTATE_WEBHOOK_ALLOW_PRIVATE=1, and refuses it without', async () => {
    const strict = await startTestService(
      testConfig(inject('redisUrl'), { PAYSTATE_ROLES: 'api' }),
    );
    const open = await startTestService(
      testConfig(inject('redisUrl'), {
        PAYSTATE_ROLES: 'api',
        PAYSTATE_WEBHOOK_ALLOW_PRIVATE: '1',
      }),
    );
    try {
      const refused = await strict.request('POST', '/webhook-endpoints', {
        body: { url: 'http://127.0.0.1:9/hook' },
      });
      expect(refused.status).toBe(400);
      const allowed = await open.request('POST', '/webhook-endpoints', {
        body: { url: 'http://127.0.0.1:9/hook', events: ['payment.expired'] },
      });
      expect(allowed.status).toBe(201);
      expect(allowed.body).toMatchObject({
        url: 'http://127.0.0.1:9/hook',
        events: ['payment.expired'],
      });
      // Still only http and https, and no credentials.
      const ftp = await open.request('POST', '/webhook-endpoints', {
        body: { url: 'ftp://127.0.0.1/' },
      });
      expect(ftp.status).toBe(400);
      expect((await open.request('GET', '/webhook-endpoints')).body).toMatchObject({
        endpoints: [{ url: 'http://127.0.0.1:9/hook' }],
      });
    } finally {
      await strict.stop();
      await open.stop();
    }
  });
});

describe('webhook endpoints named by a host name', () => {
  let service: TestService;
  const asked: string[] = [];
  beforeAll(async () => {
    // No name reaches a real resolver, and nothing connects: registration only resolves.
    const names: Record<string, string> = {
      'hooks.example.com': '93.184.215.14',
      'internal.example.com': '10.0.0.5',
      'metadata.example.com': '169.254.169.254',
    };
    service = await startTestService(testConfig(inject('redisUrl'), { PAYSTATE_ROLES: 'api' }), {
      webhookResolver: (hostname) => {
        asked.push(hostname);
        const address = names[hostname];
        return address === undefined
          ? Promise.reject(Object.assign(new Error('ENOTFOUND'), { code: 'ENOTFOUND' }))
          : Promise.resolve([{ address, family: 4 }]);
      },
    });
  });
  afterAll(async () => {
    await service.stop();
  });

  it('refuses a name that resolves to a private or metadata address, after DNS, and one that does not resolve', async () => {
    for (const [url, message] of [
      [
        'https://internal.example.com/hook',
        'internal.example.com resolves to 10.0.0.5 is a private address',
      ],
      ['http://metadata.example.com/', 'cloud metadata address'],
      ['https://nowhere.example.com/', 'nowhere.example.com does not resolve'],
    ] as const) {
      const response = await service.request('POST', '/webhook-endpoints', { body: { url } });
      expect(response.status, url).toBe(400);
      expect(response.body).toMatchObject({ error: { code: 'invalid_webhook_url' } });
      expect((response.body as { error: { message: string } }).error.message).toContain(message);
    }
    expect((await service.request('GET', '/webhook-endpoints')).body).toEqual({ endpoints: [] });
    const allowed = await service.request('POST', '/webhook-endpoints', {
      body: { url: 'https://hooks.example.com/paystate' },
    });
    expect(allowed.status).toBe(201);
    expect(asked).toEqual([
      'internal.example.com',
      'metadata.example.com',
      'nowhere.example.com',
      'hooks.example.com',
    ]);
  });
});

describe('webhook endpoints while Redis is down', () => {
  let redisServer: TestRedisServer;
  let service: TestService;
  beforeAll(async () => {
    redisServer = await startRedisServer();
    service = await startTestService(testConfig(redisServer.url, { PAYSTATE_ROLES: 'api' }));
  });
  afterAll(async () => {
    await service.stop();
    await redisServer.destroy();
  });

  it('answers 503 unavailable with Retry-After to a registration, a listing and a deletion', async () => {
    await redisServer.kill('SIGKILL');
    for (const [method, path, body] of [
      ['POST', '/webhook-endpoints', { url: 'https://93.184.215.14/' }],
      ['GET', '/webhook-endpoints', undefined],
      ['DELETE', `/webhook-endpoints/we_${'0'.repeat(24)}`, undefined],
    ] as const) {
      const response = await service.request(method, path, body === undefined ? {} : { body });
      expect(response.status, `${method} ${path}`).toBe(503);
      expect(response.headers.get('retry-after')).toMatch(/^\d+$/);
      expect(response.body).toMatchObject({ error: { code: 'unavailable' } });
    }
  });
});
