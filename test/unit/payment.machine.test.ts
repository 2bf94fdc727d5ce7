import { describe, expect, it } from 'vitest';
import { PAYMENT_MACHINE_VERSION } from '../../src/machine/payment.machine.ts';
import {
  changesNothing,
  fromStored,
  SnapshotVersionError,
  startPayment,
  stepPayment,
  toStored,
  type PaymentSnapshot,
} from '../../src/machine/payment.snapshot.ts';
import type { PaymentEvent } from '../../src/machine/payment.types.ts';

const input = { token: 'tok_1', lifeId: 'life-1', at: 1_000, expiryMs: 500, retentionMs: 300 };
const body = { accountId: 'acct-1', amountCents: 1_500 };
const pay = (at: number, b = body): PaymentEvent => ({ type: 'PAY', ...b, at });
const cancel = (at: number): PaymentEvent => ({ type: 'CANCEL', at });
const expire = (at: number, lifeId = input.lifeId, dueAt?: number): PaymentEvent => ({
  type: 'EXPIRE',
  lifeId,
  ...(dueAt === undefined ? {} : { dueAt }),
  at,
});

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
        params: { operationId: 'charge:tok_1:life-1:1', accountId: 'acct-1', amountCents: 1_500 },
      },
    ]);
  });

  it('records a successful charge as processed and sets the expiry timer', () => {
    const { snapshot, effects } = run(pay(2_000), { type: 'CHARGE_SUCCEEDED', at: 2_010 });
    expect(snapshot.value).toBe('processed');
    expect(snapshot.context.chargedAt).toBe(2_010);
    expect(effects).toEqual([
      { type: 'scheduleExpiry', params: { token: 'tok_1', lifeId: 'life-1', expiresAt: 2_510 } },
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
    // A declined token is kept, and expires one window after its first decline.
    expect(declined.snapshot.context.expiresAt).toBe(2_510);
    expect(declined.effects).toEqual([
      { type: 'scheduleExpiry', params: { token: 'tok_1', lifeId: 'life-1', expiresAt: 2_510 } },
      { type: 'reply', params: { outcome: 'declined' } },
    ]);

    const retry = stepPayment(
      declined.snapshot,
      pay(3_000, { accountId: 'acct-1', amountCents: 900 }),
    );
    expect(retry.snapshot.value).toBe('charging');
    expect(retry.effects).toEqual([
      {
        type: 'charge',
        params: { operationId: 'charge:tok_1:life-1:2', accountId: 'acct-1', amountCents: 900 },
      },
    ]);
  });

  it('replays a processed payment sent again with the same body without charging', () => {
    const effects = unchanged(processed(), pay(4_000));
    expect(effects).toEqual([{ type: 'reply', params: { outcome: 'replayed' } }]);
  });

  it('rejects the same token with a different body and charges nothing', () => {
    for (const other of [
      { accountId: 'acct-2', amountCents: 1_500 },
      { accountId: 'acct-1', amountCents: 1_501 },
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
      { type: 'scheduleExpiry', params: { token: 'tok_1', lifeId: 'life-1', expiresAt: 2_500 } },
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
        params: { operationId: 'refund:tok_1:life-1', accountId: 'acct-1', amountCents: 1_500 },
      },
    ]);
    const done = stepPayment(refunding.snapshot, { type: 'REFUND_COMPLETED', at: 3_010 });
    expect(done.snapshot.value).toBe('refunded');
    expect(done.snapshot.context.refundedAt).toBe(3_010);
    expect(done.effects).toEqual([{ type: 'reply', params: { outcome: 'refunded' } }]);
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
  ])('expires a %s token and schedules the removal after retention', (_name, from) => {
    const { snapshot, effects } = stepPayment(from(), expire(9_000));
    expect(snapshot.value).toBe('expired');
    expect(snapshot.context.expiredAt).toBe(9_000);
    expect(effects).toEqual([
      { type: 'scheduleRemoval', params: { token: 'tok_1', removeAt: 9_300 } },
    ]);
  });

  it.each([
    ['processed', processed],
    ['cancelled', cancelled],
    ['refunded', refunded],
  ])('ignores an EXPIRE from an earlier life of a %s token', (_name, from) => {
    expect(unchanged(from(), expire(9_000, 'life-0'))).toEqual([]);
  });

  it('ignores a duplicate or late EXPIRE on an expired token', () => {
    expect(unchanged(expired(), expire(9_000))).toEqual([]);
  });

  it('expires a declined pending token when its timer fires, and keeps a second decline from moving the deadline', () => {
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
    expect(again.snapshot.context.expiresAt).toBe(2_510);
    const expired = stepPayment(again.snapshot, expire(2_600, input.lifeId, 2_510));
    expect(expired.snapshot.value).toBe('expired');
    expect(expired.snapshot.context.removeAt).toBe(2_600 + input.retentionMs);
  });

  it('ignores a timer whose deadline was superseded by a later one', () => {
    // Declined, then charged later: the deadline moves on, and the pending record's timer is stale.
    const charged = run(
      pay(2_000),
      { type: 'CHARGE_DECLINED', reason: 'insufficient_funds', at: 2_010 },
      pay(2_300),
      { type: 'CHARGE_SUCCEEDED', at: 2_310 },
    );
    expect(charged.snapshot.context.expiresAt).toBe(2_810);
    expect(unchanged(charged.snapshot, expire(2_600, input.lifeId, 2_510))).toEqual([]);
    expect(stepPayment(charged.snapshot, expire(2_900, input.lifeId, 2_810)).snapshot.value).toBe(
      'expired',
    );
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
  it('round-trips through JSON with the machine version beside it', () => {
    const stored = JSON.parse(JSON.stringify(toStored(refunded()))) as ReturnType<typeof toStored>;
    expect(stored.machineVersion).toBe(PAYMENT_MACHINE_VERSION);
    const restored = fromStored(stored);
    expect(restored.value).toBe('refunded');
    expect(restored.context).toEqual(refunded().context);
    // A restored snapshot keeps deciding like the original.
    expect(stepPayment(restored, cancel(5_000)).effects).toEqual([
      { type: 'reply', params: { outcome: 'refunded' } },
    ]);
  });

  it('refuses a snapshot written by another machine version', () => {
    const stored = { ...toStored(processed()), machineVersion: PAYMENT_MACHINE_VERSION + 1 };
    expect(() => fromStored(stored)).toThrow(SnapshotVersionError);
  });
});

describe('events that change nothing', () => {
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
      charging: [],
      processed: ['PAY'],
      refunding: [],
      cancelled: ['PAY', 'CANCEL'],
      refunded: ['PAY', 'CANCEL'],
      expired: ['PAY', 'CANCEL'],
    });
  });

  it('leave the snapshot as it is and only reply, whatever the body', () => {
    for (const [snapshot, event] of [
      [processed(), pay(9_000)],
      [processed(), pay(9_000, { accountId: 'acct-other', amountCents: 1 })],
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
