import { assertEvent, assign, emit, raise, setup } from 'xstate';
import type {
  ChargeParams,
  HistoryEntry,
  PaymentContext,
  PaymentEvent,
  PaymentInput,
  PaymentReply,
  PaymentStatus,
  RefundParams,
  ReplyParams,
} from './payment.types.ts';

/**
 * Stored beside every snapshot. Bump it when a change to states, events or
 * context would make an older snapshot mean something else, and add a
 * migration for the old version.
 */
export const PAYMENT_MACHINE_VERSION = 1;

export const HISTORY_LIMIT = 50;

/**
 * Effects are declared, never run here: `transition()` returns them by name
 * with their params and the engine runs them with the handlers of
 * payment-effects.ts (the machine decides, the engine acts).
 */
// The type parameter is the point: it declares the params the effect takes.
// eslint-disable-next-line @typescript-eslint/no-unnecessary-type-parameters
function effect<TParams>() {
  return (_args: unknown, _params: TParams): void => undefined;
}

/**
 * Params of the effects that complete a step. They are stored with the write
 * that enters `charging` / `refunding` and replayed as stored after a crash,
 * so a resumed charge or refund carries the very same ledger operation id.
 */
export function chargeParams(context: PaymentContext): ChargeParams {
  return {
    operationId: `charge:${context.token}:${context.lifeId}:${context.attempt}`,
    accountId: context.payment?.accountId ?? '',
    amountCents: context.payment?.amountCents ?? 0,
  };
}

export function refundParams(context: PaymentContext): RefundParams {
  return {
    operationId: `refund:${context.token}:${context.lifeId}`,
    accountId: context.payment?.accountId ?? '',
    amountCents: context.payment?.amountCents ?? 0,
  };
}

/** The id of the token's one expiry timer: raising it again supersedes the earlier deadline. */
export const EXPIRY_TIMER_ID = 'expire';

function appendHistory(
  history: readonly HistoryEntry[],
  entry: HistoryEntry,
): readonly HistoryEntry[] {
  const next = [...history, entry];
  return next.length > HISTORY_LIMIT ? next.slice(next.length - HISTORY_LIMIT) : next;
}

export const paymentMachine = setup({
  types: {
    context: {} as PaymentContext,
    events: {} as PaymentEvent,
    input: {} as PaymentInput,
    emitted: {} as PaymentReply,
  },
  actions: {
    charge: effect<ChargeParams>(),
    refund: effect<RefundParams>(),
    /** The answer to the client event, returned by the engine as emitted. */
    reply: emit((_args, params: ReplyParams): PaymentReply => ({
      type: 'reply',
      outcome: params.outcome,
    })),
    /**
     * Sets the token's deadline (context.expiresAt) as a delayed EXPIRE, a
     * durable timer of the engine's; one id, so a later deadline replaces an
     * earlier one and the earlier timer changes nothing when delivered.
     */
    scheduleExpiry: raise(
      ({ context }): PaymentEvent => ({ type: 'EXPIRE', at: context.expiresAt ?? 0 }),
      {
        id: EXPIRY_TIMER_ID,
        delay: ({ context, event }) =>
          Math.max(0, (context.expiresAt ?? 0) - (event as { at: number }).at),
      },
    ),

    /** Every state entered is recorded with the event that led there. */
    record: assign(({ context, event }, params: { state: PaymentStatus }) => {
      // The initial entry into `pending` comes from xstate's own init event,
      // which carries no time: the record was created at `createdAt`.
      const at = (event as { at?: number }).at ?? context.createdAt;
      return {
        updatedAt: at,
        history: appendHistory(context.history, {
          at,
          event: (event.type as string) === 'xstate.init' ? 'CREATED' : event.type,
          state: params.state,
        }),
      };
    }),
    startCharge: assign(({ context, event }) => {
      assertEvent(event, 'PAY');
      return {
        payment: { accountId: event.accountId, amountCents: event.amountCents },
        attempt: context.attempt + 1,
      };
    }),
    markCharged: assign(({ context, event }) => ({
      chargedAt: event.at,
      lastDecline: null,
      expiresAt: event.at + context.expiryMs,
    })),
    markDeclined: assign(({ context, event }) => {
      assertEvent(event, 'CHARGE_DECLINED');
      // A declined token is kept as `pending`; like every accepted event, a
      // decline restarts the window.
      return {
        lastDecline: { reason: event.reason, at: event.at },
        expiresAt: event.at + context.expiryMs,
      };
    }),
    markCancelled: assign(({ context, event }) => ({
      cancelledAt: event.at,
      expiresAt: event.at + context.expiryMs,
    })),
    markRefunded: assign(({ context, event }) => ({
      refundedAt: event.at,
      expiresAt: event.at + context.expiryMs,
    })),
    markExpired: assign(({ context, event }) => ({
      expiredAt: event.at,
      removeAt: event.at + context.retentionMs,
    })),
  },
  guards: {
    /** Same body as the payment already charged: an idempotent retry. */
    isSamePayment: ({ context, event }) => {
      assertEvent(event, 'PAY');
      return (
        context.payment !== null &&
        context.payment.accountId === event.accountId &&
        context.payment.amountCents === event.amountCents
      );
    },
  },
}).createMachine({
  id: 'payment',
  initial: 'pending',
  context: ({ input }) => ({
    token: input.token,
    lifeId: input.lifeId,
    expiryMs: input.expiryMs,
    retentionMs: input.retentionMs,
    payment: null,
    attempt: 0,
    lastDecline: null,
    createdAt: input.at,
    updatedAt: input.at,
    chargedAt: null,
    cancelledAt: null,
    refundedAt: null,
    expiredAt: null,
    expiresAt: null,
    removeAt: null,
    history: [],
  }),
  states: {
    pending: {
      description:
        'Known token, nothing charged. Payable. A declined token expires one window after its last decline.',
      entry: { type: 'record', params: { state: 'pending' } },
      on: {
        PAY: { target: 'charging', actions: 'startCharge' },
        CANCEL: { target: 'cancelled', actions: 'markCancelled' },
        EXPIRE: { target: 'expired' },
      },
    },
    charging: {
      description:
        'Charge intent stored, outcome not yet recorded. Resumed with the same operation id after a crash.',
      entry: [
        { type: 'record', params: { state: 'charging' } },
        { type: 'charge', params: ({ context }) => chargeParams(context) },
      ],
      on: {
        CHARGE_SUCCEEDED: {
          target: 'processed',
          actions: [
            'markCharged',
            'scheduleExpiry',
            { type: 'reply', params: { outcome: 'charged' } },
          ],
        },
        CHARGE_DECLINED: {
          target: 'pending',
          actions: [
            'markDeclined',
            'scheduleExpiry',
            // The reason is in context.lastDecline.
            { type: 'reply', params: { outcome: 'declined' } },
          ],
        },
      },
    },
    processed: {
      description: 'Charged exactly once. Expiry timer set at the charge.',
      entry: { type: 'record', params: { state: 'processed' } },
      on: {
        PAY: [
          {
            guard: 'isSamePayment',
            actions: { type: 'reply', params: { outcome: 'replayed' } },
          },
          { actions: { type: 'reply', params: { outcome: 'body_mismatch' } } },
        ],
        CANCEL: { target: 'refunding' },
        EXPIRE: { target: 'expired' },
      },
    },
    refunding: {
      description:
        'Refund intent stored, not yet recorded as done. Resumed with the same operation id after a crash.',
      entry: [
        { type: 'record', params: { state: 'refunding' } },
        { type: 'refund', params: ({ context }) => refundParams(context) },
      ],
      on: {
        REFUND_COMPLETED: {
          target: 'refunded',
          actions: [
            'markRefunded',
            'scheduleExpiry',
            { type: 'reply', params: { outcome: 'refunded' } },
          ],
        },
      },
    },
    cancelled: {
      description: 'Cancelled before any charge. Blocks every later payment.',
      entry: [
        { type: 'record', params: { state: 'cancelled' } },
        'scheduleExpiry',
        { type: 'reply', params: { outcome: 'cancelled' } },
      ],
      on: {
        PAY: { actions: { type: 'reply', params: { outcome: 'rejected' } } },
        CANCEL: { actions: { type: 'reply', params: { outcome: 'cancelled' } } },
        EXPIRE: { target: 'expired' },
      },
    },
    refunded: {
      description:
        'Cancelled after the charge, the amount went back exactly once. Expiry timer set anew at the refund.',
      entry: { type: 'record', params: { state: 'refunded' } },
      on: {
        PAY: { actions: { type: 'reply', params: { outcome: 'rejected' } } },
        CANCEL: { actions: { type: 'reply', params: { outcome: 'refunded' } } },
        EXPIRE: { target: 'expired' },
      },
    },
    expired: {
      // Final: the engine removes the record finalStateRetentionMs after it got here.
      type: 'final',
      description:
        'Window closed; no transition leaves it. Kept for the retention period, then removed.',
      entry: ['markExpired', { type: 'record', params: { state: 'expired' } }],
      on: {
        PAY: { actions: { type: 'reply', params: { outcome: 'expired' } } },
        CANCEL: { actions: { type: 'reply', params: { outcome: 'expired' } } },
      },
    },
  },
});

export type PaymentMachine = typeof paymentMachine;
