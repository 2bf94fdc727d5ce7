/**
 * REDIS_WAIT_REPLICAS: a write an effect or an answer depends on must be on
 * that many replicas first. With the only replica stopped (SIGSTOP: its
 * connection stays open and it acknowledges nothing), a payment is answered
 * 503 unavailable and nothing is charged, not by the request and not by the
 * recovery sweep; once the replica answers again the payment completes,
 * charged once.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AppProcesses, errorCode, type AppProcess } from '../support/app-process.ts';
import { startRedisServer, type TestRedisServer } from '../support/redis-server.ts';
import { waitFor } from '../support/service-harness.ts';
import { Redis } from 'ioredis';
import { ReplicaWait } from '../../src/runtime/redis/replica-wait.ts';

const LOCK_TTL_MS = 1_000;
const RECOVERY_INTERVAL_MS = 200;

interface AccountBody {
  readonly balanceCents: number;
  readonly ledger: readonly { kind: string; token: string }[];
}

describe('REDIS_WAIT_REPLICAS=1 with a master and one replica', () => {
  let master: TestRedisServer;
  let replica: TestRedisServer;
  let apps: AppProcesses;
  let app: AppProcess;

  const pay = (token: string) =>
    app.request('POST', '/payments', {
      headers: { 'Idempotency-Key': token },
      body: { accountId: `acct-${token}`, amountCents: 1_000 },
    });
  const account = async (token: string) =>
    (await app.request('GET', `/accounts/acct-${token}`)).body as AccountBody;

  beforeAll(async () => {
    master = await startRedisServer();
    replica = await startRedisServer();
    const admin = new Redis(replica.url);
    await admin.call('REPLICAOF', '127.0.0.1', String(master.port));
    await waitFor(
      async () =>
        (await admin.info('replication')).includes('master_link_status:up') ? true : undefined,
      { what: 'the replica to sync' },
    );
    admin.disconnect();
    apps = new AppProcesses({
      REDIS_URL: master.url,
      REDIS_WAIT_REPLICAS: '1',
      REDIS_WAIT_TIMEOUT_MS: '300',
      LOCK_TTL_MS: String(LOCK_TTL_MS),
      RECOVERY_INTERVAL_MS: String(RECOVERY_INTERVAL_MS),
    });
    app = await apps.start('app');
  }, 60_000);
  afterAll(async () => {
    replica.resume();
    await apps.killAll();
    await Promise.all([replica.destroy(), master.destroy()]);
  });

  it('charges once the replica confirms', async () => {
    expect((await pay('confirmed')).status).toBe(201);
    expect((await account('confirmed')).balanceCents).toBe(99_000);
  });

  it('answers 503 and charges nothing while the replica does not confirm, then completes once', async () => {
    replica.pause();
    const refused = await pay('unconfirmed');
    expect(refused.status).toBe(503);
    expect(errorCode(refused)).toBe('unavailable');
    expect(refused.headers['retry-after']).toMatch(/^\d+$/);
    // The intent is stored; its effect did not run.
    const view = await app.request('GET', '/payments/unconfirmed');
    expect(view.body).toMatchObject({ status: 'processing' });
    expect((await account('unconfirmed')).ledger).toHaveLength(0);

    // Past the sweep's grace, several passes: still nothing charged.
    await new Promise((resolve) => setTimeout(resolve, LOCK_TTL_MS + 5 * RECOVERY_INTERVAL_MS));
    expect((await account('unconfirmed')).ledger).toHaveLength(0);
    expect((await pay('unconfirmed')).status).toBe(503);
    expect((await account('unconfirmed')).balanceCents).toBe(100_000);

    replica.resume();
    await waitFor(
      async () => {
        const again = await pay('unconfirmed');
        return again.status === 200 || again.status === 201 ? again : undefined;
      },
      { timeoutMs: 15_000, intervalMs: 200, what: 'the payment to complete' },
    );
    const after = await account('unconfirmed');
    expect(after.ledger.filter((e) => e.kind === 'withdrawal')).toHaveLength(1);
    expect(after.balanceCents).toBe(99_000);
  });

  it('says unavailable, not internal, when the node it waits on is no longer a master', async () => {
    // What a connection meets during a failover: the node it holds for a
    // slot's master has become a replica, and Redis refuses WAIT there.
    const onReplica = new Redis(replica.url);
    try {
      const waiting = new ReplicaWait(onReplica, 1, 100);
      const refused = await waiting.confirm('any-key').then(
        () => null,
        (error: unknown) => error,
      );
      expect(refused).toMatchObject({ name: 'RuntimeError', code: 'unavailable', retryable: true });
      expect(String((refused as Error).cause)).toMatch(/WAIT cannot be used with replica/);
    } finally {
      onReplica.disconnect();
    }
  });
});
