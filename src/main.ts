/**
 * `npm start`: API and expiry worker in one process (PAYSTATE_ROLES separates
 * them), graceful shutdown on SIGTERM/SIGINT.
 */
import { Redis } from 'ioredis';
import { ConfigError, loadConfig, type Config, type FaultSetting } from './config.ts';
import {
  isLocalUrl,
  redisAnswers,
  redisServerInstalled,
  startManagedRedis,
  type ManagedRedis,
} from './managed-redis.ts';
import { startService, type Logger } from './service.ts';

const log: Logger = {
  info: (message, fields) => {
    console.log(
      JSON.stringify({ level: 'info', time: new Date().toISOString(), message, ...fields }),
    );
  },
  warn: (message, fields) => {
    console.error(
      JSON.stringify({ level: 'warn', time: new Date().toISOString(), message, ...fields }),
    );
  },
  error: (message, fields) => {
    console.error(
      JSON.stringify({ level: 'error', time: new Date().toISOString(), message, ...fields }),
    );
  },
};

function fail(message: string, code = 1): never {
  console.error(message);
  process.exit(code);
}

async function ensureRedis(config: Config): Promise<ManagedRedis | null> {
  if (await redisAnswers(config.redisUrl)) return null;
  if (config.managedRedis === 'never' || !isLocalUrl(config.redisUrl)) {
    fail(
      `Nothing answers at REDIS_URL=${config.redisUrl}. Start Redis there, or point REDIS_URL at one.`,
    );
  }
  if (!redisServerInstalled()) {
    fail(
      `Nothing answers at REDIS_URL=${config.redisUrl} and redis-server is not installed.\n` +
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
async function checkEvictionPolicy(redisUrl: string): Promise<void> {
  const redis = new Redis(redisUrl, { maxRetriesPerRequest: 0, retryStrategy: () => null });
  redis.on('error', () => undefined);
  let policy: string | undefined;
  let reason = 'Redis did not return it';
  try {
    policy = ((await redis.config('GET', 'maxmemory-policy')) as string[])[1];
  } catch (error) {
    reason = error instanceof Error ? error.message : String(error);
  } finally {
    redis.disconnect();
  }
  if (policy === undefined) {
    log.error('could not check maxmemory-policy: make sure it is noeviction', { reason });
  } else if (policy !== 'noeviction') {
    fail(
      `Redis at REDIS_URL=${redisUrl} has maxmemory-policy ${policy}; paystate needs noeviction.\n` +
        'With eviction, a full Redis silently deletes keys: a payment record or a ledger operation id\n' +
        '(a token can then be charged twice) or a BullMQ expiry job (a timer lost). With noeviction\n' +
        'it refuses writes instead, and paystate answers 503 storage_full until memory is freed.\n' +
        'Set it with CONFIG SET maxmemory-policy noeviction (and in redis.conf).',
    );
  }
}

async function main(): Promise<void> {
  let config: Config;
  try {
    config = loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) fail(error.message, 2);
    throw error;
  }
  const managed = await ensureRedis(config);
  await checkEvictionPolicy(config.redisUrl);
  const { testCrashAt: crashAt, testPauseAt: pauseAt } = config;
  const reached = (setting: FaultSetting | null, name: string, event: string) =>
    setting !== null &&
    name === setting.point &&
    (setting.event === null || setting.event === event);
  const service = await startService(config, {
    log,
    ...(crashAt === null && pauseAt === null
      ? {}
      : {
          // Test settings only: die like a killed process, or stop like a
          // paused one (until SIGCONT), at the named step.
          faultPoint: (name, context) => {
            if (reached(crashAt, name, context.event)) process.kill(process.pid, 'SIGKILL');
            if (reached(pauseAt, name, context.event)) process.kill(process.pid, 'SIGSTOP');
          },
        }),
  });
  log.info('paystate started', {
    roles: config.roles,
    url: service.url,
    redis: config.redisUrl,
  });

  let shuttingDown = false;
  const shutdown = (signal: string) => {
    if (shuttingDown) return;
    shuttingDown = true;
    log.info('shutting down', { signal });
    void (async () => {
      await service.stop();
      await managed?.stop();
      log.info('stopped');
      process.exit(0);
    })();
  };
  process.on('SIGTERM', () => {
    shutdown('SIGTERM');
  });
  process.on('SIGINT', () => {
    shutdown('SIGINT');
  });
}

main().catch((error: unknown) => {
  fail(`paystate failed to start: ${error instanceof Error ? error.message : String(error)}`);
});
