/**
 * Which events the engine may answer from one read without the lock: read
 * off a machine's definition. A wrong "yes" would answer a request that
 * changes the record without writing it; a wrong "no" only costs the lock.
 */
import { assign, createMachine, emit, setup, transition } from 'xstate';
import { describe, expect, it } from 'vitest';
import { UnchangingEvents } from '../../src/runtime/unchanging-events.ts';

const machine = setup({
  types: { events: {} as { type: string } },
  actions: {
    answer: emit({ type: 'answer' }),
    count: assign({}),
  },
}).createMachine({
  id: 'toy',
  initial: 'idle',
  states: {
    idle: {
      on: {
        ASK: { actions: 'answer' },
        ASK_TWICE: { actions: ['answer', { type: 'answer' }] },
        COUNT: { actions: 'count' },
        INLINE: { actions: () => undefined },
        INLINE_ANSWER: { actions: emit({ type: 'answer' }) },
        ANSWER_AND_COUNT: { actions: ['answer', 'count'] },
        GO: { target: 'busy' },
        RESTART: { reenter: true, actions: 'answer' },
        'admin.*': { actions: 'answer' },
        'user.*': { target: 'busy' },
      },
    },
    busy: {
      initial: 'working',
      on: { '*': { actions: 'answer' }, STOP: { target: 'idle' } },
      states: {
        working: { on: { PAUSE: { target: 'paused' } } },
        paused: {},
      },
    },
    passing: { always: { target: 'idle' }, on: { ASK: { actions: 'answer' } } },
    closing: { on: { '*': { target: 'idle' } } },
  },
});

describe('events that change nothing, read off the definition', () => {
  const unchanging = new UnchangingEvents(machine);

  it('are those whose transitions only emit and keep the state', () => {
    expect(unchanging.has('idle', 'ASK')).toBe(true);
    expect(unchanging.has('idle', 'ASK_TWICE')).toBe(true);
    expect(unchanging.has('idle', 'INLINE_ANSWER')).toBe(true);
    // A state that does not handle the event changes nothing either.
    expect(unchanging.has('idle', 'UNKNOWN')).toBe(true);
  });

  it('exclude an event that assigns, runs an inline action, moves or re-enters the state', () => {
    expect(unchanging.has('idle', 'COUNT')).toBe(false);
    expect(unchanging.has('idle', 'INLINE')).toBe(false);
    expect(unchanging.has('idle', 'GO')).toBe(false);
    expect(unchanging.has('idle', 'RESTART')).toBe(false);
    expect(unchanging.has('idle', 'ANSWER_AND_COUNT')).toBe(false);
  });

  it('follow wildcard descriptors as xstate does: `user.*` matches `user` and `user.…` only', () => {
    expect(unchanging.has('idle', 'admin.ping')).toBe(true);
    for (const type of ['user', 'user.login', 'user.login.retry']) {
      expect(unchanging.has('idle', type)).toBe(false);
      expect(
        transition(machine, machine.resolveState({ value: 'idle', context: {} }), { type })[0]
          .value,
      ).toEqual({ busy: 'working' });
    }
    expect(unchanging.has('idle', 'users')).toBe(true);
    // An exact descriptor is no prefix: COUNT assigns, COU is not handled.
    expect(unchanging.has('idle', 'COU')).toBe(true);
    // `*` takes every event, so every event leaves a state whose `*` moves.
    expect(unchanging.has('closing', 'ANYTHING')).toBe(false);
  });

  it('look at every active node of a nested state, the parent’s wildcard included', () => {
    const working = UnchangingEvents.stateKey({ busy: 'working' });
    expect(working).toBe('{"busy":"working"}');
    expect(unchanging.has(working, 'PING')).toBe(true);
    expect(unchanging.has(working, 'PAUSE')).toBe(false);
    expect(unchanging.has(working, 'STOP')).toBe(false);
    expect(unchanging.has(UnchangingEvents.stateKey({ busy: 'paused' }), 'PAUSE')).toBe(true);
  });

  it('exclude an action named without an implementation', () => {
    const bare = createMachine({
      initial: 'a',
      states: { a: { on: { X: { actions: 'nowhere' } } } },
    });
    expect(new UnchangingEvents(bare).has('a', 'X')).toBe(false);
  });

  it('are none in a state an eventless transition could leave', () => {
    expect(unchanging.has('passing', 'ASK')).toBe(false);
    expect(unchanging.has('passing', 'UNKNOWN')).toBe(false);
  });

  it('keep the first answer for a state and event', () => {
    expect(UnchangingEvents.stateKey('idle')).toBe('idle');
    const counting = new UnchangingEvents(machine);
    const resolve = machine.resolveState.bind(machine);
    let reads = 0;
    machine.resolveState = (...args) => {
      reads++;
      return resolve(...args);
    };
    try {
      expect(counting.has('idle', 'ASK')).toBe(true);
      expect(counting.has('idle', 'ASK')).toBe(true);
      expect(counting.has('idle', 'GO')).toBe(false);
      expect(reads).toBe(2);
    } finally {
      machine.resolveState = resolve;
    }
  });
});
