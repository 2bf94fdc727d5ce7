/**
 * Operator commands, reading straight from Redis:
 *   paystate get <token>      a token's state, as `restate kv get PaymentProcessor <token>` shows it
 *   paystate account <id>     an account's balance and ledger
 *   paystate store [accept]   the store's identity; accept a store that was emptied or replaced
 * Add --json for machine-readable output, --tenant <name> for a tenant's token
 * or account (with PAYSTATE_API_KEYS). Exit statuses are in USAGE.
 */
import { parseArgs } from 'node:util';
import { Redis, type RedisOptions } from 'ioredis';
import { connectCluster } from '../engine/redis/cluster.ts';
import { Ledger } from '../accounts/ledger.ts';
import { ConfigError, loadConfig } from '../config.ts';
import { AppError, ValidationError, isRedisUnavailable } from '../errors.ts';
import { accountView, paymentView } from '../http/views.ts';
import { parseAccountId, parseToken } from '../http/schemas.ts';
import { createKeys } from '../runtime/keys.ts';
import { readPaymentRecord } from '../payments/payment.snapshot.ts';
import { acceptStore, readStore } from '../runtime/store-identity.ts';
import { TENANT_PATTERN, tenantKey, type Tenant } from '../tenants.ts';
import { header, keyValueTable } from './format.ts';

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
  paystate --help                    show this help

Reads REDIS_URL (default redis://127.0.0.1:6379), or REDIS_CLUSTER_NODES (host:port,... of a
Redis Cluster; REDIS_URL is then ignored), and REDIS_KEY_PREFIX (default paystate).
With API keys configured, tokens and accounts are per tenant: --tenant names whose
(without it, the token or account of local mode, which no tenant sees).

exit status:
  0  found (an account is always found: it starts at the initial balance)
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
  | { readonly kind: 'store'; readonly accept: boolean; readonly json: boolean };

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
  if (command === 'store') {
    if (tenant !== null) throw new UsageError('store takes no --tenant');
    if (id !== undefined && id !== 'accept') throw new UsageError(`unknown store command ${id}`);
    if (rest.length > 0) throw new UsageError(`unexpected argument ${rest.join(' ')}`);
    return { kind: 'store', accept: id === 'accept', json: values.json === true };
  }
  if (command !== 'get' && command !== 'account') {
    throw new UsageError(command === undefined ? 'no command given' : `unknown command ${command}`);
  }
  if (id === undefined) throw new UsageError(`${command} needs an argument`);
  if (rest.length > 0) throw new UsageError(`unexpected argument ${rest.join(' ')}`);
  const json = values.json === true;
  return command === 'get'
    ? { kind: 'get', token: parseToken(id), tenant, json }
    : { kind: 'account', accountId: parseAccountId(id), tenant, json };
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
      const record = await readPaymentRecord(redis, keys.state(tenantKey(tenant, token)));
      if (record === null) {
        console.error(
          `No state stored for token ${token}${tenant === null ? '' : ` of tenant ${tenant}`}.`,
        );
        return EXIT.notFound;
      }
      const view = paymentView(record.snapshot, tenant);
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
      await new Ledger(redis, keys, config.accountInitialBalanceCents).view(
        tenantKey(tenant, accountId),
      ),
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
        ['Balance', `${view.balanceCents} cents`],
      ]),
    );
    console.log(
      keyValueTable(
        view.ledger.map((e) => [
          e.operationId,
          {
            kind: e.kind,
            amountCents: e.amountCents,
            balanceCents: e.balanceCents,
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

/** The exit status and message for a failure. */
function failure(error: unknown): { code: number; message: string } {
  if (error instanceof UsageError)
    return { code: EXIT.usage, message: `${error.message}\n${USAGE}` };
  if (error instanceof ValidationError || error instanceof ConfigError) {
    return { code: EXIT.usage, message: error.message };
  }
  if ((error instanceof AppError && error.code === 'unavailable') || isRedisUnavailable(error)) {
    return {
      code: EXIT.unavailable,
      message: 'Cannot reach Redis: check REDIS_URL and that Redis is running.',
    };
  }
  return { code: EXIT.failed, message: error instanceof Error ? error.message : String(error) };
}

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
