/**
 * The write plan: what one transition stores and owes, a pure function of
 * the record the command holds and the transition's result. No Redis here:
 * the toy ticket machine's steps come from MachineSteps, which runs nothing.
 */
import { describe, expect, it } from 'vitest';
import type { AnyMachineSnapshot } from 'xstate';
import { MachineSteps } from '../../src/runtime/machine-steps.ts';
import { planWrite, type PlanRecord } from '../../src/runtime/write-plan.ts';
import { TICKET_HOLD_MS, ticketMachine, type TicketEvent } from './ticket.machine.ts';

const steps = new MachineSteps(ticketMachine);
const NOW = 1_700_000_000_000;
const context = { now: NOW, isEffect: (type: string) => type === 'ship' };
const opened = steps.initial({ key: 'k', now: NOW, lifeId: 'life' }).snapshot;

/** The stored record of version `version` holding `snapshot`. */
function record(
  snapshot: AnyMachineSnapshot | null,
  version = 1,
  timers: PlanRecord['timers'] = {},
): PlanRecord {
  return { version, snapshot, timers, timersChanged: false };
}

function plan(from: PlanRecord, event: TicketEvent) {
  return planWrite(from, steps.transition(from.snapshot ?? opened, event), context);
}

describe('planWrite', () => {
  it('writes the first snapshot of a key even when the event changes nothing', () => {
    const first = steps.initial({ key: 'k', now: NOW, lifeId: 'life' });
    const written = planWrite(record(null, 0), first, context);
    expect(written).toMatchObject({ write: true, owed: [], timers: {}, final: false });
  });

  it('writes nothing for an event that changes nothing, and still answers what it emitted', () => {
    const ping = plan(record(opened), { type: 'PING' });
    expect(ping.write).toBe(false);
    expect(ping.emitted).toEqual([{ type: 'REPLY', status: 'open', ticks: 0 }]);
  });

  it('owes a delayed raise as a timer due at now + delay, sequenced by the write', () => {
    const remind = plan(record(opened, 4), { type: 'REMIND_IN', ms: 1_000 });
    expect(remind.write).toBe(true);
    expect(remind.timers).toEqual({
      remind: { seq: 5, dueAt: NOW + 1_000, event: { type: 'REMIND' } },
    });
    expect(remind.owed).toEqual([
      { kind: 'timer', id: 'remind', seq: 5, dueAt: NOW + 1_000, event: { type: 'REMIND' } },
    ]);
    expect(remind.cancelled).toEqual([]);
  });

  it('cancels a timer an earlier write armed, naming its job, and owes nothing for it', () => {
    const armed = record(opened, 5, { remind: { seq: 5, dueAt: NOW + 1_000 } });
    const cancel = plan(armed, { type: 'CANCEL_REMINDER' });
    expect(cancel).toMatchObject({ write: true, timers: {}, owed: [] });
    expect(cancel.cancelled).toEqual([{ id: 'remind', seq: 5 }]);
  });

  it('owes an `after` timer under the id xstate gives it', () => {
    const hold = plan(record(opened, 2), { type: 'HOLD' });
    const [timer] = hold.owed;
    expect(timer).toMatchObject({ kind: 'timer', seq: 3, dueAt: NOW + TICKET_HOLD_MS });
    expect(timer?.kind === 'timer' ? timer.id : '').toBe(
      `xstate.after.${TICKET_HOLD_MS}.ticket.held`,
    );
  });

  it('owes only the actions that have an effect handler, with their params', () => {
    const ship = plan(record(opened), { type: 'SHIP' });
    expect(ship.owed).toEqual([{ kind: 'effect', type: 'ship', params: { key: 'k' } }]);
    const unhandled = planWrite(record(opened), steps.transition(opened, { type: 'SHIP' }), {
      ...context,
      isEffect: () => false,
    });
    expect(unhandled).toMatchObject({ write: true, owed: [] });
  });

  it('drops every timer of a final snapshot', () => {
    const armed = record(opened, 5, { remind: { seq: 5, dueAt: NOW + 1_000 } });
    const closed = plan(armed, { type: 'CLOSE' });
    expect(closed).toMatchObject({ write: true, final: true, timers: {}, owed: [] });
  });

  it('writes a fired timer away even when its event changes nothing else', () => {
    const fired = { ...record(opened, 5), timersChanged: true };
    expect(plan(fired, { type: 'PING' }).write).toBe(true);
  });
});
