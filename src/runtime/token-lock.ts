import { ExecutionError, Redlock } from '@sesamecare-oss/redlock';
import type { Redis } from 'ioredis';
import { TokenBusyError, UnavailableError, isRedisUnavailable, toAppError } from '../errors.ts';

/**
 * One writer per token at a time, across processes. Same-token work in one
 * process queues locally first, so a burst does not spin on Redis; the wait,
 * local and distributed together, is bounded by `waitMs`.
 */
export interface TokenLock {
  withLock<T>(token: string, work: () => Promise<T>): Promise<T>;
}

export interface RedlockTokenLockOptions {
  readonly ttlMs: number;
  readonly waitMs: number;
  readonly resource: (token: string) => string;
}

const RETRY_DELAY_MS = 25;

class Deadline extends Error {}

/** Resolves when `promise` settles, rejects with Deadline when `ms` pass first. */
async function within(promise: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          reject(new Deadline());
        }, ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

export class RedlockTokenLock implements TokenLock {
  private readonly redlock: Redlock;
  private readonly tails = new Map<string, Promise<void>>();

  constructor(
    private readonly redis: Redis,
    private readonly options: RedlockTokenLockOptions,
  ) {
    this.redlock = new Redlock([redis], {
      driftFactor: 0.01,
      retryDelay: RETRY_DELAY_MS,
      retryJitter: RETRY_DELAY_MS,
      automaticExtensionThreshold: Math.min(500, Math.floor(options.ttlMs / 3)),
    });
    // Extension failures surface as a lost lease; the versioned write fences them.
    this.redlock.on('error', () => undefined);
  }

  async withLock<T>(token: string, work: () => Promise<T>): Promise<T> {
    const started = Date.now();
    const previous = this.tails.get(token) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((resolve) => {
      release = resolve;
    });
    const tail = previous.then(() => mine);
    this.tails.set(token, tail);
    try {
      try {
        await within(previous, this.options.waitMs);
      } catch (error) {
        if (error instanceof Deadline) throw new TokenBusyError(token);
        throw error;
      }
      const remaining = Math.max(0, this.options.waitMs - (Date.now() - started));
      return await this.acquireAndRun(token, remaining, work);
    } finally {
      release();
      if (this.tails.get(token) === tail) this.tails.delete(token);
    }
  }

  private async acquireAndRun<T>(token: string, waitMs: number, work: () => Promise<T>) {
    const settings = { retryCount: Math.max(0, Math.ceil(waitMs / RETRY_DELAY_MS)) };
    const progress = { acquired: false };
    try {
      return await this.redlock.using(
        [this.options.resource(token)],
        this.options.ttlMs,
        settings,
        async () => {
          progress.acquired = true;
          return work();
        },
      );
    } catch (error) {
      if (progress.acquired) throw error;
      throw await this.explainAcquireFailure(token, error);
    }
  }

  private async explainAcquireFailure(token: string, error: unknown): Promise<Error> {
    if (error instanceof ExecutionError) {
      const stats = await Promise.allSettled(error.attempts);
      const reasons: unknown[] = stats.flatMap((s): unknown[] =>
        s.status === 'fulfilled' ? [...s.value.votesAgainst.values()] : [s.reason],
      );
      if (reasons.some(isRedisUnavailable) || this.redis.status !== 'ready') {
        return new UnavailableError('storage is unavailable; retry shortly', { cause: error });
      }
      return new TokenBusyError(token);
    }
    return toAppError(error);
  }
}
