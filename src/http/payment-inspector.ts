import type { Router } from 'express';
import { inspectorRouter } from '../inspector/inspector-router.ts';
import { paymentMachine } from '../machine/payment.machine.ts';
import type { PaymentSnapshot } from '../payments/payment.snapshot.ts';
import type { Payments } from '../payments/payments.ts';
import { parseToken } from './schemas.ts';
import { tenantOf } from './auth.ts';
import { ownId, tenantKey } from '../tenants.ts';
import { paymentView, removeAtOf } from './views.ts';

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

/** What the open page asks for again and again (its counts each second, a watched token every two). */
export const INSPECTOR_POLLED_ROUTES = ['/inspect/api/counts', '/inspect/api/keys/{key}'] as const;

/** GET /inspect: the payment machine's live statechart; a token's history is its `history`. */
export function paymentInspector(payments: Payments): Router {
  return inspectorRouter<PaymentSnapshot>({
    title: 'paystate',
    machine: paymentMachine,
    actors: payments.actors,
    parseKey: (raw) => parseToken(raw),
    // With API keys, a tenant sees its own tokens only.
    scope: {
      key: (req, typed) => tenantKey(tenantOf(req), typed),
      own: (req, stored) => {
        const tenant = tenantOf(req);
        return tenant === null ? stored : ownId(tenant, stored);
      },
      partition: (req) => tenantOf(req) ?? undefined,
    },
    describe: (snapshot, req) => {
      const c = snapshot.context;
      // The account id as the tenant named it, as the payment API shows it.
      const { payment } = paymentView(snapshot, tenantOf(req));
      return {
        state: snapshot.value,
        history: c.history,
        fields: {
          accountId: payment?.accountId ?? null,
          amountCents: c.payment?.amountCents ?? null,
          currency: c.payment?.currency ?? null,
          capture: c.payment?.capture ?? null,
          capturedCents: c.capturedCents,
          refundedCents: c.refundedCents,
          attempts: c.attempt,
          lastDecline: c.lastDecline?.reason ?? null,
          createdAt: iso(c.createdAt),
          updatedAt: iso(c.updatedAt),
          expiresAt: iso(c.expiresAt),
          removeAt: iso(removeAtOf(c)),
        },
      };
    },
  });
}
