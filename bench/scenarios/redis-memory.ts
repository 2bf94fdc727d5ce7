/**
 * Redis memory per live token: INFO used_memory before and after paying N
 * new tokens (each `processed`, with its expiry timer pending), and where the
 * bytes go, from MEMORY USAGE of every key by kind.
 */
import { failOnViolations, finish, type BenchContext } from '../bench-context.ts';
import { startDeployment } from '../deployment.ts';
import { countOf, runLoad } from '../http-load.ts';
import { auditOutbox, InvariantReport } from '../invariants.ts';
import { accountIds, payment, tokenPrefix } from '../requests.ts';

export interface MemoryShare {
  readonly kind: string;
  readonly keys: number;
  readonly bytes: number;
  readonly bytesPerToken: number;
}

export interface RedisMemoryResult {
  readonly tokens: number;
  readonly accounts: number;
  readonly usedMemoryBefore: number;
  readonly usedMemoryAfter: number;
  /** (after − before) / tokens: the headline figure. */
  readonly bytesPerToken: number;
  /** MEMORY USAGE of every key of the prefix, by kind, over all tokens stored. */
  readonly breakdown: readonly MemoryShare[];
  /** Mean length of a stored snapshot's JSON. */
  readonly snapshotJsonBytes: number;
  /** The Redis settings that shape the figure (absent in results from before it was recorded). */
  readonly redisSettings?: string;
}

/** Redis as the service starts it, or with Redis's own defaults for the settings that matter here. */
export type RedisMemorySettings = 'paystate' | 'redis-defaults';

/** Redis's default, which paystate raises (REDIS_MEMORY_SETTINGS). */
const REDIS_DEFAULT_HASH_MAX_LISTPACK_VALUE = '64';

const ACCOUNTS = 100;
const WARMUP_TOKENS = 100;

export async function runRedisMemory(
  context: BenchContext,
  redisSettings: RedisMemorySettings,
): Promise<RedisMemoryResult> {
  const { settings } = context;
  const id = `redis-memory/${redisSettings}`;
  context.log(`${id}: starting`);
  const deployment = await startDeployment({ appendfsync: 'everysec', apiProcesses: 1 });
  try {
    const { redis, keys, prefix: keyPrefix } = deployment;
    // Encodings are chosen as hashes are written: set before the first one.
    if (redisSettings === 'redis-defaults') {
      await redis.client.config(
        'SET',
        'hash-max-listpack-value',
        REDIS_DEFAULT_HASH_MAX_LISTPACK_VALUE,
      );
    }
    const [, listpackValue] = (await redis.client.config('GET', 'hash-max-listpack-value')) as [
      string,
      string,
    ];
    const accounts = accountIds('account', ACCOUNTS);
    const prefix = tokenPrefix('memory');
    let sent = 0;
    const next = () => {
      const i = sent++;
      return payment(`${prefix}-${i}`, accounts[i % ACCOUNTS] ?? 'account');
    };
    // Accounts, the queue's own keys and the scripts exist before the first measurement.
    const warmup = await runLoad({
      urls: deployment.urls,
      connections: settings.connections,
      amount: WARMUP_TOKENS,
      next,
    });
    const invariants = new InvariantReport();
    await auditOutbox(deployment, invariants);
    const before = Number((await redis.info('memory')).used_memory);
    const load = await runLoad({
      urls: deployment.urls,
      connections: settings.connections,
      amount: settings.memoryTokens,
      next,
    });
    await auditOutbox(deployment, invariants);
    const after = Number((await redis.info('memory')).used_memory);
    const measured = countOf(load, 201);
    const stored = countOf(warmup, 201) + measured;
    failOnViolations(context, id, invariants.toJSON());

    const kindOf = (key: string): string => {
      if (key === keys.outbox) return 'outbox';
      if (key === keys.timerDues) return 'timer dues (earliest due time per token with a timer)';
      if (key === keys.unreadable) return 'unreadable records';
      if (key === keys.indexRemovals || key.startsWith(keys.stateIndex(''))) {
        return 'state index (a sorted set per state, removal deadlines)';
      }
      if (key.startsWith(`${keys.partitions}:`))
        return "tenants' index (sets per tenant and state)";
      if (key.includes(':{account:')) return 'accounts (balance, operation ids, ledger entries)';
      if (key.endsWith('}:state')) return 'token state hash';
      if (key.endsWith('}:lock')) return 'token lock';
      const queue = `${keys.queuePrefix}:`;
      if (key.startsWith(queue)) {
        const rest = key.slice(queue.length).split(':');
        // A job's hash is `{queue}:{job id}`: timer ids start `t/` (the
        // engine's), or `expire.` (the release before it).
        const job = rest[1] ?? '';
        return rest.length === 2 && (job.startsWith('t/') || job.startsWith('expire.'))
          ? 'expiry job hash'
          : `expiry queue ${rest.slice(1).join(':')}`;
      }
      return 'other';
    };
    const shares = new Map<string, { keys: number; bytes: number }>();
    let cursor = '0';
    do {
      const [nextCursor, found] = await redis.client.scan(
        cursor,
        'MATCH',
        `${keyPrefix}:*`,
        'COUNT',
        1000,
      );
      cursor = nextCursor;
      const pipeline = redis.client.pipeline();
      for (const key of found) pipeline.memory('USAGE', key, 'SAMPLES', 0);
      const sizes = (await pipeline.exec()) ?? [];
      found.forEach((key, i) => {
        const bytes = Number(sizes[i]?.[1] ?? 0);
        const kind = kindOf(key);
        const share = shares.get(kind) ?? { keys: 0, bytes: 0 };
        share.keys++;
        share.bytes += bytes;
        shares.set(kind, share);
      });
    } while (cursor !== '0');

    const sample = Array.from({ length: Math.min(200, sent) }, (_, i) =>
      keys.state(`${prefix}-${i}`),
    );
    const lengths = await Promise.all(sample.map((key) => redis.client.hstrlen(key, 's')));
    return {
      tokens: measured,
      accounts: ACCOUNTS,
      usedMemoryBefore: before,
      usedMemoryAfter: after,
      bytesPerToken: measured > 0 ? (after - before) / measured : 0,
      breakdown: [...shares.entries()]
        .map(([kind, share]) => ({
          kind,
          keys: share.keys,
          bytes: share.bytes,
          bytesPerToken: stored > 0 ? share.bytes / stored : 0,
        }))
        .sort((a, b) => b.bytes - a.bytes),
      snapshotJsonBytes: lengths.reduce((a, b) => a + b, 0) / Math.max(1, lengths.length),
      redisSettings: `hash-max-listpack-value ${listpackValue} (${redisSettings === 'paystate' ? 'as paystate starts Redis' : 'Redis’s default'})`,
    };
  } finally {
    await finish(context, id, deployment);
  }
}
