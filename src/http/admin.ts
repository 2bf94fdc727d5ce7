import { Router } from 'express';
import { NotFoundError } from '../errors.ts';
import type { Payments } from '../payments/payments.ts';
import {
  adminListQuerySchema,
  adminStuckQuerySchema,
  durationMs,
  parseQuery,
  parseToken,
  type AdminPaymentList,
  type AdminPaymentStats,
  type AdminStuckList,
} from './schemas.ts';
import { paymentView } from './views.ts';
import { tenantOf } from './auth.ts';
import { ownId, tenantKey, type Tenant } from '../tenants.ts';
import type { PaymentStatus } from '../payments/payment.types.ts';
import { PAYMENT_STATES } from '../payments/payments.ts';

/** A tenant's keys share this prefix; `{}` in local mode (every key). */
export function scopeOf(tenant: Tenant): { keyPrefix?: string } {
  return tenant === null ? {} : { keyPrefix: tenantKey(tenant, '') };
}

/** The token as its client knows it, or null for another tenant's. */
function clientToken(tenant: Tenant, key: string): string | null {
  return tenant === null ? key : ownId(tenant, key);
}

/**
 * Operators' routes: tokens by state (the engine's state index, newest write
 * first), counts per state, tokens whose owed work is older than a threshold,
 * and recovering one now, under its lock.
 *
 * `keyPrefix` narrows every listing to the tokens starting so (the keys of
 * one partition of the store).
 */
export function adminRouter(payments: Payments, options: { keyPrefix?: string } = {}): Router {
  const router = Router();
  // With API keys, each tenant sees its own tokens only.
  const scopeFor = (tenant: Tenant) =>
    tenant === null && options.keyPrefix !== undefined
      ? { keyPrefix: options.keyPrefix }
      : scopeOf(tenant);

  router.get('/admin/payments', async (req, res) => {
    const query = parseQuery(adminListQuerySchema, req.query);
    const tenant = tenantOf(req);
    const page = await payments.list({
      status: query.status,
      ...(query.limit === undefined ? {} : { limit: query.limit }),
      cursor: query.cursor ?? null,
      ...scopeFor(tenant),
    });
    const body: AdminPaymentList = {
      status: query.status,
      payments: page.entries.map((entry) => ({
        token: clientToken(tenant, entry.key) ?? entry.key,
        status: query.status,
        updatedAt: new Date(entry.updatedAt).toISOString(),
      })),
      nextCursor: page.cursor,
    };
    res.json(body);
  });

  router.get('/admin/payments/stats', async (req, res) => {
    parseQuery(adminListQuerySchema.pick({}), req.query);
    const tenant = tenantOf(req);
    const counts = tenant === null ? await payments.counts() : await countsOf(payments, tenant);
    const body: AdminPaymentStats = {
      counts,
      total: Object.values(counts).reduce((sum, n) => sum + n, 0),
    };
    res.json(body);
  });

  router.get('/admin/payments/stuck', async (req, res) => {
    const query = parseQuery(adminStuckQuerySchema, req.query);
    const olderThanMs = durationMs(query.olderThan ?? '30s');
    const tenant = tenantOf(req);
    const stuck = (await payments.stuck(olderThanMs, query.limit ?? 50)).flatMap((entry) => {
      const token = clientToken(tenant, entry.token);
      return token === null ? [] : [{ ...entry, token }];
    });
    const body: AdminStuckList = {
      olderThanMs,
      payments: stuck.map((entry) => ({
        token: entry.token,
        status: entry.status,
        owedSince: new Date(entry.owedSince).toISOString(),
      })),
    };
    res.json(body);
  });

  router.post('/admin/payments/:token/recover', async (req, res) => {
    const token = parseToken(req.params.token);
    const tenant = tenantOf(req);
    const key = tenantKey(tenant, token);
    await payments.recover(key);
    const snapshot = await payments.get(key);
    if (snapshot === null) throw new NotFoundError(`no payment with token ${token}`);
    res.json(paymentView(snapshot, tenant));
  });

  return router;
}

/**
 * A tenant's counts per state: its keys in each state's index, paged
 * through (the index is one per state, not per tenant: this reads every
 * member of each state once).
 */
export async function countsOf(
  payments: Payments,
  tenant: Tenant,
): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  for (const status of PAYMENT_STATES as readonly PaymentStatus[]) {
    let n = 0;
    let cursor: string | null = null;
    do {
      const page: Awaited<ReturnType<Payments['list']>> = await payments.list({
        status,
        limit: 1000,
        cursor,
        ...scopeOf(tenant),
      });
      n += page.entries.length;
      cursor = page.cursor;
    } while (cursor !== null);
    counts[status] = n;
  }
  return counts;
}
