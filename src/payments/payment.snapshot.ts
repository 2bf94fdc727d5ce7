import type { SnapshotFrom } from 'xstate';
import { MachineSteps } from '../runtime/machine-steps.ts';
import {
  EXPIRY_TIMER_ID,
  PAYMENT_MACHINE_VERSION,
  paymentMachine,
} from '../machine/payment.machine.ts';
import type {
  CaptureParams,
  ChargeParams,
  PaymentContext,
  PaymentEvent,
  PaymentInput,
  PaymentReply,
  PaymentStatus,
  RefundParams,
  ReplyParams,
  VoidParams,
} from '../machine/payment.types.ts';
import { migratePaymentSnapshot, type MigrationDefaults } from './payment-migrations.ts';

export type PaymentSnapshot = SnapshotFrom<typeof paymentMachine>;

/**
 * What one event asks for, read off the actions `transition()` returned:
 * the effects the engine runs (charge, refund), the reply it returns as
 * emitted, and the expiry timer it arms (the capture window's is not listed). For tests and the bench, which run
 * the machine without the engine; the engine reads the same actions itself.
 */
export type Effect =
  | { readonly type: 'charge'; readonly params: ChargeParams }
  | { readonly type: 'capture'; readonly params: CaptureParams }
  | { readonly type: 'void'; readonly params: VoidParams }
  | { readonly type: 'refund'; readonly params: RefundParams }
  | { readonly type: 'reply'; readonly params: ReplyParams }
  | { readonly type: 'scheduleExpiry'; readonly params: { readonly expiresAt: number } };

export interface Step {
  readonly snapshot: PaymentSnapshot;
  readonly effects: readonly Effect[];
}

const steps = new MachineSteps(paymentMachine);

function toEffects(actions: readonly { type: string; params?: unknown }[]): Effect[] {
  const effects: Effect[] = [];
  for (const action of actions) {
    switch (action.type) {
      case 'charge':
      case 'capture':
      case 'void':
      case 'refund':
        effects.push({ type: action.type, params: action.params } as Effect);
        break;
      case 'xstate.emit': {
        const { event } = action.params as { event: PaymentReply };
        effects.push({ type: 'reply', params: { outcome: event.outcome } });
        break;
      }
      case 'xstate.raise': {
        const { event, id } = action.params as { event: PaymentEvent; id?: string };
        if (id === EXPIRY_TIMER_ID) {
          effects.push({ type: 'scheduleExpiry', params: { expiresAt: event.at } });
        }
        break;
      }
    }
  }
  return effects;
}

/** The first snapshot of a token's life. */
export function startPayment(input: PaymentInput): Step {
  const step = steps.initial(input);
  return { snapshot: step.snapshot as PaymentSnapshot, effects: toEffects(step.actions) };
}

/** Applies one event. An event the current state ignores returns the same snapshot and no effects. */
export function stepPayment(snapshot: PaymentSnapshot, event: PaymentEvent): Step {
  const step = steps.transition(snapshot, event);
  return { snapshot: step.snapshot as PaymentSnapshot, effects: toEffects(step.actions) };
}

export function statusOf(snapshot: PaymentSnapshot): PaymentStatus {
  return snapshot.value;
}

export function contextOf(snapshot: PaymentSnapshot): PaymentContext {
  return snapshot.context;
}

/** A stored (persisted) snapshot, as the engine reads it back. */
export function readPaymentSnapshot(persisted: unknown): PaymentSnapshot {
  return paymentMachine.resolveState(
    persisted as Parameters<typeof paymentMachine.resolveState>[0],
  );
}

/**
 * A token's record read straight from Redis by its hash key, without an
 * engine (the CLI reads, it never writes): the version, the snapshot, and
 * whether actions are owed, whichever store format wrote it; `null` when
 * there is none.
 */
export async function readPaymentRecord(
  redis: { hmget(key: string, ...fields: string[]): Promise<(string | null)[]> },
  recordKey: string,
  /** How a record of an earlier machine version is read. */
  defaults: MigrationDefaults = { defaultCurrency: 'USD', captureWindowMs: 7 * 86_400_000 },
): Promise<{ version: number; snapshot: PaymentSnapshot; owed: boolean } | null> {
  const [version, machine, machineVersion, json, owed] = await redis.hmget(
    recordKey,
    'v',
    'n',
    'm',
    's',
    'o',
  );
  if (version == null) return null;
  if (json == null) throw new Error(`the record ${recordKey} has no snapshot: it cannot be read`);
  const stored = Number(machineVersion);
  if (
    (machine ?? 'payment') !== 'payment' ||
    !Number.isInteger(stored) ||
    stored < 1 ||
    stored > PAYMENT_MACHINE_VERSION
  ) {
    throw new Error(
      `the record ${recordKey} holds ${machine ?? 'payment'} v${machineVersion ?? '?'}`,
    );
  }
  const persisted = JSON.parse(json) as unknown;
  return {
    version: Number(version),
    snapshot: readPaymentSnapshot(
      stored === PAYMENT_MACHINE_VERSION
        ? persisted
        : migratePaymentSnapshot(defaults)(persisted, stored),
    ),
    owed: owed != null,
  };
}
