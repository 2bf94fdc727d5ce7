import type { AnyStateMachine, AnyStateNode, AnyTransitionDefinition } from 'xstate';

/** One transition of a machine definition, as data. */
export interface TransitionInfo {
  /** Stable id: `source --EVENT[guard]--> target`; a targetless transition targets its source. */
  readonly id: string;
  readonly source: string;
  readonly event: string;
  readonly guard: string | null;
  /** The state entered; equals `source` for a transition that only runs actions. */
  readonly target: string;
  readonly internal: boolean;
  readonly actions: readonly string[];
}

function nameOf(value: unknown): string | null {
  if (typeof value === 'string') return value;
  if (typeof value === 'object' && value !== null && 'type' in value) {
    const { type, params } = value as { type: unknown; params?: unknown };
    if (typeof type !== 'string') return null;
    // A reply's outcome is what tells one transition's answer from another's.
    if (typeof params === 'object' && params !== null && 'outcome' in params) {
      return `${type}(${String(params.outcome)})`;
    }
    return type;
  }
  if (typeof value === 'function') return value.name || 'inline';
  return null;
}

function pathOf(node: AnyStateNode): string {
  return node.path.join('.');
}

function describe(def: AnyTransitionDefinition): TransitionInfo {
  const source = pathOf(def.source);
  const targets = def.target?.map(pathOf) ?? [];
  const target = targets.length > 0 ? targets.join(',') : source;
  const event: string = String(def.eventType);
  const alternatives = def.source.transitions.get(event) ?? [];
  const isFallback = def.guard === undefined && alternatives.indexOf(def) > 0;
  const guard = def.guard === undefined ? (isFallback ? 'else' : null) : nameOf(def.guard);
  const actions = (def.actions as readonly unknown[]).map((a) => nameOf(a) ?? 'inline');
  const id = `${source} --${event}${guard === null ? '' : `[${guard}]`}--> ${target}`;
  return { id, source, event, guard, target, internal: targets.length === 0, actions };
}

function statesOf(node: AnyStateNode): AnyStateNode[] {
  return Object.values(node.states as Record<string, AnyStateNode>).flatMap((child) => [
    child,
    ...statesOf(child),
  ]);
}

/** Every state path of the machine, in definition order. */
export function listStates(machine: AnyStateMachine): string[] {
  return statesOf(machine.root).map(pathOf);
}

/** Every transition the machine defines, in definition order, guarded alternatives apart. */
export function listTransitions(machine: AnyStateMachine): TransitionInfo[] {
  return statesOf(machine.root).flatMap((node) =>
    [...node.transitions.values()].flat().map(describe),
  );
}

/** The transitions a snapshot would take for an event (empty when the event is ignored). */
export function transitionsTaken(
  machine: AnyStateMachine,
  snapshot: Parameters<AnyStateMachine['getTransitionData']>[0],
  event: Parameters<AnyStateMachine['getTransitionData']>[1],
): TransitionInfo[] {
  return machine.getTransitionData(snapshot, event).map(describe);
}
