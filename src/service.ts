import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Redis } from 'ioredis';
import { connectRedis } from './engine/redis/connection.ts';
import type { Worker } from 'bullmq';
import { Ledger } from './accounts/ledger.ts';
import type { Config } from './config.ts';
import { StoreLostError, toAppError, type AppError } from './errors.ts';
import { createApp } from './http/app.ts';
import { BullExpiryTimers, startExpiryWorker } from './runtime/expiry-timers.ts';
import { createKeys } from './runtime/keys.ts';
import { PaymentRuntime, type FaultPoint } from './runtime/payment-runtime.ts';
import { startRecoverySweep, type RecoverySweep } from './runtime/recovery.ts';
import { SnapshotStore } from './runtime/snapshot-store.ts';
import { RedisClock } from './runtime/redis-clock.ts';
import { StoreIdentity } from './runtime/store-identity.ts';
import { RedlockTokenLock } from './runtime/token-lock.ts';

export { connectRedis };

export interface Logger {
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
}

export const silentLogger: Logger = {
  info: () => undefined,
  warn: () => undefined,
  error: () => undefined,
};

export interface ServiceOptions {
  readonly log?: Logger;
  readonly faultPoint?: FaultPoint;
}

/** How often a process reads the store's identity and Redis's clock when nothing else does. */
const STORE_CHECK_INTERVAL_MS = 1_000;

/** A process clock further than this from Redis's is worth a warning (it changes no answer). */
const CLOCK_SKEW_WARNING_MS = 2_000;

export interface RunningService {
  readonly runtime: PaymentRuntime;
  readonly ledger: Ledger;
  readonly timers: BullExpiryTimers;
  readonly recovery: RecoverySweep | null;
  readonly identity: StoreIdentity;
  readonly clock: RedisClock;
  /** `http://host:port` when the api role runs. */
  readonly url: string | null;
  stop(): Promise<void>;
}

function describe(error: AppError): Record<string, unknown> {
  const cause = error.cause instanceof Error ? error.cause.message : undefined;
  return { code: error.code, detail: error.message, cause };
}

/** Wires Redis, the runtime, the HTTP API and the expiry worker, per the configured roles. */
export async function startService(
  config: Config,
  options: ServiceOptions = {},
): Promise<RunningService> {
  const log = options.log ?? silentLogger;
  const keys = createKeys(config.keyPrefix);
  const redis = connectRedis(config.redisUrl);
  const queueConnection = connectRedis(config.redisUrl);
  // BullMQ's blocking worker connection must retry forever.
  const workerConnection = new Redis(config.redisUrl, { maxRetriesPerRequest: null });
  workerConnection.on('error', () => undefined);

  const redisClock = new RedisClock();
  const clock = () => redisClock.now();
  const identity = new StoreIdentity(redis, keys.store, redisClock, {
    initialised: (id) => {
      log.warn('the store was empty: initialised it with a new identity', { store: id });
    },
    lost: ({ expected, found }) => {
      log.error(
        'STORE LOST: Redis does not hold the store this process wrote to (emptied, failed over to an empty node, or replaced). Every request is refused with 503 store_lost until it comes back or an operator runs `paystate store accept`.',
        { expected, found },
      );
    },
    recovered: ({ id, adopted }) => {
      log.warn(adopted ? 'adopted the store an operator accepted' : 'the store is back', {
        store: id,
      });
    },
  });
  await identity.open();
  if (Math.abs(redisClock.skewMs) > CLOCK_SKEW_WARNING_MS) {
    log.warn("this process's clock differs from Redis's; Redis's clock is used", {
      skewMs: -redisClock.skewMs,
    });
  }
  identity.watch(STORE_CHECK_INTERVAL_MS);
  const store = new SnapshotStore(redis, keys, { identity, clock: redisClock });
  const ledger = new Ledger(redis, keys, config.accountInitialBalanceCents, identity);
  const lock = new RedlockTokenLock(redis, {
    ttlMs: config.lockTtlMs,
    waitMs: config.lockWaitMs,
    resource: keys.lock,
  });
  const timers = new BullExpiryTimers({
    connection: queueConnection,
    prefix: keys.queuePrefix,
    now: clock,
  });
  const runtime = new PaymentRuntime({
    store,
    ledger,
    lock,
    timers,
    clock,
    newLifeId: () => randomBytes(8).toString('hex'),
    paymentExpiryMs: config.paymentExpiryMs,
    expiredRetentionMs: config.expiredRetentionMs,
    faultPoint: options.faultPoint,
  });

  let worker: Worker | null = null;
  let recovery: RecoverySweep | null = null;
  if (config.roles.includes('worker')) {
    worker = startExpiryWorker(
      {
        connection: workerConnection,
        prefix: keys.queuePrefix,
        lockMs: config.expiryJobLockMs,
        now: clock,
        onEarly: ({ token }, earlyByMs) => {
          log.warn('expiry timer delivered early (worker clock ahead of Redis); put back', {
            token,
            earlyByMs,
          });
        },
        onError: (error) => {
          log.error('expiry worker error', { message: error.message });
        },
      },
      async ({ token, lifeId, dueAt }) => {
        const { snapshot } = await runtime.expire(token, lifeId, dueAt);
        const expiresAt = snapshot?.context.expiresAt ?? null;
        const later =
          snapshot !== null &&
          snapshot.value !== 'expired' &&
          snapshot.context.lifeId === lifeId &&
          dueAt !== undefined &&
          expiresAt !== null &&
          expiresAt > dueAt;
        return { laterDueAt: later ? expiresAt : null };
      },
    );
    recovery = startRecoverySweep({
      runtime,
      store,
      clock,
      intervalMs: config.recoveryIntervalMs,
      graceMs: config.lockTtlMs,
      onError: (error, token) => {
        log.error('recovery failed', { token, ...describe(toAppError(error)) });
      },
    });
  }

  let server: Server | null = null;
  let url: string | null = null;
  if (config.roles.includes('api')) {
    const app = createApp({
      runtime,
      ledger,
      ping: async () => {
        await identity.check();
        if (identity.lost) throw new StoreLostError();
      },
      storeLost: () => identity.lost,
      log: (error) => {
        log.error('request failed', describe(error));
      },
    });
    const listening = createServer(app);
    server = listening;
    await new Promise<void>((resolve, reject) => {
      listening.once('error', reject);
      listening.listen(config.port, config.host, () => {
        listening.off('error', reject);
        resolve();
      });
    });
    const address = listening.address() as AddressInfo;
    const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
    url = `http://${host === '0.0.0.0' || host === '[::]' ? '127.0.0.1' : host}:${address.port}`;
  }

  let stopping: Promise<void> | null = null;
  const stop = () => {
    stopping ??= (async () => {
      if (server) {
        const closing = server;
        // Stop accepting, let in-flight requests finish, then drop idle keep-alives.
        const closed = new Promise<void>((resolve) =>
          closing.close(() => {
            resolve();
          }),
        );
        closing.closeIdleConnections();
        const force = setTimeout(() => {
          closing.closeAllConnections();
        }, config.shutdownTimeoutMs);
        await closed;
        clearTimeout(force);
      }
      identity.stop();
      await recovery?.stop();
      await worker?.close();
      await timers.close();
      await Promise.allSettled([redis.quit(), queueConnection.quit(), workerConnection.quit()]);
    })();
    return stopping;
  };

  return { runtime, ledger, timers, recovery, identity, clock: redisClock, url, stop };
}
