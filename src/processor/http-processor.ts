/**
 * The connector to a processor speaking the protocol of docs/processor.md,
 * over undici with keep-alive and a deadline per call.
 *
 * Every call answers an outcome and never throws for anything the network
 * or the processor does (it throws only for a programming error, such as a
 * charge without an idempotency key):
 * - `known`: the processor's answer (a decline is a known `declined` charge);
 * - `unknown`: no answer that can be trusted — a timeout, a reset, a 5xx,
 *   409 (the key's first request is still running), 429, or a 2xx whose body
 *   is not the protocol's. The operation may or may not have happened: look
 *   it up by key, or retry with the same idempotency key, later;
 * - `rejected`: a final 4xx, with the processor's code and message;
 * - `not_found` (lookups only): the processor has no such charge;
 * - `open` (new charges only): the circuit breaker is refusing new charges
 *   without calling the processor; nothing was sent.
 *
 * The breaker, when asked for, counts only new charges, and only the
 * outcomes that say the processor is unwell (timeouts, network failures, 5xx,
 * 429). Captures, cancels, refunds and lookups never go through it: they
 * finish work already begun, and reconciliation must reach the processor
 * precisely while new charges are being refused.
 */
import {
  BrokenCircuitError,
  CircuitState,
  ConsecutiveBreaker,
  circuitBreaker,
  handleWhenResult,
  type CircuitBreakerPolicy,
} from 'cockatiel';
import { Pool } from 'undici';
import {
  IDEMPOTENCY_KEY_HEADER,
  REPLAYED_HEADER,
  errorOf,
  isCharge,
  isRefundResponse,
  type Charge,
  type ChargeRequest,
  type RefundResponse,
} from './protocol.ts';

export type UnknownReason =
  /** No complete answer within `timeoutMs`. */
  | 'timeout'
  /** Refused, reset or closed connection. */
  | 'network'
  /** A 5xx answer. */
  | 'server_error'
  /** 409: a request with this idempotency key is still running at the processor. */
  | 'in_flight'
  /** 429. */
  | 'rate_limited'
  /** A 2xx (or 404/409/429) whose body is not what the protocol says. */
  | 'invalid_response';

export interface Known<T> {
  readonly kind: 'known';
  readonly value: T;
  /** The processor answered an earlier request's result (same key, or a repeated capture/cancel). */
  readonly replayed: boolean;
}
export interface Unknown {
  readonly kind: 'unknown';
  readonly reason: UnknownReason;
  readonly message: string;
  /** From the processor's Retry-After, when it gave one. */
  readonly retryAfterMs: number | null;
}
export interface Rejected {
  readonly kind: 'rejected';
  readonly status: number;
  readonly code: string;
  readonly message: string;
}
export interface NotFound {
  readonly kind: 'not_found';
}
export interface Open {
  readonly kind: 'open';
  /** When the breaker will let a trial charge through. */
  readonly retryAfterMs: number;
}

export type ChargeOutcome = Known<Charge> | Unknown | Rejected | Open;
/** Capture and cancel. */
export type ChargeUpdateOutcome = Known<Charge> | Unknown | Rejected;
export type RefundOutcome = Known<RefundResponse> | Unknown | Rejected;
export type LookupOutcome = Known<Charge> | NotFound | Unknown | Rejected;

export type BreakerState = 'closed' | 'open' | 'half_open' | 'none';

export interface BreakerOptions {
  /** Consecutive failed new charges that open the breaker. */
  readonly consecutiveFailures: number;
  /** How long it stays open before one trial charge is let through. */
  readonly halfOpenAfterMs: number;
}

export interface HttpProcessorOptions {
  /** Base URL; the protocol's paths are appended to its path. */
  readonly url: string;
  /** Sent as `Authorization: Bearer <secret>`. */
  readonly secret: string;
  /** Deadline of one call, from sending to the last byte of the answer. */
  readonly timeoutMs: number;
  /** Keep-alive connections at most (default 16). */
  readonly connections?: number;
  /** Absent: no breaker, every charge is sent. */
  readonly breaker?: BreakerOptions;
  readonly onBreakerStateChange?: (state: BreakerState) => void;
}

export interface NewCharge extends ChargeRequest {
  /** The operation id: the same for every retry of one charge. */
  readonly idempotencyKey: string;
}

export interface HttpProcessor {
  charge(request: NewCharge): Promise<ChargeOutcome>;
  /** Captures `amount` (default: all) of an authorization; the rest is released. */
  capture(chargeId: string, options: { readonly amount?: number }): Promise<ChargeUpdateOutcome>;
  /** Voids an authorization. */
  cancel(chargeId: string): Promise<ChargeUpdateOutcome>;
  /** Refunds `amount` (default: what is left) of a captured charge. */
  refund(
    chargeId: string,
    options: { readonly amount?: number; readonly idempotencyKey: string },
  ): Promise<RefundOutcome>;
  get(chargeId: string): Promise<LookupOutcome>;
  /** The charge made with `idempotencyKey`: how an unknown outcome is resolved. */
  findByIdempotencyKey(idempotencyKey: string): Promise<LookupOutcome>;
  breakerState(): BreakerState;
  close(): Promise<void>;
}

interface Reply {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: unknown;
}

const KEEP_ALIVE_MS = 4_000;

function requireText(value: unknown, what: string): asserts value is string {
  if (typeof value !== 'string' || value === '') {
    throw new TypeError(`${what} must be a non-empty string`);
  }
}

function requireAmount(value: unknown, what: string, optional: boolean): void {
  if (optional && value === undefined) return;
  if (!Number.isSafeInteger(value)) throw new TypeError(`${what} must be an integer`);
}

function retryAfterMs(headers: Reply['headers']): number | null {
  const value = headers['retry-after'];
  const text = Array.isArray(value) ? value[0] : value;
  if (text === undefined) return null;
  const seconds = Number(text);
  if (Number.isFinite(seconds) && seconds >= 0) return Math.round(seconds * 1000);
  const date = Date.parse(text);
  return Number.isNaN(date) ? null : Math.max(0, date - Date.now());
}

function unknown(
  reason: UnknownReason,
  message: string,
  retryAfter: number | null = null,
): Unknown {
  return { kind: 'unknown', reason, message, retryAfterMs: retryAfter };
}

/**
 * The outcome of a reply: `accept` says whether a 2xx body is the expected
 * value; a 404 is `not_found` only where the caller maps it so.
 */
function classify<T>(
  reply: Reply,
  accept: (body: unknown) => body is T,
): Known<T> | Unknown | Rejected {
  const { status, headers, body } = reply;
  if (status >= 200 && status < 300) {
    if (!accept(body)) return unknown('invalid_response', `a ${status} answer of the wrong shape`);
    return { kind: 'known', value: body, replayed: headers[REPLAYED_HEADER] === 'true' };
  }
  const error = errorOf(body);
  const message = error?.message ?? `HTTP ${status}`;
  if (status >= 500) return unknown('server_error', `the processor answered ${status}: ${message}`);
  if (status === 409) return unknown('in_flight', message, retryAfterMs(headers));
  if (status === 429) return unknown('rate_limited', message, retryAfterMs(headers));
  if (status >= 400) {
    return { kind: 'rejected', status, code: error?.code ?? `http_${status}`, message };
  }
  return unknown('invalid_response', `an unexpected ${status} answer`);
}

/** Whether a new charge's outcome says the processor is unwell (the breaker counts these). */
function isFailure(outcome: ChargeOutcome): boolean {
  return outcome.kind === 'unknown' && outcome.reason !== 'in_flight';
}

const STATES: Record<CircuitState, BreakerState> = {
  [CircuitState.Closed]: 'closed',
  [CircuitState.Open]: 'open',
  [CircuitState.HalfOpen]: 'half_open',
  [CircuitState.Isolated]: 'open',
};

export function createHttpProcessor(options: HttpProcessorOptions): HttpProcessor {
  const base = new URL(options.url);
  if (base.protocol !== 'http:' && base.protocol !== 'https:') {
    throw new TypeError(`processor URL must be http(s), got ${options.url}`);
  }
  requireText(options.secret, 'processor secret');
  if (!Number.isSafeInteger(options.timeoutMs) || options.timeoutMs < 1) {
    throw new TypeError('timeoutMs must be a positive integer');
  }
  const prefix = base.pathname.replace(/\/+$/, '');
  const pool = new Pool(base.origin, {
    connections: options.connections ?? 16,
    keepAliveTimeout: KEEP_ALIVE_MS,
    // The per-call deadline below governs; these only stop a socket hanging past it.
    headersTimeout: options.timeoutMs,
    bodyTimeout: options.timeoutMs,
    connect: { timeout: options.timeoutMs },
  });

  let breaker: CircuitBreakerPolicy | null = null;
  let openedAt = 0;
  if (options.breaker !== undefined) {
    const { consecutiveFailures, halfOpenAfterMs } = options.breaker;
    breaker = circuitBreaker(
      handleWhenResult((result) => isFailure(result as ChargeOutcome)),
      { halfOpenAfter: halfOpenAfterMs, breaker: new ConsecutiveBreaker(consecutiveFailures) },
    );
    breaker.onBreak(() => {
      openedAt = Date.now();
    });
    const listener = options.onBreakerStateChange;
    if (listener !== undefined) {
      breaker.onStateChange((state) => {
        listener(STATES[state]);
      });
    }
  }

  let closing: Promise<void> | null = null;

  async function call(
    method: 'GET' | 'POST',
    path: string,
    { body, idempotencyKey }: { body?: unknown; idempotencyKey?: string } = {},
  ): Promise<Reply | Unknown> {
    // A programming error, not an outage: a closed client would otherwise look like one.
    if (closing !== null) throw new Error('the processor client is closed');
    // Only this timer aborts: an aborted signal means the deadline passed.
    const controller = new AbortController();
    const timer = setTimeout(() => {
      controller.abort();
    }, options.timeoutMs);
    try {
      const headers: Record<string, string> = {
        authorization: `Bearer ${options.secret}`,
        accept: 'application/json',
      };
      if (idempotencyKey !== undefined) headers[IDEMPOTENCY_KEY_HEADER] = idempotencyKey;
      if (body !== undefined) headers['content-type'] = 'application/json';
      const response = await pool.request({
        origin: base.origin,
        path: `${prefix}${path}`,
        method,
        headers,
        body: body === undefined ? null : JSON.stringify(body),
        signal: controller.signal,
      });
      const text = await response.body.text();
      let parsed: unknown = null;
      if (text !== '') {
        try {
          parsed = JSON.parse(text);
        } catch {
          parsed = undefined;
        }
      }
      return { status: response.statusCode, headers: response.headers, body: parsed };
    } catch (error) {
      const code = (error as { code?: unknown }).code;
      if (
        controller.signal.aborted ||
        code === 'UND_ERR_HEADERS_TIMEOUT' ||
        code === 'UND_ERR_BODY_TIMEOUT' ||
        code === 'UND_ERR_CONNECT_TIMEOUT'
      ) {
        return unknown('timeout', `no answer within ${options.timeoutMs} ms`);
      }
      const message = error instanceof Error ? error.message : String(error);
      return unknown('network', `the connection failed: ${message}`);
    } finally {
      clearTimeout(timer);
    }
  }

  const chargePath = (id: string) => `/charges/${encodeURIComponent(id)}`;

  async function lookup(path: string): Promise<LookupOutcome> {
    const reply = await call('GET', path);
    if ('kind' in reply) return reply;
    if (reply.status === 404 && errorOf(reply.body)?.code === 'not_found') {
      return { kind: 'not_found' };
    }
    return classify(reply, isCharge);
  }

  async function sendCharge(request: NewCharge): Promise<ChargeOutcome> {
    const reply = await call('POST', '/charges', {
      body: {
        amount: request.amount,
        currency: request.currency,
        account: request.account,
        capture: request.capture,
      },
      idempotencyKey: request.idempotencyKey,
    });
    return 'kind' in reply ? reply : classify(reply, isCharge);
  }

  return {
    async charge(request) {
      requireText(request.idempotencyKey, 'idempotencyKey');
      requireAmount(request.amount, 'amount', false);
      if (breaker === null) return sendCharge(request);
      try {
        return await breaker.execute(() => sendCharge(request));
      } catch (error) {
        if (!(error instanceof BrokenCircuitError)) throw error;
        const halfOpenAfterMs = options.breaker?.halfOpenAfterMs ?? 0;
        return { kind: 'open', retryAfterMs: Math.max(0, openedAt + halfOpenAfterMs - Date.now()) };
      }
    },

    async capture(chargeId, { amount }) {
      requireText(chargeId, 'chargeId');
      requireAmount(amount, 'amount', true);
      const reply = await call('POST', `${chargePath(chargeId)}/capture`, {
        body: amount === undefined ? {} : { amount },
      });
      return 'kind' in reply ? reply : classify(reply, isCharge);
    },

    async cancel(chargeId) {
      requireText(chargeId, 'chargeId');
      const reply = await call('POST', `${chargePath(chargeId)}/cancel`, { body: {} });
      return 'kind' in reply ? reply : classify(reply, isCharge);
    },

    async refund(chargeId, { amount, idempotencyKey }) {
      requireText(chargeId, 'chargeId');
      requireText(idempotencyKey, 'idempotencyKey');
      requireAmount(amount, 'amount', true);
      const reply = await call('POST', `${chargePath(chargeId)}/refunds`, {
        body: amount === undefined ? {} : { amount },
        idempotencyKey,
      });
      return 'kind' in reply ? reply : classify(reply, isRefundResponse);
    },

    async get(chargeId) {
      requireText(chargeId, 'chargeId');
      return lookup(chargePath(chargeId));
    },

    async findByIdempotencyKey(idempotencyKey) {
      requireText(idempotencyKey, 'idempotencyKey');
      return lookup(`/charges?idempotency_key=${encodeURIComponent(idempotencyKey)}`);
    },

    breakerState() {
      return breaker === null ? 'none' : STATES[breaker.state];
    },

    close() {
      closing ??= pool.close();
      return closing;
    },
  };
}
