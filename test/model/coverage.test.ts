import { describe, expect, it } from 'vitest';
import { paymentMachine } from '../../src/machine/payment.machine.ts';
import { listStates, listTransitions, transitionsTaken } from '../../src/machine/transitions.ts';
import { shortestPaths, simplePaths } from './payment-model.ts';

const paths = [...shortestPaths(), ...simplePaths()];

function coveredTransitions(): Set<string> {
  const covered = new Set<string>();
  for (const path of paths) {
    path.steps.forEach((step, i) => {
      const previous = path.steps[i - 1];
      if (previous === undefined) return; // the initial step has no event of ours
      for (const t of transitionsTaken(paymentMachine, previous.state, step.event))
        covered.add(t.id);
    });
  }
  return covered;
}

describe('generated paths', () => {
  it('cover every transition the machine defines', () => {
    const all = listTransitions(paymentMachine).map((t) => t.id);
    const covered = coveredTransitions();
    console.log(
      `${shortestPaths().length} shortest + ${simplePaths().length} simple = ${paths.length} generated paths; ` +
        `${all.filter((id) => covered.has(id)).length} of ${all.length} transitions covered`,
    );
    expect(all.filter((id) => !covered.has(id))).toEqual([]);
    expect([...covered].filter((id) => !all.includes(id))).toEqual([]);
  });

  it('reach every state the machine defines', () => {
    const all = listStates(paymentMachine);
    const reached = new Set<string>(paths.flatMap((p) => p.steps.map((s) => s.state.value)));
    console.log(`${all.filter((s) => reached.has(s)).length} of ${all.length} states reached`);
    expect(all.filter((s) => !reached.has(s))).toEqual([]);
  });
});
