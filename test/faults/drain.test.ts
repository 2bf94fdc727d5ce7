/**
 * The drain on SIGTERM: requests already running finish and close their
 * connections, requests arriving later on an open connection are refused,
 * and no client is left without the answer to a request that ran. Real
 * keep-alive clients against a real process, and requests written by hand
 * where the timing must be exact.
 */
import { Redis } from 'ioredis';
import { describe, expect, inject, it } from 'vitest';
import { createKeys } from '../../src/payments/keys.ts';
import { accountOf, exitOf, within } from '../support/app-process.ts';
import { startKeepAliveLoad, type KeepAliveAnswer } from '../support/keep-alive-load.ts';
import { paymentRequest, rawConnection } from '../support/raw-http.ts';
import { randomPrefix, startTestService, testConfig, waitFor } from '../support/service-harness.ts';
import { perTestResources } from '../support/per-test-resources.ts';

/** Exit and scheduling slack on a busy two-core machine, on top of SHUTDOWN_TIMEOUT_MS. */
const EXIT_SLACK_MS = 2_500;

const { cleanups, ownRedis, processes } = perTestResources();

describe('SIGTERM under keep-alive load', () => {
  const SHUTDOWN_TIMEOUT_MS = 10_000;
  const CLIENTS = 16;

  it('finishes in-flight requests, closes every connection and charges no client it did not answer', async () => {
    const redisUrl = inject('redisUrl');
    const prefix = randomPrefix();
    const apps = processes({
      REDIS_URL: redisUrl,
      REDIS_KEY_PREFIX: prefix,
      SHUTDOWN_TIMEOUT_MS: String(SHUTDOWN_TIMEOUT_MS),
    });
    const app = await apps.start('app');
    const load = startKeepAliveLoad({
      url: app.url ?? '',
      runId: randomPrefix(),
      clients: CLIENTS,
      amountCents: 100,
    });
    cleanups.push(() => load.stop());
    await waitFor(() => (load.answers.length >= 10 * CLIENTS ? true : undefined), {
      timeoutMs: 20_000,
      what: 'the load to get going',
    });

    const signalledAt = Date.now();
    app.process.child.kill('SIGTERM');
    const exit = await exitOf(app, signalledAt, SHUTDOWN_TIMEOUT_MS + EXIT_SLACK_MS);
    await load.finished();

    // The drain ended by itself, well before the deadline would have cut it.
    expect(exit).toMatchObject({ code: 0, signal: null });
    expect(exit.afterMs).toBeLessThan(SHUTDOWN_TIMEOUT_MS / 2);

    const logged = /"time":"([^"]+)","message":"shutting down"/.exec(app.process.output())?.[1];
    if (logged === undefined) throw new Error(`no shutdown line:\n${app.process.output()}`);
    const drainFrom = Date.parse(logged);
    const answers = load.answers;
    const full = answers.filter((a) => a.status !== 0);
    const describeAll = (list: readonly KeepAliveAnswer[]) =>
      list.map((a) => `${a.token} on #${a.connection}: ${a.status || a.failure}`).join('\n');

    // Every full answer is a payment outcome or the shutdown's 503.
    expect(describeAll(full.filter((a) => ![201, 200, 402, 503].includes(a.status)))).toBe('');
    // A request sent once the drain had begun is refused, and its connection closed.
    const late = full.filter((a) => a.sentAt > drainFrom);
    for (const answer of late) {
      expect(answer).toMatchObject({ status: 503, code: 'unavailable', connectionHeader: 'close' });
      expect(answer.retryAfter).toMatch(/^\d+$/);
    }
    // Each connection carries at most the request it was running when the drain began.
    const servedAfter = new Map<number, number>();
    for (const a of full.filter((a) => a.answeredAt > drainFrom && a.status !== 503)) {
      servedAfter.set(a.connection, (servedAfter.get(a.connection) ?? 0) + 1);
    }
    expect([...servedAfter.values()].filter((n) => n > 1)).toEqual([]);
    // Requests running when the drain began were answered and told the client to close.
    expect(full.some((a) => a.answeredAt > drainFrom && a.connectionHeader === 'close')).toBe(true);

    // Every charged token's client was told so; a request without an answer never ran.
    const keys = createKeys(prefix);
    const redis = new Redis(redisUrl);
    cleanups.push(() => {
      redis.disconnect();
    });
    const problems: string[] = [];
    for (const answer of answers) {
      const [withdrawals, record] = await Promise.all([
        redis.llen(keys.accountLedger(accountOf(answer.token))),
        redis.exists(keys.state(answer.token)),
      ]);
      if (withdrawals > 0 && ![200, 201].includes(answer.status)) {
        problems.push(`${answer.token} charged, its client got ${answer.status || answer.failure}`);
      }
      if (answer.status === 0 && record === 1) {
        problems.push(`${answer.token} ran, its client got ${String(answer.failure)}`);
      }
    }
    expect(problems).toEqual([]);
    expect(app.process.output()).not.toContain('did not');
  });
});

describe('a request that arrives on an open connection during the drain', () => {
  it('is not run: 503 unavailable with Retry-After, and the connection closes', async () => {
    const service = await startTestService(testConfig(inject('redisUrl')));
    cleanups.push(() => service.stop());
    const connection = rawConnection(service.url);
    cleanups.push(() => connection.socket.destroy());
    const first = await connection.exchange('GET /healthz HTTP/1.1\r\nHost: paystate\r\n\r\n');
    expect(first).toMatch(/^HTTP\/1\.1 200 /);
    expect(first).toMatch(/\r\nConnection: keep-alive\r\n/i);

    // Half a request: the connection is not idle when the drain begins.
    const request = paymentRequest('late', { accountId: accountOf('late'), amountCents: 100 });
    const headEnd = request.indexOf('\r\n\r\n') + 2;
    connection.write(request.slice(0, headEnd));
    // A round trip on another connection: by its answer, the server has read that half.
    expect((await fetch(`${service.url}/healthz`)).status).toBe(200);
    const stopping = service.stop();
    connection.write(request.slice(headEnd));
    await within(connection.closed, 10_000, 'the server to close the connection');

    const late = connection.text().slice(first.length);
    expect(late).toMatch(/^HTTP\/1\.1 503 /);
    expect(late).toMatch(/\r\nConnection: close\r\n/i);
    expect(late).toMatch(/\r\nRetry-After: \d+\r\n/i);
    expect(JSON.parse(late.slice(late.indexOf('\r\n\r\n') + 4))).toMatchObject({
      error: { code: 'unavailable' },
    });
    expect(await stopping).toEqual({ abandoned: [] });
    const redis = new Redis(inject('redisUrl'));
    cleanups.push(() => {
      redis.disconnect();
    });
    expect(await redis.exists(service.keys.state('late'))).toBe(0);
  });

  it('answers every pipelined request that was running, and closes after the last', async () => {
    const redis = await ownRedis();
    const service = await startTestService(testConfig(redis.url));
    cleanups.push(() => service.stop());
    const connection = rawConnection(service.url);
    cleanups.push(() => connection.socket.destroy());
    const payment = (token: string) =>
      paymentRequest(token, { accountId: accountOf(token), amountCents: 100 });
    // Both requests wait on Redis, so both are running when the drain begins.
    redis.pause();
    connection.write(payment('piped-1') + payment('piped-2'));
    expect((await fetch(`${service.url}/healthz`)).status).toBe(200);
    const stopping = service.stop();
    redis.resume();
    await within(connection.closed, 10_000, 'the server to close the connection');

    const responses = connection.text().split(/(?=HTTP\/1\.1 )/);
    expect(responses.map((r) => r.slice(0, 12))).toEqual(['HTTP/1.1 201', 'HTTP/1.1 201']);
    expect(responses[0]).toMatch(/\r\nConnection: keep-alive\r\n/i);
    expect(responses[1]).toMatch(/\r\nConnection: close\r\n/i);
    expect(await stopping).toEqual({ abandoned: [] });
  });
});
