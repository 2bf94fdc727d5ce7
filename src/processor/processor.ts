/**
 * What the payment service asks of a payment processor: charge (or
 * authorize), capture, void and refund. The built-in one is the account
 * ledger (ledger-processor.ts).
 *
 * Every call is idempotent by `operationId`: a repeat returns the first
 * outcome and moves nothing. `at` is when the movement was first asked for
 * (stored with the write that owes it, so the same on every re-run after a
 * crash), not the time of this attempt. Amounts are integers in the
 * currency's minor unit.
 */
import type { Currency } from '../money/currency.ts';

export type { Currency };

export interface ChargeRequest {
  readonly operationId: string;
  readonly accountId: string;
  readonly currency: Currency;
  readonly amountCents: number;
  /** false: authorize only (funds held until a capture or a void). */
  readonly capture: boolean;
  readonly token: string;
  readonly at: number;
}

export type ChargeOutcome =
  /** Captured (capture: true). */
  | { readonly status: 'succeeded' }
  /** Authorized, funds held (capture: false). */
  | { readonly status: 'requires_capture' }
  /** Nothing moved, e.g. `insufficient_funds`. */
  | { readonly status: 'declined'; readonly reason: string };

/** Captures `amountCents` of an authorization of `authorizedCents`; the rest is released. */
export interface CaptureRequest {
  readonly operationId: string;
  readonly accountId: string;
  readonly currency: Currency;
  readonly authorizedCents: number;
  readonly amountCents: number;
  readonly token: string;
  readonly at: number;
}

/** Releases an authorization's hold of `amountCents`. */
export interface VoidRequest {
  readonly operationId: string;
  readonly accountId: string;
  readonly currency: Currency;
  readonly amountCents: number;
  readonly token: string;
  readonly at: number;
}

export interface RefundRequest {
  readonly operationId: string;
  readonly accountId: string;
  readonly currency: Currency;
  readonly amountCents: number;
  readonly token: string;
  readonly at: number;
}

export interface Processor {
  charge(r: ChargeRequest): Promise<ChargeOutcome>;
  capture(r: CaptureRequest): Promise<{ status: 'succeeded' }>;
  void(r: VoidRequest): Promise<{ status: 'canceled' }>;
  refund(r: RefundRequest): Promise<{ status: 'succeeded' }>;
}
