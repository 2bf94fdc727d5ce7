import type { Redis, Result } from 'ioredis';
import type { StateValue } from 'xstate';
import { NotImplementedError, toAppError, ValidationError } from '../../errors.ts';
import { clusterOf } from './cluster.ts';
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
 *   deadline. Redis drops the record at the deadline but cannot drop a member
 *   of a sorted set; before every count or listing, `prune` takes the entries
 *   whose deadline has passed (on Redis's clock) out of their state's set,
 *   unless the key has a record in that state again (a new life).
 *
 * A listing also checks each key it returns against its record's `i` and
 * unindexes the ones that do not match, so a record removed by other means
 * (an operator's `DEL`) leaves a listing at its first sight; counts include
 * such a key until a listing has passed it.
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
   * Only keys starting with this (a partition of keys, e.g. one owner's);
   * such a page may hold fewer than `limit` entries before its end.
   */
  readonly keyPrefix?: string;
}

export interface ListPage {
  /** Newest write first. */
  readonly entries: readonly IndexEntry[];
  /** Pass it back for the next page; `null`: no more. */
  readonly cursor: string | null;
}

export interface OwedEntry {
  readonly key: string;
  /** Redis's time the owed actions were written, epoch ms. */
  readonly owedSince: number;
}

const PRUNE_BATCH = 500;
const FETCH_FACTOR = 2;

// KEYS: removals. ARGV: at most this many. The members whose deadline has
// passed on Redis's clock.
const DUE_SCRIPT = `
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
return redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', string.format('%d', now), 'LIMIT', 0, tonumber(ARGV[1]))
`;

// KEYS: record, the state's set, removals. ARGV: state, key, removal member
// ('' for none). Takes the key out of the state's set unless its record is
// in that state; drops the removal member if its deadline has passed.
const UNINDEX_SCRIPT = `
if redis.call('HGET', KEYS[1], 'i') ~= ARGV[1] then redis.call('ZREM', KEYS[2], ARGV[2]) end
if ARGV[3] ~= '' then
  local due = redis.call('ZSCORE', KEYS[3], ARGV[3])
  local t = redis.call('TIME')
  if due and tonumber(due) <= t[1] * 1000 + math.floor(t[2] / 1000) then
    redis.call('ZREM', KEYS[3], ARGV[3])
  end
end
return 1
`;

declare module 'ioredis' {
  interface RedisCommander<Context> {
    engineIndexDue(removalsKey: string, limit: number): Result<string[], Context>;
    engineUnindex(
      recordKey: string,
      setKey: string,
      removalsKey: string,
      state: string,
      key: string,
      removal: string,
    ): Result<1, Context>;
  }
}

export class StateIndex {
  constructor(
    private readonly redis: Redis,
    private readonly keys: MachineKeys,
    /** The states `counts` reports, in order (the machine's top-level states). */
    private readonly states: readonly string[],
  ) {
    redis.defineCommand('engineIndexDue', { numberOfKeys: 1, lua: DUE_SCRIPT });
    redis.defineCommand('engineUnindex', { numberOfKeys: 3, lua: UNINDEX_SCRIPT });
  }

  /**
   * On a Redis Cluster the index is kept per slot (beside each record, like
   * the outbox), and reading it would walk every slot: not offered yet.
   */
  private refuseOnCluster(): void {
    if (clusterOf(this.redis) !== null) {
      throw new NotImplementedError(
        'listing and counting by state are not available on a Redis Cluster in this release',
      );
    }
  }

  /** Takes keys whose records were removed at their deadline out of their state's set. */
  async prune(): Promise<number> {
    this.refuseOnCluster();
    let pruned = 0;
    try {
      for (;;) {
        const due = await this.redis.engineIndexDue(this.keys.removals, PRUNE_BATCH);
        if (due.length === 0) return pruned;
        const pipeline = this.redis.pipeline();
        for (const member of due) {
          const cut = member.indexOf('\n');
          const state = member.slice(0, cut);
          const key = member.slice(cut + 1);
          pipeline.engineUnindex(
            this.keys.record(key),
            this.keys.index(state),
            this.keys.removals,
            state,
            key,
            member,
          );
        }
        await pipeline.exec();
        pruned += due.length;
        if (due.length < PRUNE_BATCH) return pruned;
      }
    } catch (error) {
      throw toAppError(error);
    }
  }

  /** Keys per state (every top-level state, 0 for none). */
  async counts(): Promise<Record<string, number>> {
    await this.prune();
    try {
      const pipeline = this.redis.pipeline();
      for (const state of this.states) pipeline.zcard(this.keys.index(state));
      const replies = (await pipeline.exec()) ?? [];
      const counts: Record<string, number> = {};
      this.states.forEach((state, i) => {
        const [error, count] = replies[i] ?? [null, 0];
        if (error) throw error;
        counts[state] = Number(count);
      });
      return counts;
    } catch (error) {
      throw toAppError(error);
    }
  }

  /** Keys in `state`, newest write first, a page at a time. */
  async list(options: ListOptions): Promise<ListPage> {
    const limit = options.limit ?? 50;
    let after = options.cursor == null ? null : decodeCursor(options.cursor);
    await this.prune();
    const setKey = this.keys.index(options.state);
    const entries: IndexEntry[] = [];
    try {
      for (;;) {
        const want = (limit - entries.length) * FETCH_FACTOR;
        const fetched = await this.fetchAfter(setKey, after, want);
        if (fetched.length === 0) return { entries, cursor: null };
        const states = await this.recordStates(fetched.map((f) => f.key));
        for (const [i, { key, score }] of fetched.entries()) {
          after = { score, key };
          if (states[i] !== options.state) {
            await this.redis.engineUnindex(
              this.keys.record(key),
              setKey,
              this.keys.removals,
              options.state,
              key,
              '',
            );
            continue;
          }
          if (options.keyPrefix !== undefined && !key.startsWith(options.keyPrefix)) continue;
          entries.push({ key, state: options.state, updatedAt: score });
          if (entries.length === limit) {
            const more = i < fetched.length - 1 || fetched.length === want;
            return { entries, cursor: more ? encodeCursor(after) : null };
          }
        }
        if (fetched.length < want) return { entries, cursor: null };
      }
    } catch (error) {
      throw toAppError(error);
    }
  }

  /** Up to `count` members after `after` in newest-first order (ties: larger member first). */
  private async fetchAfter(
    setKey: string,
    after: { score: number; key: string } | null,
    count: number,
  ): Promise<{ key: string; score: number }[]> {
    if (after === null) {
      const flat = await this.redis.zrevrangebyscore(
        setKey,
        '+inf',
        '-inf',
        'WITHSCORES',
        'LIMIT',
        0,
        count,
      );
      return pairs(flat);
    }
    // Members that share the cursor's score come in descending byte order.
    const [ties, older] = await Promise.all([
      this.redis.zrangebyscore(setKey, after.score, after.score),
      this.redis.zrevrangebyscore(
        setKey,
        `(${after.score}`,
        '-inf',
        'WITHSCORES',
        'LIMIT',
        0,
        count,
      ),
    ]);
    const cursorKey = Buffer.from(after.key);
    const sameScore = ties
      .filter((key) => Buffer.compare(Buffer.from(key), cursorKey) < 0)
      .sort((a, b) => Buffer.compare(Buffer.from(b), Buffer.from(a)))
      .map((key) => ({ key, score: after.score }));
    return [...sameScore, ...pairs(older)].slice(0, count);
  }

  private async recordStates(keys: readonly string[]): Promise<(string | null)[]> {
    const pipeline = this.redis.pipeline();
    for (const key of keys) pipeline.hget(this.keys.record(key), 'i');
    const replies = (await pipeline.exec()) ?? [];
    return replies.map(([error, value]) => {
      if (error) throw error;
      return (value as string | null) ?? null;
    });
  }

  /** Keys whose owed actions were written before `before` (Redis's clock), oldest first. */
  async owedBefore(before: number, limit: number): Promise<readonly OwedEntry[]> {
    this.refuseOnCluster();
    let flat: string[];
    try {
      flat = await this.redis.zrangebyscore(
        this.keys.outbox,
        '-inf',
        before,
        'WITHSCORES',
        'LIMIT',
        0,
        limit,
      );
    } catch (error) {
      throw toAppError(error);
    }
    return pairs(flat).map(({ key, score }) => ({ key, owedSince: score }));
  }
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
