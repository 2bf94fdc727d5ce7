import { describe, expect, it } from 'vitest';
import { migratePaymentSnapshot } from '../../src/payments/payment-migrations.ts';
import { readPaymentSnapshot, stepPayment } from '../../src/payments/payment.snapshot.ts';
import { refundParams } from '../../src/machine/payment.machine.ts';

const migrate = migratePaymentSnapshot({ defaultCurrency: 'GBP', captureWindowMs: 9_000 });

/** A snapshot as machine version 1 stored it. */
function v1(value: string, context: Record<string, unknown>) {
  return {
    status: value === 'expired' ? 'done' : 'active',
    value,
    historyValue: {},
    children: {},
    context: {
      token: 'tok',
      lifeId: 'life',
      expiryMs: 500,
      retentionMs: 300,
      payment: { accountId: 'acct', amountCents: 1_200 },
      attempt: 1,
      lastDecline: null,
      createdAt: 1_000,
      updatedAt: 2_000,
      chargedAt: null,
      cancelledAt: null,
      refundedAt: null,
      expiredAt: null,
      expiresAt: null,
      removeAt: null,
      history: [],
      ...context,
    },
  };
}

const read = (persisted: unknown) => readPaymentSnapshot(migrate(persisted, 1));

describe('payment snapshots of machine version 1', () => {
  it('read a processed payment as captured in full in the default currency, automatic', () => {
    const s = read(v1('processed', { chargedAt: 2_000, expiresAt: 2_500 }));
    expect(s.value).toBe('processed');
    expect(s.context).toMatchObject({
      payment: { accountId: 'acct', amountCents: 1_200, currency: 'GBP', capture: 'automatic' },
      capturedCents: 1_200,
      capturedAt: 2_000,
      refundedCents: 0,
      refunds: [],
      limits: { expiryMs: 500, captureWindowMs: 9_000, retentionMs: 300, refundLimit: 100 },
      cancellationReason: null,
    });
    // It refunds in part like any payment of this version.
    const refunding = stepPayment(s, {
      type: 'REFUND',
      refundId: 'r1',
      amountCents: 200,
      reason: null,
      at: 3_000,
    });
    expect(refunding.snapshot.value).toBe('refunding');
  });

  it('read a refunded payment with its one refund listed, in full, made by a cancel', () => {
    const s = read(v1('refunded', { chargedAt: 2_000, refundedAt: 2_400, updatedAt: 2_400 }));
    expect(s.context.refundedCents).toBe(1_200);
    expect(s.context.refunds).toEqual([
      {
        refundId: null,
        amountCents: 1_200,
        requestedCents: null,
        reason: null,
        requestedAt: 2_400,
        refundedAt: 2_400,
        operationId: 'refund:tok:life',
      },
    ]);
  });

  it('finish a refund in flight under the operation id that version gave it', () => {
    const s = read(v1('refunding', { chargedAt: 2_000, updatedAt: 2_300 }));
    expect(refundParams(s.context)).toEqual({
      operationId: 'refund:tok:life',
      accountId: 'acct',
      currency: 'GBP',
      amountCents: 1_200,
      at: 2_300,
    });
    const done = stepPayment(s, { type: 'REFUND_COMPLETED', at: 2_350 });
    expect(done.snapshot.value).toBe('refunded');
    expect(done.snapshot.context.refundedCents).toBe(1_200);
    expect(done.effects).toContainEqual({ type: 'reply', params: { outcome: 'refunded' } });
  });

  it('read a cancelled token as cancelled on request, and a pending one as it was', () => {
    expect(read(v1('cancelled', { payment: null, cancelledAt: 2_000 })).context).toMatchObject({
      cancellationReason: 'requested',
      capturedCents: 0,
      payment: null,
    });
    const pending = read(
      v1('pending', { lastDecline: { reason: 'insufficient_funds', at: 2_000 } }),
    );
    expect(pending.context.capturedCents).toBe(0);
    expect(pending.context.payment?.currency).toBe('GBP');
  });

  it('refuse a version this build does not know', () => {
    expect(() => migrate(v1('pending', {}), 7)).toThrow(/version 7/);
  });
});
