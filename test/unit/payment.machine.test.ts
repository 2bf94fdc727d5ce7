import { describe, expect, it } from 'vitest';
import { removeAtOf } from '../../src/http/views.ts';
import { UnchangingEvents } from '../../src/runtime/unchanging-events.ts';
import { HISTORY_LIMIT, paymentMachine } from '../../src/machine/payment.machine.ts';
import { MachineSteps } from '../../src/runtime/machine-steps.ts';
import {
  readPaymentSnapshot,
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
  currency: 'USD',
  capture: 'automatic' as CaptureMode,
};
const pay = (at: number, b: Partial<typeof body> = {}): PaymentEvent => ({
  type: 'PAY',
  ...body,
  ...b,
  at,
});
const cancel = (at: number): PaymentEvent => ({ type: 'CANCEL', at });
const expire = (at: number): PaymentEvent => ({ type: 'EXPIRE', at });
const unchanging = new UnchangingEvents(paymentMachine);
const changesNothing = (status: string, event: string) => unchanging.has(status, event);

/** Runs events in order and returns the last step. */
function run(...events: PaymentEvent[]) {
  let step = startPayment(input);
  for (const event of events) step = stepPayment(step.snapshot, event);
  return step;
}

const processed = () => run(pay(2_000), { type: 'CHARGE_SUCCEEDED', at: 2_010 }).snapshot;
const cancelled = () => run(cancel(2_000)).snapshot;
const refunded = () =>
  run(pay(2_000), { type: 'CHARGE_SUCCEEDED', at: 2_010 }, cancel(3_000), {
    type: 'REFUND_COMPLETED',
    at: 3_010,
  }).snapshot;
const expired = () => stepPayment(processed(), expire(2_510)).snapshot;
const manual = { capture: 'manual' as const };
const authorized = () => run(pay(2_000, manual), { type: 'CHARGE_AUTHORIZED', at: 2_010 }).snapshot;

function unchanged(before: PaymentSnapshot, event: PaymentEvent) {
  const step = stepPayment(before, event);
  expect(step.snapshot.value).toBe(before.value);
  expect(step.snapshot.context).toEqual(before.context);
  return step.effects;
}

describe('payment machine rules', () => {
  it('starts pending with nothing charged and no effects', () => {
    const { snapshot, effects } = startPayment(input);
    expect(snapshot.value).toBe('pending');
    expect(snapshot.context.payment).toBeNull();
    expect(effects).toEqual([]);
  });

  it('charges a pending token once, through an explicit charging step', () => {
    const { snapshot, effects } = run(pay(2_000));
    expect(snapshot.value).toBe('charging');
    expect(effects).toEqual([
      {
        type: 'charge',
        params: {
          operationId: 'charge:tok_1:life-1:1',
          accountId: 'acct-1',
          amountCents: 1_500,
          currency: 'USD',
          capture: true,
          at: 2_000,
        },
      },
    ]);
  });

  it('records a successful charge as processed and sets the expiry timer', () => {
    const { snapshot, effects } = run(pay(2_000), { type: 'CHARGE_SUCCEEDED', at: 2_010 });
    expect(snapshot.value).toBe('processed');
    expect(snapshot.context.chargedAt).toBe(2_010);
    expect(effects).toEqual([
      { type: 'scheduleExpiry', params: { expiresAt: 2_510 } },
      { type: 'reply', params: { outcome: 'charged' } },
    ]);
  });

  it('leaves a declined token payable and charges a later attempt under a new operation id', () => {
    const declined = run(pay(2_000), {
      type: 'CHARGE_DECLINED',
      reason: 'insufficient_funds',
      at: 2_010,
    });
    expect(declined.snapshot.value).toBe('pending');
    expect(declined.snapshot.context.lastDecline).toEqual({
      reason: 'insufficient_funds',
      at: 2_010,
    });
    // A declined token is kept, and expires one window after its decline.
    expect(declined.snapshot.context.expiresAt).toBe(2_510);
    expect(declined.effects).toEqual([
      { type: 'scheduleExpiry', params: { expiresAt: 2_510 } },
      { type: 'reply', params: { outcome: 'declined' } },
    ]);

    const retry = stepPayment(declined.snapshot, pay(3_000, { amountCents: 900 }));
    expect(retry.snapshot.value).toBe('charging');
    expect(retry.effects).toEqual([
      {
        type: 'charge',
        params: {
          operationId: 'charge:tok_1:life-1:2',
          accountId: 'acct-1',
          amountCents: 900,
          currency: 'USD',
          capture: true,
          at: 3_000,
        },
      },
    ]);
  });

  it('replays a processed payment sent again with the same body without charging', () => {
    const effects = unchanged(processed(), pay(4_000));
    expect(effects).toEqual([{ type: 'reply', params: { outcome: 'replayed' } }]);
  });

  it('rejects the same token with a different body and charges nothing', () => {
    for (const other of [
      { accountId: 'acct-2' },
      { amountCents: 1_501 },
      { currency: 'EUR' },
      { capture: 'manual' as const },
    ]) {
      const effects = unchanged(processed(), pay(4_000, other));
      expect(effects).toEqual([{ type: 'reply', params: { outcome: 'body_mismatch' } }]);
    }
  });

  it('lets a cancel overtake its payment: an unknown token becomes cancelled with a timer', () => {
    const { snapshot, effects } = run(cancel(2_000));
    expect(snapshot.value).toBe('cancelled');
    expect(snapshot.context.cancelledAt).toBe(2_000);
    expect(effects).toEqual([
      { type: 'scheduleExpiry', params: { expiresAt: 2_500 } },
      { type: 'reply', params: { outcome: 'cancelled' } },
    ]);
  });

  it('blocks every payment after a cancel, without charging', () => {
    expect(unchanged(cancelled(), pay(3_000))).toEqual([
      { type: 'reply', params: { outcome: 'rejected' } },
    ]);
  });

  it('refunds a processed payment on cancel, through an explicit refunding step', () => {
    const refunding = stepPayment(processed(), cancel(3_000));
    expect(refunding.snapshot.value).toBe('refunding');
    expect(refunding.effects).toEqual([
      {
        type: 'refund',
        params: {
          operationId: 'refund:tok_1:life-1',
          accountId: 'acct-1',
          currency: 'USD',
          amountCents: 1_500,
          at: 3_000,
        },
      },
    ]);
    const done = stepPayment(refunding.snapshot, { type: 'REFUND_COMPLETED', at: 3_010 });
    expect(done.snapshot.value).toBe('refunded');
    expect(done.snapshot.context.refunds.at(-1)?.refundedAt).toBe(3_010);
    // The refund is an accepted event: the window starts again from it.
    expect(done.snapshot.context.expiresAt).toBe(3_510);
    expect(done.effects).toEqual([
      { type: 'scheduleExpiry', params: { expiresAt: 3_510 } },
      { type: 'reply', params: { outcome: 'refunded' } },
    ]);
  });

  it('refunds exactly once: a second cancel answers the same and refunds nothing', () => {
    expect(unchanged(refunded(), cancel(4_000))).toEqual([
      { type: 'reply', params: { outcome: 'refunded' } },
    ]);
  });

  it('answers a repeated cancel of a cancelled token the same and sets no second timer', () => {
    expect(unchanged(cancelled(), cancel(3_000))).toEqual([
      { type: 'reply', params: { outcome: 'cancelled' } },
    ]);
  });

  it('rejects payments on a refunded token', () => {
    expect(unchanged(refunded(), pay(4_000))).toEqual([
      { type: 'reply', params: { outcome: 'rejected' } },
    ]);
  });

  it.each([
    ['processed', processed],
    ['cancelled', cancelled],
    ['refunded', refunded],
  ])(
    'expires a %s token into a final state, removed after retention by the engine',
    (_name, from) => {
      const { snapshot, effects } = stepPayment(from(), expire(9_000));
      expect(snapshot.value).toBe('expired');
      expect(snapshot.status).toBe('done');
      expect(snapshot.context.expiredAt).toBe(9_000);
      expect(removeAtOf(snapshot.context)).toBe(9_300);
      expect(effects).toEqual([]);
    },
  );

  it('ignores a duplicate or late EXPIRE on an expired token', () => {
    expect(unchanged(expired(), expire(9_000))).toEqual([]);
  });

  it('expires a declined pending token when its timer fires, one window after its last decline', () => {
    const declined = run(pay(2_000), {
      type: 'CHARGE_DECLINED',
      reason: 'insufficient_funds',
      at: 2_010,
    });
    const again = run(
      pay(2_000),
      { type: 'CHARGE_DECLINED', reason: 'insufficient_funds', at: 2_010 },
      pay(2_100),
      { type: 'CHARGE_DECLINED', reason: 'insufficient_funds', at: 2_110 },
    );
    expect(declined.snapshot.context.expiresAt).toBe(2_510);
    expect(again.snapshot.context.expiresAt).toBe(2_610);
    const expired = stepPayment(again.snapshot, expire(2_610));
    expect(expired.snapshot.value).toBe('expired');
    expect(removeAtOf(expired.snapshot.context)).toBe(2_610 + input.retentionMs);
  });

  it('moves the deadline of a declined token that is charged later: the same timer, raised again', () => {
    // The engine keeps one timer per id: the earlier one changes nothing when delivered.
    const charged = run(
      pay(2_000),
      { type: 'CHARGE_DECLINED', reason: 'insufficient_funds', at: 2_010 },
      pay(2_300),
      { type: 'CHARGE_SUCCEEDED', at: 2_310 },
    );
    expect(charged.snapshot.context.expiresAt).toBe(2_810);
    expect(charged.effects).toContainEqual({
      type: 'scheduleExpiry',
      params: { expiresAt: 2_810 },
    });
  });

  it('answers payments and cancels on an expired token with expired, changing nothing', () => {
    expect(unchanged(expired(), pay(9_000))).toEqual([
      { type: 'reply', params: { outcome: 'expired' } },
    ]);
    expect(unchanged(expired(), cancel(9_000))).toEqual([
      { type: 'reply', params: { outcome: 'expired' } },
    ]);
  });

  it('takes no client event while a charge or refund is in flight: the runtime finishes it first', () => {
    const charging = run(pay(2_000)).snapshot;
    for (const event of [pay(2_001), cancel(2_001), expire(2_001)]) {
      expect(unchanged(charging, event)).toEqual([]);
    }
    const refunding = stepPayment(processed(), cancel(3_000)).snapshot;
    for (const event of [pay(3_001), cancel(3_001), expire(3_001)]) {
      expect(unchanged(refunding, event)).toEqual([]);
    }
  });

  it('records every state entered, with the event and its time', () => {
    expect(refunded().context.history).toEqual([
      { at: 1_000, event: 'CREATED', state: 'pending' },
      { at: 2_000, event: 'PAY', state: 'charging' },
      { at: 2_010, event: 'CHARGE_SUCCEEDED', state: 'processed' },
      { at: 3_000, event: 'CANCEL', state: 'refunding' },
      { at: 3_010, event: 'REFUND_COMPLETED', state: 'refunded' },
    ]);
  });

  it('is pure: the same snapshot and event give the same result and the input is not changed', () => {
    const before = processed();
    const frozen = structuredClone(before.context);
    const a = stepPayment(before, cancel(3_000));
    const b = stepPayment(before, cancel(3_000));
    expect(a.snapshot.context).toEqual(b.snapshot.context);
    expect(a.effects).toEqual(b.effects);
    expect(before.context).toEqual(frozen);
  });
});

describe('stored snapshots', () => {
  it('round-trip through JSON and keep deciding like the original', () => {
    const stored = JSON.parse(
      JSON.stringify(paymentMachine.getPersistedSnapshot(refunded())),
    ) as unknown;
    const restored = readPaymentSnapshot(stored);
    expect(restored.value).toBe('refunded');
    expect(restored.context).toEqual(refunded().context);
    expect(stepPayment(restored, cancel(5_000)).effects).toEqual([
      { type: 'reply', params: { outcome: 'refunded' } },
    ]);
  });
});

describe('events that change nothing', () => {
  // An event a state does not handle changes nothing there too (charging and
  // refunding take no client event); such records owe their effect, so the
  // engine takes the locked path for them whatever this says.
  it('are read off the definition: payments on a settled token, cancels once cancelled', () => {
    const table = Object.fromEntries(
      (
        [
          'pending',
          'charging',
          'processed',
          'refunding',
          'cancelled',
          'refunded',
          'expired',
        ] as const
      ).map((status) => [
        status,
        (['PAY', 'CANCEL', 'EXPIRE'] as const).filter((event) => changesNothing(status, event)),
      ]),
    );
    expect(table).toEqual({
      pending: [],
      charging: ['PAY', 'CANCEL', 'EXPIRE'],
      processed: ['PAY'],
      refunding: ['PAY', 'CANCEL', 'EXPIRE'],
      cancelled: ['PAY', 'CANCEL'],
      refunded: ['PAY', 'CANCEL'],
      expired: ['PAY', 'CANCEL', 'EXPIRE'],
    });
    // An authorization does not expire; capture and refund only answer where they cannot act.
    expect(
      Object.fromEntries(
        (
          [
            'pending',
            'authorizing',
            'authorized',
            'capturing',
            'voiding',
            'partially_refunded',
            'cancelled',
            'refunded',
            'expired',
          ] as const
        ).map((status) => [
          status,
          (['PAY', 'CAPTURE', 'REFUND', 'EXPIRE', 'CAPTURE_WINDOW_ELAPSED'] as const).filter(
            (event) => changesNothing(status, event),
          ),
        ]),
      ),
    ).toEqual({
      pending: ['CAPTURE', 'REFUND', 'CAPTURE_WINDOW_ELAPSED'],
      authorizing: ['PAY', 'CAPTURE', 'REFUND', 'EXPIRE', 'CAPTURE_WINDOW_ELAPSED'],
      authorized: ['PAY', 'REFUND', 'EXPIRE'],
      capturing: ['PAY', 'CAPTURE', 'REFUND', 'EXPIRE', 'CAPTURE_WINDOW_ELAPSED'],
      voiding: ['PAY', 'CAPTURE', 'REFUND', 'EXPIRE', 'CAPTURE_WINDOW_ELAPSED'],
      partially_refunded: ['PAY', 'CAPTURE', 'CAPTURE_WINDOW_ELAPSED'],
      cancelled: ['PAY', 'CAPTURE', 'REFUND', 'CAPTURE_WINDOW_ELAPSED'],
      refunded: ['PAY', 'CAPTURE', 'REFUND', 'CAPTURE_WINDOW_ELAPSED'],
      expired: ['PAY', 'CAPTURE', 'REFUND', 'EXPIRE', 'CAPTURE_WINDOW_ELAPSED'],
    });
  });

  it('leave the snapshot as it is and only reply, whatever the body', () => {
    for (const [snapshot, event] of [
      [processed(), pay(9_000)],
      [processed(), pay(9_000, { accountId: 'acct-other', amountCents: 1 })],
      [authorized(), pay(9_000, manual)],
      [cancelled(), cancel(9_000)],
      [refunded(), pay(9_000)],
      [expired(), cancel(9_000)],
    ] as const) {
      expect(changesNothing(snapshot.value, event.type)).toBe(true);
      const step = stepPayment(snapshot, event);
      expect(step.snapshot.context).toBe(snapshot.context);
      expect(step.effects.map((e) => e.type)).toEqual(['reply']);
    }
  });
});

describe('what a record shows an operator', () => {
  const decline = (at: number): PaymentEvent => ({
    type: 'CHARGE_DECLINED',
    reason: 'insufficient_funds',
    at,
  });

  it('keeps the last 50 history entries of a token retried many times, newest last', () => {
    const events: PaymentEvent[] = [];
    // 1 creation entry + 2 per declined attempt: 51 entries after 25 attempts.
    for (let i = 0; i < 25; i++) events.push(pay(2_000 + 10 * i), decline(2_005 + 10 * i));
    const before = run(...events.slice(0, -1)).snapshot.context.history;
    expect(before).toHaveLength(HISTORY_LIMIT);
    expect(before[0]).toEqual({ at: 1_000, event: 'CREATED', state: 'pending' });

    const history = run(...events).snapshot.context.history;
    expect(history).toHaveLength(HISTORY_LIMIT);
    // The creation entry is the one dropped.
    expect(history[0]).toEqual({ at: 2_000, event: 'PAY', state: 'charging' });
    expect(history.at(-1)).toEqual({ at: 2_245, event: 'CHARGE_DECLINED', state: 'pending' });
  });

  it('stamps the record with the time of the last event that changed it', () => {
    expect(startPayment(input).snapshot.context.updatedAt).toBe(1_000);
    expect(run(pay(2_000)).snapshot.context.updatedAt).toBe(2_000);
    expect(processed().context.updatedAt).toBe(2_010);
    expect(expired().context.updatedAt).toBe(2_510);
    expect(expired().context.history.at(-1)).toEqual({
      at: 2_510,
      event: 'EXPIRE',
      state: 'expired',
    });
  });

  it('clears the last decline once a later attempt is charged', () => {
    const charged = run(pay(2_000), decline(2_010), pay(2_300), {
      type: 'CHARGE_SUCCEEDED',
      at: 2_310,
    }).snapshot.context;
    expect(charged.lastDecline).toBeNull();
    expect(charged.chargedAt).toBe(2_310);
    expect(charged.payment).toEqual(body);
  });

  it('expires a declined token one window after its decline and removes it after retention', () => {
    const declined = run(pay(2_000), decline(2_010)).snapshot;
    const gone = stepPayment(declined, expire(2_510));
    expect(gone.snapshot.value).toBe('expired');
    expect(gone.snapshot.context.expiredAt).toBe(2_510);
    expect(removeAtOf(gone.snapshot.context)).toBe(2_810);
  });

  it('records a cancel and the expiry in the history', () => {
    const gone = stepPayment(cancelled(), expire(2_500)).snapshot.context.history;
    expect(gone).toEqual([
      { at: 1_000, event: 'CREATED', state: 'pending' },
      { at: 2_000, event: 'CANCEL', state: 'cancelled' },
      { at: 2_500, event: 'EXPIRE', state: 'expired' },
    ]);
  });

  it('cancels a declined token with a fresh window from the cancel', () => {
    const { snapshot, effects } = stepPayment(
      run(pay(2_000), decline(2_010)).snapshot,
      cancel(2_400),
    );
    expect(snapshot.value).toBe('cancelled');
    expect(snapshot.context.cancelledAt).toBe(2_400);
    expect(snapshot.context.expiresAt).toBe(2_900);
    expect(effects).toContainEqual({ type: 'scheduleExpiry', params: { expiresAt: 2_900 } });
  });
});

describe('the expiry timer the engine arms', () => {
  const steps = new MachineSteps(paymentMachine);
  /** The delayed EXPIRE a step raises: its id, due delay and event, as the engine stores them. */
  const timerOf = (snapshot: PaymentSnapshot, event: PaymentEvent) =>
    steps
      .transition(snapshot, event)
      .actions.filter((a) => a.type === 'xstate.raise')
      .map((a) => a.params as { id?: string; delay?: number; event: PaymentEvent });

  it('comes with the answer the engine returns to the client, an emitted reply', () => {
    const { actions } = steps.transition(run(pay(2_000)).snapshot, {
      type: 'CHARGE_SUCCEEDED',
      at: 2_010,
    });
    expect(actions.filter((a) => a.type === 'xstate.emit').map((a) => a.params)).toEqual([
      { event: { type: 'reply', outcome: 'charged' } },
    ]);
  });

  it('is not armed again by a replayed payment: the step asks for the reply and nothing else', () => {
    expect(steps.transition(processed(), pay(4_000)).actions).toEqual([
      { type: 'xstate.emit', params: { event: { type: 'reply', outcome: 'replayed' } } },
    ]);
  });

  it('is due one window after a charge, under the one id that replaces an earlier deadline', () => {
    expect(timerOf(run(pay(2_000)).snapshot, { type: 'CHARGE_SUCCEEDED', at: 2_010 })).toEqual([
      { id: 'expire', delay: 500, event: { type: 'EXPIRE', at: 2_510 } },
    ]);
  });

  it('counts down from the last decline on a second one', () => {
    const again = run(
      pay(2_000),
      {
        type: 'CHARGE_DECLINED',
        reason: 'insufficient_funds',
        at: 2_010,
      },
      pay(2_100),
    ).snapshot;
    expect(
      timerOf(again, { type: 'CHARGE_DECLINED', reason: 'insufficient_funds', at: 2_110 }),
    ).toEqual([{ id: 'expire', delay: 500, event: { type: 'EXPIRE', at: 2_610 } }]);
  });

  it('gives a decline that comes after the first deadline a whole window of its own', () => {
    const late = run(
      pay(2_000),
      {
        type: 'CHARGE_DECLINED',
        reason: 'insufficient_funds',
        at: 2_010,
      },
      pay(2_600),
    ).snapshot;
    expect(
      timerOf(late, { type: 'CHARGE_DECLINED', reason: 'insufficient_funds', at: 2_700 }),
    ).toEqual([{ id: 'expire', delay: 500, event: { type: 'EXPIRE', at: 3_200 } }]);
  });
});
