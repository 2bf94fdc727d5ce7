import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { Redis } from 'ioredis';

/**
 * For `npm start` on a laptop: when nothing answers at a local REDIS_URL and
 * redis-server is installed, run one with AOF persistence under the data
 * directory, owned by this process.
 */

/**
 * What Redis at `url` answers to PING: `PONG`, an error reply (`MISCONF ...`
 * after a failed save, `NOAUTH ...` without the password, `LOADING ...`), or
 * null when nothing answers at all.
 */
export async function redisReply(url: string, timeoutMs = 1_500): Promise<string | null> {
  const probe = new Redis(url, {
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    connectTimeout: timeoutMs,
    retryStrategy: () => null,
    enableOfflineQueue: false,
    // Its ready check would wait, silently, for as long as Redis is LOADING.
    enableReadyCheck: false,
  });
  // Only a Redis sends an error reply; a refused or dropped connection is nobody.
  const replyOf = (error: unknown) =>
    error instanceof Error && error.name === 'ReplyError' ? error.message : null;
  // A refused password or ready check comes as an event, then the connection closes.
  let refused: string | null = null;
  probe.on('error', (error: unknown) => {
    refused ??= replyOf(error);
  });
  try {
    await probe.connect();
    return await probe.ping();
  } catch (error) {
    return replyOf(error) ?? refused;
  } finally {
    probe.disconnect();
  }
}

export function redisServerInstalled(): boolean {
  return spawnSync('redis-server', ['--version'], { stdio: 'ignore' }).status === 0;
}

export function isLocalUrl(url: string): boolean {
  const { hostname } = new URL(url);
  return ['127.0.0.1', 'localhost', '::1', '[::1]'].includes(hostname);
}

export interface ManagedRedis {
  readonly dir: string;
  readonly port: number;
  /** Asks Redis to shut down (it writes out its AOF) and waits for it to exit. */
  stop(): Promise<void>;
}

/**
 * A token's record and its expiry job are hashes of a few fields, one of them
 * up to ~700 bytes (the snapshot, the job's options). Redis keeps a hash in
 * the compact listpack encoding only while every value is at most
 * `hash-max-listpack-value` bytes (64 by default); above, each becomes a hash
 * table, about a quarter more memory per token (docs/benchmarks.md).
 */
export const REDIS_MEMORY_SETTINGS = ['--hash-max-listpack-value', '1024'] as const;

/** Arguments for a local redis-server: loopback only, no RDB snapshots, log in its directory. */
export function redisServerArgs(options: {
  port: number;
  dir: string;
  appendonly: boolean;
  appendfsync: 'no' | 'everysec' | 'always';
}): string[] {
  return [
    '--port',
    String(options.port),
    '--bind',
    '127.0.0.1',
    '--dir',
    options.dir,
    '--save',
    '',
    '--appendonly',
    options.appendonly ? 'yes' : 'no',
    '--appendfsync',
    options.appendfsync,
    '--logfile',
    'redis.log',
    ...REDIS_MEMORY_SETTINGS,
  ];
}

/**
 * Starts redis-server and waits until it answers. It runs in a process group
 * of its own, so a terminal's Ctrl+C reaches the service, which drains
 * against a live Redis and then stops it, not both at once. It is stopped
 * on every way this process ends but SIGKILL: a clean stop, a forced exit,
 * a crash.
 */
export async function startManagedRedis(url: string, dataDir: string): Promise<ManagedRedis> {
  const port = Number(new URL(url).port || 6379);
  const dir = resolve(dataDir);
  mkdirSync(dir, { recursive: true });
  const child: ChildProcess = spawn(
    'redis-server',
    redisServerArgs({ port, dir, appendonly: true, appendfsync: 'everysec' }),
    { stdio: 'ignore', detached: true },
  );
  const running = () => child.exitCode === null && child.signalCode === null;
  const shutDown = () => {
    if (!running()) return;
    child.kill('SIGTERM');
    // A stopped (SIGSTOP) Redis acts on SIGTERM only once it runs again.
    child.kill('SIGCONT');
  };
  process.on('exit', shutDown);
  const exited = new Promise<void>((done) =>
    child.once('exit', () => {
      process.off('exit', shutDown);
      done();
    }),
  );
  // Ten seconds to answer at all; reading its AOF back takes what it takes.
  const deadline = Date.now() + 10_000;
  for (
    let reply = await redisReply(url, 500);
    reply !== 'PONG';
    reply = await redisReply(url, 500)
  ) {
    const loading = reply?.startsWith('LOADING') === true;
    if (child.exitCode !== null || (!loading && Date.now() > deadline)) {
      child.kill('SIGKILL');
      throw new Error(`managed redis-server did not start on port ${port}; see ${dir}/redis.log`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    dir,
    port,
    async stop() {
      shutDown();
      await exited;
    },
  };
}
