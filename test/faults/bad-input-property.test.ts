/**
 * Bad input as a property: generated bodies, headers and path segments
 * against every route. Whatever comes in, the service answers with a 4xx and
 * the JSON error shape (no stack trace, never a 5xx) and writes nothing. The
 * few generated requests that are valid get the answer the API documents for
 * them (a read of an unknown token or an untouched account) and write nothing
 * either; valid requests that would write are never generated.
 */
import { request as httpRequest, Agent, validateHeaderValue } from 'node:http';
import { connect, type Socket } from 'node:net';
import * as zlib from 'node:zlib';
import fc from 'fast-check';
import { Redis } from 'ioredis';
import { parse as parseJson } from 'lossless-json';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { BODY_LIMIT_BYTES } from '../../src/http/app.ts';
import { iterations, reportScenario } from '../support/fault-report.ts';
import { ROOT } from '../support/processes.ts';
import {
  startTestService,
  testConfig,
  waitFor,
  type TestService,
} from '../support/service-harness.ts';

const NUM_RUNS = iterations(1000, 10_000);
const INITIAL_BALANCE_CENTS = 100_000;

// The rules of docs/api.md, written out here so the test checks the service against
// the documentation rather than against its own code.
const TOKEN_RULE = /^(?!\.{1,2}$)[A-Za-z0-9._~-]{1,255}$/;
const ACCOUNT_ID_RULE = /^(?!\.{1,2}$)[A-Za-z0-9._~-]{1,128}$/;
const MAX_AMOUNT_CENTS = 100_000_000_000;
const STATUS_BY_CODE: Record<string, number> = {
  invalid_request: 400,
  invalid_json: 400,
  invalid_token: 400,
  invalid_account_id: 400,
  missing_idempotency_key: 400,
  not_found: 404,
  payload_too_large: 413,
  unsupported_media_type: 415,
};

const VALID_KEY = 'bad-input-property-key';
const VALID_BODY = { accountId: 'acct-bad-input', amountCents: 100 };
const utf8 = (text: string) => Buffer.from(text, 'utf8');
const preview = (bytes: Uint8Array) => Buffer.from(bytes).toString('utf8').slice(0, 120);

/**
 * True for a body the API would accept as a payment (so a request with it may
 * write). Numbers are read as the text they were written as: an amount counts
 * only when written as an integer, so `100.0` or `1e2` is a bad body.
 */
function isValidPaymentBody(bytes: Uint8Array): boolean {
  let value: unknown;
  try {
    const text = new TextDecoder().decode(bytes);
    JSON.parse(text);
    value = parseJson(text, null, {
      parseNumber: (literal) =>
        /^-?(0|[1-9][0-9]*)$/.test(literal) ? Number(literal) : `not an integer: ${literal}`,
      onDuplicateKey: ({ newValue }) => newValue,
    });
  } catch {
    return false;
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const keys = Object.keys(value);
  if (keys.length !== 2 || !keys.includes('accountId') || !keys.includes('amountCents')) {
    return false;
  }
  const { accountId, amountCents } = value as Record<string, unknown>;
  return (
    typeof accountId === 'string' &&
    ACCOUNT_ID_RULE.test(accountId) &&
    typeof amountCents === 'number' &&
    Number.isInteger(amountCents) &&
    amountCents >= 1 &&
    amountCents <= MAX_AMOUNT_CENTS
  );
}

/** How the router sees a path segment: decoded, or refused as malformed percent-encoding. */
function decodeSegment(segment: string): string | null {
  try {
    return decodeURIComponent(segment);
  } catch {
    return null;
  }
}

/** Node's HTTP client refuses some header values outright; those are never sent. */
function sendableHeader(value: string): boolean {
  try {
    validateHeaderValue('x-probe', value);
    return true;
  } catch {
    return false;
  }
}

/** What the server sees of a header value: HTTP trims optional whitespace. */
const trimHttp = (value: string) => value.replace(/^[\t ]+|[\t ]+$/g, '');

// ---------------------------------------------------------------------------
// Generators

const validAccountId = fc
  .stringMatching(/^[A-Za-z0-9._~-]{1,24}$/)
  .filter((s) => ACCOUNT_ID_RULE.test(s));
const validAmount = fc.integer({ min: 1, max: MAX_AMOUNT_CENTS });
const anyJson = fc.jsonValue({ maxDepth: 3 });

const badAccountId = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 40 }).filter((s) => !ACCOUNT_ID_RULE.test(s)),
  fc.stringMatching(/^[A-Za-z0-9._~-]{129,600}$/),
  fc.integer(),
  fc.constantFrom(
    null,
    true,
    false,
    '',
    ' ',
    '.',
    '..',
    'acct bad',
    'acct/bad',
    'acct:{x}',
    'café',
  ),
  fc.array(fc.string({ maxLength: 5 }), { maxLength: 3 }),
  fc.dictionary(fc.string({ maxLength: 5 }), fc.string({ maxLength: 5 }), { maxKeys: 2 }),
);

const badAmount = fc.oneof(
  fc.integer({ min: -MAX_AMOUNT_CENTS * 10, max: 0 }),
  fc.double({ noNaN: true, noDefaultInfinity: true }).filter((n) => !Number.isInteger(n)),
  fc.integer({ min: MAX_AMOUNT_CENTS + 1, max: Number.MAX_SAFE_INTEGER }),
  fc.constantFrom(1e21, 1e300, Number.MAX_VALUE, -0, 0.5, 99.99),
  fc.constantFrom('NaN', 'Infinity', '-Infinity', '1e3', '0x10', '100', ' 100', '', '١٠٠'),
  fc.constantFrom(null, true, false),
  fc.array(fc.integer(), { maxLength: 3 }),
  fc.dictionary(fc.string({ maxLength: 5 }), fc.integer(), { maxKeys: 2 }),
);

/** Objects shaped like a payment with wrong types, missing fields and extra fields. */
const paymentLikeObject = fc
  .tuple(
    fc.record(
      {
        accountId: fc.oneof(validAccountId, badAccountId),
        amountCents: fc.oneof(validAmount, badAmount),
      },
      { requiredKeys: [] },
    ),
    fc.array(fc.tuple(fc.string({ maxLength: 12 }), anyJson), { maxLength: 3 }),
  )
  // fromEntries defines own properties, so even a "__proto__" field is sent as a field.
  .map(([fields, extra]) =>
    JSON.stringify(Object.fromEntries([...Object.entries(fields), ...extra])),
  );

/** Number literals JSON.parse refuses or reads as something else than they look. */
const oddAmountLiteral = fc
  .constantFrom(
    'NaN',
    'Infinity',
    '-Infinity',
    '1e999',
    '-1e999',
    '0x10',
    '01',
    '1.',
    '.5',
    '+1',
    '1_000',
    '100n',
    '1e2',
    '100.0',
    '100.5',
    '-0',
    'undefined',
    "'100'",
    '9007199254740993',
  )
  .map((literal) => `{"accountId":"acct-bad","amountCents":${literal}}`);

const deeplyNested = fc.oneof(
  fc.integer({ min: 10, max: 8_000 }).map((n) => '['.repeat(n) + ']'.repeat(n)),
  fc.integer({ min: 10, max: 2_500 }).map((n) => '{"a":'.repeat(n) + '1' + '}'.repeat(n)),
  fc
    .integer({ min: 10, max: 2_500 })
    .map((n) => `{"accountId":${'['.repeat(n)}"a"${']'.repeat(n)},"amountCents":1}`),
  fc.integer({ min: 1, max: 10_000 }).map((n) => '['.repeat(n)),
);

const longStrings = fc.oneof(
  fc
    .integer({ min: 129, max: 20_000 })
    .map((n) => `{"accountId":"${'a'.repeat(n)}","amountCents":100}`),
  fc
    .integer({ min: 1, max: 40_000 })
    .map((n) => `{"accountId":"acct","amountCents":100,"note":"${'x'.repeat(n)}"}`),
  fc.string({ unit: 'grapheme', minLength: 200, maxLength: 2_000 }).map((s) => JSON.stringify(s)),
);

/** Bodies around and far over the limit: the size alone decides. */
const sizedBodies = fc
  .oneof(
    fc.constantFrom(BODY_LIMIT_BYTES - 1, BODY_LIMIT_BYTES, BODY_LIMIT_BYTES + 1),
    fc.integer({ min: BODY_LIMIT_BYTES + 1, max: 400_000 }),
  )
  .map((size) => `{"pad":"${'p'.repeat(Math.max(0, size - 10))}"}`);

const bodyBytes: fc.Arbitrary<Uint8Array> = fc
  .oneof(
    anyJson.map((v) => utf8(JSON.stringify(v))),
    paymentLikeObject.map(utf8),
    oddAmountLiteral.map(utf8),
    deeplyNested.map(utf8),
    longStrings.map(utf8),
    sizedBodies.map(utf8),
    fc.uint8Array({ maxLength: 300 }),
    fc.string({ unit: 'binary', maxLength: 200 }).map(utf8),
    fc.constantFrom('', ' ', 'null', '{}', '[]', '"x"', '{', '}{', '\u0000').map(utf8),
  )
  .filter((bytes) => !isValidPaymentBody(bytes));

const contentTypes = fc.option(
  fc.oneof(
    fc.constantFrom(
      'application/json',
      'application/json; charset=utf-8',
      'application/json; charset=UTF-8',
      'application/json; charset=latin1',
      'application/json; charset=utf-16le',
      'application/json; charset=nope',
      'application/json; charset',
      'application/json;;',
      'text/plain',
      'application/x-www-form-urlencoded',
      'multipart/form-data; boundary=x',
      '*/*',
      '',
      'garbage',
    ),
    fc.string({ unit: 'binary-ascii', maxLength: 40 }).filter(sendableHeader),
  ),
  { freq: 3 },
);

/** Content-Encoding and whether the body really is encoded that way. */
const encodings = fc.option(
  fc.record({
    name: fc.constantFrom(
      'identity',
      'gzip',
      'GZIP',
      'deflate',
      'br',
      'zstd',
      'x-unknown',
      'gzip, br',
    ),
    compress: fc.boolean(),
  }),
  { freq: 4 },
);

const SUPPORTED_ENCODINGS = new Set(['identity', 'gzip', 'deflate', 'br']);
if ('createZstdDecompress' in zlib) SUPPORTED_ENCODINGS.add('zstd');

function encode(bytes: Uint8Array, name: string): Uint8Array {
  switch (name.toLowerCase()) {
    case 'gzip':
      return zlib.gzipSync(bytes);
    case 'deflate':
      return zlib.deflateSync(bytes);
    case 'br':
      return zlib.brotliCompressSync(bytes);
    default:
      return bytes;
  }
}

/** Arbitrary strings as path segments, percent-encoded as a client would, and raw percent garbage. */
const pathSegments = fc.oneof(
  fc.string({ unit: 'grapheme', maxLength: 40 }).map(encodeURIComponent),
  fc.string({ unit: 'binary', maxLength: 40 }).map(encodeURIComponent),
  fc.stringMatching(/^[A-Za-z0-9._~-]{200,300}$/),
  fc.stringMatching(/^[A-Za-z0-9._~-]{1,12}$/),
  // What HTTP lets through unescaped in a path (RFC 3986 pchar), heavy on '%'.
  fc.stringMatching(/^([A-Za-z0-9._~!$&'()*+,;=:@-]|%[0-9A-Fa-fGg]{0,2}){1,30}$/),
  fc.constantFrom(
    '',
    '%',
    '%%',
    '%G1',
    '%E0%A4%A',
    '%00',
    '%2F',
    '%2e%2e',
    '%7B%7D',
    '%FF',
    '.',
    '..',
  ),
);

// ---------------------------------------------------------------------------
// Cases

interface Case {
  /** What is bad about it: the body, the Idempotency-Key, the token or the account id in the path. */
  readonly kind: 'body' | 'key' | 'token' | 'account';
  readonly method: 'GET' | 'POST';
  readonly path: string;
  readonly headers: Record<string, string>;
  readonly body?: Uint8Array;
  /** Statuses the API documents for this request. */
  readonly statuses: readonly number[];
  /** For a request that must succeed: the body it must answer with. */
  readonly okBody?: unknown;
}

/**
 * The documented answers to a bad body: 415 for a Content-Encoding or charset
 * the service does not read (either may be refused before the size is known),
 * 413 over 16 KiB on the wire or once decompressed, else 400.
 */
function bodyStatuses(
  wire: Uint8Array,
  encoding: { name: string; compress: boolean } | null,
  plain: Uint8Array,
  contentType: string | null,
): number[] {
  const statuses = new Set<number>();
  const oversize = wire.length > BODY_LIMIT_BYTES || plain.length > BODY_LIMIT_BYTES;
  if (contentType?.toLowerCase().includes('charset')) statuses.add(415);
  if (!SUPPORTED_ENCODINGS.has(encoding?.name.toLowerCase() ?? 'identity')) statuses.add(415);
  statuses.add(oversize ? 413 : 400);
  return [...statuses].sort();
}

const bodyCase = fc
  .record({
    route: fc.constantFrom('payments', 'makePayment'),
    body: bodyBytes,
    contentType: contentTypes,
    encoding: encodings,
  })
  .map(({ route, body, contentType, encoding }): Case => {
    const wire = encoding?.compress ? encode(body, encoding.name) : body;
    const headers: Record<string, string> = {};
    if (contentType !== null) headers['content-type'] = contentType;
    if (encoding !== null) headers['content-encoding'] = encoding.name;
    if (route === 'payments') headers['idempotency-key'] = VALID_KEY;
    return {
      kind: 'body',
      method: 'POST',
      path: route === 'payments' ? '/payments' : `/PaymentProcessor/${VALID_KEY}/makePayment`,
      headers,
      body: wire,
      statuses: bodyStatuses(wire, encoding, body, contentType),
    };
  });

const idempotencyKeyCase = fc
  .oneof(
    fc.string({
      unit: fc.integer({ min: 0, max: 255 }).map((c) => String.fromCharCode(c)),
      maxLength: 60,
    }),
    fc.stringMatching(/^[A-Za-z0-9._~-]{256,400}$/),
    fc.constantFrom('', ' ', '\t', 'bad key', 'bad/key', 'bad:key', 'a,b', 'café', '%41', '{k}'),
    fc.constant(null),
  )
  .filter((key) => key === null || (sendableHeader(key) && !TOKEN_RULE.test(trimHttp(key))))
  .map((key): Case => ({
    kind: 'key',
    method: 'POST',
    path: '/payments',
    headers: {
      'content-type': 'application/json',
      ...(key === null ? {} : { 'idempotency-key': key }),
    },
    body: utf8(JSON.stringify(VALID_BODY)),
    statuses: [400],
  }));

const TOKEN_ROUTES = {
  makePayment: { method: 'POST', path: (t: string) => `/PaymentProcessor/${t}/makePayment` },
  cancelPayment: { method: 'POST', path: (t: string) => `/PaymentProcessor/${t}/cancelPayment` },
  cancel: { method: 'POST', path: (t: string) => `/payments/${t}/cancel` },
  getPayment: { method: 'GET', path: (t: string) => `/payments/${t}` },
} as const;

const tokenPathCase = fc
  .record({
    route: fc.constantFrom(...(Object.keys(TOKEN_ROUTES) as (keyof typeof TOKEN_ROUTES)[])),
    segment: pathSegments,
    badBody: bodyBytes.filter((b) => b.length <= BODY_LIMIT_BYTES),
  })
  .map(({ route, segment, badBody }) => {
    const decoded = decodeSegment(segment);
    const validToken = decoded !== null && TOKEN_RULE.test(decoded);
    return { route, segment, decoded, validToken, badBody };
  })
  // A valid token on a write route would be a valid request (a cancel creates a record).
  .filter(
    ({ route, validToken }) => !validToken || route === 'getPayment' || route === 'makePayment',
  )
  .map(({ route, segment, decoded, validToken, badBody }): Case => {
    const { method, path } = TOKEN_ROUTES[route];
    let statuses: number[];
    if (segment === '') statuses = [404];
    else if (decoded === null) statuses = [400];
    else if (validToken) statuses = route === 'getPayment' ? [404] : [400];
    else statuses = [400];
    // makePayment: a valid payment behind a bad token, or a bad body behind a good one.
    const body =
      route === 'makePayment'
        ? validToken
          ? badBody
          : utf8(JSON.stringify(VALID_BODY))
        : undefined;
    return {
      kind: 'token',
      method,
      path: path(segment),
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      ...(body === undefined ? {} : { body }),
      statuses,
    };
  });

const accountPathCase = pathSegments.map((segment): Case => {
  const decoded = decodeSegment(segment);
  const valid = decoded !== null && ACCOUNT_ID_RULE.test(decoded);
  return {
    kind: 'account',
    method: 'GET',
    path: `/accounts/${segment}`,
    headers: {},
    statuses: segment === '' ? [404] : valid ? [200] : [400],
    ...(valid
      ? {
          okBody: {
            accountId: decoded,
            balanceCents: INITIAL_BALANCE_CENTS,
            balances: { USD: { availableCents: INITIAL_BALANCE_CENTS, heldCents: 0 } },
            ledger: [],
          },
        }
      : {}),
  };
});

/** How a case prints in a counterexample: the body as (the start of its) text, not as bytes. */
function printable(c: Case): Case {
  const body =
    c.body === undefined ? '' : ` body (${c.body.length} bytes) ${JSON.stringify(preview(c.body))}`;
  const text = `${c.method} ${c.path} ${JSON.stringify(c.headers)}${body}, expecting ${c.statuses.join(' or ')}`;
  return Object.assign(c, { [fc.toStringMethod]: () => text });
}

const anyCase = fc
  .oneof(
    { arbitrary: bodyCase, weight: 4 },
    { arbitrary: idempotencyKeyCase, weight: 2 },
    { arbitrary: tokenPathCase, weight: 3 },
    { arbitrary: accountPathCase, weight: 1 },
  )
  .map(printable);

// ---------------------------------------------------------------------------
// Transport

interface Answer {
  readonly status: number;
  readonly contentType: string | null;
  readonly text: string;
}

describe('bad input as a property', () => {
  let service: TestService;
  let redis: Redis;
  let port: number;
  const agent = new Agent({ keepAlive: true, maxSockets: 4 });

  beforeAll(async () => {
    // The api role alone: no worker or sweep writing keys of their own.
    service = await startTestService(
      testConfig(inject('redisUrl'), {
        PAYSTATE_ROLES: 'api',
        ACCOUNT_INITIAL_BALANCE_CENTS: String(INITIAL_BALANCE_CENTS),
      }),
    );
    redis = new Redis(inject('redisUrl'));
    port = Number(new URL(service.url).port);
  });

  afterAll(async () => {
    agent.destroy();
    await service.stop();
    await redis.quit();
  });

  /** Keys under the service's prefix, apart from the queue metadata and store identity written at start-up. */
  async function writtenKeys(): Promise<string[]> {
    const keys: string[] = [];
    let cursor = '0';
    do {
      const [next, batch] = await redis.scan(
        cursor,
        'MATCH',
        `${service.config.keyPrefix}:*`,
        'COUNT',
        1000,
      );
      cursor = next;
      keys.push(...batch);
    } while (cursor !== '0');
    const atStart = [`${service.keys.queuePrefix}:payment-timers:meta`, service.keys.store];
    return keys.filter((k) => !atStart.includes(k)).sort();
  }

  /** Sends exactly these bytes, path and headers (node:http does not normalise the path). */
  function send(c: Case): Promise<Answer> {
    return new Promise((resolve, reject) => {
      const req = httpRequest(
        {
          host: '127.0.0.1',
          port,
          method: c.method,
          path: c.path,
          agent,
          headers: {
            ...c.headers,
            ...(c.body === undefined ? {} : { 'content-length': String(c.body.length) }),
          },
          signal: AbortSignal.timeout(15_000),
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (chunk: Buffer) => chunks.push(chunk));
          res.on('end', () => {
            resolve({
              status: res.statusCode ?? 0,
              contentType: res.headers['content-type'] ?? null,
              text: Buffer.concat(chunks).toString('utf8'),
            });
          });
          res.on('error', reject);
        },
      );
      req.on('error', reject);
      req.end(c.body === undefined ? undefined : Buffer.from(c.body));
    });
  }

  /** Everything that must hold for one answer; throws with the reason when something does not. */
  function check(c: Case, answer: Answer, before: string[], after: string[]): void {
    const fail = (why: string): never => {
      throw new Error(`${why}\n  answer: ${answer.status} ${answer.text.slice(0, 300)}`);
    };
    if (answer.status >= 500) fail('a server error');
    if (!c.statuses.includes(answer.status)) {
      fail(`status ${answer.status}, expected one of ${c.statuses.join(', ')}`);
    }
    if (!answer.contentType?.startsWith('application/json')) {
      fail(`content-type ${String(answer.contentType)}, expected JSON`);
    }
    let body: unknown;
    try {
      body = JSON.parse(answer.text);
    } catch {
      fail('a body that is not JSON');
    }
    if (answer.status === 200) {
      if (JSON.stringify(body) !== JSON.stringify(c.okBody)) {
        fail(`expected ${JSON.stringify(c.okBody)}`);
      }
    } else {
      const error = (body as { error?: unknown } | null)?.error as
        { code?: unknown; message?: unknown } | undefined;
      const shapeOk =
        typeof body === 'object' &&
        body !== null &&
        Object.keys(body).join() === 'error' &&
        typeof error === 'object' &&
        Object.keys(error).sort().join() === 'code,message' &&
        typeof error.code === 'string' &&
        typeof error.message === 'string';
      if (!shapeOk) fail('not the {error: {code, message}} shape');
      const code = String(error?.code);
      if (STATUS_BY_CODE[code] !== answer.status) {
        fail(`code ${code} is not a documented code for ${answer.status}`);
      }
    }
    // No stack trace or internals, unless the request itself carried that text.
    const sent = `${c.path} ${JSON.stringify(c.headers)} ${c.body ? Buffer.from(c.body).toString('latin1') : ''}`;
    for (const leak of [
      /\n\s*at /,
      ROOT,
      'node_modules',
      'SyntaxError',
      'TypeError',
      'URIError',
      'RangeError',
    ]) {
      const leaked = typeof leak === 'string' ? answer.text.includes(leak) : leak.test(answer.text);
      const echoed = typeof leak === 'string' ? sent.includes(leak) : leak.test(sent);
      if (leaked && !echoed) fail(`the answer shows internals (${String(leak)})`);
    }
    if (JSON.stringify(after) !== JSON.stringify(before)) {
      fail(`keys were written: ${after.filter((k) => !before.includes(k)).join(', ')}`);
    }
  }

  it('answers every generated bad request with a documented 4xx JSON error and writes nothing', async () => {
    const started = Date.now();
    const seen: Record<string, number> = {};
    const kinds: Record<Case['kind'], number> = { body: 0, key: 0, token: 0, account: 0 };
    const details = await fc.check(
      fc.asyncProperty(anyCase, async (c) => {
        const before = await writtenKeys();
        const answer = await send(c);
        kinds[c.kind]++;
        const after = await writtenKeys();
        seen[answer.status] = (seen[answer.status] ?? 0) + 1;
        check(c, answer, before, after);
      }),
      { numRuns: NUM_RUNS, includeErrorInReport: true },
    );
    reportScenario('bad input', {
      iterations: details.numRuns,
      violations: details.failed ? 1 : 0,
      details: {
        requests: Object.values(kinds).reduce((a, b) => a + b, 0),
        ...Object.fromEntries(Object.entries(kinds).map(([kind, n]) => [`bad ${kind}`, n])),
        statuses: Object.entries(seen)
          .map(([status, n]) => `${status}x${n}`)
          .join(' '),
        seconds: ((Date.now() - started) / 1000).toFixed(1),
      },
    });
    expect(details.failed, fc.defaultReportMessage(details)).toBe(false);
    expect(await writtenKeys()).toEqual([]);
  });

  // -------------------------------------------------------------------------
  // Oversized bodies: refused from what is known up front, not after reading them.

  interface RawExchange {
    readonly socket: Socket;
    readonly received: () => string;
  }

  function openRaw(): Promise<RawExchange> {
    return new Promise((resolve, reject) => {
      let received = '';
      const socket = connect(port, '127.0.0.1', () => {
        resolve({ socket, received: () => received });
      });
      socket.on('data', (chunk: Buffer) => (received += chunk.toString('latin1')));
      socket.on('error', () => undefined);
      socket.once('error', reject);
    });
  }

  /** The status line and JSON body of a raw HTTP answer, once it is all there. */
  function parseRaw(text: string): { status: number; body: unknown } | undefined {
    const end = text.indexOf('\r\n\r\n');
    if (end < 0) return undefined;
    const head = text.slice(0, end);
    const length = /\r\ncontent-length: *(\d+)/i.exec(head)?.[1];
    const body = text.slice(end + 4);
    if (length === undefined || body.length < Number(length)) return undefined;
    return {
      status: Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1]),
      body: JSON.parse(body.slice(0, Number(length))) as unknown,
    };
  }

  const TOO_LARGE = {
    status: 413,
    body: { error: { code: 'payload_too_large', message: expect.any(String) as unknown } },
  };
  const TEN_MB = 10 * 1024 * 1024;

  it('answers 413 to a body that declares 10 MB before the body is sent', async () => {
    const raw = await openRaw();
    try {
      raw.socket.write(
        `POST /payments HTTP/1.1\r\nHost: x\r\nIdempotency-Key: ${VALID_KEY}\r\n` +
          `Content-Type: application/json\r\nContent-Length: ${TEN_MB}\r\n\r\n`,
      );
      // 64 KiB of the 10 MB, then nothing: a server that reads to the end never answers.
      raw.socket.write('x'.repeat(64 * 1024));
      const answer = await waitFor(() => parseRaw(raw.received()), {
        timeoutMs: 5_000,
        what: 'an answer to the oversized request',
      });
      expect(answer).toEqual(TOO_LARGE);
    } finally {
      raw.socket.destroy();
    }
    expect(await writtenKeys()).toEqual([]);
  });

  it('answers 413 to a chunked body once it passes 16 KiB, while the client still sends', async () => {
    const raw = await openRaw();
    let sentBytes = 0;
    try {
      raw.socket.write(
        `POST /payments HTTP/1.1\r\nHost: x\r\nIdempotency-Key: ${VALID_KEY}\r\n` +
          `Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n`,
      );
      const chunk = 'y'.repeat(4096);
      // Streams up to 10 MB, a chunk at a time, until the answer arrives.
      while (
        parseRaw(raw.received()) === undefined &&
        sentBytes < TEN_MB &&
        !raw.socket.destroyed
      ) {
        const flushed = raw.socket.write(`${chunk.length.toString(16)}\r\n${chunk}\r\n`);
        sentBytes += chunk.length;
        if (!flushed) await new Promise((resolve) => raw.socket.once('drain', resolve));
        await new Promise((resolve) => setImmediate(resolve));
      }
      const answer = await waitFor(() => parseRaw(raw.received()), {
        timeoutMs: 5_000,
        what: 'an answer to the oversized chunked request',
      });
      expect(answer).toEqual(TOO_LARGE);
      expect(sentBytes).toBeLessThan(TEN_MB);
    } finally {
      raw.socket.destroy();
    }
    expect(await writtenKeys()).toEqual([]);
  });

  it('answers 413 to a 10 MB body sent in full, then answers the next request', async () => {
    const body = Buffer.alloc(TEN_MB, 'z');
    const first = await send({
      kind: 'body',
      method: 'POST',
      path: '/payments',
      headers: { 'idempotency-key': VALID_KEY, 'content-type': 'application/json' },
      body,
      statuses: [413],
    });
    expect(first.status).toBe(413);
    expect(JSON.parse(first.text)).toEqual(TOO_LARGE.body);
    const next = await send({
      kind: 'account',
      method: 'GET',
      path: '/accounts/acct-after-413',
      headers: {},
      statuses: [200],
    });
    expect(next.status).toBe(200);
    expect(await writtenKeys()).toEqual([]);
  });
});
