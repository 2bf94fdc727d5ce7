import { readFileSync } from 'node:fs';
import { assign, createMachine, setup } from 'xstate';
import { describe, expect, it } from 'vitest';
import { paymentMachine } from '../../src/machine/payment.machine.ts';
import { startPayment, stepPayment } from '../../src/payments/payment.snapshot.ts';
import { listStates, listTransitions, transitionsTaken } from '../../src/machine/transitions.ts';

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
  capture: 'automatic' as const,
};

/** The transition table as docs/machine.md shows it: `id | internal | actions`. */
const row = (t: { id: string; internal: boolean; actions: readonly string[] }) =>
  `${t.id} | ${t.internal ? 'internal' : 'external'} | ${t.actions.join(', ')}`;

describe('the payment machine read as data (docs/machine.md, the model tests)', () => {
  it('lists its twelve states in definition order', () => {
    expect(listStates(paymentMachine)).toEqual([
      'pending',
      'charging',
      'authorizing',
      'authorized',
      'capturing',
      'voiding',
      'processed',
      'refunding',
      'partially_refunded',
      'cancelled',
      'refunded',
      'expired',
    ]);
  });

  it('describes each state in docs/machine.md as the machine does', () => {
    const docs = readFileSync(new URL('../../docs/machine.md', import.meta.url), 'utf8');
    const states = paymentMachine.config.states as Record<string, { description?: string }>;
    for (const state of listStates(paymentMachine)) {
      const description = states[state]?.description ?? '';
      expect(description.length).toBeGreaterThan(20);
      // Mermaid takes no ':' or ';' in a note; the generator writes ','.
      expect(docs).toContain(`\n  ${state} : ${description.replaceAll(/[:;]/g, ',')}\n`);
    }
  });

  it('lists every transition with its guard, target and the replies that tell them apart', () => {
    expect(listTransitions(paymentMachine).map(row)).toEqual([
      'pending --PAY[isManualCapture]--> authorizing | external | startCharge',
      'pending --PAY[else]--> charging | external | startCharge',
      'pending --CAPTURE--> pending | internal | reply(not_capturable)',
      'pending --REFUND--> pending | internal | reply(not_refundable)',
      'pending --CANCEL--> cancelled | external | markCancelled',
      'pending --EXPIRE--> expired | external | ',
      'charging --CHARGE_SUCCEEDED--> processed | external | markCharged, scheduleExpiry, reply(charged)',
      'charging --CHARGE_DECLINED--> pending | external | markDeclined, scheduleExpiry, reply(declined)',
      'authorizing --CHARGE_AUTHORIZED--> authorized | external | markAuthorized, cancelExpiry, scheduleCaptureWindow, reply(authorized)',
      'authorizing --CHARGE_DECLINED--> pending | external | markDeclined, scheduleExpiry, reply(declined)',
      'authorized --PAY[isSamePayment]--> authorized | internal | reply(replayed)',
      'authorized --PAY[else]--> authorized | internal | reply(body_mismatch)',
      'authorized --CAPTURE[captureFits]--> capturing | external | startCapture',
      'authorized --CAPTURE[else]--> authorized | internal | reply(capture_too_large)',
      'authorized --REFUND--> authorized | internal | reply(not_refundable)',
      'authorized --CANCEL--> voiding | external | requestVoid',
      'authorized --CAPTURE_WINDOW_ELAPSED--> voiding | external | windowElapsed',
      'capturing --CAPTURE_SUCCEEDED--> processed | external | markCaptured, cancelCaptureWindow, scheduleExpiry, reply(captured)',
      'voiding --VOID_COMPLETED--> cancelled | external | cancelCaptureWindow, markCancelled',
      'processed --PAY[isSamePayment]--> processed | internal | reply(replayed)',
      'processed --PAY[else]--> processed | internal | reply(body_mismatch)',
      'processed --CAPTURE[isSameCapture]--> processed | internal | reply(capture_replayed)',
      'processed --CAPTURE[isManualPayment]--> processed | internal | reply(capture_mismatch)',
      'processed --CAPTURE[else]--> processed | internal | reply(not_capturable)',
      'processed --REFUND[refundFits]--> refunding | external | startRefund',
      'processed --REFUND[else]--> processed | internal | reply(refund_too_large)',
      'processed --CANCEL--> refunding | external | startCancelRefund',
      'processed --EXPIRE--> expired | external | ',
      'refunding --REFUND_COMPLETED[isCancelRefund]--> refunded | external | markRefunded, scheduleExpiry, reply(refunded)',
      'refunding --REFUND_COMPLETED[refundsAll]--> refunded | external | markRefunded, scheduleExpiry, reply(refund_succeeded)',
      'refunding --REFUND_COMPLETED[else]--> partially_refunded | external | markRefunded, scheduleExpiry, reply(refund_succeeded)',
      'partially_refunded --PAY[isSamePayment]--> partially_refunded | internal | reply(replayed)',
      'partially_refunded --PAY[else]--> partially_refunded | internal | reply(body_mismatch)',
      'partially_refunded --CAPTURE[isSameCapture]--> partially_refunded | internal | reply(capture_replayed)',
      'partially_refunded --CAPTURE[isManualPayment]--> partially_refunded | internal | reply(capture_mismatch)',
      'partially_refunded --CAPTURE[else]--> partially_refunded | internal | reply(not_capturable)',
      'partially_refunded --REFUND[isSameRefund]--> partially_refunded | internal | reply(refund_replayed)',
      'partially_refunded --REFUND[isKnownRefund]--> partially_refunded | internal | reply(refund_mismatch)',
      'partially_refunded --REFUND[refundLimitReached]--> partially_refunded | internal | reply(refund_limit_reached)',
      'partially_refunded --REFUND[refundFits]--> refunding | external | startRefund',
      'partially_refunded --REFUND[else]--> partially_refunded | internal | reply(refund_too_large)',
      'partially_refunded --CANCEL--> refunding | external | startCancelRefund',
      'partially_refunded --EXPIRE--> expired | external | ',
      'cancelled --PAY--> cancelled | internal | reply(rejected)',
      'cancelled --CAPTURE--> cancelled | internal | reply(not_capturable)',
      'cancelled --REFUND--> cancelled | internal | reply(not_refundable)',
      'cancelled --CANCEL--> cancelled | internal | reply(cancelled)',
      'cancelled --EXPIRE--> expired | external | ',
      'refunded --PAY--> refunded | internal | reply(rejected)',
      'refunded --CAPTURE[isSameCapture]--> refunded | internal | reply(capture_replayed)',
      'refunded --CAPTURE[isManualPayment]--> refunded | internal | reply(capture_mismatch)',
      'refunded --CAPTURE[else]--> refunded | internal | reply(not_capturable)',
      'refunded --REFUND[isSameRefund]--> refunded | internal | reply(refund_replayed)',
      'refunded --REFUND[isKnownRefund]--> refunded | internal | reply(refund_mismatch)',
      'refunded --REFUND[else]--> refunded | internal | reply(refund_too_large)',
      'refunded --CANCEL--> refunded | internal | reply(refunded)',
      'refunded --EXPIRE--> expired | external | ',
      'expired --PAY--> expired | internal | reply(expired)',
      'expired --CAPTURE--> expired | internal | reply(expired)',
      'expired --REFUND--> expired | internal | reply(expired)',
      'expired --CANCEL--> expired | internal | reply(expired)',
    ]);
  });

  it('gives each transition its parts apart: source, event, guard, target', () => {
    const replay = listTransitions(paymentMachine).find((t) => t.guard === 'isSamePayment');
    expect(replay).toEqual({
      id: 'authorized --PAY[isSamePayment]--> authorized',
      source: 'authorized',
      event: 'PAY',
      guard: 'isSamePayment',
      target: 'authorized',
      internal: true,
      actions: ['reply(replayed)'],
    });
    const pay = listTransitions(paymentMachine)[0];
    expect(pay).toMatchObject({
      source: 'pending',
      event: 'PAY',
      guard: 'isManualCapture',
      target: 'authorizing',
    });
  });

  it('names the transition a snapshot takes, and none for an event its state ignores', () => {
    const processed = stepPayment(
      stepPayment(startPayment(input).snapshot, { type: 'PAY', ...body, at: 2_000 }).snapshot,
      {
        type: 'CHARGE_SUCCEEDED',
        at: 2_010,
      },
    ).snapshot;
    const taken = (event: Parameters<typeof stepPayment>[1]) =>
      transitionsTaken(paymentMachine, processed, event).map((t) => t.id);
    expect(taken({ type: 'PAY', ...body, at: 3_000 })).toEqual([
      'processed --PAY[isSamePayment]--> processed',
    ]);
    expect(taken({ type: 'PAY', ...body, amountCents: 1, at: 3_000 })).toEqual([
      'processed --PAY[else]--> processed',
    ]);
    expect(taken({ type: 'CANCEL', at: 3_000 })).toEqual(['processed --CANCEL--> refunding']);
    expect(
      taken({ type: 'REFUND', refundId: 'r1', amountCents: 1_501, reason: null, at: 3_000 }),
    ).toEqual(['processed --REFUND[else]--> processed']);
    expect(taken({ type: 'REFUND_COMPLETED', at: 3_000 })).toEqual([]);
  });
});

describe('any machine read as data', () => {
  function logged() {
    // a named inline action
  }
  const machine = setup({
    actions: { tag: assign({}) },
    guards: { ready: () => true },
  }).createMachine({
    id: 'toy',
    initial: 'outer',
    states: {
      outer: {
        initial: 'inner',
        states: {
          inner: {
            on: {
              GO: [
                {
                  guard: 'ready',
                  target: '#toy.done',
                  actions: [{ type: 'tag', params: { n: 1 } }],
                },
                { guard: () => false, target: 'other', actions: [logged, () => undefined] },
                { target: 'other', actions: [assign({}), { type: 'tag', params: 'loud' }] },
              ],
            },
          },
          other: {},
        },
      },
      done: { type: 'final' },
      both: {
        type: 'parallel',
        on: { RESET: { target: ['.left.l2', '.right.r2'] } },
        states: {
          left: { initial: 'l1', states: { l1: {}, l2: {} } },
          right: { initial: 'r1', states: { r1: {}, r2: {} } },
        },
      },
    },
  });

  it('lists nested states by their dotted path, parents before their children', () => {
    expect(listStates(machine)).toEqual([
      'outer',
      'outer.inner',
      'outer.other',
      'done',
      'both',
      'both.left',
      'both.left.l1',
      'both.left.l2',
      'both.right',
      'both.right.r1',
      'both.right.r2',
    ]);
  });

  it('names guards and actions however they are given, and marks only a guardless later alternative as else', () => {
    expect(listTransitions(machine).map(row)).toEqual([
      'outer.inner --GO[ready]--> done | external | tag',
      // An inline guard is named after the property it was written in.
      'outer.inner --GO[guard]--> outer.other | external | logged, inline',
      // An inline xstate action is named after its creator, not its internal type.
      'outer.inner --GO[else]--> outer.other | external | assign, tag',
      // A transition into regions of a parallel state names every target.
      'both --RESET--> both.left.l2,both.right.r2 | external | ',
    ]);
  });

  it('reads a machine without setup, whose transitions have no guard at all', () => {
    const plain = createMachine({ initial: 'a', states: { a: { on: { X: 'b' } }, b: {} } });
    expect(listTransitions(plain)).toEqual([
      {
        id: 'a --X--> b',
        source: 'a',
        event: 'X',
        guard: null,
        target: 'b',
        internal: false,
        actions: [],
      },
    ]);
  });
});
