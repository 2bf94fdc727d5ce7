import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Redis } from 'ioredis';
import type { Worker } from 'bullmq';
import { Ledger } from './accounts/ledger.ts';
import type { Config } from './config.ts';
import { toAppError, type AppError } from './errors.ts';
import { createApp } from './http/app.ts';
import { answerClientErrors } from './http/client-error.ts';
import { BullExpiryTimers, startExpiryWorker } from './runtime/expiry-timers.ts';
import { createKeys } from './runtime/keys.ts';
import { PaymentRuntime, type FaultPoint } from './runtime/payment-runtime.ts';
import { startRecoverySweep, type RecoverySweep } from './runtime/recovery.ts';
import { SnapshotStore } from './runtime/snapshot-store.ts';
import { RedlockTokenLock } from './runtime/token-lock.ts';
import { coalesceWrites } from './runtime/write-coalescing.ts';

export interface Logger {
  info(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
}

export const silentLogger: Logger = { info: () => undefined, error: () => undefined };

export interface ServiceOptions {
  readonly log?: Logger;
  readonly clock?: () => number;
  readonly faultPoint?: FaultPoint;
}

export interface RunningService {
  readonly runtime: PaymentRuntime;
  readonly ledger: Ledger;
  readonly timers: BullExpiryTimers;
  readonly recovery: RecoverySweep | null;
  /** `http://host:port` when the api role runs. */
  readonly url: string | null;
  stop(): Promise<void>;
}

/**
 * Longest wait for one Redis command. maxRetriesPerRequest fails commands
 * queued while the connection is down, but not those already sent when it
 * dropped nor any sent into a connection that stays open and never answers:
 * without a timeout those requests hang until Redis is reachable again.
 */
const COMMAND_TIMEOUT_MS = 2_000;

/**
 * Command connection: fail fast while Redis is away so requests get a 503, not a hang.
 *
 * Commands that were in flight when the connection dropped are not sent again
 * on reconnect (they fail by the timeout): the Redis on the other side may have
 * lost the writes before them (an everysec AOF after a host crash, a failover
 * to a replica that lagged), and a withdrawal re-sent after its charge intent
 * was lost lands with no record of it, so the token is charged again on retry.
 *
 * Commands issued in one turn of the event loop share one socket write (see
 * coalesceWrites): under load that cuts the service's CPU per request by
 * about a third (docs/benchmarks.md).
 */
export function connectRedis(url: string): Redis {
  const redis = new Redis(url, {
    maxRetriesPerRequest: 1,
    commandTimeout: COMMAND_TIMEOUT_MS,
    autoResendUnfulfilledCommands: false,
    connectTimeout: 2_000,
    retryStrategy: (attempt) => Math.min(attempt * 100, 1_000),
  });
  redis.on('error', () => undefined);
  coalesceWrites(redis);
  return redis;
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
  const clock = options.clock ?? Date.now;
  const keys = createKeys(config.keyPrefix);
  const redis = connectRedis(config.redisUrl);
  const queueConnection = connectRedis(config.redisUrl);
  // BullMQ's blocking worker connection must retry forever.
  const workerConnection = new Redis(config.redisUrl, { maxRetriesPerRequest: null });
  workerConnection.on('error', () => undefined);

  const store = new SnapshotStore(redis, keys);
  const ledger = new Ledger(redis, keys, config.accountInitialBalanceCents);
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
        onError: (error) => {
          log.error('expiry worker error', { message: error.message });
        },
      },
      async ({ token, lifeId }) => {
        await runtime.expire(token, lifeId);
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
        await redis.ping();
      },
      log: (error) => {
        log.error('request failed', describe(error));
      },
    });
    const listening = createServer(app);
    answerClientErrors(listening);
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
      await recovery?.stop();
      await worker?.close();
      await timers.close();
      await Promise.allSettled([redis.quit(), queueConnection.quit(), workerConnection.quit()]);
    })();
    return stopping;
  };

  return { runtime, ledger, timers, recovery, url, stop };
}
