/**
 * Every record names its machine and version; an older version loads
 * through `migrate`, a newer one or another machine's is refused.
 */
import { afterEach, describe, expect, inject, it } from 'vitest';
import { StoredDataError } from '../../src/errors.ts';
import { durableMachine, type Engine } from '../../src/engine/index.ts';
import { startTickets, storedTicket } from '../support/engine-harness.ts';
import { randomPrefix } from '../support/service-harness.ts';
import { ticketMachine, type TicketContext } from './ticket.machine.ts';

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
    await expect(tickets.send('old', { type: 'TICK' })).rejects.toBeInstanceOf(StoredDataError);
  });

  it("refuses a record of another machine stored under the machine's keys", async () => {
    const prefix = randomPrefix();
    const { engine, tickets } = await startTickets(inject('redisUrl'), prefix);
    engines.push(engine);
    await tickets.send('named', { type: 'TICK' });
    await engine.redis.hset(`${prefix}:ticket:{named}`, 'n', 'other');
    await expect(tickets.get('named')).rejects.toBeInstanceOf(StoredDataError);
  });
});
