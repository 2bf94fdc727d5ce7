/**
 * Tenants and their API keys, and the one mapping between a client's token
 * or account id and the key it is stored under.
 *
 * In local mode (no PAYSTATE_API_KEYS) there is no tenant and a token is its
 * own engine key, exactly as before tenants existed. With keys, tenant X's
 * token T is stored as `t/X/T` (and its account A as `t/X/A`). Tokens and
 * account ids are URL-safe characters, which never include '/', and tenant
 * names are [a-z0-9_-]: so a key with a '/' is always a tenant's, the first
 * '/' after `t/` ends the tenant name, and two tenants' keys never meet. The
 * whole key sits inside the token's (or account's) hash tag, so one
 * token's keys stay in one cluster slot.
 */
import { createHash, timingSafeEqual } from 'node:crypto';

/** 1-64 characters of a-z 0-9 _ - */
export const TENANT_PATTERN = /^[a-z0-9_-]{1,64}$/;

/** null: local mode, no tenant. */
export type Tenant = string | null;

const TENANT_KEY = /^t\/([a-z0-9_-]{1,64})\/(.+)$/;

/** The stored key of a client's token or account id. */
export function tenantKey(tenant: Tenant, id: string): string {
  return tenant === null ? id : `t/${tenant}/${id}`;
}

/** Whose a stored key is, and the id its client knows it by. */
export function fromTenantKey(key: string): { tenant: Tenant; id: string } {
  const match = TENANT_KEY.exec(key);
  if (match === null) return { tenant: null, id: key };
  return { tenant: match[1] ?? null, id: match[2] ?? '' };
}

/**
 * The tenant a stored key belongs to, `null` for a key of local mode: the
 * partition of the payments' keys, so a tenant's counts, listings and stuck
 * tokens are read from its own part of the state index.
 */
export function tenantOfStoredKey(key: string): Tenant {
  return fromTenantKey(key).tenant;
}

/** The id the client of `tenant` knows a stored key by, or null when the key is not that tenant's. */
export function ownId(tenant: Tenant, key: string): string | null {
  const owner = fromTenantKey(key);
  return owner.tenant === tenant ? owner.id : null;
}

/** One configured key: its tenant and the SHA-256 of the key (the key itself is never configured). */
export interface ApiKey {
  readonly tenant: string;
  readonly sha256: Buffer;
}

/**
 * Reads PAYSTATE_API_KEYS: comma-separated `tenant=<64 hex digits>`. A
 * tenant may appear more than once (old and new key during a rotation).
 * Returns the keys, or the problems found (never echoing a digest).
 */
export function parseApiKeys(raw: string | undefined): { keys: ApiKey[]; problems: string[] } {
  const keys: ApiKey[] = [];
  const problems: string[] = [];
  if (raw === undefined || raw.trim() === '') return { keys, problems };
  const seen = new Set<string>();
  raw.split(',').forEach((entry, index) => {
    const item = entry.trim();
    const at = `PAYSTATE_API_KEYS entry ${index + 1}`;
    if (item === '') {
      problems.push(`${at} is empty`);
      return;
    }
    const eq = item.indexOf('=');
    if (eq < 0) {
      problems.push(`${at} must be tenant=<sha256 hex of the key>`);
      return;
    }
    const tenant = item.slice(0, eq).trim();
    const digest = item
      .slice(eq + 1)
      .trim()
      .toLowerCase();
    if (!TENANT_PATTERN.test(tenant)) {
      problems.push(
        `${at}: the tenant name must be 1-64 characters of a-z 0-9 _ -, got "${tenant.slice(0, 80)}"`,
      );
      return;
    }
    if (!/^[0-9a-f]{64}$/.test(digest)) {
      problems.push(
        `${at} (tenant ${tenant}) must give the key's SHA-256 as 64 hex digits (printf %s "$KEY" | sha256sum), not the key itself`,
      );
      return;
    }
    if (seen.has(digest)) {
      problems.push(`${at} (tenant ${tenant}) repeats a key digest given before`);
      return;
    }
    seen.add(digest);
    keys.push({ tenant, sha256: Buffer.from(digest, 'hex') });
  });
  return { keys, problems };
}

/**
 * The tenant of a presented key, or null. The key is hashed and its digest
 * compared with every configured digest in constant time, all of them
 * every time: neither the answer's timing nor which entry matched tells an
 * attacker anything about a configured key.
 */
export function tenantOfKey(keys: readonly ApiKey[], presented: string): string | null {
  const digest = createHash('sha256').update(presented, 'utf8').digest();
  let found: string | null = null;
  for (const key of keys) {
    if (timingSafeEqual(digest, key.sha256) && found === null) found = key.tenant;
  }
  return found;
}
