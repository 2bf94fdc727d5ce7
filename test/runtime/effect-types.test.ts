/**
 * Effect handlers are typed from the machine: a handler's name must be one
 * of the machine's actions and its params are that action's. The types are
 * checked by `tsc` over this file (`npm run typecheck`); what the types
 * cannot see (a config built as `any`, say) `durableMachine()` refuses at once.
 */
import { afterEach, describe, expect, expectTypeOf, inject, it } from 'vitest';
import { createMachine, fromPromise, spawnChild } from 'xstate';
import {
  durableMachine,
  type DurableMachineConfig,
  type Effects,
  type Engine,
} from '../../src/runtime/index.ts';
import { startTickets } from '../support/engine-harness.ts';
import { randomPrefix } from '../support/service-harness.ts';
import { ticketMachine, type ShipParams, type TicketEvent } from './ticket.machine.ts';

type TicketEffects = Effects<typeof ticketMachine>;

const base: DurableMachineConfig<typeof ticketMachine> = {
  name: 'ticket',
  machine: ticketMachine,
  version: 1,
  input: (key, now, lifeId) => ({ key, now, lifeId }),
};

describe('effect handlers typed from the machine', () => {
  it("gives a handler the action's params and lets it answer with the machine's events", () => {
    type Ship = NonNullable<TicketEffects['ship']>;
    expectTypeOf<Parameters<Ship>[0]>().toEqualTypeOf<ShipParams>();
    expectTypeOf<TicketEvent>().toExtend<Awaited<ReturnType<Ship>>>();
    expectTypeOf<keyof TicketEffects>().toEqualTypeOf<'ship'>();
  });

  it('does not compile a handler for no action of the machine, or for other params', () => {
    const typo: DurableMachineConfig<typeof ticketMachine> = {
      ...base,
      // @ts-expect-error: the machine has no action "shipp"
      effects: { shipp: () => Promise.resolve(undefined) },
    };
    const wrongParams: DurableMachineConfig<typeof ticketMachine> = {
      ...base,
      effects: {
        // @ts-expect-error: ship's params are ShipParams, not a number
        ship: (params: { key: number }) => Promise.resolve(params.key > 0 ? undefined : undefined),
      },
    };
    const wrongEvent: DurableMachineConfig<typeof ticketMachine> = {
      ...base,
      effects: {
        // @ts-expect-error: the ticket machine has no event NOPE
        ship: () => Promise.resolve({ type: 'NOPE' }),
      },
    };
    expect([typo, wrongParams, wrongEvent].map((config) => config.name)).toEqual([
      'ticket',
      'ticket',
      'ticket',
    ]);
  });

  it('makes input and the retention of final states optional', () => {
    const minimal: DurableMachineConfig<typeof ticketMachine> = {
      name: 'ticket',
      machine: ticketMachine,
      version: 1,
    };
    expect(minimal.effects).toBeUndefined();
  });
});

describe('durableMachine()', () => {
  const engines: Engine[] = [];
  afterEach(async () => {
    await Promise.all(engines.splice(0).map((engine) => engine.close()));
  });

  it('throws unsupported at once for a handler whose name is no action of the machine, naming it', async () => {
    const { engine } = await startTickets(inject('redisUrl'), randomPrefix());
    engines.push(engine);
    const untyped = { ...base, effects: { shipp: () => Promise.resolve(undefined) } };
    expect(() =>
      durableMachine(engine, untyped as DurableMachineConfig<typeof ticketMachine>),
    ).toThrow(
      expect.objectContaining({
        name: 'RuntimeError',
        code: 'unsupported',
        message: 'machine "ticket" has no action "shipp" for its effect handler',
      }),
    );
  });

  it('throws unsupported for a machine that invokes an actor, naming it', async () => {
    const { engine } = await startTickets(inject('redisUrl'), randomPrefix());
    engines.push(engine);
    const invoking = createMachine({
      id: 'fetcher',
      initial: 'loading',
      states: {
        loading: { invoke: { src: fromPromise(() => Promise.resolve(1)), id: 'load' } },
      },
    });
    expect(() =>
      durableMachine(engine, { name: 'fetcher', machine: invoking, version: 1 }),
    ).toThrow(
      expect.objectContaining({
        code: 'unsupported',
        message: expect.stringContaining('invokes "load" in state "fetcher.loading"') as string,
      }),
    );
  });

  it('throws unsupported for a machine that spawns an actor', async () => {
    const { engine } = await startTickets(inject('redisUrl'), randomPrefix());
    engines.push(engine);
    const spawning = createMachine({
      id: 'spawner',
      entry: spawnChild(fromPromise(() => Promise.resolve(1))),
    });
    expect(() =>
      durableMachine(engine, { name: 'spawner', machine: spawning, version: 1 }),
    ).toThrow(
      expect.objectContaining({
        code: 'unsupported',
        message: expect.stringContaining('spawns') as string,
      }),
    );
  });

  it('runs a machine given neither input nor a retention: its final record is kept a day', async () => {
    const prefix = randomPrefix();
    const { engine } = await startTickets(inject('redisUrl'), prefix);
    engines.push(engine);
    const door = createMachine({
      id: 'door',
      initial: 'open',
      states: { open: { on: { SHUT: 'shut' } }, shut: { type: 'final' } },
    });
    const doors = durableMachine(engine, { name: 'door', machine: door, version: 1 });
    const { snapshot } = await doors.send('front', { type: 'SHUT' });
    expect(snapshot.value).toBe('shut');
    const ttl = await engine.redis.pttl(`${prefix}:door:{front}`);
    expect(ttl).toBeGreaterThan(86_400_000 - 60_000);
    expect(ttl).toBeLessThanOrEqual(86_400_000);
  });
});
