import { REFUND_LIMIT } from '../machine/payment.machine.ts';
import type { PaymentContext, Refund } from '../machine/payment.types.ts';

/**
 * Stored payment snapshots of earlier machine versions, lifted to the
 * current one (the runtime's `migrate`). Past formats belong here, with the
 * payment service, not in the machine.
 */

export interface MigrationDefaults {
  /** The currency of every payment written before there were currencies. */
  readonly defaultCurrency: string;
  readonly captureWindowMs: number;
}

/** Version 1's context: one currency, charged at once, refunded only whole by a cancel. */
interface ContextV1 {
  readonly token: string;
  readonly lifeId: string;
  readonly payment: { readonly accountId: string; readonly amountCents: number } | null;
  readonly updatedAt: number;
  readonly chargedAt: number | null;
  readonly cancelledAt: number | null;
  readonly refundedAt: number | null;
}

interface PersistedV1 {
  readonly value: string;
  readonly context: ContextV1;
}

/**
 * Version 1 → 2: the payment is in the default currency, captured at once
 * (all of it, when it was charged); a refunded one lists its one refund, in
 * full, made by a cancel, under the operation id that release gave it (so a
 * refund in flight across the upgrade is the same movement).
 */
function fromV1(persisted: PersistedV1, defaults: MigrationDefaults): unknown {
  const c = persisted.context;
  const amountCents = c.payment?.amountCents ?? 0;
  const charged = c.chargedAt !== null;
  const refundOwed = persisted.value === 'refunding';
  const refunds: Refund[] =
    c.refundedAt !== null || refundOwed
      ? [
          {
            refundId: null,
            amountCents,
            requestedCents: null,
            reason: null,
            requestedAt: refundOwed ? c.updatedAt : (c.refundedAt ?? c.updatedAt),
            refundedAt: c.refundedAt,
            operationId: `refund:${c.token}:${c.lifeId}`,
          },
        ]
      : [];
  const context: PaymentContext = {
    ...(c as unknown as PaymentContext),
    payment: c.payment && {
      ...c.payment,
      currency: defaults.defaultCurrency,
      capture: 'automatic',
    },
    captureWindowMs: defaults.captureWindowMs,
    refundLimit: REFUND_LIMIT,
    authorizedAt: null,
    captureBy: null,
    capturedCents: charged ? amountCents : 0,
    capturedAt: c.chargedAt,
    refundedCents: c.refundedAt !== null ? amountCents : 0,
    refunds,
    cancellationReason: c.cancelledAt !== null && !charged ? 'requested' : null,
  };
  return { ...persisted, context };
}

/** The runtime's `migrate` for the payment machine. */
export function migratePaymentSnapshot(defaults: MigrationDefaults) {
  return (persisted: unknown, fromVersion: number): unknown => {
    if (fromVersion === 1) return fromV1(persisted as PersistedV1, defaults);
    throw new Error(`no migration from payment machine version ${fromVersion}`);
  };
}
