/**
 * A private redis-server per test suite, on a free port, in a temporary
 * directory, so tests can kill, restart and inspect it without touching any
 * other Redis on the machine.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
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

async function otherFreePort(taken: number): Promise<number> {
  for (;;) {
    const port = await freePort();
    if (port !== taken) return port;
  }
}

export interface RedisServerOptions {
  /** `no` (default: fastest), `everysec` or `always`. */
  readonly appendfsync?: 'no' | 'everysec' | 'always';
  readonly appendonly?: boolean;
  /** More redis-server arguments, e.g. `['--maxmemory', '32mb']`. */
  readonly extraArgs?: readonly string[];
  /**
   * A Cluster node: its bus gets a free port of its own (`--cluster-port`)
   * instead of the port plus 10000, which may be past 65535 or taken by
   * another socket.
   */
  readonly clusterBus?: boolean;
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
  dir: string,
): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (child.exitCode !== null) {
      throw new RedisServerExited(`redis-server exited with ${child.exitCode}: ${lastWords(dir)}`);
    }
    const reply = await redisReply(url, 500);
    if (reply === 'PONG' || (until === 'listening' && reply !== null)) return;
    if (Date.now() > deadline) throw new Error(`redis-server at ${url} did not answer`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

class RedisServerExited extends Error {}

/** The last lines redis-server logged, for an error that says why it stopped. */
function lastWords(dir: string): string {
  try {
    return readFileSync(join(dir, 'redis.log'), 'utf8').trim().split('\n').slice(-2).join(' | ');
  } catch {
    return 'no log';
  }
}

export async function startRedisServer(options: RedisServerOptions = {}): Promise<TestRedisServer> {
  let dir = '';
  let port = 0;
  let url = '';
  let args: string[] = [];
  let child: ChildProcess | null = null;

  const start = async (until: 'ready' | 'listening' = 'ready') => {
    const started = spawn('redis-server', args, { stdio: 'ignore' });
    child = started;
    try {
      await waitForPing(url, started, until, dir);
    } catch (error) {
      // One that never answered is not left running (on a first start nobody holds it).
      started.kill('SIGKILL');
      throw error;
    }
  };
  // A free port can be taken between the check and redis-server's bind (by any
  // socket of a test running beside this one): a first start that exits is
  // tried again on other ports.
  for (let attempt = 1; ; attempt += 1) {
    dir = mkdtempSync(join(tmpdir(), 'paystate-redis-'));
    port = await freePort();
    url = `redis://127.0.0.1:${port}`;
    args = [
      ...redisServerArgs({
        port,
        dir,
        appendonly: options.appendonly !== false,
        appendfsync: options.appendfsync ?? 'no',
      }),
      ...(options.clusterBus === true ? ['--cluster-port', String(await otherFreePort(port))] : []),
      ...(options.extraArgs ?? []),
    ];
    try {
      await start();
      break;
    } catch (error) {
      rmSync(dir, { recursive: true, force: true });
      if (!(error instanceof RedisServerExited) || attempt === 5) throw error;
    }
  }
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
