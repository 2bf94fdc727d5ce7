/**
 * What an operator sees of the running service: the request id on every
 * response, one JSON log line per request (no token, no header), and the
 * Prometheus metrics at GET /metrics, also from a worker-only process.
 */
import { createServer } from 'node:net';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { WORKER_METRICS_PORT } from '../../src/config.ts';
import { RedlockKeyLock } from '../../src/runtime/redis/key-lock.ts';
import { createLogger } from '../../src/observability/log.ts';
import { startService } from '../../src/service.ts';
import { accountOf } from '../support/app-process.ts';
import { paymentRequest, rawConnection } from '../support/raw-http.ts';
import { startRedisServer } from '../support/redis-server.ts';
import {
  randomPrefix,
  startTestService,
  testConfig,
  waitFor,
  type TestService,
} from '../support/service-harness.ts';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

/** A pino logger whose lines are kept, parsed. */
function capturedLog(level: Parameters<typeof createLogger>[0] = 'info') {
  const lines: Record<string, unknown>[] = [];
  const raw: string[] = [];
  const logger = createLogger(level, {
    write: (line: string) => {
      raw.push(line);
      lines.push(JSON.parse(line) as Record<string, unknown>);
    },
  });
  return { logger, lines, raw };
}

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** The value of a series with exactly these labels in a Prometheus text exposition, or 0. */
function sample(text: string, series: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? 0 : Number(line.slice(series.length + 1));
}

describe('X-Request-Id', () => {
  let service: TestService;
  beforeAll(async () => {
    service = await startTestService(testConfig(inject('redisUrl'), { PAYSTATE_ROLES: 'api' }));
  });
  afterAll(async () => {
    await service.stop();
  });

  it("echoes a client's sane X-Request-Id and replaces one that is not", async () => {
    const echoed = await service.request('GET', '/healthz', {
      headers: { 'X-Request-Id': 'abc-1' },
    });
    expect(echoed.headers.get('x-request-id')).toBe('abc-1');

    for (const bad of ['has space', 'a'.repeat(129), 'semi;colon', '']) {
      const replaced = await service.request('GET', '/healthz', {
        headers: { 'X-Request-Id': bad },
      });
      expect(replaced.headers.get('x-request-id')).toMatch(UUID);
    }
    const fresh = await service.request('GET', '/healthz');
    const another = await service.request('GET', '/healthz');
    expect(fresh.headers.get('x-request-id')).toMatch(UUID);
    expect(another.headers.get('x-request-id')).not.toBe(fresh.headers.get('x-request-id'));
  });

  it('is on every response the app writes: 2xx, 4xx, 404', async () => {
    const token = `rid-${randomPrefix()}`;
    const replies = [
      await service.request('POST', '/payments', {
        headers: { 'Idempotency-Key': token },
        body: { accountId: accountOf(token), amountCents: 100 },
      }),
      await service.request('POST', '/payments', {
        headers: { 'Idempotency-Key': token },
        body: { accountId: accountOf(token), amountCents: 200 },
      }),
      await service.request('POST', '/payments', { body: { accountId: 'a', amountCents: 1 } }),
      await service.request('POST', '/payments', { rawBody: '{"accountId":' }),
      await service.request('GET', `/payments/never-${token}`),
      await service.request('GET', '/no/such/route'),
      await service.request('GET', '/openapi.json'),
    ];
    expect(replies.map((r) => r.status)).toEqual([201, 422, 400, 400, 404, 404, 200]);
    for (const reply of replies) expect(reply.headers.get('x-request-id')).toMatch(UUID);
  });

  it('is on every response with nothing observing requests (no metrics, no log lines)', async () => {
    const quiet = await startTestService(
      testConfig(inject('redisUrl'), { PAYSTATE_ROLES: 'api', PAYSTATE_METRICS: 'off' }),
    );
    cleanups.push(() => quiet.stop());
    const token = `rid-quiet-${randomPrefix()}`;
    const replies = [
      await quiet.request('POST', '/payments', {
        headers: { 'Idempotency-Key': token },
        body: { accountId: accountOf(token), amountCents: 100 },
      }),
      await quiet.request('GET', '/no/such/route', { headers: { 'X-Request-Id': 'quiet-1' } }),
    ];
    expect(replies.map((r) => r.status)).toEqual([201, 404]);
    expect(replies[0]?.headers.get('x-request-id')).toMatch(UUID);
    expect(replies[1]?.headers.get('x-request-id')).toBe('quiet-1');
  });

  it("is on the server's own answers: a parser refusal, and a 503 during shutdown", async () => {
    const own = await startTestService(testConfig(inject('redisUrl'), { PAYSTATE_ROLES: 'api' }));
    cleanups.push(() => own.stop());

    const garbage = rawConnection(own.url);
    cleanups.push(() => {
      garbage.socket.destroy();
    });
    garbage.write('NOT HTTP AT ALL\r\n\r\n');
    await garbage.closed;
    expect(garbage.text()).toMatch(/^HTTP\/1\.1 400 /);
    expect(garbage.text()).toMatch(/\r\nX-Request-Id: [0-9a-f-]{36}\r\n/i);

    // Half a request on an open connection, finished once the drain has begun: refused with 503.
    const connection = rawConnection(own.url);
    cleanups.push(() => {
      connection.socket.destroy();
    });
    const first = await connection.exchange('GET /healthz HTTP/1.1\r\nHost: paystate\r\n\r\n');
    const request = paymentRequest('late', { accountId: 'late', amountCents: 100 }).replace(
      '\r\n',
      '\r\nX-Request-Id: late-1\r\n',
    );
    const headEnd = request.indexOf('\r\n\r\n') + 2;
    connection.write(request.slice(0, headEnd));
    expect((await fetch(`${own.url}/healthz`)).status).toBe(200);
    const stopping = own.stop();
    connection.write(request.slice(headEnd));
    await connection.closed;
    await stopping;
    const late = connection.text().slice(first.length);
    expect(late).toMatch(/^HTTP\/1\.1 503 /);
    expect(late).toMatch(/\r\nx-request-id: late-1\r\n/i);
  });
});

describe('a lost store', () => {
  it('answers 503 store_lost with a request id, logged once with the request', async () => {
    const { logger, lines } = capturedLog();
    const service = await startTestService(
      testConfig(inject('redisUrl'), { PAYSTATE_ROLES: 'api' }),
      { logger },
    );
    cleanups.push(() => service.stop());
    const redis = new Redis(inject('redisUrl'));
    cleanups.push(() => {
      redis.disconnect();
    });
    await redis.del(service.keys.store);

    const reply = await waitFor(async () => {
      const r = await service.request('GET', '/readyz', {
        headers: { 'X-Request-Id': 'lost-1' },
      });
      return r.status === 503 ? r : undefined;
    });
    expect(reply.body).toMatchObject({ error: { code: 'store_lost' } });
    expect(reply.headers.get('x-request-id')).toBe('lost-1');
    const refused = await service.request('GET', '/accounts/a', {
      headers: { 'X-Request-Id': 'lost-2' },
    });
    expect(refused.status).toBe(503);
    expect(refused.headers.get('x-request-id')).toBe('lost-2');

    const about = lines.filter((l) => l.requestId === 'lost-2');
    expect(about).toEqual([
      expect.objectContaining({
        level: 'error',
        message: 'request failed',
        route: '/accounts/{accountId}',
        status: 503,
        code: 'store_lost',
        err: expect.objectContaining({ type: 'StoreLostError' }) as unknown,
      }),
    ]);
  });
});

describe('request log', () => {
  it('writes one JSON line per request: route pattern, status, duration and id, no token or header', async () => {
    const { logger, lines, raw } = capturedLog();
    const service = await startTestService(
      testConfig(inject('redisUrl'), { PAYSTATE_ROLES: 'api' }),
      { logger },
    );
    cleanups.push(() => service.stop());
    const token = `log-${randomPrefix()}`;
    const secret = 'sk_live_do-not-log-me';

    await service.request('POST', `/PaymentProcessor/${token}/makePayment`, {
      headers: { Authorization: `Bearer ${secret}`, 'X-Api-Key': secret, 'X-Request-Id': 'log-1' },
      body: { accountId: accountOf(token), amountCents: 100 },
    });
    await service.request('GET', `/payments/${token}`, { headers: { 'X-Request-Id': 'log-2' } });

    expect(lines.filter((l) => l.requestId === 'log-1')).toEqual([
      {
        level: 'info',
        time: expect.stringMatching(/^\d{4}-\d\d-\d\dT/) as unknown,
        message: 'request',
        requestId: 'log-1',
        method: 'POST',
        route: '/PaymentProcessor/{token}/makePayment',
        status: 200,
        durationMs: expect.any(Number) as unknown,
      },
    ]);
    expect(lines.filter((l) => l.requestId === 'log-2')).toEqual([
      expect.objectContaining({ route: '/payments/{token}', status: 200 }),
    ]);
    const all = raw.join('');
    expect(all).not.toContain(token);
    expect(all).not.toContain(secret);
    expect(all).not.toContain(accountOf(token));
  });

  it.each([
    ['with metrics, at LOG_LEVEL=info', 'info', 'on'],
    ['with neither metrics nor request lines, at LOG_LEVEL=error', 'error', 'off'],
  ] as const)('logs a 5xx once, with the Redis error behind it (%s)', async (_, level, metrics) => {
    const redis = await startRedisServer();
    cleanups.push(() => redis.destroy());
    const { logger, lines } = capturedLog(level);
    const service = await startTestService(
      testConfig(redis.url, { PAYSTATE_ROLES: 'api', PAYSTATE_METRICS: metrics }),
      { logger },
    );
    cleanups.push(() => service.stop());
    await redis.kill();

    const reply = await service.request('GET', '/accounts/someone', {
      headers: { 'X-Request-Id': 'down-1' },
    });
    expect(reply.status).toBe(503);
    expect(reply.body).toMatchObject({ error: { code: 'unavailable' } });
    const about = lines.filter((l) => l.requestId === 'down-1');
    expect(about).toHaveLength(1);
    expect(about[0]).toMatchObject({
      level: 'error',
      message: 'request failed',
      code: 'unavailable',
    });
    // The cause (the Redis client's own error) follows the service's message.
    const err = about[0]?.err as { message: string; stack: string };
    expect(err.message).toMatch(/^storage is unavailable; retry shortly: ./);
    expect(err.stack).toContain('caused by:');
  });
});

describe('GET /metrics', () => {
  it('after a payment: the HTTP series moved, error codes are counted, no token, account or id appears', async () => {
    const service = await startTestService(
      testConfig(inject('redisUrl'), { PAYSTATE_ROLES: 'api' }),
    );
    cleanups.push(() => service.stop());
    const created =
      'paystate_http_request_duration_seconds_count{method="POST",route="/payments",status_code="201"}';
    const reused = 'paystate_http_error_responses_total{code="idempotency_key_reused"}';
    const before = await service.request('GET', '/metrics');
    expect(before.status).toBe(200);
    expect(before.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(sample(before.body as string, created)).toBe(0);

    const token = `metrics-${randomPrefix()}`;
    const pay = (amountCents: number) =>
      service.request('POST', '/payments', {
        headers: { 'Idempotency-Key': token, 'X-Request-Id': `rid-${token}` },
        body: { accountId: accountOf(token), amountCents },
      });
    expect((await pay(100)).status).toBe(201);
    expect((await pay(999)).status).toBe(422);

    const after = (await service.request('GET', '/metrics')).body as string;
    expect(sample(after, created)).toBe(1);
    expect(sample(after, reused)).toBe(1);
    expect(after).toContain('process_cpu_user_seconds_total');
    expect(after).toContain('nodejs_eventloop_lag_seconds');
    for (const name of [
      'paystate_transitions_total',
      'paystate_effect_duration_seconds',
      'paystate_lock_wait_seconds',
      'paystate_token_busy_total',
      'paystate_stale_write_retries_total',
      'paystate_outbox_depth',
      'paystate_outbox_oldest_age_seconds',
      'paystate_timer_lateness_seconds',
      'paystate_queue_jobs',
      'paystate_redis_errors_total',
    ]) {
      expect(after).toContain(`# TYPE ${name} `);
    }
    expect(after).not.toContain(token);
    expect(after).not.toContain('rid-');
  });

  it('is not served, and nothing is recorded, with PAYSTATE_METRICS=off', async () => {
    const service = await startTestService(
      testConfig(inject('redisUrl'), { PAYSTATE_ROLES: 'api', PAYSTATE_METRICS: 'off' }),
    );
    cleanups.push(() => service.stop());
    const token = `off-${randomPrefix()}`;
    const paid = await service.request('POST', '/payments', {
      headers: { 'Idempotency-Key': token },
      body: { accountId: accountOf(token), amountCents: 100 },
    });
    expect(paid.status).toBe(201);
    expect(service.metrics).toBeNull();
    expect(service.metricsUrl).toBeNull();
    expect((await service.request('GET', '/metrics')).status).toBe(404);
  });

  it('is served on METRICS_PORT instead of the API port when that is set', async () => {
    const service = await startTestService(
      testConfig(inject('redisUrl'), { PAYSTATE_ROLES: 'api', METRICS_PORT: '0' }),
    );
    cleanups.push(() => service.stop());
    expect(service.metricsUrl).not.toBe(`${service.url}/metrics`);
    expect((await service.request('GET', '/metrics')).status).toBe(404);
    await service.request('GET', '/healthz');

    const own = await fetch(service.metricsUrl ?? '');
    expect(own.status).toBe(200);
    expect(own.headers.get('x-request-id')).toMatch(UUID);
    expect(
      sample(
        await own.text(),
        'paystate_http_request_duration_seconds_count{method="GET",route="/healthz",status_code="200"}',
      ),
    ).toBe(1);
  });

  it('is served by a worker-only process on a port of its own', async () => {
    const worker = await startService(
      testConfig(inject('redisUrl'), { PAYSTATE_ROLES: 'worker', METRICS_PORT: '0' }),
    );
    cleanups.push(() => worker.stop());
    expect(worker.url).toBeNull();
    if (worker.metricsUrl === null) throw new Error('a worker-only process serves no metrics');

    const reply = await fetch(worker.metricsUrl);
    expect(reply.status).toBe(200);
    expect(await reply.text()).toContain('# TYPE paystate_timer_lateness_seconds histogram');
    expect((await fetch(worker.metricsUrl.replace(/\/metrics$/, '/payments'))).status).toBe(404);
  });

  it('lets a worker-only process start without metrics when their default port is taken', async () => {
    const taken = createServer();
    await new Promise<void>((resolve) => {
      // Already in use (another worker on this host): just as good.
      taken.once('error', () => {
        resolve();
      });
      taken.listen(WORKER_METRICS_PORT, '127.0.0.1', resolve);
    });
    cleanups.push(
      () =>
        new Promise((resolve) => {
          taken.close(resolve);
        }),
    );
    const { logger, lines } = capturedLog();
    const worker = await startService(
      testConfig(inject('redisUrl'), { PAYSTATE_ROLES: 'worker' }),
      { logger },
    );
    cleanups.push(() => worker.stop());

    expect(worker.metricsUrl).toBeNull();
    expect(lines).toContainEqual(
      expect.objectContaining({
        level: 'warn',
        message: 'metrics are not served: their default port is in use; set METRICS_PORT',
        port: WORKER_METRICS_PORT,
      }),
    );
  });
});

describe('engine series at GET /metrics', () => {
  const transition = (from: string, to: string, event: string) =>
    `paystate_transitions_total{machine="payment",from="${from}",to="${to}",event="${event}"}`;
  const effect = (name: string, outcome: string) =>
    `paystate_effect_duration_seconds_count{effect="${name}",outcome="${outcome}"}`;
  const queue = (state: string) => `paystate_queue_jobs{queue="payment-timers",state="${state}"}`;

  async function scrape(url: string): Promise<string> {
    const reply = await fetch(url);
    expect(reply.status).toBe(200);
    return reply.text();
  }

  it('moves by the right amounts after a charge, a decline and a refund, and names no token or account', async () => {
    const service = await startTestService(testConfig(inject('redisUrl')));
    cleanups.push(() => service.stop());
    const metricsUrl = `${service.url}/metrics`;
    const before = await scrape(metricsUrl);
    expect(sample(before, transition('pending', 'charging', 'PAY'))).toBe(0);

    const token = `engine-${randomPrefix()}`;
    const account = accountOf(token);
    const paid = await service.request('POST', '/payments', {
      headers: { 'Idempotency-Key': token },
      body: { accountId: account, amountCents: 100 },
    });
    expect(paid.status).toBe(201);
    const declinedToken = `${token}-poor`;
    const declined = await service.request('POST', '/payments', {
      headers: { 'Idempotency-Key': declinedToken },
      body: { accountId: account, amountCents: 100_000_000 },
    });
    expect(declined.status).toBe(402);
    expect((await service.request('POST', `/payments/${token}/cancel`)).status).toBe(200);

    const after = await scrape(metricsUrl);
    expect(sample(after, transition('pending', 'charging', 'PAY'))).toBe(2);
    expect(sample(after, transition('charging', 'processed', 'CHARGE_SUCCEEDED'))).toBe(1);
    expect(sample(after, transition('charging', 'pending', 'CHARGE_DECLINED'))).toBe(1);
    expect(sample(after, transition('processed', 'refunding', 'CANCEL'))).toBe(1);
    expect(sample(after, transition('refunding', 'refunded', 'REFUND_COMPLETED'))).toBe(1);
    expect(sample(after, effect('charge', 'CHARGE_SUCCEEDED'))).toBe(1);
    expect(sample(after, effect('charge', 'CHARGE_DECLINED'))).toBe(1);
    expect(sample(after, effect('refund', 'REFUND_COMPLETED'))).toBe(1);
    expect(
      sample(
        after,
        'paystate_effect_duration_seconds_sum{effect="charge",outcome="CHARGE_SUCCEEDED"}',
      ),
    ).toBeGreaterThan(0);
    // One lock taken per command: two payments and a cancel.
    expect(sample(after, 'paystate_lock_wait_seconds_count')).toBe(3);
    expect(sample(after, 'paystate_token_busy_total')).toBe(0);
    expect(sample(after, 'paystate_stale_write_retries_total')).toBe(0);
    // Read at the scrape: the declined token's expiry timer, and the refunded
    // one's two — its refund raised the timer again, and the job its charge
    // armed waits to be delivered and dropped as superseded; nothing is owed.
    expect(sample(after, queue('delayed'))).toBe(3);
    expect(sample(after, queue('failed'))).toBe(0);
    expect(sample(after, 'paystate_outbox_depth{machine="payment"}')).toBe(0);
    expect(sample(after, 'paystate_outbox_oldest_age_seconds{machine="payment"}')).toBe(0);

    expect(after).not.toContain(token);
    expect(after).not.toContain(account);
  });

  it('shows the outbox depth and the age of its oldest entry', async () => {
    const service = await startTestService(
      testConfig(inject('redisUrl'), { PAYSTATE_ROLES: 'api' }),
    );
    cleanups.push(() => service.stop());
    const redis = new Redis(inject('redisUrl'));
    cleanups.push(() => redis.quit());
    // As commands that died before their effects ran leave them: 30 s and 1 s ago.
    const [seconds] = await redis.time();
    const now = Number(seconds) * 1000;
    await redis.zadd(service.keys.outbox, now - 30_000, 'crashed-1', now - 1_000, 'crashed-2');

    const text = await scrape(`${service.url}/metrics`);
    expect(sample(text, 'paystate_outbox_depth{machine="payment"}')).toBe(2);
    const age = sample(text, 'paystate_outbox_oldest_age_seconds{machine="payment"}');
    expect(age).toBeGreaterThanOrEqual(29);
    expect(age).toBeLessThan(60);
  });

  it('counts token_busy and the lock wait when another process holds the lock', async () => {
    const service = await startTestService(
      testConfig(inject('redisUrl'), { PAYSTATE_ROLES: 'api', LOCK_WAIT_MS: '200' }),
    );
    cleanups.push(() => service.stop());
    const redis = new Redis(inject('redisUrl'));
    cleanups.push(() => redis.quit());
    const token = `busy-${randomPrefix()}`;
    const holder = new RedlockKeyLock(redis, {
      ttlMs: 5_000,
      waitMs: 1_000,
      resource: service.keys.lock,
    });
    let release!: () => void;
    let taken!: () => void;
    const acquired = new Promise<void>((resolve) => {
      taken = resolve;
    });
    const held = holder.withLock(token, async () => {
      taken();
      await new Promise<void>((resolve) => {
        release = resolve;
      });
    });
    await acquired;

    const busy = await service.request('POST', '/payments', {
      headers: { 'Idempotency-Key': token },
      body: { accountId: accountOf(token), amountCents: 100 },
    });
    release();
    await held;
    expect(busy.status).toBe(409);
    expect(busy.body).toMatchObject({ error: { code: 'token_busy' } });

    const text = await scrape(`${service.url}/metrics`);
    expect(sample(text, 'paystate_token_busy_total')).toBe(1);
    expect(sample(text, 'paystate_lock_wait_seconds_count')).toBe(1);
    expect(sample(text, 'paystate_lock_wait_seconds_sum')).toBeGreaterThanOrEqual(0.2);
    expect(sample(text, 'paystate_lock_wait_seconds_bucket{le="0.1"}')).toBe(0);
  });

  it('counts Redis errors by kind, and a scrape still answers while Redis is away', async () => {
    const redis = await startRedisServer();
    cleanups.push(() => redis.destroy());
    const service = await startTestService(testConfig(redis.url, { SHUTDOWN_TIMEOUT_MS: '500' }));
    cleanups.push(() => service.stop());
    const token = `down-${randomPrefix()}`;
    await redis.kill();

    const refused = await service.request('POST', '/payments', {
      headers: { 'Idempotency-Key': token },
      body: { accountId: accountOf(token), amountCents: 100 },
    });
    expect(refused.status).toBe(503);

    const started = Date.now();
    const text = await scrape(`${service.url}/metrics`);
    expect(Date.now() - started).toBeLessThan(4_000);
    expect(sample(text, 'paystate_redis_errors_total{kind="unavailable"}')).toBe(1);
    // Unreadable now: no sample rather than a wrong one.
    expect(text).not.toContain('paystate_outbox_depth{');
    expect(text).not.toContain('paystate_queue_jobs{');
  });

  it('a worker-only process shows the timers it delivered: lateness and the expiry transition', async () => {
    const config = testConfig(inject('redisUrl'), {
      PAYSTATE_ROLES: 'api',
      PAYMENT_EXPIRY_MS: '300',
    });
    const api = await startTestService(config);
    cleanups.push(() => api.stop());
    const worker = await startService({
      ...config,
      roles: ['worker'],
      metricsPort: 0,
    });
    cleanups.push(() => worker.stop());
    if (worker.metricsUrl === null) throw new Error('a worker-only process serves no metrics');

    const token = `timer-${randomPrefix()}`;
    const paid = await api.request('POST', '/payments', {
      headers: { 'Idempotency-Key': token },
      body: { accountId: accountOf(token), amountCents: 100 },
    });
    expect(paid.status).toBe(201);
    await waitFor(
      async () => {
        const reply = await api.request('GET', `/payments/${token}`);
        return (reply.body as { status?: string }).status === 'expired' ? true : undefined;
      },
      { what: 'the payment to expire' },
    );

    const text = await scrape(worker.metricsUrl);
    expect(sample(text, 'paystate_timer_lateness_seconds_count')).toBe(1);
    expect(sample(text, 'paystate_timer_lateness_seconds_sum')).toBeGreaterThanOrEqual(0);
    expect(sample(text, 'paystate_timer_lateness_seconds_bucket{le="+Inf"}')).toBe(1);
    expect(sample(text, transition('processed', 'expired', 'EXPIRE'))).toBe(1);
    // The charge ran in the api process, not here.
    expect(sample(text, effect('charge', 'CHARGE_SUCCEEDED'))).toBe(0);
    expect(text).not.toContain(token);
  });
});
