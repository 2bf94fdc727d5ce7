import { describe, expect, it } from 'vitest';
import { REFUND_LIMIT } from '../../src/machine/payment.machine.ts';
import { MachineSteps } from '../../src/runtime/machine-steps.ts';
import { paymentMachine } from '../../src/machine/payment.machine.ts';
import {
  startPayment,
  stepPayment,
  type PaymentSnapshot,
} from '../../src/payments/payment.snapshot.ts';
import type { CaptureMode, PaymentEvent } from '../../src/machine/payment.types.ts';

const input = {
  token: 'tok_1',
  lifeId: 'life-1',
  at: 1_000,
  expiryMs: 500,
  captureWindowMs: 700,
  retentionMs: 300,
};
const body = {
  accountId: 'acct-1',
  amountCents: 1_500,
  currency: 'EUR',
  capture: 'manual' as CaptureMode,
};
const pay = (at: number, b: Partial<typeof body> = {}): PaymentEvent => ({
  type: 'PAY',
  ...body,
  ...b,
  at,
});
const capture = (at: number, amountCents: number | null = null): PaymentEvent => ({
  type: 'CAPTURE',
  amountCents,
  at,
});
const refund = (
  at: number,
  refundId: string,
  amountCents: number | null = null,
  reason: string | null = null,
): PaymentEvent => ({ type: 'REFUND', refundId, amountCents, reason, at });
const cancel = (at: number): PaymentEvent => ({ type: 'CANCEL', at });

function runFrom(snapshot: PaymentSnapshot, ...events: PaymentEvent[]) {
  let step = { snapshot, effects: [] as ReturnType<typeof stepPayment>['effects'] };
  for (const event of events) step = stepPayment(step.snapshot, event);
  return step;
}
const run = (...events: PaymentEvent[]) => runFrom(startPayment(input).snapshot, ...events);

const authorized = () => run(pay(2_000), { type: 'CHARGE_AUTHORIZED', at: 2_010 }).snapshot;
const captured = (amountCents: number | null = null) =>
  runFrom(authorized(), capture(2_100, amountCents), { type: 'CAPTURE_SUCCEEDED', at: 2_110 })
    .snapshot;
const charged = () =>
  run(pay(2_000, { capture: 'automatic' }), { type: 'CHARGE_SUCCEEDED', at: 2_010 }).snapshot;
const refunded = (from: PaymentSnapshot, at: number, id: string, amountCents: number | null) =>
  runFrom(from, refund(at, id, amountCents), { type: 'REFUND_COMPLETED', at: at + 5 });

const outcomeOf = (effects: readonly { type: string; params?: unknown }[]) =>
  effects.filter((e) => e.type === 'reply').map((e) => (e.params as { outcome: string }).outcome);

describe('manual capture: authorize, capture, void', () => {
  it('authorizes a manual payment through an explicit authorizing step, charge without capture', () => {
    const { snapshot, effects } = run(pay(2_000));
    expect(snapshot.value).toBe('authorizing');
    expect(effects).toEqual([
      {
        type: 'charge',
        params: {
          operationId: 'charge:tok_1:life-1:1',
          accountId: 'acct-1',
          amountCents: 1_500,
          currency: 'EUR',
          capture: false,
          at: 2_000,
        },
      },
    ]);
  });

  it('holds an authorization without an expiry: its capture window governs it', () => {
    const step = run(pay(2_000), { type: 'CHARGE_AUTHORIZED', at: 2_010 });
    expect(step.snapshot.value).toBe('authorized');
    expect(step.snapshot.context).toMatchObject({
      chargedAt: 2_010,
      captureBy: 2_710,
      capturedCents: 0,
      expiresAt: null,
    });
    expect(outcomeOf(step.effects)).toEqual(['authorized']);
    const steps = new MachineSteps(paymentMachine);
    const actions = steps.transition(run(pay(2_000)).snapshot, {
      type: 'CHARGE_AUTHORIZED',
      at: 2_010,
    }).actions;
    expect(actions.filter((a) => a.type === 'xstate.cancel').map((a) => a.params)).toEqual([
      { sendId: 'expire' },
    ]);
    expect(actions.filter((a) => a.type === 'xstate.raise').map((a) => a.params)).toEqual([
      {
        id: 'capture-window',
        delay: 700,
        event: { type: 'CAPTURE_WINDOW_ELAPSED', at: 2_710 },
      },
    ]);
    // EXPIRE (a stale timer of a decline) changes nothing there.
    expect(stepPayment(step.snapshot, { type: 'EXPIRE', at: 2_500 }).snapshot.value).toBe(
      'authorized',
    );
  });

  it('captures part of an authorization, releasing the rest, and starts the expiry window there', () => {
    const capturing = stepPayment(authorized(), capture(2_100, 1_000));
    expect(capturing.snapshot.value).toBe('capturing');
    expect(capturing.effects).toEqual([
      {
        type: 'capture',
        params: {
          operationId: 'capture:tok_1:life-1',
          accountId: 'acct-1',
          currency: 'EUR',
          authorizedCents: 1_500,
          amountCents: 1_000,
          at: 2_100,
        },
      },
    ]);
    const done = stepPayment(capturing.snapshot, { type: 'CAPTURE_SUCCEEDED', at: 2_110 });
    expect(done.snapshot.value).toBe('processed');
    expect(done.snapshot.context).toMatchObject({
      capturedCents: 1_000,
      capturedAt: 2_110,
      captureBy: null,
      expiresAt: 2_610,
    });
    expect(done.effects).toEqual([
      { type: 'scheduleExpiry', params: { expiresAt: 2_610 } },
      { type: 'reply', params: { outcome: 'captured' } },
    ]);
  });

  it('captures the whole authorization when no amount is given', () => {
    expect(captured().context.capturedCents).toBe(1_500);
  });

  it('refuses a capture above the authorization and changes nothing', () => {
    const before = authorized();
    const step = stepPayment(before, capture(2_100, 1_501));
    expect(step.snapshot.value).toBe('authorized');
    expect(step.snapshot.context).toEqual(before.context);
    expect(outcomeOf(step.effects)).toEqual(['capture_too_large']);
  });

  it('replays the same capture, refuses another amount, and refuses capturing an automatic payment', () => {
    const partial = captured(1_000);
    expect(outcomeOf(stepPayment(partial, capture(3_000, 1_000)).effects)).toEqual([
      'capture_replayed',
    ]);
    expect(outcomeOf(stepPayment(partial, capture(3_000, 900)).effects)).toEqual([
      'capture_mismatch',
    ]);
    expect(outcomeOf(stepPayment(captured(), capture(3_000)).effects)).toEqual([
      'capture_replayed',
    ]);
    expect(outcomeOf(stepPayment(charged(), capture(3_000)).effects)).toEqual(['not_capturable']);
    expect(outcomeOf(stepPayment(startPayment(input).snapshot, capture(3_000)).effects)).toEqual([
      'not_capturable',
    ]);
  });

  it('voids an authorization on cancel: the hold is released and it is cancelled as requested', () => {
    const voiding = stepPayment(authorized(), cancel(2_200));
    expect(voiding.snapshot.value).toBe('voiding');
    expect(voiding.effects).toEqual([
      {
        type: 'void',
        params: {
          operationId: 'void:tok_1:life-1',
          accountId: 'acct-1',
          currency: 'EUR',
          amountCents: 1_500,
          at: 2_200,
        },
      },
    ]);
    const done = stepPayment(voiding.snapshot, { type: 'VOID_COMPLETED', at: 2_210 });
    expect(done.snapshot.value).toBe('cancelled');
    expect(done.snapshot.context).toMatchObject({
      cancelledAt: 2_210,
      cancellationReason: 'requested',
      captureBy: null,
      expiresAt: 2_710,
    });
    expect(outcomeOf(done.effects)).toEqual(['cancelled']);
    expect(outcomeOf(stepPayment(done.snapshot, capture(3_000)).effects)).toEqual([
      'not_capturable',
    ]);
  });

  it('voids an authorization whose capture window elapsed', () => {
    const done = runFrom(
      authorized(),
      { type: 'CAPTURE_WINDOW_ELAPSED', at: 2_710 },
      {
        type: 'VOID_COMPLETED',
        at: 2_720,
      },
    );
    expect(done.snapshot.value).toBe('cancelled');
    expect(done.snapshot.context.cancellationReason).toBe('capture_window_elapsed');
  });

  it('ignores the capture window once captured', () => {
    const after = captured();
    expect(stepPayment(after, { type: 'CAPTURE_WINDOW_ELAPSED', at: 2_710 }).snapshot).toBe(after);
  });

  it('replays the same manual payment on an authorization and refuses another body', () => {
    expect(outcomeOf(stepPayment(authorized(), pay(2_500)).effects)).toEqual(['replayed']);
    expect(
      outcomeOf(stepPayment(authorized(), pay(2_500, { capture: 'automatic' })).effects),
    ).toEqual(['body_mismatch']);
  });

  it('declines an authorization short of funds and leaves the token payable', () => {
    const declined = run(pay(2_000), {
      type: 'CHARGE_DECLINED',
      reason: 'insufficient_funds',
      at: 2_010,
    });
    expect(declined.snapshot.value).toBe('pending');
    expect(outcomeOf(declined.effects)).toEqual(['declined']);
  });
});

describe('partial refunds', () => {
  it('refunds part of the captured amount into partially_refunded, under an operation id per refund', () => {
    const refunding = stepPayment(captured(), refund(3_000, 'r1', 400, 'damaged'));
    expect(refunding.snapshot.value).toBe('refunding');
    expect(refunding.effects).toEqual([
      {
        type: 'refund',
        params: {
          operationId: 'refund:tok_1:life-1:1',
          accountId: 'acct-1',
          currency: 'EUR',
          amountCents: 400,
          at: 3_000,
        },
      },
    ]);
    const done = stepPayment(refunding.snapshot, { type: 'REFUND_COMPLETED', at: 3_010 });
    expect(done.snapshot.value).toBe('partially_refunded');
    expect(done.snapshot.context.refundedCents).toBe(400);
    expect(done.snapshot.context.refunds).toEqual([
      {
        refundId: 'r1',
        amountCents: 400,
        requestedCents: 400,
        reason: 'damaged',
        requestedAt: 3_000,
        refundedAt: 3_010,
        operationId: 'refund:tok_1:life-1:1',
      },
    ]);
    // A refund is an accepted event: the window starts again from it.
    expect(done.effects).toEqual([
      { type: 'scheduleExpiry', params: { expiresAt: 3_510 } },
      { type: 'reply', params: { outcome: 'refund_succeeded' } },
    ]);
  });

  it('refunds repeatedly until the sum is the captured amount, then is refunded', () => {
    const first = refunded(captured(1_000), 3_000, 'r1', 600).snapshot;
    const second = refunded(first, 3_100, 'r2', null);
    expect(second.snapshot.value).toBe('refunded');
    expect(second.snapshot.context.refundedCents).toBe(1_000);
    expect(second.snapshot.context.refunds.map((r) => [r.refundId, r.amountCents])).toEqual([
      ['r1', 600],
      ['r2', 400],
    ]);
    expect(outcomeOf(second.effects)).toEqual(['refund_succeeded']);
    expect(second.snapshot.context.refunds[1]?.operationId).toBe('refund:tok_1:life-1:2');
  });

  it('refuses a refund above what remains, and any new refund once refunded, changing nothing', () => {
    const first = refunded(charged(), 3_000, 'r1', 1_000).snapshot;
    const tooMuch = stepPayment(first, refund(3_100, 'r2', 501));
    expect(tooMuch.snapshot.context).toEqual(first.context);
    expect(outcomeOf(tooMuch.effects)).toEqual(['refund_too_large']);
    const all = refunded(first, 3_200, 'r3', 500).snapshot;
    expect(all.value).toBe('refunded');
    expect(outcomeOf(stepPayment(all, refund(3_300, 'r4', 1)).effects)).toEqual([
      'refund_too_large',
    ]);
  });

  it('replays a refund key with the same body and refuses it with another', () => {
    const first = refunded(charged(), 3_000, 'r1', 700).snapshot;
    const replay = stepPayment(first, refund(3_100, 'r1', 700));
    expect(replay.snapshot.context).toEqual(first.context);
    expect(outcomeOf(replay.effects)).toEqual(['refund_replayed']);
    expect(outcomeOf(stepPayment(first, refund(3_100, 'r1', 701)).effects)).toEqual([
      'refund_mismatch',
    ]);
    expect(outcomeOf(stepPayment(first, refund(3_100, 'r1', 700, 'why')).effects)).toEqual([
      'refund_mismatch',
    ]);
    // A refund that emptied the payment replays too.
    const all = refunded(first, 3_200, 'r2', null).snapshot;
    expect(outcomeOf(stepPayment(all, refund(3_300, 'r2', null)).effects)).toEqual([
      'refund_replayed',
    ]);
  });

  it('refuses refunds where nothing is captured', () => {
    for (const snapshot of [startPayment(input).snapshot, authorized()]) {
      expect(outcomeOf(stepPayment(snapshot, refund(3_000, 'r1')).effects)).toEqual([
        'not_refundable',
      ]);
    }
  });

  it('cancels a partly refunded payment by refunding what remains', () => {
    const first = refunded(captured(1_000), 3_000, 'r1', 300).snapshot;
    const refunding = stepPayment(first, cancel(3_100));
    expect(refunding.snapshot.value).toBe('refunding');
    expect(refunding.effects).toEqual([
      {
        type: 'refund',
        params: {
          operationId: 'refund:tok_1:life-1:2',
          accountId: 'acct-1',
          currency: 'EUR',
          amountCents: 700,
          at: 3_100,
        },
      },
    ]);
    const done = stepPayment(refunding.snapshot, { type: 'REFUND_COMPLETED', at: 3_110 });
    expect(done.snapshot.value).toBe('refunded');
    expect(done.snapshot.context.refundedCents).toBe(1_000);
    expect(outcomeOf(done.effects)).toEqual(['refunded']);
    expect(outcomeOf(stepPayment(done.snapshot, cancel(3_200)).effects)).toEqual(['refunded']);
  });

  it(`keeps at most ${REFUND_LIMIT} refunds on a payment`, () => {
    let snapshot = run(pay(2_000, { capture: 'automatic', amountCents: 1_000 }), {
      type: 'CHARGE_SUCCEEDED',
      at: 2_010,
    }).snapshot;
    for (let i = 0; i < REFUND_LIMIT; i++) {
      snapshot = refunded(snapshot, 3_000 + i * 10, `r${i}`, 1).snapshot;
    }
    expect(snapshot.value).toBe('partially_refunded');
    const over = stepPayment(snapshot, refund(9_000, 'one-more', 1));
    expect(outcomeOf(over.effects)).toEqual(['refund_limit_reached']);
    expect(over.snapshot.context).toEqual(snapshot.context);
  });

  it('expires a partly refunded payment one window after its last refund', () => {
    const first = refunded(charged(), 3_000, 'r1', 100).snapshot;
    expect(first.context.expiresAt).toBe(3_505);
    expect(stepPayment(first, { type: 'EXPIRE', at: 3_505 }).snapshot.value).toBe('expired');
  });
});
