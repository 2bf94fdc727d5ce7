import { Lock, Redlock } from '@sesamecare-oss/redlock';
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { RuntimeError, toRuntimeError } from '../runtime-error.ts';

/**
 * One writer per key at a time, across processes. Same-key work in one
 * process queues locally first, so a burst does not spin on Redis; the wait,
 * local and distributed together, is bounded by `waitMs`.
 */
export interface KeyLock {
  /**
   * Runs `work` holding the key's lock. `take`, if given, takes the lock and
   * reads what the work needs in one atomic step (a script of the caller's,
   * one round trip for both); `work` gets what it read. Without it the lock
   * is taken with a plain `SET NX PX`.
   *
   * The promise settles with the work's result, or earlier with the value the
   * work passes to `answer`: the work then goes on holding the lock (the
   * next holder in this process waits for it), and what it throws after its
   * answer reaches nobody.
   */
  withLock<T, R = undefined>(
    key: string,
    work: (held: Held<R>, answer: (value: T) => void) => Promise<T>,
    take?: TakeLock<R>,
  ): Promise<T>;
}

export interface Held<R> {
  /** The value the lock holds while it is ours (unique to this holding). */
  readonly lockValue: string;
  /** What `take` read as it took the lock; `undefined` without one. */
  readonly read: R;
}

/** The lock a `take` must set: `SET resource value NX PX ttlMs`, as Redlock does. */
export interface LockRequest {
  readonly resource: string;
  readonly value: string;
  readonly ttlMs: number;
}

/**
 * Sets the lock as `request` says and, only if it was free, reads, in one
 * atomic step; `{ taken: false }` when another holds the lock (nothing read).
 * Redis's failures are thrown as they are or as the project's errors.
 */
export type TakeLock<R> = (
  request: LockRequest,
) => Promise<{ readonly taken: false } | { readonly taken: true; readonly read: R }>;

export interface RedlockKeyLockOptions {
  readonly ttlMs: number;
  readonly waitMs: number;
  readonly resource: (key: string) => string;
}

const RETRY_DELAY_MS = 10;

/** Redlock's allowance for clock drift, as a share of the lease (see Redlock's `driftFactor`). */
const DRIFT_FACTOR = 0.01;

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
 * A lock held through Redlock: extended before it runs out for as long as
 * the work takes (as Redlock's `using` does), released by Redlock. An
 * extension that fails leaves the lease to run out: the versioned write
 * fences whatever the work does after that.
 */
class Lease {
  private timer: NodeJS.Timeout | undefined;
  private extending: Promise<void> | undefined;
  private released = false;

  constructor(
    private lock: Lock,
    private readonly ttlMs: number,
    private readonly thresholdMs: number,
  ) {
    this.schedule();
  }

  /** Stops extending and releases; a failed release is left to the lease's expiry. */
  async release(): Promise<void> {
    this.released = true;
    clearTimeout(this.timer);
    await this.extending;
    await this.lock.release().catch(() => undefined);
  }

  private schedule(): void {
    if (this.released) return;
    this.timer = setTimeout(
      () => {
        this.extending = this.extend();
      },
      Math.max(0, this.lock.expiration - Date.now() - this.thresholdMs),
    );
  }

  private async extend(): Promise<void> {
    try {
      this.lock = await this.lock.extend(this.ttlMs);
      this.schedule();
    } catch {
      // Tried again while the lease lasts (a Redis that blinked).
      await new Promise((resolve) => setTimeout(resolve, RETRY_DELAY_MS));
      if (!this.released && this.lock.expiration > Date.now()) await this.extend();
    }
  }
}

export class RedlockKeyLock implements KeyLock {
  private readonly redlock: Redlock;
  private readonly tails = new Map<string, Promise<void>>();
  private readonly thresholdMs: number;
  private readonly plainTake: TakeLock<undefined>;

  constructor(
    private readonly redis: Redis,
    private readonly options: RedlockKeyLockOptions,
  ) {
    // Extends and releases the locks taken here. A release that fails is not
    // worth retrying: the lease expires anyway, and retries of a command that
    // times out would hold the next holder.
    this.redlock = new Redlock([redis], { retryCount: 0, driftFactor: DRIFT_FACTOR });
    // Extension failures surface as a lost lease; the versioned write fences them.
    this.redlock.on('error', () => undefined);
    this.thresholdMs = Math.min(500, Math.floor(options.ttlMs / 3));
    this.plainTake = async ({ resource, value, ttlMs }) =>
      (await redis.set(resource, value, 'PX', ttlMs, 'NX')) === 'OK'
        ? { taken: true, read: undefined }
        : { taken: false };
  }

  async withLock<T, R = undefined>(
    key: string,
    work: (held: Held<R>, answer: (value: T) => void) => Promise<T>,
    take?: TakeLock<R>,
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
        if (error instanceof Deadline) throw busy(key);
        throw error;
      }
      const remaining = Math.max(0, this.options.waitMs - (Date.now() - started));
      const run = await this.acquireAndRun(
        key,
        remaining,
        work,
        take ?? (this.plainTake as unknown as TakeLock<R>),
      );
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
   * One attempt at a time, so the wait is bounded by the clock and not by a
   * count of attempts: while Redis is away each attempt takes as long as the
   * client needs to give up, and an unreachable Redis fails at once instead
   * of being retried until the count runs out.
   */
  private async acquireAndRun<T, R>(
    key: string,
    waitMs: number,
    work: (held: Held<R>, answer: (value: T) => void) => Promise<T>,
    take: TakeLock<R>,
  ): Promise<{ value: T; holding: Promise<void> }> {
    const deadline = Date.now() + waitMs;
    const resource = this.options.resource(key);
    const { ttlMs } = this.options;
    for (;;) {
      const value = randomUUID();
      const start = Date.now();
      let taken: Awaited<ReturnType<TakeLock<R>>>;
      try {
        taken = await take({ resource, value, ttlMs });
      } catch (error) {
        throw this.explainAcquireFailure(error);
      }
      if (taken.taken) return this.run(resource, value, start, taken.read, work);
      if (Date.now() >= deadline) throw busy(key);
      const jitter = Math.floor(Math.random() * RETRY_DELAY_MS);
      await new Promise((resolve) => setTimeout(resolve, RETRY_DELAY_MS + jitter));
    }
  }

  /** The work, holding the lock taken with `value` at `start`; released after the work ends. */
  private async run<T, R>(
    resource: string,
    value: string,
    start: number,
    read: R,
    work: (held: Held<R>, answer: (value: T) => void) => Promise<T>,
  ): Promise<{ value: T; holding: Promise<void> }> {
    // As Redlock reckons a lock's end: 1 ms of Redis's expiry precision, 1 ms
    // of rounding and the drift allowance off the lease.
    const drift = Math.round(DRIFT_FACTOR * this.options.ttlMs) + 2;
    const lease = new Lease(
      new Lock(this.redlock, [resource], value, [], start + this.options.ttlMs - drift),
      this.options.ttlMs,
      this.thresholdMs,
    );
    let answered!: (value: T) => void;
    const early = new Promise<T>((resolve) => {
      answered = resolve;
    });
    // The work's writes are fenced by the versioned write, so its own outcome
    // is the true answer whatever becomes of the lease; the lock is released
    // once it ends, after an early answer too.
    const done = work({ lockValue: value, read }, answered);
    const holding = done.then(
      () => lease.release(),
      () => lease.release(),
    );
    // Without an early answer, the caller is answered once the lock is free.
    const released = done.then(
      (result) => holding.then(() => result),
      (error: unknown) =>
        holding.then(() => {
          throw error;
        }),
    );
    return { value: await Promise.race([early, released]), holding };
  }

  private explainAcquireFailure(error: unknown): Error {
    const known = toRuntimeError(error);
    // Anything odd while the connection is down says the same.
    if (known.code === 'internal' && this.redis.status !== 'ready') {
      return new RuntimeError('unavailable', 'storage is unavailable; retry shortly', {
        cause: error,
      });
    }
    return known;
  }
}

function busy(key: string): RuntimeError {
  return new RuntimeError('busy', `another command for key ${key} is in progress; retry shortly`, {
    key,
  });
}
