/**
 * The engine's index of keys by state, with the toy ticket machine (no
 * payment code): kept in the write that moves a key, listed newest first a
 * page at a time, counted, cleaned of records Redis removed, and the keys
 * whose owed work is older than a threshold.
 */
import { afterEach, describe, expect, inject, it } from 'vitest';
import type { EffectContext } from '../../src/runtime/index.ts';
import { startTickets, type TicketsOptions } from '../support/engine-harness.ts';
import { randomPrefix, waitFor } from '../support/service-harness.ts';

describe('the state index on the engine', () => {
  const stops: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const stop of stops.splice(0).reverse()) await stop();
  });

  async function setUp(options: TicketsOptions = {}) {
    const prefix = randomPrefix();
    const started = await startTickets(inject('redisUrl'), prefix, options);
    stops.push(() => started.engine.close());
    return { prefix, ...started };
  }

  it('lists a key under the state its last write left it in, and moves it with the write', async () => {
    const { tickets, engine, prefix } = await setUp();
    await tickets.send('a', { type: 'TICK' });
    expect((await tickets.list({ state: 'open' })).entries.map((e) => e.key)).toEqual(['a']);

    await tickets.send('a', { type: 'HOLD' });
    expect((await tickets.list({ state: 'open' })).entries).toEqual([]);
    const held = await tickets.list({ state: 'held' });
    expect(held.entries.map((e) => [e.key, e.state])).toEqual([['a', 'held']]);
    expect(held.entries[0]?.updatedAt).toBeGreaterThan(Date.now() - 60_000);
    expect(await engine.redis.hget(`${prefix}:ticket:{a}`, 'i')).toBe('held');
    expect(await tickets.counts()).toEqual({
      open: 0,
      held: 1,
      shipping: 0,
      shipped: 0,
      closed: 0,
      unreadable: 0,
    });
  });

  it('lists newest write first, a page at a time, every key once', async () => {
    const { tickets, engine } = await setUp();
    const keys = Array.from({ length: 23 }, (_, i) => `k${String(i).padStart(2, '0')}`);
    for (const key of keys) await tickets.send(key, { type: 'TICK' });
    // A later write moves a key to the front. Entries are scored by Redis's
    // millisecond: the write must fall in a later one than the last key's.
    const [last] = (await tickets.list({ state: 'open', limit: 1 })).entries;
    await waitFor(async () => {
      const [seconds, micros] = await engine.redis.time();
      const now = Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
      return now > (last?.updatedAt ?? Infinity) ? true : undefined;
    });
    await tickets.send('k03', { type: 'TICK' });

    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const page = await tickets.list({ state: 'open', limit: 5, cursor });
      expect(page.entries.length).toBeLessThanOrEqual(5);
      seen.push(...page.entries.map((e) => e.key));
      const times = page.entries.map((e) => e.updatedAt);
      expect(times).toEqual([...times].sort((x, y) => y - x));
      cursor = page.cursor;
      pages++;
    } while (cursor !== null);
    expect(pages).toBe(5);
    expect(seen[0]).toBe('k03');
    expect(new Set(seen).size).toBe(23);
    expect([...seen].sort()).toEqual(keys);
    expect((await tickets.counts()).open).toBe(23);
  });

  it('refuses a cursor no listing returned', async () => {
    const { tickets } = await setUp();
    await expect(tickets.list({ state: 'open', cursor: 'bm90IGEgY3Vyc29y' })).rejects.toMatchObject(
      { code: 'invalid_cursor' },
    );
  });

  it('neither lists nor counts a key whose final record Redis removed', async () => {
    const { tickets, engine, prefix } = await setUp({ retentionMs: 300 });
    await tickets.send('gone', { type: 'CLOSE' });
    await tickets.send('kept', { type: 'TICK' });
    expect((await tickets.counts()).closed).toBe(1);
    expect(await engine.redis.zcard(`${prefix}:ticket:index-removals`)).toBe(1);

    await waitFor(
      async () => ((await engine.redis.exists(`${prefix}:ticket:{gone}`)) === 0 ? true : undefined),
      { what: 'the closed record to be removed' },
    );
    expect((await tickets.counts()).closed).toBe(0);
    expect((await tickets.list({ state: 'closed' })).entries).toEqual([]);
    expect(await engine.redis.zcard(`${prefix}:ticket:index:closed`)).toBe(0);
    expect(await engine.redis.zcard(`${prefix}:ticket:index-removals`)).toBe(0);
    expect((await tickets.list({ state: 'open' })).entries.map((e) => e.key)).toEqual(['kept']);
  });

  it('keeps a key that came back in the state its earlier life was removed from', async () => {
    const { tickets, engine, prefix } = await setUp({ retentionMs: 200 });
    await tickets.send('again', { type: 'CLOSE' });
    await waitFor(
      async () =>
        (await engine.redis.exists(`${prefix}:ticket:{again}`)) === 0 ? true : undefined,
      { what: 'the closed record to be removed' },
    );
    // A new life, closed again before the first life's removal entry was pruned.
    await tickets.send('again', { type: 'CLOSE' });
    expect((await tickets.list({ state: 'closed' })).entries.map((e) => e.key)).toEqual(['again']);
    expect((await tickets.counts()).closed).toBe(1);
  });

  it('has the worker take a removed key out of the index, the schedule and the outbox, keeping a new life', async () => {
    const { tickets, engine, prefix } = await setUp({ retentionMs: 200 });
    await tickets.send('gone', { type: 'CLOSE' });
    await tickets.send('back', { type: 'CLOSE' });
    for (const key of ['gone', 'back']) {
      await waitFor(
        async () =>
          (await engine.redis.exists(`${prefix}:ticket:{${key}}`)) === 0 ? true : undefined,
        { what: `the closed record of ${key} to be removed` },
      );
    }
    // A new life of one key, in another state, before any worker ran.
    await tickets.send('back', { type: 'TICK' });
    expect(await engine.redis.zcard(`${prefix}:ticket:index-removals`)).toBe(2);

    const worker = await engine.startWorker([tickets]);
    stops.push(() => worker.stop());
    // No listing, no count: the worker alone prunes.
    await waitFor(
      async () =>
        (await engine.redis.zcard(`${prefix}:ticket:index-removals`)) === 0 ? true : undefined,
      { what: 'the removal schedule to be empty' },
    );
    expect(await engine.redis.zrange(`${prefix}:ticket:index:closed`, 0, -1)).toEqual([]);
    expect(await engine.redis.zrange(`${prefix}:ticket:index:open`, 0, -1)).toEqual(['back']);
    expect(await engine.redis.zcard(`${prefix}:ticket:outbox`)).toBe(0);
    expect((await tickets.get('back'))?.value).toBe('open');
  });

  it('drops a key whose record was deleted by hand when a listing meets it', async () => {
    const { tickets, engine, prefix } = await setUp();
    await tickets.send('deleted', { type: 'TICK' });
    await tickets.send('here', { type: 'TICK' });
    await engine.redis.del(`${prefix}:ticket:{deleted}`);
    expect((await tickets.list({ state: 'open' })).entries.map((e) => e.key)).toEqual(['here']);
    expect(await engine.redis.zrange(`${prefix}:ticket:index:open`, 0, -1)).toEqual(['here']);
    expect((await tickets.counts()).open).toBe(1);
  });

  it('lists only the keys of one partition when asked', async () => {
    const { tickets } = await setUp();
    for (const key of ['x:1', 'y:1', 'x:2', 'y:2']) await tickets.send(key, { type: 'TICK' });
    const page = await tickets.list({ state: 'open', keyPrefix: 'x:' });
    expect(page.entries.map((e) => e.key)).toEqual(['x:2', 'x:1']);
  });

  it('names the keys whose owed work is older than a threshold, and recover finishes it', async () => {
    let reachable = false;
    const { tickets, engine } = await setUp({
      ship: (_params: never, _context: EffectContext) => {
        if (!reachable) return Promise.reject(new Error('carrier unreachable'));
        return Promise.resolve({ type: 'SHIPPED' as const });
      },
    });
    await expect(tickets.send('parcel', { type: 'SHIP' })).rejects.toThrow('carrier unreachable');
    await tickets.send('fine', { type: 'TICK' });
    const since = await engine.redis.zscore(`${engine.prefix}:ticket:outbox`, 'parcel');

    await waitFor(async () => ((await tickets.stuck(50)).length === 1 ? true : undefined), {
      what: 'the owed work to age',
    });
    expect(await tickets.stuck(50)).toEqual([
      { key: 'parcel', owedSince: Number(since), reason: 'owed' },
    ]);
    expect(await tickets.stuck(600_000)).toEqual([]);
    expect((await tickets.list({ state: 'shipping' })).entries.map((e) => e.key)).toEqual([
      'parcel',
    ]);

    reachable = true;
    await tickets.recover('parcel');
    expect(await tickets.stuck(0)).toEqual([]);
    expect((await tickets.get('parcel'))?.value).toBe('shipped');
    expect((await tickets.counts()).shipping).toBe(0);
    expect((await tickets.counts()).shipped).toBe(1);
  });
});
