import type { Redis } from 'ioredis';
import { toRuntimeError } from '../runtime-error.ts';

/**
 * One clock for every process: Redis's. The time given to the machine, due
 * times of timers and retention deadlines are all read off it, so a process
 * whose own clock runs ahead or behind cannot expire a token early or write a
 * removal deadline already in the past (Redis applies PEXPIREAT by its own
 * clock).
 *
 * `now()` is this process's clock plus the offset to Redis's last observed
 * `TIME`. Every locked read of a record and every store check observes it
 * anew, so the offset follows a process clock that is stepped while running.
 */
/**
 * A new observation may put the offset a few ms lower than the last (the
 * reply that carried TIME took longer to arrive): so that times this process
 * hands out never go back (one token's history stays in order), `now()`
 * holds at the last value through a step back this small. A larger one is a
 * correction (this process's clock was stepped) and is taken as it is.
 */
const HOLD_THROUGH_MS = 1_000;

export class RedisClock {
  private offsetMs = 0;
  private observed = false;
  private last = -Infinity;

  constructor(private readonly local: () => number = Date.now) {}

  /** Redis's time now, epoch ms (as of the last observation); never less than the last answer by a small step. */
  now(): number {
    const now = this.local() + this.offsetMs;
    if (now < this.last && this.last - now <= HOLD_THROUGH_MS) return this.last;
    this.last = now;
    return now;
  }

  /** How far this process's clock is behind Redis's (negative: ahead), ms. */
  get skewMs(): number {
    return this.offsetMs;
  }

  get synced(): boolean {
    return this.observed;
  }

  /** Records a `TIME` reply (`[seconds, microseconds]`) received just now. */
  observe(time: readonly (string | number)[]): void {
    const ms = timeToMs(time);
    if (ms === null) return;
    this.offsetMs = ms - this.local();
    this.observed = true;
  }

  /** Reads Redis's `TIME` now. */
  async sync(redis: Redis): Promise<void> {
    try {
      this.observe(await redis.time());
    } catch (error) {
      throw toRuntimeError(error);
    }
  }
}

/** `TIME` as epoch ms; `null` for a reply that is not one. */
export function timeToMs(time: readonly (string | number | null | undefined)[]): number | null {
  const [seconds, micros] = time;
  if (seconds == null || micros == null) return null;
  const ms = Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
  return Number.isFinite(ms) ? ms : null;
}
