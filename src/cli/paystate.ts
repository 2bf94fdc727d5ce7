/**
 * Operator commands, reading straight from Redis:
 *   paystate get <token>      a token's state, as `restate kv get PaymentProcessor <token>` shows it
 *   paystate account <id>     an account's balance and ledger
 * Add --json for machine-readable output.
 */
import { Redis } from 'ioredis';
import { Ledger } from '../accounts/ledger.ts';
import { ConfigError, loadConfig } from '../config.ts';
import { AppError } from '../errors.ts';
import { accountView, paymentView } from '../http/views.ts';
import { parseAccountId, parseToken } from '../http/schemas.ts';
import { createKeys } from '../runtime/keys.ts';
import { SnapshotStore } from '../runtime/snapshot-store.ts';
import { header, keyValueTable } from './format.ts';

const USAGE = `usage:
  paystate get <token> [--json]      show a payment token's state
  paystate account <id> [--json]     show an account's balance and ledger

Reads REDIS_URL (default redis://127.0.0.1:6379) and REDIS_KEY_PREFIX (default paystate).`;

async function run(args: string[]): Promise<number> {
  const json = args.includes('--json');
  const [command, id, ...rest] = args.filter((a) => a !== '--json');
  if (
    command === undefined ||
    id === undefined ||
    rest.length > 0 ||
    !['get', 'account'].includes(command)
  ) {
    console.error(USAGE);
    return 2;
  }
  const config = loadConfig();
  const redis = new Redis(config.redisUrl, {
    maxRetriesPerRequest: 0,
    connectTimeout: 2_000,
    retryStrategy: () => null,
  });
  redis.on('error', () => undefined);
  const keys = createKeys(config.keyPrefix);
  try {
    if (command === 'get') {
      const token = parseToken(id);
      const record = await new SnapshotStore(redis, keys).load(token);
      if (record === null) {
        console.error(`No state stored for token ${token}.`);
        return 1;
      }
      const view = paymentView(record.snapshot);
      if (json) {
        console.log(JSON.stringify({ ...view, version: record.version }, null, 2));
        return 0;
      }
      const { token: _token, ...fields } = view;
      console.log(
        header('State:', [
          ['Service', 'PaymentProcessor'],
          ['Key', token],
        ]),
      );
      console.log(keyValueTable([...Object.entries(fields), ['version', record.version]]));
      return 0;
    }
    const accountId = parseAccountId(id);
    const view = accountView(
      await new Ledger(redis, keys, config.accountInitialBalanceCents).view(accountId),
    );
    if (json) {
      console.log(JSON.stringify(view, null, 2));
      return 0;
    }
    console.log(
      header('Account:', [
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
    return 0;
  } finally {
    redis.disconnect();
  }
}

run(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    if (error instanceof ConfigError) {
      console.error(error.message);
    } else if (error instanceof AppError) {
      console.error(
        error.code === 'unavailable'
          ? 'Cannot reach Redis: check REDIS_URL and that Redis is running.'
          : error.message,
      );
    } else {
      console.error(error instanceof Error ? error.message : String(error));
    }
    process.exitCode = 1;
  },
);
