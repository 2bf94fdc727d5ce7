import { z } from 'zod';
import { ValidationError } from '../errors.ts';
import type { Payment } from '../machine/payment.types.ts';

/** URL-safe printable: RFC 3986 unreserved characters. */
export const TOKEN_PATTERN = /^[A-Za-z0-9._~-]{1,255}$/;
export const ACCOUNT_ID_PATTERN = /^[A-Za-z0-9._~-]{1,128}$/;
/** One billion in major units: anything larger is a mistake, not a payment. */
export const MAX_AMOUNT_CENTS = 100_000_000_000;

export const paymentBodySchema = z
  .object({
    accountId: z
      .string({
        error: (issue) =>
          issue.input === undefined ? 'accountId is required' : 'accountId must be a string',
      })
      .regex(ACCOUNT_ID_PATTERN, 'accountId must be 1-128 characters of A-Z a-z 0-9 . _ ~ -'),
    amountCents: z
      .number({
        error: (issue) =>
          issue.input === undefined ? 'amountCents is required' : 'amountCents must be a number',
      })
      .int('amountCents must be a whole number of cents')
      .positive('amountCents must be positive')
      .max(MAX_AMOUNT_CENTS, `amountCents must be at most ${MAX_AMOUNT_CENTS}`),
  })
  .strict();

export function parseToken(raw: unknown, what = 'token'): string {
  if (typeof raw !== 'string' || !TOKEN_PATTERN.test(raw)) {
    throw new ValidationError(
      `${what} must be 1-255 characters of A-Z a-z 0-9 . _ ~ -`,
      'invalid_token',
    );
  }
  return raw;
}

export function parsePaymentBody(body: unknown): Payment {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new ValidationError('body must be a JSON object with accountId and amountCents');
  }
  const parsed = paymentBodySchema.safeParse(body);
  if (!parsed.success) {
    throw new ValidationError(
      parsed.error.issues
        .map((issue) =>
          issue.code === 'unrecognized_keys'
            ? `unknown field(s): ${issue.keys.join(', ')}`
            : issue.message,
        )
        .join('; '),
    );
  }
  return parsed.data;
}

export function parseAccountId(raw: unknown): string {
  if (typeof raw !== 'string' || !ACCOUNT_ID_PATTERN.test(raw)) {
    throw new ValidationError(
      'accountId must be 1-128 characters of A-Z a-z 0-9 . _ ~ -',
      'invalid_account_id',
    );
  }
  return raw;
}
