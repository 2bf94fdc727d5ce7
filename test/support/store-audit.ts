/**
 * Reads everything a service keeps under its key prefix (snapshots, ledgers,
 * outbox) in one atomic step, straight from Redis, and checks that the
 * snapshots and the ledger agree with each other and with the money rules:
 *
 * - the money invariants of money-invariants.ts (shared with the bench): per
 *   account and currency the ledger chains from the initial balance to the
 *   stored balances, never below zero, available + held + captured −
 *   refunded = initial; every applied operation is in the ledger once, no
 *   declined one is;
 * - every movement belongs to the current life of a token on record, with
 *   that token's account and amount;
 * - a token's state says what its money did (tokenMoneyProblem, shared with
 *   the bench): processed ⇒ one charge, nothing refunded; refunded ⇒ all of
 *   it refunded; pending/cancelled ⇒ nothing captured or held; charging ⇒ at
 *   most the charge (its outcome not recorded yet); refunding ⇒ the charge
 *   and any refunds.
 *
 * These hold at every moment, under load too: the read is one script, so it
 * sees the store between two commands. Once recovery has run (`settled`),
 * nothing may still be in flight or owed, the outbox is empty, and every
 * processed/cancelled/refunded token has its expiry timer.
 */
import { Queue } from 'bullmq';
import { Cluster, Redis } from 'ioredis';
import { spreadTags } from '../../src/runtime/redis/cluster.ts';
import { timerQueueIndex } from '../../src/runtime/redis/timer-queue.ts';
import type { LedgerEntry } from '../../src/accounts/ledger.ts';
import { auditMoney, tokenMoneyProblem } from './money-invariants.ts';
import { timerJobId, timerQueueName } from '../../src/runtime/testing.ts';
import { EXPIRY_TIMER_ID, PAYMENT_MACHINE_VERSION } from '../../src/machine/payment.machine.ts';
import { readPaymentSnapshot } from '../../src/payments/payment.snapshot.ts';
import { createKeys } from '../../src/payments/keys.ts';

export interface TokenAudit {
  readonly status: string | null;
  readonly owed: boolean;
  readonly withdrawals: number;
  readonly deposits: number;
}

export interface StoreAudit {
  readonly tokens: ReadonlyMap<string, TokenAudit>;
  readonly accounts: number;
  /** Tokens in the outbox. */
  readonly outbox: number;
  /** Records in `charging` or `refunding`. */
  readonly inFlight: number;
  /** Charges whose withdrawal is in the ledger while the snapshot still says `charging`. */
  readonly ledgerAhead: number;
  /** Broken guarantees, one line each. */
  readonly problems: readonly string[];
  /** On a cluster: records held by each master. */
  readonly recordsPerMaster: readonly number[];
}

export interface StoreAuditor {
  audit(options: { settled: boolean }): Promise<StoreAudit>;
  close(): Promise<void>;
}

const TIMED_STATES = new Set(['processed', 'cancelled', 'refunded']);

// ARGV: key prefix, 'cluster' on a cluster node. Test-only: KEYS inside a
// script is what makes the read one atomic step (on a cluster, one step per
// master: exact once the load has stopped).
const READ_ALL = `
local prefix = ARGV[1]
local states = {}
for _, key in ipairs(redis.call('KEYS', prefix .. ':{*}:state')) do
  local f = redis.call('HMGET', key, 'v', 'l', 'm', 's', 'o', 't')
  table.insert(states, {key, f[1] or '', f[2] or '', f[3] or '', f[4] or '', f[5] or '', f[6] or ''})
end
local accounts = {}
for _, key in ipairs(redis.call('KEYS', prefix .. ':{account:*}:*')) do
  local id = string.match(key, '{account:(.*)}:')
  if id and not accounts[id] then accounts[id] = true end
end
local ledgers = {}
for id in pairs(accounts) do
  local base = prefix .. ':{account:' .. id .. '}:'
  table.insert(ledgers, {
    id,
    redis.call('HGETALL', base .. 'balance'),
    redis.call('LRANGE', base .. 'ledger', 0, -1),
    redis.call('HGETALL', base .. 'ops'),
  })
end
local outbox = 0
if ARGV[2] == 'cluster' then
  for _, key in ipairs(redis.call('KEYS', prefix .. ':outbox:{*}')) do
    outbox = outbox + redis.call('ZCARD', key)
  end
else
  outbox = redis.call('ZCARD', prefix .. ':outbox')
end
return {states, ledgers, outbox}
`;

type ReadAllReply = [
  states: [key: string, v: string, l: string, m: string, s: string, o: string, t: string][],
  ledgers: [id: string, balances: string[], ledger: string[], ops: string[]][],
  outbox: number,
];

interface StoredState {
  readonly status: string;
  readonly lifeId: string;
  readonly payment: { accountId: string; amountCents: number } | null;
  readonly owed: boolean;
  /** The seq of the live expiry timer, or null when the record has none. */
  readonly expirySeq: number | null;
}

/**
 * `redisUrl` must reach Redis directly, not through whatever fault the test
 * puts on the service's path. With `cluster`, the store is read from every
 * master and the timers from the queues the service spreads them over.
 */
export function storeAuditor(options: {
  redisUrl: string;
  keyPrefix: string;
  initialBalanceCents: number;
  cluster?: { readonly seeds: string; readonly timerQueues: number };
}): StoreAuditor {
  const keys = createKeys(options.keyPrefix);
  const { cluster } = options;
  const nodes =
    cluster === undefined
      ? null
      : cluster.seeds.split(',').map((seed) => {
          const [host = '', port = ''] = seed.split(':');
          return { host, port: Number(port) };
        });
  const redis: Redis =
    nodes === null
      ? new Redis(options.redisUrl, { maxRetriesPerRequest: 3 })
      : (new Cluster(nodes, { redisOptions: { maxRetriesPerRequest: 3 } }) as unknown as Redis);
  redis.on('error', () => undefined);
  const queueConnection: Redis =
    nodes === null
      ? new Redis(options.redisUrl, { maxRetriesPerRequest: null })
      : (new Cluster(nodes, {
          redisOptions: { maxRetriesPerRequest: null },
        }) as unknown as Redis);
  queueConnection.on('error', () => undefined);
  const prefixes =
    cluster === undefined
      ? [keys.queuePrefix]
      : spreadTags(cluster.timerQueues).map((tag) => `${keys.queuePrefix}:{${tag}}`);
  const queues = prefixes.map((prefix) => {
    const queue = new Queue(timerQueueName('payment'), { connection: queueConnection, prefix });
    queue.on('error', () => undefined);
    return queue;
  });
  const queueOf = (token: string) => {
    const queue = queues[timerQueueIndex(token, queues.length)];
    if (queue === undefined) throw new Error('no timer queue');
    return queue;
  };
  const recordsPerMaster: number[] = [];
  const readAll = async (): Promise<ReadAllReply> => {
    if (nodes === null) {
      return (await redis.eval(READ_ALL, 0, options.keyPrefix)) as ReadAllReply;
    }
    // A connection of its own each time: the masters as they are now (after a failover too).
    const fresh = new Cluster(nodes, { redisOptions: { maxRetriesPerRequest: 3 } });
    fresh.on('error', () => undefined);
    let replies: ReadAllReply[];
    try {
      await new Promise<void>((resolve, reject) => {
        fresh.once('ready', resolve);
        fresh.once('end', () => {
          reject(new Error('no cluster node answers'));
        });
      });
      replies = (await Promise.all(
        fresh.nodes('master').map((node) => node.eval(READ_ALL, 0, options.keyPrefix, 'cluster')),
      )) as ReadAllReply[];
    } finally {
      fresh.disconnect();
    }
    recordsPerMaster.splice(0, recordsPerMaster.length, ...replies.map(([s]) => s.length));
    return [
      replies.flatMap(([states]) => states),
      replies.flatMap(([, ledgers]) => ledgers),
      replies.reduce((sum, [, , outbox]) => sum + outbox, 0),
    ];
  };
  const tokenOf = (stateKey: string) =>
    stateKey.slice(`${options.keyPrefix}:{`.length, -'}:state'.length);

  return {
    async audit({ settled }) {
      const problems: string[] = [];
      const [rawStates, rawLedgers, outbox] = await readAll();

      const records = new Map<string, StoredState>();
      for (const [key, , , machineVersion, json, owed, timers] of rawStates) {
        const token = tokenOf(key);
        try {
          if (machineVersion !== String(PAYMENT_MACHINE_VERSION)) {
            throw new Error(`machine version ${machineVersion}`);
          }
          const snapshot = readPaymentSnapshot(JSON.parse(json) as unknown);
          const expiry =
            timers === ''
              ? undefined
              : (JSON.parse(timers) as Record<string, { seq: number } | undefined>)[
                  EXPIRY_TIMER_ID
                ];
          records.set(token, {
            status: snapshot.value,
            lifeId: snapshot.context.lifeId,
            payment: snapshot.context.payment,
            owed: owed !== '',
            expirySeq: expiry?.seq ?? null,
          });
        } catch (error) {
          problems.push(`${token}: unreadable record (${String(error)})`);
        }
      }

      const pairs = (flat: readonly string[]) => {
        const map = new Map<string, string>();
        for (let i = 0; i + 1 < flat.length; i += 2) map.set(flat[i] ?? '', flat[i + 1] ?? '');
        return map;
      };
      // The money invariants (chain, never negative, the balance identity,
      // each id once), as the bench checks them.
      const money = auditMoney(
        rawLedgers.map(([accountId, balances, entries, operations]) => ({
          accountId,
          balances: Object.fromEntries(pairs(balances)),
          entries,
          operations: pairs(operations),
        })),
        { initialBalanceCents: options.initialBalanceCents },
      );
      problems.push(...money.problems);

      // Each movement against the record of its token.
      const movements = new Map<string, LedgerEntry[]>();
      for (const [accountId, , rawEntries] of rawLedgers) {
        for (const entry of rawEntries.map((e) => JSON.parse(e) as LedgerEntry)) {
          const list = movements.get(entry.token) ?? [];
          list.push(entry);
          movements.set(entry.token, list);
          const record = records.get(entry.token);
          if (record === undefined) {
            problems.push(
              `${accountId}: ${entry.operationId} moves money for a token with no record`,
            );
            continue;
          }
          if (!entry.operationId.includes(`:${entry.token}:${record.lifeId}`)) {
            problems.push(
              `${accountId}: ${entry.operationId} is not of the token's life ${record.lifeId}`,
            );
          }
          // A charge or hold moves the payment's amount; captures and refunds may move part of it.
          const whole = entry.kind === 'withdrawal' || entry.kind === 'hold';
          if (
            record.payment?.accountId !== accountId ||
            (whole
              ? record.payment.amountCents !== entry.amountCents
              : entry.amountCents > record.payment.amountCents)
          ) {
            problems.push(
              `${accountId}: ${entry.operationId} moves ${entry.amountCents} while the token's payment is ${JSON.stringify(record.payment)}`,
            );
          }
        }
      }

      const tokens = new Map<string, TokenAudit>();
      let inFlight = 0;
      let ledgerAhead = 0;
      for (const [token, record] of records) {
        const mine = movements.get(token) ?? [];
        const withdrawals = mine.filter((e) => e.kind === 'withdrawal').length;
        const deposits = mine.filter((e) => e.kind === 'deposit').length;
        const { status } = record;
        tokens.set(token, { status, owed: record.owed, withdrawals, deposits });
        if (status === 'charging' || status === 'refunding') inFlight++;
        if (status === 'charging' && withdrawals === 1) ledgerAhead++;
        const problem = tokenMoneyProblem(status, money.byToken.get(token));
        if (problem !== null) problems.push(`${token}: ${problem}`);
        if (!settled) continue;
        if (status === 'charging' || status === 'refunding') {
          problems.push(`${token}: still ${status} after recovery`);
        }
        if (record.owed) problems.push(`${token}: still flagged owed after recovery`);
        if (TIMED_STATES.has(status)) {
          const job =
            record.expirySeq === null
              ? undefined
              : await queueOf(token).getJob(
                  timerJobId({
                    key: token,
                    lifeId: record.lifeId,
                    id: EXPIRY_TIMER_ID,
                    seq: record.expirySeq,
                  }),
                );
          if (job === undefined) problems.push(`${token}: ${status} without its expiry timer`);
        }
      }
      if (settled && outbox > 0) problems.push(`${outbox} token(s) still in the outbox`);
      return {
        tokens,
        accounts: rawLedgers.length,
        outbox,
        inFlight,
        ledgerAhead,
        problems,
        recordsPerMaster: [...recordsPerMaster],
      };
    },
    async close() {
      await Promise.allSettled(queues.map((queue) => queue.close()));
      await Promise.allSettled([redis.quit(), queueConnection.quit()]);
    },
  };
}
