import type { Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { Ledger, ledgerSettingsOf } from './accounts/ledger.ts';
import { WORKER_METRICS_PORT, type Config } from './config.ts';
import { createEngine, type EngineObserver, type EngineWorker } from './runtime/index.ts';
import { connectRedis } from './runtime/redis/connection.ts';
import type { RedisClock } from './runtime/redis/redis-clock.ts';
import type { StoreIdentity } from './runtime/redis/store-identity.ts';
import { EvictionPolicyWatch } from './runtime/redis/eviction-policy.ts';
import { StoreLostError, toAppError, UnavailableError, type AppError } from './errors.ts';
import { createApp, createMetricsApp } from './http/app.ts';
import type { RefusalListener } from './http/client-error.ts';
import { listenHttp, type HttpServer } from './http/http-server.ts';
import { redisRateLimits } from './http/rate-limit.ts';
import { startLegacyExpiryWorker } from './payments/legacy-records.ts';
import { Payments, type PaymentStepHook } from './payments/payments.ts';
// The timer queue's name, for its gauges.
import { timerQueueName } from './runtime/testing.ts';
import { createKeys, paymentRecordKeys } from './payments/keys.ts';
import { createLogger, fieldLogger, type PinoLogger } from './observability/log.ts';
import { metricsObserver, observeMachine } from './observability/engine-metrics.ts';
import { createMetrics, type ServiceMetrics } from './observability/metrics.ts';
import { startTracing, type Tracing } from './observability/tracing.ts';
import type { Resolver } from './webhooks/address-guard.ts';
import { WebhookEndpoints } from './webhooks/endpoints.ts';

export { connectRedis };

export type { FieldLogger as Logger } from './observability/log.ts';

export interface ServiceOptions {
  /** The process's log (request lines and the service's messages); silent when absent. */
  readonly logger?: PinoLogger;
  /** Called at the named steps of every payment command (tests inject faults there). */
  readonly faultPoint?: PaymentStepHook;
  /** Resolves webhook URLs' host names (default: the system resolver; tests map names). */
  readonly webhookResolver?: Resolver;
}

/** How often a process reads the store's identity and Redis's clock when nothing else does. */
const STORE_CHECK_INTERVAL_MS = 1_000;

/** A process clock further than this from Redis's is worth a warning (it changes no answer). */
const CLOCK_SKEW_WARNING_MS = 2_000;

export interface RunningService {
  readonly payments: Payments;
  readonly ledger: Ledger;
  /** The worker role's timers and recovery sweep; `sweep` runs one recovery pass now. */
  readonly worker: EngineWorker | null;
  readonly recovery: { runOnce(): Promise<number> } | null;
  readonly identity: StoreIdentity;
  readonly clock: RedisClock;
  /** The service's metrics, fed by the engine and the HTTP layer; null with PAYSTATE_METRICS=off. */
  readonly metrics: ServiceMetrics | null;
  /** `http://host:port` when the api role runs. */
  readonly url: string | null;
  /** Where GET /metrics is served: the API's url, or a listener of its own. */
  readonly metricsUrl: string | null;
  /**
   * Drains the API and closes the worker, both bounded by
   * SHUTDOWN_TIMEOUT_MS, then drops the Redis connections; logs and reports
   * what the deadline cut short.
   */
  stop(): Promise<StopReport>;
}

export interface StopReport {
  /** What the deadline cut short; empty after a clean stop. */
  readonly abandoned: readonly string[];
}

/** Whether `promise` settles (either way) before `deadline` (epoch ms). */
async function settlesBy(promise: Promise<unknown>, deadline: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const settled = promise.then(
    () => true,
    () => true,
  );
  const late = new Promise<false>((resolve) => {
    timer = setTimeout(() => {
      resolve(false);
    }, deadline - Date.now());
  });
  try {
    return await Promise.race([settled, late]);
  } finally {
    clearTimeout(timer);
  }
}

function describe(error: AppError): Record<string, unknown> {
  const cause = error.cause instanceof Error ? error.cause.message : undefined;
  return { code: error.code, detail: error.message, cause };
}

/** Wires Redis, the engine, payments, the HTTP API and the worker, per the configured roles. */
export async function startService(
  config: Config,
  options: ServiceOptions = {},
): Promise<RunningService> {
  const logger = options.logger ?? createLogger('silent');
  const log = fieldLogger(logger);
  const metrics = config.metrics ? createMetrics() : null;
  // Loaded only when asked for: off, no OpenTelemetry module is imported.
  const tracing: Tracing | null =
    config.otlpEndpoint === null ? null : await startTracing({ endpoint: config.otlpEndpoint });
  const observer: EngineObserver = {
    ...(metrics === null ? {} : metricsObserver(metrics)),
    ...(tracing === null ? {} : tracing.observer),
  };
  const keys = createKeys(config.keyPrefix);
  const engine = await createEngine({
    redisUrl: config.redisUrl,
    clusterNodes: config.redisClusterNodes,
    waitReplicas: config.redisWaitReplicas,
    waitTimeoutMs: config.redisWaitTimeoutMs,
    timerQueues: config.timerQueues,
    prefix: config.keyPrefix,
    lockTtlMs: config.lockTtlMs,
    lockWaitMs: config.lockWaitMs,
    storeCheckIntervalMs: STORE_CHECK_INTERVAL_MS,
    observer,
    storeEvents: {
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
    },
  });
  const { identity, clock } = engine;
  const eviction = new EvictionPolicyWatch(engine.redis, {
    changed: (policy) => {
      if (policy === null) {
        log.warn('Redis is back to maxmemory-policy noeviction; requests are served again');
      } else {
        log.error(
          'Redis now has an evicting maxmemory-policy: a full Redis would silently delete records and operation ids (a token could be charged twice). Payment and account requests are refused with 503 unavailable until it is noeviction again.',
          { policy },
        );
      }
    },
  });
  await eviction.check();
  eviction.watch(STORE_CHECK_INTERVAL_MS);
  // Why every payment and account request is refused now, if it is.
  const refusal = (): AppError | null =>
    identity.lost
      ? new StoreLostError()
      : eviction.evicting !== null
        ? new UnavailableError('storage may evict keys; retry shortly')
        : null;
  if (Math.abs(clock.skewMs) > CLOCK_SKEW_WARNING_MS) {
    log.warn("this process's clock differs from Redis's; Redis's clock is used", {
      skewMs: -clock.skewMs,
    });
  }
  const ledger = new Ledger(
    engine.redis,
    keys,
    config.accountInitialBalanceCents,
    identity,
    engine.replicas,
    ledgerSettingsOf(config),
  );
  const payments = new Payments(engine, {
    ledger,
    keys: paymentRecordKeys(keys),
    paymentExpiryMs: config.paymentExpiryMs,
    captureWindowMs: config.paymentCaptureWindowMs,
    refundLimit: config.paymentRefundLimit,
    defaultCurrency: config.defaultCurrency,
    expiredRetentionMs: config.expiredRetentionMs,
    ...(options.faultPoint === undefined ? {} : { step: options.faultPoint }),
  });
  if (metrics !== null) {
    observeMachine(metrics, payments.actors, {
      queue: timerQueueName(payments.actors.name),
      now: () => clock.now(),
    });
  }

  let worker: EngineWorker | null = null;
  let legacyWorker: Worker | null = null;
  let legacyConnection: Redis | null = null;
  if (config.roles.includes('worker')) {
    worker = await engine.startWorker([payments.actors], {
      timerLockMs: config.expiryJobLockMs,
      recoveryIntervalMs: config.recoveryIntervalMs,
      recoveryGraceMs: config.lockTtlMs,
      onEarlyTimer: (_machine, { key }, earlyByMs) => {
        log.warn('expiry timer delivered early (worker clock ahead of Redis); put back', {
          token: key,
          earlyByMs,
        });
      },
      onError: (error, where) => {
        if (where?.key !== undefined) {
          log.error('recovery failed', { token: where.key, ...describe(toAppError(error)) });
        } else {
          log.error('worker error', describe(toAppError(error)));
        }
      },
    });
  }
  // Expiry jobs the release before the engine left in its queue (one Redis:
  // that release ran on nothing else).
  if (config.roles.includes('worker') && config.redisClusterNodes === null) {
    legacyConnection = new Redis(config.redisUrl, { maxRetriesPerRequest: null });
    legacyConnection.on('error', () => undefined);
    legacyWorker = startLegacyExpiryWorker({
      actors: payments.actors,
      connection: legacyConnection,
      prefix: engine.queuePrefix,
      now: () => clock.now(),
      lockMs: config.expiryJobLockMs,
      onError: (error) => {
        log.error('expiry worker error', { message: error.message });
      },
    });
  }
  const sweeper = worker;
  const recovery = sweeper === null ? null : { runOnce: () => sweeper.sweep() };

  let http: HttpServer | null = null;
  let url: string | null = null;
  // Requests answered before the app: counted and logged like the app's own.
  const refusalObserver: RefusalListener = ({ code, status, requestId }) => {
    metrics?.errorResponse(code);
    logger.info({ message: 'request refused before the app', requestId, status, code });
  };
  const limits = {
    headersTimeoutMs: config.httpHeadersTimeoutMs,
    requestTimeoutMs: config.httpRequestTimeoutMs,
    maxConnections: config.httpMaxConnections,
  };
  if (config.roles.includes('api')) {
    const app = createApp({
      payments,
      ledger,
      ping: async () => {
        await identity.check();
        const refused = refusal();
        if (refused !== null) throw refused;
      },
      refusal,
      logger,
      ...(metrics === null ? {} : { metrics }),
      serveMetrics: config.metricsPort === null,
      ...(config.apiKeys.length === 0
        ? {}
        : {
            auth: {
              keys: config.apiKeys,
              limits: redisRateLimits(engine.redis, {
                prefix: config.keyPrefix,
                perSecond: config.rateLimitPerSecond,
                authFailuresPerMinute: config.authFailuresPerMinute,
              }),
            },
          }),
      ...(tracing === null ? {} : { tracing }),
      webhooks: {
        endpoints: new WebhookEndpoints(engine.redis, {
          prefix: config.keyPrefix,
          now: () => clock.now(),
        }),
        guard: {
          allowPrivate: config.webhookAllowPrivate,
          ...(options.webhookResolver === undefined ? {} : { resolve: options.webhookResolver }),
        },
      },
    });
    http = await listenHttp(app, config.port, config.host, {
      limits,
      refused: refusalObserver,
      connections: metrics ?? undefined,
    });
    url = http.url;
  }
  // /metrics on a port of its own: when asked, and in a worker-only process.
  let metricsHttp: HttpServer | null = null;
  if (metrics === null) {
    // PAYSTATE_METRICS=off: nothing to serve.
  } else if (config.metricsPort !== null) {
    metricsHttp = await listenHttp(
      createMetricsApp(metrics, logger),
      config.metricsPort,
      config.host,
      { limits, refused: refusalObserver },
    );
  } else if (http === null) {
    // The default port may be another worker's on the same host: timers
    // matter more than metrics, so start without them, and say so.
    metricsHttp = await listenHttp(
      createMetricsApp(metrics, logger),
      WORKER_METRICS_PORT,
      config.host,
      { limits, refused: refusalObserver },
    ).catch((error: unknown) => {
      if ((error as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw error;
      log.warn('metrics are not served: their default port is in use; set METRICS_PORT', {
        port: WORKER_METRICS_PORT,
      });
      return null;
    });
  }
  const metricsUrl =
    metricsHttp !== null
      ? `${metricsHttp.url}/metrics`
      : url === null || metrics === null
        ? null
        : `${url}/metrics`;

  let stopping: Promise<StopReport> | null = null;
  const stop = () => {
    stopping ??= (async () => {
      const deadline = Date.now() + config.shutdownTimeoutMs;
      identity.stop();
      eviction.stop();
      // The API drains while the worker finishes its active jobs. On a Redis
      // that is gone, the worker's close waits as long as its retry-forever
      // connection does: the deadline bounds it.
      const [cut, , workerClosed, legacyClosed] = await Promise.all([
        http?.drain(deadline) ?? 0,
        metricsHttp?.drain(deadline),
        worker === null ? true : settlesBy(worker.stop(), deadline),
        legacyWorker === null ? true : settlesBy(legacyWorker.close(), deadline),
      ]);
      // No request runs any more, so no timer is being armed.
      const engineClosed = await settlesBy(engine.close(), deadline);
      // Sends the spans still buffered (bounded like the rest).
      if (tracing !== null) await settlesBy(tracing.shutdown(), deadline);
      // disconnect(), not quit(): quit waits for an answer a dead Redis never gives.
      engine.redis.disconnect();
      engine.queueConnection.disconnect();
      legacyConnection?.disconnect();
      const abandoned = [
        ...(cut > 0 ? [`${cut} requests in flight (their connections were cut)`] : []),
        ...(workerClosed
          ? []
          : ['timer worker and recovery sweep did not stop (their active jobs run again)']),
        ...(legacyClosed ? [] : ['expiry worker did not close (its active jobs run again)']),
        ...(engineClosed ? [] : ['timer queue did not close']),
      ];
      if (abandoned.length > 0) {
        log.error('stop cut short by SHUTDOWN_TIMEOUT_MS', {
          shutdownTimeoutMs: config.shutdownTimeoutMs,
          inFlightRequests: cut,
          abandoned,
        });
      }
      return { abandoned };
    })();
    return stopping;
  };

  return { payments, ledger, worker, recovery, identity, clock, metrics, url, metricsUrl, stop };
}
