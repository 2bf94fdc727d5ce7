import { initialTransition, transition } from 'xstate';
import { describe, expect, it } from 'vitest';
import { paymentMachine } from '../../src/machine/payment.machine.ts';
import { MachineSteps } from '../../src/runtime/machine-steps.ts';
import type { PaymentSnapshot } from '../../src/payments/payment.snapshot.ts';
import { modelInput, shortestPaths, simplePaths } from './payment-model.ts';

/** What a step decided, in a form two computations of it can be compared in. */
function decided(
  snapshot: PaymentSnapshot,
  actions: readonly { type: string; params?: unknown }[],
) {
  return {
    snapshot: paymentMachine.getPersistedSnapshot(snapshot),
    actions: actions.map(({ type, params }) => ({ type, params })),
  };
}

/** What the engine acts on: effects with handlers, emitted replies, delayed events. */
const EFFECTS = new Set(['charge', 'refund', 'xstate.emit', 'xstate.raise', 'xstate.cancel']);

const only = (actions: readonly { type: string; params?: unknown }[]) =>
  actions.filter((a) => EFFECTS.has(a.type));

describe('the engine’s steps compute what xstate’s transition() computes', () => {
  const steps = new MachineSteps(paymentMachine);
  const paths = [...shortestPaths(), ...simplePaths()];

  it(`on every step of the ${paths.length} generated paths`, () => {
    let count = 0;
    for (const path of paths) {
      const [theirs0, theirActions0] = initialTransition(paymentMachine, modelInput);
      const ours0 = steps.initial(modelInput);
      expect(decided(ours0.snapshot as PaymentSnapshot, only(ours0.actions))).toEqual(
        decided(theirs0, only(theirActions0)),
      );
      let theirs = theirs0;
      let ours = ours0.snapshot as PaymentSnapshot;
      for (const step of path.steps) {
        const event = step.event;
        if ((event.type as string) === 'xstate.init') continue;
        const [theirNext, theirActions] = transition(paymentMachine, theirs, event);
        const ourStep = steps.transition(ours, event);
        const oursNext = ourStep.snapshot as PaymentSnapshot;
        expect(decided(oursNext, only(ourStep.actions))).toEqual(
          decided(theirNext, only(theirActions)),
        );
        expect(oursNext.value).toBe(theirNext.value);
        theirs = theirNext;
        ours = oursNext;
        count++;
      }
    }
    expect(count).toBeGreaterThan(paths.length);
  });
});
