/**
 * Stopping the service with signals, as systemd, Docker, a process manager
 * or a terminal does: with Redis gone or hung, with a second signal, and
 * through `npm start`. Real processes and real redis-servers; the drain of
 * the HTTP connections is in drain.test.ts.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { accountOf, exitOf, within, type AppProcess } from '../support/app-process.ts';
import { ROOT } from '../support/processes.ts';
import { descendantsOf, isGone, portAccepts } from '../support/process-tree.ts';
import { rawConnection } from '../support/raw-http.ts';
import { freePort } from '../support/redis-server.ts';
import { waitFor } from '../support/service-harness.ts';
import { perTestResources } from '../support/per-test-resources.ts';

/**
 * A signal that arrives within this long of the first is the same stop
 * request delivered twice (npm forwards what a terminal or systemd already
 * sent to the whole group), not an operator's second signal: src/main.ts.
 */
const REPEAT_WINDOW_MS = 500;
/** Start-up, exit and scheduling slack on a busy two-core machine, on top of SHUTDOWN_TIMEOUT_MS. */
const EXIT_SLACK_MS = 2_500;

const { cleanups, ownRedis, processes } = perTestResources();

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

async function pay(app: AppProcess, token: string) {
  return app.request('POST', '/payments', {
    headers: { 'Idempotency-Key': token },
    body: { accountId: accountOf(token), amountCents: 100 },
  });
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
    // A request whose body never finishes arriving holds the drain open for
    // the whole SHUTDOWN_TIMEOUT_MS: without it the stop may end by itself
    // (BullMQ's close sometimes returns at once on a dead Redis) and there is
    // no stop left for a second signal to cut short. Node answers
    // `100 Continue` as it hands the request to the app.
    const held = rawConnection(app.url ?? '');
    cleanups.push(() => held.socket.destroy());
    held.write(
      'POST /payments HTTP/1.1\r\nHost: paystate\r\nIdempotency-Key: held-open\r\n' +
        'Content-Type: application/json\r\nContent-Length: 100\r\nExpect: 100-continue\r\n\r\n',
    );
    await waitFor(() => (held.text().includes('100 Continue') ? true : undefined), {
      what: 'the held request to reach the app',
    });
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

describe('signals to the npm start process', () => {
  /**
   * `npm start` with a managed Redis (nothing answers at REDIS_URL) and a data
   * dir of its own; with `group`, npm leads a process group, as in a terminal.
   */
  async function npmStart({ group = false } = {}) {
    const port = await freePort();
    const dataDir = mkdtempSync(join(tmpdir(), 'paystate-data-'));
    const npm: ChildProcess = spawn('npm', ['start'], {
      cwd: ROOT,
      env: {
        ...process.env,
        PORT: String(port),
        HOST: '127.0.0.1',
        REDIS_URL: `redis://127.0.0.1:${await freePort()}`,
        PAYSTATE_DATA_DIR: dataDir,
        npm_config_update_notifier: 'false',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: group,
    });
    let output = '';
    npm.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    npm.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
      npm.once('exit', (code, signal) => {
        resolve({ code, signal });
      }),
    );
    const npmPid = npm.pid;
    if (npmPid === undefined) throw new Error('npm did not start');
    let tree: { pid: number; command: string }[] = [];
    cleanups.push(() => {
      npm.kill('SIGKILL');
      for (const { pid } of tree) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
      rmSync(dataDir, { recursive: true, force: true });
    });
    await waitFor(() => (output.includes('paystate started') ? true : undefined), {
      timeoutMs: 20_000,
      what: `npm start to serve:\n${output}`,
    });
    tree = descendantsOf(npmPid);
    return { npm, npmPid, port, exited, tree, output: () => output };
  }

  it.each(['SIGTERM', 'SIGINT'] as const)(
    'stops the service and its managed Redis on %s to npm',
    async (signal) => {
      const started = await npmStart();
      const ready = await fetch(`http://127.0.0.1:${started.port}/readyz`);
      expect(ready.status).toBe(200);
      const node = started.tree.filter((p) => p.command === 'node');
      const redis = started.tree.filter((p) => p.command === 'redis-server');
      expect(node).toHaveLength(1);
      expect(redis).toHaveLength(1);

      process.kill(started.npmPid, signal);
      const exit = await within(started.exited, 15_000, `npm to exit after ${signal}`);

      expect(exit).toEqual({ code: 0, signal: null });
      expect(await portAccepts(started.port)).toBe(false);
      await waitFor(() => (started.tree.every(({ pid }) => isGone(pid)) ? true : undefined), {
        timeoutMs: 5_000,
        what: `${started.tree.map((p) => `${p.command} ${p.pid}`).join(', ')} to exit`,
      });
      expect(started.output()).toContain('"message":"stopped"');
    },
  );

  it('stops cleanly on Ctrl+C, which reaches npm and the service at once', async () => {
    const started = await npmStart({ group: true });
    const redis = started.tree.filter((p) => p.command === 'redis-server');
    expect(redis).toHaveLength(1);

    // What a terminal does: SIGINT to every process of the foreground group.
    process.kill(-started.npmPid, 'SIGINT');
    const exit = await within(started.exited, 15_000, 'npm to exit after Ctrl+C');

    expect(exit).toEqual({ code: 0, signal: null });
    await waitFor(() => (started.tree.every(({ pid }) => isGone(pid)) ? true : undefined), {
      timeoutMs: 5_000,
      what: 'the service and its Redis to exit',
    });
    // One stop, drained against a live Redis, not cut short by a repeat of the signal.
    expect(started.output()).toContain('"message":"stopped","clean":true');
    expect(started.output()).not.toContain('second signal');
  });
});
