import type { AnyMachineSnapshot, AnyStateMachine } from 'xstate';

/**
 * What `machine.getPersistedSnapshot(snapshot)` returns, without its cost
 * where the answer is plain: a snapshot with no child actors and no history
 * state entered is persisted as its own status, value, output, error and
 * context, with empty `historyValue` and `children` (in xstate's key order,
 * so the JSON is byte for byte the same). xstate's version takes the rest of
 * the snapshot apart with an object rest (several µs per write) and walks the
 * context for actor refs, which JSON turns into the same thing through their
 * `toJSON`. Anything else goes to xstate.
 */
export function persistedSnapshot(
  machine: AnyStateMachine,
  snapshot: AnyMachineSnapshot,
): Record<string, unknown> {
  const { children, historyValue } = snapshot as { children?: object; historyValue?: object };
  if (hasKeys(children) || hasKeys(historyValue)) {
    return machine.getPersistedSnapshot(snapshot);
  }
  return {
    status: snapshot.status,
    output: snapshot.output as unknown,
    error: snapshot.error,
    value: snapshot.value,
    historyValue: {},
    context: snapshot.context as unknown,
    children: {},
  };
}

function hasKeys(record: object | undefined): boolean {
  if (record === undefined) return false;
  for (const _key in record) return true;
  return false;
}
