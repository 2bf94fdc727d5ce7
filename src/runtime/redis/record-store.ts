import type { Redis, Result } from 'ioredis';
import { luaScript } from '../lua/scripts.ts';
import { RuntimeError, toRuntimeError } from '../runtime-error.ts';
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
import type { StoreIdentity } from './store-identity.ts';

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

// The record's scripts (lua/*.lua: KEYS, ARGV and output in each header).
const SAVE_SCRIPT = luaScript('save-record');
const CLEAR_SCRIPT = luaScript('clear-owed');
const SETTLE_SCRIPT = luaScript('settle-outbox');
const SETTLE_TIMERS_SCRIPT = luaScript('settle-timers');
const UNREADABLE_SCRIPT = luaScript('mark-unreadable');
const LOCK_AND_LOAD_SCRIPT = luaScript('lock-and-load');

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
      throw toRuntimeError(error);
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
      throw toRuntimeError(error);
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
      const known = toRuntimeError(error);
      if (known.code === 'store_lost') this.identity.noteLost();
      throw known;
    }
    const [version, seconds, micros] = reply;
    if (Number(version) < 0) {
      throw new RuntimeError('stale_write', `key ${key} was changed by another process; retry`, {
        key,
      });
    }
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
      throw toRuntimeError(error);
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
      throw toRuntimeError(error);
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
      throw toRuntimeError(error);
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
      throw toRuntimeError(error);
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
      throw toRuntimeError(error);
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
      throw toRuntimeError(error);
    }
  }
}

function parse(key: string, fields: readonly (string | null | undefined)[]): StoredRecord | null {
  const [version, lifeId, machine, machineVersion, snapshot, owed, timers] = fields;
  if (version == null) return null;
  // A record without them was damaged (an operator's HDEL, a partial restore):
  // it is not "no record", which a write would then be refused over forever.
  if (lifeId == null || snapshot == null) {
    throw new RuntimeError(
      'record_unreadable',
      `record of key ${key} has no ${snapshot == null ? 'snapshot' : 'life id'}`,
      { key },
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
    throw new RuntimeError('record_unreadable', `stored state of key ${key} cannot be read`, {
      cause: error,
      key,
    });
  }
}
