import { describe, expect, it } from 'vitest';
import { RedisClock } from '../../src/runtime/redis/redis-clock.ts';

/** TIME as Redis answers it, for an epoch-ms instant. */
const time = (ms: number) => [String(Math.floor(ms / 1000)), String((ms % 1000) * 1000)];

describe("Redis's clock as one process sees it", () => {
  it("answers Redis's time, not the process's, after an observation", () => {
    let local = 1_000_000;
    const clock = new RedisClock(() => local);
    clock.observe(time(1_600_000));
    expect(clock.now()).toBe(1_600_000);
    local += 250;
    expect(clock.now()).toBe(1_600_250);
  });

  it('never goes back when a later observation puts the offset a few ms lower', () => {
    let local = 1_000_000;
    const clock = new RedisClock(() => local);
    clock.observe(time(1_600_000));
    local += 10;
    const charged = clock.now();
    // The next reply arrived 3 ms late: the offset it gives is 3 ms lower.
    clock.observe(time(1_600_007));
    const cancelled = clock.now();
    expect(cancelled).toBeGreaterThanOrEqual(charged);
    local += 5;
    expect(clock.now()).toBe(1_600_012);
  });

  it('follows a large correction back (the process clock was stepped) instead of freezing', () => {
    let local = 1_000_000;
    const clock = new RedisClock(() => local);
    clock.observe(time(1_600_000));
    // The process clock jumps an hour ahead; Redis's does not.
    local += 3_600_000;
    expect(clock.now()).toBe(5_200_000);
    clock.observe(time(1_600_100));
    expect(clock.now()).toBe(1_600_100);
  });
});
