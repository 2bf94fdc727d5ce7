/**
 * A private redis-server per test suite, on a free port, in a temporary
 * directory, so tests can kill, restart and inspect it without touching any
 * other Redis on the machine.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { redisReply, redisServerArgs } from '../../src/managed-redis.ts';

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => {
        resolve(port);
      });
    });
  });
}

export interface RedisServerOptions {
  /** `no` (default: fastest), `everysec` or `always`. */
  readonly appendfsync?: 'no' | 'everysec' | 'always';
  readonly appendonly?: boolean;
  /** More redis-server arguments, e.g. `['--maxmemory', '32mb']`. */
  readonly extraArgs?: readonly string[];
}

export interface TestRedisServer {
  readonly url: string;
  readonly port: number;
  readonly dir: string;
  /** Stops the process with `signal` (SIGKILL for a crash) and waits for it to exit. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Stops it with SIGSTOP: connections stay open and nothing answers, until resume(). */
  pause(): void;
  resume(): void;
  /**
   * Starts it again on the same port and directory (replaying the AOF if
   * any), and waits until it answers PING (`ready`), or until it answers at
   * all, if only with an error such as `LOADING` (`listening`).
   */
  start(until?: 'ready' | 'listening'): Promise<void>;
  /** Kills it and removes its directory. */
  destroy(): Promise<void>;
}

async function waitForPing(
  url: string,
  child: ChildProcess,
  until: 'ready' | 'listening',
): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`redis-server exited with ${child.exitCode}`);
    const reply = await redisReply(url, 500);
    if (reply === 'PONG' || (until === 'listening' && reply !== null)) return;
    if (Date.now() > deadline) throw new Error(`redis-server at ${url} did not answer`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export async function startRedisServer(options: RedisServerOptions = {}): Promise<TestRedisServer> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'paystate-redis-'));
  const url = `redis://127.0.0.1:${port}`;
  const args = [
    ...redisServerArgs({
      port,
      dir,
      appendonly: options.appendonly !== false,
      appendfsync: options.appendfsync ?? 'no',
    }),
    ...(options.extraArgs ?? []),
  ];
  let child: ChildProcess | null = null;

  const start = async (until: 'ready' | 'listening' = 'ready') => {
    const started = spawn('redis-server', args, { stdio: 'ignore' });
    child = started;
    try {
      await waitForPing(url, started, until);
    } catch (error) {
      // One that never answered is not left running (on a first start nobody holds it).
      started.kill('SIGKILL');
      throw error;
    }
  };
  const kill = async (signal: NodeJS.Signals = 'SIGKILL') => {
    const running = child;
    if (running === null || running.exitCode !== null) return;
    const exited = new Promise<void>((resolve) =>
      running.once('exit', () => {
        resolve();
      }),
    );
    running.kill(signal);
    await exited;
    child = null;
  };
  await start();
  return {
    url,
    port,
    dir,
    kill,
    pause: () => {
      child?.kill('SIGSTOP');
    },
    resume: () => {
      child?.kill('SIGCONT');
    },
    start,
    async destroy() {
      await kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
