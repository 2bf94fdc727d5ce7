/**
 * The processor: where a payment's money moves. Every call is idempotent by
 * `operationId` (a repeat returns the first outcome and moves nothing); `at`
 * is when the movement was first asked for, the same on every re-run.
 */
export type Currency = string; // ISO 4217 code, upper case, validated at the edge
export interface ChargeRequest {
  operationId: string;
  accountId: string;
  currency: Currency;
  amountCents: number;
  capture: boolean;
  token: string;
  at: number;
}
export type ChargeOutcome =
  | { status: 'succeeded' } // captured (capture: true)
  | { status: 'requires_capture' } // authorized, funds held (capture: false)
  | { status: 'declined'; reason: string }; // e.g. 'insufficient_funds'
export interface CaptureRequest {
  operationId: string;
  accountId: string;
  currency: Currency;
  authorizedCents: number;
  amountCents: number;
  token: string;
  at: number;
} // rest released
export interface VoidRequest {
  operationId: string;
  accountId: string;
  currency: Currency;
  amountCents: number;
  token: string;
  at: number;
} // hold released
export interface RefundRequest {
  operationId: string;
  accountId: string;
  currency: Currency;
  amountCents: number;
  token: string;
  at: number;
}
export interface Processor {
  charge(r: ChargeRequest): Promise<ChargeOutcome>;
  capture(r: CaptureRequest): Promise<{ status: 'succeeded' }>;
  void(r: VoidRequest): Promise<{ status: 'canceled' }>;
  refund(r: RefundRequest): Promise<{ status: 'succeeded' }>;
}
