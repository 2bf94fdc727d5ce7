/**
 * Types of the payment machine. Event and state names are part of the stored
 * snapshot format and of the public API: never rename them without a snapshot
 * migration (bump PAYMENT_MACHINE_VERSION).
 */

/** States a client can see. `charging` and `refunding` are internal steps. */
export const PUBLIC_STATES = ['pending', 'processed', 'cancelled', 'refunded', 'expired'] as const;
export const INTERNAL_STATES = ['charging', 'refunding'] as const;

export type PublicStatus = (typeof PUBLIC_STATES)[number];
export type InternalStatus = (typeof INTERNAL_STATES)[number];
export type PaymentStatus = PublicStatus | InternalStatus;

export interface Payment {
  readonly accountId: string;
  readonly amountCents: number;
}

/** What the engine supplies when a token's record is first created. */
export interface PaymentInput {
  readonly token: string;
  /** Random id of this life of the token; stale timers carry another one. */
  readonly lifeId: string;
  /** Creation time, epoch ms. */
  readonly at: number;
  readonly expiryMs: number;
  readonly retentionMs: number;
}

export interface HistoryEntry {
  readonly at: number;
  readonly event: string;
  readonly state: PaymentStatus;
}

export interface PaymentContext {
  readonly token: string;
  readonly lifeId: string;
  readonly expiryMs: number;
  readonly retentionMs: number;
  /** The payment being charged, charged, or refunded (the last body tried while pending). */
  readonly payment: Payment | null;
  /** Charge attempts so far; each attempt has its own ledger operation id. */
  readonly attempt: number;
  readonly lastDecline: { readonly reason: string; readonly at: number } | null;
  readonly createdAt: number;
  readonly updatedAt: number;
  readonly chargedAt: number | null;
  readonly cancelledAt: number | null;
  readonly refundedAt: number | null;
  readonly expiredAt: number | null;
  /**
   * When the expiry timer fires: one window after the last accepted event,
   * set anew at each decline (a `pending` record), charge, cancel and refund.
   */
  readonly expiresAt: number | null;
  /** When an expired record is removed. */
  readonly removeAt: number | null;
  /** Bounded to the last HISTORY_LIMIT entries. */
  readonly history: readonly HistoryEntry[];
}

/** Events sent by clients and timers. `at` is Redis's time when the event was handled, epoch ms. */
export type ClientEvent =
  | {
      readonly type: 'PAY';
      readonly accountId: string;
      readonly amountCents: number;
      readonly at: number;
    }
  | { readonly type: 'CANCEL'; readonly at: number }
  | {
      /**
       * A delayed event of the machine's own (its expiry timer), delivered
       * by the engine, which drops a cancelled, superseded or stale one.
       */
      readonly type: 'EXPIRE';
      readonly at: number;
    };

/** Outcomes of effects, fed back by their handlers (payment-effects.ts). */
export type EffectEvent =
  | { readonly type: 'CHARGE_SUCCEEDED'; readonly at: number }
  | { readonly type: 'CHARGE_DECLINED'; readonly reason: string; readonly at: number }
  | { readonly type: 'REFUND_COMPLETED'; readonly at: number };

export type PaymentEvent = ClientEvent | EffectEvent;

/** The answer to a client event, decided by the machine. */
export type Outcome =
  | 'charged'
  | 'replayed'
  | 'declined'
  | 'body_mismatch'
  | 'rejected'
  | 'expired'
  | 'cancelled'
  | 'refunded';

export interface ChargeParams {
  readonly operationId: string;
  readonly accountId: string;
  readonly amountCents: number;
}

export interface RefundParams {
  readonly operationId: string;
  readonly accountId: string;
  readonly amountCents: number;
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
