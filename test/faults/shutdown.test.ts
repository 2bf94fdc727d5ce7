/**
 * Stopping the service with signals, as systemd, Docker, a process manager
 * or a terminal does: with Redis gone or hung, and with a second signal.
 * Real processes and real redis-servers.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { AppProcesses, accountOf, type AppProcess } from '../support/app-process.ts';
import { descendantsOf, isGone, portAccepts } from '../support/process-tree.ts';
import { freePort, startRedisServer, type TestRedisServer } from '../support/redis-server.ts';
import { randomPrefix, waitFor } from '../support/service-harness.ts';

/**
 * A signal that arrives within this long of the first is the same stop
 * request delivered twice (npm forwards what a terminal or systemd already
 * sent to the whole group), not an operator's second signal: src/main.ts.
 */
const REPEAT_WINDOW_MS = 500;
/** Start-up, exit and scheduling slack on a busy two-core machine, on top of SHUTDOWN_TIMEOUT_MS. */
const EXIT_SLACK_MS = 2_500;

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (let cleanup = cleanups.pop(); cleanup !== undefined; cleanup = cleanups.pop()) {
    await cleanup();
  }
});

/** Kills every process under `pid` (a managed redis-server outlives a SIGKILL of its owner). */
function killTree(pid: number): void {
  for (const { pid: child } of descendantsOf(pid)) {
    try {
      process.kill(child, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

async function ownRedis(): Promise<TestRedisServer> {
  const redis = await startRedisServer();
  cleanups.push(() => redis.destroy());
  return redis;
}

function processes(env: Record<string, string>): AppProcesses {
  const apps = new AppProcesses({ REDIS_KEY_PREFIX: randomPrefix(), ...env });
  cleanups.push(() => apps.killAll());
  return apps;
}

async function pay(app: AppProcess, token: string) {
  return app.request('POST', '/payments', {
    headers: { 'Idempotency-Key': token },
    body: { accountId: accountOf(token), amountCents: 100 },
  });
}

/** Waits for `app` to exit and says how long after `since` it did. */
async function exitOf(app: AppProcess, since: number, timeoutMs: number) {
  const exit = await app.exited(timeoutMs);
  return { ...exit, afterMs: Date.now() - since };
}

describe('SIGTERM while Redis is down', () => {
  const SHUTDOWN_TIMEOUT_MS = 1_000;

  it.each(['SIGKILL', 'SIGSTOP'] as const)(
    'exits within SHUTDOWN_TIMEOUT_MS after Redis was stopped with %s, saying what it abandoned',
    async (redisSignal) => {
      const redis = await ownRedis();
      const apps = processes({
        REDIS_URL: redis.url,
        SHUTDOWN_TIMEOUT_MS: String(SHUTDOWN_TIMEOUT_MS),
      });
      const app = await apps.start('app');
      expect((await pay(app, 'before-redis-goes')).status).toBe(201);

      if (redisSignal === 'SIGKILL') await redis.kill('SIGKILL');
      else redis.pause();
      const signalledAt = Date.now();
      app.process.child.kill('SIGTERM');
      const exit = await exitOf(app, signalledAt, SHUTDOWN_TIMEOUT_MS + EXIT_SLACK_MS);

      expect(exit.afterMs).toBeLessThan(SHUTDOWN_TIMEOUT_MS + EXIT_SLACK_MS);
      expect(exit).toMatchObject({ code: 3, signal: null });
      expect(app.process.output()).toContain('expiry worker did not close');
    },
  );

  it.each([
    ['SIGTERM', 143],
    ['SIGINT', 130],
  ] as const)('a second signal (%s) ends the stop at once', async (second, code) => {
    const redis = await ownRedis();
    const apps = processes({ REDIS_URL: redis.url, SHUTDOWN_TIMEOUT_MS: '60000' });
    const app = await apps.start('app');
    await redis.kill('SIGKILL');

    app.process.child.kill('SIGTERM');
    await app.process.waitForOutput('shutting down');
    const firstSeenAt = Date.now();
    // The stop is under way (the port is closed) and the second signal cannot be
    // mistaken for a repeat of the first.
    await waitFor(async () =>
      Date.now() - firstSeenAt > 2 * REPEAT_WINDOW_MS &&
      !(await portAccepts(Number(new URL(app.url ?? '').port)))
        ? true
        : undefined,
    );
    expect(app.isAlive()).toBe(true);

    const signalledAt = Date.now();
    app.process.child.kill(second);
    const exit = await exitOf(app, signalledAt, EXIT_SLACK_MS);

    expect(exit).toMatchObject({ code, signal: null });
    expect(app.process.output()).toContain('second signal');
  });

  it('stops the managed redis-server it started, also when the stop is forced', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'paystate-data-'));
    cleanups.push(() => {
      rmSync(dataDir, { recursive: true, force: true });
    });
    const apps = processes({
      REDIS_URL: `redis://127.0.0.1:${await freePort()}`,
      PAYSTATE_MANAGED_REDIS: 'auto',
      PAYSTATE_DATA_DIR: dataDir,
      SHUTDOWN_TIMEOUT_MS: String(SHUTDOWN_TIMEOUT_MS),
    });
    const app = await apps.start('app');
    cleanups.push(() => {
      killTree(app.pid);
    });
    const managed = descendantsOf(app.pid).find((p) => p.command === 'redis-server');
    if (managed === undefined) throw new Error('no managed redis-server under the service');
    // Redis hangs: the worker cannot close and the stop runs into its deadline.
    process.kill(managed.pid, 'SIGSTOP');

    const signalledAt = Date.now();
    app.process.child.kill('SIGTERM');
    const exit = await exitOf(app, signalledAt, SHUTDOWN_TIMEOUT_MS + EXIT_SLACK_MS);

    expect(exit.code).toBe(3);
    await waitFor(() => (isGone(managed.pid) ? true : undefined), {
      timeoutMs: 5_000,
      what: 'the managed redis-server to exit',
    });
  });
});
