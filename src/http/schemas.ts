import { z } from 'zod';
import { ValidationError } from '../errors.ts';
import type { Payment } from '../payments/payment.types.ts';

/**
 * URL-safe printable: RFC 3986 unreserved characters, but not the dot
 * segments "." and "..", which clients resolve away in a URL path: a token
 * named so could be charged yet never be read or cancelled by its URL.
 */
export const TOKEN_PATTERN = /^(?!\.{1,2}$)[A-Za-z0-9._~-]{1,255}$/;
/** The same characters, and the same dot segments refused: `GET /accounts/..` could never show it. */
export const ACCOUNT_ID_PATTERN = /^(?!\.{1,2}$)[A-Za-z0-9._~-]{1,128}$/;
/** One billion in major units: anything larger is a mistake, not a payment. */
export const MAX_AMOUNT_CENTS = 100_000_000_000;

/**
 * A number from a request body as the client wrote it. The body parser keeps
 * the text, so amounts are judged by what was sent: JSON.parse would turn
 * `1.0000000000000001` or `1e3` into integers and hide that they were not
 * written as one.
 */
export class JsonNumber {
  constructor(readonly text: string) {}
}

/** An integer written as one: no fraction, exponent, plus sign or leading zero. */
const INTEGER_TEXT = /^-?(0|[1-9][0-9]*)$/;

const amountCents = z
  .instanceof(JsonNumber, {
    error: (issue) =>
      issue.input === undefined ? 'amountCents is required' : 'amountCents must be a number',
  })
  .refine((n) => INTEGER_TEXT.test(n.text), {
    error: (issue) =>
      `amountCents must be a whole number of cents written as an integer (no fraction or exponent), got ${(issue.input as JsonNumber).text}`,
  })
  .transform((n) => Number(n.text))
  .pipe(
    z
      .number()
      .positive('amountCents must be positive')
      .max(MAX_AMOUNT_CENTS, `amountCents must be at most ${MAX_AMOUNT_CENTS}`),
  );

export const paymentBodySchema = z
  .object({
    accountId: z
      .string({
        error: (issue) =>
          issue.input === undefined ? 'accountId is required' : 'accountId must be a string',
      })
      .regex(
        ACCOUNT_ID_PATTERN,
        'accountId must be 1-128 characters of A-Z a-z 0-9 . _ ~ -, not . or ..',
      ),
    amountCents,
  })
  .strict();

export function parseToken(raw: unknown, what = 'token'): string {
  if (typeof raw !== 'string' || !TOKEN_PATTERN.test(raw)) {
    throw new ValidationError(
      `${what} must be 1-255 characters of A-Z a-z 0-9 . _ ~ -, and not "." or ".."`,
      'invalid_token',
    );
  }
  return raw;
}

/** A payment body as the body parser gives it: numbers are JsonNumbers. */
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
      'accountId must be 1-128 characters of A-Z a-z 0-9 . _ ~ -, not . or ..',
      'invalid_account_id',
    );
  }
  return raw;
}
