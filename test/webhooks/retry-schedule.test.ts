import { describe, expect, it } from 'vitest';
import {
  MAX_RETRY_DELAY_MS,
  nextAttemptAt,
  retryDelayMs,
  retryOffsets,
} from '../../src/webhooks/retry-schedule.ts';

const DEFAULTS = { baseMs: 30_000, retryForMs: 259_200_000 };

describe('the webhook retry schedule', () => {
  it('doubles from the base after each failure, capped at an hour', () => {
    expect([1, 2, 3, 4, 5, 6, 7, 8, 9].map((n) => retryDelayMs(n, 30_000))).toEqual([
      30_000, 60_000, 120_000, 240_000, 480_000, 960_000, 1_920_000, 3_600_000, 3_600_000,
    ]);
    expect(retryDelayMs(10_000, 30_000)).toBe(MAX_RETRY_DELAY_MS);
    expect(retryDelayMs(1, 5_000_000)).toBe(MAX_RETRY_DELAY_MS);
  });

  it('counts the wait from the failure, and gives up once the next attempt would pass the retry window', () => {
    const createdAt = 1_000_000;
    expect(nextAttemptAt({ createdAt, failures: 1, failedAt: createdAt + 500 }, DEFAULTS)).toBe(
      createdAt + 500 + 30_000,
    );
    const policy = { baseMs: 100, retryForMs: 1_000 };
    expect(nextAttemptAt({ createdAt: 0, failures: 3, failedAt: 600 }, policy)).toBe(1_000);
    expect(nextAttemptAt({ createdAt: 0, failures: 3, failedAt: 601 }, policy)).toBeNull();
  });

  it('tries for three days by default: 30 s, 1, 2, 4, 8, 16, 32 min, then hourly', () => {
    const offsets = retryOffsets(DEFAULTS);
    expect(offsets.slice(0, 9)).toEqual([
      0, 30_000, 90_000, 210_000, 450_000, 930_000, 1_890_000, 3_810_000, 7_410_000,
    ]);
    expect(offsets).toHaveLength(78);
    const last = offsets[offsets.length - 1] ?? 0;
    expect(last).toBeLessThanOrEqual(DEFAULTS.retryForMs);
    expect(last + MAX_RETRY_DELAY_MS).toBeGreaterThan(DEFAULTS.retryForMs);
  });

  it('refuses a schedule that makes no sense', () => {
    expect(() => retryDelayMs(0, 30_000)).toThrow(RangeError);
    expect(() => retryOffsets({ baseMs: 0, retryForMs: 1_000 })).toThrow(RangeError);
    expect(() => retryOffsets({ baseMs: 10, retryForMs: -1 })).toThrow(RangeError);
  });
});
