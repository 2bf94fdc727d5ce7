import express, { type Express, type Request, type RequestHandler, type Response } from 'express';
import iconv from 'iconv-lite';
import { parse as parseKeepingNumberText } from 'lossless-json';
import type { Ledger } from '../accounts/ledger.ts';
import { AppError, NotFoundError, ValidationError } from '../errors.ts';
import type { CommandResult, Payments } from '../payments/payments.ts';
import { TenantPayments } from '../payments/tenant-payments.ts';
import type { PinoLogger } from '../observability/log.ts';
import type { ServiceMetrics } from '../observability/metrics.ts';
import { authenticate, tenantOf, type AuthOptions } from './auth.ts';
import type { Tracing } from '../observability/tracing.ts';
import { adminRouter } from './admin.ts';
import { serveDocsPage } from './docs-page.ts';
import { INSPECTOR_POLLED_ROUTES, paymentInspector } from './payment-inspector.ts';
import { errorHandler, notFoundHandler, sendError } from './error-handler.ts';
import { documentedPaths, openApiDocument } from './openapi.ts';
import { continueRequestTrace, observeRequests, routeMatcher } from './request-observer.ts';
import { repeatedMember } from './repeated-member.ts';
import {
  JsonNumber,
  parseAccountId,
  parseCaptureBody,
  parsePaymentBody,
  parseRefundBody,
  parseSeedPaymentBody,
  parseToken,
} from './schemas.ts';
import { accountView, paymentView, reasonFor } from './views.ts';
import { parseCurrency } from '../money/currency.ts';
import type { Tenant } from '../tenants.ts';
import { shownStatus } from '../machine/payment.types.ts';
import type { GuardOptions } from '../webhooks/address-guard.ts';
import type { WebhookEndpoints } from '../webhooks/endpoints.ts';
import { webhookRouter } from './webhook-routes.ts';

export interface AppDeps {
  readonly payments: Payments;
  readonly ledger: Ledger;
  /** Resolves when storage answers and is the store this process knows; rejects otherwise. */
  readonly ping: () => Promise<void>;
  /**
   * Why every payment and account request is refused right now (the store
   * was emptied or replaced, Redis may evict keys), or null.
   */
  readonly refusal?: () => AppError | null;
  /** Request lines (one per request; 5xx with their cause). None when absent. */
  readonly logger?: PinoLogger;
  /** HTTP series are recorded in it; GET /metrics serves it unless `serveMetrics` is false. */
  readonly metrics?: ServiceMetrics;
  /** False when /metrics is served on a port of its own (METRICS_PORT). */
  readonly serveMetrics?: boolean;
  /** API keys and rate limits; absent in local mode (no authentication, no tenants). */
  readonly auth?: AuthOptions;
  /** Spans for requests (OTEL_EXPORTER_OTLP_ENDPOINT); none when absent. */
  readonly tracing?: Tracing;
  /** The webhook endpoint registry and the address guard its URLs pass; no routes when absent. */
  readonly webhooks?: { readonly endpoints: WebhookEndpoints; readonly guard: GuardOptions };
}

/** The scrape handler, shared with the metrics-only listener. */
export function metricsHandler(metrics: ServiceMetrics): RequestHandler {
  return async (_req, res) => {
    const { contentType, text } = await metrics.scrape();
    res.type(contentType).send(text);
  };
}

/** Largest request body accepted; larger ones get 413 before they are read. */
export const BODY_LIMIT_BYTES = 16 * 1024;

const tooLarge = () => new AppError('payload_too_large', 'body is too large', false);

/** The bytes of a body as body-parser read them, before it decoded and parsed them. */
const rawBodies = new WeakMap<Request, { bytes: Buffer; charset: string }>();

/** A member name for an error message: quoted, and cut short when long. */
function memberName(key: string): string {
  return JSON.stringify(key.length > 64 ? `${key.slice(0, 64)}…` : key);
}

/**
 * The body's value again, with every number kept as the text the client
 * wrote (a JsonNumber), so schemas.ts judges amounts by what was sent.
 * body-parser has already read, limited, decoded and syntax-checked the body
 * (its errors and statuses stay as they are); this parses the same text.
 */
function keepNumberText(req: Request): void {
  const raw = rawBodies.get(req);
  if (raw === undefined) return;
  const text = iconv.decode(raw.bytes, raw.charset);
  // body-parser reads an empty body as {}: keep that.
  if (text === '') return;
  const repeated = repeatedMember(text);
  if (repeated !== null) {
    throw new AppError('invalid_json', `body repeats the member ${memberName(repeated)}`, false);
  }
  try {
    req.body = parseKeepingNumberText(text, null, {
      parseNumber: (literal) => new JsonNumber(literal),
    });
  } catch (error) {
    // The parser recurses: nesting JSON.parse took can overflow its stack.
    // No payment body nests at all.
    if (error instanceof RangeError) {
      throw new AppError('invalid_request', 'body is nested too deeply', false);
    }
    throw new AppError('invalid_json', 'body is not valid JSON', false);
  }
}

/**
 * The JSON body parser, refusing an oversized body from its declared length,
 * or as soon as the bytes received pass the limit. body-parser alone answers
 * only once it has read the whole request, so a client that declares 10 MB,
 * or streams a chunked body without end, would wait that long or forever.
 */
function jsonBody(): RequestHandler {
  // Seed clients may send JSON without a content type: parse whatever comes.
  const parse: RequestHandler = express.json({
    limit: BODY_LIMIT_BYTES,
    strict: false,
    type: () => true,
    verify: (req, _res, bytes, charset) => {
      rawBodies.set(req as Request, { bytes, charset });
    },
  });
  return (req, res, next) => {
    if (Number(req.headers['content-length'] ?? 0) > BODY_LIMIT_BYTES) {
      next(tooLarge());
      return;
    }
    const read = { done: false, bytes: 0 };
    const finish = (error?: unknown) => {
      if (read.done) return;
      read.done = true;
      req.off('data', count);
      if (error === undefined) {
        try {
          keepNumberText(req);
        } catch (parseError) {
          next(parseError);
          return;
        }
      }
      next(error);
    };
    const count = (chunk: Buffer) => {
      read.bytes += chunk.length;
      if (read.bytes > BODY_LIMIT_BYTES) finish(tooLarge());
    };
    void parse(req, res, finish);
    // The parser attached its reader synchronously; no chunk has been emitted yet.
    if (!read.done) req.on('data', count);
  };
}

/** Builds the HTTP app; it never listens (tests and main own the server). */
export function createApp(deps: AppDeps): Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.use(
    observeRequests({
      logger: deps.logger,
      metrics: deps.metrics,
      routeOf: routeMatcher(documentedPaths()),
      pollRoutes: INSPECTOR_POLLED_ROUTES,
      tracing: deps.tracing,
    }),
  );
  // Before the body is read: an unauthenticated request costs no parsing.
  if (deps.auth !== undefined) app.use(authenticate(deps.auth));
  app.use(jsonBody());
  const scope = (req: Request) => new TenantPayments(deps.payments, deps.ledger, tenantOf(req));
  if (deps.tracing !== undefined) app.use(continueRequestTrace());

  app.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });

  app.get('/readyz', async (_req, res) => {
    await deps.ping();
    res.json({ status: 'ready' });
  });

  // Operators' routes answer while the store is lost: that is when they are needed.
  if (deps.metrics !== undefined && deps.serveMetrics !== false) {
    app.get('/metrics', metricsHandler(deps.metrics));
  }
  app.get('/openapi.json', (_req, res) => {
    res.json(openApiDocument());
  });
  serveDocsPage(app);

  // A store that came back empty or was replaced answers nothing true: a
  // read would say "unknown" of a charged token, a write would charge again.
  // A Redis that may evict keys could make either true at any moment.
  app.use((_req, _res, next) => {
    next(deps.refusal?.() ?? undefined);
  });

  // Seed-compatible routes: every business outcome is a 200 with `success`.
  app.post('/PaymentProcessor/:token/makePayment', async (req, res) => {
    const token = parseToken(req.params.token);
    const payment = parseSeedPaymentBody(req.body);
    const result = await scope(req).pay(token, payment);
    if (result.outcome === 'body_mismatch') {
      sendError(res, 'idempotency_key_reused', reasonFor('body_mismatch', result.snapshot));
      return;
    }
    const outcome = expectOutcome(result);
    res.json({
      // A seed payment is never manual: charged or replayed is its success.
      success: outcome === 'charged' || outcome === 'replayed',
      reason: reasonFor(outcome, result.snapshot),
    });
  });

  app.post('/PaymentProcessor/:token/cancelPayment', async (req, res) => {
    const token = parseToken(req.params.token);
    const result = await scope(req).cancel(token);
    const outcome = expectOutcome(result);
    res.json({
      success: outcome !== 'expired',
      reason: reasonFor(outcome, result.snapshot),
      status: result.snapshot === null ? null : shownStatus(result.snapshot.value),
    });
  });

  // Native routes.
  app.post('/payments', async (req, res) => {
    const key = req.get('Idempotency-Key');
    const token = parseToken(
      key === undefined || key === '' ? missingKey() : key,
      'Idempotency-Key',
    );
    const payment = parsePaymentBody(req.body);
    const result = await scope(req).pay(token, payment);
    const outcome = expectOutcome(result);
    const snapshot = result.snapshot;
    const viewOf = viewFor(tenantOf(req));
    switch (outcome) {
      case 'charged':
      case 'authorized':
        res.status(201).location(`/payments/${token}`).json(viewOf(result));
        return;
      case 'replayed':
        res.status(200).set('Idempotent-Replayed', 'true').json(viewOf(result));
        return;
      case 'declined':
        sendError(res, 'payment_declined', reasonFor(outcome, snapshot));
        return;
      case 'body_mismatch':
        sendError(res, 'idempotency_key_reused', reasonFor(outcome, snapshot));
        return;
      case 'rejected':
        sendError(
          res,
          snapshot?.value === 'refunded' ? 'payment_refunded' : 'payment_cancelled',
          reasonFor(outcome, snapshot),
        );
        return;
      case 'expired':
        sendError(res, 'token_expired', reasonFor(outcome, snapshot));
        return;
      default:
        throw new Error(`unexpected outcome ${outcome} for a payment`);
    }
  });

  app.post('/payments/:token/capture', async (req, res) => {
    const token = parseToken(req.params.token);
    const { amountCents } = parseCaptureBody(req.body);
    const result = await scope(req).capture(token, amountCents);
    if (result === null) throw new NotFoundError(`no payment with token ${token}`);
    const outcome = expectOutcome(result);
    const snapshot = result.snapshot;
    switch (outcome) {
      case 'captured':
        res.status(200).json(viewFor(tenantOf(req))(result));
        return;
      case 'capture_replayed':
        res
          .status(200)
          .set('Idempotent-Replayed', 'true')
          .json(viewFor(tenantOf(req))(result));
        return;
      case 'capture_mismatch':
        sendError(res, 'capture_conflict', reasonFor(outcome, snapshot));
        return;
      case 'capture_too_large':
        sendError(res, 'capture_too_large', reasonFor(outcome, snapshot));
        return;
      case 'not_capturable':
        sendError(
          res,
          snapshot?.value === 'cancelled' ? 'payment_cancelled' : 'payment_not_capturable',
          reasonFor(outcome, snapshot),
        );
        return;
      case 'expired':
        sendError(res, 'token_expired', reasonFor(outcome, snapshot));
        return;
      default:
        throw new Error(`unexpected outcome ${outcome} for a capture`);
    }
  });

  app.post('/payments/:token/refunds', async (req, res) => {
    const token = parseToken(req.params.token);
    const key = req.get('Idempotency-Key');
    const refundId = parseToken(
      key === undefined || key === '' ? missingKey() : key,
      'Idempotency-Key',
    );
    const request = parseRefundBody(req.body, refundId);
    const result = await scope(req).refund(token, request);
    if (result === null) throw new NotFoundError(`no payment with token ${token}`);
    const outcome = expectOutcome(result);
    const snapshot = result.snapshot;
    switch (outcome) {
      case 'refund_succeeded':
        res
          .status(201)
          .location(`/payments/${token}`)
          .json(viewFor(tenantOf(req))(result));
        return;
      case 'refund_replayed':
        res
          .status(200)
          .set('Idempotent-Replayed', 'true')
          .json(viewFor(tenantOf(req))(result));
        return;
      case 'refund_mismatch':
        sendError(res, 'idempotency_key_reused', reasonFor(outcome, snapshot));
        return;
      case 'refund_too_large':
        sendError(res, 'refund_too_large', reasonFor(outcome, snapshot));
        return;
      case 'refund_limit_reached':
        sendError(res, 'refund_limit_reached', reasonFor(outcome, snapshot));
        return;
      case 'not_refundable':
        sendError(
          res,
          snapshot?.value === 'cancelled' ? 'payment_cancelled' : 'payment_not_refundable',
          reasonFor(outcome, snapshot),
        );
        return;
      case 'expired':
        sendError(res, 'token_expired', reasonFor(outcome, snapshot));
        return;
      default:
        throw new Error(`unexpected outcome ${outcome} for a refund`);
    }
  });

  app.post('/payments/:token/cancel', async (req, res) => {
    const token = parseToken(req.params.token);
    const result = await scope(req).cancel(token);
    const outcome = expectOutcome(result);
    if (outcome === 'expired') {
      sendError(res, 'token_expired', reasonFor(outcome, result.snapshot));
      return;
    }
    res.status(200).json(viewFor(tenantOf(req))(result));
  });

  app.get('/payments/:token', async (req: Request, res: Response) => {
    const token = parseToken(req.params.token);
    const snapshot = await scope(req).get(token);
    if (snapshot === null) throw new NotFoundError(`no payment with token ${token}`);
    res.json(paymentView(snapshot, tenantOf(req)));
  });

  app.get('/accounts/:accountId', async (req, res) => {
    const accountId = parseAccountId(req.params.accountId);
    // A repeated ?currency= is an array: not a currency either.
    const { currency } = req.query;
    const selected = currency === undefined ? undefined : parseCurrency(currency);
    res.json(accountView(await scope(req).account(accountId, selected), tenantOf(req)));
  });

  if (deps.webhooks !== undefined) {
    app.use(webhookRouter(deps.webhooks.endpoints, deps.webhooks.guard));
  }

  // Operators' routes after the payment routes: a payment request does not
  // pass through their routers.
  app.use(adminRouter(deps.payments));
  app.use(paymentInspector(deps.payments));

  app.use(notFoundHandler);
  app.use(errorHandler());
  return app;
}

function missingKey(): never {
  throw new ValidationError('the Idempotency-Key header is required', 'missing_idempotency_key');
}

/** Client events always get an answer from the machine. */
function expectOutcome(result: CommandResult) {
  if (result.outcome === null) throw new Error('the machine gave no answer to a client event');
  return result.outcome;
}

function viewFor(tenant: Tenant) {
  return (result: CommandResult) => {
    if (result.snapshot === null) throw new Error('a client event left no record');
    return paymentView(result.snapshot, tenant);
  };
}

/** The app of a /metrics listener of its own (METRICS_PORT, or a worker-only process). */
export function createMetricsApp(metrics: ServiceMetrics, logger?: PinoLogger): Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.use(observeRequests({ logger, metrics, routeOf: routeMatcher(['/metrics']) }));
  app.get('/metrics', metricsHandler(metrics));
  app.use(notFoundHandler);
  app.use(errorHandler());
  return app;
}
