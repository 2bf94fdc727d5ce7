import { createActor } from 'xstate';
import type { SnapshotFrom } from 'xstate';
import {
  chargeParams,
  expiryParams,
  PAYMENT_MACHINE_VERSION,
  paymentMachine,
  refundParams,
} from './payment.machine.ts';
import { listTransitions } from './transitions.ts';
import type {
  Effect,
  EffectType,
  PaymentContext,
  PaymentEvent,
  PaymentInput,
  PaymentStatus,
} from './payment.types.ts';

export type PaymentSnapshot = SnapshotFrom<typeof paymentMachine>;

/** What the machine decided for one event: the next snapshot and the effects to run, in order. */
export interface Step {
  readonly snapshot: PaymentSnapshot;
  readonly effects: readonly Effect[];
}

const EFFECT_TYPES: ReadonlySet<string> = new Set<EffectType>([
  'charge',
  'refund',
  'scheduleExpiry',
  'scheduleRemoval',
  'reply',
]);

function toEffects(actions: readonly { type: string; params?: unknown }[]): Effect[] {
  // Only declared effects leave the machine; context updates were applied by transition().
  return actions
    .filter((action) => EFFECT_TYPES.has(action.type))
    .map((action) => ({ type: action.type, params: action.params }) as Effect);
}

/**
 * xstate's `initialTransition()` and `transition()` build a throwaway actor on
 * every call, and building one computes a whole initial snapshot: four to
 * five times the cost of the step itself, on every request. The machine's own
 * `getInitialSnapshot()` and `transition()` with one inert scope for the
 * process compute the same thing (a unit test holds the two equal on every
 * generated path). The scope runs nothing: its executor only collects the
 * actions of the call in progress, and the machine has no children to spawn.
 */
type PaymentScope = Parameters<typeof paymentMachine.transition>[2];

let collected: { type: string; params?: unknown }[] = [];
let inertScope: PaymentScope | undefined;

function scope(): PaymentScope {
  if (inertScope === undefined) {
    const self = createActor(paymentMachine, {
      input: { token: '', lifeId: '', at: 0, expiryMs: 0, retentionMs: 0 },
    });
    inertScope = {
      self,
      id: '',
      sessionId: '',
      system: self.system,
      logger: () => undefined,
      defer: () => undefined,
      emit: () => undefined,
      stopChild: () => undefined,
      actionExecutor: (action) => {
        collected.push(action);
      },
    } satisfies PaymentScope;
  }
  return inertScope;
}

function collect(compute: (scope: PaymentScope) => PaymentSnapshot): Step {
  collected = [];
  try {
    const snapshot = compute(scope());
    return { snapshot, effects: toEffects(collected) };
  } finally {
    collected = [];
  }
}

/** The first snapshot of a token's life. */
export function startPayment(input: PaymentInput): Step {
  return collect((s) => paymentMachine.getInitialSnapshot(s, input));
}

/** Applies one event. An event the current state ignores returns the same snapshot and no effects. */
export function stepPayment(snapshot: PaymentSnapshot, event: PaymentEvent): Step {
  return collect((s) => paymentMachine.transition(snapshot, event, s));
}

export function statusOf(snapshot: PaymentSnapshot): PaymentStatus {
  return snapshot.value;
}

export function contextOf(snapshot: PaymentSnapshot): PaymentContext {
  return snapshot.context;
}

/**
 * Per state, the events every transition of which keeps the state and only
 * replies (a replay, a repeated cancel, a payment on a cancelled token):
 * whatever the context, they change nothing. Read off the definition.
 */
const UNCHANGING_EVENTS: ReadonlyMap<string, ReadonlySet<string>> = (() => {
  const byState = new Map<string, Map<string, boolean>>();
  for (const t of listTransitions(paymentMachine)) {
    const events = byState.get(t.source) ?? new Map<string, boolean>();
    const unchanging = t.internal && t.actions.every((action) => action.startsWith('reply('));
    events.set(t.event, (events.get(t.event) ?? true) && unchanging);
    byState.set(t.source, events);
  }
  return new Map(
    [...byState].map(([state, events]) => [
      state,
      new Set([...events].filter(([, unchanging]) => unchanging).map(([event]) => event)),
    ]),
  );
})();

/** True when `eventType` changes nothing in `status`, whatever the context (see UNCHANGING_EVENTS). */
export function changesNothing(status: PaymentStatus, eventType: PaymentEvent['type']): boolean {
  return UNCHANGING_EVENTS.get(status)?.has(eventType) ?? false;
}

/** True while a charge or refund is in flight: the runtime must finish it before anything else. */
export function isInFlight(snapshot: PaymentSnapshot): boolean {
  return snapshot.value === 'charging' || snapshot.value === 'refunding';
}

/**
 * The effects a stored snapshot may still owe if the request that wrote it
 * died before running them: the step in flight, and the expiry timer of a
 * state that has one. Every one of them is idempotent, so running them again
 * when they had already run changes nothing.
 */
export function owedEffects(snapshot: PaymentSnapshot): Effect[] {
  const { context } = snapshot;
  switch (snapshot.value) {
    case 'charging':
      return [{ type: 'charge', params: chargeParams(context) }];
    case 'refunding':
      return [{ type: 'refund', params: refundParams(context) }];
    case 'processed':
    case 'cancelled':
    case 'refunded':
      return [{ type: 'scheduleExpiry', params: expiryParams(context) }];
    case 'pending':
      // A pending record exists once a payment was declined; its timer was set then.
      return context.expiresAt === null
        ? []
        : [{ type: 'scheduleExpiry', params: expiryParams(context) }];
    case 'expired':
      return [];
  }
}

/** The stored form of a snapshot: plain JSON with the machine version beside it. */
export interface StoredSnapshot {
  readonly machineVersion: number;
  readonly snapshot: unknown;
}

export class SnapshotVersionError extends Error {
  constructor(readonly found: unknown) {
    super(
      `stored snapshot has machine version ${String(found)}, this build reads ${PAYMENT_MACHINE_VERSION}`,
    );
    this.name = 'SnapshotVersionError';
  }
}

export function toStored(snapshot: PaymentSnapshot): StoredSnapshot {
  return {
    machineVersion: PAYMENT_MACHINE_VERSION,
    snapshot: paymentMachine.getPersistedSnapshot(snapshot),
  };
}

export function fromStored(stored: StoredSnapshot): PaymentSnapshot {
  if (stored.machineVersion !== PAYMENT_MACHINE_VERSION) {
    throw new SnapshotVersionError(stored.machineVersion);
  }
  return paymentMachine.resolveState(
    stored.snapshot as Parameters<typeof paymentMachine.resolveState>[0],
  );
}
