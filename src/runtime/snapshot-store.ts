import type { Redis, Result } from 'ioredis';
import { StaleWriteError, StoredDataError, StoreLostError, toAppError } from '../errors.ts';
import { fromStored, toStored, type PaymentSnapshot } from '../machine/payment.snapshot.ts';
import type { Keys } from './keys.ts';
import type { RedisClock } from './redis-clock.ts';
import { storeGuard, type StoreIdentity } from './store-identity.ts';

/**
 * Snapshots in Redis, one hash per token. Every write is a compare-and-set on
 * (version, lifeId) in Lua: a process whose lock lease ran out, or that still
 * holds a snapshot from a life of the token already forgotten, cannot
 * overwrite newer state.
 */

export interface StoredRecord {
  readonly version: number;
  readonly lifeId: string;
  readonly snapshot: PaymentSnapshot;
  /** Set by a write whose effects had not all run yet; cleared once they did. */
  readonly owed: boolean;
}

/** What a write expects to find: `null` for a token with no record yet. */
export type Expected = Pick<StoredRecord, 'version' | 'lifeId'> | null;

// KEYS: state hash, outbox, store identity. ARGV: expected version, expected
// lifeId, new lifeId, machine version, snapshot JSON, removeAt (epoch ms, or
// '' for none), owed ('1' when effects of this write are still to run),
// token, store id. Returns the new version, or -1 when the stored (version,
// lifeId) differ; fails with STORE_LOST when the store is not the one the
// process knows. An owed write puts the token in the outbox in the same
// step, scored by Redis's clock, so no crash can leave owed effects that the
// recovery sweep does not know about.
const SAVE_SCRIPT = `
${storeGuard(3, 9)}local cur = redis.call('HMGET', KEYS[1], 'v', 'l')
if (cur[1] or '0') ~= ARGV[1] or (cur[2] or '') ~= ARGV[2] then return -1 end
local nv = tonumber(cur[1] or '0') + 1
redis.call('HSET', KEYS[1], 'v', nv, 'l', ARGV[3], 'm', ARGV[4], 's', ARGV[5])
if ARGV[7] == '1' then
  redis.call('HSET', KEYS[1], 'o', '1')
  local t = redis.call('TIME')
  redis.call('ZADD', KEYS[2], 'NX', t[1] * 1000 + math.floor(t[2] / 1000), ARGV[8])
end
if ARGV[6] ~= '' then redis.call('PEXPIREAT', KEYS[1], ARGV[6]) end
return nv
`;

// KEYS: state hash, outbox. ARGV: the version this command wrote last ('' if
// none), token. Clears the owed flag and the outbox entry only if no other
// writer has written since: a command whose lease ran out must not clear what
// the new lock holder owes.
const CLEAR_SCRIPT = `
local v = redis.call('HGET', KEYS[1], 'v')
if (v or '') ~= ARGV[1] then return 0 end
redis.call('HDEL', KEYS[1], 'o')
redis.call('ZREM', KEYS[2], ARGV[2])
return 1
`;

// KEYS: state hash, the token's lock. The record's fields, then the lock's
// value (read behind a request for the lock, it shows whether the read ran
// while that lock was held), then Redis's TIME.
const LOAD_SCRIPT = `
local r = redis.call('HMGET', KEYS[1], 'v', 'l', 'm', 's', 'o')
r[6] = redis.call('GET', KEYS[2])
local t = redis.call('TIME')
r[7] = t[1]
r[8] = t[2]
return r
`;

// KEYS: state hash. The record's fields, then Redis's TIME.
const READ_SCRIPT = `
local r = redis.call('HMGET', KEYS[1], 'v', 'l', 'm', 's', 'o')
local t = redis.call('TIME')
r[6] = t[1]
r[7] = t[2]
return r
`;

declare module 'ioredis' {
  interface RedisCommander<Context> {
    paystateSave(
      stateKey: string,
      outboxKey: string,
      storeKey: string,
      expectedVersion: number,
      expectedLifeId: string,
      lifeId: string,
      machineVersion: number,
      snapshot: string,
      removeAt: number | '',
      owed: '1' | '',
      token: string,
      storeId: string,
    ): Result<number, Context>;
    paystateLoad(stateKey: string, lockKey: string): Result<(string | null)[], Context>;
    paystateRead(stateKey: string): Result<(string | null)[], Context>;
    paystateClearOwed(
      stateKey: string,
      outboxKey: string,
      version: number | '',
      token: string,
    ): Result<0 | 1, Context>;
  }
}

export interface SnapshotStoreOptions {
  /** The store every write must find (required to write; a store without one only reads). */
  readonly identity?: StoreIdentity;
  /** Observes Redis's TIME returned by locked reads. */
  readonly clock?: RedisClock;
}

export class SnapshotStore {
  constructor(
    private readonly redis: Redis,
    private readonly keys: Keys,
    private readonly options: SnapshotStoreOptions = {},
  ) {
    redis.defineCommand('paystateSave', { numberOfKeys: 3, lua: SAVE_SCRIPT });
    redis.defineCommand('paystateClearOwed', { numberOfKeys: 2, lua: CLEAR_SCRIPT });
    redis.defineCommand('paystateLoad', { numberOfKeys: 2, lua: LOAD_SCRIPT });
    redis.defineCommand('paystateRead', { numberOfKeys: 1, lua: READ_SCRIPT });
  }

  /** The stored record, without Redis's time (the lock-free and read-only paths). */
  async load(token: string): Promise<StoredRecord | null> {
    let fields: (string | null)[];
    try {
      fields = await this.redis.hmget(this.keys.state(token), 'v', 'l', 'm', 's', 'o');
    } catch (error) {
      throw toAppError(error);
    }
    return this.parse(token, fields);
  }

  /** The stored record, read with Redis's time (which the clock observes). */
  async loadTimed(token: string): Promise<StoredRecord | null> {
    let fields: (string | null)[];
    try {
      fields = await this.redis.paystateRead(this.keys.state(token));
    } catch (error) {
      throw toAppError(error);
    }
    this.options.clock?.observe([fields[5] ?? '', fields[6] ?? '']);
    return this.parse(token, fields);
  }

  /** The record and, read at the same moment, the value of the token's lock (`null` if free). */
  async loadWithLockValue(
    token: string,
  ): Promise<{ record: StoredRecord | null; lockValue: string | null }> {
    let fields: (string | null)[];
    try {
      fields = await this.redis.paystateLoad(this.keys.state(token), this.keys.lock(token));
    } catch (error) {
      throw toAppError(error);
    }
    this.options.clock?.observe([fields[6] ?? '', fields[7] ?? '']);
    return { record: this.parse(token, fields), lockValue: fields[5] ?? null };
  }

  private parse(token: string, fields: (string | null)[]): StoredRecord | null {
    const [version, lifeId, machineVersion, json, owed] = fields;
    if (version == null || lifeId == null || machineVersion == null || json == null) return null;
    try {
      const snapshot = fromStored({
        machineVersion: Number(machineVersion),
        snapshot: JSON.parse(json) as unknown,
      });
      return { version: Number(version), lifeId, snapshot, owed: owed === '1' };
    } catch (error) {
      throw new StoredDataError(`stored state of token ${token} cannot be read`, { cause: error });
    }
  }

  /**
   * Writes `snapshot` if the stored record is still `expected`; returns the
   * new record. `removeAt` makes Redis delete the record at that time;
   * `owed` marks the record as having effects still to run and puts the
   * token in the outbox (see clearOwed).
   */
  async save(
    token: string,
    expected: Expected,
    snapshot: PaymentSnapshot,
    options: { removeAt: number | null; owed: boolean },
  ): Promise<StoredRecord> {
    const { identity } = this.options;
    if (identity === undefined) throw new Error('this snapshot store only reads');
    const stored = toStored(snapshot);
    let version: number;
    try {
      version = await this.redis.paystateSave(
        this.keys.state(token),
        this.keys.outbox,
        identity.key,
        expected?.version ?? 0,
        expected?.lifeId ?? '',
        snapshot.context.lifeId,
        stored.machineVersion,
        JSON.stringify(stored.snapshot),
        options.removeAt ?? '',
        options.owed ? '1' : '',
        token,
        identity.id,
      );
    } catch (error) {
      const appError = toAppError(error);
      if (appError instanceof StoreLostError) identity.noteLost();
      throw appError;
    }
    if (version < 0) throw new StaleWriteError(token);
    return { version, lifeId: snapshot.context.lifeId, snapshot, owed: options.owed };
  }

  /** Puts `token` in the outbox the recovery sweep reads, before owed effects run again. */
  async markOwed(token: string, at: number): Promise<void> {
    try {
      await this.redis.zadd(this.keys.outbox, 'NX', at, token);
    } catch (error) {
      throw toAppError(error);
    }
  }

  /**
   * Every owed effect ran: clear the record's flag and take the token out of
   * the outbox, unless another writer wrote after `version` (the version this
   * command read or wrote last; `null` for a token with no record).
   */
  async clearOwed(token: string, version: number | null): Promise<void> {
    try {
      await this.redis.paystateClearOwed(
        this.keys.state(token),
        this.keys.outbox,
        version ?? '',
        token,
      );
    } catch (error) {
      throw toAppError(error);
    }
  }

  /** Tokens marked before `before` whose effects may not have completed. */
  async listOwed(before: number, limit: number): Promise<string[]> {
    try {
      return await this.redis.zrangebyscore(this.keys.outbox, '-inf', before, 'LIMIT', 0, limit);
    } catch (error) {
      throw toAppError(error);
    }
  }
}
