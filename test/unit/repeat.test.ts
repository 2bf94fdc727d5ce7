import { setTimeout as delay } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { repeatEvery } from '../../src/runtime/redis/repeat.ts';

describe('repeatEvery', () => {
  it('runs the work again an interval after each run ends, through failed runs', async () => {
    let runs = 0;
    const stop = repeatEvery(10, () => {
      runs += 1;
      return runs % 2 === 0 ? Promise.reject(new Error('Redis away')) : Promise.resolve();
    });
    await delay(200);
    stop();
    expect(runs).toBeGreaterThanOrEqual(4);
  });

  it('starts no run after stop, not even after a run that was under way', async () => {
    let runs = 0;
    let finish: () => void = () => undefined;
    const stop = repeatEvery(10, () => {
      runs += 1;
      return new Promise<void>((resolve) => {
        finish = resolve;
      });
    });
    await delay(50);
    expect(runs).toBe(1);
    stop();
    finish();
    await delay(100);
    expect(runs).toBe(1);
  });
});
