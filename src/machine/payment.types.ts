/**
 * Types of the payment machine. Event and state names are part of the stored
 * snapshot format and of the public API: never rename them without a snapshot
 * migration (bump PAYMENT_MACHINE_VERSION).
 */

/** States a client can see as they are. */
export const PUBLIC_STATES = [
  'pending',
  'authorized',
  'processed',
  'partially_refunded',
  'refunded',
  'cancelled',
  'expired',
] as const;
/** Steps whose outcome is not yet recorded; a client sees each of them as `processing`. */
export const INTERNAL_STATES = [
  'charging',
  'authorizing',
  'capturing',
  'voiding',
  'refunding',
] as const;
/** What a response says of a payment in an internal step. */
export const PROCESSING = 'processing';

export type PublicStatus = (typeof PUBLIC_STATES)[number];
export type InternalStatus = (typeof INTERNAL_STATES)[number];
export type PaymentStatus = PublicStatus | InternalStatus;
/** A status as responses show it: an internal step is `processing`. */
export type ShownStatus = PublicStatus | typeof PROCESSING;

export function shownStatus(status: PaymentStatus): ShownStatus {
  return (INTERNAL_STATES as readonly string[]).includes(status)
    ? PROCESSING
    : (status as PublicStatus);
}

/** `automatic`: charged at once; `manual`: authorized (funds held), captured later. */
export type CaptureMode = 'automatic' | 'manual';

/** An ISO 4217 code, upper case, checked at the edge. */
export type Currency = string;

export interface Payment {
  readonly accountId: string;
  /** In the currency's minor unit. */
  readonly amountCents: number;
  readonly currency: Currency;
  readonly capture: CaptureMode;
}

/** A refund of (part of) the captured amount, by the client's refund id. */
export interface Refund {
  /** The client's `Idempotency-Key`; `null` for the refund a cancel made. */
  readonly refundId: string | null;
  readonly amountCents: number;
  /** The amount as asked (`null`: what remained then): a replay must ask the same. */
  readonly requestedCents: number | null;
  readonly reason: string | null;
  readonly requestedAt: number;
  /** `null` while the refund is in flight. */
  readonly refundedAt: number | null;
  /** The movement's id, fixed when the refund was asked for. */
  readonly operationId: string;
}

/** Why a payment is cancelled. */
export type CancellationReason = 'requested' | 'capture_window_elapsed';

/** What the runtime supplies when a token's record is first created. */
export interface PaymentInput {
  readonly token: string;
  /** Random id of this life of the token; stale timers carry another one. */
  readonly lifeId: string;
  /** Creation time, epoch ms. */
  readonly at: number;
  readonly expiryMs: number;
  readonly captureWindowMs: number;
  readonly retentionMs: number;
  /** Refunds one payment may have (the record stays bounded); REFUND_LIMIT unless given. */
  readonly refundLimit?: number;
}

export interface HistoryEntry {
  readonly at: number;
  readonly event: string;
  readonly state: PaymentStatus;
}

/** What a token's life is held to, fixed when its record is created. */
export interface PaymentLimits {
  readonly expiryMs: number;
  /** How long an authorization waits for its capture before it is voided. */
  readonly captureWindowMs: number;
  /** How long an expired record is kept. */
  readonly retentionMs: number;
  /** Refunds one payment may have: the record stays bounded. */
  readonly refundLimit: number;
}

/**
 * The context is the stored snapshot's: at most 19 members, since V8 copies
 * an object of more (xstate's assign does, at every assign) about 15 times
 * slower. What is derived (when an authorization was made, the last
 * refund, when an expired record goes) is derived in the views.
 */
export interface PaymentContext {
  readonly token: string;
  readonly lifeId: string;
  readonly limits: PaymentLimits;
  /** The payment being charged, charged, or refunded (the last body tried while pending). */
  readonly payment: Payment | null;
  /** Charge attempts so far; each attempt has its own operation id. */
  readonly attempt: number;
  readonly lastDecline: { readonly reason: string; readonly at: number } | null;
  readonly createdAt: number;
  readonly updatedAt: number;
  /** When the charge (or, for a manual capture, the authorization) succeeded. */
  readonly chargedAt: number | null;
  /** When an uncaptured authorization is voided (the capture window's end). */
  readonly captureBy: number | null;
  /** The amount being captured (in `capturing`) or captured; 0 before. */
  readonly capturedCents: number;
  readonly capturedAt: number | null;
  /** Sum of the completed refunds; never above capturedCents. */
  readonly refundedCents: number;
  /** Every refund, oldest first; the last one is in flight in `refunding`. */
  readonly refunds: readonly Refund[];
  readonly cancelledAt: number | null;
  readonly cancellationReason: CancellationReason | null;
  readonly expiredAt: number | null;
  /**
   * When the expiry timer fires: one window after the last accepted event,
   * set anew at each decline (a `pending` record), charge, capture, void,
   * cancel and refund; none while authorized (the capture window governs).
   */
  readonly expiresAt: number | null;
  /** Bounded to the last HISTORY_LIMIT entries. */
  readonly history: readonly HistoryEntry[];
}

/** Events sent by clients and timers. `at` is Redis's time when the event was handled, epoch ms. */
export type ClientEvent =
  | {
      readonly type: 'PAY';
      readonly accountId: string;
      readonly amountCents: number;
      readonly currency: Currency;
      readonly capture: CaptureMode;
      readonly at: number;
    }
  | {
      readonly type: 'CAPTURE';
      /** `null`: the whole authorization. */
      readonly amountCents: number | null;
      readonly at: number;
    }
  | {
      readonly type: 'REFUND';
      readonly refundId: string;
      /** `null`: what remains of the captured amount. */
      readonly amountCents: number | null;
      readonly reason: string | null;
      readonly at: number;
    }
  | { readonly type: 'CANCEL'; readonly at: number }
  | {
      /**
       * A delayed event of the machine's own (its expiry timer), delivered
       * by the runtime, which drops a cancelled, superseded or stale one.
       */
      readonly type: 'EXPIRE';
      readonly at: number;
    }
  | {
      /** The capture window's timer, armed when the authorization succeeded. */
      readonly type: 'CAPTURE_WINDOW_ELAPSED';
      readonly at: number;
    };

/** Outcomes of effects, fed back by their handlers (payment-effects.ts). */
export type EffectEvent =
  | { readonly type: 'CHARGE_SUCCEEDED'; readonly at: number }
  | { readonly type: 'CHARGE_AUTHORIZED'; readonly at: number }
  | { readonly type: 'CHARGE_DECLINED'; readonly reason: string; readonly at: number }
  | { readonly type: 'CAPTURE_SUCCEEDED'; readonly at: number }
  | { readonly type: 'VOID_COMPLETED'; readonly at: number }
  | { readonly type: 'REFUND_COMPLETED'; readonly at: number };

export type PaymentEvent = ClientEvent | EffectEvent;

/** The answer to a client event, decided by the machine. */
export type Outcome =
  | 'charged'
  | 'authorized'
  | 'replayed'
  | 'declined'
  | 'body_mismatch'
  | 'rejected'
  | 'expired'
  | 'cancelled'
  | 'refunded'
  | 'captured'
  | 'capture_replayed'
  | 'capture_mismatch'
  | 'capture_too_large'
  | 'not_capturable'
  | 'refund_succeeded'
  | 'refund_replayed'
  | 'refund_mismatch'
  | 'refund_too_large'
  | 'refund_limit_reached'
  | 'not_refundable';

/**
 * Params of the effects. `at` is when the movement was first asked for (the
 * event that entered the step): stored with the write that owes the effect,
 * the same on every re-run. Records of machine version 1 owe params without
 * `currency`, `capture` or `at` (payment-effects.ts reads them so).
 */
export interface ChargeParams {
  readonly operationId: string;
  readonly accountId: string;
  readonly amountCents: number;
  readonly currency: Currency;
  /** False: authorize only (funds held). */
  readonly capture: boolean;
  readonly at: number;
}

export interface CaptureParams {
  readonly operationId: string;
  readonly accountId: string;
  readonly currency: Currency;
  readonly authorizedCents: number;
  readonly amountCents: number;
  readonly at: number;
}

export interface VoidParams {
  readonly operationId: string;
  readonly accountId: string;
  readonly currency: Currency;
  readonly amountCents: number;
  readonly at: number;
}

export interface RefundParams {
  readonly operationId: string;
  readonly accountId: string;
  readonly currency: Currency;
  readonly amountCents: number;
  readonly at: number;
}

/** The details of an answer (decline reason, the payment) are in the snapshot's context. */
export interface ReplyParams {
  readonly outcome: Outcome;
}

/** What the machine emits for a client event: its answer. */
export interface PaymentReply {
  readonly type: 'reply';
  readonly outcome: Outcome;
}
