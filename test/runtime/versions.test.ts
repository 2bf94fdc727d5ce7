/**
 * Every record names its machine and version; an older version loads
 * through `migrate`, a newer one or another machine's is refused.
 */
import { afterEach, describe, expect, inject, it } from 'vitest';
import { durableMachine, type DurableMachineConfig, type Engine } from '../../src/runtime/index.ts';
import { type LegacyRecord } from '../../src/runtime/testing.ts';
import { shipmentsKey, shipOnce, startTickets, storedTicket } from '../support/engine-harness.ts';
import { randomPrefix } from '../support/service-harness.ts';
import { ticketMachine, type TicketContext } from './ticket.machine.ts';

/** The ticket machine's config without effects, to vary per test. */
const ticketConfig: DurableMachineConfig<typeof ticketMachine> = {
  name: 'ticket',
  machine: ticketMachine,
  version: 1,
  input: (key, now, lifeId) => ({ key, now, lifeId }),
  finalStateRetentionMs: 60_000,
};

describe('machine versions on the engine', () => {
  const engines: Engine[] = [];
  afterEach(async () => {
    for (const engine of engines.splice(0)) await engine.close();
  });

  it('loads a snapshot of an older version through migrate and continues from it', async () => {
    const prefix = randomPrefix();
    const { engine, tickets } = await startTickets(inject('redisUrl'), prefix);
    engines.push(engine);
    await tickets.send('old', { type: 'TICK' });
    expect(await storedTicket(engine.redis, prefix, 'old')).toMatchObject({ n: 'ticket', m: '1' });

    const migrations: number[] = [];
    const ticketsV2 = durableMachine(engine, {
      name: 'ticket',
      machine: ticketMachine,
      version: 2,
      // Version 2 counts ticks from 100.
      migrate: (snapshot, fromVersion) => {
        migrations.push(fromVersion);
        const old = snapshot as { context: TicketContext };
        return { ...old, context: { ...old.context, ticks: old.context.ticks + 100 } };
      },
      input: (key, now, lifeId) => ({ key, now, lifeId }),
      finalStateRetentionMs: 60_000,
    });
    expect((await ticketsV2.get('old'))?.context.ticks).toBe(101);
    const { snapshot } = await ticketsV2.send('old', { type: 'TICK' });
    expect(snapshot.context.ticks).toBe(102);
    expect(await storedTicket(engine.redis, prefix, 'old')).toMatchObject({ m: '2' });
    expect(migrations).toEqual([1, 1]);

    // The older build does not read what the newer one wrote.
    await expect(tickets.send('old', { type: 'TICK' })).rejects.toMatchObject({
      name: 'RuntimeError',
      code: 'record_unreadable',
    });
  });

  it("refuses a record of another machine stored under the machine's keys", async () => {
    const prefix = randomPrefix();
    const { engine, tickets } = await startTickets(inject('redisUrl'), prefix);
    engines.push(engine);
    await tickets.send('named', { type: 'TICK' });
    await engine.redis.hset(`${prefix}:ticket:{named}`, 'n', 'other');
    await expect(tickets.get('named')).rejects.toMatchObject({
      name: 'RuntimeError',
      code: 'record_unreadable',
      message: 'key named holds a snapshot of machine "other"',
    });
  });

  it('refuses a snapshot of a newer version even when this build can migrate older ones', async () => {
    const prefix = randomPrefix();
    const { engine } = await startTickets(inject('redisUrl'), prefix);
    engines.push(engine);
    const v3 = durableMachine(engine, { ...ticketConfig, version: 3 });
    await v3.send('newer', { type: 'TICK' });

    const migrations: number[] = [];
    const v2 = durableMachine(engine, {
      ...ticketConfig,
      version: 2,
      migrate: (snapshot, fromVersion) => {
        migrations.push(fromVersion);
        return snapshot;
      },
    });
    await expect(v2.get('newer')).rejects.toThrow(
      'key newer holds a snapshot of ticket version 3; this build reads 2',
    );
    await expect(v2.send('newer', { type: 'TICK' })).rejects.toMatchObject({
      name: 'RuntimeError',
      code: 'record_unreadable',
    });
    expect(migrations).toEqual([]);
    expect(await storedTicket(engine.redis, prefix, 'newer')).toMatchObject({ m: '3', v: '1' });
  });

  it('refuses a snapshot of an older version when this build has no migrate', async () => {
    const prefix = randomPrefix();
    const { engine, tickets } = await startTickets(inject('redisUrl'), prefix);
    engines.push(engine);
    await tickets.send('older', { type: 'TICK' });

    const v2 = durableMachine(engine, { ...ticketConfig, version: 2 });
    await expect(v2.send('older', { type: 'TICK' })).rejects.toMatchObject({
      name: 'RuntimeError',
      code: 'record_unreadable',
      message: 'key older holds a snapshot of ticket version 1; this build reads 2',
    });
    expect(await storedTicket(engine.redis, prefix, 'older')).toMatchObject({ m: '1', v: '1' });
  });

  it('refuses a stored snapshot the machine cannot read, naming the key', async () => {
    const prefix = randomPrefix();
    const { engine, tickets } = await startTickets(inject('redisUrl'), prefix);
    engines.push(engine);
    await tickets.send('lost', { type: 'TICK' });
    const stored = JSON.parse(
      (await storedTicket(engine.redis, prefix, 'lost')).s ?? '{}',
    ) as object;
    await engine.redis.hset(
      `${prefix}:ticket:{lost}`,
      's',
      JSON.stringify({ ...stored, value: 'nowhere' }),
    );
    const error = await tickets.get('lost').catch((thrown: unknown) => thrown);
    expect(error).toMatchObject({
      name: 'RuntimeError',
      code: 'record_unreadable',
      message: 'stored state of key lost cannot be read',
    });
    // What the machine said about it is kept for the log.
    expect((error as Error).cause).toBeInstanceOf(Error);
    await expect(tickets.send('lost', { type: 'TICK' })).rejects.toMatchObject({
      name: 'RuntimeError',
      code: 'record_unreadable',
    });
  });

  it('reads a record of an earlier store format through adoptLegacy, runs what it owed, and rewrites it', async () => {
    const prefix = randomPrefix();
    const { engine, tickets } = await startTickets(inject('redisUrl'), prefix);
    engines.push(engine);
    await tickets.send('legacy', { type: 'TICK' });
    // What an earlier format wrote: no machine name, and an owed marker of its own.
    const record = `${prefix}:ticket:{legacy}`;
    const { l: lifeId, s: snapshot } = await storedTicket(engine.redis, prefix, 'legacy');
    await engine.redis.hdel(record, 'n', 'o', 't');
    await engine.redis.hset(record, 'o', 'ship-pending');

    await expect(tickets.get('legacy')).rejects.toMatchObject({
      name: 'RuntimeError',
      code: 'record_unreadable',
      message: 'key legacy holds a record of an earlier format',
    });

    const adopted: LegacyRecord[] = [];
    const current = durableMachine(engine, {
      ...ticketConfig,
      effects: { ship: shipOnce(engine.redis, prefix) },
      adoptLegacy: (legacy) => {
        adopted.push(legacy);
        return {
          owed:
            legacy.owed === 'ship-pending'
              ? [{ kind: 'effect', type: 'ship', params: { key: legacy.key } }]
              : [],
          timers: {},
        };
      },
    });
    expect((await current.get('legacy'))?.context.ticks).toBe(1);
    expect(adopted[0]).toEqual({
      key: 'legacy',
      lifeId,
      machineVersion: 1,
      snapshot: JSON.parse(snapshot ?? '') as unknown,
      owed: 'ship-pending',
    });

    // The owed shipment runs first, under the stored version's operation id.
    const { snapshot: after } = await current.send('legacy', { type: 'TICK' });
    expect(after.context.ticks).toBe(2);
    expect(await engine.redis.hgetall(shipmentsKey(prefix))).toEqual({
      [`legacy:${lifeId}:1:0`]: 'legacy',
    });
    const rewritten = await storedTicket(engine.redis, prefix, 'legacy');
    expect(rewritten).toMatchObject({ n: 'ticket', v: '2', l: lifeId });
    expect(rewritten.o).toBeUndefined();
    expect((await tickets.get('legacy'))?.context.ticks).toBe(2);
  });
});
