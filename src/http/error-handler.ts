import type { ErrorRequestHandler, RequestHandler, Response } from 'express';
import { AppError, toAppError } from '../errors.ts';

/**
 * The one place that maps error codes to HTTP statuses (documented in
 * docs/api.md). Bodies are `{ "error": { "code", "message" } }`; never a
 * stack trace or a library's message.
 */
const STATUS_BY_CODE: Record<string, number> = {
  invalid_request: 400,
  invalid_json: 400,
  invalid_token: 400,
  invalid_account_id: 400,
  missing_idempotency_key: 400,
  not_found: 404,
  token_busy: 409,
  conflict: 409,
  payload_too_large: 413,
  unsupported_media_type: 415,
  unavailable: 503,
  stored_data_unreadable: 500,
  internal: 500,
};

const RETRY_AFTER_SECONDS = 1;

export function sendError(res: Response, status: number, code: string, message: string): void {
  res.status(status).json({ error: { code, message } });
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

export function errorHandler(log: (error: AppError) => void): ErrorRequestHandler {
  return (error: unknown, _req, res, next) => {
    if (res.headersSent) {
      next(error);
      return;
    }
    const appError = fromBodyParser(error) ?? toAppError(error);
    const status = STATUS_BY_CODE[appError.code] ?? 500;
    if (status >= 500) log(appError);
    if (appError.retryable) res.set('Retry-After', String(RETRY_AFTER_SECONDS));
    const message = status === 500 ? 'internal error' : appError.message;
    sendError(res, status, appError.code, message);
  };
}

export const notFoundHandler: RequestHandler = (req, res) => {
  sendError(res, 404, 'not_found', `no route for ${req.method} ${req.path}`);
};
