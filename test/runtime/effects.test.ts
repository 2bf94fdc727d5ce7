/**
 * Effects, final states and concurrent writers on the engine, with the toy
 * ticket machine (no payment code) against the shared test Redis.
 */
import { afterEach, describe, expect, inject, it } from 'vitest';
import type { Engine, EffectContext } from '../../src/runtime/index.ts';
import {
  redisNow,
  shipmentsKey,
  startTickets,
  storedTicket,
  type TicketsOptions,
} from '../support/engine-harness.ts';
import { randomPrefix, waitFor } from '../support/service-harness.ts';
import type { ShipParams } from './ticket.machine.ts';

describe('effects, final states and racing writers on the engine', () => {
  const redisUrl = inject('redisUrl');
  const engines: Engine[] = [];
  const stops: (() => Promise<void>)[] = [];

  async function start(prefix: string, options: TicketsOptions = {}) {
    const started = await startTickets(redisUrl, prefix, options);
    engines.push(started.engine);
    return started;
  }

  afterEach(async () => {
    for (const stop of stops.splice(0)) await stop();
    for (const engine of engines.splice(0)) await engine.close();
  });

  /** A ship effect that fails on its first call and records every operation id it is given. */
  function failingOnce(prefix: string) {
    const operations: string[] = [];
    const on: { engine?: Engine } = {};
    const ship = async (params: ShipParams, context: EffectContext) => {
      operations.push(context.operationId);
      if (operations.length === 1 || on.engine === undefined)
        throw new Error('carrier unreachable');
      await on.engine.redis.hsetnx(shipmentsKey(prefix), context.operationId, params.key);
      return { type: 'SHIPPED' as const };
    };
    return { ship, operations, on };
  }

  it('builds an event from Redis time when it is sent as a function of the time', async () => {
    const prefix = randomPrefix();
    const { engine, tickets } = await start(prefix);
    const before = await redisNow(engine.redis);
    const { snapshot } = await tickets.send('stamped', (now) => ({ type: 'REMIND', at: now }));
    expect(snapshot.context.reminders).toBe(1);
    expect(snapshot.context.remindedAt).toBeGreaterThanOrEqual(before);
    expect(snapshot.context.remindedAt).toBeLessThanOrEqual(await redisNow(engine.redis));
  });

  it('runs an effect after the write, applies its feedback and returns what the machine emitted', async () => {
    const prefix = randomPrefix();
    const { engine, tickets } = await start(prefix);
    const { snapshot, emitted } = await tickets.send('box', { type: 'SHIP' });
    expect(snapshot.value).toBe('shipped');
    expect(snapshot.context.shipments).toBe(1);
    expect(emitted).toEqual([{ type: 'REPLY', status: 'shipped', ticks: 0 }]);
    const life = (await storedTicket(engine.redis, prefix, 'box')).l ?? '';
    // Version 1 wrote `shipping` and owed the effect: its first action.
    expect(await engine.redis.hgetall(shipmentsKey(prefix))).toEqual({
      [`box:${life}:1:0`]: 'box',
    });
    expect(await engine.redis.zcard(`${prefix}:ticket:outbox`)).toBe(0);
    expect((await storedTicket(engine.redis, prefix, 'box')).o).toBeUndefined();
  });

  it("gives an effect Redis's time through its context", async () => {
    const prefix = randomPrefix();
    const times: number[] = [];
    const { engine, tickets } = await start(prefix, {
      ship: (_params, context) => {
        times.push(context.now());
        return Promise.resolve({ type: 'SHIPPED' });
      },
    });
    const before = await redisNow(engine.redis);
    await tickets.send('timed', { type: 'SHIP' });
    expect(times).toHaveLength(1);
    expect(times[0]).toBeGreaterThanOrEqual(before);
    expect(times[0]).toBeLessThanOrEqual(await redisNow(engine.redis));
  });

  it('runs an effect that failed again on the next access, with the same operation id', async () => {
    const prefix = randomPrefix();
    const { ship, operations, on } = failingOnce(prefix);
    const { engine, tickets } = await start(prefix, { ship });
    on.engine = engine;

    await expect(tickets.send('parcel', { type: 'SHIP' })).rejects.toThrow('carrier unreachable');
    // The intent and what it owes are on record.
    expect((await tickets.get('parcel'))?.value).toBe('shipping');
    expect(JSON.parse((await storedTicket(engine.redis, prefix, 'parcel')).o ?? '')).toEqual([
      { kind: 'effect', type: 'ship', params: { key: 'parcel' } },
    ]);
    expect(await engine.redis.zscore(`${prefix}:ticket:outbox`, 'parcel')).not.toBeNull();
    const outbox = await tickets.outboxState();
    expect(outbox.depth).toBe(1);
    expect(outbox.oldestAt).toBeGreaterThan((await redisNow(engine.redis)) - 60_000);

    const { snapshot, emitted } = await tickets.send('parcel', { type: 'TICK' });
    expect(snapshot.value).toBe('shipped');
    // The retried effect's reply was for the earlier caller.
    expect(emitted).toEqual([]);
    expect(operations).toHaveLength(2);
    expect(operations[1]).toBe(operations[0]);
    expect(await engine.redis.hlen(shipmentsKey(prefix))).toBe(1);
    expect(await engine.redis.zscore(`${prefix}:ticket:outbox`, 'parcel')).toBeNull();
    expect(await tickets.outboxState()).toEqual({ depth: 0, oldestAt: null });
  });

  it('skips an owed effect this build has no handler for, and clears it', async () => {
    const prefix = randomPrefix();
    const { engine, tickets } = await start(prefix);
    await tickets.send('retired', { type: 'TICK' });
    // Owed by a build that had a `wrap` effect, which this one dropped.
    const record = `${prefix}:ticket:{retired}`;
    await engine.redis.hset(
      record,
      'o',
      JSON.stringify([{ kind: 'effect', type: 'wrap', params: null }]),
    );
    await engine.redis.zadd(`${prefix}:ticket:outbox`, 0, 'retired');

    const { snapshot } = await tickets.send('retired', { type: 'TICK' });
    expect(snapshot.context.ticks).toBe(2);
    expect((await storedTicket(engine.redis, prefix, 'retired')).o).toBeUndefined();
    expect(await engine.redis.zcard(`${prefix}:ticket:outbox`)).toBe(0);
  });

  it('runs an effect that failed again from the recovery sweep when nobody touches the key', async () => {
    const prefix = randomPrefix();
    const { ship, operations, on } = failingOnce(prefix);
    const { engine, tickets } = await start(prefix, { ship });
    on.engine = engine;
    const worker = await engine.startWorker([tickets], {
      recoveryIntervalMs: 60_000,
      recoveryGraceMs: 0,
    });
    stops.push(() => worker.stop());

    await expect(tickets.send('crate', { type: 'SHIP' })).rejects.toThrow('carrier unreachable');
    expect(await worker.sweep()).toBe(1);
    expect((await tickets.get('crate'))?.value).toBe('shipped');
    expect(operations).toEqual([operations[0], operations[0]]);
    expect(await engine.redis.zcard(`${prefix}:ticket:outbox`)).toBe(0);
    expect(await worker.sweep()).toBe(0);
  });

  it('keeps the outbox entries of records it cannot read, reports each once, and recovers the keys behind more than a batch of them', async () => {
    const prefix = randomPrefix();
    const { ship, on } = failingOnce(prefix);
    const { engine, tickets } = await start(prefix, { ship });
    on.engine = engine;
    const errors: string[] = [];
    const worker = await engine.startWorker([tickets], {
      recoveryIntervalMs: 60_000,
      recoveryGraceMs: 0,
      onError: (_error, where) => errors.push(where?.key ?? '?'),
    });
    stops.push(() => worker.stop());
    const outbox = `${prefix}:ticket:outbox`;
    // More unreadable records than a pass's batch (100), all older than the key that owes.
    const bad = Array.from({ length: 120 }, (_, i) => `bad-${i}`);
    for (const key of bad) {
      await tickets.send(key, { type: 'TICK' });
      await engine.redis.hset(`${prefix}:ticket:{${key}}`, 'o', '[]');
      await engine.redis.hdel(`${prefix}:ticket:{${key}}`, 's');
      await engine.redis.zadd(outbox, 1, key);
    }
    await expect(tickets.send('crate', { type: 'SHIP' })).rejects.toThrow('carrier unreachable');

    await worker.sweep();
    await worker.sweep();
    await worker.sweep();

    expect((await tickets.get('crate'))?.value).toBe('shipped');
    expect(await engine.redis.zrange(outbox, 0, -1)).toEqual([...bad].sort());
    expect((await tickets.counts()).unreadable).toBe(120);
    expect([...errors].sort()).toEqual([...bad].sort());
    const stuck = await tickets.stuck(0, 200);
    expect(stuck.filter((e) => e.reason === 'unreadable')).toHaveLength(120);
  });

  it('drops an outbox entry whose record is gone, so the sweep does not visit it again', async () => {
    const prefix = randomPrefix();
    const { engine, tickets } = await start(prefix);
    const worker = await engine.startWorker([tickets], {
      recoveryIntervalMs: 60_000,
      recoveryGraceMs: 0,
    });
    stops.push(() => worker.stop());
    // A record removed (its retention ran out) while still in the outbox.
    await engine.redis.zadd(`${prefix}:ticket:outbox`, 0, 'gone');
    expect(await worker.sweep()).toBe(1);
    expect(await engine.redis.zcard(`${prefix}:ticket:outbox`)).toBe(0);
    expect(await tickets.get('gone')).toBeNull();
  });

  it('keeps a final state for its retention on Redis clock, then forgets the key', async () => {
    const prefix = randomPrefix();
    const retentionMs = 1_500;
    const { engine, tickets } = await start(prefix, { retentionMs });
    await tickets.send('done', { type: 'TICK' });
    const firstLife = (await storedTicket(engine.redis, prefix, 'done')).l;
    const { snapshot } = await tickets.send('done', { type: 'CLOSE' });
    expect(snapshot.status).toBe('done');
    const ttl = await engine.redis.pttl(`${prefix}:ticket:{done}`);
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(retentionMs);

    // Events to a final actor change nothing, nor move its deadline.
    expect((await tickets.send('done', { type: 'TICK' })).snapshot.value).toBe('closed');
    expect(await engine.redis.pttl(`${prefix}:ticket:{done}`)).toBeLessThanOrEqual(ttl);

    await waitFor(async () => ((await tickets.get('done')) === null ? true : undefined), {
      what: 'the closed ticket to be removed',
    });
    const reborn = await tickets.send('done', { type: 'TICK' });
    expect(reborn.snapshot.context.ticks).toBe(1);
    expect((await storedTicket(engine.redis, prefix, 'done')).l).not.toBe(firstLife);
  });

  it('keeps a final state for the retention the machine reads off its final snapshot', async () => {
    const prefix = randomPrefix();
    const retentions: number[] = [];
    const { engine, tickets } = await start(prefix, {
      retentionMs: (snapshot) => {
        retentions.push(snapshot.context.ticks);
        return 10_000 + 10_000 * snapshot.context.ticks;
      },
    });
    await tickets.send('kept', { type: 'TICK' });
    await tickets.send('kept', { type: 'TICK' });
    expect(await engine.redis.pttl(`${prefix}:ticket:{kept}`)).toBe(-1);
    await tickets.send('kept', { type: 'CLOSE' });
    const ttl = await engine.redis.pttl(`${prefix}:ticket:{kept}`);
    expect(ttl).toBeGreaterThan(20_000);
    expect(ttl).toBeLessThanOrEqual(30_000);
    expect(retentions).toEqual([2]);
  });

  it('applies every event once when two engines race on one key', async () => {
    const prefix = randomPrefix();
    const one = await start(prefix);
    const two = await start(prefix);
    const perEngine = 25;
    const sends = [one, two].flatMap(({ tickets }) =>
      Array.from({ length: perEngine }, () => tickets.send('shared', { type: 'TICK' })),
    );
    const results = await Promise.all(sends);
    const seen = results.map((r) => r.emitted[0]?.ticks).sort((a, b) => (a ?? 0) - (b ?? 0));
    expect(seen).toEqual(Array.from({ length: 2 * perEngine }, (_, i) => i + 1));
    expect((await one.tickets.get('shared'))?.context.ticks).toBe(2 * perEngine);
    expect((await storedTicket(one.engine.redis, prefix, 'shared')).v).toBe(String(2 * perEngine));
  });
});
