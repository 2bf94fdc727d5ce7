import type { AnyStateMachine, AnyStateNode, StateValue } from 'xstate';

/**
 * Per state value and event type, read off the machine's definition: does the
 * event change nothing there, whatever the context? True when every
 * transition the active state nodes define for it (wildcards included) keeps
 * the state and only emits, and no eventless transition could follow. Such an
 * event is worth answering from one read without the lock (see
 * DurableActors.send); the read's own transition decides, this only says
 * when trying is worth a read.
 */
export class UnchangingEvents {
  private readonly known = new Map<string, boolean>();

  constructor(private readonly machine: AnyStateMachine) {}

  static stateKey(value: StateValue): string {
    return typeof value === 'string' ? value : JSON.stringify(value);
  }

  has(stateKey: string, eventType: string): boolean {
    const id = `${stateKey}\u0000${eventType}`;
    let answer = this.known.get(id);
    if (answer === undefined) {
      answer = this.compute(stateKey, eventType);
      this.known.set(id, answer);
    }
    return answer;
  }

  private compute(stateKey: string, eventType: string): boolean {
    const value = stateKey.startsWith('{') ? (JSON.parse(stateKey) as StateValue) : stateKey;
    const { _nodes: nodes } = this.machine.resolveState({ value, context: {} }) as unknown as {
      _nodes: readonly AnyStateNode[];
    };
    for (const node of nodes) {
      if ((node.always?.length ?? 0) > 0) return false;
      for (const [descriptor, transitions] of node.transitions) {
        if (!matches(descriptor, eventType)) continue;
        for (const transition of transitions) {
          if ((transition.target?.length ?? 0) > 0 || transition.reenter) return false;
          if (!(transition.actions as readonly unknown[]).every((a) => this.onlyEmits(a))) {
            return false;
          }
        }
      }
    }
    return true;
  }

  private onlyEmits(action: unknown): boolean {
    let implementation: unknown = action;
    if (typeof action === 'string') {
      implementation = this.machine.implementations.actions[action];
    } else if (typeof action === 'object' && action !== null && 'type' in action) {
      implementation = this.machine.implementations.actions[String(action.type)];
    }
    return (
      typeof implementation === 'function' &&
      (implementation as { type?: unknown }).type === 'xstate.emit'
    );
  }
}

/** xstate's own rule: `a.*` matches `a` itself and every `a.…`. */
function matches(descriptor: string, eventType: string): boolean {
  if (descriptor === eventType || descriptor === '*') return true;
  if (!descriptor.endsWith('.*')) return false;
  const prefix = descriptor.slice(0, -2);
  return eventType === prefix || eventType.startsWith(`${prefix}.`);
}
