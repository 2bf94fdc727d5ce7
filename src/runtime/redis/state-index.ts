import type { Cluster, Redis, Result } from 'ioredis';
import type { StateValue } from 'xstate';
import { toAppError, ValidationError } from '../../errors.ts';
import { besideKey, clusterOf, perMaster, runScript, slotsScript, slotSuffix } from './cluster.ts';
import {
  checkPartition,
  partitionIndexKey,
  partitionOf,
  partitionOutboxKey,
  partitionSetKey,
  partitionsBuiltKey,
  type Partitioning,
} from './partitions.ts';
import type { MachineKeys } from './record-store.ts';

/**
 * Keys by state, kept by the save script in the same atomic write as the
 * snapshot (see record-store.ts), so listing never needs `SCAN`:
 *
 * - one sorted set per state (`MachineKeys.index(state)`), member the key,
 *   score Redis's time of the key's last write: a key is in exactly the set of
 *   the state its record holds (field `i` of the record);
 * - `MachineKeys.removals`: when a write gives a record its removal deadline
 *   (a final state, `PEXPIREAT`), the member `state\nkey` scored by that
 *   deadline. Redis drops the record at the deadline (`PEXPIREAT`, so no
 *   read sees it after) but cannot drop a member of a sorted set: the
 *   worker's removal pass (removeDue, every second; 5 s on a Cluster) takes each key whose
 *   deadline has passed out of its state's sets, the outboxes and the
 *   schedule in one script, unless the key has a record again (a new life),
 *   whose own entries stay. A count that finds due entries (no worker ran
 *   since) removes them the same way before it counts.
 *
 * A listing checks each key it returns against its record's `i` and
 * unindexes the ones that do not match, so a record removed at its deadline
 * or by other means (an operator's `DEL`) leaves a listing at its first
 * sight; counts include a deleted key until a listing has passed it.
 *
 * On a Redis Cluster each of these keys (and the outbox) is kept once per
 * hash slot, beside the records of that slot (cluster.ts), and a read walks
 * them all with one script per master and batch of slots (perMaster):
 * counts add up the slots, a listing merges them newest first, the owed
 * keys oldest first. A listing's order is one
 * total order, (write time, key) descending, and its cursor is a position
 * in it, so one cursor serves every slot and the same cursor format serves
 * one Redis and a Cluster.
 *
 * A machine whose keys are partitioned (partitions.ts) also has, per
 * partition, a set per state and an outbox, kept in the same writes: a read
 * for one partition walks those instead of the machine's, and whatever
 * takes a key out of its state's set (a removal, a listing's check) takes
 * it out of its partition's set too.
 */

/** The state a snapshot is indexed under: its top-level state. */
export function indexState(value: StateValue): string {
  if (typeof value === 'string') return value;
  const top = Object.keys(value);
  // A parallel root has one entry per region: index the whole value.
  return top.length === 1 && top[0] !== undefined ? top[0] : JSON.stringify(value);
}

export interface IndexEntry {
  readonly key: string;
  readonly state: string;
  /** Redis's time of the key's last write, epoch ms. */
  readonly updatedAt: number;
}

export interface ListOptions {
  readonly state: string;
  /** At most this many (1…1000); 50 by default. */
  readonly limit?: number;
  /** From a previous page's `cursor`: continues after its last entry. */
  readonly cursor?: string | null;
  /**
   * Only keys starting with this; such a listing reads every key of the
   * state up to its page (a partition is the cheap way).
   */
  readonly keyPrefix?: string;
  /** Only the keys of this partition (the machine must be partitioned). */
  readonly partition?: string;
}

export interface ListPage {
  /** Newest write first. */
  readonly entries: readonly IndexEntry[];
  /** Pass it back for the next page; `null`: no more. */
  readonly cursor: string | null;
}

export interface OwedEntry {
  readonly key: string;
  /**
   * Redis's time, epoch ms: when the owed actions were written (`owed`), when
   * the earliest live timer was due (`timer`), when the record was first
   * found unreadable (`unreadable`).
   */
  readonly owedSince: number;
  /**
   * `owed`: actions a write owes have not run; `timer`: a timer is overdue
   * (its job may be gone); `unreadable`: the record cannot be read and waits
   * for an operator. A key with several reasons is listed once, by the first
   * of unreadable, owed, timer.
   */
  readonly reason: 'owed' | 'timer' | 'unreadable';
}

const PRUNE_BATCH = 500;
/** Keys per round of a backfill (see backfill). */
const BACKFILL_BATCH = 200;
const FETCH_FACTOR = 2;

// KEYS: record, the state's set, removals, the key's partition's set of the
// state (the state's set again for none). ARGV: state, key, removal member
// ('' for none). Takes the key out of the state's sets unless its record is
// in that state; drops the removal member if its deadline has passed.
const UNINDEX_SCRIPT = `
if redis.call('HGET', KEYS[1], 'i') ~= ARGV[1] then
  redis.call('ZREM', KEYS[2], ARGV[2])
  if KEYS[4] ~= KEYS[2] then redis.call('ZREM', KEYS[4], ARGV[2]) end
end
if ARGV[3] ~= '' then
  local due = redis.call('ZSCORE', KEYS[3], ARGV[3])
  local t = redis.call('TIME')
  if due and tonumber(due) <= t[1] * 1000 + math.floor(t[2] / 1000) then
    redis.call('ZREM', KEYS[3], ARGV[3])
  end
end
return 1
`;

// KEYS: record, the state's set, removals, the key's partition's set of the
// state (the state's set again for none), outbox, the key's partition's
// outbox (the outbox again for none). ARGV: state, key, removal member
// (`state\nkey`). The removal of a key whose removal deadline has passed
// (on Redis's clock): its record (Redis's expiry may have dropped it
// already), its members of the state's sets, of the outboxes and of the
// removal schedule, in one step. A key with a record and no deadline lives
// again (a new life): only what is left of the old life is taken, its
// member of the state's sets unless its record is in that state. Returns 1
// when the member was due and is gone, 0 when it is not due (or gone).
const REMOVE_SCRIPT = `
local due = redis.call('ZSCORE', KEYS[3], ARGV[3])
if not due then return 0 end
local t = redis.call('TIME')
if tonumber(due) > t[1] * 1000 + math.floor(t[2] / 1000) then return 0 end
local ttl = redis.call('PTTL', KEYS[1])
if ttl == -1 then
  if redis.call('HGET', KEYS[1], 'i') ~= ARGV[1] then
    redis.call('ZREM', KEYS[2], ARGV[2])
    if KEYS[4] ~= KEYS[2] then redis.call('ZREM', KEYS[4], ARGV[2]) end
  end
elseif ttl >= 0 then
  -- a deadline still ahead: the schedule follows the record's
  redis.call('ZADD', KEYS[3], string.format('%d', t[1] * 1000 + math.floor(t[2] / 1000) + ttl), ARGV[3])
  return 0
else
  redis.call('ZREM', KEYS[2], ARGV[2])
  if KEYS[4] ~= KEYS[2] then redis.call('ZREM', KEYS[4], ARGV[2]) end
  redis.call('ZREM', KEYS[5], ARGV[2])
  if KEYS[6] ~= KEYS[5] then redis.call('ZREM', KEYS[6], ARGV[2]) end
end
redis.call('ZREM', KEYS[3], ARGV[3])
return 1
`;

// The reading scripts below walk the copies of the index named by suffixes
// (ARGV after their own arguments): on one Redis the one suffix '', on a
// Cluster `:{tag}` for each slot of the node the call runs on (cluster.ts).

// ARGV: removals, at most this many due, the number n of states, each
// state's set, then the suffixes. The number of members of each state's
// sets, and up to that many removal members whose deadline has passed on
// Redis's clock.
const COUNT = `
local n = tonumber(ARGV[3])
local limit = tonumber(ARGV[2])
local counts = {}
for j = 1, n do counts[j] = 0 end
local t = redis.call('TIME')
local now = string.format('%d', t[1] * 1000 + math.floor(t[2] / 1000))
local due = {}
for i = 4 + n, #ARGV do
  for j = 1, n do counts[j] = counts[j] + redis.call('ZCARD', ARGV[3 + j] .. ARGV[i]) end
  if #due < limit then
    local found = redis.call('ZRANGEBYSCORE', ARGV[1] .. ARGV[i], '-inf', now, 'LIMIT', 0, limit - #due)
    for _, member in ipairs(found) do due[#due + 1] = member end
  end
end
return { counts, due }
`;

// ARGV: a state's set, the cursor's score ('' for none), floor, cap, then
// the suffixes. For each copy with anything to say, { its suffix's index
// (0-based), ties, window, next }, newest first from the cursor on: ties,
// the members of the cursor's score (all: the caller keeps those after the
// cursor's key); window, up to cap members below the cursor's score and at
// least the floor, with scores; next, unless the cap was reached, the first
// member below the floor with its score (where this copy goes on).
const FETCH = `
local cap = tonumber(ARGV[4])
local out = {}
for i = 5, #ARGV do
  local key = ARGV[1] .. ARGV[i]
  local ties = {}
  local top = '+inf'
  if ARGV[2] ~= '' then
    ties = redis.call('ZREVRANGEBYSCORE', key, ARGV[2], ARGV[2])
    top = '(' .. ARGV[2]
  end
  local window = redis.call('ZREVRANGEBYSCORE', key, top, ARGV[3], 'WITHSCORES', 'LIMIT', 0, cap)
  local next = {}
  if #window < 2 * cap then
    local below = '(' .. ARGV[3]
    if ARGV[3] == '-inf' then below = '-inf' end
    next = redis.call('ZREVRANGEBYSCORE', key, below, '-inf', 'WITHSCORES', 'LIMIT', 0, 1)
  end
  if #ties > 0 or #window > 0 or #next > 0 then out[#out + 1] = { i - 5, ties, window, next } end
end
return out
`;

// ARGV: the outbox, a time, at most this many per copy, then the suffixes.
// Each copy's members scored at or before that time, oldest first, with
// scores, one flat list.
const OWED = `
local out = {}
for i = 4, #ARGV do
  local found = redis.call('ZRANGEBYSCORE', ARGV[1] .. ARGV[i], '-inf', ARGV[2], 'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[3]))
  for _, value in ipairs(found) do out[#out + 1] = value end
end
return out
`;

// KEYS: record, the machine's set of a state, the machine's outbox, the
// key's partition's outbox, then its partition's set of each state (n).
// ARGV: that state, key, the state's place among the n. Puts a key the
// machine's index holds into its partition's (see StateIndex.backfill):
// when its record is in that state, into the partition's set of it with the
// machine's score, out of the others; into the partition's outbox when it
// owes actions, else out.
const BACKFILL_SCRIPT = `
if redis.call('HGET', KEYS[1], 'i') ~= ARGV[1] then return 0 end
local score = redis.call('ZSCORE', KEYS[2], ARGV[2])
if not score then return 0 end
for j = 5, #KEYS do
  if j - 4 == tonumber(ARGV[3]) then
    redis.call('ZADD', KEYS[j], score, ARGV[2])
  else
    redis.call('ZREM', KEYS[j], ARGV[2])
  end
end
local owed = redis.call('ZSCORE', KEYS[3], ARGV[2])
if owed and redis.call('HEXISTS', KEYS[1], 'o') == 1 then
  redis.call('ZADD', KEYS[4], 'NX', owed, ARGV[2])
else
  redis.call('ZREM', KEYS[4], ARGV[2])
end
return 1
`;

// ARGV: the number n of states, each state's set, then the suffixes. For
// each copy of a state's set that holds anything, { the state's index,
// the suffix's } (1-based).
const NONEMPTY = `
local n = tonumber(ARGV[1])
local out = {}
for i = 2 + n, #ARGV do
  for j = 1, n do
    if redis.call('EXISTS', ARGV[1 + j] .. ARGV[i]) == 1 then out[#out + 1] = { j, i - 1 - n } end
  end
end
return out
`;

// ARGV: removals, at most this many, then the suffixes. Up to that many
// removal members whose deadline has passed on Redis's clock, one flat list.
const DUE = `
local limit = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = string.format('%d', t[1] * 1000 + math.floor(t[2] / 1000))
local due = {}
for i = 3, #ARGV do
  if #due >= limit then break end
  local found = redis.call('ZRANGEBYSCORE', ARGV[1] .. ARGV[i], '-inf', now, 'LIMIT', 0, limit - #due)
  for _, member in ipairs(found) do due[#due + 1] = member end
end
return due
`;

const SCRIPTS = {
  due: { cluster: slotsScript(DUE), one: slotsScript(DUE, { cluster: false }) },
  count: { cluster: slotsScript(COUNT), one: slotsScript(COUNT, { cluster: false }) },
  fetch: { cluster: slotsScript(FETCH), one: slotsScript(FETCH, { cluster: false }) },
  owed: { cluster: slotsScript(OWED), one: slotsScript(OWED, { cluster: false }) },
  nonempty: { cluster: slotsScript(NONEMPTY), one: slotsScript(NONEMPTY, { cluster: false }) },
};

declare module 'ioredis' {
  interface RedisCommander<Context> {
    engineUnindex(
      recordKey: string,
      setKey: string,
      removalsKey: string,
      partitionSetKey: string,
      state: string,
      key: string,
      removal: string,
    ): Result<1, Context>;
    engineBackfillPartition(numberOfKeys: number, ...keysAndArgs: string[]): Result<0 | 1, Context>;
    engineRemoveDue(
      recordKey: string,
      setKey: string,
      removalsKey: string,
      partitionSetKey: string,
      outboxKey: string,
      partitionOutboxKey: string,
      state: string,
      key: string,
      removal: string,
    ): Result<0 | 1, Context>;
  }
}

/** A place in a listing's order: write time descending, then key descending (bytes). */
interface Position {
  readonly score: number;
  readonly key: string;
}

/** Whether `a` comes before `b` in a listing (newer, or as new with a larger key). */
function before(a: Position, b: Position): boolean {
  return a.score !== b.score ? a.score > b.score : Buffer.compare(bytes(a.key), bytes(b.key)) > 0;
}

const newestFirst = (a: Position, b: Position) => (before(a, b) ? -1 : before(b, a) ? 1 : 0);

const bytes = (key: string) => Buffer.from(key, 'utf8');

/** One slot's answer to FETCH_SCRIPT, read. */
interface SlotFetch {
  readonly entries: Position[];
  /** The window held `cap` members: the slot may have more above the floor. */
  readonly capped: boolean;
  /** The score of the slot's first member below the floor (`null`: none). */
  readonly next: number | null;
}

export class StateIndex {
  constructor(
    private readonly redis: Redis,
    private readonly keys: MachineKeys,
    /** The states `counts` reports, in order (the machine's top-level states). */
    private readonly states: readonly string[],
    /** The partition of the machine's keys (partitions.ts); `null`: none. */
    private readonly partitioning: Partitioning | null = null,
  ) {
    redis.defineCommand('engineUnindex', { numberOfKeys: 4, lua: UNINDEX_SCRIPT });
    redis.defineCommand('engineBackfillPartition', { lua: BACKFILL_SCRIPT });
    redis.defineCommand('engineRemoveDue', { numberOfKeys: 6, lua: REMOVE_SCRIPT });
  }

  /** When this process last found the partitions built (epoch ms), or the build it runs. */
  private built: { at: number } | Promise<void> | null = null;

  /**
   * Resolves once the partitions hold the keys the machine's index held
   * before they were kept: the store's marker says so, or this process
   * backfills them (and sets it). The marker is looked at again every
   * BUILT_CHECK_MS: an operator deletes it to have the backfill run again.
   */
  private async partitionsBuilt(): Promise<void> {
    if (this.partitioning === null) return;
    const built = this.built;
    if (built instanceof Promise) return built;
    if (built !== null && Date.now() - built.at < BUILT_CHECK_MS) return;
    const marker = partitionsBuiltKey(this.partitioning.base);
    const run = (async () => {
      if ((await this.redis.exists(marker)) === 0) {
        const placed = await this.backfill();
        await this.redis.set(marker, JSON.stringify({ at: Date.now(), placed }));
      }
    })();
    this.built = run;
    try {
      await run;
      this.built = { at: Date.now() };
    } catch (error) {
      this.built = null;
      throw error;
    }
  }

  /**
   * Puts every key the machine's index holds into its partition's sets and
   * outbox (keys written before the machine's keys were partitioned, or by
   * a process that did not partition them), taking it out of its
   * partition's sets of other states. Walks each state's set (every slot's
   * copy on a Cluster) BACKFILL_BATCH keys at a time; each key is placed by
   * one script that reads its record, so a key written meanwhile stays as
   * that write left it. Idempotent; returns how many keys it placed.
   */
  async backfill(): Promise<number> {
    const partitioning = this.partitioning;
    if (partitioning === null) return 0;
    let placed = 0;
    try {
      const calls = await this.walk(SCRIPTS.nonempty, [
        this.states.length,
        ...this.states.map((state) => this.keys.index(state)),
      ]);
      for (const { slots, reply } of calls) {
        for (const [j, i] of reply as [number, number][]) {
          const state = this.states[j - 1];
          const slot = slots[i - 1];
          if (state === undefined || slot === undefined) continue;
          const setKey = this.keys.index(state) + (slot === null ? '' : slotSuffix(slot));
          let cursor = '0';
          do {
            const [next, flat] = await this.redis.zscan(setKey, cursor, 'COUNT', BACKFILL_BATCH);
            cursor = next;
            const members = pairs(flat).map((p) => p.key);
            const done = await Promise.all(
              members.map((key) => this.backfillKey(partitioning, state, j, key)),
            );
            placed += done.filter((n) => n === 1).length;
          } while (cursor !== '0');
        }
      }
    } catch (error) {
      throw toAppError(error);
    }
    return placed;
  }

  /** Places one key (BACKFILL_SCRIPT); 0 when it has no partition or is not in `state`. */
  private async backfillKey(
    partitioning: Partitioning,
    state: string,
    place: number,
    key: string,
  ): Promise<0 | 1> {
    const partition = partitionOf(partitioning, key);
    if (partition === null) return 0;
    const keys = [
      this.keys.record(key),
      this.besideRecord(this.keys.index(state), key),
      this.besideRecord(this.keys.outbox, key),
      this.besideRecord(partitionOutboxKey(partitioning.base, partition), key),
      ...this.states.map((s) =>
        this.besideRecord(partitionIndexKey(partitioning.base, partition, s), key),
      ),
    ];
    return this.redis.engineBackfillPartition(keys.length, ...keys, state, key, String(place));
  }

  /** The base of `partition`'s keys; throws when the machine is not partitioned. */
  private partitionBase(partition: string): string {
    if (this.partitioning === null) {
      throw new Error('a read by partition needs a machine with a partition of its keys');
    }
    checkPartition(partition);
    return this.partitioning.base;
  }

  /** The set a read of `state` walks: the partition's, or the machine's. */
  private stateSet(state: string, partition?: string): string {
    return partition === undefined
      ? this.keys.index(state)
      : partitionIndexKey(this.partitionBase(partition), partition, state);
  }

  /** `key`'s partition's set of `state` in its record's slot; the machine's for none. */
  private partitionSetOf(state: string, key: string): string {
    const partition = partitionOf(this.partitioning, key);
    return partition === null
      ? this.besideRecord(this.keys.index(state), key)
      : this.besideRecord(partitionIndexKey(this.partitioning?.base ?? '', partition, state), key);
  }

  /** Takes `key` out of `state`'s sets unless its record is in it (see UNINDEX_SCRIPT). */
  private unindex(state: string, key: string, removal: string): Promise<1> {
    return this.redis.engineUnindex(
      this.keys.record(key),
      this.besideRecord(this.keys.index(state), key),
      this.besideRecord(this.keys.removals, key),
      this.partitionSetOf(state, key),
      state,
      key,
      removal,
    );
  }

  private get cluster(): Cluster | null {
    return clusterOf(this.redis);
  }

  /** A machine-wide key of the index where `key`'s record script writes it. */
  private besideRecord(base: string, key: string): string {
    return this.cluster === null ? base : besideKey(base, this.keys.record(key));
  }

  /**
   * Runs one of SCRIPTS over the copies of the index: on one Redis its one
   * copy (slot `null`), on a Cluster every slot's (or `only` those slots'),
   * a call per master and batch of slots. Returns each call's slots, in the
   * order of its suffixes, and its reply (as the script's comment says).
   */
  private async walk(
    script: (typeof SCRIPTS)[keyof typeof SCRIPTS],
    args: readonly (string | number)[],
    only?: readonly number[],
  ): Promise<{ slots: readonly (number | null)[]; reply: unknown }[]> {
    const cluster = this.cluster;
    if (cluster === null) {
      return [{ slots: [null], reply: await runScript(this.redis, script.one, [...args, '']) }];
    }
    return perMaster(cluster, script.cluster, args, only);
  }

  /** Removes what is left of the keys of removal members (`state\nkey`) whose deadline has passed. */
  private async unindexDue(members: readonly string[]): Promise<number> {
    const done = await Promise.all(
      members.map((member) => {
        const cut = member.indexOf('\n');
        return this.removeKey(member.slice(0, cut), member.slice(cut + 1), member);
      }),
    );
    return done.filter((n) => n === 1).length;
  }

  /** One key's removal at its deadline (REMOVE_SCRIPT). */
  private removeKey(state: string, key: string, removal: string): Promise<0 | 1> {
    const partition = partitionOf(this.partitioning, key);
    const outbox = this.besideRecord(this.keys.outbox, key);
    return this.redis.engineRemoveDue(
      this.keys.record(key),
      this.besideRecord(this.keys.index(state), key),
      this.besideRecord(this.keys.removals, key),
      this.partitionSetOf(state, key),
      outbox,
      partition === null || this.partitioning === null
        ? outbox
        : this.besideRecord(partitionOutboxKey(this.partitioning.base, partition), key),
      state,
      key,
      removal,
    );
  }

  /**
   * The worker's removal pass: up to `limit` keys whose removal deadline
   * has passed (Redis's clock) leave with everything the runtime wrote for
   * them (REMOVE_SCRIPT), so the index never holds a removed key for its
   * readers to skip. Returns how many were removed; fewer than `limit`
   * means none is due any more.
   */
  async removeDue(limit = PRUNE_BATCH): Promise<number> {
    try {
      const calls = await this.walk(SCRIPTS.due, [this.keys.removals, limit]);
      const due = calls.flatMap(({ reply }) => reply as string[]).slice(0, limit);
      if (due.length === 0) return 0;
      await this.unindexDue(due);
      return due.length;
    } catch (error) {
      throw toAppError(error);
    }
  }

  /**
   * Keys per state (every top-level state, 0 for none), of the machine or of
   * one partition. The walk that counts also finds what is due for pruning
   * (in any partition); when it found some, that is pruned and the walk
   * counts again.
   */
  async counts(partition?: string): Promise<Record<string, number>> {
    // A programming error (no partitions, a bad name) is thrown as it is.
    // The unreadable records are counted as one more "state" of the walk.
    const sets = [
      ...this.states.map((state) => this.stateSet(state, partition)),
      partition === undefined
        ? this.keys.unreadable
        : partitionSetKey(this.partitionBase(partition), partition, 'unreadable'),
    ];
    try {
      if (partition !== undefined) await this.partitionsBuilt();
      for (;;) {
        const calls = (
          await this.walk(SCRIPTS.count, [this.keys.removals, PRUNE_BATCH, sets.length, ...sets])
        ).map(({ reply }) => reply as [number[], string[]]);
        const due = calls.flatMap(([, members]) => members);
        if (due.length > 0) {
          // Rare (records removed since the last count): prune, then count again.
          await this.unindexDue(due);
          continue;
        }
        const counts: Record<string, number> = {};
        const sum = (i: number) => calls.reduce((total, [perSet]) => total + (perSet[i] ?? 0), 0);
        this.states.forEach((state, i) => {
          counts[state] = sum(i);
        });
        counts['unreadable'] = sum(this.states.length);
        return counts;
      }
    } catch (error) {
      throw toAppError(error);
    }
  }

  /** Keys in `state` (of a partition, if given), newest write first, a page at a time. */
  async list(options: ListOptions): Promise<ListPage> {
    const limit = options.limit ?? 50;
    let after = options.cursor == null ? null : decodeCursor(options.cursor);
    const entries: IndexEntry[] = [];
    const setKey = this.stateSet(options.state, options.partition);
    try {
      if (options.partition !== undefined) await this.partitionsBuilt();
      for (;;) {
        const want = (limit - entries.length) * FETCH_FACTOR;
        const { fetched, more: fetchedMore } = await this.fetchAfter(setKey, after, want);
        if (fetched.length === 0) return { entries, cursor: null };
        const states = await this.recordStates(fetched.map((f) => f.key));
        for (const [i, { key, score }] of fetched.entries()) {
          after = { score, key };
          if (states[i] !== options.state) {
            await this.unindex(options.state, key, '');
            continue;
          }
          if (options.keyPrefix !== undefined && !key.startsWith(options.keyPrefix)) continue;
          entries.push({ key, state: options.state, updatedAt: score });
          if (entries.length === limit) {
            const more = i < fetched.length - 1 || fetchedMore;
            return { entries, cursor: more ? encodeCursor(after) : null };
          }
        }
        if (!fetchedMore) return { entries, cursor: null };
      }
    } catch (error) {
      throw toAppError(error);
    }
  }

  /**
   * Up to `count` members of a state's set (`setKey`: the machine's or a
   * partition's) after `after` in a listing's order, and whether there may
   * be more.
   *
   * On a Cluster the slots are merged without reading `count` members of
   * each: a first walk reads the score of each slot's first member after the
   * cursor; the floor is then put at the `count`-th highest of those, so
   * that the slots at or above it hold at least `count` members between the
   * cursor and the floor, and only those slots are read, up to `count`
   * members each. When a slot had that many, what comes up to its last
   * member read is complete and fills the page; when none had, everything
   * down to the floor is known, and a short page lowers the floor again. On
   * one Redis the first round has no floor: one round trip, as before.
   */
  private async fetchAfter(
    setKey: string,
    after: Position | null,
    count: number,
  ): Promise<{ fetched: Position[]; more: boolean }> {
    const fetched: Position[] = [];
    let cursor = after;
    // Each slot's next score below the floor, for the slots that may go on.
    const next = new Map<number | null, number>();
    let floor: number | '+inf' | '-inf' =
      this.cluster === null ? '-inf' : (cursor?.score ?? '+inf');
    let slots: number[] | undefined;
    for (;;) {
      const need = count - fetched.length;
      const calls = await this.walk(
        SCRIPTS.fetch,
        [setKey, cursor?.score ?? '', floor, need],
        slots,
      );
      const known: Position[] = [];
      let bound: Position | null = null;
      for (const { slots: called, reply } of calls) {
        for (const slot of called) next.delete(slot);
        for (const [index, ...answer] of reply as [number, string[], string[], string[]][]) {
          const slot = called[index] ?? null;
          const read = readFetch(answer, cursor, need);
          known.push(...read.entries);
          if (read.next !== null) next.set(slot, read.next);
          const last = read.entries.at(-1);
          if (read.capped && last !== undefined && (bound === null || before(last, bound))) {
            bound = last;
          }
        }
      }
      known.sort(newestFirst);
      // A capped slot alone gives `need` members up to the bound: this fills the page.
      const complete = bound === null ? known : known.filter((p) => !before(bound, p));
      fetched.push(...complete.slice(0, need));
      if (fetched.length === count) {
        return { fetched, more: bound !== null || known.length > need || next.size > 0 };
      }
      if (next.size === 0) return { fetched, more: false };
      cursor = fetched.at(-1) ?? cursor;
      // Lower the floor to the score of the (count - fetched)-th next member,
      // and read the slots that go on at or above it.
      const scores = [...next.values()].sort((a, b) => b - a);
      const at = scores[Math.min(count - fetched.length, scores.length) - 1] ?? -Infinity;
      floor = Number.isFinite(at) ? at : '-inf';
      slots = onlySlots([...next].filter(([, score]) => score >= at).map(([slot]) => slot));
    }
  }

  private async recordStates(keys: readonly string[]): Promise<(string | null)[]> {
    // One command each: on a Cluster the records are on every master.
    return Promise.all(keys.map((key) => this.redis.hget(this.keys.record(key), 'i')));
  }

  /**
   * Keys (of a partition, if given) whose owed actions were written before
   * `before` (Redis's clock), oldest first.
   */
  async owedBefore(
    before: number,
    limit: number,
    partition?: string,
  ): Promise<readonly OwedEntry[]> {
    let calls: { reply: unknown }[];
    const outbox =
      partition === undefined
        ? this.keys.outbox
        : partitionOutboxKey(this.partitionBase(partition), partition);
    try {
      if (partition !== undefined) await this.partitionsBuilt();
      calls = await this.walk(SCRIPTS.owed, [outbox, before, limit]);
    } catch (error) {
      throw toAppError(error);
    }
    return calls
      .flatMap(({ reply }) => pairs(reply as string[]))
      .sort((a, b) => a.score - b.score || Buffer.compare(bytes(a.key), bytes(b.key)))
      .slice(0, limit)
      .map(({ key, score }) => ({ key, owedSince: score, reason: 'owed' }));
  }

  /**
   * Keys (of a partition, if given) that wait for the worker or an operator,
   * oldest first: owed actions written before `before`, a live timer due
   * before it, and every record noted unreadable (see OwedEntry). Three
   * reads of sorted sets the writes keep: no record is scanned.
   */
  async stuck(before: number, limit: number, partition?: string): Promise<readonly OwedEntry[]> {
    const set = (name: 'outbox' | 'timers' | 'unreadable') => {
      if (partition === undefined) return this.keys[name];
      const base = this.partitionBase(partition);
      return name === 'outbox'
        ? partitionOutboxKey(base, partition)
        : partitionSetKey(base, partition, name);
    };
    const read = async (name: 'outbox' | 'timers' | 'unreadable', upTo: number | '+inf') =>
      (await this.walk(SCRIPTS.owed, [set(name), upTo, limit])).flatMap(({ reply }) =>
        pairs(reply as string[]),
      );
    let found: { key: string; score: number; reason: OwedEntry['reason'] }[];
    try {
      if (partition !== undefined) await this.partitionsBuilt();
      const [owed, timers, unreadable] = await Promise.all([
        read('outbox', before),
        read('timers', before),
        read('unreadable', '+inf'),
      ]);
      found = [
        ...unreadable.map((p) => ({ ...p, reason: 'unreadable' as const })),
        ...owed.map((p) => ({ ...p, reason: 'owed' as const })),
        ...timers.map((p) => ({ ...p, reason: 'timer' as const })),
      ];
    } catch (error) {
      throw toAppError(error);
    }
    const byKey = new Map<string, (typeof found)[number]>();
    for (const entry of found) {
      const seen = byKey.get(entry.key);
      if (seen === undefined || REASON_RANK[entry.reason] < REASON_RANK[seen.reason]) {
        byKey.set(entry.key, entry);
      }
    }
    return [...byKey.values()]
      .sort((a, b) => a.score - b.score || Buffer.compare(bytes(a.key), bytes(b.key)))
      .slice(0, limit)
      .map(({ key, score, reason }) => ({ key, owedSince: score, reason }));
  }
}

/** The order `stuck` keeps one reason of a key listed for several. */
const REASON_RANK: Readonly<Record<OwedEntry['reason'], number>> = {
  unreadable: 0,
  owed: 1,
  timer: 2,
};

/** How long a process trusts the store's marker that the partitions were built. */
const BUILT_CHECK_MS = 30_000;

/** The slots of a Cluster to read next (`undefined` on one Redis: its one copy). */
function onlySlots(slots: readonly (number | null)[]): number[] | undefined {
  return slots.includes(null) ? undefined : (slots as number[]);
}

/** One FETCH_SCRIPT reply: the members after `cursor`, newest first. */
function readFetch(
  [ties, window, next]: [string[], string[], string[]],
  cursor: Position | null,
  cap: number,
): SlotFetch {
  const entries: Position[] = [];
  if (cursor !== null) {
    const cursorKey = bytes(cursor.key);
    for (const key of ties) {
      if (Buffer.compare(bytes(key), cursorKey) < 0) entries.push({ key, score: cursor.score });
    }
    entries.sort(newestFirst);
  }
  entries.push(...pairs(window));
  const [after] = pairs(next);
  return {
    entries,
    capped: window.length >= 2 * cap,
    next: after === undefined ? null : after.score,
  };
}

function pairs(flat: readonly string[]): { key: string; score: number }[] {
  const out: { key: string; score: number }[] = [];
  for (let i = 0; i + 1 < flat.length; i += 2) {
    out.push({ key: flat[i] ?? '', score: Number(flat[i + 1]) });
  }
  return out;
}

function encodeCursor(at: { score: number; key: string }): string {
  return Buffer.from(`${at.score}\n${at.key}`).toString('base64url');
}

function decodeCursor(cursor: string): { score: number; key: string } {
  const text = Buffer.from(cursor, 'base64url').toString();
  const cut = text.indexOf('\n');
  const score = Number(text.slice(0, cut));
  if (cut < 1 || !Number.isSafeInteger(score) || score < 0) {
    throw new ValidationError('cursor is not one a listing returned', 'invalid_cursor');
  }
  return { score, key: text.slice(cut + 1) };
}
