/**
 * A property of the money over HTTP on real Redis: random payments (automatic
 * or manual capture, three currencies, shared accounts) and, for each, a
 * random list of captures, partial refunds, repeated refund keys and
 * cancels, all sent at once through two service instances sharing one Redis
 * and key prefix, while short expiry and capture windows fire among them.
 * Once every token has left its internal step:
 * - the money invariants hold (test/support/money-invariants.ts, the bench's
 *   checker): per account and currency available + held + captured −
 *   refunded = initial, nothing negative, no token charged twice, no refund
 *   total above its capture;
 * - each token's state agrees with its money, and its view's captured and
 *   refunded amounts are what the ledger moved for it.
 */
import fc from 'fast-check';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { auditMoney, readAccounts, tokenMoneyProblem } from '../support/money-invariants.ts';
import {
  randomPrefix,
  startTestService,
  testConfig,
  waitFor,
  type TestService,
} from '../support/service-harness.ts';

const INITIAL = 10_000;
const CURRENCIES = ['USD', 'JPY', 'KWD'] as const;

const step = fc.oneof(
  fc.record({
    kind: fc.constant('capture' as const),
    percent: fc.option(fc.integer({ min: 1, max: 100 })),
  }),
  fc.record({
    kind: fc.constant('refund' as const),
    key: fc.integer({ min: 0, max: 3 }),
    percent: fc.option(fc.integer({ min: 1, max: 120 })),
  }),
  fc.record({ kind: fc.constant('cancel' as const) }),
  fc.record({ kind: fc.constant('pay' as const) }),
);

const paymentPlan = fc.record({
  account: fc.integer({ min: 0, max: 2 }),
  currency: fc.constantFrom(...CURRENCIES),
  amount: fc.integer({ min: 1, max: 6_000 }),
  manual: fc.boolean(),
  steps: fc.array(fc.record({ step, delayMs: fc.integer({ min: 0, max: 40 }), via: fc.nat(1) }), {
    maxLength: 6,
  }),
});

interface PaymentBody {
  readonly status: string;
  readonly capturedCents?: number;
  readonly refundedCents?: number;
}

describe('money over HTTP under random concurrent pay, capture, refund, cancel and expiry', () => {
  let services: TestService[];
  let redis: Redis;

  beforeAll(async () => {
    const config = testConfig(inject('redisUrl'), {
      REDIS_KEY_PREFIX: randomPrefix(),
      ACCOUNT_INITIAL_BALANCE_CENTS: String(INITIAL),
      PAYMENT_EXPIRY_MS: '400',
      PAYMENT_CAPTURE_WINDOW_MS: '250',
      EXPIRED_RETENTION_MS: '600000',
    });
    // Same config, so the same key prefix: two processes sharing one Redis.
    services = [await startTestService(config), await startTestService(config)];
    redis = new Redis(inject('redisUrl'));
  });
  afterAll(async () => {
    await Promise.all(services.map((s) => s.stop()));
    await redis.quit();
  });

  const via = (i: number) => {
    const service = services[i % services.length];
    if (service === undefined) throw new Error('no service');
    return service;
  };

  let run = 0;

  it('keeps every invariant and every view true to the ledger', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(paymentPlan, { minLength: 1, maxLength: 8 }),
        // Sometimes the windows close before the check: expiries and voids by the capture window.
        fc.constantFrom(0, 0, 700),
        async (plans, settleMs) => {
          run++;
          const accountOf = (a: number) => `r${run}-a${a}`;
          const tokens = plans.map((_, i) => `r${run}-t${i}`);
          await Promise.all(
            plans.map(async (plan, i) => {
              const token = tokens[i] ?? '';
              const body = {
                accountId: accountOf(plan.account),
                amountCents: plan.amount,
                currency: plan.currency,
                ...(plan.manual ? { capture: 'manual' } : {}),
              };
              const pay = (s: number) =>
                via(s).request('POST', '/payments', {
                  headers: { 'Idempotency-Key': token },
                  body,
                });
              await pay(i);
              await Promise.all(
                plan.steps.map(async ({ step, delayMs, via: s }) => {
                  await new Promise((resolve) => setTimeout(resolve, delayMs));
                  const amount = (percent: number | null) =>
                    percent === null
                      ? {}
                      : { amountCents: Math.max(1, Math.floor((plan.amount * percent) / 100)) };
                  switch (step.kind) {
                    case 'pay':
                      return pay(s);
                    case 'cancel':
                      return via(s).request('POST', `/payments/${token}/cancel`);
                    case 'capture':
                      return via(s).request('POST', `/payments/${token}/capture`, {
                        body: amount(step.percent),
                      });
                    case 'refund':
                      return via(s).request('POST', `/payments/${token}/refunds`, {
                        headers: { 'Idempotency-Key': `${token}-refund-${step.key}` },
                        body: amount(step.percent),
                      });
                  }
                }),
              );
            }),
          );

          await new Promise((resolve) => setTimeout(resolve, settleMs));
          // Every token out of its internal step (the workers finish what is owed).
          const readViews = async () =>
            Promise.all(
              tokens.map(async (token) => {
                const reply = await via(0).request('GET', `/payments/${token}`);
                return reply.status === 200 ? (reply.body as PaymentBody) : null;
              }),
            );
          const accountIds = [0, 1, 2].map(accountOf);
          // Views and ledgers read while nothing moves: a window that closes
          // between the two reads (a void, an expiry) makes them read again.
          const { views, audit } = await waitFor(
            async () => {
              const before = await readViews();
              if (!before.every((b) => b !== null && b.status !== 'processing')) return undefined;
              const read = auditMoney(await readAccounts(redis, via(0).keys, accountIds), {
                initialBalanceCents: INITIAL,
              });
              const after = await readViews();
              return JSON.stringify(after) === JSON.stringify(before)
                ? { views: before, audit: read }
                : undefined;
            },
            { what: 'every token out of its internal step, and still', timeoutMs: 15_000 },
          );
          expect(audit.problems).toEqual([]);
          tokens.forEach((token, i) => {
            const view = views[i];
            const money = audit.byToken.get(token);
            expect([token, view?.status, tokenMoneyProblem(view?.status ?? 'none', money)]).toEqual(
              [token, view?.status, null],
            );
            expect([token, view?.capturedCents ?? 0, view?.refundedCents ?? 0]).toEqual([
              token,
              money?.capturedCents ?? 0,
              money?.refundedCents ?? 0,
            ]);
          });
        },
      ),
      { numRuns: 16 },
    );
  }, 240_000);
});
