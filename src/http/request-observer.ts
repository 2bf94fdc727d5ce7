import type { RequestHandler } from 'express';
import { unredacted, type PinoLogger } from '../observability/log.ts';
import type { HttpMetrics } from '../observability/metrics.ts';
import type { RequestTrace, Tracing } from '../observability/tracing.ts';
import { sentErrorOf } from './error-handler.ts';
import { assignRequestId } from './request-id.ts';

/** Route patterns in OpenAPI form (`/payments/{token}`), matched against a raw path. */
export type RouteMatcher = (method: string, path: string) => string;

/** Label and log value of a request that matches no route (a 404). */
export const UNMATCHED_ROUTE = 'unmatched';

/** The raw paths an OpenAPI path template (`/payments/{token}`) stands for; a `{param}` is one non-empty segment. */
export function templatePattern(template: string): RegExp {
  return new RegExp(
    `^${template
      .split(/\{[^}]+\}/)
      .map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))
      .join('[^/]+')}/?$`,
  );
}

/** A matcher for the given OpenAPI path templates. */
export function routeMatcher(templates: readonly string[]): RouteMatcher {
  const compiled = templates.map((template) => ({ template, pattern: templatePattern(template) }));
  return (_method, path) =>
    compiled.find(({ pattern }) => pattern.test(path))?.template ?? UNMATCHED_ROUTE;
}

export interface RequestObserverOptions {
  readonly logger?: PinoLogger | undefined;
  readonly metrics?: HttpMetrics | undefined;
  readonly routeOf: RouteMatcher;
  /** Route patterns polled by a page (the inspector's): their lines are written at debug. */
  readonly pollRoutes?: readonly string[] | undefined;
  /** Gives each request a span (see continueRequestTrace); absent: tracing is off. */
  readonly tracing?: Pick<Tracing, 'startRequest'> | undefined;
}

/** Each traced request's span, from observeRequests to continueRequestTrace. */
const traces = new WeakMap<object, RequestTrace>();

/**
 * Runs the rest of the request inside its span. It goes after the body
 * parser: the parser calls on from a stream's event, outside any context a
 * middleware before it set.
 */
export function continueRequestTrace(): RequestHandler {
  return (req, _res, next) => {
    const trace = traces.get(req);
    if (trace === undefined) next();
    else trace.run(next);
  };
}

/**
 * First middleware of the app: gives the request its id (echoed as
 * X-Request-Id), and when the response is done writes the request's one log
 * line and its metrics. The line names the route pattern, never the URL (a
 * token is a client's key), and no header; for a 5xx it carries the error
 * and its cause, so each failure is logged once, with its request. Only that
 * line (an error's fields are not the code's own) goes through redaction.
 * A poll's line (`pollRoutes`) is written at debug: an open page would
 * otherwise log a line a second.
 */
export function observeRequests({
  logger,
  metrics,
  routeOf,
  pollRoutes = [],
  tracing,
}: RequestObserverOptions): RequestHandler {
  const lines = logger === undefined ? undefined : unredacted(logger);
  const polled = new Set(pollRoutes);
  return (req, res, next) => {
    const requestId = assignRequestId(req, res);
    const trace = tracing?.startRequest(req.method, req.get('traceparent'));
    if (trace !== undefined) traces.set(req, trace);
    // Nothing would read the end of this request (no metrics, no span, logs
    // off): no clock, no listener.
    if (metrics === undefined && trace === undefined && logger?.isLevelEnabled('error') !== true) {
      next();
      return;
    }
    const started = performance.now();
    // 'close' comes once per response, when it is done or aborted.
    res.on('close', () => {
      const seconds = (performance.now() - started) / 1e3;
      const path = req.originalUrl.split('?', 1)[0] ?? '';
      const route = routeOf(req.method, path);
      const finished = res.writableFinished;
      const sent = sentErrorOf(res);
      metrics?.request(req.method, route, finished ? res.statusCode : 'aborted', seconds);
      if (sent !== undefined) metrics?.errorResponse(sent.code);
      trace?.end({
        route,
        status: finished ? res.statusCode : 'aborted',
        requestId,
        code: sent?.code,
      });
      if (logger === undefined || lines === undefined) return;
      const line = {
        requestId,
        method: req.method,
        route,
        status: res.statusCode,
        durationMs: Math.round(seconds * 1e6) / 1e3,
        ...(finished ? {} : { aborted: true }),
        ...(sent === undefined ? {} : { code: sent.code }),
      };
      if (sent?.error !== undefined) {
        logger.error({ message: 'request failed', ...line, err: sent.error });
      } else if (polled.has(route)) {
        lines.debug({ message: 'request', ...line });
      } else {
        lines.info({ message: 'request', ...line });
      }
    });
    next();
  };
}
