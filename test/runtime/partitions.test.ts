/**
 * A partition of the keys of a machine (the toy ticket machine, no payment
 * code): each partition's keys by state and its keys that owe actions are
 * kept in the write that moves a key, so counts, listings and stuck keys of
 * one partition read its own keys only; removals take keys out of them too;
 * and keys indexed before the partition was kept are put into it.
 */
import { afterEach, describe, expect, inject, it } from 'vitest';
import type { EffectContext } from '../../src/runtime/index.ts';
import { startTickets, type TicketsOptions } from '../support/engine-harness.ts';
import { randomPrefix, waitFor } from '../support/service-harness.ts';

/** `owner/id` keys are the owner's; the rest have no partition. */
const byOwner = (key: string) => {
  const cut = key.indexOf('/');
  return cut < 0 ? null : key.slice(0, cut);
};

const NONE = { open: 0, held: 0, shipping: 0, shipped: 0, closed: 0, unreadable: 0 };

describe('a partition of the keys of a machine', () => {
  const stops: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const stop of stops.splice(0).reverse()) await stop();
  });

  async function setUp(options: TicketsOptions = {}, prefix = randomPrefix()) {
    const started = await startTickets(inject('redisUrl'), prefix, {
      partition: byOwner,
      ...options,
    });
    stops.push(() => started.engine.close());
    return { prefix, ...started };
  }

  it("counts each partition's keys per state as writes move them", async () => {
    const { tickets, engine, prefix } = await setUp();
    for (const key of ['x/1', 'x/2', 'x/3', 'y/1', 'free'])
      await tickets.send(key, { type: 'TICK' });
    await tickets.send('x/2', { type: 'HOLD' });
    await tickets.send('y/1', { type: 'CLOSE' });

    expect(await tickets.counts('x')).toEqual({ ...NONE, open: 2, held: 1 });
    expect(await tickets.counts('y')).toEqual({ ...NONE, closed: 1 });
    expect(await tickets.counts('z')).toEqual(NONE);
    expect(await tickets.counts()).toEqual({ ...NONE, open: 3, held: 1, closed: 1 });
    expect(await engine.redis.zrange(`${prefix}:ticket:partition:x:index:open`, 0, -1)).toEqual([
      'x/1',
      'x/3',
    ]);
    // A key of no partition is in the machine's index only.
    expect(await engine.redis.keys(`${prefix}:ticket:partition:*free*`)).toEqual([]);
  });

  it("lists a partition's keys newest first, a page at a time, none of another's", async () => {
    const { tickets } = await setUp();
    const mine = Array.from({ length: 9 }, (_, i) => `x/k${i}`);
    for (const [i, key] of mine.entries()) {
      await tickets.send(key, { type: 'TICK' });
      await tickets.send(`y/k${i}`, { type: 'TICK' });
    }
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const page = await tickets.list({ state: 'open', limit: 4, cursor, partition: 'x' });
      expect(page.entries.length).toBeLessThanOrEqual(4);
      seen.push(...page.entries.map((e) => e.key));
      cursor = page.cursor;
      pages++;
    } while (cursor !== null);
    expect(pages).toBe(3);
    expect(seen).toEqual([...mine].reverse());
  });

  it('takes a removed record out of its partition, and a record deleted by hand at a listing', async () => {
    const { tickets, engine, prefix } = await setUp({ retentionMs: 300 });
    await tickets.send('x/gone', { type: 'CLOSE' });
    await tickets.send('x/deleted', { type: 'TICK' });
    await tickets.send('x/kept', { type: 'TICK' });
    expect(await tickets.counts('x')).toEqual({ ...NONE, open: 2, closed: 1 });

    await waitFor(
      async () =>
        (await engine.redis.exists(`${prefix}:ticket:{x/gone}`)) === 0 ? true : undefined,
      { what: 'the closed record to be removed' },
    );
    expect(await tickets.counts('x')).toEqual({ ...NONE, open: 2 });
    expect(await engine.redis.zcard(`${prefix}:ticket:partition:x:index:closed`)).toBe(0);

    await engine.redis.del(`${prefix}:ticket:{x/deleted}`);
    const page = await tickets.list({ state: 'open', partition: 'x' });
    expect(page.entries.map((e) => e.key)).toEqual(['x/kept']);
    expect(await tickets.counts('x')).toEqual({ ...NONE, open: 1 });
  });

  it("names a partition's keys whose owed work is old, however many of another's come first", async () => {
    let reachable = false;
    const { tickets } = await setUp({
      ship: (_params: never, _context: EffectContext) =>
        reachable
          ? Promise.resolve({ type: 'SHIPPED' as const })
          : Promise.reject(new Error('carrier unreachable')),
    });
    const ship = async (key: string) => {
      await expect(tickets.send(key, { type: 'SHIP' })).rejects.toThrow('carrier unreachable');
    };
    for (let i = 0; i < 5; i++) await ship(`x/p${i}`);
    for (let i = 0; i < 2; i++) await ship(`y/p${i}`);

    const ofY = await waitFor(
      async () => {
        const found = await tickets.stuck(0, 2, 'y');
        return found.length === 2 ? found : undefined;
      },
      { what: 'the owed work to age' },
    );
    expect(ofY.map((e) => e.key)).toEqual(['y/p0', 'y/p1']);
    expect((await tickets.stuck(0, 2)).map((e) => e.key)).toEqual(['x/p0', 'x/p1']);
    expect((await tickets.stuck(0, 100, 'x')).length).toBe(5);

    reachable = true;
    await tickets.recover('y/p0');
    expect((await tickets.stuck(0, 2, 'y')).map((e) => e.key)).toEqual(['y/p1']);
    expect(await tickets.counts('y')).toEqual({ ...NONE, shipping: 1, shipped: 1 });
  });

  it('puts keys indexed before the partition was kept into it, once, and again when asked', async () => {
    const prefix = randomPrefix();
    // A process that keeps no partition (an earlier release) writes first.
    const { tickets: before } = await setUp(
      {
        partition: undefined,
        ship: () => Promise.reject(new Error('carrier unreachable')),
      },
      prefix,
    );
    for (const key of ['x/1', 'x/2', 'y/1']) await before.send(key, { type: 'TICK' });
    await before.send('x/2', { type: 'HOLD' });
    await expect(before.send('x/3', { type: 'SHIP' })).rejects.toThrow('carrier unreachable');

    const { tickets, engine } = await setUp({}, prefix);
    expect(await engine.redis.exists(`${prefix}:ticket:partition:built`)).toBe(0);
    // The first read by partition places them.
    expect(await tickets.counts('x')).toEqual({ ...NONE, open: 1, held: 1, shipping: 1 });
    expect(await engine.redis.exists(`${prefix}:ticket:partition:built`)).toBe(1);
    expect(await tickets.counts('y')).toEqual({ ...NONE, open: 1 });
    expect(
      (await tickets.list({ state: 'open', partition: 'x' })).entries.map((e) => e.key),
    ).toEqual(['x/1']);
    expect((await tickets.stuck(0, 10, 'x')).map((e) => e.key)).toEqual(['x/3']);

    // The earlier process writes on: the partition misses it until placed again.
    await before.send('x/1', { type: 'HOLD' });
    await before.send('x/4', { type: 'TICK' });
    expect(await tickets.backfillPartitions()).toBe(5);
    expect(await tickets.counts('x')).toEqual({ ...NONE, open: 1, held: 2, shipping: 1 });
    expect(
      (await tickets.list({ state: 'held', partition: 'x' })).entries.map((e) => e.key),
    ).toEqual(['x/1', 'x/2']);
  });

  it('refuses a read by partition of a machine without one, and a partition name with a brace', async () => {
    const { tickets } = await setUp({ partition: undefined });
    await expect(tickets.counts('x')).rejects.toThrow('partition');
    const { tickets: braced } = await setUp({ partition: () => '{x}' });
    await expect(braced.send('k', { type: 'TICK' })).rejects.toThrow('partition');
    expect(await braced.get('k')).toBeNull();
  });
});
