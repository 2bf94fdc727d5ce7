import { assign, cancel, raise, setup } from 'xstate';

/**
 * A toy machine of the engine's tests (no payment code) whose single steps
 * owe several things at once: an alarm set twice, set and taken back, set
 * beside an effect, two set and one taken back, rung at once (a raise
 * without a delay), noted by an action the engine has no handler for, and
 * stopped for good while notifying and being set.
 */

export type AlarmEvent =
  | { type: 'SET' }
  | { type: 'SET_UNNAMED' }
  | { type: 'SET_TWICE' }
  | { type: 'SET_AND_CANCEL' }
  | { type: 'SET_BOTH_KEEP_ONE' }
  | { type: 'NOTIFY' }
  | { type: 'NOTIFY_AND_SET' }
  | { type: 'RING_NOW' }
  | { type: 'RING' }
  | { type: 'NOTE' }
  | { type: 'STOP' };

export const ALARM_MS = 60_000;

const ring = { type: 'RING' } as const;

export const alarmMachine = setup({
  types: {
    context: {} as { rings: number },
    events: {} as AlarmEvent,
  },
  actions: {
    notify: () => undefined,
    // The machine's own (a trace, say): the engine has no handler for it.
    note: () => undefined,
  },
}).createMachine({
  id: 'alarm',
  context: { rings: 0 },
  initial: 'idle',
  states: {
    idle: {
      on: {
        SET: { actions: raise(ring, { id: 'ring', delay: ALARM_MS }) },
        SET_UNNAMED: { actions: raise(ring, { delay: ALARM_MS }) },
        SET_TWICE: {
          actions: [
            raise(ring, { id: 'ring', delay: ALARM_MS }),
            raise(ring, { id: 'ring', delay: 2 * ALARM_MS }),
          ],
        },
        SET_AND_CANCEL: { actions: [raise(ring, { id: 'ring', delay: ALARM_MS }), cancel('ring')] },
        // Notifies, sets two alarms and takes one back, in one step.
        SET_BOTH_KEEP_ONE: {
          actions: [
            'notify',
            raise(ring, { id: 'ring', delay: ALARM_MS }),
            raise(ring, { id: 'snooze', delay: 2 * ALARM_MS }),
            cancel('ring'),
          ],
        },
        NOTIFY: { actions: 'notify' },
        NOTIFY_AND_SET: { actions: ['notify', raise(ring, { id: 'ring', delay: ALARM_MS })] },
        RING_NOW: { actions: raise(ring) },
        RING: { actions: assign({ rings: ({ context }) => context.rings + 1 }) },
        NOTE: { actions: 'note' },
        STOP: {
          target: 'stopped',
          actions: ['notify', raise(ring, { id: 'late', delay: ALARM_MS })],
        },
      },
    },
    stopped: { type: 'final' },
  },
});
