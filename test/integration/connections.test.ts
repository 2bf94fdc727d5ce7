/**
 * The edges of a connection: a client that half-closes after pipelining
 * its requests, headers that trickle in, and more connections than the
 * service keeps open. Raw sockets on loopback: an HTTP client would not
 * behave this way.
 */
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { paymentRequest, rawConnection, type RawConnection } from '../support/raw-http.ts';
import {
  randomPrefix,
  startTestService,
  testConfig,
  waitFor,
  type TestService,
} from '../support/service-harness.ts';

const INITIAL_BALANCE = 100_000;

/** The status line and body of each response in `text`, in order. */
function responsesIn(text: string): { status: number; body: string }[] {
  const responses: { status: number; body: string }[] = [];
  let rest = text;
  for (;;) {
    const end = rest.indexOf('\r\n\r\n');
    if (end < 0) return responses;
    const head = rest.slice(0, end);
    const length = Number(/\r\ncontent-length: (\d+)/i.exec(head)?.[1] ?? 0);
    responses.push({
      status: Number(/^HTTP\/1\.1 (\d{3}) /.exec(head)?.[1]),
      body: rest.slice(end + 4, end + 4 + length),
    });
    rest = rest.slice(end + 4 + length);
  }
}

describe('a client that half-closes', () => {
  let service: TestService;

  beforeAll(async () => {
    service = await startTestService(testConfig(inject('redisUrl'), { PAYSTATE_ROLES: 'api' }));
  });
  afterAll(async () => {
    await service.stop();
  });

  it('answers all 50 pipelined payments sent before its FIN, and charges each once', async () => {
    const run = randomPrefix();
    const accountId = `acct-${run}`;
    const tokens = Array.from({ length: 50 }, (_, i) => `${run}-${i}`);
    const connection = rawConnection(service.url);
    connection.write(
      tokens.map((token) => paymentRequest(token, { accountId, amountCents: 100 })).join(''),
    );
    connection.socket.end();
    await connection.closed;

    const responses = responsesIn(connection.text());
    expect(responses.map((r) => r.status)).toEqual(tokens.map(() => 201));
    for (const token of tokens) {
      const payment = await service.request('GET', `/payments/${token}`);
      expect(payment.body).toMatchObject({ status: 'processed' });
    }
    const account = await service.request('GET', `/accounts/${accountId}`);
    expect(account.body).toMatchObject({ balanceCents: INITIAL_BALANCE - 50 * 100 });
  });
});

/**
 * A slowloris client: a request line, then one header line every
 * `everyMs`, never the blank line that ends the headers.
 */
function slowHeaders(url: string, everyMs = 1_000): RawConnection {
  const connection = rawConnection(url);
  connection.write('GET /healthz HTTP/1.1\r\nHost: paystate\r\n');
  let line = 0;
  const timer = setInterval(() => {
    if (!connection.socket.destroyed) connection.write(`X-Slow-${line++}: 1\r\n`);
  }, everyMs);
  void connection.closed.then(() => {
    clearInterval(timer);
  });
  return connection;
}

/** Resolves with how long after `from` the connection closed, or rejects after `timeoutMs`. */
async function closedWithin(connection: RawConnection, from: number, timeoutMs: number) {
  let closed = false;
  void connection.closed.then(() => (closed = true));
  await waitFor(() => (closed ? true : undefined), {
    timeoutMs,
    what: 'the server to close the connection',
  });
  return Date.now() - from;
}

/** The value of a metric series in a Prometheus exposition (0 when absent). */
async function metricValue(metricsUrl: string, series: string): Promise<number> {
  const text = await (await fetch(metricsUrl)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? 0 : Number(line.slice(series.length + 1));
}

describe('slow headers', () => {
  const HEADERS_TIMEOUT_MS = 2_000;
  /** Node checks its timeouts on an interval; on top of that, a busy two-core machine. */
  const SLACK_MS = 1_500;
  let service: TestService;
  const open: RawConnection[] = [];

  beforeAll(async () => {
    service = await startTestService(
      testConfig(inject('redisUrl'), {
        PAYSTATE_ROLES: 'api',
        HTTP_HEADERS_TIMEOUT_MS: String(HEADERS_TIMEOUT_MS),
      }),
    );
  });
  afterEach(() => {
    for (const connection of open.splice(0)) connection.socket.destroy();
  });
  afterAll(async () => {
    await service.stop();
  });

  it('answers 408 and closes a connection whose headers take longer than HTTP_HEADERS_TIMEOUT_MS', async () => {
    const from = Date.now();
    const connection = slowHeaders(service.url);
    open.push(connection);

    const afterMs = await closedWithin(connection, from, HEADERS_TIMEOUT_MS + SLACK_MS);

    expect(afterMs).toBeGreaterThanOrEqual(HEADERS_TIMEOUT_MS - 100);
    expect(connection.text()).toMatch(/^HTTP\/1\.1 408 /);
    expect(connection.text()).toContain('"code":"request_timeout"');
  });

  it('closes a connection that sends nothing within HTTP_HEADERS_TIMEOUT_MS', async () => {
    const from = Date.now();
    const connection = rawConnection(service.url);
    open.push(connection);

    const afterMs = await closedWithin(connection, from, HEADERS_TIMEOUT_MS + SLACK_MS);

    expect(afterMs).toBeGreaterThanOrEqual(HEADERS_TIMEOUT_MS - 100);
  });

  it('still serves a request whose headers arrive in time on a connection kept alive', async () => {
    const connection = rawConnection(service.url);
    open.push(connection);
    const first = await connection.exchange('GET /healthz HTTP/1.1\r\nHost: paystate\r\n\r\n');
    const second = await connection.exchange('GET /healthz HTTP/1.1\r\nHost: paystate\r\n\r\n');

    expect(first).toMatch(/^HTTP\/1\.1 200 /);
    expect(second).toMatch(/^HTTP\/1\.1 200 /);
  });
});

describe('the connection cap', () => {
  const MAX_CONNECTIONS = 300;
  const SLOW_CLIENTS = 400;
  let service: TestService;
  let metricsUrl: string;
  const open: RawConnection[] = [];

  beforeAll(async () => {
    service = await startTestService(
      testConfig(inject('redisUrl'), {
        PAYSTATE_ROLES: 'api',
        HTTP_MAX_CONNECTIONS: String(MAX_CONNECTIONS),
        METRICS_PORT: '0',
      }),
    );
    metricsUrl = service.metricsUrl ?? '';
  });
  afterEach(async () => {
    for (const connection of open.splice(0)) connection.socket.destroy();
    // At most the test client's own keep-alive connection is left.
    await waitFor(
      async () =>
        (await metricValue(metricsUrl, 'paystate_http_open_connections')) <= 1 ? true : undefined,
      { what: 'the test connections to close' },
    );
  });
  afterAll(async () => {
    await service.stop();
  });

  it(`answers a payment while ${SLOW_CLIENTS} slow-header connections press on a cap of ${MAX_CONNECTIONS}`, async () => {
    for (let i = 0; i < SLOW_CLIENTS; i++) open.push(slowHeaders(service.url));
    await waitFor(
      async () =>
        (await metricValue(metricsUrl, 'paystate_http_connections_evicted_total')) >=
        SLOW_CLIENTS - MAX_CONNECTIONS
          ? true
          : undefined,
      { what: 'the slow connections beyond the cap to be closed' },
    );
    expect(await metricValue(metricsUrl, 'paystate_http_open_connections')).toBe(MAX_CONNECTIONS);

    const run = randomPrefix();
    const payment = await service.request('POST', '/payments', {
      headers: { 'idempotency-key': `${run}-pay` },
      body: { accountId: `acct-${run}`, amountCents: 100 },
    });

    expect(payment.status).toBe(201);
    expect(await metricValue(metricsUrl, 'paystate_http_open_connections')).toBeLessThanOrEqual(
      MAX_CONNECTIONS,
    );
    // The payment's connection took the place of one more slow one; the rest are still open.
    const stillOpen = () => open.filter((c) => c.socket.readyState === 'open').length;
    await waitFor(() => (stillOpen() <= MAX_CONNECTIONS - 1 ? true : undefined), {
      what: 'the slow connections closed by the server to be seen closed',
    });
    expect(stillOpen()).toBe(MAX_CONNECTIONS - 1);
  });

  it('closes the connection that has waited longest to make room, not a newer one', async () => {
    const openNow = () => metricValue(metricsUrl, 'paystate_http_open_connections');
    const before = await openNow();
    const oldest = slowHeaders(service.url);
    open.push(oldest);
    // Accepted before any other is opened: it is the one that has waited longest.
    await waitFor(async () => ((await openNow()) > before ? true : undefined), {
      what: 'the first slow connection to be accepted',
    });
    for (let i = 1; i < MAX_CONNECTIONS; i++) open.push(slowHeaders(service.url));
    await waitFor(async () => ((await openNow()) === MAX_CONNECTIONS ? true : undefined), {
      what: 'the cap to fill',
    });

    const evicted = () => metricValue(metricsUrl, 'paystate_http_connections_evicted_total');
    const evictedBefore = await evicted();

    const health = await fetch(`${service.url}/healthz`);

    expect(health.status).toBe(200);
    await closedWithin(oldest, Date.now(), 5_000);
    expect(await evicted()).toBe(evictedBefore + 1);
    expect(open.slice(1).filter((c) => c.socket.readyState !== 'open')).toEqual([]);
  });

  it('refuses a connection beyond the cap when every one is running a request, and counts it', async () => {
    // Each request's headers are complete and its body never comes: all are running.
    for (let i = 0; i < MAX_CONNECTIONS; i++) {
      const connection = rawConnection(service.url);
      connection.write(
        'POST /payments HTTP/1.1\r\nHost: paystate\r\nContent-Type: application/json\r\n' +
          `Idempotency-Key: running-${i}\r\nContent-Length: 100\r\n\r\n`,
      );
      open.push(connection);
    }
    await waitFor(
      async () =>
        (await metricValue(metricsUrl, 'paystate_http_open_connections')) === MAX_CONNECTIONS
          ? true
          : undefined,
      { what: 'the cap to fill' },
    );
    const refusedBefore = await metricValue(metricsUrl, 'paystate_http_connections_refused_total');

    const late = rawConnection(service.url);
    open.push(late);
    late.write('GET /healthz HTTP/1.1\r\nHost: paystate\r\n\r\n');
    await closedWithin(late, Date.now(), 5_000);

    expect(late.text()).toBe('');
    expect(await metricValue(metricsUrl, 'paystate_http_connections_refused_total')).toBe(
      refusedBefore + 1,
    );
    // Nothing running was cut to make room.
    expect(open.slice(0, MAX_CONNECTIONS).filter((c) => c.socket.destroyed)).toEqual([]);
  });
});
