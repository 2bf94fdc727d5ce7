import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keySlot } from '../../src/runtime/redis/cluster.ts';
import { AppProcesses, type AppProcess } from '../support/app-process.ts';
import { bearer, TEST_API_KEYS, TEST_KEYS } from '../support/api-keys.ts';
import { runCli } from '../support/processes.ts';
import { clusterTimerQueues } from '../support/timer-jobs.ts';
import { startRedisCluster, type TestRedisCluster } from '../support/redis-cluster.ts';
import { waitFor } from '../support/service-harness.ts';

/** Nothing listens there: the service must not need REDIS_URL on a cluster. */
const NOWHERE = 'redis://127.0.0.1:1';

/** Every master's keys matching `pattern`, by master port. */
async function keysPerMaster(cluster: TestRedisCluster, pattern: string) {
  const counts = new Map<number, number>();
  for (const port of await cluster.masters()) {
    counts.set(port, (await cluster.node(port).keys(pattern)).length);
  }
  return counts;
}

describe('the API on a Redis Cluster (3 masters, 3 replicas)', () => {
  let cluster: TestRedisCluster;
  let apps: AppProcesses;
  let app: AppProcess;
  const env = () => ({ REDIS_CLUSTER_NODES: cluster.seeds, REDIS_URL: NOWHERE });

  beforeAll(async () => {
    cluster = await startRedisCluster();
    apps = new AppProcesses({ ...env(), REDIS_KEY_PREFIX: 'cl' });
    app = await apps.start('app');
  }, 60_000);
  afterAll(async () => {
    await apps.killAll();
    await cluster.destroy();
  });

  it('runs the seed session: charge, replay, refund on cancel', async () => {
    const pay = () =>
      app.request('POST', '/PaymentProcessor/seed-token/makePayment', {
        body: { accountId: 'seed-acct', amountCents: 100 },
      });
    expect(await pay()).toMatchObject({
      status: 200,
      body: { success: true, reason: 'Payment successful' },
    });
    expect(await pay()).toMatchObject({
      status: 200,
      body: { success: true, reason: 'Payment already completed in prior call' },
    });
    const cancel = await app.request('POST', '/PaymentProcessor/seed-token/cancelPayment');
    expect(cancel).toMatchObject({ status: 200, body: { success: true, status: 'refunded' } });
    const account = await app.request('GET', '/accounts/seed-acct');
    expect(account.body).toMatchObject({ balanceCents: 100_000 });
    expect((account.body as { ledger: unknown[] }).ledger).toHaveLength(2);
  });

  it('answers the native API: 201, replay, 422, refund, 404, the account', async () => {
    const pay = (body: unknown) =>
      app.request('POST', '/payments', { body, headers: { 'Idempotency-Key': 'native-1' } });
    const first = await pay({ accountId: 'native-acct', amountCents: 2_500 });
    expect(first).toMatchObject({ status: 201, body: { status: 'processed' } });
    const replay = await pay({ accountId: 'native-acct', amountCents: 2_500 });
    expect(replay.status).toBe(200);
    expect(replay.headers['idempotent-replayed']).toBe('true');
    expect((await pay({ accountId: 'native-acct', amountCents: 9 })).status).toBe(422);
    const cancel = await app.request('POST', '/payments/native-1/cancel');
    expect(cancel).toMatchObject({ status: 200, body: { status: 'refunded' } });
    expect((await app.request('GET', '/payments/never-seen')).status).toBe(404);
    const account = await app.request('GET', '/accounts/native-acct');
    expect(account.body).toMatchObject({ balanceCents: 100_000 });
  });

  it('lists tokens of many slots by state newest first, a page at a time, and counts them', async () => {
    const stats = async () =>
      (await app.request('GET', '/admin/payments/stats')).body as {
        counts: Record<string, number>;
        total: number;
      };
    const before = await stats();
    const tokens = Array.from({ length: 8 }, (_, i) => `listed-${i}`);
    expect(new Set(tokens.map((t) => keySlot(`{${t}}`))).size).toBe(tokens.length);
    for (const token of tokens) {
      const paid = await app.request('POST', '/payments', {
        body: { accountId: 'index-acct', amountCents: 100 },
        headers: { 'Idempotency-Key': token },
      });
      expect(paid.status).toBe(201);
    }
    const records = await keysPerMaster(cluster, 'cl:{listed-*}:state');
    expect([...records.values()].filter((n) => n > 0).length).toBeGreaterThan(1);

    // One at a time, by the cursor, until there is none: each token once, newest first.
    const listed: { token: string; updatedAt: string }[] = [];
    let cursor: string | null = null;
    do {
      const path: string =
        '/admin/payments?status=processed&limit=1' +
        (cursor === null ? '' : `&cursor=${encodeURIComponent(cursor)}`);
      const reply = await app.request('GET', path);
      expect(reply.status, path).toBe(200);
      const body = reply.body as {
        payments: { token: string; updatedAt: string }[];
        nextCursor: string | null;
      };
      expect(body.payments.length).toBeLessThanOrEqual(1);
      listed.push(...body.payments);
      cursor = body.nextCursor;
    } while (cursor !== null && listed.length <= tokens.length);
    expect(listed.map((p) => p.token)).toEqual([...tokens].reverse());
    const times = listed.map((p) => Date.parse(p.updatedAt));
    expect(times).toEqual([...times].sort((x, y) => y - x));
    const whole = await app.request('GET', '/admin/payments?status=processed');
    expect((whole.body as { payments: { token: string }[] }).payments.map((p) => p.token)).toEqual(
      [...tokens].reverse(),
    );
    const bad = await app.request(
      'GET',
      '/admin/payments?status=processed&cursor=bm90IGEgY3Vyc29y',
    );
    expect(bad).toMatchObject({ status: 400, body: { error: { code: 'invalid_cursor' } } });

    const after = await stats();
    expect(after.counts.processed).toBe((before.counts.processed ?? 0) + tokens.length);
    expect(after.total).toBe(before.total + tokens.length);
    const inspected = await app.request('GET', '/inspect/api/counts');
    expect(inspected).toMatchObject({ status: 200, body: { counts: after.counts } });
    const newest = await app.request('GET', '/inspect/api/states/processed');
    expect((newest.body as { keys: { key: string }[] }).keys.map((k) => k.key)).toEqual(
      [...tokens].reverse(),
    );

    const recovered = await app.request('POST', '/admin/payments/listed-0/recover');
    expect(recovered.body).toMatchObject({ token: 'listed-0', status: 'processed' });

    const cliEnv = { ...env(), REDIS_KEY_PREFIX: 'cl' };
    const cliList = await runCli(['list', '--status', 'processed', '--json'], cliEnv);
    expect(cliList.code, cliList.output).toBe(0);
    expect(
      (JSON.parse(cliList.stdout) as { payments: { token: string }[] }).payments.map(
        (p) => p.token,
      ),
    ).toEqual([...tokens].reverse());
    const cliPage = await runCli(['list', '--status', 'processed', '--limit', '3'], cliEnv);
    expect(cliPage.code, cliPage.output).toBe(0);
    expect(cliPage.stdout).toContain('listed-7');
    expect(cliPage.stdout).toContain('more: --cursor ');
    const cliStats = await runCli(['stats', '--json'], cliEnv);
    expect(cliStats.code, cliStats.output).toBe(0);
    expect(JSON.parse(cliStats.stdout)).toEqual(after);
  }, 120_000);

  it("counts and lists a tenant's tokens of many slots, none of another tenant's", async () => {
    const keyed = await apps.start('keyed', {
      REDIS_KEY_PREFIX: 'clt',
      PAYSTATE_API_KEYS: TEST_API_KEYS,
      PAYSTATE_RATE_LIMIT_PER_SECOND: '0',
    });
    const A = bearer(TEST_KEYS.alpha);
    const B = bearer(TEST_KEYS.beta);
    const pay = async (headers: Record<string, string>, token: string) => {
      const paid = await keyed.request('POST', '/payments', {
        body: { accountId: 'tenant-acct', amountCents: 100 },
        headers: { ...headers, 'Idempotency-Key': token },
      });
      expect(paid.status).toBe(201);
    };
    const tokens = Array.from({ length: 5 }, (_, i) => `mine-${i}`);
    expect(new Set(tokens.map((t) => keySlot(`{t/alpha/${t}}`))).size).toBe(tokens.length);
    for (const [i, token] of tokens.entries()) {
      await pay(A, token);
      await pay(B, `theirs-${i}`);
    }
    expect(
      (await keyed.request('POST', '/payments/mine-0/cancel', { headers: A })).body,
    ).toMatchObject({ status: 'refunded' });

    const stats = await keyed.request('GET', '/admin/payments/stats', { headers: A });
    expect(stats.body).toMatchObject({ counts: { processed: 4, refunded: 1 }, total: 5 });
    expect(
      (await keyed.request('GET', '/admin/payments/stats', { headers: B })).body,
    ).toMatchObject({ counts: { processed: 5, refunded: 0 }, total: 5 });
    const inspected = await keyed.request('GET', '/inspect/api/counts', { headers: A });
    expect(inspected.body).toMatchObject({ counts: { processed: 4, refunded: 1 } });

    const listed: string[] = [];
    let cursor: string | null = null;
    do {
      const path: string =
        '/admin/payments?status=processed&limit=2' +
        (cursor === null ? '' : `&cursor=${encodeURIComponent(cursor)}`);
      const reply = await keyed.request('GET', path, { headers: A });
      expect(reply.status, path).toBe(200);
      const body = reply.body as { payments: { token: string }[]; nextCursor: string | null };
      listed.push(...body.payments.map((p) => p.token));
      cursor = body.nextCursor;
    } while (cursor !== null && listed.length <= tokens.length);
    expect(listed).toEqual(tokens.slice(1).reverse());
    const stuck = await keyed.request('GET', '/admin/payments/stuck?olderThan=0', { headers: B });
    expect(stuck).toMatchObject({ status: 200, body: { payments: [] } });
  }, 120_000);

  it('names tokens of many slots whose owed work is older than a threshold, and recovers them', async () => {
    // Processes that only answer (no sweep) under a prefix of their own; the
    // first dies right after storing each charge's intent.
    const stuckEnv = { REDIS_KEY_PREFIX: 'st', PAYSTATE_ROLES: 'api', LOCK_TTL_MS: '1000' };
    const tokens = ['stuck-a', 'stuck-b', 'stuck-c'];
    expect(new Set(tokens.map((t) => keySlot(`{${t}}`))).size).toBe(tokens.length);
    for (const token of tokens) {
      const crashing = await apps.start(`crash-${token}`, {
        ...stuckEnv,
        PAYSTATE_TEST_CRASH_AT: 'after-persist-intent:PAY',
      });
      await crashing
        .request('POST', '/payments', {
          body: { accountId: 'stuck-acct', amountCents: 100 },
          headers: { 'Idempotency-Key': token },
        })
        .catch(() => undefined);
      await crashing.exited();
    }
    const reader = await apps.start('reader', stuckEnv);
    const stuck = async (query: string) => {
      const reply = await reader.request('GET', `/admin/payments/stuck${query}`);
      expect(reply.status).toBe(200);
      return (reply.body as { payments: { token: string; status: string; owedSince: string }[] })
        .payments;
    };
    expect(await stuck('?olderThan=1h')).toEqual([]);
    const found = await stuck('?olderThan=0ms');
    expect(found.map((p) => p.token)).toEqual(tokens);
    expect(found.every((p) => p.status === 'charging')).toBe(true);
    const since = found.map((p) => Date.parse(p.owedSince));
    expect(since).toEqual([...since].sort((x, y) => x - y));
    expect((await stuck('?olderThan=0ms&limit=1')).map((p) => p.token)).toEqual(['stuck-a']);

    const cli = await runCli(['stuck', '--older-than', '0ms', '--json'], {
      ...env(),
      REDIS_KEY_PREFIX: 'st',
    });
    expect(cli.code, cli.output).toBe(0);
    expect(
      (JSON.parse(cli.stdout) as { payments: { token: string }[] }).payments.map((p) => p.token),
    ).toEqual(tokens);

    const recovered = await reader.request('POST', '/admin/payments/stuck-b/recover');
    expect(recovered.body).toMatchObject({ token: 'stuck-b', status: 'processed' });
    expect((await stuck('?olderThan=0ms')).map((p) => p.token)).toEqual(['stuck-a', 'stuck-c']);
  }, 120_000);

  it('reads a token, an account and the store from the cluster in the CLI', async () => {
    const cliEnv = { ...env(), REDIS_KEY_PREFIX: 'cl' };
    const get = await runCli(['get', 'seed-token', '--json'], cliEnv);
    expect(get.code, get.output).toBe(0);
    expect(JSON.parse(get.stdout)).toMatchObject({ status: 'refunded' });
    const account = await runCli(['account', 'seed-acct', '--json'], cliEnv);
    expect(account.code, account.output).toBe(0);
    expect(JSON.parse(account.stdout)).toMatchObject({ balanceCents: 100_000 });
    const store = await runCli(['store', '--json'], cliEnv);
    expect(store.code, store.output).toBe(0);
    expect(JSON.parse(store.stdout)).toMatchObject({ id: expect.any(String) as string });
  });

  it('spreads records and timers over every master, and the timers fire', async () => {
    const quick = await apps.start('quick', { REDIS_KEY_PREFIX: 'tm', PAYMENT_EXPIRY_MS: '3000' });
    const tokens = Array.from({ length: 30 }, (_, i) => `timed-${i}`);
    for (const token of tokens) {
      const reply = await quick.request('POST', '/payments', {
        body: { accountId: `acct-${token}`, amountCents: 100 },
        headers: { 'Idempotency-Key': token },
      });
      expect(reply.status).toBe(201);
    }
    // Before they fire: delayed jobs and records on all three masters.
    const delayed = await keysPerMaster(cluster, 'tm:bull:*:payment-timers:delayed');
    const records = await keysPerMaster(cluster, 'tm:{timed-*}:state');
    expect(
      [...delayed.values()].filter((n) => n > 0),
      'masters with timer queues',
    ).toHaveLength(3);
    expect(
      [...records.values()].filter((n) => n > 0),
      'masters with records',
    ).toHaveLength(3);
    // Tokens in different slots, and every one expires on its timer.
    expect(new Set(tokens.map((t) => keySlot(`{${t}}`))).size).toBe(tokens.length);
    await waitFor(
      async () => {
        for (const token of tokens) {
          const view = await quick.request('GET', `/payments/${token}`);
          if ((view.body as { status?: string }).status !== 'expired') return undefined;
        }
        return true;
      },
      { timeoutMs: 30_000, intervalMs: 500, what: 'every token to expire' },
    );
  });

  it('re-arms a timer whose job was deleted from its queue, and the token expires', async () => {
    const lost = await apps.start('lost', {
      REDIS_KEY_PREFIX: 'lj',
      PAYMENT_EXPIRY_MS: '2000',
      LOCK_TTL_MS: '200',
      RECOVERY_INTERVAL_MS: '300',
      TIMER_QUEUES: '6',
    });
    const queues = clusterTimerQueues(cluster.seeds, 'lj', 6);
    try {
      const token = 'lost-job';
      const reply = await lost.request('POST', '/payments', {
        body: { accountId: 'lost-acct', amountCents: 100 },
        headers: { 'Idempotency-Key': token },
      });
      expect(reply.status).toBe(201);
      const job = await waitFor(async () =>
        (await queues.queueFor(token).getDelayed()).find((j) => j.data.key === token),
      );
      await job.remove();

      await waitFor(
        async () => {
          const view = await lost.request('GET', `/payments/${token}`);
          return (view.body as { status?: string }).status === 'expired' ? true : undefined;
        },
        { timeoutMs: 20_000, what: 'the token to expire on its re-armed timer' },
      );
      const metrics = await lost.request('GET', '/metrics');
      expect(String(metrics.body)).toMatch(
        /^paystate_timers_rearmed_total\{machine="payment"\} 1$/m,
      );
    } finally {
      await queues.close();
    }
  });

  it('refuses requests while one master has an evicting maxmemory-policy, and serves again once it has not', async () => {
    const masters = await cluster.masters();
    const last = masters.at(-1) ?? 0;
    const node = cluster.node(last);
    const ready = async () => (await app.request('GET', '/readyz')).status;
    await node.config('SET', 'maxmemory-policy', 'allkeys-lru');
    try {
      await waitFor(async () => ((await ready()) === 503 ? true : undefined), {
        timeoutMs: 10_000,
        intervalMs: 200,
        what: 'the evicting master to be noticed',
      });
      const refused = await app.request('POST', '/payments', {
        body: { accountId: 'evicting', amountCents: 100 },
        headers: { 'Idempotency-Key': 'while-evicting' },
      });
      expect(refused).toMatchObject({ status: 503, body: { error: { code: 'unavailable' } } });
    } finally {
      await node.config('SET', 'maxmemory-policy', 'noeviction');
    }
    await waitFor(async () => ((await ready()) === 200 ? true : undefined), {
      timeoutMs: 10_000,
      intervalMs: 200,
      what: 'requests served again',
    });
  });

  it('refuses with store_lost when a shard comes back empty, until an operator accepts', async () => {
    const [victim = 0] = await cluster.masters();
    // A master (and, through replication, its replica) that lost everything.
    await cluster.node(victim).flushall();
    const payNew = (token: string) =>
      app.request('POST', '/payments', {
        body: { accountId: 'after-flush', amountCents: 100 },
        headers: { 'Idempotency-Key': token },
      });
    const refused = await waitFor(
      async () => {
        const reply = await payNew(`flushed-${Date.now()}`);
        return reply.status === 503 ? reply : undefined;
      },
      { timeoutMs: 10_000, intervalMs: 200, what: 'store_lost' },
    );
    expect(refused.body).toMatchObject({ error: { code: 'store_lost' } });
    expect((await app.request('GET', '/readyz')).status).toBe(503);

    const accept = await runCli(['store', 'accept'], { ...env(), REDIS_KEY_PREFIX: 'cl' });
    expect(accept.code, accept.output).toBe(0);
    await waitFor(
      async () => ((await payNew(`accepted-${Date.now()}`)).status === 201 ? true : undefined),
      { timeoutMs: 10_000, intervalMs: 200, what: 'payments after the accept' },
    );
  });
});
