/**
 * Tenant isolation as a property: random sequences of pays, cancels and
 * reads by two tenants on the same few tokens and account ids, sent to the
 * real service over HTTP. Each tenant's every answer must be what a
 * service of its own would give (a ReferenceService per tenant, knowing
 * nothing of the other): so neither ever sees or changes the other's
 * payments or balances. And nothing is stored outside the tenants' keys.
 */
import fc from 'fast-check';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { Outcome } from '../../src/machine/payment.types.ts';
import { bearer, TEST_API_KEYS, TEST_KEYS } from '../support/api-keys.ts';
import { ReferenceService } from '../support/reference-service.ts';
import { startTestService, testConfig, type TestService } from '../support/service-harness.ts';

const INITIAL_BALANCE_CENTS = 100_000;
const TENANTS = { alpha: bearer(TEST_KEYS.alpha), beta: bearer(TEST_KEYS.beta) } as const;
type TenantName = keyof typeof TENANTS;

type Operation =
  | { kind: 'pay' | 'seedPay'; tenant: TenantName; token: string; account: string; amount: number }
  | { kind: 'cancel' | 'get'; tenant: TenantName; token: string }
  | { kind: 'account'; tenant: TenantName; account: string };

const tenant = fc.constantFrom<TenantName>('alpha', 'beta');
const token = fc.constantFrom('t1', 't2', 't3');
const account = fc.constantFrom('acc1', 'acc2');
// Amounts that decline after two or three charges of one account.
const amount = fc.constantFrom(30_000, 45_000, 60_000);

const operation: fc.Arbitrary<Operation> = fc.oneof(
  fc.record({ kind: fc.constant('pay' as const), tenant, token, account, amount }),
  fc.record({ kind: fc.constant('seedPay' as const), tenant, token, account, amount }),
  fc.record({ kind: fc.constant('cancel' as const), tenant, token }),
  fc.record({ kind: fc.constant('get' as const), tenant, token }),
  fc.record({ kind: fc.constant('account' as const), tenant, account }),
);

const STATUS_OF_PAY: Partial<Record<Outcome, number>> = {
  charged: 201,
  replayed: 200,
  declined: 402,
  rejected: 409,
  expired: 410,
  body_mismatch: 422,
};

describe('two tenants on the same tokens and account ids', () => {
  let service: TestService;
  let redis: Redis;
  beforeAll(async () => {
    service = await startTestService(
      testConfig(inject('redisUrl'), {
        PAYSTATE_API_KEYS: TEST_API_KEYS,
        PAYSTATE_RATE_LIMIT_PER_SECOND: '0',
      }),
    );
    redis = new Redis(inject('redisUrl'));
  });
  afterAll(async () => {
    redis.disconnect();
    await service.stop();
  });

  it('never lets one observe or change the other: each answers as a service of its own would', async () => {
    let run = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(operation, { minLength: 1, maxLength: 25 }), async (operations) => {
        run += 1;
        // Fresh ids per run: the service keeps what earlier runs stored.
        const id = (name: string) => `r${run}-${name}`;
        const references = {
          alpha: newReference(),
          beta: newReference(),
        };
        for (const op of operations) {
          const reference = references[op.tenant];
          const headers = TENANTS[op.tenant];
          const what = `${op.tenant} ${op.kind} ${JSON.stringify(op)}`;
          switch (op.kind) {
            case 'pay':
            case 'seedPay': {
              const body = { accountId: id(op.account), amountCents: op.amount };
              const expected = reference.send(id(op.token), {
                type: 'PAY',
                ...body,
                currency: 'USD',
                capture: 'automatic',
                at: 0,
              });
              const outcome = expected?.outcome;
              if (op.kind === 'pay') {
                const reply = await service.request('POST', '/payments', {
                  headers: { ...headers, 'Idempotency-Key': id(op.token) },
                  body,
                });
                expect(reply.status, what).toBe(outcome && STATUS_OF_PAY[outcome]);
                if (reply.status < 300) {
                  expect(reply.body, what).toMatchObject({ token: id(op.token), payment: body });
                }
              } else {
                const reply = await service.request(
                  'POST',
                  `/PaymentProcessor/${id(op.token)}/makePayment`,
                  { headers, body },
                );
                if (outcome === 'body_mismatch') {
                  expect(reply.status, what).toBe(422);
                } else {
                  expect(reply.body, what).toMatchObject({
                    success: outcome === 'charged' || outcome === 'replayed',
                  });
                }
              }
              break;
            }
            case 'cancel': {
              const expected = reference.send(id(op.token), { type: 'CANCEL', at: 0 });
              const reply = await service.request('POST', `/payments/${id(op.token)}/cancel`, {
                headers,
              });
              expect(reply.status, what).toBe(200);
              expect(reply.body, what).toMatchObject({
                token: id(op.token),
                status: expected?.snapshot.value,
              });
              break;
            }
            case 'get': {
              const expected = reference.snapshotOf(id(op.token));
              const reply = await service.request('GET', `/payments/${id(op.token)}`, {
                headers,
              });
              if (expected === undefined) {
                expect(reply.status, what).toBe(404);
              } else {
                expect(reply.status, what).toBe(200);
                expect(reply.body, what).toMatchObject({
                  token: id(op.token),
                  status: expected.value,
                  payment: expected.context.payment,
                });
              }
              break;
            }
            case 'account': {
              const reply = await service.request('GET', `/accounts/${id(op.account)}`, {
                headers,
              });
              expect(reply.status, what).toBe(200);
              expect(reply.body, what).toMatchObject({
                accountId: id(op.account),
                balanceCents: reference.ledger.balanceOf(id(op.account)),
              });
              const ledger = (reply.body as { ledger: { token: string }[] }).ledger;
              for (const entry of ledger) expect(entry.token, what).toMatch(/^r\d+-t\d$/);
              break;
            }
          }
        }
        // Every key the run wrote is a tenant's: none under a bare token or account.
        const bare = await redis.keys(`${service.config.keyPrefix}:{*r${run}-*`);
        expect(bare.filter((key) => !/\{(account:)?t\/(alpha|beta)\/r/.test(key))).toEqual([]);
      }),
      { numRuns: 100 },
    );
  });
});

function newReference(): ReferenceService {
  return new ReferenceService({
    initialBalanceCents: INITIAL_BALANCE_CENTS,
    newInput: (token) => ({
      token,
      lifeId: 'reference',
      at: 0,
      expiryMs: 86_400_000,
      captureWindowMs: 86_400_000,
      retentionMs: 86_400_000,
    }),
  });
}
