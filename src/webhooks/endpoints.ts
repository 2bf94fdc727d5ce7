/**
 * The registry of webhook endpoints, per tenant, in Redis.
 *
 * One hash per tenant holds its endpoints (id → JSON of seq, url, events,
 * secret, createdAt; seq counted by a key beside it) under the hash tag `{webhooks:<tenant>}` (`{webhooks}` in local
 * mode), so a tenant's endpoints live in one Cluster slot and are counted,
 * created and listed by one command. A tenant has at most
 * `maxPerTenant` (16) endpoints: the check and the write are one script.
 *
 * The secret is what the service signs each delivery with, so it is stored
 * as it was returned: the HMAC key is that string (docs/webhooks.md). It is
 * read only for delivery (`forDelivery`, `subscribedTo`): listing never
 * returns it, and nothing logs it.
 */
import { randomBytes } from 'node:crypto';
import type { Redis, Result } from 'ioredis';
import { AppError, toAppError } from '../errors.ts';
import type { Tenant } from '../tenants.ts';
import { WEBHOOK_EVENT_TYPES, isWebhookEventType, type WebhookEventType } from './events.ts';

export const DEFAULT_MAX_ENDPOINTS_PER_TENANT = 16;

/** `we_` and 24 hex digits. */
export const ENDPOINT_ID_PATTERN = /^we_[0-9a-f]{24}$/;

/** An endpoint as its owner may see it: never its secret. */
export interface WebhookEndpoint {
  readonly id: string;
  readonly url: string;
  /** The event types it receives, in the order of WEBHOOK_EVENT_TYPES. */
  readonly events: readonly WebhookEventType[];
  /** Epoch ms. */
  readonly createdAt: number;
}

/** An endpoint with what a delivery signs with. */
export interface DeliveryTarget extends WebhookEndpoint {
  readonly secret: string;
}

/** The tenant already has as many endpoints as it may. */
export class EndpointLimitError extends AppError {
  constructor(readonly limit: number) {
    super(
      'webhook_endpoint_limit',
      `a tenant may register at most ${limit} webhook endpoints; delete one first`,
      false,
    );
  }
}

declare module 'ioredis' {
  interface RedisCommander<Context> {
    paystateAddWebhookEndpoint(
      endpoints: string,
      sequence: string,
      id: string,
      record: string,
      limit: number,
    ): Result<number, Context>;
  }
}

// KEYS[1]: the tenant's endpoints hash, KEYS[2]: its registration counter.
// ARGV[1]: the new id, ARGV[2]: its record (a JSON object), ARGV[3]: the
// most endpoints the tenant may have.
// Writes the record with `seq`, the tenant's next registration number, as
// its first member (so two registrations in one millisecond list in the
// order they were made). Returns 1 when written, 0 when the tenant is at
// the limit (nothing written).
const ADD_SCRIPT = `
if redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end
local seq = redis.call('INCR', KEYS[2])
redis.call('HSET', KEYS[1], ARGV[1], '{"seq":' .. seq .. ',' .. string.sub(ARGV[2], 2))
return 1
`;

interface StoredEndpoint {
  /** The tenant's registration number of it (set by the script). */
  readonly seq: number;
  readonly id: string;
  readonly url: string;
  readonly events: readonly string[];
  readonly secret: string;
  readonly createdAt: number;
}

export interface WebhookEndpointsOptions {
  /** REDIS_KEY_PREFIX. */
  readonly prefix: string;
  readonly maxPerTenant?: number;
  /** Epoch ms (the service passes Redis's clock). */
  readonly now?: () => number;
}

/** In the canonical order, each once. */
function canonicalEvents(events: readonly WebhookEventType[]): WebhookEventType[] {
  const wanted = new Set(events);
  return WEBHOOK_EVENT_TYPES.filter((type) => wanted.has(type));
}

function parseStored(json: string): StoredEndpoint {
  return JSON.parse(json) as StoredEndpoint;
}

function publicView(stored: Omit<StoredEndpoint, 'seq'>): WebhookEndpoint {
  return {
    id: stored.id,
    url: stored.url,
    // A type a later release no longer knows is left out rather than failing the read.
    events: stored.events.filter(isWebhookEventType),
    createdAt: stored.createdAt,
  };
}

function deliveryView(stored: StoredEndpoint): DeliveryTarget {
  return { ...publicView(stored), secret: stored.secret };
}

async function redisCall<T>(call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (error) {
    throw toAppError(error);
  }
}

export class WebhookEndpoints {
  readonly maxPerTenant: number;
  private readonly prefix: string;
  private readonly now: () => number;

  constructor(
    private readonly redis: Redis,
    options: WebhookEndpointsOptions,
  ) {
    this.prefix = options.prefix;
    this.maxPerTenant = options.maxPerTenant ?? DEFAULT_MAX_ENDPOINTS_PER_TENANT;
    this.now = options.now ?? Date.now;
    redis.defineCommand('paystateAddWebhookEndpoint', { numberOfKeys: 2, lua: ADD_SCRIPT });
  }

  /** The hash of a tenant's endpoints. */
  key(tenant: Tenant): string {
    return `${this.prefix}:{webhooks${tenant === null ? '' : `:${tenant}`}}:endpoints`;
  }

  /** The counter of a tenant's registrations, beside its endpoints (same hash tag). */
  private sequenceKey(tenant: Tenant): string {
    return `${this.prefix}:{webhooks${tenant === null ? '' : `:${tenant}`}}:seq`;
  }

  /**
   * Registers an endpoint (its URL already checked by the address guard)
   * and returns it with its secret: the only time the secret is returned.
   * `events` omitted: every event type.
   */
  async create(
    tenant: Tenant,
    request: { url: string; events?: readonly WebhookEventType[] },
  ): Promise<{ endpoint: WebhookEndpoint; secret: string }> {
    const stored: Omit<StoredEndpoint, 'seq'> = {
      id: `we_${randomBytes(12).toString('hex')}`,
      url: request.url,
      events: canonicalEvents(request.events ?? WEBHOOK_EVENT_TYPES),
      secret: `whsec_${randomBytes(32).toString('base64url')}`,
      createdAt: this.now(),
    };
    const written = await redisCall(() =>
      this.redis.paystateAddWebhookEndpoint(
        this.key(tenant),
        this.sequenceKey(tenant),
        stored.id,
        JSON.stringify(stored),
        this.maxPerTenant,
      ),
    );
    if (written !== 1) throw new EndpointLimitError(this.maxPerTenant);
    return { endpoint: publicView(stored), secret: stored.secret };
  }

  /** The tenant's endpoints, oldest first, without secrets. */
  async list(tenant: Tenant): Promise<WebhookEndpoint[]> {
    return (await this.readAll(tenant)).map(publicView);
  }

  /** False when the tenant has no endpoint with this id (another tenant's included). */
  async delete(tenant: Tenant, id: string): Promise<boolean> {
    if (!ENDPOINT_ID_PATTERN.test(id)) return false;
    const removed = await redisCall(() => this.redis.hdel(this.key(tenant), id));
    return removed === 1;
  }

  /** One endpoint with its secret, for a delivery; null once it was deleted. */
  async forDelivery(tenant: Tenant, id: string): Promise<DeliveryTarget | null> {
    if (!ENDPOINT_ID_PATTERN.test(id)) return null;
    const json = await redisCall(() => this.redis.hget(this.key(tenant), id));
    return json === null ? null : deliveryView(parseStored(json));
  }

  /** The tenant's endpoints that receive `type`, with their secrets, oldest first. */
  async subscribedTo(tenant: Tenant, type: WebhookEventType): Promise<DeliveryTarget[]> {
    return (await this.readAll(tenant))
      .filter((stored) => stored.events.includes(type))
      .map(deliveryView);
  }

  private async readAll(tenant: Tenant): Promise<StoredEndpoint[]> {
    const all = await redisCall(() => this.redis.hvals(this.key(tenant)));
    return all.map(parseStored).sort((a, b) => a.seq - b.seq);
  }
}
