import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AppProcesses, type AppProcess } from '../support/app-process.ts';
import { startRedisCluster, type TestRedisCluster } from '../support/redis-cluster.ts';

/** Nothing listens there: the service must not need REDIS_URL on a cluster. */
const NOWHERE = 'redis://127.0.0.1:1';

describe('the API on a Redis Cluster (3 masters, 3 replicas)', () => {
  let cluster: TestRedisCluster;
  let apps: AppProcesses;
  let app: AppProcess;

  beforeAll(async () => {
    cluster = await startRedisCluster();
    apps = new AppProcesses({
      REDIS_CLUSTER_NODES: cluster.seeds,
      REDIS_URL: NOWHERE,
      REDIS_KEY_PREFIX: 'cl',
    });
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
});
