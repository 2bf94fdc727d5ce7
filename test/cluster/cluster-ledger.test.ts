/**
 * The ledger processor on a Redis Cluster (3 masters, 3 replicas): every
 * movement is one script on one slot (an account's keys and its copy of the
 * store identity share the account's hash tag), for accounts spread over
 * every master, in several currencies, with holds, captures, voids and
 * refunds; the money invariants hold account by account.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import { Ledger } from '../../src/accounts/ledger.ts';
import { createKeys } from '../../src/payments/keys.ts';
import { LedgerProcessor } from '../../src/processor/ledger-processor.ts';
import { connectCluster, keySlot } from '../../src/runtime/redis/cluster.ts';
import { RedisClock } from '../../src/runtime/redis/redis-clock.ts';
import { StoreIdentity } from '../../src/runtime/redis/store-identity.ts';
import { auditMoney, readAccounts } from '../support/money-invariants.ts';
import { startRedisCluster, type TestRedisCluster } from '../support/redis-cluster.ts';
import { randomPrefix } from '../support/service-harness.ts';

const INITIAL = 5_000;
const ACCOUNTS = 12;

describe('the ledger processor on a Redis Cluster', { timeout: 120_000 }, () => {
  let cluster: TestRedisCluster;
  let redis: Redis;

  beforeAll(async () => {
    cluster = await startRedisCluster();
    redis = connectCluster(
      cluster.seeds.split(',').map((seed) => {
        const [host = '', port = ''] = seed.split(':');
        return { host, port: Number(port) };
      }),
      { maxRetriesPerRequest: 3 },
    );
  }, 60_000);
  afterAll(async () => {
    redis.disconnect();
    await cluster.destroy();
  });

  it('moves money of accounts on every master in several currencies, each exactly', async () => {
    const prefix = randomPrefix();
    const keys = createKeys(prefix);
    const identity = new StoreIdentity(redis, keys.store, new RedisClock());
    await identity.open();
    const ledger = new Ledger(redis, keys, INITIAL, identity);
    const processor = new LedgerProcessor(ledger);
    const accountIds = Array.from({ length: ACCOUNTS }, (_, a) => `acct-${a}`);
    // Spread over the cluster: the accounts' slots are not all one master's.
    expect(new Set(accountIds.map((id) => keySlot(keys.account(id)))).size).toBe(ACCOUNTS);

    const [seconds] = await redis.time();
    const at = Number(seconds) * 1000;
    await Promise.all(
      accountIds.map(async (accountId, a) => {
        // Three payments of the account: one charged and refunded in part, one captured in part, one voided.
        const base = (payment: string) => ({ accountId, token: `tok-${a}-${payment}`, at });
        await processor.charge({
          ...base('c'),
          operationId: `c:${a}`,
          currency: 'USD',
          amountCents: 700,
          capture: true,
        });
        await processor.refund({
          ...base('c'),
          operationId: `r:${a}`,
          currency: 'USD',
          amountCents: 200,
        });
        await processor.charge({
          ...base('k'),
          operationId: `h:${a}`,
          currency: 'JPY',
          amountCents: 900,
          capture: false,
        });
        await processor.capture({
          ...base('k'),
          operationId: `k:${a}`,
          currency: 'JPY',
          authorizedCents: 900,
          amountCents: 400,
        });
        await processor.charge({
          ...base('v'),
          operationId: `v:${a}`,
          currency: 'KWD',
          amountCents: 300,
          capture: false,
        });
        await processor.void({
          ...base('v'),
          operationId: `x:${a}`,
          currency: 'KWD',
          amountCents: 300,
        });
      }),
    );

    for (const accountId of accountIds) {
      expect((await ledger.view(accountId)).balances).toEqual({
        JPY: { availableCents: 4_600, heldCents: 0 },
        KWD: { availableCents: 5_000, heldCents: 0 },
        USD: { availableCents: 4_500, heldCents: 0 },
      });
    }
    // One account per pipeline: a pipeline on a Cluster stays within one slot.
    const audit = auditMoney(await readAccounts(redis, keys, accountIds, { batch: 1 }), {
      initialBalanceCents: INITIAL,
    });
    expect(audit.problems).toEqual([]);
    expect(audit.movements).toBe(ACCOUNTS * 6);
  });
});
