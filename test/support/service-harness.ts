/**
 * Starts the real service (the same composition `npm start` uses) on port 0
 * against a test Redis, with a random key prefix so tests never see each
 * other's data.
 */
import { randomBytes } from 'node:crypto';
import type { Queue } from 'bullmq';
import { Ledger } from '../../src/accounts/ledger.ts';
import { loadConfig, type Config } from '../../src/config.ts';
import { createEngine, type Engine } from '../../src/runtime/index.ts';
import { Payments } from '../../src/payments/payments.ts';
import { createKeys, paymentRecordKeys, type Keys } from '../../src/payments/keys.ts';
import { startService, type RunningService, type ServiceOptions } from '../../src/service.ts';
import { paymentTimerQueue, type TimerJobData } from './timer-jobs.ts';
import { assertMatchesContract } from './contract.ts';

export function randomPrefix(): string {
  return `t${randomBytes(6).toString('hex')}`;
}

/**
 * Payments alone on an engine over a test Redis, with no worker (no timer
 * is delivered, no sweep runs): for tests of the request path itself.
 */
export async function barePayments(
  redisUrl: string,
  prefix: string,
  options: { lockWaitMs?: number; lockTtlMs?: number } = {},
): Promise<{ payments: Payments; engine: Engine }> {
  const keys = createKeys(prefix);
  const engine = await createEngine({
    redisUrl,
    prefix,
    lockTtlMs: options.lockTtlMs ?? 5_000,
    lockWaitMs: options.lockWaitMs ?? 5_000,
    storeCheckIntervalMs: 0,
  });
  const payments = new Payments(engine, {
    ledger: new Ledger(engine.redis, keys, 100_000, engine.identity),
    keys: paymentRecordKeys(keys),
    paymentExpiryMs: 60_000,
    expiredRetentionMs: 60_000,
  });
  return { payments, engine };
}

export function testConfig(redisUrl: string, env: Record<string, string> = {}): Config {
  return loadConfig({
    PORT: '0',
    HOST: '127.0.0.1',
    REDIS_URL: redisUrl,
    REDIS_KEY_PREFIX: randomPrefix(),
    LOCK_TTL_MS: '5000',
    LOCK_WAIT_MS: '5000',
    ...env,
  });
}

export interface TestService extends RunningService {
  readonly url: string;
  readonly config: Config;
  readonly keys: Keys;
  request(
    method: string,
    path: string,
    options?: { body?: unknown; rawBody?: string; headers?: Record<string, string> },
  ): Promise<{ status: number; headers: Headers; body: unknown }>;
}

export async function startTestService(
  config: Config,
  options: ServiceOptions = {},
): Promise<TestService> {
  const service = await startService(config, options);
  if (service.url === null) throw new Error('the api role is not running');
  const url = service.url;
  return {
    ...service,
    url,
    config,
    keys: createKeys(config.keyPrefix),
    async request(method, path, { body, rawBody, headers } = {}) {
      const response = await fetch(`${url}${path}`, {
        method,
        headers: {
          ...(body !== undefined || rawBody !== undefined
            ? { 'content-type': 'application/json' }
            : {}),
          ...headers,
        },
        body: rawBody ?? (body === undefined ? undefined : JSON.stringify(body)),
      });
      const text = await response.text();
      let parsed: unknown = text;
      try {
        parsed = text === '' ? null : JSON.parse(text);
      } catch {
        // not JSON: keep the text, tests assert on it
      }
      assertMatchesContract({
        method,
        path,
        status: response.status,
        header: (name) => response.headers.get(name) ?? undefined,
        body: parsed,
      });
      return { status: response.status, headers: response.headers, body: parsed };
    },
  };
}

/** Direct access to the payment timer queue a service uses, to fire or inspect timers. */
export function expiryQueue(redisUrl: string, config: Config): Queue<TimerJobData> {
  return paymentTimerQueue(redisUrl, config.keyPrefix);
}

/** Polls `check` until it returns a value that is not undefined, or fails after `timeoutMs`. */
export async function waitFor<T>(
  check: () => Promise<T | undefined> | T | undefined,
  { timeoutMs = 10_000, intervalMs = 20, what = 'condition' } = {},
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
