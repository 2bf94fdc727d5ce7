import { initialTransition, transition } from 'xstate';
import { describe, expect, it } from 'vitest';
import { paymentMachine } from '../../src/machine/payment.machine.ts';
import {
  startPayment,
  stepPayment,
  type PaymentSnapshot,
} from '../../src/machine/payment.snapshot.ts';
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

const EFFECTS = new Set(['charge', 'refund', 'scheduleExpiry', 'scheduleRemoval', 'reply']);

describe('the runtime’s steps compute what xstate’s transition() computes', () => {
  const paths = [...shortestPaths(), ...simplePaths()];

  it(`on every step of the ${paths.length} generated paths`, () => {
    let steps = 0;
    for (const path of paths) {
      const [theirs0, theirActions0] = initialTransition(paymentMachine, modelInput);
      const ours0 = startPayment(modelInput);
      expect(decided(ours0.snapshot, ours0.effects)).toEqual(
        decided(
          theirs0,
          theirActions0.filter((a) => EFFECTS.has(a.type)),
        ),
      );
      let theirs = theirs0;
      let ours = ours0.snapshot;
      for (const step of path.steps) {
        const event = step.event;
        if ((event.type as string) === 'xstate.init') continue;
        const [theirNext, theirActions] = transition(paymentMachine, theirs, event);
        const ourStep = stepPayment(ours, event);
        expect(decided(ourStep.snapshot, ourStep.effects)).toEqual(
          decided(
            theirNext,
            theirActions.filter((a) => EFFECTS.has(a.type)),
          ),
        );
        expect(ourStep.snapshot.value).toBe(theirNext.value);
        theirs = theirNext;
        ours = ourStep.snapshot;
        steps++;
      }
    }
    expect(steps).toBeGreaterThan(paths.length);
  });
});
