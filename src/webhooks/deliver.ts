/**
 * One delivery attempt of a webhook event to an endpoint: a POST of the
 * event's JSON, signed with the endpoint's secret (`Paystate-Signature`,
 * the scheme of src/processor/signature.ts), answered `delivered` for a
 * 2xx within the timeout and `failed` with a reason for anything else.
 * It never throws for what the network or the endpoint does.
 *
 * - The address is checked again at delivery: an IP literal before the
 *   request, a name inside the connection's own lookup (guardedLookup), so
 *   the socket connects to the very addresses that were checked.
 * - One deadline (PAYSTATE_WEBHOOK_TIMEOUT_MS) covers the connection, the
 *   request and the response's status: a hanging endpoint is a failure.
 * - Redirects are not followed (a 3xx is a failure): a redirect could lead
 *   anywhere, past the guard.
 * - At most MAX_RESPONSE_BYTES of the answer are read, after the outcome
 *   is known; the rest is dropped with the connection.
 * - Each origin has its own small pool, so a slow endpoint holds only its
 *   own connections.
 */
import { createRequire } from 'node:module';
import { isIP } from 'node:net';
import { Agent } from 'undici';
import { signPayload } from '../processor/signature.ts';
import {
  AddressRefusedError,
  addressRefusal,
  guardedLookup,
  parseWebhookUrl,
  type Resolver,
} from './address-guard.ts';

export const SIGNATURE_HEADER = 'Paystate-Signature';

/** Of an endpoint's answer, at most this much is read. */
export const MAX_RESPONSE_BYTES = 4096;

/** Open connections per endpoint origin. */
const CONNECTIONS_PER_ORIGIN = 8;

const { version } = createRequire(import.meta.url)('../../package.json') as { version: string };

export const USER_AGENT = `paystate-webhooks/${version}`;

export type DeliveryFailure =
  /** The URL is not one the guard allows (now), checked again after DNS: nothing was sent. */
  | 'address_refused'
  /** No status within the timeout (connecting included). */
  | 'timeout'
  /** Refused, reset or closed connection, a TLS failure, a name that does not resolve. */
  | 'network'
  /** An answer that is not 2xx (a 3xx included: redirects are not followed). */
  | 'status';

export type DeliveryOutcome =
  | { readonly outcome: 'delivered'; readonly status: number; readonly durationMs: number }
  | {
      readonly outcome: 'failed';
      readonly reason: DeliveryFailure;
      readonly message: string;
      readonly status?: number;
      readonly durationMs: number;
    };

export interface DeliveryOptions {
  /** PAYSTATE_WEBHOOK_TIMEOUT_MS. */
  readonly timeoutMs: number;
  /** PAYSTATE_WEBHOOK_ALLOW_PRIVATE. */
  readonly allowPrivate: boolean;
  /** Default: the system resolver (node:dns lookup, every address). */
  readonly resolve?: Resolver;
  /** Epoch ms, for the signature's timestamp (default: the system clock). */
  readonly now?: () => number;
}

export interface DeliveryTarget {
  readonly url: string;
  readonly secret: string;
}

/** The guard's refusal somewhere in an error's causes, if that is why it failed. */
function refusalIn(error: unknown): AddressRefusedError | null {
  for (let at: unknown = error, depth = 0; at instanceof Error && depth < 5; depth += 1) {
    if (at instanceof AddressRefusedError) return at;
    at = at.cause;
  }
  return null;
}

function errorCode(error: unknown): string | undefined {
  for (let at: unknown = error, depth = 0; at instanceof Error && depth < 5; depth += 1) {
    const code = (at as { code?: unknown }).code;
    if (typeof code === 'string') return code;
    at = at.cause;
  }
  return undefined;
}

const TIMEOUT_CODES = new Set([
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'ETIMEDOUT',
]);

export class WebhookDelivery {
  private readonly agent: Agent;
  private readonly now: () => number;

  constructor(private readonly options: DeliveryOptions) {
    if (!Number.isSafeInteger(options.timeoutMs) || options.timeoutMs < 1) {
      throw new RangeError('timeoutMs must be a positive whole number');
    }
    this.now = options.now ?? Date.now;
    const guard = {
      allowPrivate: options.allowPrivate,
      ...(options.resolve === undefined ? {} : { resolve: options.resolve }),
    };
    this.agent = new Agent({
      connections: CONNECTIONS_PER_ORIGIN,
      headersTimeout: options.timeoutMs,
      bodyTimeout: options.timeoutMs,
      keepAliveTimeout: 4_000,
      connect: { timeout: options.timeoutMs, lookup: guardedLookup(guard) },
    });
  }

  /** POSTs `body` (the event's JSON, sent byte for byte as given) to the endpoint. */
  async attempt(target: DeliveryTarget, body: string): Promise<DeliveryOutcome> {
    const started = performance.now();
    const elapsed = () => Math.round(performance.now() - started);
    const failed = (
      reason: DeliveryFailure,
      message: string,
      status?: number,
    ): DeliveryOutcome => ({
      outcome: 'failed',
      reason,
      message,
      ...(status === undefined ? {} : { status }),
      durationMs: elapsed(),
    });

    const parsed = parseWebhookUrl(target.url);
    if ('ok' in parsed) return failed('address_refused', parsed.ok ? '' : parsed.message);
    // A socket to an IP literal never calls the guarded lookup: check it here.
    if (!this.options.allowPrivate && isIP(parsed.host) !== 0) {
      const refusal = addressRefusal(parsed.host);
      if (refusal !== null) return failed('address_refused', refusal.message);
    }

    const timestamp = Math.floor(this.now() / 1000);
    const controller = new AbortController();
    const timer = setTimeout(() => {
      controller.abort();
    }, this.options.timeoutMs);
    try {
      const response = await this.agent.request({
        origin: parsed.url.origin,
        path: `${parsed.url.pathname}${parsed.url.search}`,
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'user-agent': USER_AGENT,
          [SIGNATURE_HEADER.toLowerCase()]: signPayload(target.secret, body, timestamp),
        },
        body,
        signal: controller.signal,
      });
      clearTimeout(timer);
      // The outcome is the status; the answer is read (a little of it) only so
      // the connection may be reused, and bounded by the body timeout.
      response.body.dump({ limit: MAX_RESPONSE_BYTES }).catch(() => undefined);
      const status = response.statusCode;
      if (status >= 200 && status < 300) {
        return { outcome: 'delivered', status, durationMs: elapsed() };
      }
      return failed('status', `the endpoint answered ${status}`, status);
    } catch (error) {
      const refusal = refusalIn(error);
      if (refusal !== null) {
        // A name that does not resolve (now) is the network's failure, not a refusal.
        const network = refusal.reason === 'unresolvable' || refusal.reason === 'dns_error';
        return failed(network ? 'network' : 'address_refused', refusal.message);
      }
      const code = errorCode(error);
      if (controller.signal.aborted || (code !== undefined && TIMEOUT_CODES.has(code))) {
        return failed('timeout', `no answer within ${this.options.timeoutMs} ms`);
      }
      return failed('network', `the request failed${code === undefined ? '' : ` (${code})`}`);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Closes the pooled connections; attempts under way are cut. */
  async close(): Promise<void> {
    await this.agent.destroy();
  }
}
