/**
 * The processor protocol on the wire (docs/processor.md): the shapes both
 * the HTTP client and the emulator speak, and the checks that a value
 * received is one of them. Amounts are integers in the currency's minor unit.
 */

export const IDEMPOTENCY_KEY_HEADER = 'idempotency-key';
export const SIGNATURE_HEADER = 'processor-signature';
export const REPLAYED_HEADER = 'idempotent-replayed';

export const MAX_AMOUNT = 100_000_000_000;

export type ChargeStatus =
  'succeeded' | 'declined' | 'processing' | 'requires_capture' | 'canceled';

export const CHARGE_STATUSES: readonly ChargeStatus[] = [
  'succeeded',
  'declined',
  'processing',
  'requires_capture',
  'canceled',
];

export interface ChargeRequest {
  readonly amount: number;
  readonly currency: string;
  readonly account: string;
  /** false: authorize only; capture later with `POST /charges/{id}/capture`. */
  readonly capture: boolean;
}

export interface Refund {
  readonly id: string;
  readonly amount: number;
  readonly status: 'succeeded';
  readonly idempotency_key: string;
}

export interface Charge {
  readonly id: string;
  readonly status: ChargeStatus;
  readonly amount: number;
  readonly currency: string;
  readonly account: string;
  readonly capture: boolean;
  readonly amount_captured: number;
  readonly amount_refunded: number;
  readonly idempotency_key: string;
  /** Why a `declined` charge was declined; null otherwise. */
  readonly failure_reason: string | null;
  readonly refunds: readonly Refund[];
  /** Unix seconds. */
  readonly created: number;
}

export interface RefundResponse extends Refund {
  readonly charge: Charge;
}

export type WebhookEventType =
  | 'charge.processing'
  | 'charge.succeeded'
  | 'charge.declined'
  | 'charge.requires_capture'
  | 'charge.captured'
  | 'charge.canceled'
  | 'charge.refunded';

/**
 * What the processor posts to `/processor/webhooks`. It carries only the
 * charge id on purpose: the receiver re-reads the charge before acting.
 */
export interface WebhookEvent {
  readonly id: string;
  readonly type: WebhookEventType;
  readonly created: number;
  readonly data: { readonly id: string };
}

export interface ErrorBody {
  readonly error: { readonly code: string; readonly message: string };
}

const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

const isAmount = (value: unknown): value is number =>
  Number.isSafeInteger(value) && (value as number) >= 0;

function isRefund(value: unknown): value is Refund {
  return (
    isRecord(value) &&
    typeof value.id === 'string' &&
    isAmount(value.amount) &&
    value.status === 'succeeded' &&
    typeof value.idempotency_key === 'string'
  );
}

/** Whether `value` is a whole charge as the protocol defines it. */
export function isCharge(value: unknown): value is Charge {
  return (
    isRecord(value) &&
    typeof value.id === 'string' &&
    value.id !== '' &&
    CHARGE_STATUSES.includes(value.status as ChargeStatus) &&
    isAmount(value.amount) &&
    typeof value.currency === 'string' &&
    typeof value.account === 'string' &&
    typeof value.capture === 'boolean' &&
    isAmount(value.amount_captured) &&
    isAmount(value.amount_refunded) &&
    typeof value.idempotency_key === 'string' &&
    (value.failure_reason === null || typeof value.failure_reason === 'string') &&
    Array.isArray(value.refunds) &&
    value.refunds.every(isRefund) &&
    isAmount(value.created)
  );
}

export function isRefundResponse(value: unknown): value is RefundResponse {
  return isRefund(value) && isCharge((value as unknown as Record<string, unknown>).charge);
}

/** The `{error: {code, message}}` body of a refusal, or null when it is not one. */
export function errorOf(value: unknown): ErrorBody['error'] | null {
  if (!isRecord(value) || !isRecord(value.error)) return null;
  const { code, message } = value.error;
  return typeof code === 'string' && typeof message === 'string' ? { code, message } : null;
}
