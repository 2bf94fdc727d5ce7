/**
 * A property of the money on real Redis: random payments of random accounts
 * and currencies, each charged or authorized, captured in part, voided (by a
 * cancel or the capture window), left authorized, refunded in parts and
 * cancelled, all tokens at once through two processes' ledgers, each call
 * delivered up to three times at once (a retry racing the first try). After
 * every run the money invariants hold (test/support/money-invariants.ts, the
 * bench's checker): per account and currency available + held + captured −
 * refunded = initial, nothing negative, no token charged twice or refunded
 * more than it captured; every copy of a call got the same answer, and the
 * balances are exactly what the answers say.
 *
 * It drives the processor as the payment machine does (one step of a token
 * at a time, refunds within the capture); the same over HTTP, with the
 * machine deciding, is the payment routes' property.
 */
import fc from 'fast-check';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { Ledger } from '../../src/accounts/ledger.ts';
import { createKeys } from '../../src/payments/keys.ts';
import { LedgerProcessor } from '../../src/processor/ledger-processor.ts';
import type { Processor } from '../../src/processor/processor.ts';
import { RedisClock } from '../../src/runtime/redis/redis-clock.ts';
import { StoreIdentity } from '../../src/runtime/redis/store-identity.ts';
import { auditMoney, readAccounts } from '../support/money-invariants.ts';
import { randomPrefix } from '../support/service-harness.ts';

const INITIAL = 10_000;
const ACCOUNTS = 3;
const CURRENCIES = ['USD', 'JPY', 'KWD'] as const;

const paymentPlan = fc.record({
  account: fc.integer({ min: 0, max: ACCOUNTS - 1 }),
  currency: fc.constantFrom(...CURRENCIES),
  amount: fc.integer({ min: 1, max: 6_000 }),
  manual: fc.boolean(),
  /** How an authorization ends: captured, voided (cancel or capture window), or left held. */
  settle: fc.constantFrom('capture', 'void', 'open'),
  capturePercent: fc.integer({ min: 1, max: 100 }),
  /** Each refund takes this percent of what remains (at least 1). */
  refundPercents: fc.array(fc.integer({ min: 1, max: 100 }), { maxLength: 4 }),
  /** A cancel at the end refunds what remains. */
  cancel: fc.boolean(),
  copies: fc.integer({ min: 1, max: 3 }),
});
type PaymentPlan = typeof paymentPlan extends fc.Arbitrary<infer T> ? T : never;

describe('money under random concurrent payments, captures, voids, refunds and cancels', () => {
  const connections: Redis[] = [];
  const reader = () => {
    const [first] = connections;
    if (first === undefined) throw new Error('no connection');
    return first;
  };

  beforeAll(() => {
    for (let i = 0; i < 2; i++) connections.push(new Redis(inject('redisUrl')));
  });
  afterAll(async () => {
    await Promise.all(connections.map((c) => c.quit()));
  });

  /** Two processes' processors over one fresh prefix. */
  async function processors(prefix: string): Promise<Processor[]> {
    const keys = createKeys(prefix);
    return Promise.all(
      connections.map(async (redis) => {
        const identity = new StoreIdentity(redis, keys.store, new RedisClock());
        await identity.open();
        return new LedgerProcessor(new Ledger(redis, keys, INITIAL, identity));
      }),
    );
  }

  it('keeps every balance exact and every invariant, whatever the interleaving', async () => {
    const [seconds] = await reader().time();
    const at = Number(seconds) * 1000;

    await fc.assert(
      fc.asyncProperty(fc.array(paymentPlan, { minLength: 1, maxLength: 14 }), async (plans) => {
        const prefix = randomPrefix();
        const ledgers = await processors(prefix);
        // What the answers say each (account, currency) must hold.
        const expected = new Map<string, { available: number; held: number }>();
        const owe = (account: string, currency: string, available: number, held: number) => {
          const key = `${account} ${currency}`;
          const now = expected.get(key) ?? { available: INITIAL, held: 0 };
          expected.set(key, { available: now.available + available, held: now.held + held });
        };
        const disagreements: string[] = [];

        const pay = async (plan: PaymentPlan, index: number) => {
          const token = `tok-${index}`;
          const accountId = `acct-${plan.account}`;
          const { currency, amount } = plan;
          const base = { accountId, currency, token, at };
          // Every copy of a call at once, through either process; all must agree.
          const send = async <T>(call: (p: Processor) => Promise<T>): Promise<T> => {
            const [answer, ...others] = await Promise.all(
              Array.from({ length: plan.copies }, (_, c) => {
                const processor = ledgers[(index + c) % ledgers.length];
                if (processor === undefined) throw new Error('no processor');
                return call(processor);
              }),
            );
            if (answer === undefined) throw new Error('no answer');
            if (others.some((a) => JSON.stringify(a) !== JSON.stringify(answer))) {
              disagreements.push(
                `${token}: ${[answer, ...others].map((a) => JSON.stringify(a)).join(' / ')}`,
              );
            }
            return answer;
          };

          const charged = await send((p) =>
            p.charge({
              ...base,
              operationId: `charge:${token}`,
              amountCents: amount,
              capture: !plan.manual,
            }),
          );
          if (charged.status === 'declined') return;
          let captured = amount;
          if (plan.manual) {
            if (plan.settle === 'open') {
              owe(accountId, currency, -amount, amount);
              return;
            }
            if (plan.settle === 'void') {
              await send((p) =>
                p.void({ ...base, operationId: `void:${token}`, amountCents: amount }),
              );
              return;
            }
            captured = Math.max(1, Math.floor((amount * plan.capturePercent) / 100));
            await send((p) =>
              p.capture({
                ...base,
                operationId: `capture:${token}`,
                authorizedCents: amount,
                amountCents: captured,
              }),
            );
          }
          let refunded = 0;
          const refund = (operationId: string, amountCents: number) =>
            send((p) => p.refund({ ...base, operationId, amountCents }));
          for (const [i, percent] of plan.refundPercents.entries()) {
            const remaining = captured - refunded;
            if (remaining === 0) break;
            const part = Math.max(1, Math.floor((remaining * percent) / 100));
            await refund(`refund:${token}:${i}`, part);
            refunded += part;
          }
          if (plan.cancel && captured > refunded) {
            await refund(`refund:${token}:cancel`, captured - refunded);
            refunded = captured;
          }
          owe(accountId, currency, refunded - captured, 0);
        };

        await Promise.all(plans.map(pay));

        const accountIds = Array.from({ length: ACCOUNTS }, (_, a) => `acct-${a}`);
        const audit = auditMoney(await readAccounts(reader(), createKeys(prefix), accountIds), {
          initialBalanceCents: INITIAL,
        });
        expect(disagreements).toEqual([]);
        expect(audit.problems).toEqual([]);
        for (const accountId of accountIds) {
          const { balances } = await new Ledger(reader(), createKeys(prefix), INITIAL).view(
            accountId,
          );
          for (const currency of CURRENCIES) {
            const want = expected.get(`${accountId} ${currency}`) ?? {
              available: INITIAL,
              held: 0,
            };
            const got = balances[currency] ?? { availableCents: INITIAL, heldCents: 0 };
            expect([accountId, currency, got.availableCents, got.heldCents]).toEqual([
              accountId,
              currency,
              want.available,
              want.held,
            ]);
          }
        }
      }),
      { numRuns: 25 },
    );
  }, 120_000);
});
