/**
 * Storage stays bounded under churn: tokens paid, declined, cancelled,
 * expired and removed leave nothing of themselves in Redis — no record, no
 * member of a state's set, of the removal schedule or of the outbox — and an
 * account keeps a bounded ledger and the operation ids of its recent
 * movements only, while its balance stays exact.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { Redis } from 'ioredis';
import {
  startTestService,
  testConfig,
  waitFor,
  type TestService,
} from '../support/service-harness.ts';

const INITIAL_BALANCE_CENTS = 100_000;
const AMOUNT_CENTS = 300;
const EXPIRY_MS = 300;
const RETENTION_MS = 300;
const OPERATION_RETENTION_MS = 2_500;
const LEDGER_LIMIT = 5;
const TOKENS = 60;
const ACCOUNTS = 3;

describe('storage under churn', () => {
  let service: TestService;
  let redis: Redis;

  beforeAll(async () => {
    const redisUrl = inject('redisUrl');
    service = await startTestService(
      testConfig(redisUrl, {
        PAYMENT_EXPIRY_MS: String(EXPIRY_MS),
        EXPIRED_RETENTION_MS: String(RETENTION_MS),
        ACCOUNT_INITIAL_BALANCE_CENTS: String(INITIAL_BALANCE_CENTS),
        ACCOUNT_LEDGER_LIMIT: String(LEDGER_LIMIT),
        ACCOUNT_OPERATION_RETENTION_MS: String(OPERATION_RETENTION_MS),
        LOCK_TTL_MS: '1000',
        RECOVERY_INTERVAL_MS: '200',
      }),
    );
    redis = new Redis(redisUrl);
  });

  afterAll(async () => {
    await service.stop();
    redis.disconnect();
  });

  const prefix = () => service.config.keyPrefix;

  async function keysUnder(): Promise<string[]> {
    const found: string[] = [];
    let cursor = '0';
    do {
      const [next, batch] = await redis.scan(cursor, 'MATCH', `${prefix()}:*`, 'COUNT', 1000);
      cursor = next;
      found.push(...batch);
    } while (cursor !== '0');
    return found.sort();
  }

  /**
   * Keys of the tokens and members of the runtime's sorted sets that name
   * one. An account's keys are checked apart: they keep a bounded window.
   */
  async function residueOf(tokens: readonly string[]): Promise<string[]> {
    const residue: string[] = [];
    for (const key of await keysUnder()) {
      const type = await redis.type(key);
      if (key.includes(':bull:') || key.includes('{account:')) continue;
      if (tokens.some((token) => key.includes(`{${token}}`))) {
        residue.push(`key ${key}`);
        continue;
      }
      if (type === 'zset') {
        const members = await redis.zrange(key, 0, -1);
        for (const member of members) {
          if (tokens.some((token) => member.includes(token))) residue.push(`${key} ${member}`);
        }
      }
    }
    return residue;
  }

  it('leaves nothing of removed tokens and keeps accounts bounded with exact balances', async () => {
    const tokens: string[] = [];
    const charged = new Map<string, number>();
    const accountOf = (i: number) => `churn-${i % ACCOUNTS}`;
    for (let i = 0; i < TOKENS; i++) {
      const token = `churn-${prefix()}-${i}`;
      tokens.push(token);
      const accountId = accountOf(i);
      const declined = i % 5 === 4;
      const amountCents = declined ? INITIAL_BALANCE_CENTS * 10 : AMOUNT_CENTS;
      const pay = () =>
        service.request('POST', '/payments', {
          headers: { 'Idempotency-Key': token },
          body: { accountId, amountCents },
        });
      const first = await pay();
      expect(first.status).toBe(declined ? 402 : 201);
      if (declined) continue;
      // A replay moves nothing.
      expect((await pay()).status).toBe(200);
      if (i % 5 === 1) {
        expect((await service.request('POST', `/payments/${token}/cancel`)).status).toBe(200);
      } else {
        charged.set(accountId, (charged.get(accountId) ?? 0) + AMOUNT_CENTS);
      }
    }

    // Every token expires and is removed after its retention.
    for (const token of tokens) {
      await waitFor(
        async () =>
          (await service.request('GET', `/payments/${token}`)).status === 404 ? true : undefined,
        { what: `${token} to be removed`, timeoutMs: 20_000 },
      );
    }
    const residue = await waitFor(
      async () => {
        const left = await residueOf(tokens);
        return left.length === 0 ? left : undefined;
      },
      { what: 'no residue of removed tokens', timeoutMs: 5_000 },
    ).catch(async () => residueOf(tokens));
    expect(residue).toEqual([]);

    // Once the operation ids' window has passed, the next movement of an
    // account forgets those before it.
    const newest = Math.max(
      ...(await Promise.all(
        Array.from({ length: ACCOUNTS }, async (_, a) => {
          const base = `${prefix()}:{account:${accountOf(a)}}`;
          const [, score] = await redis.zrange(`${base}:ops-at`, -1, -1, 'WITHSCORES');
          return Number(score);
        }),
      )),
    );
    await waitFor(
      async () => {
        const [seconds, micros] = await redis.time();
        return Number(seconds) * 1000 + Math.floor(Number(micros) / 1000) >
          newest + OPERATION_RETENTION_MS
          ? true
          : undefined;
      },
      { what: "Redis's clock past the operation ids' window" },
    );
    for (let a = 0; a < ACCOUNTS; a++) {
      const token = `after-${prefix()}-${a}`;
      const response = await service.request('POST', '/payments', {
        headers: { 'Idempotency-Key': token },
        body: { accountId: accountOf(a), amountCents: AMOUNT_CENTS },
      });
      expect(response.status).toBe(201);
      charged.set(accountOf(a), (charged.get(accountOf(a)) ?? 0) + AMOUNT_CENTS);
    }

    for (let a = 0; a < ACCOUNTS; a++) {
      const accountId = accountOf(a);
      const base = `${prefix()}:{account:${accountId}}`;
      expect(await redis.hlen(`${base}:ops`)).toBe(1);
      expect(await redis.llen(`${base}:ledger`)).toBe(LEDGER_LIMIT);
      const view = await service.request('GET', `/accounts/${accountId}`);
      expect(view.status).toBe(200);
      const body = view.body as { balanceCents: number; ledger: { balanceCents: number }[] };
      expect(body.balanceCents).toBe(INITIAL_BALANCE_CENTS - (charged.get(accountId) ?? 0));
      expect(body.ledger).toHaveLength(LEDGER_LIMIT);
      expect(body.ledger.at(-1)?.balanceCents).toBe(body.balanceCents);
    }
  });
});
