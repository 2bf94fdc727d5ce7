import type { Redis, Result } from 'ioredis';
import { StaleWriteError, StoredDataError, StoreLostError, toAppError } from '../../errors.ts';
import { besideKey, clusterOf, everySlot, perSlot, slotCopyKey } from './cluster.ts';
import {
  partitionIndexKey,
  partitionOf,
  partitionOutboxKey,
  partitionSetKey,
  type Partitioning,
} from './partitions.ts';
import type { LockRequest } from './key-lock.ts';
import type { RedisClock } from './redis-clock.ts';
import type { ReplicaWait } from './replica-wait.ts';
import { storeGuard, type StoreIdentity } from './store-identity.ts';

/**
 * One hash per key of a durable machine:
 *
 * | field | holds |
 * |---|---|
 * | `v` | version, +1 on every write (the compare-and-set fence) |
 * | `l` | life id: new when the key gets a record, so a timer of an earlier life is told apart |
 * | `n` | machine name |
 * | `m` | machine version (the format of `s`) |
 * | `s` | the machine's persisted snapshot, JSON |
 * | `o` | owed actions (effects, timers) of the last write, JSON; absent once they ran |
 * | `t` | live timers: timer id → { seq, dueAt, event }, JSON; absent when none |
 * | `i` | the state the key is indexed under (see state-index.ts) |
 *
 * The owed actions are written by the same script as the snapshot, and the
 * key enters the outbox in that script too: no crash can leave a snapshot
 * whose actions are lost, and the next access or the recovery sweep runs
 * exactly what was stored.
 *
 * The same script keeps the key in the machine's timer dues (`MachineKeys.timers`,
 * scored by its earliest live timer's due time), so the worker's sweep finds a
 * due timer whose job is gone without reading every record. A record that
 * cannot be read is put in `MachineKeys.unreadable` by whoever finds it and
 * left as it is for an operator.
 */

/** An effect to run, or a timer to arm, recorded by the write that decided it. */
export type OwedAction =
  | { readonly kind: 'effect'; readonly type: string; readonly params: unknown }
  | {
      readonly kind: 'timer';
      readonly id: string;
      readonly seq: number;
      readonly dueAt: number;
      readonly event: { readonly type: string };
    };

export interface TimerEntry {
  /** The version of the write that armed it: a re-armed timer gets a new one. */
  readonly seq: number;
  /** Epoch ms on Redis's clock. */
  readonly dueAt: number;
  /** The event it delivers (what its job carries): the sweep re-arms a lost job from it. */
  readonly event?: { readonly type: string };
}

export type Timers = Readonly<Record<string, TimerEntry>>;

export interface StoredRecord {
  readonly version: number;
  readonly lifeId: string;
  readonly machine: string;
  readonly machineVersion: number;
  /** The persisted snapshot as stored (migrated and resolved by the caller). */
  readonly snapshot: unknown;
  readonly owed: readonly OwedAction[];
  readonly timers: Timers;
  /**
   * Set for a record an earlier store format wrote (no machine name: a
   * release before this engine), whose `o` field is that format's own; its
   * owed actions and timers are read by the machine's `adoptLegacy`.
   */
  readonly legacy: { readonly owed: string | null } | null;
}

/** What a write expects to find: `null` for a key with no record yet. */
export type Expected = { readonly version: number; readonly lifeId: string } | null;

export interface MachineKeys {
  readonly record: (key: string) => string;
  readonly lock: (key: string) => string;
  /**
   * Sorted set of keys whose owed actions may not have run, scored by Redis's
   * time. On a Cluster, one per slot: `${outbox}:{tag}` (see cluster.ts).
   */
  readonly outbox: string;
  /** Sorted set of the keys in `state`, scored by Redis's time of their last write. */
  readonly index: (state: string) => string;
  /** Sorted set of `state\nkey` scored by the record's removal deadline (see state-index.ts). */
  readonly removals: string;
  /**
   * Sorted set of the keys with live timers, scored by the earliest due time
   * (Redis's clock); kept by the save script. On a Cluster, one per slot.
   */
  readonly timers: string;
  /**
   * Sorted set of the keys whose record could not be read, scored by when
   * that was first seen (Redis's clock). On a Cluster, one per slot.
   */
  readonly unreadable: string;
  /**
   * Base of the keys of a machine whose keys are partitioned (partitions.ts):
   * `${partitions}:PARTITION:index:STATE`, `${partitions}:PARTITION:outbox`.
   */
  readonly partitions?: string;
}

/**
 * Key layout of one machine. A key's hash and lock share the hash tag
 * `{key}`, so they live in one cluster slot and one script touches both.
 */
export function machineKeys(prefix: string, name: string): MachineKeys {
  return {
    record: (key) => `${prefix}:${name}:{${key}}`,
    lock: (key) => `${prefix}:${name}:{${key}}:lock`,
    outbox: `${prefix}:${name}:outbox`,
    index: (state) => `${prefix}:${name}:index:${state}`,
    removals: `${prefix}:${name}:index-removals`,
    timers: `${prefix}:${name}:timer-dues`,
    unreadable: `${prefix}:${name}:unreadable`,
    partitions: `${prefix}:${name}:partition`,
  };
}

const FIELDS = "'v', 'l', 'n', 'm', 's', 'o', 't'";

// KEYS: record, outbox, store identity. ARGV: expected version, expected life
// id, life id, machine name, machine version, snapshot JSON, owed JSON ('' for
// none), timers JSON ('' for none), retention ms ('' unless the snapshot is
// final), key, store id. State index (see state-index.ts): KEYS the new
// state's set, the previous state's set, removals; ARGV the new state.
// Partition (partitions.ts): KEYS the partition's set of the new state, of
// the previous state, the partition's outbox; ARGV '1' when the key has a
// partition (else those KEYS repeat the machine's and are not touched).
// Timer dues: KEYS the machine's, the partition's (the machine's again for
// none); ARGV the earliest due time of the live timers ('' for none).
// Returns { new version, TIME s, TIME us }, or { -1 } when the stored (version, life) differ; fails with STORE_LOST when the store
// is not the one the process knows. A final snapshot gets a removal deadline
// on Redis's clock, once (a later write keeps the first deadline).
const SAVE_SCRIPT = `
${storeGuard(3, 11)}local cur = redis.call('HMGET', KEYS[1], 'v', 'l')
if (cur[1] or '0') ~= ARGV[1] or (cur[2] or '') ~= ARGV[2] then return { -1 } end
local was = redis.call('HGET', KEYS[1], 'i') -- state index
local nv = tonumber(cur[1] or '0') + 1
local part = ARGV[13] == '1'
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
redis.call('HSET', KEYS[1], 'v', nv, 'l', ARGV[3], 'n', ARGV[4], 'm', ARGV[5], 's', ARGV[6])
if ARGV[7] ~= '' then
  redis.call('HSET', KEYS[1], 'o', ARGV[7])
  redis.call('ZADD', KEYS[2], 'NX', string.format('%d', now), ARGV[10])
  if part then redis.call('ZADD', KEYS[9], 'NX', string.format('%d', now), ARGV[10]) end
elseif redis.call('HDEL', KEYS[1], 'o') == 1 then
  redis.call('ZREM', KEYS[2], ARGV[10])
  if part then redis.call('ZREM', KEYS[9], ARGV[10]) end
end
if ARGV[8] ~= '' then redis.call('HSET', KEYS[1], 't', ARGV[8]) else redis.call('HDEL', KEYS[1], 't') end
if ARGV[14] ~= '' then
  redis.call('ZADD', KEYS[10], ARGV[14], ARGV[10])
  if part then redis.call('ZADD', KEYS[11], ARGV[14], ARGV[10]) end
elseif redis.call('ZREM', KEYS[10], ARGV[10]) == 1 and part then
  redis.call('ZREM', KEYS[11], ARGV[10])
end
-- state index: begin
if was and was ~= ARGV[12] then
  redis.call('ZREM', KEYS[5], ARGV[10])
  if part then redis.call('ZREM', KEYS[8], ARGV[10]) end
end
redis.call('ZADD', KEYS[4], string.format('%d', now), ARGV[10])
if part then redis.call('ZADD', KEYS[7], string.format('%d', now), ARGV[10]) end
if was ~= ARGV[12] then redis.call('HSET', KEYS[1], 'i', ARGV[12]) end
-- state index: end
if ARGV[9] ~= '' and redis.call('PTTL', KEYS[1]) < 0 then
  redis.call('PEXPIREAT', KEYS[1], string.format('%d', now + tonumber(ARGV[9])))
  redis.call('ZADD', KEYS[6], string.format('%d', now + tonumber(ARGV[9])), ARGV[12] .. '\\n' .. ARGV[10]) -- state index
end
return { nv, t[1], t[2] }
`;

// KEYS: record, outbox, the key's partition's outbox (the outbox again for
// none). ARGV: the version whose owed actions ran, key. Clears them only if
// nobody wrote since: a writer whose lease ran out must not clear what the
// new lock holder owes.
const CLEAR_SCRIPT = `
if (redis.call('HGET', KEYS[1], 'v') or '') ~= ARGV[1] then return 0 end
redis.call('HDEL', KEYS[1], 'o')
redis.call('ZREM', KEYS[2], ARGV[2])
if KEYS[3] ~= KEYS[2] then redis.call('ZREM', KEYS[3], ARGV[2]) end
return 1
`;

// KEYS: record, outbox, the key's partition's outbox (the outbox again for
// none). ARGV: key. Takes the key out of the outboxes when its record owes
// nothing (or is gone): an entry left by a record that expired or was
// cleared by another process.
const SETTLE_SCRIPT = `
if redis.call('HEXISTS', KEYS[1], 'o') == 1 then return 0 end
if KEYS[3] ~= KEYS[2] then redis.call('ZREM', KEYS[3], ARGV[1]) end
return redis.call('ZREM', KEYS[2], ARGV[1])
`;

// KEYS: record, the timer dues, the key's partition's (the dues again for
// none). ARGV: key. Takes the key out of the dues when its record has no
// live timers (or is gone): an entry left by a record deleted by other means.
const SETTLE_TIMERS_SCRIPT = `
if redis.call('HEXISTS', KEYS[1], 't') == 1 then return 0 end
if KEYS[3] ~= KEYS[2] then redis.call('ZREM', KEYS[3], ARGV[1]) end
return redis.call('ZREM', KEYS[2], ARGV[1])
`;

// KEYS: record, the unreadable set, the key's partition's (the set again for
// none). ARGV: key, '1' to add (when the record is there), '' to remove.
const UNREADABLE_SCRIPT = `
if ARGV[2] == '1' then
  if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
  local t = redis.call('TIME')
  local now = string.format('%d', t[1] * 1000 + math.floor(t[2] / 1000))
  if KEYS[3] ~= KEYS[2] then redis.call('ZADD', KEYS[3], 'NX', now, ARGV[1]) end
  return redis.call('ZADD', KEYS[2], 'NX', now, ARGV[1])
end
if KEYS[3] ~= KEYS[2] then redis.call('ZREM', KEYS[3], ARGV[1]) end
return redis.call('ZREM', KEYS[2], ARGV[1])
`;

// KEYS: record, the key's lock. ARGV: the lock's value, its lease (ms).
// Takes the lock as Redlock does (SET NX PX) and, only then, reads the
// record's fields and Redis's TIME: what is read is read under the lock.
// Nil: another holds the lock.
const LOCK_AND_LOAD_SCRIPT = `
if not redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then return false end
local r = redis.call('HMGET', KEYS[1], ${FIELDS})
local t = redis.call('TIME')
r[8] = t[1]
r[9] = t[2]
return r
`;

declare module 'ioredis' {
  interface RedisCommander<Context> {
    engineSave(
      recordKey: string,
      outboxKey: string,
      storeKey: string,
      // state index
      stateKey: string,
      previousStateKey: string,
      removalsKey: string,
      // partition
      partitionStateKey: string,
      partitionPreviousStateKey: string,
      partitionOutboxKey: string,
      // timer dues
      duesKey: string,
      partitionDuesKey: string,
      expectedVersion: number,
      expectedLifeId: string,
      lifeId: string,
      machine: string,
      machineVersion: number,
      snapshot: string,
      owed: string,
      timers: string,
      retentionMs: number | '',
      key: string,
      storeId: string,
      state: string, // state index
      partitioned: '1' | '', // partition
      earliestDue: number | '', // timer dues
    ): Result<(number | string)[], Context>;
    engineSettleTimers(
      recordKey: string,
      duesKey: string,
      partitionDuesKey: string,
      key: string,
    ): Result<0 | 1, Context>;
    engineUnreadable(
      recordKey: string,
      setKey: string,
      partitionSetKey: string,
      key: string,
      add: '1' | '',
    ): Result<0 | 1, Context>;
    engineLockAndLoad(
      recordKey: string,
      lockKey: string,
      lockValue: string,
      ttlMs: number,
    ): Result<(string | null)[] | null, Context>;
    engineSettleOutbox(
      recordKey: string,
      outboxKey: string,
      partitionOutboxKey: string,
      key: string,
    ): Result<0 | 1, Context>;
    engineClearOwed(
      recordKey: string,
      outboxKey: string,
      partitionOutboxKey: string,
      version: number,
      key: string,
    ): Result<0 | 1, Context>;
  }
}

export interface SaveRequest {
  readonly expected: Expected;
  readonly lifeId: string;
  readonly machine: string;
  readonly machineVersion: number;
  readonly snapshot: unknown;
  readonly owed: readonly OwedAction[];
  readonly timers: Timers;
  /** Set for a final snapshot: the record is removed this long after (Redis's clock). */
  readonly retentionMs: number | null;
  /** The state the key is indexed under, and the one the expected record was (`null`: none). */
  readonly state: string;
  readonly previousState: string | null;
}

/** A record's fields as `lockAndLoad` read them. */
export type LoadedFields = readonly (string | null)[];

export class RecordStore {
  constructor(
    private readonly redis: Redis,
    private readonly keys: MachineKeys,
    private readonly identity: StoreIdentity,
    private readonly clock: RedisClock,
    private readonly replicas: Pick<ReplicaWait, 'confirm' | 'confirmStored'> = {
      confirm: () => Promise.resolve(),
      confirmStored: () => Promise.resolve(),
    },
    /** The partition of the machine's keys (partitions.ts); `null`: none. */
    private readonly partitioning: Partitioning | null = null,
  ) {
    redis.defineCommand('engineSave', { numberOfKeys: 11, lua: SAVE_SCRIPT });
    redis.defineCommand('engineSettleTimers', { numberOfKeys: 3, lua: SETTLE_TIMERS_SCRIPT });
    redis.defineCommand('engineUnreadable', { numberOfKeys: 3, lua: UNREADABLE_SCRIPT });
    redis.defineCommand('engineClearOwed', { numberOfKeys: 3, lua: CLEAR_SCRIPT });
    redis.defineCommand('engineLockAndLoad', { numberOfKeys: 2, lua: LOCK_AND_LOAD_SCRIPT });
    redis.defineCommand('engineSettleOutbox', { numberOfKeys: 3, lua: SETTLE_SCRIPT });
  }

  /** The stored record, read without the lock. */
  async load(key: string): Promise<StoredRecord | null> {
    let fields: (string | null)[];
    try {
      fields = await this.redis.hmget(this.keys.record(key), 'v', 'l', 'n', 'm', 's', 'o', 't');
    } catch (error) {
      throw toAppError(error);
    }
    return parse(key, fields);
  }

  /**
   * Takes the key's lock (`request`, see KeyLock) and reads the record's
   * fields in one atomic script; observes Redis's TIME. Nothing is read when
   * another holds the lock. Nothing here throws once the lock is taken: the
   * fields are made a record by `loaded`, in the lock holder's work.
   */
  async lockAndLoad(
    key: string,
    request: LockRequest,
  ): Promise<{ taken: false } | { taken: true; read: LoadedFields }> {
    let fields: (string | null)[] | null;
    try {
      fields = await this.redis.engineLockAndLoad(
        this.keys.record(key),
        request.resource,
        request.value,
        request.ttlMs,
      );
    } catch (error) {
      throw toAppError(error);
    }
    if (fields === null) return { taken: false };
    this.clock.observe([fields[7] ?? '', fields[8] ?? '']);
    return { taken: true, read: fields };
  }

  /** The record `lockAndLoad` read, once replicas hold what it owes (it is about to be run again). */
  async loaded(key: string, fields: LoadedFields): Promise<StoredRecord | null> {
    const record = parse(key, fields);
    if (record !== null && fields[5] != null) {
      await this.replicas.confirmStored(this.keys.record(key));
    }
    return record;
  }

  /** Writes if the stored record is still `expected`; returns the new version. */
  async save(key: string, request: SaveRequest): Promise<number> {
    const dues = Object.values(request.timers).map((timer) => timer.dueAt);
    const hasTimers = dues.length > 0;
    const partition = partitionOf(this.partitioning, key);
    const base = this.partitioning?.base ?? '';
    const partitionSet = (state: string) =>
      partition === null
        ? this.besideRecord(this.keys.index(state), key)
        : this.besideRecord(partitionIndexKey(base, partition, state), key);
    let reply: (number | string)[];
    try {
      reply = await this.redis.engineSave(
        this.keys.record(key),
        this.outboxOf(key),
        this.identity.keyFor(this.keys.record(key)),
        // state index
        this.besideRecord(this.keys.index(request.state), key),
        this.besideRecord(this.keys.index(request.previousState ?? request.state), key),
        this.besideRecord(this.keys.removals, key),
        // partition
        partitionSet(request.state),
        partitionSet(request.previousState ?? request.state),
        this.partitionOutboxOf(key),
        // timer dues
        this.besideRecord(this.keys.timers, key),
        this.partitionSetOf(key, 'timers'),
        request.expected?.version ?? 0,
        request.expected?.lifeId ?? '',
        request.lifeId,
        request.machine,
        request.machineVersion,
        JSON.stringify(request.snapshot),
        request.owed.length > 0 ? JSON.stringify(request.owed) : '',
        hasTimers ? JSON.stringify(request.timers) : '',
        request.retentionMs ?? '',
        key,
        this.identity.id,
        request.state, // state index
        partition === null ? '' : '1', // partition
        hasTimers ? Math.min(...dues) : '', // timer dues
      );
    } catch (error) {
      const appError = toAppError(error);
      if (appError instanceof StoreLostError) this.identity.noteLost();
      throw appError;
    }
    const [version, seconds, micros] = reply;
    if (Number(version) < 0) throw new StaleWriteError(key);
    this.clock.observe([seconds ?? '', micros ?? '']);
    // Before the effects it owes run, and before anyone is answered from it.
    await this.replicas.confirm(this.keys.record(key));
    return Number(version);
  }

  /** The outbox the key's record script uses: on a Cluster, the one in the record's slot. */
  private outboxOf(key: string): string {
    return this.besideRecord(this.keys.outbox, key);
  }

  /** The outbox of `key`'s partition in its record's slot; the machine's outbox for none. */
  private partitionOutboxOf(key: string): string {
    const partition = partitionOf(this.partitioning, key);
    return partition === null || this.partitioning === null
      ? this.outboxOf(key)
      : this.besideRecord(partitionOutboxKey(this.partitioning.base, partition), key);
  }

  /** `key`'s partition's timer dues or unreadable set in its record's slot; the machine's for none. */
  private partitionSetOf(key: string, set: 'timers' | 'unreadable'): string {
    const partition = partitionOf(this.partitioning, key);
    return partition === null || this.partitioning === null
      ? this.besideRecord(this.keys[set], key)
      : this.besideRecord(partitionSetKey(this.partitioning.base, partition, set), key);
  }

  /** A machine-wide key as is on one Redis; on a Cluster, its copy in the slot of `key`'s record. */
  private besideRecord(machineKey: string, key: string): string {
    return clusterOf(this.redis) === null
      ? machineKey
      : besideKey(machineKey, this.keys.record(key));
  }

  /** The owed actions of `version` ran: clear them unless another write came after. */
  async clearOwed(key: string, version: number): Promise<void> {
    try {
      await this.redis.engineClearOwed(
        this.keys.record(key),
        this.outboxOf(key),
        this.partitionOutboxOf(key),
        version,
        key,
      );
    } catch (error) {
      throw toAppError(error);
    }
  }

  /** Takes `key` out of the outbox if its record owes nothing (or is gone). */
  async settleOutbox(key: string): Promise<void> {
    try {
      await this.redis.engineSettleOutbox(
        this.keys.record(key),
        this.outboxOf(key),
        this.partitionOutboxOf(key),
        key,
      );
    } catch (error) {
      throw toAppError(error);
    }
  }

  /** Takes `key` out of the timer dues if its record has no live timers (or is gone). */
  async settleTimers(key: string): Promise<void> {
    try {
      await this.redis.engineSettleTimers(
        this.keys.record(key),
        this.besideRecord(this.keys.timers, key),
        this.partitionSetOf(key, 'timers'),
        key,
      );
    } catch (error) {
      throw toAppError(error);
    }
  }

  /**
   * Notes that `key`'s record cannot be read (`unreadable` true; a record
   * that is gone is not noted), or that it no longer holds one that cannot.
   */
  async noteUnreadable(key: string, unreadable: boolean): Promise<void> {
    try {
      await this.redis.engineUnreadable(
        this.keys.record(key),
        this.besideRecord(this.keys.unreadable, key),
        this.partitionSetOf(key, 'unreadable'),
        key,
        unreadable ? '1' : '',
      );
    } catch (error) {
      throw toAppError(error);
    }
  }

  /** Keys whose earliest live timer was due before `before` (Redis's clock), earliest first. */
  listDueTimers(before: number, limit: number): Promise<string[]> {
    return this.listSet(this.keys.timers, before, limit);
  }

  /** Keys noted unreadable, the first noted first. */
  listUnreadable(limit: number): Promise<string[]> {
    return this.listSet(this.keys.unreadable, '+inf', limit);
  }

  /** How many keys are in the outbox, and the score (Redis's time) of the oldest: two cheap reads. */
  async outboxState(): Promise<{ depth: number; oldestAt: number | null }> {
    try {
      const cluster = clusterOf(this.redis);
      if (cluster !== null) {
        // Every slot's outbox: two walks of pipelines per master.
        const [depths, oldests] = await Promise.all([
          everySlot<number>(cluster, (pipeline, slot) => {
            pipeline.zcard(slotCopyKey(this.keys.outbox, slot));
          }),
          everySlot<string[]>(cluster, (pipeline, slot) => {
            pipeline.zrange(slotCopyKey(this.keys.outbox, slot), 0, 0, 'WITHSCORES');
          }),
        ]);
        const scores = [...oldests.values()].flatMap((r) =>
          r[1] === undefined ? [] : [Number(r[1])],
        );
        return {
          depth: [...depths.values()].reduce((a, b) => a + b, 0),
          oldestAt: scores.length === 0 ? null : Math.min(...scores),
        };
      }
      const [depth, oldest] = await Promise.all([
        this.redis.zcard(this.keys.outbox),
        this.redis.zrange(this.keys.outbox, 0, 0, 'WITHSCORES'),
      ]);
      return { depth, oldestAt: oldest[1] === undefined ? null : Number(oldest[1]) };
    } catch (error) {
      throw toAppError(error);
    }
  }

  /** Keys put in the outbox before `before` (Redis's clock) whose owed actions may not have run. */
  listOwed(before: number, limit: number): Promise<string[]> {
    return this.listSet(this.keys.outbox, before, limit);
  }

  /** Members of a machine-wide sorted set (every slot's copy on a Cluster) scored up to `before`. */
  private async listSet(set: string, before: number | '+inf', limit: number): Promise<string[]> {
    try {
      const cluster = clusterOf(this.redis);
      if (cluster === null) {
        return await this.redis.zrangebyscore(set, '-inf', before, 'LIMIT', 0, limit);
      }
      // Every slot's copy, in pipelines per master.
      const { replies, errors } = await perSlot<string[]>(cluster, (pipeline, slot) => {
        pipeline.zrangebyscore(slotCopyKey(set, slot), '-inf', before, 'LIMIT', 0, limit);
      });
      // What the reachable masters owe is recovered now; the rest on a later pass.
      if (replies.size === 0 && errors.length > 0) throw errors[0];
      return [...replies.values()].flat().slice(0, limit);
    } catch (error) {
      throw toAppError(error);
    }
  }
}

function parse(key: string, fields: readonly (string | null | undefined)[]): StoredRecord | null {
  const [version, lifeId, machine, machineVersion, snapshot, owed, timers] = fields;
  if (version == null) return null;
  // A record without them was damaged (an operator's HDEL, a partial restore):
  // it is not "no record", which a write would then be refused over forever.
  if (lifeId == null || snapshot == null) {
    throw new StoredDataError(
      `record of key ${key} has no ${snapshot == null ? 'snapshot' : 'life id'}`,
    );
  }
  try {
    if (machine == null) {
      return {
        version: Number(version),
        lifeId,
        machine: '',
        machineVersion: Number(machineVersion ?? 0),
        snapshot: JSON.parse(snapshot) as unknown,
        owed: [],
        timers: {},
        legacy: { owed: owed ?? null },
      };
    }
    return {
      version: Number(version),
      lifeId,
      machine,
      machineVersion: Number(machineVersion ?? 0),
      snapshot: JSON.parse(snapshot) as unknown,
      owed: owed == null ? [] : (JSON.parse(owed) as OwedAction[]),
      timers: timers == null ? {} : (JSON.parse(timers) as Timers),
      legacy: null,
    };
  } catch (error) {
    throw new StoredDataError(`stored state of key ${key} cannot be read`, { cause: error });
  }
}
