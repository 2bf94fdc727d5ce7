import type { AnyMachineSnapshot, EventObject } from 'xstate';
import type { CollectedAction } from './machine-steps.ts';
import type { OwedAction, Timers } from './redis/record-store.ts';

/**
 * What one transition writes, decided without Redis: a pure function of the
 * record as the command holds it and the transition's result. The command
 * path (durable-machine.ts) stores the plan in one atomic write, then does
 * what it owes.
 *
 * Owed work is a list of tagged entries (`OwedAction`), stored with the write
 * and replayed exactly as stored: an effect handler to call, a timer to arm.
 * Work of other kinds (a promise actor to start, a message to another key, a
 * child's record) is added as another `kind`, decided here and done after
 * the write like these.
 */

/** The record a transition starts from, as the command holds it. */
export interface PlanRecord {
  /** The stored version (0: no record yet); the write gets the next one. */
  readonly version: number;
  /** `null`: the key has no record yet (any transition writes one). */
  readonly snapshot: AnyMachineSnapshot | null;
  readonly timers: Timers;
  /** The timers changed since the record was read (a timer fired) without a write yet. */
  readonly timersChanged: boolean;
}

/** A transition's result: the next snapshot and the actions it collected, in order. */
export interface PlanStep {
  readonly snapshot: AnyMachineSnapshot;
  readonly actions: readonly CollectedAction[];
}

export interface PlanContext {
  /** Redis's time, epoch ms (a timer's due time is now + its delay). */
  readonly now: number;
  /** Whether an action of this name has an effect handler (only those are owed). */
  readonly isEffect: (type: string) => boolean;
}

export interface WritePlan {
  /** False: nothing to store (same state, no owed work, timers unchanged). */
  readonly write: boolean;
  /** What the machine emitted, in order (answered to the caller, never stored). */
  readonly emitted: readonly EventObject[];
  /** The live timers after the step. */
  readonly timers: Timers;
  /** What the write owes, in order: run after the write, cleared once done. */
  readonly owed: readonly OwedAction[];
  /** Timers armed by earlier writes that this step cancelled: their jobs may go. */
  readonly cancelled: readonly { readonly id: string; readonly seq: number }[];
  /** The snapshot is final (no timer can move it). */
  readonly final: boolean;
}

export function planWrite(record: PlanRecord, step: PlanStep, context: PlanContext): WritePlan {
  const version = record.version + 1;
  const timers = new Map(Object.entries(record.timers));
  const emitted: EventObject[] = [];
  let owed: OwedAction[] = [];
  const cancelled: { id: string; seq: number }[] = [];
  let timersChanged = record.timersChanged;
  for (const [index, action] of step.actions.entries()) {
    switch (action.type) {
      case 'xstate.emit': {
        const { event } = action.params as { event: EventObject };
        emitted.push(event);
        break;
      }
      case 'xstate.raise': {
        const { event, id, delay } = action.params as {
          event: EventObject;
          id?: string;
          delay?: number;
        };
        // Without a delay xstate handled it inside the transition.
        if (typeof delay !== 'number') break;
        const timerId = id ?? `${version}.${index}`;
        const entry = { seq: version, dueAt: context.now + delay };
        // The event is kept with the timer: a lost job is re-armed from it.
        timers.set(timerId, { ...entry, event });
        // Stryker disable next-line BooleanLiteral: the timer is owed, a change by itself; a cancel that takes it back in this step marks its own
        timersChanged = true;
        owed = owed.filter((o) => o.kind !== 'timer' || o.id !== timerId);
        owed.push({ kind: 'timer', id: timerId, ...entry, event });
        break;
      }
      case 'xstate.cancel': {
        const { sendId } = action.params as { sendId: string };
        const live = timers.get(sendId);
        if (live === undefined) break;
        if (live.seq !== version) cancelled.push({ id: sendId, seq: live.seq });
        timers.delete(sendId);
        timersChanged = true;
        owed = owed.filter((o) => o.kind !== 'timer' || o.id !== sendId);
        break;
      }
      default:
        if (context.isEffect(action.type)) {
          owed.push({ kind: 'effect', type: action.type, params: action.params ?? null });
        }
    }
  }
  const final = step.snapshot.status !== 'active';
  if (final && timers.size > 0) {
    // No timer can move a final snapshot.
    timers.clear();
    owed = owed.filter((o) => o.kind !== 'timer');
    // Stryker disable next-line BooleanLiteral: reaching a final state changes the snapshot's status, a change by itself
    timersChanged = true;
  }
  const write =
    record.snapshot === null ||
    timersChanged ||
    owed.length > 0 ||
    !sameState(record.snapshot, step.snapshot);
  return { write, emitted, timers: Object.fromEntries(timers), owed, cancelled, final };
}

/** Same status, context object and state value: the step changed nothing that is stored. */
export function sameState(
  a: { status: string; value: unknown; context: unknown },
  b: typeof a,
): boolean {
  return a.status === b.status && a.context === b.context && sameValue(a.value, b.value);
}

function sameValue(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  const ka = Object.keys(a);
  // Stryker disable next-line BooleanLiteral: at one place in one machine's state, values have as many keys (one for a compound state, every region for a parallel one)
  if (ka.length !== Object.keys(b).length) return false;
  return ka.every((k) =>
    sameValue((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]),
  );
}
