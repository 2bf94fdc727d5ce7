import { z } from 'zod';
import { ValidationError } from '../errors.ts';
import { INTERNAL_STATES, PROCESSING, PUBLIC_STATES } from '../machine/payment.types.ts';
import { currencyProblem } from '../money/currency.ts';
import type { PaymentRequest, RefundRequest } from '../payments/payments.ts';

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

/** What amountCents is, as the OpenAPI document says it (the validator below judges its JSON text). */
const AMOUNT_CENTS_DOC = {
  type: 'integer',
  minimum: 1,
  maximum: MAX_AMOUNT_CENTS,
  description:
    "In the currency's minor unit (cents; JPY: yen; KWD: fils), written as a JSON integer: no fraction (100.0), exponent (1e3), sign or leading zero.",
} as const;

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
  )
  .meta(AMOUNT_CENTS_DOC);

export const tokenSchema = z
  .string()
  .regex(TOKEN_PATTERN)
  .meta({ description: '1-255 characters of A-Z a-z 0-9 . _ ~ -, not "." or ".."' });

export const accountIdSchema = z
  .string()
  .regex(ACCOUNT_ID_PATTERN)
  .meta({ description: '1-128 characters of A-Z a-z 0-9 . _ ~ -, not "." or ".."' });

/** A payment's currency: what currencyProblem says of it is the message. */
export const paymentCurrencySchema = z
  .unknown()
  .superRefine((value, ctx) => {
    const problem = currencyProblem(value);
    if (problem !== null) ctx.addIssue({ code: 'custom', message: problem });
  })
  .transform((value) => value as string)
  .meta({
    type: 'string',
    pattern: '^[A-Z]{3}$',
    description: 'ISO 4217 code, upper case; default PAYSTATE_DEFAULT_CURRENCY (USD)',
  });

export const captureModeSchema = z
  .enum(['automatic', 'manual'], { error: 'capture must be "automatic" or "manual"' })
  .meta({
    description: 'manual: authorize only (funds held) and capture later; default automatic',
  });

/** The seed route's body: no currency (the default one), charged at once. */
export const seedPaymentBodySchema = z
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

export const paymentBodySchema = seedPaymentBodySchema
  .extend({
    currency: paymentCurrencySchema.optional(),
    capture: captureModeSchema.optional(),
  })
  .strict();

/** A capture: at most the authorized amount; none given, all of it. */
export const captureBodySchema = z
  .object({
    amountCents: amountCents.optional(),
  })
  .strict();

export const REFUND_REASON_MAX = 500;

/** A refund: at most what remains of the captured amount; none given, all that remains. */
export const refundBodySchema = z
  .object({
    amountCents: amountCents.optional(),
    reason: z
      .string({ error: 'reason must be a string' })
      .min(1, 'reason must not be empty')
      .max(REFUND_REASON_MAX, `reason must be at most ${REFUND_REASON_MAX} characters`)
      .optional(),
  })
  .strict();

export function parseToken(raw: unknown, what = 'token'): string {
  // tokenSchema's own check (a string matching TOKEN_PATTERN), without a schema run per request.
  if (typeof raw !== 'string' || !TOKEN_PATTERN.test(raw)) {
    throw new ValidationError(
      `${what} must be 1-255 characters of A-Z a-z 0-9 . _ ~ -, and not "." or ".."`,
      'invalid_token',
    );
  }
  return raw;
}

/** A body's issues as one message; a bad currency has a code of its own. */
function parseBody<T extends z.ZodType>(schema: T, body: unknown, what: string): z.output<T> {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new ValidationError(`body must be a JSON object ${what}`);
  }
  const parsed = schema.safeParse(body);
  if (!parsed.success) {
    const { issues } = parsed.error;
    const message = issues
      .map((issue) =>
        issue.code === 'unrecognized_keys'
          ? `unknown field(s): ${issue.keys.join(', ')}`
          : issue.message,
      )
      .join('; ');
    const currencyOnly = issues.every((issue) => issue.path[0] === 'currency');
    throw new ValidationError(message, currencyOnly ? 'invalid_currency' : 'invalid_request');
  }
  return parsed.data;
}

/** A payment body as the body parser gives it: numbers are JsonNumbers. */
export function parsePaymentBody(body: unknown): PaymentRequest {
  return parseBody(paymentBodySchema, body, 'with accountId and amountCents');
}

/** The seed route's body, as it always was. */
export function parseSeedPaymentBody(body: unknown): PaymentRequest {
  return parseBody(seedPaymentBodySchema, body, 'with accountId and amountCents');
}

/** A capture body; an empty body is `{}` (capture all). */
export function parseCaptureBody(body: unknown): { amountCents?: number } {
  return parseBody(captureBodySchema, body, 'with an optional amountCents');
}

export function parseRefundBody(body: unknown, refundId: string): RefundRequest {
  return { refundId, ...parseBody(refundBodySchema, body, 'with optional amountCents and reason') };
}

export function parseAccountId(raw: unknown): string {
  // accountIdSchema's own check, as for tokens.
  if (typeof raw !== 'string' || !ACCOUNT_ID_PATTERN.test(raw)) {
    throw new ValidationError(
      'accountId must be 1-128 characters of A-Z a-z 0-9 . _ ~ -, not . or ..',
      'invalid_account_id',
    );
  }
  return raw;
}

// Responses: documented in the OpenAPI document, checked against every
// response the tests receive, and the types views.ts must return.

const timestamp = z.iso.datetime();
/** The machine's states: what operators list and count by. */
const paymentStatus = z.enum([...PUBLIC_STATES, ...INTERNAL_STATES]);
/** A status as a client sees it: every internal step is `processing`. */
const shownStatus = z.enum([...PUBLIC_STATES, PROCESSING]);

export const refundViewSchema = z.strictObject({
  refundId: z
    .string()
    .nullable()
    .meta({ description: "The refund's Idempotency-Key; null: a cancel's" }),
  amountCents: z.int(),
  reason: z.string().nullable(),
  status: z.enum(['pending', 'succeeded']),
  createdAt: timestamp,
  refundedAt: timestamp.nullable(),
});

export const paymentViewSchema = z.strictObject({
  token: z.string(),
  status: shownStatus.meta({
    description:
      'processing: an internal step (charging, authorizing, capturing, voiding, refunding) whose outcome is not yet recorded',
  }),
  payment: z
    .strictObject({
      accountId: z.string(),
      amountCents: z.int(),
      currency: z.string(),
      capture: z.enum(['automatic', 'manual']),
    })
    .nullable(),
  capturedCents: z.int().meta({ description: 'Captured so far (an authorization: 0)' }),
  refundedCents: z.int(),
  refunds: z.array(refundViewSchema),
  lastDecline: z.strictObject({ reason: z.string(), at: timestamp }).nullable(),
  createdAt: timestamp,
  updatedAt: timestamp,
  chargedAt: timestamp.nullable(),
  authorizedAt: timestamp.nullable(),
  captureBy: timestamp
    .nullable()
    .meta({ description: 'When an uncaptured authorization is voided' }),
  capturedAt: timestamp.nullable(),
  cancelledAt: timestamp.nullable(),
  cancellationReason: z.enum(['requested', 'capture_window_elapsed']).nullable(),
  refundedAt: timestamp.nullable(),
  expiredAt: timestamp.nullable(),
  expiresAt: timestamp.nullable(),
  removeAt: timestamp.nullable(),
  history: z.array(z.strictObject({ at: timestamp, event: z.string(), state: paymentStatus })),
});
export type PaymentView = z.output<typeof paymentViewSchema>;

export const currencySchema = z
  .string()
  .regex(/^[A-Z]{3}$/)
  .meta({ description: 'ISO 4217 code, upper case', examples: ['EUR'] });

const cents = (description: string) => z.int().min(0).meta({ description });

/** GET /accounts/{id}'s query (the route reads it with parseCurrency, which names the problem). */
export const accountQuerySchema = z.strictObject({
  currency: currencySchema.optional().meta({
    description:
      "Show this currency only: `balances` holds it alone, `balanceCents` is its available funds and `ledger` its movements. Not a currency of ISO 4217's list: 400 `invalid_currency`",
  }),
});

export const accountViewSchema = z.strictObject({
  accountId: z.string(),
  balanceCents: z.int().meta({
    description:
      'Available funds of the selected currency (`?currency=`), else of the default currency, in its minor unit',
  }),
  balances: z
    .record(
      currencySchema,
      z.strictObject({
        availableCents: cents('Funds that can be charged or authorized, in the minor unit'),
        heldCents: cents('Funds held by authorizations not yet captured or voided'),
      }),
    )
    .meta({
      description:
        'Per currency: the selected one, or the default one and every currency the account has used',
    }),
  ledger: z.array(
    z.strictObject({
      operationId: z.string(),
      kind: z.enum(['withdrawal', 'hold', 'capture', 'release', 'deposit']).meta({
        description:
          'withdrawal: a charge; hold: an authorization; capture: a hold settled (amountCents captured, releasedCents given back); release: a hold voided; deposit: a refund',
      }),
      currency: currencySchema,
      amountCents: z.int(),
      releasedCents: z.int(),
      balanceCents: z.int().meta({ description: "The currency's available funds after it" }),
      heldCents: z.int().meta({ description: "The currency's held funds after it" }),
      token: z.string(),
      at: timestamp,
    }),
  ),
});
export type AccountViewBody = z.output<typeof accountViewSchema>;

export const seedPaymentResultSchema = z.strictObject({
  success: z.boolean(),
  reason: z.string(),
});

export const seedCancelResultSchema = z.strictObject({
  success: z.boolean(),
  reason: z.string(),
  status: shownStatus.nullable(),
});

// Operators' routes (/admin).

const ALL_STATES = [...PUBLIC_STATES, ...INTERNAL_STATES] as const;

export const adminListQuerySchema = z.strictObject({
  status: paymentStatus.meta({ description: 'The state to list (internal steps included)' }),
  limit: z
    .string()
    .regex(/^[1-9][0-9]{0,3}$/)
    .transform(Number)
    .pipe(z.int().max(1000))
    .optional()
    .meta({ description: '1-1000, default 50' }),
  cursor: z.string().max(1024).optional().meta({ description: "The previous page's nextCursor" }),
});

/** `30s`, `5m`, `500ms`, `1h`; a bare number is seconds. */
export const DURATION_PATTERN = /^([0-9]{1,9})(ms|s|m|h)?$/;

export const adminStuckQuerySchema = z.strictObject({
  olderThan: z.string().regex(DURATION_PATTERN).optional().meta({
    description:
      'Owed for longer than this: 500ms, 30s, 5m, 1h (a bare number is seconds); default 30s',
  }),
  limit: adminListQuerySchema.shape.limit,
});

/** Milliseconds of a DURATION_PATTERN text. */
export function durationMs(text: string): number {
  const match = DURATION_PATTERN.exec(text);
  if (match === null) throw new ValidationError(`${text} is not a duration such as 30s or 500ms`);
  const unit = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 }[match[2] ?? 's'] ?? 1_000;
  return Number(match[1]) * unit;
}

/** A query string as zod sees it; the message names what was wrong. */
export function parseQuery<T extends z.ZodType>(schema: T, query: unknown): z.output<T> {
  const parsed = schema.safeParse(query);
  if (parsed.success) return parsed.data;
  throw new ValidationError(
    parsed.error.issues
      .map((issue) => {
        if (issue.code === 'unrecognized_keys')
          return `unknown parameter(s): ${issue.keys.join(', ')}`;
        const name = issue.path.join('.');
        if (name === 'status') return `status must be one of ${ALL_STATES.join(', ')}`;
        if (name === 'limit') return 'limit must be a whole number from 1 to 1000';
        if (name === 'olderThan')
          return 'olderThan must be a duration such as 500ms, 30s, 5m or 1h';
        return `${name}: ${issue.message}`;
      })
      .join('; '),
  );
}

export const adminPaymentListSchema = z.strictObject({
  status: paymentStatus,
  payments: z.array(
    z.strictObject({
      token: z.string(),
      status: paymentStatus,
      updatedAt: timestamp.meta({ description: "Redis's time of the token's last write" }),
    }),
  ),
  nextCursor: z
    .string()
    .nullable()
    .meta({ description: 'Pass as cursor for the next page; null: no more' }),
});
export type AdminPaymentList = z.output<typeof adminPaymentListSchema>;

export const adminPaymentStatsSchema = z.strictObject({
  counts: z.strictObject(
    Object.fromEntries(ALL_STATES.map((state) => [state, z.int().min(0)])) as Record<
      (typeof ALL_STATES)[number],
      z.ZodInt
    >,
  ),
  total: z.int().min(0),
  unreadable: z.int().min(0).meta({
    description:
      'Tokens whose stored record cannot be read (counted in their status too); see docs/operations.md',
  }),
});
export type AdminPaymentStats = z.output<typeof adminPaymentStatsSchema>;

export const adminStuckListSchema = z.strictObject({
  olderThanMs: z.int().min(0),
  payments: z.array(
    z.strictObject({
      token: z.string(),
      status: paymentStatus
        .nullable()
        .meta({ description: 'null: the record is gone or cannot be read' }),
      reason: z.enum(['owed', 'timer', 'unreadable']).meta({
        description:
          'owed: work a write owes has not run; timer: the expiry timer is overdue (its job may be gone: the worker re-arms it); unreadable: the record cannot be read and waits for an operator',
      }),
      owedSince: timestamp.meta({
        description:
          'When the owed work was written, the timer was due, or the record was first found unreadable (Redis time)',
      }),
    }),
  ),
});
export type AdminStuckList = z.output<typeof adminStuckListSchema>;

export const healthSchema = z.strictObject({ status: z.literal('ok') });
export const readySchema = z.strictObject({ status: z.literal('ready') });
