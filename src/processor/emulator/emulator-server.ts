/**
 * A local processor speaking the protocol of docs/processor.md, with faults
 * injected at run time, so the service's connector can be tested against
 * timeouts, resets, 5xx answers, lost responses, declines and late or
 * disordered webhooks without a real processor. State lives in memory.
 *
 * A request is served in this order: authenticate, validate (400, nothing
 * applied), claim its idempotency key (400 reused with other parameters, 409
 * while the first request with it is still running, a replay when it has
 * applied), then the fault that fires for it, if any, decides whether it is
 * applied and how (or whether) it is answered.
 */
import { timingSafeEqual, randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  IDEMPOTENCY_KEY_HEADER,
  MAX_AMOUNT,
  REPLAYED_HEADER,
  type Charge,
  type ChargeRequest,
  type WebhookEvent,
  type WebhookEventType,
} from '../protocol.ts';
import { BookError, ChargeBook } from './charge-book.ts';
import { FaultTable, type FaultRule } from './faults.ts';
import { IdempotencyKeys, type Answer } from './idempotency-keys.ts';
import { WebhookSender } from './webhook-sender.ts';

export interface EmulatorOptions {
  readonly host: string;
  /** 0: any free port (see `url`). */
  readonly port: number;
  /** The bearer token clients must send, and the webhook signing secret. */
  readonly secret: string;
  readonly webhookUrl: string | null;
  /** Wait before each webhook batch is delivered. */
  readonly webhookDelayMs: number;
  /** How long a `processing` charge stays so, unless its rule says `ms`. */
  readonly settleMs: number;
  /** How long a `timeout` fault holds its answer, unless its rule says `ms`. */
  readonly timeoutHoldMs: number;
}

export const EMULATOR_DEFAULTS = {
  host: '127.0.0.1',
  port: 4010,
  webhookDelayMs: 100,
  settleMs: 1_000,
  timeoutHoldMs: 120_000,
} as const;

export interface Emulator {
  readonly url: string;
  close(): Promise<void>;
}

const MAX_BODY_BYTES = 64 * 1024;
const DEFAULT_DELAY_MS = 1_000;
const KEY_PATTERN = /^[\x21-\x7e]{1,255}$/;
const CURRENCY = /^[A-Z]{3}$/;

type Route =
  | { readonly kind: 'create' }
  | { readonly kind: 'find' }
  | { readonly kind: 'get'; readonly id: string }
  | { readonly kind: 'capture'; readonly id: string }
  | { readonly kind: 'cancel'; readonly id: string }
  | { readonly kind: 'refund'; readonly id: string };

/** The request, checked: what applying it needs. */
interface Checked {
  readonly route: Route;
  readonly key: string | null;
  readonly charge?: ChargeRequest;
  readonly amount?: number | undefined;
  readonly lookupKey?: string;
}

class RequestError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

const errorBody = (code: string, message: string) => ({ error: { code, message } });

function send(
  res: ServerResponse,
  { status, body }: Answer,
  headers: Record<string, string> = {},
): void {
  if (res.destroyed || res.headersSent) return;
  const text = body === undefined ? '' : JSON.stringify(body);
  res.writeHead(status, {
    ...(text === '' ? {} : { 'content-type': 'application/json; charset=utf-8' }),
    'content-length': Buffer.byteLength(text),
    ...headers,
  });
  res.end(text);
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) {
      throw new RequestError(
        413,
        'body_too_large',
        `bodies are limited to ${MAX_BODY_BYTES} bytes`,
      );
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function parseObject(raw: string, allowed: readonly string[]): Record<string, unknown> {
  if (raw.trim() === '') return {};
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    throw new RequestError(400, 'invalid_request', 'the body is not valid JSON');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new RequestError(400, 'invalid_request', 'the body must be a JSON object');
  }
  for (const field of Object.keys(value)) {
    if (!allowed.includes(field)) {
      throw new RequestError(400, 'invalid_request', `unknown field "${field}"`);
    }
  }
  return value as Record<string, unknown>;
}

function amountOf(value: unknown, required: boolean): number | undefined {
  if (value === undefined && !required) return undefined;
  if (!Number.isSafeInteger(value) || (value as number) < 1 || (value as number) > MAX_AMOUNT) {
    throw new RequestError(
      400,
      'invalid_amount',
      `amount must be an integer from 1 to ${MAX_AMOUNT} (minor units)`,
    );
  }
  return value as number;
}

function routeOf(method: string, path: string): Route | null {
  const parts = path.split('/').slice(1);
  const id = parts[1] !== undefined ? decodeURIComponent(parts[1]) : '';
  if (parts[0] !== 'charges') return null;
  if (parts.length === 1) {
    if (method === 'POST') return { kind: 'create' };
    if (method === 'GET') return { kind: 'find' };
    return null;
  }
  if (id === '') return null;
  if (parts.length === 2 && method === 'GET') return { kind: 'get', id };
  if (parts.length === 3 && method === 'POST') {
    if (parts[2] === 'capture') return { kind: 'capture', id };
    if (parts[2] === 'cancel') return { kind: 'cancel', id };
    if (parts[2] === 'refunds') return { kind: 'refund', id };
  }
  return null;
}

export async function startEmulator(options: EmulatorOptions): Promise<Emulator> {
  const faults = new FaultTable();
  const keys = new IdempotencyKeys();
  const events: WebhookEvent[] = [];
  const sender = new WebhookSender({
    url: options.webhookUrl,
    secret: options.secret,
    delayMs: options.webhookDelayMs,
    attempts: 3,
    retryMs: 200,
    timeoutMs: 5_000,
  });
  /** Webhook plans of charges made `processing` by a rule, by idempotency key. */
  const plans = new Map<string, { rule: FaultRule; held: WebhookEvent | null }>();
  const settleTimers = new Set<NodeJS.Timeout>();
  const closing = new AbortController();

  function emit(type: WebhookEventType, charge: Charge): void {
    const event: WebhookEvent = {
      id: `evt_${randomBytes(12).toString('hex')}`,
      type,
      created: Math.floor(Date.now() / 1000),
      data: { id: charge.id },
    };
    events.push(event);
    const plan = plans.get(charge.idempotency_key);
    if (plan?.rule.outOfOrder === true && type === 'charge.processing') {
      plan.held = event;
      return;
    }
    const batch = [event];
    if (plan?.held) {
      batch.push(plan.held);
      plan.held = null;
    }
    sender.send(batch, { duplicate: plan?.rule.duplicate === true });
  }

  const book = new ChargeBook(emit);
  const secret = Buffer.from(options.secret);

  function authorized(req: IncomingMessage): boolean {
    const header = req.headers.authorization ?? '';
    const given = Buffer.from(header.startsWith('Bearer ') ? header.slice(7) : '');
    return given.length === secret.length && timingSafeEqual(given, secret);
  }

  function check(route: Route, req: IncomingMessage, raw: string, url: URL): Checked {
    const header = req.headers[IDEMPOTENCY_KEY_HEADER];
    const key = typeof header === 'string' ? header : null;
    if (key !== null && !KEY_PATTERN.test(key)) {
      throw new RequestError(
        400,
        'invalid_idempotency_key',
        'Idempotency-Key must be 1 to 255 printable ASCII characters',
      );
    }
    if ((route.kind === 'create' || route.kind === 'refund') && key === null) {
      throw new RequestError(
        400,
        'idempotency_key_required',
        'this request needs an Idempotency-Key',
      );
    }
    switch (route.kind) {
      case 'create': {
        const body = parseObject(raw, ['amount', 'currency', 'account', 'capture']);
        const amount = amountOf(body.amount, true) ?? 0;
        if (typeof body.currency !== 'string' || !CURRENCY.test(body.currency)) {
          throw new RequestError(400, 'invalid_currency', 'currency must be an ISO 4217 code');
        }
        if (typeof body.account !== 'string' || body.account === '' || body.account.length > 255) {
          throw new RequestError(400, 'invalid_account', 'account must be 1 to 255 characters');
        }
        if (body.capture !== undefined && typeof body.capture !== 'boolean') {
          throw new RequestError(400, 'invalid_request', 'capture must be a boolean');
        }
        const charge: ChargeRequest = {
          amount,
          currency: body.currency,
          account: body.account,
          capture: body.capture ?? true,
        };
        return { route, key, charge };
      }
      case 'capture':
      case 'refund':
        return { route, key, amount: amountOf(parseObject(raw, ['amount']).amount, false) };
      case 'cancel':
        parseObject(raw, []);
        return { route, key };
      case 'get':
        return { route, key: null };
      case 'find': {
        const lookupKey = url.searchParams.get('idempotency_key');
        if (lookupKey === null || !KEY_PATTERN.test(lookupKey)) {
          throw new RequestError(400, 'invalid_request', 'give ?idempotency_key=<key>');
        }
        return { route, key: null, lookupKey };
      }
    }
  }

  /** Applies a checked request; a refusal throws BookError with nothing changed. */
  function apply(checked: Checked, rule: FaultRule | null): { answer: Answer; replayed: boolean } {
    const now = new Date();
    const { route } = checked;
    switch (route.kind) {
      case 'create': {
        const key = checked.key ?? '';
        const request = checked.charge as ChargeRequest;
        if (rule?.fault === 'processing') {
          plans.set(key, { rule, held: null });
          const charge = book.create(request, key, { kind: 'processing' }, now);
          const timer = setTimeout(() => {
            settleTimers.delete(timer);
            book.settle(charge.id, rule.settle ?? 'succeeded', new Date());
          }, rule.ms ?? options.settleMs);
          settleTimers.add(timer);
          return { answer: { status: 200, body: charge }, replayed: false };
        }
        const outcome =
          rule?.fault === 'decline'
            ? { kind: 'declined' as const, reason: rule.reason ?? 'card_declined' }
            : { kind: 'normal' as const };
        return {
          answer: { status: 200, body: book.create(request, key, outcome, now) },
          replayed: false,
        };
      }
      case 'capture': {
        const { charge, replayed } = book.capture(route.id, checked.amount, now);
        return { answer: { status: 200, body: charge }, replayed };
      }
      case 'cancel': {
        const { charge, replayed } = book.cancel(route.id, now);
        return { answer: { status: 200, body: charge }, replayed };
      }
      case 'refund': {
        const refund = book.refund(route.id, checked.amount, checked.key ?? '', now);
        return { answer: { status: 200, body: refund }, replayed: false };
      }
      case 'get': {
        const charge = book.get(route.id);
        if (charge === null) throw new BookError(404, 'not_found', `no charge ${route.id}`);
        return { answer: { status: 200, body: charge }, replayed: false };
      }
      case 'find': {
        const lookupKey = checked.lookupKey ?? '';
        // The first request with the key may still apply: "none" would not be the last word.
        if (keys.inFlight(lookupKey)) {
          throw new BookError(409, 'idempotency_key_in_use', 'a request with this key is running');
        }
        const charge = book.findByKey(lookupKey);
        if (charge === null) throw new BookError(404, 'not_found', 'no charge with this key');
        return { answer: { status: 200, body: charge }, replayed: false };
      }
    }
  }

  /** How a later request with the same key and parameters is answered: from the state now. */
  function replayOf(checked: Checked): () => Answer {
    const { route } = checked;
    const key = checked.key ?? '';
    if (route.kind === 'create') return () => ({ status: 200, body: book.findByKey(key) });
    if (route.kind === 'refund') {
      return () => ({ status: 200, body: book.refundByKey(route.id, key) });
    }
    const id = route.kind === 'find' ? '' : route.id;
    return () => ({ status: 200, body: book.get(id) });
  }

  function accountOf(checked: Checked): string | undefined {
    const { route } = checked;
    if (checked.charge !== undefined) return checked.charge.account;
    if (route.kind === 'find') return book.findByKey(checked.lookupKey ?? '')?.account;
    if (route.kind === 'create') return undefined;
    return book.get(route.id)?.account;
  }

  async function serveProtocol(req: IncomingMessage, res: ServerResponse, url: URL) {
    const method = req.method ?? 'GET';
    const route = routeOf(method, url.pathname);
    const raw = await readBody(req);
    if (!authorized(req)) {
      send(
        res,
        { status: 401, body: errorBody('unauthorized', 'a valid bearer token is required') },
        {
          'www-authenticate': 'Bearer',
        },
      );
      return;
    }
    if (route === null) {
      send(res, {
        status: 404,
        body: errorBody('not_found', `no route ${method} ${url.pathname}`),
      });
      return;
    }
    const checked = check(route, req, raw, url);
    const fingerprint = JSON.stringify([
      method,
      url.pathname,
      checked.charge ?? null,
      checked.amount ?? null,
    ]);

    let replay: Answer | null = null;
    const key = method === 'POST' ? checked.key : null;
    if (key !== null) {
      const claim = keys.claim(key, fingerprint);
      if (claim.kind === 'reused') {
        throw new RequestError(
          400,
          'idempotency_key_reused',
          'this Idempotency-Key was used with other parameters',
        );
      }
      if (claim.kind === 'in_use') {
        throw new RequestError(
          409,
          'idempotency_key_in_use',
          'a request with this Idempotency-Key is still running; retry later',
        );
      }
      if (claim.kind === 'replay') replay = claim.answer;
    }
    const release = () => {
      if (key !== null && replay === null) keys.release(key);
    };

    const rule = faults.take({
      method,
      path: url.pathname,
      newCharge: route.kind === 'create' && replay === null,
      account: accountOf(checked),
      amount: checked.charge?.amount ?? checked.amount,
    });
    switch (rule?.fault) {
      case 'reset':
        release();
        req.socket.destroy();
        return;
      case '5xx_before':
        release();
        send(res, { status: 500, body: errorBody('processor_error', 'injected failure') });
        return;
      case 'rate_limit':
        release();
        send(
          res,
          { status: 429, body: errorBody('rate_limited', 'slow down') },
          {
            'retry-after': String(Math.max(1, Math.ceil((rule.ms ?? 1_000) / 1_000))),
          },
        );
        return;
      case 'delay':
        await sleep(rule.ms ?? DEFAULT_DELAY_MS, undefined, { signal: closing.signal });
        break;
      default:
        break;
    }

    let answer: Answer;
    let replayed = replay !== null;
    if (replay !== null) {
      answer = replay;
    } else {
      try {
        ({ answer, replayed } = apply(checked, rule));
      } catch (error) {
        release();
        throw error;
      }
      if (key !== null) keys.complete(key, replayOf(checked));
    }

    switch (rule?.fault) {
      case '5xx_after':
        send(res, { status: 500, body: errorBody('processor_error', 'injected failure') });
        return;
      case 'lose_response':
        req.socket.destroy();
        return;
      case 'timeout':
        await sleep(rule.ms ?? options.timeoutHoldMs, undefined, { signal: closing.signal });
        break;
      default:
        break;
    }
    send(res, answer, replayed ? { [REPLAYED_HEADER]: 'true' } : {});
  }

  async function serveControl(req: IncomingMessage, res: ServerResponse, url: URL) {
    const method = req.method ?? 'GET';
    const path = url.pathname;
    const raw = await readBody(req);
    if (path === '/_emulator/faults' && method === 'POST') {
      let value: unknown;
      try {
        value = JSON.parse(raw);
      } catch {
        throw new RequestError(400, 'invalid_request', 'the body is not valid JSON');
      }
      const rule = faults.add(value);
      if (typeof rule === 'string') throw new RequestError(400, 'invalid_fault', rule);
      send(res, { status: 201, body: rule });
    } else if (path === '/_emulator/faults' && method === 'GET') {
      send(res, {
        status: 200,
        body: { faults: faults.list().map(({ rule, seen, fired }) => ({ ...rule, seen, fired })) },
      });
    } else if (path === '/_emulator/faults' && method === 'DELETE') {
      faults.clear();
      send(res, { status: 204, body: undefined });
    } else if (path.startsWith('/_emulator/faults/') && method === 'DELETE') {
      const found = faults.remove(decodeURIComponent(path.slice('/_emulator/faults/'.length)));
      send(
        res,
        found
          ? { status: 204, body: undefined }
          : { status: 404, body: errorBody('not_found', 'no such fault') },
      );
    } else if (path === '/_emulator/journal' && method === 'GET') {
      const param = (name: string) => url.searchParams.get(name) ?? undefined;
      const entries = book.journal({
        ...(param('idempotency_key') === undefined
          ? {}
          : { idempotencyKey: param('idempotency_key') }),
        ...(param('account') === undefined ? {} : { account: param('account') }),
        ...(param('charge') === undefined ? {} : { chargeId: param('charge') }),
      });
      send(res, { status: 200, body: { entries } });
    } else if (path === '/_emulator/events' && method === 'GET') {
      send(res, { status: 200, body: { events } });
    } else if (path === '/_emulator/webhooks' && method === 'GET') {
      send(res, { status: 200, body: { deliveries: sender.deliveries() } });
    } else if (path === '/_emulator/reset' && method === 'POST') {
      book.reset();
      keys.clear();
      faults.clear();
      plans.clear();
      events.length = 0;
      sender.reset();
      for (const timer of settleTimers) clearTimeout(timer);
      settleTimers.clear();
      send(res, { status: 204, body: undefined });
    } else if (path === '/_emulator/health' && method === 'GET') {
      send(res, { status: 200, body: { ok: true } });
    } else {
      send(res, { status: 404, body: errorBody('not_found', `no route ${method} ${path}`) });
    }
  }

  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://emulator.invalid');
    const serve = url.pathname.startsWith('/_emulator/') ? serveControl : serveProtocol;
    serve(req, res, url).catch((error: unknown) => {
      if (closing.signal.aborted) return;
      if (error instanceof RequestError || error instanceof BookError) {
        send(res, { status: error.status, body: errorBody(error.code, error.message) });
      } else {
        console.error('processor emulator: unexpected error', error);
        send(res, { status: 500, body: errorBody('internal', 'the emulator failed') });
      }
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  const host = options.host.includes(':') ? `[${options.host}]` : options.host;

  return {
    url: `http://${host}:${port}`,
    async close() {
      closing.abort();
      sender.reset();
      for (const timer of settleTimers) clearTimeout(timer);
      await new Promise<void>((resolve) => {
        server.close(() => {
          resolve();
        });
        server.closeAllConnections();
      });
    },
  };
}
