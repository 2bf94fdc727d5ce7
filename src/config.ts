import { isIP } from 'node:net';
import { z } from 'zod';
import { currencyProblem, type Currency } from './money/currency.ts';
import { parseApiKeys, type ApiKey } from './tenants.ts';

/** The only reader of process.env: everything else gets a frozen Config. */

const integer = (name: string, fallback: number, min: number, max = Number.MAX_SAFE_INTEGER) =>
  z
    .string()
    .optional()
    .transform((raw, ctx) => {
      if (raw === undefined || raw.trim() === '') return fallback;
      if (!/^\d+$/.test(raw.trim())) {
        ctx.addIssue({ code: 'custom', message: `${name} must be a whole number, got "${raw}"` });
        return z.NEVER;
      }
      const value = Number(raw.trim());
      if (value < min || value > max) {
        ctx.addIssue({
          code: 'custom',
          message: `${name} must be between ${min} and ${max}, got ${value}`,
        });
        return z.NEVER;
      }
      return value;
    });

/**
 * Why a REDIS_URL cannot be connected to, or null. Checked here so a bad
 * port or a missing host is reported by name at start-up, not as a socket
 * error from deep inside the Redis client.
 */
function redisUrlProblem(url: string): string | null {
  if (!/^rediss?:\/\//.test(url)) return 'REDIS_URL must start with redis:// or rediss://';
  const authority = /^rediss?:\/\/(?:[^@/?#]*@)?(\[[^\]]*\]|[^:/?#]*)(?::([^/?#]*))?/.exec(url);
  const host = authority?.[1] ?? '';
  const port = authority?.[2];
  if (port !== undefined && port !== '') {
    const number = /^\d+$/.test(port) ? Number(port) : NaN;
    if (!(number >= 1 && number <= 65_535)) {
      return `REDIS_URL must have a port between 1 and 65535, got "${port}"`;
    }
  }
  // The URL may carry a password: name what is wrong without echoing it.
  if (host === '') return 'REDIS_URL must name a host';
  try {
    new URL(url);
  } catch {
    return 'REDIS_URL is not a valid URL';
  }
  return null;
}

/** `host:port,host:port,…` seed nodes of a Redis Cluster; an empty value: none. */
function clusterNodes(raw: string | undefined, ctx: z.RefinementCtx): ClusterNodeAddress[] | null {
  if (raw === undefined || raw.trim() === '') return null;
  const nodes: ClusterNodeAddress[] = [];
  for (const entry of raw.split(',').map((e) => e.trim())) {
    const match = /^(\[[^\]]+\]|[^:\s]+):(\d+)$/.exec(entry);
    const port = Number(match?.[2]);
    if (match?.[1] === undefined || !(port >= 1 && port <= 65_535)) {
      ctx.addIssue({
        code: 'custom',
        message: `REDIS_CLUSTER_NODES must be host:port entries separated by commas, got "${entry}"`,
      });
      return z.NEVER;
    }
    nodes.push({ host: match[1].replace(/^\[|\]$/g, ''), port });
  }
  return nodes;
}

export interface ClusterNodeAddress {
  readonly host: string;
  readonly port: number;
}

const ROLES = ['api', 'worker'] as const;
export type Role = (typeof ROLES)[number];

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** Where a worker-only process serves /metrics when METRICS_PORT is unset (Prometheus exporters' custom). */
export const WORKER_METRICS_PORT = 9464;
const envSchema = z.object({
  PORT: integer('PORT', 8080, 0, 65_535),
  // Its default depends on PAYSTATE_API_KEYS (see loadConfig).
  HOST: z.string().optional(),
  REDIS_URL: z
    .string()
    .optional()
    .default('redis://127.0.0.1:6379')
    .superRefine((url, ctx) => {
      const problem = redisUrlProblem(url);
      if (problem !== null) ctx.addIssue({ code: 'custom', message: problem });
    }),
  REDIS_CLUSTER_NODES: z.string().optional().transform(clusterNodes),
  REDIS_WAIT_REPLICAS: integer('REDIS_WAIT_REPLICAS', 0, 0, 16),
  REDIS_WAIT_TIMEOUT_MS: integer('REDIS_WAIT_TIMEOUT_MS', 1_000, 1, 1_500),
  TIMER_QUEUES: integer('TIMER_QUEUES', 6, 1, 64),
  REDIS_KEY_PREFIX: z
    .string()
    .optional()
    .default('paystate')
    .refine((v) => /^[A-Za-z0-9_.-]{1,64}$/.test(v), {
      message: 'REDIS_KEY_PREFIX must be 1-64 characters of A-Z a-z 0-9 _ . -',
    }),
  PAYMENT_EXPIRY_MS: integer('PAYMENT_EXPIRY_MS', 86_400_000, 1),
  PAYMENT_CAPTURE_WINDOW_MS: integer('PAYMENT_CAPTURE_WINDOW_MS', 7 * 86_400_000, 1),
  PAYMENT_REFUND_LIMIT: integer('PAYMENT_REFUND_LIMIT', 100, 1, 1_000),
  EXPIRED_RETENTION_MS: integer('EXPIRED_RETENTION_MS', 86_400_000, 1),
  ACCOUNT_INITIAL_BALANCE_CENTS: integer('ACCOUNT_INITIAL_BALANCE_CENTS', 100_000, 0),
  PAYSTATE_DEFAULT_CURRENCY: z
    .string()
    .optional()
    .transform((raw, ctx): Currency => {
      const code = raw === undefined || raw.trim() === '' ? 'USD' : raw.trim();
      const problem = currencyProblem(code, 'PAYSTATE_DEFAULT_CURRENCY');
      if (problem !== null) {
        ctx.addIssue({ code: 'custom', message: problem });
        return z.NEVER;
      }
      return code;
    }),
  ACCOUNT_LEDGER_LIMIT: integer('ACCOUNT_LEDGER_LIMIT', 1_000, 1, 1_000_000),
  // 0: derived from the expiry and retention (see accountOperationRetentionMs).
  ACCOUNT_OPERATION_RETENTION_MS: integer('ACCOUNT_OPERATION_RETENTION_MS', 0, 1),
  LOCK_TTL_MS: integer('LOCK_TTL_MS', 10_000, 100),
  LOCK_WAIT_MS: integer('LOCK_WAIT_MS', 5_000, 0),
  RECOVERY_INTERVAL_MS: integer('RECOVERY_INTERVAL_MS', 5_000, 10),
  SHUTDOWN_TIMEOUT_MS: integer('SHUTDOWN_TIMEOUT_MS', 10_000, 0),
  HTTP_HEADERS_TIMEOUT_MS: integer('HTTP_HEADERS_TIMEOUT_MS', 30_000, 1),
  HTTP_REQUEST_TIMEOUT_MS: integer('HTTP_REQUEST_TIMEOUT_MS', 60_000, 1),
  HTTP_MAX_CONNECTIONS: integer('HTTP_MAX_CONNECTIONS', 1_000, 1),
  PAYSTATE_ROLES: z
    .string()
    .optional()
    .default('api,worker')
    .transform((raw, ctx) => {
      const roles = raw
        .split(',')
        .map((r) => r.trim())
        .filter((r) => r !== '');
      const unknown = roles.filter((r) => !(ROLES as readonly string[]).includes(r));
      if (roles.length === 0 || unknown.length > 0) {
        ctx.addIssue({
          code: 'custom',
          message: `PAYSTATE_ROLES must list api and/or worker, got "${raw}"`,
        });
        return z.NEVER;
      }
      return [...new Set(roles)] as Role[];
    }),
  LOG_LEVEL: z
    .string()
    .optional()
    .transform((raw, ctx): LogLevel => {
      const level = raw === undefined || raw.trim() === '' ? 'info' : raw.trim().toLowerCase();
      if (!(LOG_LEVELS as readonly string[]).includes(level)) {
        ctx.addIssue({
          code: 'custom',
          message: `LOG_LEVEL must be one of ${LOG_LEVELS.join(', ')}, got "${raw ?? ''}"`,
        });
        return z.NEVER;
      }
      return level as LogLevel;
    }),
  METRICS_PORT: z
    .string()
    .optional()
    .transform((raw, ctx): number | null => {
      if (raw === undefined || raw.trim() === '') return null;
      const port = /^\d+$/.test(raw.trim()) ? Number(raw.trim()) : NaN;
      if (!(port >= 0 && port <= 65_535)) {
        ctx.addIssue({
          code: 'custom',
          message: `METRICS_PORT must be a port between 0 and 65535, got "${raw}"`,
        });
        return z.NEVER;
      }
      return port;
    }),
  PAYSTATE_METRICS: z
    .string()
    .optional()
    .transform((raw, ctx): boolean => {
      const value = raw === undefined || raw.trim() === '' ? 'on' : raw.trim().toLowerCase();
      if (value !== 'on' && value !== 'off') {
        ctx.addIssue({
          code: 'custom',
          message: `PAYSTATE_METRICS must be on or off, got "${raw ?? ''}"`,
        });
        return z.NEVER;
      }
      return value === 'on';
    }),
  OTEL_EXPORTER_OTLP_ENDPOINT: z
    .string()
    .optional()
    .transform((raw, ctx): string | null => {
      if (raw === undefined || raw.trim() === '') return null;
      if (!/^https?:\/\/[^\s]+$/.test(raw.trim()) || !URL.canParse(raw.trim())) {
        ctx.addIssue({
          code: 'custom',
          message: `OTEL_EXPORTER_OTLP_ENDPOINT must be an http(s) URL, got "${raw}"`,
        });
        return z.NEVER;
      }
      return raw.trim().replace(/\/+$/, '');
    }),
  PAYSTATE_MANAGED_REDIS: z.enum(['auto', 'never']).optional().default('auto'),
  PAYSTATE_DATA_DIR: z.string().optional().default('.data'),
  EXPIRY_JOB_LOCK_MS: integer('EXPIRY_JOB_LOCK_MS', 30_000, 100),
  PAYSTATE_API_KEYS: z.string().optional(),
  PAYSTATE_ALLOW_UNAUTHENTICATED: z
    .string()
    .optional()
    .refine((v) => v === undefined || ['', '0', '1'].includes(v.trim()), {
      message: 'PAYSTATE_ALLOW_UNAUTHENTICATED must be 1 or 0',
    }),
  PAYSTATE_RATE_LIMIT_PER_SECOND: integer('PAYSTATE_RATE_LIMIT_PER_SECOND', 100, 0, 1_000_000),
  PAYSTATE_AUTH_FAILURES_PER_MINUTE: integer('PAYSTATE_AUTH_FAILURES_PER_MINUTE', 10, 1, 1_000_000),
  PAYSTATE_WEBHOOK_ALLOW_PRIVATE: z
    .string()
    .optional()
    .transform((raw, ctx): boolean => {
      const value = raw === undefined ? '' : raw.trim();
      if (!['', '0', '1'].includes(value)) {
        ctx.addIssue({
          code: 'custom',
          message: `PAYSTATE_WEBHOOK_ALLOW_PRIVATE must be 1 or 0, got "${raw ?? ''}"`,
        });
        return z.NEVER;
      }
      return value === '1';
    }),
  PAYSTATE_WEBHOOK_TIMEOUT_MS: integer('PAYSTATE_WEBHOOK_TIMEOUT_MS', 10_000, 1, 60_000),
  // At most the one-hour cap of the backoff it starts.
  PAYSTATE_WEBHOOK_RETRY_BASE_MS: integer('PAYSTATE_WEBHOOK_RETRY_BASE_MS', 30_000, 1, 3_600_000),
  PAYSTATE_WEBHOOK_RETRY_FOR_MS: integer('PAYSTATE_WEBHOOK_RETRY_FOR_MS', 259_200_000, 1),
});

/** True for an address only this machine can reach: 127.0.0.0/8, ::1, localhost. */
export function isLoopbackHost(host: string): boolean {
  const bare = host
    .trim()
    .replace(/^\[(.*)\]$/, '$1')
    .toLowerCase();
  if (bare === 'localhost') return true;
  if (isIP(bare) === 4) return bare.startsWith('127.');
  if (isIP(bare) === 6) return bare === '::1' || /^::ffff:127\./.test(bare);
  return false;
}

export interface Config {
  readonly port: number;
  readonly host: string;
  readonly redisUrl: string;
  /** Seed nodes of a Redis Cluster; when set, `redisUrl` is not used. */
  readonly redisClusterNodes: readonly ClusterNodeAddress[] | null;
  /** Replicas that must confirm a write (WAIT) before its effect runs and before an answer; 0: none. */
  readonly redisWaitReplicas: number;
  readonly redisWaitTimeoutMs: number;
  /** BullMQ queues a machine's timers spread over on a Cluster (one Redis: always one). */
  readonly timerQueues: number;
  readonly keyPrefix: string;
  readonly paymentExpiryMs: number;
  /** How long an authorization (capture: manual) waits for its capture before it is voided. */
  readonly paymentCaptureWindowMs: number;
  /** Refunds one payment may have; fixed in each payment's record when it is created. */
  readonly paymentRefundLimit: number;
  readonly expiredRetentionMs: number;
  /** Balance of each currency of an account the first time it is used, in that currency's minor unit. */
  readonly accountInitialBalanceCents: number;
  /** The currency of a payment that names none, and of an account's `balanceCents`. */
  readonly defaultCurrency: Currency;
  /** Ledger entries kept per account, newest kept. */
  readonly accountLedgerLimit: number;
  /**
   * How long an account remembers an operation id after applying it: at
   * least a token's life after its last movement (expiry + retention) plus
   * a lock lease and a recovery interval (docs/guarantees.md).
   */
  readonly accountOperationRetentionMs: number;
  readonly lockTtlMs: number;
  readonly lockWaitMs: number;
  readonly recoveryIntervalMs: number;
  readonly shutdownTimeoutMs: number;
  /** How long a connection may take to send a request's headers (also: to send anything at all). */
  readonly httpHeadersTimeoutMs: number;
  /** How long a request may take to arrive in full, headers and body (at least the headers' limit). */
  readonly httpRequestTimeoutMs: number;
  /** Connections a listener keeps open; beyond it, the longest-waiting one without a request running is closed. */
  readonly httpMaxConnections: number;
  readonly roles: readonly Role[];
  readonly logLevel: LogLevel;
  /**
   * Where /metrics is served on a listener of its own (0: any free port).
   * null: on the API's port when the api role runs, else WORKER_METRICS_PORT.
   */
  readonly metricsPort: number | null;
  /** false (PAYSTATE_METRICS=off): no registry, no /metrics, nothing recorded. */
  readonly metrics: boolean;
  /** OTLP/HTTP base URL spans are sent to (`/v1/traces` is added); null: tracing is off. */
  readonly otlpEndpoint: string | null;
  /** `auto`: start a local redis-server when nothing answers at REDIS_URL. */
  readonly managedRedis: 'auto' | 'never';
  readonly dataDir: string;
  /** How long a worker holds an expiry job before BullMQ treats it as stalled and redelivers it. */
  readonly expiryJobLockMs: number;
  /** PAYSTATE_API_KEYS: empty in local mode (no authentication, no tenants). */
  readonly apiKeys: readonly ApiKey[];
  /** Requests per second per tenant (0: no limit); applies when keys are configured. */
  readonly rateLimitPerSecond: number;
  /** Failed authentications per client address per minute before it gets 429. */
  readonly authFailuresPerMinute: number;
  /** Webhook URLs may reach private, loopback and link-local addresses (docs/webhooks.md). */
  readonly webhookAllowPrivate: boolean;
  /** A webhook delivery must be answered 2xx within this long, connection included. */
  readonly webhookTimeoutMs: number;
  /** Delay after a webhook delivery's first failure; it doubles per failure, capped at 1 h. */
  readonly webhookRetryBaseMs: number;
  /** How long after an event its deliveries are retried before they are given up. */
  readonly webhookRetryForMs: number;
}

export class ConfigError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(`invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  // With a Cluster, REDIS_URL is not used: a stale value must not stop the start.
  const clustered = (env.REDIS_CLUSTER_NODES ?? '').trim() !== '';
  const parsed = envSchema.safeParse(clustered ? { ...env, REDIS_URL: undefined } : env);
  if (!parsed.success) {
    throw new ConfigError(
      parsed.error.issues.map((issue) =>
        issue.code === 'custom' ? issue.message : `${issue.path.join('.')}: ${issue.message}`,
      ),
    );
  }
  const e = parsed.data;
  const { keys: apiKeys, problems } = parseApiKeys(e.PAYSTATE_API_KEYS);
  // A service anyone can reach must ask who is calling: refuse to start open
  // on a network address unless told so explicitly.
  const host = e.HOST === undefined || e.HOST.trim() === '' ? defaultHost(apiKeys) : e.HOST.trim();
  if (
    apiKeys.length === 0 &&
    problems.length === 0 &&
    e.PAYSTATE_ROLES.includes('api') &&
    !isLoopbackHost(host) &&
    e.PAYSTATE_ALLOW_UNAUTHENTICATED?.trim() !== '1'
  ) {
    problems.push(
      `HOST=${host} would serve payments to the network without authentication: set PAYSTATE_API_KEYS ` +
        '(see docs/security.md), or HOST=127.0.0.1, or PAYSTATE_ALLOW_UNAUTHENTICATED=1 if a proxy in front authenticates every request',
    );
  }
  if (e.HTTP_HEADERS_TIMEOUT_MS > e.HTTP_REQUEST_TIMEOUT_MS) {
    problems.push(
      `HTTP_HEADERS_TIMEOUT_MS (${e.HTTP_HEADERS_TIMEOUT_MS}) must not exceed HTTP_REQUEST_TIMEOUT_MS (${e.HTTP_REQUEST_TIMEOUT_MS}): the headers are part of the request`,
    );
  }
  // An operation id may be forgotten only once no retry of it can come.
  const operationFloor =
    e.PAYMENT_EXPIRY_MS + e.EXPIRED_RETENTION_MS + e.LOCK_TTL_MS + e.RECOVERY_INTERVAL_MS;
  const operationRetentionMs =
    e.ACCOUNT_OPERATION_RETENTION_MS === 0
      ? // The default is never below the floor (a recovery interval over an hour).
        Math.max(e.PAYMENT_EXPIRY_MS + e.EXPIRED_RETENTION_MS + 3_600_000, operationFloor)
      : e.ACCOUNT_OPERATION_RETENTION_MS;
  if (operationRetentionMs < operationFloor) {
    problems.push(
      `ACCOUNT_OPERATION_RETENTION_MS must be at least PAYMENT_EXPIRY_MS + EXPIRED_RETENTION_MS + LOCK_TTL_MS + RECOVERY_INTERVAL_MS (${operationFloor}), got ${operationRetentionMs}`,
    );
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return Object.freeze({
    port: e.PORT,
    host,
    redisUrl: e.REDIS_URL,
    redisClusterNodes: e.REDIS_CLUSTER_NODES === null ? null : Object.freeze(e.REDIS_CLUSTER_NODES),
    redisWaitReplicas: e.REDIS_WAIT_REPLICAS,
    redisWaitTimeoutMs: e.REDIS_WAIT_TIMEOUT_MS,
    timerQueues: e.TIMER_QUEUES,
    keyPrefix: e.REDIS_KEY_PREFIX,
    paymentExpiryMs: e.PAYMENT_EXPIRY_MS,
    paymentCaptureWindowMs: e.PAYMENT_CAPTURE_WINDOW_MS,
    paymentRefundLimit: e.PAYMENT_REFUND_LIMIT,
    expiredRetentionMs: e.EXPIRED_RETENTION_MS,
    accountInitialBalanceCents: e.ACCOUNT_INITIAL_BALANCE_CENTS,
    defaultCurrency: e.PAYSTATE_DEFAULT_CURRENCY,
    accountLedgerLimit: e.ACCOUNT_LEDGER_LIMIT,
    accountOperationRetentionMs: operationRetentionMs,
    lockTtlMs: e.LOCK_TTL_MS,
    lockWaitMs: e.LOCK_WAIT_MS,
    recoveryIntervalMs: e.RECOVERY_INTERVAL_MS,
    shutdownTimeoutMs: e.SHUTDOWN_TIMEOUT_MS,
    httpHeadersTimeoutMs: e.HTTP_HEADERS_TIMEOUT_MS,
    httpRequestTimeoutMs: e.HTTP_REQUEST_TIMEOUT_MS,
    httpMaxConnections: e.HTTP_MAX_CONNECTIONS,
    roles: Object.freeze(e.PAYSTATE_ROLES),
    logLevel: e.LOG_LEVEL,
    metricsPort: e.METRICS_PORT,
    metrics: e.PAYSTATE_METRICS,
    otlpEndpoint: e.OTEL_EXPORTER_OTLP_ENDPOINT,
    managedRedis: e.PAYSTATE_MANAGED_REDIS,
    dataDir: e.PAYSTATE_DATA_DIR,
    expiryJobLockMs: e.EXPIRY_JOB_LOCK_MS,
    apiKeys: Object.freeze(apiKeys),
    rateLimitPerSecond: e.PAYSTATE_RATE_LIMIT_PER_SECOND,
    authFailuresPerMinute: e.PAYSTATE_AUTH_FAILURES_PER_MINUTE,
    webhookAllowPrivate: e.PAYSTATE_WEBHOOK_ALLOW_PRIVATE,
    webhookTimeoutMs: e.PAYSTATE_WEBHOOK_TIMEOUT_MS,
    webhookRetryBaseMs: e.PAYSTATE_WEBHOOK_RETRY_BASE_MS,
    webhookRetryForMs: e.PAYSTATE_WEBHOOK_RETRY_FOR_MS,
  });
}

/** Loopback in local mode; every interface once keys are configured. */
function defaultHost(apiKeys: readonly ApiKey[]): string {
  return apiKeys.length === 0 ? '127.0.0.1' : '0.0.0.0';
}
