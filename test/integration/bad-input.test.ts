import { request as httpRequest } from 'node:http';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startTestService, testConfig, type TestService } from '../support/service-harness.ts';

type Response = Awaited<ReturnType<TestService['request']>>;

interface Case {
  readonly name: string;
  readonly body?: unknown;
  readonly rawBody?: string;
  readonly status: number;
  readonly code: string;
}

const KEY = 'bad-input-key';
const valid = { accountId: 'acct-bad', amountCents: 100 };

const bodyCases: Case[] = [
  {
    name: 'malformed JSON',
    rawBody: '{"accountId": "acct-bad",',
    status: 400,
    code: 'invalid_json',
  },
  { name: 'an empty body', rawBody: '', status: 400, code: 'invalid_request' },
  { name: 'a JSON array', body: [valid], status: 400, code: 'invalid_request' },
  { name: 'a JSON string', body: 'acct-bad', status: 400, code: 'invalid_request' },
  { name: 'a JSON number', body: 100, status: 400, code: 'invalid_request' },
  { name: 'JSON null', rawBody: 'null', status: 400, code: 'invalid_request' },
  { name: 'a missing accountId', body: { amountCents: 100 }, status: 400, code: 'invalid_request' },
  {
    name: 'a missing amountCents',
    body: { accountId: 'acct-bad' },
    status: 400,
    code: 'invalid_request',
  },
  {
    name: 'a negative amount',
    body: { ...valid, amountCents: -100 },
    status: 400,
    code: 'invalid_request',
  },
  {
    name: 'a zero amount',
    body: { ...valid, amountCents: 0 },
    status: 400,
    code: 'invalid_request',
  },
  {
    name: 'a non-integer amount',
    body: { ...valid, amountCents: 10.5 },
    status: 400,
    code: 'invalid_request',
  },
  {
    name: 'an amount above 100000000000',
    body: { ...valid, amountCents: 100_000_000_001 },
    status: 400,
    code: 'invalid_request',
  },
  {
    name: 'an amount beyond the safe integers',
    rawBody: '{"accountId":"acct-bad","amountCents":1e300}',
    status: 400,
    code: 'invalid_request',
  },
  // Amounts are judged by their JSON text: JSON.parse reads each of these as
  // an integer (or rounds it to one), but none is written as one.
  ...[
    '1.0000000000000001',
    '99999999999.99999999',
    '100.0',
    '1e3',
    '1E3',
    '1.5e2',
    '10000e-2',
    '-0',
  ].map((literal): Case => ({
    name: `the amount ${literal}`,
    rawBody: `{"accountId":"acct-bad","amountCents":${literal}}`,
    status: 400,
    code: 'invalid_request',
  })),
  // A leading plus or zero is not JSON at all.
  ...['+100', '0100'].map((literal): Case => ({
    name: `the amount ${literal}`,
    rawBody: `{"accountId":"acct-bad","amountCents":${literal}}`,
    status: 400,
    code: 'invalid_json',
  })),
  {
    name: 'an amount given as a string',
    body: { ...valid, amountCents: '100' },
    status: 400,
    code: 'invalid_request',
  },
  {
    name: 'an accountId that is not a string',
    body: { ...valid, accountId: 42 },
    status: 400,
    code: 'invalid_request',
  },
  {
    name: 'the accountId ..',
    body: { ...valid, accountId: '..' },
    status: 400,
    code: 'invalid_request',
  },
  {
    name: 'the accountId .',
    body: { ...valid, accountId: '.' },
    status: 400,
    code: 'invalid_request',
  },
  {
    name: 'an accountId with a space',
    body: { ...valid, accountId: 'acct bad' },
    status: 400,
    code: 'invalid_request',
  },
  {
    name: 'an accountId longer than 128 characters',
    body: { ...valid, accountId: 'a'.repeat(129) },
    status: 400,
    code: 'invalid_request',
  },
  {
    name: 'an extra unknown field',
    body: { ...valid, colour: 'red' },
    status: 400,
    code: 'invalid_request',
  },
  {
    name: 'a __proto__ field',
    rawBody: '{"accountId":"acct-bad","amountCents":100,"__proto__":{"admin":true}}',
    status: 400,
    code: 'invalid_request',
  },
  // JSON.parse keeps the last of a repeated member: {"accountId":"a",…,
  // "accountId":"b"} charged account b. A repeat at any depth is refused.
  ...[
    '{"accountId":"acct-bad","amountCents":7,"accountId":"acct-other"}',
    '{"accountId":"acct-bad","amountCents":7,"amountCents":7}',
    '{"accountId":"acct-bad","accountId":"acct-bad","amountCents":7}',
    '{"accountId":"acct-bad","amountCents":7,"meta":{"x":1,"x":2}}',
    '{"accountId":"acct-bad","amountCents":7,"meta":[{"x":{"y":1,"y":1}}]}',
    '{"accountId":"acct-bad","amountCents":7,"__proto__":1,"__proto__":2}',
    '{"accountId":"acct-bad","amountCents":7,"\\u0061ccountId":"acct-other"}',
  ].map((rawBody): Case => ({
    name: `a repeated member in ${rawBody}`,
    rawBody,
    status: 400,
    code: 'invalid_json',
  })),
  {
    name: 'a body over 16kb',
    rawBody: JSON.stringify({ ...valid, pad: 'x'.repeat(17 * 1024) }),
    status: 413,
    code: 'payload_too_large',
  },
];

/** Path segments that must never be accepted as a token or account id. */
const badSegments: { name: string; segment: string }[] = [
  { name: '256 characters', segment: 'a'.repeat(256) },
  { name: 'an encoded space', segment: 'bad%20token' },
  { name: 'an encoded slash', segment: 'bad%2Ftoken' },
  { name: 'an encoded colon', segment: 'bad%3Atoken' },
  { name: 'an encoded brace', segment: 'bad%7Btoken%7D' },
  { name: 'unicode', segment: encodeURIComponent('café-€') },
  { name: 'a malformed percent-escape', segment: 'bad%E0%A4%A' },
];

const badHeaderKeys: { name: string; key: string }[] = [
  { name: '256 characters', key: 'a'.repeat(256) },
  { name: 'a space', key: 'bad key' },
  { name: 'a slash', key: 'bad/key' },
  { name: 'a colon', key: 'bad:key' },
  { name: 'latin-1 characters', key: 'café' },
  { name: 'nothing', key: '' },
  { name: 'a dot', key: '.' },
  { name: 'a dot-dot', key: '..' },
];

describe('bad input', () => {
  let service: TestService;
  let redis: Redis;

  /**
   * Keys under the service's prefix, apart from what the service writes when
   * it starts: the queue metadata BullMQ writes and the store's identity.
   */
  const writtenKeys = async () => {
    const prefix = service.config.keyPrefix;
    const keys: string[] = [];
    let cursor = '0';
    do {
      const [next, batch] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
      cursor = next;
      keys.push(...batch);
    } while (cursor !== '0');
    const atStart = [`${service.keys.queuePrefix}:payment-timers:meta`, service.keys.store];
    return keys.filter((k) => !atStart.includes(k)).sort();
  };

  /** A 4xx with the JSON error shape, no stack or library text, and nothing in Redis. */
  const expectRejected = async (response: Response, status: number, code?: string) => {
    expect(response.status).toBe(status);
    expect(response.headers.get('content-type')).toMatch(/^application\/json/);
    expect(response.body).toEqual({
      error: {
        code: code ?? (expect.any(String) as unknown),
        message: expect.any(String) as unknown,
      },
    });
    const text = JSON.stringify(response.body);
    expect(text).not.toMatch(/\bat .+:\d+:\d+|node_modules|\.ts\b|SyntaxError|URIError/);
    expect(await writtenKeys()).toEqual([]);
  };

  beforeAll(async () => {
    // The api role alone: no worker or sweep writing keys of their own in the background.
    service = await startTestService(testConfig(inject('redisUrl'), { PAYSTATE_ROLES: 'api' }));
    redis = new Redis(inject('redisUrl'));
  });
  afterAll(async () => {
    await service.stop();
    await redis.quit();
  });

  describe('POST /payments body', () => {
    it.each(bodyCases)('rejects $name with $status and writes nothing', async (c) => {
      const response = await service.request('POST', '/payments', {
        body: c.body,
        rawBody: c.rawBody,
        headers: { 'Idempotency-Key': KEY },
      });
      await expectRejected(response, c.status, c.code);
    });
  });

  describe('amounts not written as integers', () => {
    it('are refused with a message that says how the amount was written', async () => {
      const response = await service.request('POST', '/payments', {
        rawBody: '{"accountId":"acct-bad","amountCents":1.0000000000000001}',
        headers: { 'Idempotency-Key': KEY },
      });

      await expectRejected(response, 400, 'invalid_request');
      expect(response.body).toEqual({
        error: {
          code: 'invalid_request',
          message:
            'amountCents must be a whole number of cents written as an integer (no fraction or exponent), got 1.0000000000000001',
        },
      });
    });
  });

  describe('repeated members', () => {
    it('are refused with a message that names the member', async () => {
      const response = await service.request('POST', '/payments', {
        rawBody: '{"accountId":"acct-bad","amountCents":7,"accountId":"acct-other"}',
        headers: { 'Idempotency-Key': KEY },
      });
      await expectRejected(response, 400, 'invalid_json');
      expect(response.body).toEqual({
        error: { code: 'invalid_json', message: 'body repeats the member "accountId"' },
      });
    });
  });

  describe('POST /PaymentProcessor/{token}/makePayment body', () => {
    it.each(bodyCases)('rejects $name with $status and writes nothing', async (c) => {
      const response = await service.request('POST', `/PaymentProcessor/${KEY}/makePayment`, {
        body: c.body,
        rawBody: c.rawBody,
      });
      await expectRejected(response, c.status, c.code);
    });
  });

  describe('Idempotency-Key header', () => {
    it.each(badHeaderKeys)('rejects a key of $name with 400 and writes nothing', async (c) => {
      const response = await service.request('POST', '/payments', {
        body: valid,
        headers: { 'Idempotency-Key': c.key },
      });
      await expectRejected(response, 400);
    });
  });

  describe('tokens in the path', () => {
    const routes: { route: string; method: string; path: (token: string) => string }[] = [
      { route: 'makePayment', method: 'POST', path: (t) => `/PaymentProcessor/${t}/makePayment` },
      {
        route: 'cancelPayment',
        method: 'POST',
        path: (t) => `/PaymentProcessor/${t}/cancelPayment`,
      },
      { route: 'cancel', method: 'POST', path: (t) => `/payments/${t}/cancel` },
      { route: 'GET payment', method: 'GET', path: (t) => `/payments/${t}` },
    ];
    const cases = routes.flatMap((r) => badSegments.map((s) => ({ ...r, ...s })));

    it.each(cases)('$route rejects a token of $name with 400 and writes nothing', async (c) => {
      const response = await service.request(c.method, c.path(c.segment), {
        body: c.route === 'makePayment' ? valid : undefined,
      });
      await expectRejected(response, 400);
    });

    it('accepts a token of exactly 255 characters', async () => {
      const response = await service.request('GET', `/payments/${'a'.repeat(255)}`);
      await expectRejected(response, 404, 'not_found');
    });
  });

  describe('the tokens "." and ".." sent raw', () => {
    /** node:http sends the path as given; fetch and browsers would resolve the dot segments away. */
    const sendRaw = (method: string, path: string, headers: Record<string, string> = {}) =>
      new Promise<Response>((resolve, reject) => {
        const body = method === 'POST' ? JSON.stringify(valid) : undefined;
        const req = httpRequest(
          {
            host: '127.0.0.1',
            port: Number(new URL(service.url).port),
            method,
            path,
            headers:
              body === undefined ? headers : { 'content-type': 'application/json', ...headers },
          },
          (res) => {
            let text = '';
            res.on('data', (chunk: Buffer) => (text += chunk.toString()));
            res.on('end', () => {
              const responseHeaders = new Headers();
              for (const [name, value] of Object.entries(res.headers)) {
                if (typeof value === 'string') responseHeaders.set(name, value);
              }
              resolve({
                status: res.statusCode ?? 0,
                headers: responseHeaders,
                body: JSON.parse(text) as unknown,
              });
            });
          },
        );
        req.on('error', reject);
        req.end(body);
      });

    // Percent-encoded too: the router decodes the segment to "." or "..", and
    // fetch, like browsers, resolves even the encoded forms away.
    const cases = ['.', '..', '%2e', '%2E%2e'].flatMap((token) => [
      { token, method: 'POST', path: `/PaymentProcessor/${token}/makePayment` },
      { token, method: 'POST', path: `/PaymentProcessor/${token}/cancelPayment` },
      { token, method: 'POST', path: `/payments/${token}/cancel` },
      { token, method: 'GET', path: `/payments/${token}` },
    ]);

    it.each(cases)(
      '$method $path is refused with 400 invalid_token and writes nothing',
      async (c) => {
        await expectRejected(await sendRaw(c.method, c.path), 400, 'invalid_token');
      },
    );

    it.each(['.', '..'])(
      'POST /payments with Idempotency-Key "%s" is refused with 400 invalid_token and writes nothing',
      async (key) => {
        const response = await sendRaw('POST', '/payments', { 'Idempotency-Key': key });
        await expectRejected(response, 400, 'invalid_token');
      },
    );

    it.each(['.', '..', '%2e', '%2E%2e'])(
      'GET /accounts/%s is refused with 400 invalid_account_id',
      async (id) => {
        await expectRejected(await sendRaw('GET', `/accounts/${id}`), 400, 'invalid_account_id');
      },
    );
  });

  describe('GET /accounts/{id}', () => {
    const segments = [
      ...badSegments.filter((s) => s.segment !== 'a'.repeat(256)),
      { name: '129 characters', segment: 'a'.repeat(129) },
    ];

    it.each(segments)('rejects an account id of $name with 400 and writes nothing', async (c) => {
      const response = await service.request('GET', `/accounts/${c.segment}`);
      await expectRejected(response, 400);
    });
  });

  describe('unknown routes', () => {
    it.each([
      ['GET', '/'],
      ['GET', '/nope'],
      ['GET', '/payments'],
      ['DELETE', `/payments/${KEY}`],
      ['PUT', `/payments/${KEY}`],
      ['POST', `/payments/${KEY}`],
      ['GET', `/payments/${KEY}/cancel`],
      ['POST', `/PaymentProcessor/${KEY}/refund`],
    ])('answers %s %s with a 404 JSON error and writes nothing', async (method, path) => {
      const response = await service.request(method, path, {
        body: method === 'GET' ? undefined : valid,
      });
      await expectRejected(response, 404, 'not_found');
    });
  });

  // Last, because it writes: shows that the check above does see writes.
  describe('a valid request', () => {
    it('writes the token and account keys the checks above look for', async () => {
      const response = await service.request('POST', '/payments', {
        body: valid,
        headers: { 'Idempotency-Key': KEY },
      });

      expect(response.status).toBe(201);
      const keys = await writtenKeys();
      expect(keys).toContain(service.keys.state(KEY));
      expect(keys).toContain(service.keys.account(valid.accountId));
      expect(keys).toContain(service.keys.accountLedger(valid.accountId));
    });
  });
});
