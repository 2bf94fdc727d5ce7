/**
 * What `paystate get` reads: a token's record straight from Redis, without an
 * engine, against the shared test Redis.
 */
import { Redis } from 'ioredis';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { paymentMachine, PAYMENT_MACHINE_VERSION } from '../../src/machine/payment.machine.ts';
import {
  contextOf,
  readPaymentRecord,
  startPayment,
  statusOf,
  stepPayment,
} from '../../src/payments/payment.snapshot.ts';
import { randomPrefix } from '../support/service-harness.ts';

const input = {
  token: 'tok_1',
  lifeId: 'life-1',
  at: 1_000,
  expiryMs: 500,
  captureWindowMs: 700,
  retentionMs: 300,
};
const charging = stepPayment(startPayment(input).snapshot, {
  type: 'PAY',
  accountId: 'acct-1',
  amountCents: 1_500,
  currency: 'USD',
  capture: 'automatic',
  at: 2_000,
}).snapshot;
const stored = JSON.stringify(paymentMachine.getPersistedSnapshot(charging));

describe('reading a payment record without an engine', () => {
  const redis = new Redis(inject('redisUrl'), { maxRetriesPerRequest: 3 });
  const prefix = randomPrefix();
  let n = 0;
  const key = () => `${prefix}:record:${++n}`;

  afterAll(async () => {
    const keys = await redis.keys(`${prefix}:*`);
    if (keys.length > 0) await redis.del(...keys);
    redis.disconnect();
  });

  it('reads the version, the snapshot and whether actions are owed', async () => {
    const k = key();
    await redis.hset(k, { v: '7', n: 'payment', m: PAYMENT_MACHINE_VERSION, s: stored, o: '1' });
    const record = await readPaymentRecord(redis, k);
    expect(record?.version).toBe(7);
    expect(record?.owed).toBe(true);
    expect(record && statusOf(record.snapshot)).toBe('charging');
    expect(record && contextOf(record.snapshot)).toEqual(charging.context);
  });

  it('reads a record with nothing owed, and one an earlier format wrote without a machine name', async () => {
    const k = key();
    await redis.hset(k, { v: '3', m: PAYMENT_MACHINE_VERSION, s: stored });
    const record = await readPaymentRecord(redis, k);
    expect(record?.version).toBe(3);
    expect(record?.owed).toBe(false);
    expect(record?.snapshot.value).toBe('charging');
  });

  it('answers null for a token with no record, and refuses a written record without its snapshot', async () => {
    expect(await readPaymentRecord(redis, key())).toBeNull();
    const k = key();
    await redis.hset(k, { v: '1', n: 'payment', m: PAYMENT_MACHINE_VERSION });
    await expect(readPaymentRecord(redis, k)).rejects.toThrow(`the record ${k} has no snapshot`);
    const k2 = key();
    await redis.hset(k2, { n: 'payment', m: PAYMENT_MACHINE_VERSION, s: stored });
    expect(await readPaymentRecord(redis, k2)).toBeNull();
  });

  it('refuses a record of another machine or machine version, saying which it holds', async () => {
    const other = key();
    await redis.hset(other, { v: '1', n: 'ticket', m: '1', s: stored });
    await expect(readPaymentRecord(redis, other)).rejects.toThrow(
      `the record ${other} holds ticket v1`,
    );
    const newer = key();
    await redis.hset(newer, { v: '1', n: 'payment', m: PAYMENT_MACHINE_VERSION + 1, s: stored });
    await expect(readPaymentRecord(redis, newer)).rejects.toThrow(
      `the record ${newer} holds payment v${PAYMENT_MACHINE_VERSION + 1}`,
    );
    const unversioned = key();
    await redis.hset(unversioned, { v: '1', s: stored });
    await expect(readPaymentRecord(redis, unversioned)).rejects.toThrow(
      `the record ${unversioned} holds payment v?`,
    );
  });
});
