/**
 * Operator commands, reading straight from Redis:
 *   paystate get <token>      a token's state, as `restate kv get PaymentProcessor <token>` shows it
 *   paystate account <id>     an account's balance and ledger
 *   paystate store [accept]   the store's identity; accept a store that was emptied or replaced
 *   paystate list --status S  tokens in a state, newest first (the engine's state index)
 *   paystate stats            how many tokens are in each state
 *   paystate stuck            tokens whose owed work is older than --older-than
 *   paystate recover <token>  do a token's owed work now, under its lock
 * Add --json for machine-readable output, --tenant <name> for a tenant's token
 * or account (with PAYSTATE_API_KEYS). Exit statuses are in USAGE.
 */
import { parseArgs } from 'node:util';
import { Redis, type Cluster, type RedisOptions } from 'ioredis';
import { connectCluster } from '../runtime/redis/cluster.ts';
import { Ledger, ledgerSettingsOf } from '../accounts/ledger.ts';
import { ConfigError, loadConfig, type Config } from '../config.ts';
import { createEngine } from '../runtime/index.ts';
import { toAppError, ValidationError } from '../errors.ts';
import { accountView, paymentView } from '../http/views.ts';
import { DURATION_PATTERN, durationMs, parseAccountId, parseToken } from '../http/schemas.ts';
import { createKeys, paymentRecordKeys, type Keys } from '../payments/keys.ts';
import { PAYMENT_STATES, paymentIndex, Payments } from '../payments/payments.ts';
import type { PaymentStatus } from '../machine/payment.types.ts';
import { readPaymentRecord } from '../payments/payment.snapshot.ts';
import { acceptStore, readStore } from '../runtime/redis/store-identity.ts';
import { ownId, TENANT_PATTERN, tenantKey, type Tenant } from '../tenants.ts';
import { header, keyValueTable, table } from './format.ts';

/** Exit statuses, documented in USAGE and the README. */
const EXIT = {
  ok: 0,
  notFound: 1,
  usage: 2,
  unavailable: 3,
  failed: 4,
} as const;

const USAGE = `usage:
  paystate get <token> [--tenant <name>] [--json]
                                     show a payment token's state
  paystate account <id> [--tenant <name>] [--json]
                                     show an account's balance and ledger
  paystate store [--json]            show the store's identity
  paystate store accept              accept the store as it is now: services that refuse
                                     requests with store_lost (Redis came back empty or is
                                     another store) adopt it and serve again
  paystate list --status <state> [--limit n] [--cursor c] [--tenant <name>] [--json]
                                     tokens in a state, most recently written first
                                     (states: ${PAYMENT_STATES.join(', ')})
  paystate stats [--tenant <name>] [--json]
                                     how many tokens are in each state, and how many
                                     records cannot be read
  paystate stuck [--older-than 30s] [--tenant <name>] [--json]
                                     tokens whose owed work (charge, refund, timer) was
                                     written longer ago than that and is not done, whose
                                     expiry timer is overdue by that much, and every
                                     record that cannot be read (docs/operations.md)
  paystate recover <token> [--tenant <name>] [--json]
                                     do a token's owed work now, under its lock, as the
                                     recovery sweep would; shows the token after
  paystate --help                    show this help

Reads REDIS_URL (default redis://127.0.0.1:6379), or REDIS_CLUSTER_NODES (host:port,... of a
Redis Cluster; REDIS_URL is then ignored), and REDIS_KEY_PREFIX (default paystate).
With API keys configured, tokens and accounts are per tenant: --tenant names whose
(without it, the token or account of local mode, which no tenant sees; list, stats and
stuck without it read every token).

exit status:
  0  found (an account is always found: it starts at the initial balance); also when
     the reader of the output closed it early (paystate get X | head -1)
  1  no state stored for the token (store: the store has no identity)
  2  usage: bad arguments, an invalid token or account id, or an invalid setting
  3  Redis unavailable: refused, or no answer at REDIS_URL within 2 seconds
  4  any other failure (e.g. stored data this build cannot read)`;

/** Longest wait for the connection, then for each command: a Redis that accepts and never answers fails too. */
const REDIS_TIMEOUT_MS = 2_000;

class UsageError extends Error {}

type Invocation =
  | { readonly kind: 'help' }
  | {
      readonly kind: 'get';
      readonly token: string;
      readonly tenant: Tenant;
      readonly json: boolean;
    }
  | {
      readonly kind: 'account';
      readonly accountId: string;
      readonly tenant: Tenant;
      readonly json: boolean;
    }
  | { readonly kind: 'store'; readonly accept: boolean; readonly json: boolean }
  | {
      readonly kind: 'list';
      readonly status: PaymentStatus;
      readonly limit: number;
      readonly cursor: string | null;
      readonly tenant: Tenant;
      readonly json: boolean;
    }
  | { readonly kind: 'stats'; readonly tenant: Tenant; readonly json: boolean }
  | {
      readonly kind: 'stuck';
      readonly olderThanMs: number;
      readonly tenant: Tenant;
      readonly json: boolean;
    }
  | {
      readonly kind: 'recover';
      readonly token: string;
      readonly tenant: Tenant;
      readonly json: boolean;
    };

const OPTIONS_OF: Record<string, readonly string[]> = {
  list: ['status', 'limit', 'cursor', 'tenant'],
  stats: ['tenant'],
  stuck: ['older-than', 'tenant'],
  get: ['tenant'],
  account: ['tenant'],
  recover: ['tenant'],
};

/** Reads the arguments; a bad one is a usage error before anything connects to Redis. */
function parseInvocation(args: string[]): Invocation {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      options: {
        json: { type: 'boolean' },
        tenant: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
        status: { type: 'string' },
        limit: { type: 'string' },
        cursor: { type: 'string' },
        'older-than': { type: 'string' },
      },
      allowPositionals: true,
      strict: true,
    });
  } catch (error) {
    throw new UsageError(error instanceof Error ? error.message : String(error));
  }
  const { values, positionals } = parsed;
  if (values.help === true) return { kind: 'help' };
  const [command, id, ...rest] = positionals;
  const tenant = values.tenant ?? null;
  if (tenant !== null && !TENANT_PATTERN.test(tenant)) {
    throw new UsageError('--tenant must be 1-64 characters of a-z 0-9 _ -');
  }
  const json = values.json === true;
  for (const option of ['status', 'limit', 'cursor', 'older-than', 'tenant'] as const) {
    if (values[option] !== undefined && !(OPTIONS_OF[command ?? '']?.includes(option) ?? false)) {
      throw new UsageError(`--${option} does not apply to ${command ?? 'no command'}`);
    }
  }
  if (command === 'list' || command === 'stats' || command === 'stuck') {
    if (id !== undefined) throw new UsageError(`unexpected argument ${[id, ...rest].join(' ')}`);
    if (command === 'stats') return { kind: 'stats', tenant, json };
    if (command === 'stuck') {
      const olderThan = values['older-than'] ?? '30s';
      if (!DURATION_PATTERN.test(olderThan)) {
        throw new UsageError(`--older-than must be a duration such as 500ms, 30s, 5m or 1h`);
      }
      return { kind: 'stuck', olderThanMs: durationMs(olderThan), tenant, json };
    }
    const status = values.status;
    if (status === undefined || !(PAYMENT_STATES as readonly string[]).includes(status)) {
      throw new UsageError(`list needs --status, one of ${PAYMENT_STATES.join(', ')}`);
    }
    const limit = values.limit ?? '50';
    if (!/^[1-9][0-9]{0,3}$/.test(limit) || Number(limit) > 1000) {
      throw new UsageError('--limit must be a whole number from 1 to 1000');
    }
    return {
      kind: 'list',
      status: status as PaymentStatus,
      limit: Number(limit),
      cursor: values.cursor ?? null,
      tenant,
      json,
    };
  }
  if (command === 'store') {
    if (tenant !== null) throw new UsageError('store takes no --tenant');
    if (id !== undefined && id !== 'accept') throw new UsageError(`unknown store command ${id}`);
    if (rest.length > 0) throw new UsageError(`unexpected argument ${rest.join(' ')}`);
    return { kind: 'store', accept: id === 'accept', json: values.json === true };
  }
  if (command !== 'get' && command !== 'account' && command !== 'recover') {
    throw new UsageError(command === undefined ? 'no command given' : `unknown command ${command}`);
  }
  if (id === undefined) throw new UsageError(`${command} needs an argument`);
  if (rest.length > 0) throw new UsageError(`unexpected argument ${rest.join(' ')}`);
  if (command === 'account') {
    return { kind: 'account', accountId: parseAccountId(id), tenant, json };
  }
  return { kind: command, token: parseToken(id), tenant, json };
}

async function run(args: string[]): Promise<number> {
  const invocation = parseInvocation(args);
  if (invocation.kind === 'help') {
    console.log(USAGE);
    return EXIT.ok;
  }
  const config = loadConfig();
  const options: RedisOptions = {
    maxRetriesPerRequest: 0,
    connectTimeout: REDIS_TIMEOUT_MS,
    // Also bounds commands queued while a connection that never answers
    // waits for its ready check: without it they wait forever.
    commandTimeout: REDIS_TIMEOUT_MS,
    // A read-only CLI has nothing to flush: don't linger on a connection that never closes.
    disconnectTimeout: 100,
    retryStrategy: () => null,
  };
  const redis =
    config.redisClusterNodes === null
      ? new Redis(config.redisUrl, options)
      : connectCluster(config.redisClusterNodes, options, { maxRedirections: 4 });
  redis.on('error', () => undefined);
  const keys = createKeys(config.keyPrefix);
  try {
    if (
      invocation.kind === 'list' ||
      invocation.kind === 'stats' ||
      invocation.kind === 'stuck' ||
      invocation.kind === 'recover'
    ) {
      return await runIndexCommand(invocation, redis, keys, config);
    }
    if (invocation.kind === 'store') {
      if (invocation.accept) {
        const { id, created } = await acceptStore(redis, keys.store);
        console.log(
          created
            ? `The store had no identity: it now has ${id}, accepted.`
            : `Store ${id} accepted.`,
        );
        console.log('Services that refused requests with store_lost adopt it within a second.');
        return EXIT.ok;
      }
      const identity = await readStore(redis, keys.store);
      if (invocation.json) {
        console.log(JSON.stringify(identity, null, 2));
        return EXIT.ok;
      }
      const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());
      console.log(
        keyValueTable([
          ['id', identity.id],
          ['createdAt', iso(identity.createdAt)],
          ['acceptedAt', iso(identity.acceptedAt)],
        ]),
      );
      return identity.id === null ? EXIT.notFound : EXIT.ok;
    }
    if (invocation.kind === 'get') {
      const { token, tenant, json } = invocation;
      const record = await readPaymentRecord(redis, keys.state(tenantKey(tenant, token)), {
        defaultCurrency: config.defaultCurrency,
        captureWindowMs: config.paymentCaptureWindowMs,
      });
      if (record === null) {
        console.error(
          `No state stored for token ${token}${tenant === null ? '' : ` of tenant ${tenant}`}.`,
        );
        return EXIT.notFound;
      }
      // An operator sees the machine's own state (`capturing`, not `processing`).
      const view = { ...paymentView(record.snapshot, tenant), state: record.snapshot.value };
      if (json) {
        console.log(JSON.stringify({ ...view, version: record.version }, null, 2));
        return EXIT.ok;
      }
      const { token: _token, ...fields } = view;
      console.log(
        header('State:', [
          ['Service', 'PaymentProcessor'],
          ...(tenant === null ? [] : [['Tenant', tenant] as [string, string]]),
          ['Key', token],
        ]),
      );
      console.log(keyValueTable([...Object.entries(fields), ['version', record.version]]));
      return EXIT.ok;
    }
    const { accountId, tenant, json } = invocation;
    const view = accountView(
      await new Ledger(
        redis,
        keys,
        config.accountInitialBalanceCents,
        undefined,
        undefined,
        ledgerSettingsOf(config),
      ).view(tenantKey(tenant, accountId)),
      tenant,
    );
    if (json) {
      console.log(JSON.stringify(view, null, 2));
      return EXIT.ok;
    }
    console.log(
      header('Account:', [
        ...(tenant === null ? [] : [['Tenant', tenant] as [string, string]]),
        ['Account', accountId],
        ...Object.entries(view.balances).map(
          ([currency, b]) =>
            [currency, `${b.availableCents} available, ${b.heldCents} held (minor units)`] as [
              string,
              string,
            ],
        ),
      ]),
    );
    console.log(
      keyValueTable(
        view.ledger.map((e) => [
          e.operationId,
          {
            kind: e.kind,
            currency: e.currency,
            amountCents: e.amountCents,
            balanceCents: e.balanceCents,
            heldCents: e.heldCents,
            token: e.token,
            at: e.at,
          },
        ]),
      ),
    );
    return EXIT.ok;
  } finally {
    redis.disconnect();
  }
}

const iso = (ms: number) => new Date(ms).toISOString();

/** list, stats, stuck (reads of the state index) and recover (a locked command). */
async function runIndexCommand(
  invocation: Extract<Invocation, { kind: 'list' | 'stats' | 'stuck' | 'recover' }>,
  redis: Redis | Cluster,
  keys: Keys,
  config: Config,
): Promise<number> {
  const index = paymentIndex(redis as Redis, paymentRecordKeys(keys));
  const print = (json: unknown, text: string) => {
    console.log(invocation.json ? JSON.stringify(json, null, 2) : text);
  };
  switch (invocation.kind) {
    case 'list': {
      const { status, limit, cursor, tenant } = invocation;
      const page = await index.list({
        state: status,
        limit,
        cursor,
        ...(tenant === null ? {} : { partition: tenant }),
      });
      const payments = page.entries.map((e) => ({
        token: tenant === null ? e.key : (ownId(tenant, e.key) ?? e.key),
        status,
        updatedAt: iso(e.updatedAt),
      }));
      print(
        { status, payments, nextCursor: page.cursor },
        [
          table(
            ['TOKEN', 'STATUS', 'UPDATED'],
            payments.map((p) => [p.token, p.status, p.updatedAt]),
          ),
          ...(page.cursor === null ? [] : [`more: --cursor ${page.cursor}`]),
        ].join('\n'),
      );
      return EXIT.ok;
    }
    case 'stats': {
      const { unreadable = 0, ...counts } = await index.counts(invocation.tenant ?? undefined);
      const total = Object.values(counts).reduce((sum, n) => sum + n, 0);
      print(
        { counts, total, unreadable },
        table(
          ['STATUS', 'COUNT'],
          [...Object.entries(counts), ['total', total], ['(unreadable)', unreadable]],
        ),
      );
      return EXIT.ok;
    }
    case 'stuck': {
      const [seconds, micros] = await redis.time();
      const now = Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
      const { tenant } = invocation;
      const stuck = await index.stuck(now - invocation.olderThanMs, 100, tenant ?? undefined);
      const payments = await Promise.all(
        stuck.map(async ({ key, owedSince, reason }) => ({
          token: tenant === null ? key : (ownId(tenant, key) ?? key),
          status:
            reason === 'unreadable'
              ? null
              : ((await readPaymentRecord(redis, keys.state(key)).catch(() => null))?.snapshot
                  .value ?? null),
          reason,
          owedSince: iso(owedSince),
        })),
      );
      print(
        { olderThanMs: invocation.olderThanMs, payments },
        table(
          ['TOKEN', 'STATUS', 'REASON', 'SINCE'],
          payments.map((p) => [
            p.token,
            p.status ?? (p.reason === 'unreadable' ? '(unreadable)' : '(gone)'),
            p.reason,
            p.owedSince,
          ]),
        ),
      );
      return EXIT.ok;
    }
    case 'recover': {
      const { token: id, tenant } = invocation;
      const token = tenantKey(tenant, id);
      if ((await redis.exists(keys.state(token))) === 0) {
        console.error(`No state stored for token ${id}.`);
        return EXIT.notFound;
      }
      const engine = await createEngine({
        redisUrl: config.redisUrl,
        clusterNodes: config.redisClusterNodes,
        prefix: config.keyPrefix,
        lockTtlMs: config.lockTtlMs,
        lockWaitMs: config.lockWaitMs,
        storeCheckIntervalMs: 0,
      });
      try {
        const payments = new Payments(engine, {
          ledger: new Ledger(
            engine.redis,
            keys,
            config.accountInitialBalanceCents,
            engine.identity,
            undefined,
            ledgerSettingsOf(config),
          ),
          keys: paymentRecordKeys(keys),
          paymentExpiryMs: config.paymentExpiryMs,
          captureWindowMs: config.paymentCaptureWindowMs,
          refundLimit: config.paymentRefundLimit,
          defaultCurrency: config.defaultCurrency,
          expiredRetentionMs: config.expiredRetentionMs,
        });
        await payments.recover(token);
        const snapshot = await payments.get(token);
        if (snapshot === null) {
          console.error(`No state stored for token ${id}.`);
          return EXIT.notFound;
        }
        const view = paymentView(snapshot, tenant);
        print(view, keyValueTable(Object.entries(view)));
        return EXIT.ok;
      } finally {
        await engine.close();
      }
    }
  }
}

/** The exit status and message for a failure. */
function failure(error: unknown): { code: number; message: string } {
  if (error instanceof UsageError)
    return { code: EXIT.usage, message: `${error.message}\n${USAGE}` };
  if (error instanceof ConfigError) return { code: EXIT.usage, message: error.message };
  const known = toAppError(error);
  if (known instanceof ValidationError) return { code: EXIT.usage, message: known.message };
  if (known.code === 'unavailable') {
    return {
      code: EXIT.unavailable,
      message: 'Cannot reach Redis: check REDIS_URL and that Redis is running.',
    };
  }
  return { code: EXIT.failed, message: error instanceof Error ? error.message : String(error) };
}

/**
 * A reader that closed its end (`paystate get X | head -1`) has what it
 * wanted: end quietly with status 0, as a Unix filter does, instead of
 * dying of the EPIPE every later write fails with. A message for a closed
 * stderr is dropped; the exit status still tells.
 */
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code === 'EPIPE') process.exit(EXIT.ok);
  throw error;
});
process.stderr.on('error', () => undefined);

run(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    const { code, message } = failure(error);
    console.error(message);
    process.exitCode = code;
  },
);
