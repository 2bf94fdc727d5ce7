/**
 * Who is calling. With API keys configured, every route but /healthz and
 * /readyz needs `Authorization: Bearer <key>`; the key names a tenant, and
 * every route sees only that tenant's tokens and accounts (tenantOf). In
 * local mode (no keys) nothing is asked and the tenant is null.
 *
 * Neither the key nor its digest is ever logged or echoed.
 */
import type { Request, RequestHandler } from 'express';
import { RateLimitedError, UnauthenticatedError } from '../errors.ts';
import { tenantOfKey, type ApiKey, type Tenant } from '../tenants.ts';
import type { RateLimits } from './rate-limit.ts';

export interface AuthOptions {
  /** At least one; a tenant may have several (rotation). */
  readonly keys: readonly ApiKey[];
  readonly limits: RateLimits;
}

/** Routes a load balancer or orchestrator probes without a key. */
const OPEN_PATHS: ReadonlySet<string> = new Set(['/healthz', '/readyz']);

const tenants = new WeakMap<Request, string>();

/** The tenant the request authenticated as; null in local mode (or on an open route). */
export function tenantOf(req: Request): Tenant {
  return tenants.get(req) ?? null;
}

/** The key of an `Authorization: Bearer <key>` header, or null. */
function bearerKey(header: string | undefined): string | null {
  if (header === undefined) return null;
  const match = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header);
  return match?.[1] ?? null;
}

const seconds = (ms: number) => Math.max(1, Math.ceil(ms / 1000));

export function authenticate(options: AuthOptions): RequestHandler {
  const { keys, limits } = options;
  return async (req, _res, next) => {
    if (OPEN_PATHS.has(req.path)) {
      next();
      return;
    }
    const presented = bearerKey(req.get('authorization'));
    const tenant = presented === null ? null : tenantOfKey(keys, presented);
    // The socket's peer: behind a proxy, every client shares the proxy's address.
    const address = req.socket.remoteAddress ?? 'unknown';
    if (tenant === null) {
      const waitMs = await limits.authFailure(address);
      if (waitMs > 0) {
        throw new RateLimitedError(
          'too many failed authentications from this address; retry later',
          seconds(waitMs),
        );
      }
      throw new UnauthenticatedError(
        presented === null
          ? 'an API key is required: Authorization: Bearer <key>'
          : 'the API key is not valid',
      );
    }
    const [blockedMs, tenantMs] = await Promise.all([
      limits.addressBlocked(address),
      limits.tenantRequest(tenant),
    ]);
    if (blockedMs > 0) {
      throw new RateLimitedError(
        'too many failed authentications from this address; retry later',
        seconds(blockedMs),
      );
    }
    if (tenantMs > 0) {
      throw new RateLimitedError('over the request rate limit of this API key', seconds(tenantMs));
    }
    tenants.set(req, tenant);
    next();
  };
}
