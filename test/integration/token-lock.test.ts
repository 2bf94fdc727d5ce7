/**
 * The token lock taking the lock and reading the record in one script: the
 * read happens only while the lock is the caller's; the lease lasts as long
 * as the work; every holding has a value of its own.
 */
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { LockRequest } from '../../src/runtime/redis/key-lock.ts';
import { RecordStore } from '../../src/runtime/redis/record-store.ts';
import { RedisClock } from '../../src/runtime/redis/redis-clock.ts';
import { StoreIdentity } from '../../src/runtime/redis/store-identity.ts';
import { createKeys, paymentRecordKeys } from '../../src/payments/keys.ts';
import { RedlockKeyLock, type KeyLock } from '../../src/runtime/redis/key-lock.ts';
import { randomPrefix } from '../support/service-harness.ts';

const prefix = randomPrefix();
const keys = createKeys(prefix);
const recordKeys = paymentRecordKeys(keys);

/** The payment records' store, read as the engine reads it. */
function recordStore(redis: Redis): RecordStore {
  const clock = new RedisClock();
  return new RecordStore(redis, recordKeys, new StoreIdentity(redis, keys.store, clock), clock);
}
const options = { ttlMs: 2_000, waitMs: 3_000, resource: keys.lock };

describe('the lock taken with the record read in one script', () => {
  let first: Redis;
  let second: Redis;

  beforeAll(() => {
    first = new Redis(inject('redisUrl'));
    second = new Redis(inject('redisUrl'));
  });

  afterAll(async () => {
    await Promise.all([first.quit(), second.quit()]);
  });

  it("reads the record while the lock holds the caller's value", async () => {
    const store = recordStore(first);
    const lock: KeyLock = new RedlockKeyLock(first, options);
    await second.hset(recordKeys.record('tok-ahead'), { v: '7', l: 'life', s: '{}' });
    const seen = await lock.withLock(
      'tok-ahead',
      async (held) => ({
        held: held.lockValue,
        inRedis: await second.get(keys.lock('tok-ahead')),
        record: await store.loaded('tok-ahead', held.read),
      }),
      (request: LockRequest) => store.lockAndLoad('tok-ahead', request),
    );
    expect(seen.inRedis).toBe(seen.held);
    expect(seen.record?.version).toBe(7);
    expect(await second.exists(keys.lock('tok-ahead'))).toBe(0);
  });

  it('gives every holding a value of its own, stored in Redis while it is held', async () => {
    const lock = new RedlockKeyLock(first, options);
    const values = new Set<string>();
    for (let i = 0; i < 50; i++) {
      await lock.withLock('tok-values', async ({ lockValue }) => {
        // What Redis holds is this holding's value: only its holder can release or extend it.
        expect(await second.get(keys.lock('tok-values'))).toBe(lockValue);
        values.add(lockValue);
      });
    }
    expect(values.size).toBe(50);
    // Drawn from the pooled generator (random UUIDs), not one system call per lock.
    for (const value of values)
      expect(value).toMatch(
        /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/,
      );
    expect(await second.exists(keys.lock('tok-values'))).toBe(0);
  });

  it('reads nothing while another holds the lock, then reads what that holder wrote', async () => {
    const holder = new RedlockKeyLock(second, options);
    const waiter = new RedlockKeyLock(first, options);
    const store = recordStore(first);
    let releaseHolder!: () => void;
    const holding = new Promise<void>((resolve) => {
      releaseHolder = resolve;
    });
    let holderValue = '';
    const held = holder.withLock('tok-busy', async ({ lockValue }) => {
      holderValue = lockValue;
      await holding;
      // The holder's write, last thing before it lets go.
      await second.hset(recordKeys.record('tok-busy'), { v: '3', l: 'life', s: '{}' });
    });
    await waitUntil(() => holderValue !== '');
    const attempts: boolean[] = [];
    const waited = waiter.withLock(
      'tok-busy',
      async (h) => ({ held: h.lockValue, record: await store.loaded('tok-busy', h.read) }),
      async (request: LockRequest) => {
        const taken = await store.lockAndLoad('tok-busy', request);
        attempts.push(taken.taken);
        return taken;
      },
    );
    // Let the waiter's first attempts fail against the holder.
    await new Promise((resolve) => setTimeout(resolve, 120));
    expect(attempts.length).toBeGreaterThan(1);
    expect(attempts).not.toContain(true);
    // The holder's lock was left as it was.
    expect(await first.get(keys.lock('tok-busy'))).toBe(holderValue);
    releaseHolder();
    await held;
    const seen = await waited;
    expect(seen.held).not.toBe(holderValue);
    expect(seen.record?.version).toBe(3);
    expect(attempts.at(-1)).toBe(true);
  });

  it('keeps the lock for work that lasts longer than the lease, and releases it after', async () => {
    const lock = new RedlockKeyLock(first, { ...options, ttlMs: 600 });
    const observed: (string | null)[] = [];
    await lock.withLock('tok-long', async ({ lockValue }) => {
      for (let i = 0; i < 6; i++) {
        await new Promise((resolve) => setTimeout(resolve, 250));
        observed.push((await second.get(keys.lock('tok-long'))) === lockValue ? 'ours' : null);
      }
    });
    // 1.5 s of work on a 600 ms lease: extended all along.
    expect(observed).toEqual(['ours', 'ours', 'ours', 'ours', 'ours', 'ours']);
    expect(await second.exists(keys.lock('tok-long'))).toBe(0);
  });

  it('releases the lock when the work throws', async () => {
    const lock = new RedlockKeyLock(first, options);
    await expect(
      lock.withLock('tok-throws', () => Promise.reject(new Error('work failed'))),
    ).rejects.toThrow('work failed');
    await lock.idle(1_000);
    expect(await second.exists(keys.lock('tok-throws'))).toBe(0);
  });
});

describe('a lock whose work answers early', () => {
  let redis: Redis;
  let other: Redis;

  beforeAll(() => {
    redis = new Redis(inject('redisUrl'));
    other = new Redis(inject('redisUrl'));
  });

  afterAll(async () => {
    await Promise.all([redis.quit(), other.quit()]);
  });

  it('answers the caller at once, keeps the lock until the work ends, and the next holder in the process waits', async () => {
    const lock = new RedlockKeyLock(redis, options);
    let finish!: () => void;
    const finishing = new Promise<void>((resolve) => {
      finish = resolve;
    });
    const order: string[] = [];
    const answer = await lock.withLock('tok-answer', async (_held, answerNow) => {
      answerNow('early');
      await finishing;
      order.push('first work ended');
      return 'late';
    });
    expect(answer).toBe('early');
    // Still held: another process is refused, and the next caller here waits.
    expect(await other.get(keys.lock('tok-answer'))).not.toBeNull();
    const next = lock.withLock('tok-answer', () => {
      order.push('second work ran');
      return Promise.resolve();
    });
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(order).toEqual([]);
    finish();
    await next;
    expect(order).toEqual(['first work ended', 'second work ran']);
    await lock.idle(1_000);
    expect(await other.get(keys.lock('tok-answer'))).toBeNull();
  });

  it('does not hand an error thrown after the answer to the caller', async () => {
    const lock = new RedlockKeyLock(redis, options);
    const answer = await lock.withLock('tok-answer-fails', async (_held, answerNow) => {
      answerNow('answered');
      await new Promise((resolve) => setTimeout(resolve, 10));
      throw new Error('after the answer');
    });
    expect(answer).toBe('answered');
    await lock.idle(1_000);
    expect(await other.get(keys.lock('tok-answer-fails'))).toBeNull();
  });
});

async function waitUntil(condition: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !condition(); i++) {
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  expect(condition()).toBe(true);
}
