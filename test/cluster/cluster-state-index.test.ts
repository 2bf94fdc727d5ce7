/**
 * The engine's state index on a Redis Cluster (3 masters, 3 replicas), with
 * the toy ticket machine: kept per slot in the write that moves a key, and
 * read across every slot. Listing merges the slots newest first, a page at
 * a time, every key once; counts add up the slots; keys whose owed work is
 * older than a threshold come from every slot's outbox.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EffectContext, ListPage } from '../../src/runtime/index.ts';
import { besideKey, keySlot } from '../../src/runtime/redis/cluster.ts';
import { startTickets, type Tickets, type TicketsOptions } from '../support/engine-harness.ts';
import { startRedisCluster, type TestRedisCluster } from '../support/redis-cluster.ts';
import { randomPrefix, waitFor } from '../support/service-harness.ts';

/** Nothing listens there: the engine must not need it on a cluster. */
const NOWHERE = 'redis://127.0.0.1:1';

// Every read walks the 16384 slots (a few hundred ms on a loaded host).
describe('the state index on a Redis Cluster', { timeout: 120_000 }, () => {
  let cluster: TestRedisCluster;
  const stops: (() => Promise<void>)[] = [];

  beforeAll(async () => {
    cluster = await startRedisCluster();
  }, 60_000);
  afterAll(async () => {
    for (const stop of stops.splice(0).reverse()) await stop();
    await cluster.destroy();
  });

  async function setUp(options: TicketsOptions = {}, prefix = randomPrefix()) {
    const clusterNodes = cluster.seeds.split(',').map((seed) => {
      const [host = '', port = ''] = seed.split(':');
      return { host, port: Number(port) };
    });
    const started = await startTickets(NOWHERE, prefix, { ...options, clusterNodes });
    stops.push(() => started.engine.close());
    return { prefix, ...started };
  }

  /** Every page of a listing, `limit` at a time; `between` runs after each page. */
  async function allPages(
    tickets: Tickets,
    state: string,
    limit: number,
    between: (page: number) => Promise<void> = () => Promise.resolve(),
  ): Promise<{ keys: string[]; pages: ListPage[] }> {
    const pages: ListPage[] = [];
    let cursor: string | null = null;
    do {
      const page = await tickets.list({ state, limit, cursor });
      expect(page.entries.length).toBeLessThanOrEqual(limit);
      pages.push(page);
      cursor = page.cursor;
      await between(pages.length);
    } while (cursor !== null && pages.length < 1_000);
    return { keys: pages.flatMap((p) => p.entries.map((e) => e.key)), pages };
  }

  it('lists keys of many slots newest write first, one at a time, each once, and counts them', async () => {
    const { tickets } = await setUp();
    const keys = Array.from({ length: 12 }, (_, i) => `k${String(i).padStart(2, '0')}`);
    expect(new Set(keys.map((k) => keySlot(k))).size).toBe(keys.length);
    for (const key of keys) await tickets.send(key, { type: 'TICK' });
    // A later write moves a key to the front.
    await tickets.send('k03', { type: 'TICK' });
    await tickets.send('k07', { type: 'HOLD' });

    const { keys: listed, pages } = await allPages(tickets, 'open', 1);
    expect(listed[0]).toBe('k03');
    expect(listed).toHaveLength(11);
    expect(new Set(listed).size).toBe(11);
    expect([...listed].sort()).toEqual(keys.filter((k) => k !== 'k07'));
    const times = pages.flatMap((p) => p.entries.map((e) => e.updatedAt));
    expect(times).toEqual([...times].sort((x, y) => y - x));
    expect(pages.at(-1)?.cursor).toBeNull();

    const bigger = await allPages(tickets, 'open', 5);
    expect(bigger.keys).toEqual(listed);
    expect(bigger.pages).toHaveLength(3);
    expect((await tickets.list({ state: 'held' })).entries.map((e) => e.key)).toEqual(['k07']);
    expect(await tickets.counts()).toEqual({
      open: 11,
      held: 1,
      shipping: 0,
      shipped: 0,
      closed: 0,
      unreadable: 0,
    });
  });

  it('pages through keys of one write time in key order, across slots', async () => {
    const { tickets, engine, prefix } = await setUp();
    const keys = ['t-a', 't-b', 't-c', 't-d', 't-e', 't-f'];
    for (const key of keys) await tickets.send(key, { type: 'TICK' });
    // One time for all (a minute before): the order within it is the keys', descending.
    const at = Date.now() - 60_000;
    for (const key of keys) {
      const setKey = besideKey(`${prefix}:ticket:index:open`, `${prefix}:ticket:{${key}}`);
      expect(await engine.redis.zadd(setKey, 'XX', 'CH', at, key)).toBe(1);
    }
    const { keys: listed } = await allPages(tickets, 'open', 1);
    expect(listed).toEqual([...keys].reverse());
    const { keys: byTwo } = await allPages(tickets, 'open', 2);
    expect(byTwo).toEqual([...keys].reverse());
  });

  it('never repeats a key and lists every key left alone while writes go on between pages', async () => {
    const { tickets } = await setUp();
    const keys = Array.from({ length: 30 }, (_, i) => `c${i}`);
    for (const key of keys) await tickets.send(key, { type: 'TICK' });
    const rewritten = new Set<string>();
    const { keys: listed } = await allPages(tickets, 'open', 4, async (page) => {
      // Rewrite one key listed already, one not listed yet, and add a new one.
      const early = `c${29 - page}`;
      const late = `c${page}`;
      for (const key of [early, late, `new-${page}`]) {
        await tickets.send(key, { type: 'TICK' });
        rewritten.add(key);
      }
    });
    expect(new Set(listed).size).toBe(listed.length);
    for (const key of keys.filter((k) => !rewritten.has(k))) expect(listed).toContain(key);
  });

  it('refuses a cursor no listing returned', async () => {
    const { tickets } = await setUp();
    await expect(tickets.list({ state: 'open', cursor: 'bm90IGEgY3Vyc29y' })).rejects.toMatchObject(
      { code: 'invalid_cursor' },
    );
  });

  it('lists only the keys of one partition when asked', async () => {
    const { tickets, engine, prefix } = await setUp();
    const written = ['x:1', 'y:1', 'x:2', 'y:2', 'x:3'];
    for (const key of written) await tickets.send(key, { type: 'TICK' });
    // One millisecond apart each (two sends can fall within one), so the order is the writes'.
    const at = Date.now() - 60_000;
    for (const [i, key] of written.entries()) {
      const setKey = besideKey(`${prefix}:ticket:index:open`, `${prefix}:ticket:{${key}}`);
      expect(await engine.redis.zadd(setKey, 'XX', 'CH', at + i, key)).toBe(1);
    }
    const { keys } = await allPages(tickets, 'open', 1);
    expect(keys).toEqual(['x:3', 'y:2', 'x:2', 'y:1', 'x:1']);
    const page = await tickets.list({ state: 'open', keyPrefix: 'x:' });
    expect(page.entries.map((e) => e.key)).toEqual(['x:3', 'x:2', 'x:1']);
  });

  it('neither lists nor counts a key whose final record Redis removed, nor one deleted by hand', async () => {
    // Long enough for the reads before the removal on a loaded host.
    const { tickets, engine, prefix } = await setUp({ retentionMs: 4_000 });
    await tickets.send('gone', { type: 'CLOSE' });
    await tickets.send('deleted', { type: 'TICK' });
    await tickets.send('kept', { type: 'TICK' });
    expect(await tickets.counts()).toMatchObject({ closed: 1, open: 2 });
    const removals = besideKey(`${prefix}:ticket:index-removals`, `${prefix}:ticket:{gone}`);
    expect(await engine.redis.zcard(removals)).toBe(1);

    await waitFor(
      async () => ((await engine.redis.exists(`${prefix}:ticket:{gone}`)) === 0 ? true : undefined),
      { what: 'the closed record to be removed', intervalMs: 100 },
    );
    expect((await tickets.counts()).closed).toBe(0);
    expect(await engine.redis.zcard(removals)).toBe(0);
    expect((await tickets.list({ state: 'closed' })).entries).toEqual([]);

    await engine.redis.del(`${prefix}:ticket:{deleted}`);
    expect((await tickets.list({ state: 'open' })).entries.map((e) => e.key)).toEqual(['kept']);
    expect((await tickets.counts()).open).toBe(1);
  });

  it("has the worker take removed keys of many slots out of their slots' sets and schedules", async () => {
    const { tickets, engine, prefix } = await setUp({ retentionMs: 300 });
    const keys = Array.from({ length: 8 }, (_, i) => `removed-${i}`);
    for (const key of keys) await tickets.send(key, { type: 'CLOSE' });
    const beside = (base: string, key: string) =>
      besideKey(`${prefix}:ticket:${base}`, `${prefix}:ticket:{${key}}`);
    expect(new Set(keys.map((key) => keySlot(beside('index-removals', key)))).size).toBeGreaterThan(
      1,
    );
    const worker = await engine.startWorker([tickets]);
    stops.push(() => worker.stop());
    // No listing, no count: the worker alone prunes, slot by slot.
    await waitFor(
      async () => {
        for (const key of keys) {
          if ((await engine.redis.zcard(beside('index-removals', key))) > 0) return undefined;
          if ((await engine.redis.zcard(beside('index:closed', key))) > 0) return undefined;
        }
        return true;
      },
      {
        what: "every slot's removal schedule and closed set to be empty",
        intervalMs: 200,
        timeoutMs: 30_000,
      },
    );
    for (const key of keys) {
      expect(await engine.redis.exists(`${prefix}:ticket:{${key}}`)).toBe(0);
    }
  });

  it('names the keys of every slot whose owed work is older than a threshold, oldest first', async () => {
    let reachable = false;
    const { tickets } = await setUp({
      ship: (_params: never, _context: EffectContext) =>
        reachable
          ? Promise.resolve({ type: 'SHIPPED' as const })
          : Promise.reject(new Error('carrier unreachable')),
    });
    const parcels = ['parcel-1', 'parcel-2', 'parcel-3', 'parcel-4'];
    expect(new Set(parcels.map((k) => keySlot(k))).size).toBe(parcels.length);
    for (const key of parcels) {
      await expect(tickets.send(key, { type: 'SHIP' })).rejects.toThrow('carrier unreachable');
    }
    await tickets.send('fine', { type: 'TICK' });

    const stuck = await waitFor(
      async () => {
        const found = await tickets.stuck(50);
        return found.length === parcels.length ? found : undefined;
      },
      { what: 'the owed work to age' },
    );
    expect(stuck.map((e) => e.key)).toEqual(parcels);
    const since = stuck.map((e) => e.owedSince);
    expect(since).toEqual([...since].sort((x, y) => x - y));
    expect((await tickets.stuck(50, 2)).map((e) => e.key)).toEqual(parcels.slice(0, 2));
    expect(await tickets.stuck(600_000)).toEqual([]);

    reachable = true;
    for (const key of parcels) await tickets.recover(key);
    expect(await tickets.stuck(0)).toEqual([]);
    expect(await tickets.counts()).toMatchObject({ shipping: 0, shipped: 4, open: 1 });
  });

  it("keeps each partition's keys of every slot: counts, pages, stuck keys, removals and a backfill", async () => {
    let reachable = false;
    const byOwner = (key: string) => (key.includes('/') ? (key.split('/')[0] ?? null) : null);
    const options: TicketsOptions = {
      retentionMs: 4_000,
      ship: (_params: never, _context: EffectContext) =>
        reachable
          ? Promise.resolve({ type: 'SHIPPED' as const })
          : Promise.reject(new Error('carrier unreachable')),
    };
    // Written before the partition was kept: placed by the first read by partition.
    const { tickets: before, prefix } = await setUp(options);
    await before.send('x/early', { type: 'TICK' });
    const { tickets } = await setUp({ ...options, partition: byOwner }, prefix);
    const mine = Array.from({ length: 6 }, (_, i) => `x/k${i}`);
    expect(new Set(mine.map((k) => keySlot(k))).size).toBe(mine.length);
    for (const [i, key] of mine.entries()) {
      await tickets.send(key, { type: 'TICK' });
      await tickets.send(`y/k${i}`, { type: 'TICK' });
    }
    await tickets.send('x/gone', { type: 'CLOSE' });
    for (const key of ['x/p0', 'x/p1', 'y/p0']) {
      await expect(tickets.send(key, { type: 'SHIP' })).rejects.toThrow('carrier unreachable');
    }

    expect(await tickets.counts('x')).toEqual({
      open: 7,
      held: 0,
      shipping: 2,
      shipped: 0,
      closed: 1,
      unreadable: 0,
    });
    const pages: string[][] = [];
    let cursor: string | null = null;
    do {
      const page: ListPage = await tickets.list({
        state: 'open',
        limit: 3,
        cursor,
        partition: 'x',
      });
      pages.push(page.entries.map((e) => e.key));
      cursor = page.cursor;
    } while (cursor !== null && pages.length < 10);
    expect(pages.flat()).toEqual([...mine].reverse().concat('x/early'));
    expect(pages).toHaveLength(3);
    expect((await tickets.stuck(0, 10, 'y')).map((e) => e.key)).toEqual(['y/p0']);
    expect((await tickets.stuck(0, 10, 'x')).map((e) => e.key)).toEqual(['x/p0', 'x/p1']);

    await waitFor(async () => ((await tickets.get('x/gone')) === null ? true : undefined), {
      what: 'the closed record to be removed',
      intervalMs: 100,
    });
    reachable = true;
    await tickets.recover('x/p0');
    expect(await tickets.counts('x')).toEqual({
      open: 7,
      held: 0,
      shipping: 1,
      shipped: 1,
      closed: 0,
      unreadable: 0,
    });
    expect((await tickets.stuck(0, 10, 'x')).map((e) => e.key)).toEqual(['x/p1']);
    expect(await tickets.counts('y')).toMatchObject({ open: 6, shipping: 1 });
  });
});
