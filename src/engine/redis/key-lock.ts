import { ExecutionError, Redlock } from '@sesamecare-oss/redlock';
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import {
  TokenBusyError,
  UnavailableError,
  isRedisFull,
  isRedisUnavailable,
  toAppError,
} from '../../errors.ts';

/**
 * One writer per key at a time, across processes. Same-key work in one
 * process queues locally first, so a burst does not spin on Redis; the wait,
 * local and distributed together, is bounded by `waitMs`.
 */
export interface KeyLock {
  /**
   * Runs `work` holding the key's lock. `readAhead`, if given, is sent
   * right behind the request for the lock, on the same connection, so the two
   * share one round trip; `work` gets its result with the lock's value, which
   * the read can return too to show it ran after the lock was taken.
   *
   * The promise settles with the work's result, or earlier with the value the
   * work passes to `answer`: the work then goes on holding the lock (the
   * next holder in this process waits for it), and what it throws after its
   * answer reaches nobody.
   */
  withLock<T, R = undefined>(
    key: string,
    work: (held: Held<R>, answer: (value: T) => void) => Promise<T>,
    readAhead?: () => Promise<R>,
  ): Promise<T>;
}

export interface Held<R> {
  /** The value the lock holds while it is ours (unique to this holding). */
  readonly lockValue: string;
  /** The read sent behind the lock request; `undefined` without one. */
  readonly readAhead: Promise<R> | undefined;
}

export interface RedlockKeyLockOptions {
  readonly ttlMs: number;
  readonly waitMs: number;
  readonly resource: (key: string) => string;
}

const RETRY_DELAY_MS = 10;

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

/**
 * Redlock draws each lock's value with crypto.randomBytes: one call into the
 * system's generator per lock, a few percent of a new payment's CPU. A
 * random UUID (122 random bits, unique per holding all the same) is drawn
 * from a pool Node refills in bulk. Redlock has no option for it, so its
 * generator is replaced; should a release of Redlock drop it, this fails at
 * start-up instead of quietly keeping the dear one.
 */
function useCheapLockValues(redlock: Redlock): void {
  const generator = redlock as unknown as { _random?: unknown };
  if (typeof generator._random !== 'function') {
    throw new Error('Redlock has no _random() to replace: check the lock values after an upgrade');
  }
  generator._random = () => randomUUID();
}

export class RedlockKeyLock implements KeyLock {
  private readonly redlock: Redlock;
  private readonly tails = new Map<string, Promise<void>>();

  constructor(
    private readonly redis: Redis,
    private readonly options: RedlockKeyLockOptions,
  ) {
    this.redlock = new Redlock([redis], {
      // One try per call (acquiring retries on its own clock, below). A
      // release that fails is not worth retrying: the lease expires anyway,
      // and ten retries of a command that times out would hold the answer.
      retryCount: 0,
      driftFactor: 0.01,
      automaticExtensionThreshold: Math.min(500, Math.floor(options.ttlMs / 3)),
    });
    // Extension failures surface as a lost lease; the versioned write fences them.
    this.redlock.on('error', () => undefined);
    useCheapLockValues(this.redlock);
  }

  async withLock<T, R = undefined>(
    key: string,
    work: (held: Held<R>, answer: (value: T) => void) => Promise<T>,
    readAhead?: () => Promise<R>,
  ): Promise<T> {
    const started = Date.now();
    const previous = this.tails.get(key);
    let release!: () => void;
    const mine = new Promise<void>((resolve) => {
      release = resolve;
    });
    const tail = previous === undefined ? mine : previous.then(() => mine);
    this.tails.set(key, tail);
    // Until the lock is released: after an early answer that is later than
    // the return below.
    let holding: Promise<void> = Promise.resolve();
    try {
      try {
        // Nobody ahead in this process (the usual case): no timer to set.
        if (previous !== undefined) await within(previous, this.options.waitMs);
      } catch (error) {
        if (error instanceof Deadline) throw new TokenBusyError(key);
        throw error;
      }
      const remaining = Math.max(0, this.options.waitMs - (Date.now() - started));
      const run = await this.acquireAndRun(key, remaining, work, readAhead);
      holding = run.holding;
      return run.value;
    } finally {
      void holding.then(() => {
        release();
        if (this.tails.get(key) === tail) this.tails.delete(key);
      });
    }
  }

  /**
   * Resolves once no work holds or waits for a lock of this process (work
   * that answered early may still be finishing), or after `maxMs`.
   */
  async idle(maxMs: number): Promise<void> {
    try {
      await within(Promise.allSettled([...this.tails.values()]), maxMs);
    } catch (error) {
      if (!(error instanceof Deadline)) throw error;
    }
  }

  /**
   * One Redlock attempt at a time, so the wait is bounded by the clock and not
   * by a count of attempts: while Redis is away each attempt takes as long as
   * the client needs to give up, and an unreachable Redis fails at once
   * instead of being retried until the count runs out.
   */
  private async acquireAndRun<T, R>(
    key: string,
    waitMs: number,
    work: (held: Held<R>, answer: (value: T) => void) => Promise<T>,
    readAhead: (() => Promise<R>) | undefined,
  ): Promise<{ value: T; holding: Promise<void> }> {
    const deadline = Date.now() + waitMs;
    for (;;) {
      const progress: { acquired: boolean; outcome?: { value: T } | { error: unknown } } = {
        acquired: false,
      };
      let answered!: (value: T) => void;
      const early = new Promise<T>((resolve) => {
        answered = resolve;
      });
      let read: Promise<R> | undefined;
      try {
        const using = this.redlock.using(
          [this.options.resource(key)],
          this.options.ttlMs,
          async (_signal, { lock }) => {
            progress.acquired = true;
            try {
              const value = await work({ lockValue: lock.value, readAhead: read }, (value) => {
                progress.outcome ??= { value };
                answered(value);
              });
              progress.outcome ??= { value };
              return value;
            } catch (error) {
              progress.outcome ??= { error };
              throw error;
            }
          },
        );
        // Redlock has written its request by now; this goes out behind it. A
        // read that lost the race anyway is told apart by the lock's value.
        read = readAhead?.();
        void read?.catch(() => undefined);
        const holding = using.then(
          () => undefined,
          () => undefined,
        );
        const value = await Promise.race([early, using]);
        return { value, holding };
      } catch (error) {
        // Releasing a lease that ran out during the work (a pause longer than
        // the TTL) fails after the work is done. The work's writes were fenced
        // by the versioned write, so its own outcome is the true answer.
        if (progress.outcome !== undefined) {
          if ('error' in progress.outcome) throw progress.outcome.error;
          return { value: progress.outcome.value, holding: Promise.resolve() };
        }
        if (progress.acquired) throw error;
        const failure = await this.explainAcquireFailure(key, error);
        if (!(failure instanceof TokenBusyError) || Date.now() >= deadline) throw failure;
      }
      const jitter = Math.floor(Math.random() * RETRY_DELAY_MS);
      await new Promise((resolve) => setTimeout(resolve, RETRY_DELAY_MS + jitter));
    }
  }

  private async explainAcquireFailure(key: string, error: unknown): Promise<Error> {
    if (error instanceof ExecutionError) {
      const stats = await Promise.allSettled(error.attempts);
      const reasons: unknown[] = stats.flatMap((s): unknown[] =>
        s.status === 'fulfilled' ? [...s.value.votesAgainst.values()] : [s.reason],
      );
      // Redis over maxmemory refuses the lock's SET: no waiting frees memory
      // within a request, so answer at once instead of retrying until waitMs.
      const full = reasons.find(isRedisFull);
      if (full !== undefined) return toAppError(full);
      if (reasons.some(isRedisUnavailable) || this.redis.status !== 'ready') {
        return new UnavailableError('storage is unavailable; retry shortly', { cause: error });
      }
      return new TokenBusyError(key);
    }
    return toAppError(error);
  }
}
