/**
 * An event that changes nothing (the toy ticket's PING only replies) is
 * answered from one read without the key's lock; anything else, or a record
 * that owes actions, waits for the lock.
 */
import { afterEach, describe, expect, inject, it } from 'vitest';
import { durableMachine, type Engine } from '../../src/runtime/index.ts';
import { startTickets, storedTicket } from '../support/engine-harness.ts';
import { randomPrefix, waitFor } from '../support/service-harness.ts';
import { panelMachine } from './panel.machine.ts';

describe('answers without the lock on the engine', () => {
  const engines: Engine[] = [];
  afterEach(async () => {
    for (const engine of engines.splice(0)) await engine.close();
  });

  async function setUp(ship?: () => Promise<undefined>) {
    const prefix = randomPrefix();
    const started = await startTickets(inject('redisUrl'), prefix, {
      lockWaitMs: 200,
      ...(ship === undefined ? {} : { ship }),
    });
    engines.push(started.engine);
    /** Another process holds the key's lock. */
    const holdLock = (key: string) =>
      started.engine.redis.set(`${prefix}:ticket:{${key}}:lock`, 'elsewhere', 'PX', 10_000);
    return { ...started, holdLock };
  }

  it('answers an event that changes nothing while another process holds the lock', async () => {
    const { tickets, holdLock } = await setUp();
    await tickets.send('quiet', { type: 'TICK' });
    await holdLock('quiet');

    const { snapshot, emitted } = await tickets.send('quiet', { type: 'PING' });
    expect(emitted).toEqual([{ type: 'REPLY', status: 'open', ticks: 1 }]);
    expect(snapshot.context.ticks).toBe(1);
    // An event that changes something waits for the lock.
    await expect(tickets.send('quiet', { type: 'TICK' })).rejects.toMatchObject({
      name: 'RuntimeError',
      code: 'busy',
    });
  });

  it('takes the lock when another process moved the key on and the event changes it there', async () => {
    const prefix = randomPrefix();
    const a = await startTickets(inject('redisUrl'), prefix);
    const b = await startTickets(inject('redisUrl'), prefix);
    engines.push(a.engine, b.engine);
    // This process last left the key open, where RELEASE changes nothing.
    await a.tickets.send('moved', { type: 'TICK' });
    await b.tickets.send('moved', { type: 'HOLD' });
    // Its hold timer armed and cleared: the record owes nothing.
    await b.tickets.idle();
    await waitFor(
      async () =>
        (await storedTicket(b.engine.redis, prefix, 'moved')).o === undefined ? true : undefined,
      { what: 'the owed timer to be cleared' },
    );

    const { snapshot } = await a.tickets.send('moved', { type: 'RELEASE' });
    expect(snapshot.value).toBe('open');
    expect((await a.tickets.get('moved'))?.value).toBe('open');
  });

  it('takes the lock when another process moved the key to a state the event leaves, with no action', async () => {
    const prefix = randomPrefix();
    const a = await startTickets(inject('redisUrl'), prefix);
    // Its shipment answers nothing: the ticket stays in shipping, owing nothing.
    const b = await startTickets(inject('redisUrl'), prefix, {
      ship: () => Promise.resolve(undefined),
    });
    engines.push(a.engine, b.engine);
    // This process last left the key open, where SHIP_FAILED changes nothing.
    await a.tickets.send('stalled', { type: 'TICK' });
    await b.tickets.send('stalled', { type: 'SHIP' });
    await b.tickets.idle();
    await waitFor(
      async () =>
        (await storedTicket(b.engine.redis, prefix, 'stalled')).o === undefined ? true : undefined,
      { what: 'the shipment to be cleared' },
    );

    // In shipping it moves the key back to open, keeping the context and running nothing.
    const { snapshot } = await a.tickets.send('stalled', { type: 'SHIP_FAILED' });
    expect(snapshot.value).toBe('open');
    expect((await a.tickets.get('stalled'))?.value).toBe('open');
  });

  it('takes the lock for a key whose record owes actions, so they run first', async () => {
    const { tickets, holdLock } = await setUp(() => Promise.reject(new Error('carrier down')));
    await tickets.send('owing', { type: 'PING' });
    await expect(tickets.send('owing', { type: 'SHIP' })).rejects.toThrow('carrier down');
    await holdLock('owing');
    await expect(tickets.send('owing', { type: 'PING' })).rejects.toMatchObject({
      name: 'RuntimeError',
      code: 'busy',
    });
  });

  describe('for a machine whose state is an object (parallel regions)', () => {
    async function panels(prefix: string, beeps: string[] = []) {
      const { engine } = await startTickets(inject('redisUrl'), prefix, { lockWaitMs: 200 });
      engines.push(engine);
      const panel = durableMachine(engine, {
        name: 'panel',
        machine: panelMachine,
        version: 1,
        input: () => undefined,
        effects: {
          beep: (_params: unknown, { key }) => {
            beeps.push(key);
            return Promise.resolve(undefined);
          },
        },
        finalStateRetentionMs: 60_000,
      });
      return { engine, panel };
    }

    it('answers an event that changes nothing while another process holds the lock', async () => {
      const prefix = randomPrefix();
      const { engine, panel } = await panels(prefix);
      await panel.send('desk', { type: 'LIGHT_UP' });
      await engine.redis.set(`${prefix}:panel:{desk}:lock`, 'elsewhere', 'PX', 10_000);

      const { snapshot, emitted } = await panel.send('desk', { type: 'STATUS' });
      expect(emitted).toEqual([{ type: 'STATUS' }]);
      expect(snapshot.value).toEqual({ power: 'off', light: 'lit' });
      await expect(panel.send('desk', { type: 'SWITCH_ON' })).rejects.toMatchObject({
        name: 'RuntimeError',
        code: 'busy',
      });
    });

    it('takes the lock when another process moved one region and the event moves it back', async () => {
      const prefix = randomPrefix();
      const { panel: a } = await panels(prefix);
      const { panel: b } = await panels(prefix);
      // This process last left the light dim, where DIM changes nothing.
      await a.send('wall', { type: 'SWITCH_ON' });
      await b.send('wall', { type: 'LIGHT_UP' });
      expect((await a.get('wall'))?.value).toEqual({ power: 'on', light: 'lit' });

      const { snapshot } = await a.send('wall', { type: 'DIM' });
      expect(snapshot.value).toEqual({ power: 'on', light: 'dim' });
      expect((await b.get('wall'))?.value).toEqual({ power: 'on', light: 'dim' });
    });

    it('takes the lock when, where another process moved the key, the event runs an effect', async () => {
      const prefix = randomPrefix();
      const beeps: string[] = [];
      const { panel: a } = await panels(prefix, beeps);
      const { panel: b } = await panels(prefix);
      // This process last left the power off, where STATUS only replies.
      await a.send('hall', { type: 'STATUS' });
      await b.send('hall', { type: 'SWITCH_ON' });

      const { emitted } = await a.send('hall', { type: 'STATUS' });
      expect(emitted).toEqual([]);
      expect(beeps).toEqual(['hall']);
    });
  });
});
