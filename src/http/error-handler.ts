import type { ErrorRequestHandler, RequestHandler, Response } from 'express';
import { AppError, RateLimitedError, UnauthenticatedError, toAppError } from '../errors.ts';

/**
 * The one place that maps error codes to HTTP statuses (documented in
 * docs/api.md). Bodies are `{ "error": { "code", "message" } }`; never a
 * stack trace or a library's message.
 */
export const STATUS_BY_CODE = {
  invalid_request: 400,
  invalid_json: 400,
  invalid_token: 400,
  invalid_account_id: 400,
  missing_idempotency_key: 400,
  invalid_currency: 400,
  invalid_webhook_url: 400,
  unauthenticated: 401,
  invalid_cursor: 400,
  payment_declined: 402,
  not_found: 404,
  payment_cancelled: 409,
  payment_refunded: 409,
  payment_not_capturable: 409,
  payment_not_refundable: 409,
  capture_conflict: 409,
  token_busy: 409,
  conflict: 409,
  webhook_endpoint_limit: 409,
  request_timeout: 408,
  token_expired: 410,
  payload_too_large: 413,
  unsupported_media_type: 415,
  idempotency_key_reused: 422,
  capture_too_large: 422,
  refund_too_large: 422,
  refund_limit_reached: 422,
  rate_limited: 429,
  headers_too_large: 431,
  unavailable: 503,
  store_lost: 503,
  storage_full: 503,
  record_unreadable: 500,
  internal: 500,
} as const satisfies Record<string, number>;

export type ErrorCode = keyof typeof STATUS_BY_CODE;

function statusOf(code: string): number {
  return (STATUS_BY_CODE as Record<string, number>)[code] ?? 500;
}

const RETRY_AFTER_SECONDS = 1;

/**
 * What a 5xx says instead of the error's own message (which may name stored
 * keys or a library's words); any other 5xx says `internal error`.
 */
const PUBLIC_5XX_MESSAGES: Readonly<Record<string, string>> = {
  record_unreadable:
    'the stored record of this payment cannot be read; it is kept as it is until an operator resolves it',
};

/** What an error response recorded for the request's log line and the error counter. */
export interface SentError {
  readonly code: string;
  /** The error behind a 5xx, logged with its cause on the request's line. */
  readonly error?: AppError;
}

const SENT_ERROR = 'paystateError';

/** The error response sent for this request, if one was. */
export function sentErrorOf(res: Response): SentError | undefined {
  return res.locals[SENT_ERROR] as SentError | undefined;
}

function writeError(res: Response, status: number, sent: SentError, message: string): void {
  res.locals[SENT_ERROR] = sent;
  res.status(status).json({ error: { code: sent.code, message } });
}

/** Sends an error body with the status the table gives its code (business refusals use it too). */
export function sendError(res: Response, code: ErrorCode, message: string): void {
  writeError(res, statusOf(code), { code }, message);
}

/** body-parser's errors carry `type` and `status`; turn them into ours. */
function fromBodyParser(error: unknown): AppError | null {
  if (typeof error !== 'object' || error === null || !('type' in error)) return null;
  switch (error.type) {
    case 'entity.parse.failed':
      return new AppError('invalid_json', 'body is not valid JSON', false);
    case 'entity.too.large':
      return new AppError('payload_too_large', 'body is too large', false);
    case 'encoding.unsupported':
    case 'charset.unsupported':
      return new AppError('unsupported_media_type', 'body encoding is not supported', false);
    case 'request.aborted':
    case 'request.size.invalid':
    case 'stream.encoding.set':
      return new AppError('invalid_request', 'body could not be read', false);
    default:
      return null;
  }
}

/** The router fails to decode a malformed percent-escape in a path param with a URIError (status 400). */
function fromRouter(error: unknown): AppError | null {
  if (error instanceof URIError && (error as { status?: unknown }).status === 400) {
    return new AppError('invalid_request', 'request path is not valid percent-encoding', false);
  }
  return null;
}

/**
 * A body that does not decompress as its Content-Encoding says arrives as
 * zlib's own error, which body-parser marks 400 but gives no `type`.
 */
function fromBodyDecoding(error: unknown): AppError | null {
  if (
    error instanceof Error &&
    'errno' in error &&
    (error as { status?: unknown }).status === 400
  ) {
    return new AppError('invalid_request', 'body could not be decoded', false);
  }
  return null;
}

/**
 * Every error that reaches express ends here. It is not logged here: the
 * request's one log line carries its code, and for a 5xx the error with its
 * cause (see request-observer.ts).
 */
export function errorHandler(): ErrorRequestHandler {
  return (error: unknown, _req, res, next) => {
    if (res.headersSent) {
      next(error);
      return;
    }
    const appError =
      fromBodyParser(error) ?? fromRouter(error) ?? fromBodyDecoding(error) ?? toAppError(error);
    const status = statusOf(appError.code);
    if (appError.retryable) {
      const seconds =
        appError instanceof RateLimitedError ? appError.retryAfterSeconds : RETRY_AFTER_SECONDS;
      res.set('Retry-After', String(seconds));
    }
    // RFC 6750: a 401 names the scheme the client should use.
    if (appError instanceof UnauthenticatedError) {
      res.set('WWW-Authenticate', 'Bearer realm="paystate"');
    }
    const message =
      status === 500 ? (PUBLIC_5XX_MESSAGES[appError.code] ?? 'internal error') : appError.message;
    writeError(
      res,
      status,
      status >= 500 ? { code: appError.code, error: appError } : { code: appError.code },
      message,
    );
  };
}

export const notFoundHandler: RequestHandler = (req, res) => {
  sendError(res, 'not_found', `no route for ${req.method} ${req.path}`);
};
