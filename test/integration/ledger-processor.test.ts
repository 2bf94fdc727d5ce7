/**
 * The built-in processor on the account ledger, on real Redis: charges,
 * authorizations held apart from available funds, captures that release the
 * rest, voids, refunds; balances per (account, currency), never negative;
 * every call idempotent by its operation id; a movement first asked for
 * longer ago than the account remembers ids is refused, never applied.
 */
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { Ledger, type LedgerSettings } from '../../src/accounts/ledger.ts';
import { LedgerStateError, MovementTooOldError } from '../../src/errors.ts';
import { createKeys } from '../../src/payments/keys.ts';
import { LedgerProcessor } from '../../src/processor/ledger-processor.ts';
import { keySlot } from '../../src/runtime/redis/cluster.ts';
import { RedisClock } from '../../src/runtime/redis/redis-clock.ts';
import { StoreIdentity } from '../../src/runtime/redis/store-identity.ts';
import { randomPrefix } from '../support/service-harness.ts';

const INITIAL = 10_000;
const RETENTION_MS = 60_000;

describe('the ledger processor', () => {
  let redis: Redis;
  let prefix: string;
  let ledger: Ledger;
  let processor: LedgerProcessor;
  let n = 0;

  const now = async () => {
    const [seconds, micros] = await redis.time();
    return Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
  };
  const op = (name: string) => `${name}:${++n}`;
  const balances = async (accountId: string) => (await ledger.view(accountId)).balances;

  async function open(settings: Partial<LedgerSettings> = {}) {
    prefix = randomPrefix();
    const keys = createKeys(prefix);
    const identity = new StoreIdentity(redis, keys.store, new RedisClock());
    await identity.open();
    ledger = new Ledger(redis, keys, INITIAL, identity, undefined, {
      ledgerLimit: 1_000,
      operationRetentionMs: RETENTION_MS,
      ...settings,
    });
    processor = new LedgerProcessor(ledger);
  }

  beforeAll(async () => {
    redis = new Redis(inject('redisUrl'));
    await open();
  });
  afterAll(async () => {
    await redis.quit();
  });

  const base = async (accountId: string, currency = 'USD') => ({
    operationId: op('charge'),
    accountId,
    currency,
    token: `tok-${accountId}`,
    at: await now(),
  });

  it('charges once per operation id: a repeat answers the first outcome and moves nothing', async () => {
    const request = { ...(await base('a1')), amountCents: 2_500, capture: true };
    expect(await processor.charge(request)).toEqual({ status: 'succeeded' });
    expect(await processor.charge(request)).toEqual({ status: 'succeeded' });
    expect(await balances('a1')).toEqual({ USD: { availableCents: 7_500, heldCents: 0 } });
    const { ledger: entries } = await ledger.view('a1');
    expect(entries.map((e) => [e.kind, e.amountCents, e.balanceCents])).toEqual([
      ['withdrawal', 2_500, 7_500],
    ]);
  });

  it('declines a charge or an authorization beyond the available funds, and keeps declining its id', async () => {
    const charge = { ...(await base('a2')), amountCents: INITIAL + 1, capture: true };
    expect(await processor.charge(charge)).toEqual({
      status: 'declined',
      reason: 'insufficient_funds',
    });
    const hold = { ...(await base('a2')), amountCents: INITIAL + 1, capture: false };
    expect((await processor.charge(hold)).status).toBe('declined');
    // Funds arrive; the declined ids still answer their first outcome.
    await processor.refund({ ...(await base('a2')), operationId: op('refund'), amountCents: 5 });
    expect((await processor.charge(charge)).status).toBe('declined');
    expect(await balances('a2')).toEqual({ USD: { availableCents: INITIAL + 5, heldCents: 0 } });
  });

  it('holds an authorization apart from available funds; a partial capture releases the rest', async () => {
    const hold = { ...(await base('a3')), amountCents: 4_000, capture: false };
    expect(await processor.charge(hold)).toEqual({ status: 'requires_capture' });
    expect(await balances('a3')).toEqual({ USD: { availableCents: 6_000, heldCents: 4_000 } });
    // Held funds cannot be charged again.
    const more = { ...(await base('a3')), amountCents: 6_001, capture: true };
    expect((await processor.charge(more)).status).toBe('declined');

    const capture = {
      ...(await base('a3')),
      operationId: op('capture'),
      authorizedCents: 4_000,
      amountCents: 1_500,
    };
    expect(await processor.capture(capture)).toEqual({ status: 'succeeded' });
    expect(await processor.capture(capture)).toEqual({ status: 'succeeded' });
    expect(await balances('a3')).toEqual({ USD: { availableCents: 8_500, heldCents: 0 } });
    const last = (await ledger.view('a3')).ledger.at(-1);
    expect(last).toMatchObject({ kind: 'capture', amountCents: 1_500, releasedCents: 2_500 });
  });

  it('voids an authorization: the hold goes back to available funds, once', async () => {
    const hold = { ...(await base('a4')), amountCents: 3_000, capture: false };
    await processor.charge(hold);
    const release = { ...(await base('a4')), operationId: op('void'), amountCents: 3_000 };
    expect(await processor.void(release)).toEqual({ status: 'canceled' });
    expect(await processor.void(release)).toEqual({ status: 'canceled' });
    expect(await balances('a4')).toEqual({ USD: { availableCents: INITIAL, heldCents: 0 } });
  });

  it('never takes held funds below zero: a capture or void of more than is held moves nothing', async () => {
    await processor.charge({ ...(await base('a5')), amountCents: 1_000, capture: false });
    const tooMuch = { ...(await base('a5')), operationId: op('void'), amountCents: 1_001 };
    await expect(processor.void(tooMuch)).rejects.toBeInstanceOf(LedgerStateError);
    const capture = {
      ...(await base('a5')),
      operationId: op('capture'),
      authorizedCents: 2_000,
      amountCents: 2_000,
    };
    await expect(processor.capture(capture)).rejects.toBeInstanceOf(LedgerStateError);
    expect(await balances('a5')).toEqual({ USD: { availableCents: 9_000, heldCents: 1_000 } });
    expect((await ledger.view('a5')).ledger).toHaveLength(1);
  });

  it('keeps a balance per currency, each created at the initial balance in its minor unit', async () => {
    await processor.charge({ ...(await base('a6', 'JPY')), amountCents: 700, capture: true });
    await processor.charge({ ...(await base('a6', 'KWD')), amountCents: 1_234, capture: false });
    expect(await balances('a6')).toEqual({
      JPY: { availableCents: 9_300, heldCents: 0 },
      KWD: { availableCents: 8_766, heldCents: 1_234 },
      USD: { availableCents: INITIAL, heldCents: 0 },
    });
    const eur = await ledger.view('a6', 'KWD');
    expect(eur.balanceCents).toBe(8_766);
    expect(eur.balances).toEqual({ KWD: { availableCents: 8_766, heldCents: 1_234 } });
    expect(eur.ledger.map((e) => [e.currency, e.kind])).toEqual([['KWD', 'hold']]);
    expect((await ledger.view('a6')).balanceCents).toBe(INITIAL);
  });

  it('refunds in parts, each refund id once', async () => {
    await processor.charge({ ...(await base('a7')), amountCents: 3_000, capture: true });
    const first = { ...(await base('a7')), operationId: op('refund'), amountCents: 1_000 };
    const second = { ...(await base('a7')), operationId: op('refund'), amountCents: 500 };
    for (const refund of [first, second, first, second]) {
      expect(await processor.refund(refund)).toEqual({ status: 'succeeded' });
    }
    expect(await balances('a7')).toEqual({ USD: { availableCents: 8_500, heldCents: 0 } });
  });

  it('refuses an unknown movement first asked for longer ago than the retention, and records nothing', async () => {
    const old = (await now()) - RETENTION_MS - 1_000;
    const charge = { ...(await base('a8')), amountCents: 100, capture: true, at: old };
    await expect(processor.charge(charge)).rejects.toBeInstanceOf(MovementTooOldError);
    const refund = { ...(await base('a8')), operationId: op('refund'), amountCents: 100, at: old };
    await expect(processor.refund(refund)).rejects.toThrow(/no longer remembers/);
    expect(await balances('a8')).toEqual({ USD: { availableCents: INITIAL, heldCents: 0 } });
    expect((await ledger.view('a8')).ledger).toEqual([]);
    expect(await redis.hlen(`${prefix}:{account:a8}:ops`)).toBe(0);
  });

  it('answers a known id its first outcome however long ago it was first asked for', async () => {
    const charge = { ...(await base('a9')), amountCents: 100, capture: true };
    await processor.charge(charge);
    const retried = { ...charge, at: charge.at - RETENTION_MS - 1_000 };
    expect(await processor.charge(retried)).toEqual({ status: 'succeeded' });
    expect(await balances('a9')).toEqual({ USD: { availableCents: 9_900, heldCents: 0 } });
  });

  it("keeps an account's keys in one cluster slot", async () => {
    await processor.charge({ ...(await base('a10', 'EUR')), amountCents: 1, capture: false });
    const keys: string[] = [];
    let cursor = '0';
    do {
      const [next, found] = await redis.scan(cursor, 'MATCH', `${prefix}:{account:a10}*`);
      cursor = next;
      keys.push(...found);
    } while (cursor !== '0');
    expect(keys.length).toBeGreaterThanOrEqual(4);
    expect(new Set(keys.map(keySlot)).size).toBe(1);
  });

  it('reads a balance stored before currencies as the default currency, and moves it once', async () => {
    await open({ defaultCurrency: 'EUR' });
    await redis.hset(`${prefix}:{account:old}:balance`, 'balance', '4200');
    expect(await balances('old')).toEqual({ EUR: { availableCents: 4_200, heldCents: 0 } });
    await processor.charge({ ...(await base('old', 'EUR')), amountCents: 200, capture: true });
    await processor.charge({ ...(await base('old', 'USD')), amountCents: 1, capture: true });
    expect(await balances('old')).toEqual({
      EUR: { availableCents: 4_000, heldCents: 0 },
      USD: { availableCents: INITIAL - 1, heldCents: 0 },
    });
    expect(await redis.hget(`${prefix}:{account:old}:balance`, 'balance')).toBeNull();
    await open();
  });
});
