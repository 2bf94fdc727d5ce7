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
  readonly expiryMs: number;
  readonly retentionMs: number;
  readonly payment: { readonly accountId: string; readonly amountCents: number } | null;
  readonly attempt: number;
  readonly lastDecline: { readonly reason: string; readonly at: number } | null;
  readonly createdAt: number;
  readonly updatedAt: number;
  readonly chargedAt: number | null;
  readonly cancelledAt: number | null;
  readonly refundedAt: number | null;
  readonly expiredAt: number | null;
  readonly expiresAt: number | null;
  readonly removeAt: number | null;
  readonly history: PaymentContext['history'];
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
    token: c.token,
    lifeId: c.lifeId,
    limits: {
      expiryMs: c.expiryMs,
      captureWindowMs: defaults.captureWindowMs,
      retentionMs: c.retentionMs,
      refundLimit: REFUND_LIMIT,
    },
    payment: c.payment && {
      ...c.payment,
      currency: defaults.defaultCurrency,
      capture: 'automatic',
    },
    attempt: c.attempt,
    lastDecline: c.lastDecline,
    createdAt: c.createdAt,
    updatedAt: c.updatedAt,
    chargedAt: c.chargedAt,
    captureBy: null,
    capturedCents: charged ? amountCents : 0,
    capturedAt: c.chargedAt,
    refundedCents: c.refundedAt !== null ? amountCents : 0,
    refunds,
    cancelledAt: c.cancelledAt,
    cancellationReason: c.cancelledAt !== null && !charged ? 'requested' : null,
    expiredAt: c.expiredAt,
    expiresAt: c.expiresAt,
    history: c.history,
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
