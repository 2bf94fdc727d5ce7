import { emit, setup } from 'xstate';

/**
 * A toy machine of the engine's tests (no payment code) whose state is an
 * object: two parallel regions, power (off, on) and light (dim, lit). STATUS
 * replies; with the power on it beeps instead (an effect).
 */

export type PanelEvent =
  | { type: 'SWITCH_ON' }
  | { type: 'SWITCH_OFF' }
  | { type: 'LIGHT_UP' }
  | { type: 'DIM' }
  | { type: 'STATUS' };

export const panelMachine = setup({
  types: {
    events: {} as PanelEvent,
    emitted: {} as { type: 'STATUS' },
  },
  actions: { beep: () => undefined },
}).createMachine({
  id: 'panel',
  type: 'parallel',
  states: {
    power: {
      initial: 'off',
      states: {
        off: { on: { SWITCH_ON: 'on' } },
        // Switched on, STATUS also beeps (an effect), keeping the state.
        on: { on: { SWITCH_OFF: 'off', STATUS: { actions: 'beep' } } },
      },
    },
    light: {
      initial: 'dim',
      states: { dim: { on: { LIGHT_UP: 'lit' } }, lit: { on: { DIM: 'dim' } } },
    },
  },
  on: { STATUS: { actions: emit({ type: 'STATUS' as const }) } },
});
