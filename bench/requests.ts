/** The API requests the scenarios send. */
import { randomBytes } from 'node:crypto';
import type { RequestSpec } from './http-load.ts';

export const AMOUNT_CENTS = 100;

/** A run-unique token prefix, so repeated runs against one Redis never share tokens. */
export function tokenPrefix(label: string): string {
  return `${label}-${randomBytes(3).toString('hex')}`;
}

export function payment(token: string, accountId: string, amountCents = AMOUNT_CENTS): RequestSpec {
  return {
    method: 'POST',
    path: '/payments',
    headers: { 'idempotency-key': token },
    body: `{"accountId":"${accountId}","amountCents":${amountCents}}`,
  };
}

export function cancellation(token: string): RequestSpec {
  return { method: 'POST', path: `/payments/${token}/cancel` };
}

/** `count` account ids; payments spread over them round-robin. */
export function accountIds(label: string, count: number): string[] {
  return Array.from({ length: count }, (_, i) => `${label}-${i}`);
}
