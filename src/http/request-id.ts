import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';

/**
 * X-Request-Id: the client's, when it is a sane value, else a new UUID.
 * Every response carries it (errors, 404s, the server's own 503s and parser
 * refusals too), and so does the request's log line.
 */
export const REQUEST_ID_HEADER = 'x-request-id';

/** 1–128 characters that are safe in a header, a log line and a support ticket. */
export const REQUEST_ID_PATTERN = /^[A-Za-z0-9._~:-]{1,128}$/;

export function newRequestId(): string {
  return randomUUID();
}

/** The client's id if it is one we keep (a repeated header is not), else a new one. */
export function requestIdFrom(header: string | string[] | undefined): string {
  return typeof header === 'string' && REQUEST_ID_PATTERN.test(header) ? header : newRequestId();
}

/**
 * The request's id, set on the response the first time it is asked for:
 * the server asks before the app, so both see the same one.
 */
export function assignRequestId(req: IncomingMessage, res: ServerResponse): string {
  const current = res.getHeader(REQUEST_ID_HEADER);
  if (typeof current === 'string') return current;
  const id = requestIdFrom(req.headers[REQUEST_ID_HEADER]);
  res.setHeader(REQUEST_ID_HEADER, id);
  return id;
}
