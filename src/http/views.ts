import type { AccountView } from '../accounts/ledger.ts';
import type { PaymentSnapshot } from '../payments/payment.snapshot.ts';
import { shownStatus, type Outcome, type PaymentContext } from '../machine/payment.types.ts';
import { ownId, tenantKey, type Tenant } from '../tenants.ts';
import type { AccountViewBody, PaymentView } from './schemas.ts';

function iso(ms: number): string;
function iso(ms: number | null): string | null;
function iso(ms: number | null): string | null {
  return ms === null ? null : new Date(ms).toISOString();
}

/** When the last completed refund was made. */
function lastRefundedAt(refunds: PaymentContext['refunds']): number | null {
  let at: number | null = null;
  for (const r of refunds) if (r.refundedAt !== null) at = Math.max(at ?? 0, r.refundedAt);
  return at;
}

/** When an expired record is removed: its retention after it expired. */
export function removeAtOf(c: PaymentContext): number | null {
  return c.expiredAt === null ? null : c.expiredAt + c.limits.retentionMs;
}

/** A stored key as `tenant`'s client knows it (local mode: as stored). */
function shown(tenant: Tenant, key: string): string {
  return ownId(tenant, key) ?? key;
}

/**
 * The public view of a token's record (its schema: paymentViewSchema), with
 * the token and account id as `tenant`'s client named them.
 */
export function paymentView(snapshot: PaymentSnapshot, tenant: Tenant = null): PaymentView {
  const c = snapshot.context;
  return {
    token: shown(tenant, c.token),
    status: shownStatus(snapshot.value),
    payment: c.payment && { ...c.payment, accountId: shown(tenant, c.payment.accountId) },
    capturedCents: snapshot.value === 'capturing' ? 0 : c.capturedCents,
    refundedCents: c.refundedCents,
    refunds: c.refunds.map((r) => ({
      refundId: r.refundId,
      amountCents: r.amountCents,
      reason: r.reason,
      status: r.refundedAt === null ? ('pending' as const) : ('succeeded' as const),
      createdAt: iso(r.requestedAt),
      refundedAt: iso(r.refundedAt),
    })),
    lastDecline: c.lastDecline && { reason: c.lastDecline.reason, at: iso(c.lastDecline.at) },
    createdAt: iso(c.createdAt),
    updatedAt: iso(c.updatedAt),
    chargedAt: iso(c.chargedAt),
    authorizedAt: c.payment?.capture === 'manual' ? iso(c.chargedAt) : null,
    captureBy: iso(c.captureBy),
    capturedAt: iso(c.capturedAt),
    cancelledAt: iso(c.cancelledAt),
    cancellationReason: c.cancellationReason,
    refundedAt: iso(lastRefundedAt(c.refunds)),
    expiredAt: iso(c.expiredAt),
    expiresAt: iso(c.expiresAt),
    removeAt: iso(removeAtOf(c)),
    history: c.history.map((h) => ({ at: iso(h.at), event: h.event, state: h.state })),
  };
}

export function accountView(account: AccountView, tenant: Tenant = null): AccountViewBody {
  // Operation ids embed the stored token after a ':' (`charge:{token}:…`).
  const storedPrefix = `:${tenantKey(tenant, '')}`;
  return {
    accountId: shown(tenant, account.accountId),
    balanceCents: account.balanceCents,
    balances: account.balances,
    ledger: account.ledger.map((e) => ({
      ...e,
      operationId: tenant === null ? e.operationId : e.operationId.replace(storedPrefix, ':'),
      token: shown(tenant, e.token),
      at: iso(e.at),
    })),
  };
}

/** The seed API's `reason` for each outcome. */
export function reasonFor(outcome: Outcome, snapshot: PaymentSnapshot | null): string {
  switch (outcome) {
    case 'charged':
      return 'Payment successful';
    case 'replayed':
      return 'Payment already completed in prior call';
    case 'declined':
      return `Payment declined: ${snapshot?.context.lastDecline?.reason ?? 'declined'}`;
    case 'body_mismatch':
      return 'Token already used for a different payment';
    case 'rejected':
      return snapshot?.value === 'refunded'
        ? 'Payment already refunded'
        : 'Payment already cancelled';
    case 'expired':
      return 'Payment token expired';
    case 'cancelled':
      return 'Payment cancelled';
    case 'refunded':
      return 'Payment refunded';
    case 'authorized':
      return 'Payment authorized';
    case 'captured':
      return 'Payment captured';
    case 'capture_replayed':
      return 'Payment already captured in prior call';
    case 'capture_mismatch':
      return `Payment already captured with ${snapshot?.context.capturedCents ?? 0} in its minor unit`;
    case 'capture_too_large':
      return `Capture is above the authorized ${snapshot?.context.payment?.amountCents ?? 0}`;
    case 'not_capturable':
      return snapshot?.value === 'pending'
        ? 'Payment is not authorized'
        : snapshot?.context.payment?.capture === 'automatic'
          ? 'Payment was captured automatically'
          : 'Payment cannot be captured';
    case 'refund_succeeded':
      return 'Refund succeeded';
    case 'refund_replayed':
      return 'Refund already made in prior call';
    case 'refund_mismatch':
      return 'Refund key already used for a different refund';
    case 'refund_too_large': {
      const left =
        snapshot === null ? 0 : snapshot.context.capturedCents - snapshot.context.refundedCents;
      return `Refund is above the ${left} left to refund`;
    }
    case 'refund_limit_reached':
      return 'Payment has as many refunds as one may have';
    case 'not_refundable':
      return 'Payment has nothing captured to refund';
  }
}
