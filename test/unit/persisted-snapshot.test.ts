/**
 * The engine persists snapshots without xstate's getPersistedSnapshot where
 * the answer is plain (src/runtime/persisted-snapshot.ts): what it stores must
 * be exactly what xstate would have stored, for every snapshot of the
 * payment machine, of the engine's toy machine, and of machines with the
 * parts that take xstate's own path (history states, child actors, output).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  assign,
  createActor,
  createMachine,
  fromPromise,
  setup,
  type AnyActorRef,
  type AnyStateMachine,
} from 'xstate';
import { persistedSnapshot } from '../../src/runtime/persisted-snapshot.ts';
import { paymentMachine } from '../../src/machine/payment.machine.ts';
import { ticketMachine } from '../runtime/ticket.machine.ts';

/** Every snapshot an actor of `machine` passes through on `events`, each compared. */
function expectSameAsXstate(
  machine: AnyStateMachine,
  input: unknown,
  events: readonly { type: string }[],
): void {
  const actor = createActor(machine, { input });
  actor.start();
  const check = () => {
    const snapshot = actor.getSnapshot();
    const ours = JSON.stringify(persistedSnapshot(machine, snapshot));
    const xstates = JSON.stringify(machine.getPersistedSnapshot(snapshot));
    expect(ours).toBe(xstates);
    // And it reads back as the same state.
    const back = machine.resolveState(JSON.parse(ours) as never);
    expect(back.value).toEqual(snapshot.value);
    expect(back.context).toEqual(JSON.parse(JSON.stringify(snapshot.context)));
  };
  check();
  for (const event of events) {
    actor.send(event);
    check();
  }
  actor.stop();
}

const paymentEvents = fc.constantFrom(
  { type: 'PAY', accountId: 'acct', amountCents: 100, at: 1_000 },
  { type: 'PAY', accountId: 'acct', amountCents: 250, at: 2_000 },
  { type: 'CHARGE_SUCCEEDED', at: 3_000 },
  { type: 'CHARGE_DECLINED', reason: 'insufficient_funds', at: 3_000 },
  { type: 'CANCEL', at: 4_000 },
  { type: 'REFUND_SUCCEEDED', at: 5_000 },
  { type: 'EXPIRE', at: 90_000_000 },
);

const ticketEvents = fc.constantFrom(
  { type: 'REMIND_IN', ms: 1_000 },
  { type: 'CANCEL_REMINDER' },
  { type: 'REMIND' },
  { type: 'TICK' },
  { type: 'PING' },
  { type: 'HOLD' },
  { type: 'RELEASE' },
  { type: 'SHIP' },
  { type: 'SHIPPED' },
  { type: 'CLOSE' },
);

describe('the persisted snapshot', () => {
  it('is what xstate persists, on every path of the payment machine', () => {
    fc.assert(
      fc.property(fc.array(paymentEvents, { maxLength: 12 }), (events) => {
        expectSameAsXstate(
          paymentMachine,
          { token: 'tok', lifeId: 'life', at: 0, expiryMs: 60_000, retentionMs: 60_000 },
          events,
        );
      }),
      { numRuns: 200 },
    );
  });

  it("is what xstate persists, on every path of the engine's toy machine", () => {
    fc.assert(
      fc.property(fc.array(ticketEvents, { maxLength: 12 }), (events) => {
        expectSameAsXstate(ticketMachine, { key: 'k', lifeId: 'life', now: 0 }, events);
      }),
      { numRuns: 200 },
    );
  });

  it("takes xstate's own path for a history state, a child actor and a final output", () => {
    const withHistory = createMachine({
      id: 'player',
      initial: 'on',
      states: {
        on: {
          initial: 'playing',
          states: {
            playing: { on: { PAUSE: 'paused' } },
            paused: { on: { PLAY: 'playing' } },
            memory: { type: 'history' },
          },
          on: { OFF: 'off' },
        },
        off: { on: { ON: 'on.memory' } },
      },
    });
    expectSameAsXstate(withHistory, undefined, [
      { type: 'PAUSE' },
      { type: 'OFF' },
      { type: 'ON' },
      { type: 'PLAY' },
    ]);

    const child = fromPromise(() => new Promise<never>(() => undefined));
    const withChild = setup({ actors: { child } }).createMachine({
      context: ({ spawn }) => ({ ref: spawn('child', { id: 'worker' }) as AnyActorRef }),
      initial: 'waiting',
      states: {
        waiting: { invoke: { src: 'child', id: 'invoked' }, on: { DONE: 'done' } },
        done: { type: 'final', output: { finished: true } },
      },
    });
    expectSameAsXstate(withChild, undefined, [{ type: 'DONE' }]);

    const withOutput = setup({ types: { context: {} as { count: number } } }).createMachine({
      context: { count: 0 },
      initial: 'counting',
      states: {
        counting: {
          on: {
            ADD: { actions: assign({ count: ({ context }) => context.count + 1 }) },
            STOP: 'stopped',
          },
        },
        stopped: { type: 'final' },
      },
      output: ({ context }) => ({ total: context.count }),
    });
    expectSameAsXstate(withOutput, undefined, [{ type: 'ADD' }, { type: 'ADD' }, { type: 'STOP' }]);
  });
});
