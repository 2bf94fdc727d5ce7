/**
 * Payments on a real Redis Cluster (3 masters, 3 replicas) under the faults
 * a cluster adds or changes: two processes racing on the same tokens, a
 * process killed under load, and a master killed under load while its
 * replica takes over. Afterwards every account and token is read back from
 * every master and audited (test/support/store-audit.ts): no token charged
 * twice, ledgers that add up, nothing left in charging/refunding or in an
 * outbox, every timed state with its timer, records on every master.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { AppProcesses, type AppProcess } from '../support/app-process.ts';
import {
  describeAnswer,
  lostAnswers,
  PaymentLoad,
  pollUntil,
  unexpectedAnswers,
} from '../support/payment-load.ts';
import { startRedisCluster, type TestRedisCluster } from '../support/redis-cluster.ts';
import { storeAuditor, type StoreAudit, type StoreAuditor } from '../support/store-audit.ts';

const NOWHERE = 'redis://127.0.0.1:1';
const INITIAL_BALANCE_CENTS = 100_000;
const TIMER_QUEUES = 6;
const SETTLE_TIMEOUT_MS = 30_000;

describe('payments on a Redis Cluster under faults', () => {
  let cluster: TestRedisCluster;
  const cleanups: (() => Promise<void>)[] = [];

  beforeAll(async () => {
    cluster = await startRedisCluster();
  }, 60_000);
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => undefined);
  });
  afterAll(async () => {
    await cluster.destroy();
  });

  /** Processes and an auditor on a key prefix of their own. */
  const setup = (env: Record<string, string> = {}) => {
    const keyPrefix = `c${randomBytes(4).toString('hex')}`;
    const apps = new AppProcesses({
      REDIS_CLUSTER_NODES: cluster.seeds,
      REDIS_URL: NOWHERE,
      REDIS_KEY_PREFIX: keyPrefix,
      ACCOUNT_INITIAL_BALANCE_CENTS: String(INITIAL_BALANCE_CENTS),
      TIMER_QUEUES: String(TIMER_QUEUES),
      LOCK_TTL_MS: '2000',
      RECOVERY_INTERVAL_MS: '1000',
      ...env,
    });
    const auditor = storeAuditor({
      redisUrl: NOWHERE,
      keyPrefix,
      initialBalanceCents: INITIAL_BALANCE_CENTS,
      cluster: { seeds: cluster.seeds, timerQueues: TIMER_QUEUES },
    });
    cleanups.push(
      () => apps.killAll(),
      () => auditor.close(),
    );
    return { apps, auditor, keyPrefix };
  };

  /** Waits for the sweep to finish what was left owed, then audits. */
  const settledAudit = async (auditor: StoreAuditor): Promise<StoreAudit> => {
    const settled = await pollUntil(
      async () => {
        const audit = await auditor.audit({ settled: false });
        return audit.inFlight === 0 && audit.outbox === 0;
      },
      SETTLE_TIMEOUT_MS,
      200,
    );
    if (!settled) console.warn('recovery did not settle in time');
    return auditor.audit({ settled: true });
  };

  it('charges each token at most once when two processes race on it', async () => {
    const { apps, auditor } = setup();
    // One after the other: two cold starts at once can outlast the start timeout on a busy machine.
    const one = await apps.start('one');
    const two = await apps.start('two');
    const tokens = Array.from({ length: 40 }, (_, i) => `race-${i}`);
    const pay = (app: AppProcess, token: string) =>
      app.request('POST', '/payments', {
        headers: { 'Idempotency-Key': token },
        body: { accountId: `acct-${token}`, amountCents: 700 },
      });
    const answers = await Promise.all(
      tokens.flatMap((token) => [
        pay(one, token),
        pay(two, token),
        two.request('POST', `/payments/${token}/cancel`),
        pay(one, token),
      ]),
    );
    // Every answer is a decision or a retryable refusal, never a server error.
    expect(answers.filter((a) => a.status >= 500 && a.status !== 503)).toEqual([]);

    const audit = await settledAudit(auditor);
    expect(audit.problems).toEqual([]);
    for (const token of tokens) {
      const found = audit.tokens.get(token);
      expect(found?.withdrawals ?? 0, token).toBeLessThanOrEqual(1);
    }
    expect(audit.recordsPerMaster).toHaveLength(3);
    expect(Math.min(...audit.recordsPerMaster), 'records on every master').toBeGreaterThan(0);
  });

  it('leaves nothing charged twice or stuck when a process is killed under load', async () => {
    const { apps, auditor } = setup();
    const victim = await apps.start('victim');
    const survivor = await apps.start('survivor');
    const runId = `k${randomBytes(3).toString('hex')}`;
    const onVictim = new PaymentLoad({ url: victim.url ?? '', runId: `${runId}v`, clients: 4 });
    const onSurvivor = new PaymentLoad({ url: survivor.url ?? '', runId: `${runId}s`, clients: 4 });
    onVictim.start();
    onSurvivor.start();
    try {
      expect(await pollUntil(() => onVictim.count('acknowledged') >= 40, 30_000)).toBe(true);
      victim.process.child.kill('SIGKILL');
      await victim.exited();
      await onVictim.stop();
      const before = onSurvivor.count('acknowledged');
      expect(await pollUntil(() => onSurvivor.count('acknowledged') >= before + 40, 30_000)).toBe(
        true,
      );
    } finally {
      await Promise.all([onVictim.stop(), onSurvivor.stop()]);
    }
    await onSurvivor.retryUnfinished();

    const audit = await settledAudit(auditor);
    if (audit.problems.length > 0)
      console.warn(
        survivor.process
          .output()
          .split('\n')
          .filter((l) => !l.includes('"request"'))
          .slice(-20)
          .join('\n'),
      );
    expect(audit.problems).toEqual([]);
    const runs = [...onVictim.runs, ...onSurvivor.runs];
    expect(lostAnswers(runs, audit.tokens).map((l) => describeAnswer(l.answer))).toEqual([]);
    expect(unexpectedAnswers(onSurvivor.answers()).map(describeAnswer)).toEqual([]);
    expect(Math.min(...audit.recordsPerMaster)).toBeGreaterThan(0);
  }, 120_000);

  it('survives a master killed under load; with REDIS_WAIT_REPLICAS=1 no acknowledged answer is lost', async () => {
    const { apps, auditor } = setup({ REDIS_WAIT_REPLICAS: '1' });
    const app = await apps.start('app');
    const load = new PaymentLoad({
      url: app.url ?? '',
      runId: `f${randomBytes(3).toString('hex')}`,
      clients: 6,
      attemptsPerStep: 5,
      retryBackoffMs: 200,
    });
    load.start();
    let promoted = 0;
    let victim = 0;
    try {
      const started = await pollUntil(() => load.count('acknowledged') >= 60, 30_000);
      if (!started)
        console.warn(
          app.process.output().split('\n').slice(-20).join('\n'),
          load.answers().slice(0, 10).map(describeAnswer),
        );
      expect(started).toBe(true);
      [victim = 0] = await cluster.masters();
      promoted = await cluster.failover(victim);
      // Back as a replica of the new master: WAIT 1 can be met on its slots again.
      await cluster.restart(victim);
      await cluster.waitHealthy();
      const before = load.count('acknowledged');
      expect(await pollUntil(() => load.count('acknowledged') >= before + 60, 30_000)).toBe(true);
    } finally {
      await load.stop();
    }
    await load.retryUnfinished();

    expect(promoted).not.toBe(0);
    expect(await cluster.masters()).toContain(promoted);
    const audit = await settledAudit(auditor);
    expect(audit.problems).toEqual([]);
    expect(lostAnswers(load.runs, audit.tokens).map((l) => describeAnswer(l.answer))).toEqual([]);
    const unexpected = unexpectedAnswers(load.answers());
    if (unexpected.length > 0) {
      // The service's error lines say what the unexpected answers were made of.
      console.warn(
        app.process
          .output()
          .split('\n')
          .filter((line) => line.includes('"level":"error"'))
          .slice(-10)
          .join('\n'),
      );
    }
    expect(unexpected.map(describeAnswer)).toEqual([]);
    expect(Math.min(...audit.recordsPerMaster)).toBeGreaterThan(0);
    console.info(
      `failover of ${victim} to ${promoted}: ${load.count('acknowledged')} acknowledged, ${load.count('unavailable')} unavailable, records per master ${audit.recordsPerMaster.join('/')}`,
    );
  }, 180_000);
});
