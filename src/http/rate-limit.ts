/**
 * Rate limits, counted in Redis (rate-limiter-flexible) so that every API
 * process of a deployment shares them:
 * - per tenant: requests per second, across all its keys;
 * - per client address: failed authentications per minute; past the limit
 *   every request from that address gets 429 until the minute is over,
 *   a valid key included (so a guess that happens to be right tells the
 *   guesser nothing while it is throttled).
 *
 * While Redis cannot be reached, each process counts on its own in memory
 * (the library's insurance limiter): the limits still hold per process,
 * and the request goes on to meet the outage itself (503 where it needs
 * Redis).
 */
import type { Cluster, Redis } from 'ioredis';
import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible';

export interface RateLimitSettings {
  /** Prefix of the limiters' Redis keys (REDIS_KEY_PREFIX). */
  readonly prefix: string;
  /** Requests per second per tenant; 0: no limit. */
  readonly perSecond: number;
  /** Failed authentications per client address per minute. */
  readonly authFailuresPerMinute: number;
}

/** Each answers the milliseconds until the caller may try again: 0 when allowed now. */
export interface RateLimits {
  /** Counts one request of `tenant`. */
  tenantRequest(tenant: string): Promise<number>;
  /** Counts one failed authentication from `address`. */
  authFailure(address: string): Promise<number>;
  /** Whether `address` is over its failed-authentication limit (counts nothing). */
  addressBlocked(address: string): Promise<number>;
}

function limiter(
  redis: Redis | Cluster,
  keyPrefix: string,
  points: number,
  duration: number,
): RateLimiterRedis {
  return new RateLimiterRedis({
    storeClient: redis,
    keyPrefix,
    points,
    duration,
    // A connection that is down answers at once from memory, not after a command timeout.
    rejectIfRedisNotReady: true,
    insuranceLimiter: new RateLimiterMemory({ keyPrefix, points, duration }),
  });
}

/** Milliseconds to wait after a consume: 0 when it was allowed. */
async function waitAfter(consume: Promise<RateLimiterRes>): Promise<number> {
  try {
    await consume;
    return 0;
  } catch (rejection) {
    if (rejection instanceof RateLimiterRes) return Math.max(1, rejection.msBeforeNext);
    // Neither Redis nor the insurance limiter could count: let the request
    // through rather than refuse every client for the limiter's sake.
    return 0;
  }
}

export function redisRateLimits(redis: Redis | Cluster, settings: RateLimitSettings): RateLimits {
  const perTenant =
    settings.perSecond === 0
      ? null
      : limiter(redis, `${settings.prefix}:ratelimit:tenant`, settings.perSecond, 1);
  const failures = limiter(
    redis,
    `${settings.prefix}:ratelimit:authfail`,
    settings.authFailuresPerMinute,
    60,
  );
  return {
    tenantRequest: (tenant) =>
      perTenant === null ? Promise.resolve(0) : waitAfter(perTenant.consume(tenant)),
    authFailure: (address) => waitAfter(failures.consume(address)),
    async addressBlocked(address) {
      try {
        const seen = await failures.get(address);
        // The limit reached is enough: after 10 failures of 10 the 11th
        // request is refused, whatever key it carries.
        return seen !== null && seen.consumedPoints >= settings.authFailuresPerMinute
          ? Math.max(1, seen.msBeforeNext)
          : 0;
      } catch {
        return 0;
      }
    },
  };
}
