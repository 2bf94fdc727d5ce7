import { assertEvent, assign, cancel, emit, raise, setup } from 'xstate';
import type {
  CaptureParams,
  ChargeParams,
  HistoryEntry,
  PaymentContext,
  PaymentEvent,
  PaymentInput,
  PaymentReply,
  PaymentStatus,
  Refund,
  RefundParams,
  ReplyParams,
  VoidParams,
} from './payment.types.ts';

/**
 * Stored beside every snapshot. Bump it when a change to states, events or
 * context would make an older snapshot mean something else, and add a
 * migration for the old version (src/payments/payment-migrations.ts).
 * 2: currencies, manual capture, partial refunds.
 */
export const PAYMENT_MACHINE_VERSION = 2;

export const HISTORY_LIMIT = 50;

/** Refunds one payment may have: the record stays bounded. */
export const REFUND_LIMIT = 100;

/**
 * Effects are declared, never run here: `transition()` returns them by name
 * with their params and the runtime runs them with the handlers of
 * payment-effects.ts (the machine decides, the runtime acts).
 */
// The type parameter is the point: it declares the params the effect takes.
// eslint-disable-next-line @typescript-eslint/no-unnecessary-type-parameters
function effect<TParams>() {
  return (_args: unknown, _params: TParams): void => undefined;
}

/**
 * Params of the effects that complete a step. They are stored with the write
 * that enters the step and replayed as stored after a crash, so a resumed
 * movement carries the very same operation id, and `at` (updatedAt: the time
 * of the event that entered the step) is when it was first asked for.
 */
export function chargeParams(context: PaymentContext): ChargeParams {
  return {
    operationId: `charge:${context.token}:${context.lifeId}:${context.attempt}`,
    accountId: context.payment?.accountId ?? '',
    amountCents: context.payment?.amountCents ?? 0,
    currency: context.payment?.currency ?? '',
    capture: context.payment?.capture !== 'manual',
    at: context.updatedAt,
  };
}

export function captureParams(context: PaymentContext): CaptureParams {
  return {
    operationId: `capture:${context.token}:${context.lifeId}`,
    accountId: context.payment?.accountId ?? '',
    currency: context.payment?.currency ?? '',
    authorizedCents: context.payment?.amountCents ?? 0,
    amountCents: context.capturedCents,
    at: context.updatedAt,
  };
}

export function voidParams(context: PaymentContext): VoidParams {
  return {
    operationId: `void:${context.token}:${context.lifeId}`,
    accountId: context.payment?.accountId ?? '',
    currency: context.payment?.currency ?? '',
    amountCents: context.payment?.amountCents ?? 0,
    at: context.updatedAt,
  };
}

/** The refund in flight: the last one listed. */
export function refundParams(context: PaymentContext): RefundParams {
  const refund = context.refunds.at(-1);
  return {
    operationId: refund?.operationId ?? '',
    accountId: context.payment?.accountId ?? '',
    currency: context.payment?.currency ?? '',
    amountCents: refund?.amountCents ?? 0,
    at: refund?.requestedAt ?? context.updatedAt,
  };
}

/** What is left to refund of the captured amount. */
export function refundableCents(context: PaymentContext): number {
  return context.capturedCents - context.refundedCents;
}

/** The id of the token's one expiry timer: raising it again supersedes the earlier deadline. */
export const EXPIRY_TIMER_ID = 'expire';
/** The id of an authorization's capture window timer. */
export const CAPTURE_WINDOW_TIMER_ID = 'capture-window';

function appendHistory(
  history: readonly HistoryEntry[],
  entry: HistoryEntry,
): readonly HistoryEntry[] {
  const next = [...history, entry];
  return next.length > HISTORY_LIMIT ? next.slice(next.length - HISTORY_LIMIT) : next;
}

function newRefund(
  context: PaymentContext,
  fields: Omit<Refund, 'operationId' | 'refundedAt'>,
): Refund {
  return {
    ...fields,
    // One id per refund of this life of the token: the n-th refund's; a
    // cancel's refund of the whole payment keeps the id it always had.
    operationId:
      fields.refundId === null && context.refunds.length === 0
        ? `refund:${context.token}:${context.lifeId}`
        : `refund:${context.token}:${context.lifeId}:${context.refunds.length + 1}`,
    refundedAt: null,
  };
}

/** The refunds of a REFUND/CAPTURE guard, read the same way everywhere. */
function refundAsked(context: PaymentContext, event: PaymentEvent) {
  assertEvent(event, 'REFUND');
  return {
    known: context.refunds.find((r) => r.refundId === event.refundId),
    amountCents: event.amountCents ?? refundableCents(context),
    event,
  };
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
    capture: effect<CaptureParams>(),
    void: effect<VoidParams>(),
    refund: effect<RefundParams>(),
    /** The answer to the client event, returned by the runtime as emitted. */
    reply: emit((_args, params: ReplyParams): PaymentReply => ({
      type: 'reply',
      outcome: params.outcome,
    })),
    /**
     * Sets the token's deadline (context.expiresAt) as a delayed EXPIRE, a
     * durable timer of the runtime's; one id, so a later deadline replaces an
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
    /** An authorized payment does not expire: its capture window governs it. */
    cancelExpiry: cancel(EXPIRY_TIMER_ID),
    scheduleCaptureWindow: raise(
      ({ context }): PaymentEvent => ({
        type: 'CAPTURE_WINDOW_ELAPSED',
        at: context.captureBy ?? 0,
      }),
      {
        id: CAPTURE_WINDOW_TIMER_ID,
        delay: ({ context, event }) =>
          Math.max(0, (context.captureBy ?? 0) - (event as { at: number }).at),
      },
    ),
    cancelCaptureWindow: cancel(CAPTURE_WINDOW_TIMER_ID),

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
        payment: {
          accountId: event.accountId,
          amountCents: event.amountCents,
          currency: event.currency,
          capture: event.capture,
        },
        attempt: context.attempt + 1,
      };
    }),
    markCharged: assign(({ context, event }) => ({
      chargedAt: event.at,
      capturedCents: context.payment?.amountCents ?? 0,
      capturedAt: event.at,
      lastDecline: null,
      expiresAt: event.at + context.limits.expiryMs,
    })),
    markAuthorized: assign(({ context, event }) => ({
      chargedAt: event.at,
      captureBy: event.at + context.limits.captureWindowMs,
      lastDecline: null,
      expiresAt: null,
    })),
    markDeclined: assign(({ context, event }) => {
      assertEvent(event, 'CHARGE_DECLINED');
      // A declined token is kept as `pending`; like every accepted event, a
      // decline restarts the window.
      return {
        lastDecline: { reason: event.reason, at: event.at },
        expiresAt: event.at + context.limits.expiryMs,
      };
    }),
    startCapture: assign(({ context, event }) => {
      assertEvent(event, 'CAPTURE');
      return { capturedCents: event.amountCents ?? context.payment?.amountCents ?? 0 };
    }),
    markCaptured: assign(({ context, event }) => ({
      capturedAt: event.at,
      captureBy: null,
      expiresAt: event.at + context.limits.expiryMs,
    })),
    requestVoid: assign({ cancellationReason: 'requested' as const }),
    windowElapsed: assign({ cancellationReason: 'capture_window_elapsed' as const }),
    markCancelled: assign(({ context, event }) => ({
      cancelledAt: event.at,
      cancellationReason: context.cancellationReason ?? ('requested' as const),
      captureBy: null,
      expiresAt: event.at + context.limits.expiryMs,
    })),
    startRefund: assign(({ context, event }) => {
      const asked = refundAsked(context, event);
      return {
        refunds: [
          ...context.refunds,
          newRefund(context, {
            refundId: asked.event.refundId,
            amountCents: asked.amountCents,
            requestedCents: asked.event.amountCents,
            reason: asked.event.reason,
            requestedAt: asked.event.at,
          }),
        ],
      };
    }),
    /** A cancel of a captured payment refunds what remains. */
    startCancelRefund: assign(({ context, event }) => ({
      refunds: [
        ...context.refunds,
        newRefund(context, {
          refundId: null,
          amountCents: refundableCents(context),
          requestedCents: null,
          reason: null,
          requestedAt: event.at,
        }),
      ],
    })),
    markRefunded: assign(({ context, event }) => {
      const last = context.refunds.at(-1);
      const done = last === undefined ? [] : [{ ...last, refundedAt: event.at }];
      return {
        refunds: [...context.refunds.slice(0, -1), ...done],
        refundedCents: context.refundedCents + (last?.amountCents ?? 0),
        expiresAt: event.at + context.limits.expiryMs,
      };
    }),
    /** The record is removed limits.retentionMs after this. */
    markExpired: assign(({ event }) => ({ expiredAt: event.at })),
  },
  guards: {
    /** Authorize only: `capture: "manual"`. */
    isManualCapture: ({ event }) => {
      assertEvent(event, 'PAY');
      return event.capture === 'manual';
    },
    /** Same body as the payment already charged (after defaults): an idempotent retry. */
    isSamePayment: ({ context, event }) => {
      assertEvent(event, 'PAY');
      const p = context.payment;
      return (
        p !== null &&
        p.accountId === event.accountId &&
        p.amountCents === event.amountCents &&
        p.currency === event.currency &&
        p.capture === event.capture
      );
    },
    /** At most the authorized amount (none given: all of it). */
    captureFits: ({ context, event }) => {
      assertEvent(event, 'CAPTURE');
      return (event.amountCents ?? 0) <= (context.payment?.amountCents ?? 0);
    },
    /** The capture already made, asked again (none given: all of the authorization). */
    isSameCapture: ({ context, event }) => {
      assertEvent(event, 'CAPTURE');
      return (
        context.payment?.capture === 'manual' &&
        (event.amountCents ?? context.payment.amountCents) === context.capturedCents
      );
    },
    isManualPayment: ({ context }) => context.payment?.capture === 'manual',
    /** The same refund id with the same body: an idempotent retry. */
    isSameRefund: ({ context, event }) => {
      const { known, event: asked } = refundAsked(context, event);
      return (
        known !== undefined &&
        known.requestedCents === asked.amountCents &&
        known.reason === asked.reason
      );
    },
    isKnownRefund: ({ context, event }) => refundAsked(context, event).known !== undefined,
    refundLimitReached: ({ context }) => context.refunds.length >= context.limits.refundLimit,
    /** The refunds' sum stays within the captured amount. */
    refundFits: ({ context, event }) => {
      const { amountCents } = refundAsked(context, event);
      return amountCents >= 1 && amountCents <= refundableCents(context);
    },
    /** The refund in flight was a cancel's. */
    isCancelRefund: ({ context }) => context.refunds.at(-1)?.refundId === null,
    /** The refund in flight leaves nothing to refund. */
    refundsAll: ({ context }) =>
      context.refundedCents + (context.refunds.at(-1)?.amountCents ?? 0) >= context.capturedCents,
  },
}).createMachine({
  id: 'payment',
  initial: 'pending',
  context: ({ input }) => ({
    token: input.token,
    lifeId: input.lifeId,
    limits: {
      expiryMs: input.expiryMs,
      captureWindowMs: input.captureWindowMs,
      retentionMs: input.retentionMs,
      refundLimit: input.refundLimit ?? REFUND_LIMIT,
    },
    payment: null,
    attempt: 0,
    lastDecline: null,
    createdAt: input.at,
    updatedAt: input.at,
    chargedAt: null,
    captureBy: null,
    capturedCents: 0,
    capturedAt: null,
    refundedCents: 0,
    refunds: [],
    cancelledAt: null,
    cancellationReason: null,
    expiredAt: null,
    expiresAt: null,
    history: [],
  }),
  states: {
    pending: {
      description:
        'Known token, nothing charged. Payable. A declined token expires one window after its last decline.',
      entry: { type: 'record', params: { state: 'pending' } },
      on: {
        PAY: [
          { guard: 'isManualCapture', target: 'authorizing', actions: 'startCharge' },
          { target: 'charging', actions: 'startCharge' },
        ],
        CAPTURE: { actions: { type: 'reply', params: { outcome: 'not_capturable' } } },
        REFUND: { actions: { type: 'reply', params: { outcome: 'not_refundable' } } },
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
    authorizing: {
      description:
        'Authorization intent stored (capture: manual), outcome not yet recorded. Resumed with the same operation id after a crash.',
      entry: [
        { type: 'record', params: { state: 'authorizing' } },
        { type: 'charge', params: ({ context }) => chargeParams(context) },
      ],
      on: {
        CHARGE_AUTHORIZED: {
          target: 'authorized',
          actions: [
            'markAuthorized',
            'cancelExpiry',
            'scheduleCaptureWindow',
            { type: 'reply', params: { outcome: 'authorized' } },
          ],
        },
        CHARGE_DECLINED: {
          target: 'pending',
          actions: [
            'markDeclined',
            'scheduleExpiry',
            { type: 'reply', params: { outcome: 'declined' } },
          ],
        },
      },
    },
    authorized: {
      description:
        'Funds held, nothing captured. Does not expire: its capture window voids it unless captured.',
      entry: { type: 'record', params: { state: 'authorized' } },
      on: {
        PAY: [
          {
            guard: 'isSamePayment',
            actions: { type: 'reply', params: { outcome: 'replayed' } },
          },
          { actions: { type: 'reply', params: { outcome: 'body_mismatch' } } },
        ],
        CAPTURE: [
          { guard: 'captureFits', target: 'capturing', actions: 'startCapture' },
          { actions: { type: 'reply', params: { outcome: 'capture_too_large' } } },
        ],
        REFUND: { actions: { type: 'reply', params: { outcome: 'not_refundable' } } },
        CANCEL: { target: 'voiding', actions: 'requestVoid' },
        CAPTURE_WINDOW_ELAPSED: { target: 'voiding', actions: 'windowElapsed' },
      },
    },
    capturing: {
      description:
        'Capture intent stored, not yet recorded as done; the rest of the hold is released with it.',
      entry: [
        { type: 'record', params: { state: 'capturing' } },
        { type: 'capture', params: ({ context }) => captureParams(context) },
      ],
      on: {
        CAPTURE_SUCCEEDED: {
          target: 'processed',
          actions: [
            'markCaptured',
            'cancelCaptureWindow',
            'scheduleExpiry',
            { type: 'reply', params: { outcome: 'captured' } },
          ],
        },
      },
    },
    voiding: {
      description:
        'Void intent stored (cancel, or the capture window elapsed): the hold is being released.',
      entry: [
        { type: 'record', params: { state: 'voiding' } },
        { type: 'void', params: ({ context }) => voidParams(context) },
      ],
      on: {
        VOID_COMPLETED: {
          target: 'cancelled',
          actions: ['cancelCaptureWindow', 'markCancelled'],
        },
      },
    },
    processed: {
      description: 'Captured exactly once. Expiry timer set at the capture.',
      entry: { type: 'record', params: { state: 'processed' } },
      on: {
        PAY: [
          {
            guard: 'isSamePayment',
            actions: { type: 'reply', params: { outcome: 'replayed' } },
          },
          { actions: { type: 'reply', params: { outcome: 'body_mismatch' } } },
        ],
        CAPTURE: [
          {
            guard: 'isSameCapture',
            actions: { type: 'reply', params: { outcome: 'capture_replayed' } },
          },
          {
            guard: 'isManualPayment',
            actions: { type: 'reply', params: { outcome: 'capture_mismatch' } },
          },
          { actions: { type: 'reply', params: { outcome: 'not_capturable' } } },
        ],
        // No refund yet: every refund key is new here.
        REFUND: [
          { guard: 'refundFits', target: 'refunding', actions: 'startRefund' },
          { actions: { type: 'reply', params: { outcome: 'refund_too_large' } } },
        ],
        CANCEL: { target: 'refunding', actions: 'startCancelRefund' },
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
        REFUND_COMPLETED: [
          {
            guard: 'isCancelRefund',
            target: 'refunded',
            actions: [
              'markRefunded',
              'scheduleExpiry',
              { type: 'reply', params: { outcome: 'refunded' } },
            ],
          },
          {
            guard: 'refundsAll',
            target: 'refunded',
            actions: [
              'markRefunded',
              'scheduleExpiry',
              { type: 'reply', params: { outcome: 'refund_succeeded' } },
            ],
          },
          {
            target: 'partially_refunded',
            actions: [
              'markRefunded',
              'scheduleExpiry',
              { type: 'reply', params: { outcome: 'refund_succeeded' } },
            ],
          },
        ],
      },
    },
    partially_refunded: {
      description:
        'Part of the captured amount refunded; refundable until the refunds sum to it. Expiry timer set anew at each refund.',
      entry: { type: 'record', params: { state: 'partially_refunded' } },
      on: {
        PAY: [
          {
            guard: 'isSamePayment',
            actions: { type: 'reply', params: { outcome: 'replayed' } },
          },
          { actions: { type: 'reply', params: { outcome: 'body_mismatch' } } },
        ],
        CAPTURE: [
          {
            guard: 'isSameCapture',
            actions: { type: 'reply', params: { outcome: 'capture_replayed' } },
          },
          {
            guard: 'isManualPayment',
            actions: { type: 'reply', params: { outcome: 'capture_mismatch' } },
          },
          { actions: { type: 'reply', params: { outcome: 'not_capturable' } } },
        ],
        REFUND: [
          {
            guard: 'isSameRefund',
            actions: { type: 'reply', params: { outcome: 'refund_replayed' } },
          },
          {
            guard: 'isKnownRefund',
            actions: { type: 'reply', params: { outcome: 'refund_mismatch' } },
          },
          {
            guard: 'refundLimitReached',
            actions: { type: 'reply', params: { outcome: 'refund_limit_reached' } },
          },
          { guard: 'refundFits', target: 'refunding', actions: 'startRefund' },
          { actions: { type: 'reply', params: { outcome: 'refund_too_large' } } },
        ],
        CANCEL: { target: 'refunding', actions: 'startCancelRefund' },
        EXPIRE: { target: 'expired' },
      },
    },
    cancelled: {
      description:
        'Cancelled before any capture (an authorization voided). Blocks every later payment.',
      entry: [
        { type: 'record', params: { state: 'cancelled' } },
        'scheduleExpiry',
        { type: 'reply', params: { outcome: 'cancelled' } },
      ],
      on: {
        PAY: { actions: { type: 'reply', params: { outcome: 'rejected' } } },
        CAPTURE: { actions: { type: 'reply', params: { outcome: 'not_capturable' } } },
        REFUND: { actions: { type: 'reply', params: { outcome: 'not_refundable' } } },
        CANCEL: { actions: { type: 'reply', params: { outcome: 'cancelled' } } },
        EXPIRE: { target: 'expired' },
      },
    },
    refunded: {
      description:
        'Refunded in full, exactly once per refund. Expiry timer set anew at the last refund.',
      entry: { type: 'record', params: { state: 'refunded' } },
      on: {
        PAY: { actions: { type: 'reply', params: { outcome: 'rejected' } } },
        CAPTURE: [
          {
            guard: 'isSameCapture',
            actions: { type: 'reply', params: { outcome: 'capture_replayed' } },
          },
          {
            guard: 'isManualPayment',
            actions: { type: 'reply', params: { outcome: 'capture_mismatch' } },
          },
          { actions: { type: 'reply', params: { outcome: 'not_capturable' } } },
        ],
        REFUND: [
          {
            guard: 'isSameRefund',
            actions: { type: 'reply', params: { outcome: 'refund_replayed' } },
          },
          {
            guard: 'isKnownRefund',
            actions: { type: 'reply', params: { outcome: 'refund_mismatch' } },
          },
          { actions: { type: 'reply', params: { outcome: 'refund_too_large' } } },
        ],
        CANCEL: { actions: { type: 'reply', params: { outcome: 'refunded' } } },
        EXPIRE: { target: 'expired' },
      },
    },
    expired: {
      // Final: the runtime removes the record finalStateRetentionMs after it got here.
      type: 'final',
      description:
        'Window closed; no transition leaves it. Kept for the retention period, then removed.',
      entry: ['markExpired', { type: 'record', params: { state: 'expired' } }],
      on: {
        PAY: { actions: { type: 'reply', params: { outcome: 'expired' } } },
        CAPTURE: { actions: { type: 'reply', params: { outcome: 'expired' } } },
        REFUND: { actions: { type: 'reply', params: { outcome: 'expired' } } },
        CANCEL: { actions: { type: 'reply', params: { outcome: 'expired' } } },
      },
    },
  },
});

export type PaymentMachine = typeof paymentMachine;
