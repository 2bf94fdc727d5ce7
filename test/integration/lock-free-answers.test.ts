/**
 * Requests that change nothing (a replay, a repeated cancel, a payment on a
 * cancelled token) are answered from one read without the token's lock;
 * anything that changes the token, or finds work owed, takes the lock.
 * Another holder keeps the lock throughout, so a request that waits for it
 * fails as busy after LOCK_WAIT_MS instead of being answered.
 */
import { Redis } from 'ioredis';
import { afterAll, beforeAll, beforeEach, describe, expect, inject, it } from 'vitest';
import { createKeys } from '../../src/payments/keys.ts';
import type { Engine } from '../../src/runtime/index.ts';
import type { Payments } from '../../src/payments/payments.ts';
import { RedlockKeyLock } from '../../src/runtime/redis/key-lock.ts';
import { barePayments, randomPrefix } from '../support/service-harness.ts';

const prefix = randomPrefix();
const keys = createKeys(prefix);
const payment = { accountId: 'acct-free', amountCents: 900 };

describe('answers without the lock', () => {
  let redis: Redis;
  let other: Redis;
  let runtime: Payments;
  const engines: Engine[] = [];
  let releaseHolder: (() => void) | null = null;
  let held: Promise<void> | null = null;
  let token = '';
  let serial = 0;

  const newRuntime = async () => {
    const { payments, engine } = await barePayments(inject('redisUrl'), prefix, {
      lockWaitMs: 300,
    });
    engines.push(engine);
    return payments;
  };

  /** Another process takes the token's lock and keeps it until the test ends. */
  async function holdLock(): Promise<void> {
    const holder = new RedlockKeyLock(other, {
      ttlMs: 5_000,
      waitMs: 1_000,
      resource: keys.lock,
    });
    let taken!: () => void;
    const acquired = new Promise<void>((resolve) => {
      taken = resolve;
    });
    held = holder.withLock(token, async () => {
      taken();
      await new Promise<void>((resolve) => {
        releaseHolder = resolve;
      });
    });
    await acquired;
  }

  async function version(): Promise<string | null> {
    return redis.hget(keys.state(token), 'v');
  }

  beforeAll(() => {
    redis = new Redis(inject('redisUrl'));
    other = new Redis(inject('redisUrl'));
  });

  beforeEach(async () => {
    token = `tok-free-${++serial}`;
    runtime = await newRuntime();
    await runtime.pay(token, payment);
    // The expiry timer is armed (and the owed list cleared) right after the answer.
    await runtime.actors.idle();
    return async () => {
      releaseHolder?.();
      await held;
      releaseHolder = null;
      held = null;
    };
  });

  afterAll(async () => {
    await Promise.all([redis.quit(), other.quit(), ...engines.map((e) => e.close())]);
  });

  it('replays a processed payment while another process holds the lock, writing nothing', async () => {
    const before = await version();
    await holdLock();
    const replay = await runtime.pay(token, payment);
    expect(replay.outcome).toBe('replayed');
    expect(replay.snapshot?.value).toBe('processed');
    expect(await version()).toBe(before);
  });

  it('answers a repeated cancel and a payment after it without the lock', async () => {
    await runtime.cancel(token);
    const before = await version();
    await holdLock();
    expect((await runtime.cancel(token)).outcome).toBe('refunded');
    expect((await runtime.pay(token, payment)).outcome).toBe('rejected');
    expect(await version()).toBe(before);
  });

  it('waits for the lock to change the token', async () => {
    await holdLock();
    await expect(runtime.cancel(token)).rejects.toMatchObject({
      name: 'RuntimeError',
      code: 'busy',
    });
    expect((await runtime.get(token))?.value).toBe('processed');
  });

  it('waits for the lock when the record owes work a crash left undone', async () => {
    // As a write whose actions did not all run leaves it (a timer still to arm).
    await redis.hset(
      keys.state(token),
      'o',
      JSON.stringify([{ kind: 'timer', id: 'x', seq: 1, dueAt: 0, event: { type: 'NOTHING' } }]),
    );
    await holdLock();
    await expect(runtime.pay(token, payment)).rejects.toMatchObject({
      name: 'RuntimeError',
      code: 'busy',
    });
  });
});
