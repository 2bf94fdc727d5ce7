/**
 * The service as a process: managed Redis if needed, the eviction-policy
 * check, start, and the stop on signals. `src/main.ts` runs it.
 */
import { setTimeout as delay } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { ConfigError, isLoopbackHost, loadConfig, type Config } from './config.ts';
import { maxmemoryPolicy } from './runtime/redis/eviction-policy.ts';
import {
  isLocalUrl,
  redisReply,
  redisServerInstalled,
  startManagedRedis,
  type ManagedRedis,
} from './managed-redis.ts';
import { createLogger, fieldLogger, type FieldLogger } from './observability/log.ts';
import { startService, type RunningService, type ServiceOptions } from './service.ts';

const EXIT_STOP_CUT_SHORT = 3;

/** How often start-up asks a Redis that is loading its data set whether it is done. */
const LOADING_POLL_MS = 250;

const STOP_SIGNALS = { SIGHUP: 1, SIGINT: 2, SIGTERM: 15 } as const;
type StopSignal = keyof typeof STOP_SIGNALS;

/**
 * A signal within this long of the first is the same request delivered
 * twice, not an operator insisting: npm forwards SIGINT and SIGTERM to this
 * process, which a terminal's Ctrl+C or systemd's stop (to the whole
 * process group or cgroup) has already delivered here directly.
 */
const REPEAT_WINDOW_MS = 500;

/**
 * Beyond SHUTDOWN_TIMEOUT_MS, what stopping the managed Redis and exiting
 * may take before the process exits regardless.
 */
const EXIT_GRACE_MS = 1_500;

/** A Redis URL fit for a log line or a message: its password, if any, censored. */
function shown(redisUrl: string): string {
  try {
    const url = new URL(redisUrl);
    if (url.password === '') return redisUrl;
    url.password = 'redacted';
    return url.toString();
  } catch {
    return '(unparseable REDIS_URL)';
  }
}

function fail(message: string, code = 1): never {
  console.error(message);
  process.exit(code);
}

async function ensureRedis(config: Config, log: FieldLogger): Promise<ManagedRedis | null> {
  let reply = await redisReply(config.redisUrl);
  if (reply?.startsWith('LOADING') === true) {
    // Redis restarted and reads its data set back: wait for it, however long that takes.
    log.info('Redis at REDIS_URL is loading its data; waiting for it', {
      redis: shown(config.redisUrl),
    });
    while (reply?.startsWith('LOADING') === true) {
      await delay(LOADING_POLL_MS);
      reply = await redisReply(config.redisUrl);
    }
  }
  if (reply === 'PONG') return null;
  if (reply !== null) {
    // A Redis is there, only not usable as it is: never start another on its port.
    if (/^(NOAUTH|WRONGPASS)\b/.test(reply)) {
      fail(
        `Redis at REDIS_URL=${shown(config.redisUrl)} refuses the connection: ${reply}\n` +
          'Put its user and password in REDIS_URL: redis://user:password@host:port.',
      );
    }
    log.warn('Redis at REDIS_URL answers PING with an error', {
      redis: shown(config.redisUrl),
      reply,
    });
    return null;
  }
  if (config.managedRedis === 'never' || !isLocalUrl(config.redisUrl)) {
    fail(
      `Nothing answers at REDIS_URL=${shown(config.redisUrl)}. Start Redis there, or point REDIS_URL at one.`,
    );
  }
  if (!redisServerInstalled()) {
    fail(
      `Nothing answers at REDIS_URL=${shown(config.redisUrl)} and redis-server is not installed.\n` +
        'Install Redis (Debian/Ubuntu: apt-get install redis-server; macOS: brew install redis)\n' +
        'and run it, or set REDIS_URL to a Redis you already have.',
    );
  }
  const managed = await startManagedRedis(config.redisUrl, config.dataDir);
  log.info('started a managed local Redis (AOF, appendfsync everysec)', {
    port: managed.port,
    dir: managed.dir,
  });
  return managed;
}

/**
 * Redis must never evict: an evicted record or ledger operation id lets a
 * token be charged twice, an evicted BullMQ job loses a timer. Refuses to
 * start on any other maxmemory-policy; says so when it cannot read it.
 */
async function checkEvictionPolicy(redisUrl: string, log: FieldLogger): Promise<void> {
  const redis = new Redis(redisUrl, { maxRetriesPerRequest: 0, retryStrategy: () => null });
  redis.on('error', () => undefined);
  let policy: string | undefined;
  let reason = '';
  try {
    policy = await maxmemoryPolicy(redis);
  } catch (error) {
    reason = error instanceof Error ? error.message : String(error);
  } finally {
    redis.disconnect();
  }
  if (policy === undefined) {
    log.error('could not check maxmemory-policy: make sure it is noeviction', { reason });
  } else if (policy !== 'noeviction') {
    fail(
      `Redis at ${shown(redisUrl)} has maxmemory-policy ${policy}; paystate needs noeviction.\n` +
        'With eviction, a full Redis silently deletes keys: a payment record or a ledger operation id\n' +
        '(a token can then be charged twice) or a BullMQ expiry job (a timer lost). With noeviction\n' +
        'it refuses writes instead, and paystate answers 503 storage_full until memory is freed.\n' +
        'Set it with CONFIG SET maxmemory-policy noeviction (and in redis.conf).',
    );
  }
}

/**
 * Runs the service as a process until a signal stops it. `options` reach
 * startService (a test entry point passes its fault hook this way).
 */
export async function runProcess(options: Omit<ServiceOptions, 'logger'> = {}): Promise<void> {
  let config: Config;
  try {
    config = loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) fail(error.message, 2);
    throw error;
  }
  // JSON lines on stdout at LOG_LEVEL (docs/operations.md).
  const logger = createLogger(config.logLevel);
  const log = fieldLogger(logger);

  let service: RunningService | null = null;
  let managed: ManagedRedis | null = null;
  let stopStartedAt: number | null = null;
  const stop = async (running: RunningService) => {
    // Whatever the stop does, the process ends shortly after its deadline.
    setTimeout(() => {
      log.error('stop did not finish in time; exiting', {
        shutdownTimeoutMs: config.shutdownTimeoutMs,
      });
      process.exit(EXIT_STOP_CUT_SHORT);
    }, config.shutdownTimeoutMs + EXIT_GRACE_MS);
    const { abandoned } = await running.stop();
    await managed?.stop();
    log.info('stopped', { clean: abandoned.length === 0 });
    process.exit(abandoned.length === 0 ? 0 : EXIT_STOP_CUT_SHORT);
  };
  const onSignal = (signal: StopSignal) => {
    const exitCode = 128 + STOP_SIGNALS[signal];
    if (service === null) {
      // Nothing to drain yet; a managed Redis already started stops with the process.
      log.info('signal during start-up; exiting', { signal });
      process.exit(exitCode);
    }
    if (stopStartedAt === null) {
      stopStartedAt = Date.now();
      log.info('shutting down', { signal, shutdownTimeoutMs: config.shutdownTimeoutMs });
      stop(service).catch((error: unknown) => {
        log.error('stop failed', { err: error });
        process.exit(EXIT_STOP_CUT_SHORT);
      });
      return;
    }
    if (Date.now() - stopStartedAt < REPEAT_WINDOW_MS) return;
    log.error('second signal: exiting now, without finishing the stop', { signal });
    process.exit(exitCode);
  };
  for (const signal of Object.keys(STOP_SIGNALS) as StopSignal[]) {
    process.on(signal, () => {
      onSignal(signal);
    });
  }

  const cluster = config.redisClusterNodes;
  if (cluster === null) {
    managed = await ensureRedis(config, log);
    await checkEvictionPolicy(config.redisUrl, log);
  } else {
    // The seed nodes stand for the cluster: every node must have noeviction.
    for (const node of cluster) await checkEvictionPolicy(`redis://${node.host}:${node.port}`, log);
  }
  service = await startService(config, { ...options, logger });
  // Tenant names only: a key or its digest is never logged.
  const tenants = [...new Set(config.apiKeys.map((k) => k.tenant))];
  log.info('paystate started', {
    roles: config.roles,
    auth: tenants.length === 0 ? 'off' : 'on',
    ...(tenants.length === 0 ? {} : { tenants }),
    host: config.host,
    url: service.url,
    metricsUrl: service.metricsUrl,
    redis:
      cluster === null
        ? shown(config.redisUrl)
        : `cluster ${cluster.map((n) => `${n.host}:${n.port}`).join(',')}`,
  });
  if (tenants.length === 0 && service.url !== null && !isLoopbackHost(config.host)) {
    log.warn(
      'authentication is off on a network address (PAYSTATE_ALLOW_UNAUTHENTICATED=1): whatever is in front must authenticate every request',
      { host: config.host },
    );
  }
}

/** An error that stopped the start, with what Redis said when that is the cause. */
function startFailure(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const cause = error.cause instanceof Error ? error.cause.message : '';
  return cause === '' || error.message.includes(cause)
    ? error.message
    : `${error.message}: ${cause}`;
}

/** Starts the process, exiting with status 1 if it cannot start. */
export function main(options: Omit<ServiceOptions, 'logger'> = {}): void {
  runProcess(options).catch((error: unknown) => {
    fail(`paystate failed to start: ${startFailure(error)}`);
  });
}
