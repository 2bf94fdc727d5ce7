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

/** The token as its client knows it, or null for another tenant's. */
function clientToken(tenant: Tenant, key: string): string | null {
  return tenant === null ? key : ownId(tenant, key);
}

/**
 * Operators' routes: tokens by state (the engine's state index, newest write
 * first), counts per state, tokens whose owed work is older than a threshold,
 * and recovering one now, under its lock.
 *
 * With API keys, each tenant sees its own tokens only: every read is of its
 * part of the index (a partition of the engine's), so it costs what the
 * tenant's own tokens do, whatever the other tenants hold.
 */
export function adminRouter(payments: Payments): Router {
  const router = Router();

  router.get('/admin/payments', async (req, res) => {
    const query = parseQuery(adminListQuerySchema, req.query);
    const tenant = tenantOf(req);
    const page = await payments.list({
      status: query.status,
      ...(query.limit === undefined ? {} : { limit: query.limit }),
      cursor: query.cursor ?? null,
      tenant,
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
    const { counts, unreadable } = await payments.counts(tenant);
    const body: AdminPaymentStats = {
      counts,
      total: Object.values(counts).reduce((sum, n) => sum + n, 0),
      unreadable,
    };
    res.json(body);
  });

  router.get('/admin/payments/stuck', async (req, res) => {
    const query = parseQuery(adminStuckQuerySchema, req.query);
    const olderThanMs = durationMs(query.olderThan ?? '30s');
    const tenant = tenantOf(req);
    const owed = await payments.stuck(olderThanMs, query.limit ?? 50, tenant);
    const stuck = owed.flatMap((entry) => {
      const token = clientToken(tenant, entry.token);
      return token === null ? [] : [{ ...entry, token }];
    });
    const body: AdminStuckList = {
      olderThanMs,
      payments: stuck.map((entry) => ({
        token: entry.token,
        status: entry.status,
        reason: entry.reason,
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
