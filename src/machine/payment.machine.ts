import { assertEvent, assign, setup } from 'xstate';
import type {
  ChargeParams,
  HistoryEntry,
  PaymentContext,
  PaymentEvent,
  PaymentInput,
  PaymentStatus,
  RefundParams,
  ReplyParams,
  ScheduleExpiryParams,
  ScheduleRemovalParams,
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
 * with their params and the runtime executes them (the machine decides, the
 * runtime acts).
 */
// The type parameter is the point: it declares the params the effect takes.
// eslint-disable-next-line @typescript-eslint/no-unnecessary-type-parameters
function effect<TParams>() {
  return (_args: unknown, _params: TParams): void => undefined;
}

/**
 * Params of the effects that complete a step. The runtime uses the same
 * functions to resume a step a crash interrupted, so a resumed charge or
 * refund carries the very same ledger operation id.
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

export function expiryParams(context: PaymentContext): ScheduleExpiryParams {
  return { token: context.token, lifeId: context.lifeId, expiresAt: context.expiresAt ?? 0 };
}

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
  },
  actions: {
    charge: effect<ChargeParams>(),
    refund: effect<RefundParams>(),
    scheduleExpiry: effect<ScheduleExpiryParams>(),
    scheduleRemoval: effect<ScheduleRemovalParams>(),
    reply: effect<ReplyParams>(),

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
      // A declined token is kept as `pending`; it expires one window after
      // its first decline, like every other record.
      return {
        lastDecline: { reason: event.reason, at: event.at },
        expiresAt: context.expiresAt ?? event.at + context.expiryMs,
      };
    }),
    markCancelled: assign(({ context, event }) => ({
      cancelledAt: event.at,
      expiresAt: event.at + context.expiryMs,
    })),
    markRefunded: assign(({ event }) => ({ refundedAt: event.at })),
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
    /**
     * The timer of the token's current deadline: set in this life of the
     * token (not in one already forgotten) and not superseded by a later
     * deadline. Whether the deadline has passed is the timer's business
     * (Redis's clock, see the expiry worker); the machine reads no clock.
     */
    isCurrentTimer: ({ context, event }) => {
      assertEvent(event, 'EXPIRE');
      return (
        event.lifeId === context.lifeId &&
        context.expiresAt !== null &&
        (event.dueAt === undefined || event.dueAt >= context.expiresAt)
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
        'Known token, nothing charged. Payable. A declined token expires one window after its first decline.',
      entry: { type: 'record', params: { state: 'pending' } },
      on: {
        PAY: { target: 'charging', actions: 'startCharge' },
        CANCEL: { target: 'cancelled', actions: 'markCancelled' },
        EXPIRE: { guard: 'isCurrentTimer', target: 'expired' },
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
            { type: 'scheduleExpiry', params: ({ context }) => expiryParams(context) },
            { type: 'reply', params: { outcome: 'charged' } },
          ],
        },
        CHARGE_DECLINED: {
          target: 'pending',
          actions: [
            'markDeclined',
            { type: 'scheduleExpiry', params: ({ context }) => expiryParams(context) },
            // The reason is in context.lastDecline.
            { type: 'reply', params: { outcome: 'declined' } },
          ],
        },
      },
    },
    processed: {
      description: 'Charged exactly once. Expiry timer set.',
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
        EXPIRE: { guard: 'isCurrentTimer', target: 'expired' },
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
          actions: ['markRefunded', { type: 'reply', params: { outcome: 'refunded' } }],
        },
      },
    },
    cancelled: {
      description: 'Cancelled before any charge. Blocks every later payment.',
      entry: [
        { type: 'record', params: { state: 'cancelled' } },
        { type: 'scheduleExpiry', params: ({ context }) => expiryParams(context) },
        { type: 'reply', params: { outcome: 'cancelled' } },
      ],
      on: {
        PAY: { actions: { type: 'reply', params: { outcome: 'rejected' } } },
        CANCEL: { actions: { type: 'reply', params: { outcome: 'cancelled' } } },
        EXPIRE: { guard: 'isCurrentTimer', target: 'expired' },
      },
    },
    refunded: {
      description: 'Cancelled after the charge, the amount went back exactly once.',
      entry: { type: 'record', params: { state: 'refunded' } },
      on: {
        PAY: { actions: { type: 'reply', params: { outcome: 'rejected' } } },
        CANCEL: { actions: { type: 'reply', params: { outcome: 'refunded' } } },
        EXPIRE: { guard: 'isCurrentTimer', target: 'expired' },
      },
    },
    expired: {
      description:
        'Window closed; no transition leaves it. Kept for the retention period, then removed.',
      entry: [
        'markExpired',
        { type: 'record', params: { state: 'expired' } },
        {
          type: 'scheduleRemoval',
          params: ({ context }) => ({ token: context.token, removeAt: context.removeAt ?? 0 }),
        },
      ],
      on: {
        PAY: { actions: { type: 'reply', params: { outcome: 'expired' } } },
        CANCEL: { actions: { type: 'reply', params: { outcome: 'expired' } } },
      },
    },
  },
});

export type PaymentMachine = typeof paymentMachine;
