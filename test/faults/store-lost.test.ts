/**
 * A Redis that comes back without the data the service wrote: restarted
 * without persistence, failed over to an empty node, or swapped for another
 * store. Answering from it would charge replays again, charge cancelled
 * tokens and "cancel" charged ones with no refund. The service refuses every
 * request with 503 store_lost and fails /readyz until an operator accepts
 * the store with `paystate store accept`.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  AppProcesses,
  accountOf,
  errorCode,
  tokenRequests,
  type AppProcess,
  type HttpReply,
} from '../support/app-process.ts';
import { runCli } from '../support/processes.ts';
import { StoreInspector } from '../support/payment-checks.ts';
import { startRedisServer, type TestRedisServer } from '../support/redis-server.ts';
import { randomPrefix, waitFor } from '../support/service-harness.ts';

const AMOUNT_CENTS = 800;
const newToken = (what: string) => `${what}-${randomBytes(4).toString('hex')}`;

/** The first answer that is not "Redis is away" (the process reconnects first). */
async function answered(attempt: () => Promise<HttpReply>): Promise<HttpReply> {
  return waitFor(
    async () => {
      const reply = await attempt().catch(() => null);
      return reply === null || errorCode(reply) === 'unavailable' ? undefined : reply;
    },
    { timeoutMs: 15_000, what: 'an answer from the service' },
  );
}

function expectStoreLost(reply: HttpReply): void {
  expect({ status: reply.status, code: errorCode(reply) }).toEqual({
    status: 503,
    code: 'store_lost',
  });
  expect(reply.headers['retry-after']).toBeDefined();
}

describe('a store that comes back empty or replaced', () => {
  let redis: TestRedisServer;
  let prefix: string;
  let apps: AppProcesses;
  let app: AppProcess;
  let store: StoreInspector;
  const { pay, cancel } = tokenRequests(AMOUNT_CENTS);
  const cli = (args: string[]) => runCli(args, { REDIS_URL: redis.url, REDIS_KEY_PREFIX: prefix });

  beforeAll(async () => {
    // No persistence: a restart comes back empty, as a Redis without AOF does.
    redis = await startRedisServer({ appendonly: false });
    prefix = randomPrefix();
    apps = new AppProcesses({ REDIS_URL: redis.url, REDIS_KEY_PREFIX: prefix });
    app = await apps.start('service');
    store = new StoreInspector(redis.url, prefix);
  });

  afterAll(async () => {
    await apps.killAll();
    await store.close();
    await redis.destroy();
  });

  it('says so when it initialises an empty store on first start', () => {
    expect(app.process.output()).toContain('initialised it with a new identity');
  });

  it('refuses every request with 503 store_lost after Redis restarts empty, charges nothing, and serves again once an operator accepts the store', async () => {
    const charged = newToken('charged');
    const cancelled = newToken('cancelled');
    const refunded = newToken('refunded');
    expect((await pay(app, charged)).status).toBe(201);
    expect((await cancel(app, cancelled)).status).toBe(200);
    expect((await pay(app, refunded)).status).toBe(201);
    expect((await cancel(app, refunded)).status).toBe(200);

    await redis.kill('SIGKILL');
    await redis.start();

    expectStoreLost(await answered(() => pay(app, charged)));
    expectStoreLost(await pay(app, cancelled));
    expectStoreLost(await cancel(app, refunded));
    expectStoreLost(await app.request('GET', `/payments/${charged}`));
    expectStoreLost(await app.request('GET', `/accounts/${accountOf(charged)}`));
    expectStoreLost(await app.request('GET', '/readyz'));
    expect((await app.request('GET', '/healthz')).status).toBe(200);
    expect(app.process.output()).toContain('STORE LOST');
    // Nothing of a payment reached the empty store: no record, no money moved.
    const written = await store.redis.keys(`${prefix}:{*`);
    expect(written.filter((k) => !k.endsWith(':lock'))).toEqual([]);

    const accepted = await cli(['store', 'accept']);
    expect(accepted.code, accepted.output).toBe(0);
    await waitFor(
      async () => ((await app.request('GET', '/readyz')).status === 200 ? true : undefined),
      { what: 'the service to adopt the accepted store' },
    );
    expect(app.process.output()).toContain('adopted the store an operator accepted');
    // The operator accepted the loss: the token is new to this store.
    expect((await pay(app, charged)).status).toBe(201);
  });

  it('refuses writes when the store answering is another one, and adopts it once accepted', async () => {
    const token = newToken('swapped');
    expect((await pay(app, token)).status).toBe(201);
    await store.redis.hset(store.keys.store, 'id', 'another-store');
    // The process notices within a second, or at its next write.
    await waitFor(
      async () =>
        errorCode(await app.request('GET', '/readyz')) === 'store_lost' ? true : undefined,
      { what: 'the service to notice the other store' },
    );
    expectStoreLost(await cancel(app, token));
    expect((await app.request('GET', `/payments/${token}`)).status).toBe(503);

    const shown = await cli(['store']);
    expect(shown.code, shown.output).toBe(0);
    expect(shown.output).toContain('another-store');
    expect((await cli(['store', 'accept'])).code).toBe(0);
    await waitFor(
      async () => ((await app.request('GET', '/readyz')).status === 200 ? true : undefined),
      { what: 'the service to adopt the accepted store' },
    );
    // Its records were never gone: the payment is refunded once.
    expect((await cancel(app, token)).status).toBe(200);
  });
});
