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
  const scope = options.keyPrefix === undefined ? {} : { keyPrefix: options.keyPrefix };

  router.get('/admin/payments', async (req, res) => {
    const query = parseQuery(adminListQuerySchema, req.query);
    const page = await payments.list({
      status: query.status,
      ...(query.limit === undefined ? {} : { limit: query.limit }),
      cursor: query.cursor ?? null,
      ...scope,
    });
    const body: AdminPaymentList = {
      status: query.status,
      payments: page.entries.map((entry) => ({
        token: entry.key,
        status: query.status,
        updatedAt: new Date(entry.updatedAt).toISOString(),
      })),
      nextCursor: page.cursor,
    };
    res.json(body);
  });

  router.get('/admin/payments/stats', async (req, res) => {
    parseQuery(adminListQuerySchema.pick({}), req.query);
    const counts = await payments.counts();
    const body: AdminPaymentStats = {
      counts,
      total: Object.values(counts).reduce((sum, n) => sum + n, 0),
    };
    res.json(body);
  });

  router.get('/admin/payments/stuck', async (req, res) => {
    const query = parseQuery(adminStuckQuerySchema, req.query);
    const olderThanMs = durationMs(query.olderThan ?? '30s');
    const stuck = await payments.stuck(olderThanMs, query.limit ?? 50);
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
    await payments.recover(token);
    const snapshot = await payments.get(token);
    if (snapshot === null) throw new NotFoundError(`no payment with token ${token}`);
    res.json(paymentView(snapshot));
  });

  return router;
}
