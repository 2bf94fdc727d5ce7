/**
 * The token lock with a read sent behind the lock request: the read must run
 * while the lock is held by the caller, or be told apart and not used.
 */
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { Engine } from '../../src/engine/index.ts';
import { RecordStore } from '../../src/engine/redis/record-store.ts';
import { RedisClock } from '../../src/engine/redis/redis-clock.ts';
import { StoreIdentity } from '../../src/engine/redis/store-identity.ts';
import type { Payments } from '../../src/payments/payments.ts';
import { createKeys, paymentRecordKeys } from '../../src/runtime/keys.ts';
import { RedlockTokenLock, type TokenLock } from '../../src/runtime/token-lock.ts';
import { barePayments, randomPrefix } from '../support/service-harness.ts';

const prefix = randomPrefix();
const keys = createKeys(prefix);

/** The payment records' store, read as the engine reads it. */
function recordStore(redis: Redis): RecordStore {
  const clock = new RedisClock();
  return new RecordStore(
    redis,
    paymentRecordKeys(keys),
    new StoreIdentity(redis, keys.store, clock),
    clock,
  );
}
const options = { ttlMs: 2_000, waitMs: 3_000, resource: keys.lock };

describe('a read sent behind the lock request', () => {
  let first: Redis;
  let second: Redis;

  beforeAll(() => {
    first = new Redis(inject('redisUrl'));
    second = new Redis(inject('redisUrl'));
  });

  const engines: Engine[] = [];

  afterAll(async () => {
    await Promise.all([first.quit(), second.quit(), ...engines.map((e) => e.close())]);
  });

  it('runs while the caller holds the lock', async () => {
    const store = recordStore(first);
    const lock = new RedlockTokenLock(first, options);
    const read = () => store.loadWithLockValue('tok-ahead');
    // Once first, so Redis knows the scripts and the count is the steady state.
    await lock.withLock('tok-ahead', () => Promise.resolve(), read);
    const seen = await lock.withLock(
      'tok-ahead',
      async (held) => ({ held: held.lockValue, read: await held.readAhead }),
      read,
    );
    expect(seen.read?.record).toBeNull();
    expect(seen.read?.lockValue).toBe(seen.held);
  });

  it('gives every holding a value of its own, stored in Redis while it is held', async () => {
    const lock = new RedlockTokenLock(first, options);
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

  it('reaches the work with the value of the lock it was read under, after waiting for another holder', async () => {
    const holder = new RedlockTokenLock(second, options);
    const waiter = new RedlockTokenLock(first, options);
    const store = recordStore(first);
    let releaseHolder!: () => void;
    const holding = new Promise<void>((resolve) => {
      releaseHolder = resolve;
    });
    let holderValue = '';
    const held = holder.withLock('tok-busy', async ({ lockValue }) => {
      holderValue = lockValue;
      await holding;
    });
    await waitUntil(() => holderValue !== '');
    const waited = waiter.withLock(
      'tok-busy',
      async (h) => ({ held: h.lockValue, read: await h.readAhead }),
      () => store.loadWithLockValue('tok-busy'),
    );
    // Let the waiter's first attempts fail against the holder.
    await new Promise((resolve) => setTimeout(resolve, 120));
    releaseHolder();
    await held;
    const seen = await waited;
    expect(seen.held).not.toBe(holderValue);
    expect(seen.read?.lockValue).toBe(seen.held);
  });

  it('is not trusted when it ran before the lock was taken: the answer follows the state under the lock', async () => {
    // The engine's lock, replaced for the test by one whose request goes out late.
    const runtimeWith = async (lock: TokenLock): Promise<Payments> => {
      const { payments, engine } = await barePayments(inject('redisUrl'), prefix);
      engines.push(engine);
      (payments.actors as unknown as { lock: TokenLock }).lock = lock;
      return payments;
    };
    const real = new RedlockTokenLock(first, options);
    const runtime = await runtimeWith(real);
    const payment = { accountId: 'acct-ahead', amountCents: 700 };
    await runtime.pay('tok-early', payment);

    // A lock whose request goes out late: the read runs first and sees the
    // token processed; a cancel then refunds it before the lock is taken.
    const late: TokenLock = {
      async withLock(token, work, readAhead) {
        const early = readAhead?.();
        await early;
        await runtime.cancel(token);
        return real.withLock(token, (held, answer) => work({ ...held, readAhead: early }, answer));
      },
    };
    const replay = await (await runtimeWith(late)).pay('tok-early', payment);
    expect(replay.snapshot?.value).toBe('refunded');
    expect(replay.outcome).toBe('rejected');
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
    const lock = new RedlockTokenLock(redis, options);
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
    const lock = new RedlockTokenLock(redis, options);
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
