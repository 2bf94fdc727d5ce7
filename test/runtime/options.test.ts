/**
 * What a machine may ask of the engine beyond the defaults, with the toy
 * ticket machine (no payment code): its life id in the input, timer events
 * stamped with Redis's time of delivery, events only for keys that have a
 * record, and a key layout of its own.
 */
import { afterEach, describe, expect, inject, it } from 'vitest';
import { durableMachine } from '../../src/runtime/index.ts';
import {
  redisNow,
  startTickets,
  storedTicket,
  storedTimers,
  type TicketsOptions,
} from '../support/engine-harness.ts';
import { randomPrefix, waitFor } from '../support/service-harness.ts';
import { ticketMachine } from './ticket.machine.ts';

describe('machine options on the engine', () => {
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

  it("gives the machine its record's life id in the input", async () => {
    const { engine, tickets, prefix } = await setUp();
    const { snapshot } = await tickets.send('alive', { type: 'TICK' });
    expect(snapshot.context.lifeId).toMatch(/^[0-9a-f]{16}$/);
    expect(snapshot.context.lifeId).toBe((await storedTicket(engine.redis, prefix, 'alive')).l);
  });

  it("stamps a delivered timer's event with Redis's time of delivery when asked", async () => {
    const { engine, tickets, prefix } = await setUp({
      timerEvent: (event, now) => (event.type === 'REMIND' ? { ...event, at: now } : event),
    });
    const worker = await engine.startWorker([tickets]);
    stops.push(() => worker.stop());
    await tickets.send('stamped', { type: 'REMIND_IN', ms: 200 });
    const dueAt = (await storedTimers(engine.redis, prefix, 'stamped')).remind?.dueAt ?? 0;
    const reminded = await waitFor(
      async () => {
        const snapshot = await tickets.get('stamped');
        return snapshot?.context.reminders === 1 ? snapshot : undefined;
      },
      { what: 'the reminder' },
    );
    expect(reminded.context.remindedAt).toBeGreaterThanOrEqual(dueAt);
    expect(reminded.context.remindedAt).toBeLessThanOrEqual(await redisNow(engine.redis));
  });

  it('sends to a key only if it has a record when asked, writing nothing otherwise', async () => {
    const { engine, tickets, prefix } = await setUp();
    expect(await tickets.sendIfExists('nobody', { type: 'TICK' })).toBeNull();
    expect(await storedTicket(engine.redis, prefix, 'nobody')).toEqual({});

    await tickets.send('somebody', { type: 'TICK' });
    const sent = await tickets.sendIfExists('somebody', { type: 'TICK' });
    expect(sent?.snapshot.context.ticks).toBe(2);
    expect(sent?.emitted).toEqual([{ type: 'REPLY', status: 'open', ticks: 2 }]);
  });

  it('refuses a machine name that is not letters, digits and dashes', async () => {
    const { engine } = await setUp();
    const named = (name: string) => () =>
      durableMachine(engine, {
        name,
        machine: ticketMachine,
        version: 1,
        input: (key, now, lifeId) => ({ key, now, lifeId }),
        finalStateRetentionMs: 60_000,
      });
    for (const name of ['-ticket', 'ticket!', 'two words', '']) {
      expect(named(name)).toThrow(`machine name "${name}" must be letters, digits and '-'`);
    }
    expect(named('Ticket-2')().name).toBe('Ticket-2');
  });

  it('keeps records under a key layout of its own', async () => {
    const { engine, tickets, prefix } = await setUp({
      keys: (p) => ({
        record: (key) => `${p}:{${key}}:state`,
        lock: (key) => `${p}:{${key}}:lock`,
        outbox: `${p}:outbox`,
        index: (state) => `${p}:index:${state}`,
        removals: `${p}:index-removals`,
        timers: `${p}:timer-dues`,
        unreadable: `${p}:unreadable`,
      }),
    });
    await tickets.send('placed', { type: 'TICK' });
    expect(await engine.redis.hget(`${prefix}:{placed}:state`, 'n')).toBe('ticket');
    expect(await storedTicket(engine.redis, prefix, 'placed')).toEqual({});
    expect((await tickets.get('placed'))?.context.ticks).toBe(1);
  });
});
