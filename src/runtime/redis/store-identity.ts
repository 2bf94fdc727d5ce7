import { randomBytes } from 'node:crypto';
import type { Redis, Result } from 'ioredis';
import { luaScript } from '../lua/scripts.ts';
import { RuntimeError, STORE_LOST_REPLY, toRuntimeError } from '../runtime-error.ts';
import { besideKey, clusterOf, everySlot, slotCopyKey, slotsByMaster } from './cluster.ts';
import type { RedisClock } from './redis-clock.ts';
import { repeatEvery } from './repeat.ts';

/**
 * The store's identity: an id written once into a fresh store. A process
 * learns it at start-up and every write script checks it (see SAVE_SCRIPT,
 * MOVE_SCRIPT): a Redis that restarted empty, failed over to an empty
 * replica, or was swapped for another one has no id or another id, and
 * writing there would forget which tokens were charged or cancelled, so a
 * replay would be charged again. Such a process refuses every request with
 * `store_lost` until it finds its own id again, or an operator accepts the
 * new store (`paystate store accept`), after which it adopts the new id.
 *
 * The hash holds `id`, `createdAt` and, once an operator accepted it,
 * `acceptedAt` (epoch ms, Redis's clock).
 *
 * On a Redis Cluster a script sees one slot, so the id is also copied into
 * every slot (`keyFor`: the copy in a key's own slot, see cluster.ts), all
 * 16384 of them when the store is initialised or accepted (then the hash
 * gets `slots`). A shard that comes back empty has lost its slots' copies:
 * writes there are refused, and the periodic check, which reads one copy
 * per master besides the hash, notices it. Copies are only ever filled in
 * on a store whose copies are all missing or agree (a fresh cluster), never
 * on one where some shard still holds another store's id.
 */

// The identity's scripts (lua/*.lua: KEYS, ARGV and output in each header).
// Write scripts refuse another store with lua/includes/store-guard.lua.
const OPEN_SCRIPT = luaScript('open-store');
const READ_SCRIPT = luaScript('read-store');
const ACCEPT_SCRIPT = luaScript('accept-store');

declare module 'ioredis' {
  interface RedisCommander<Context> {
    paystateStoreOpen(key: string, newId: string): Result<(string | number)[], Context>;
    paystateStoreRead(key: string): Result<(string | number | null)[], Context>;
    paystateStoreAccept(key: string, newId: string): Result<(string | number)[], Context>;
  }
}

function defineCommands(redis: Redis): void {
  redis.defineCommand('paystateStoreOpen', { numberOfKeys: 1, lua: OPEN_SCRIPT });
  redis.defineCommand('paystateStoreRead', { numberOfKeys: 1, lua: READ_SCRIPT });
  redis.defineCommand('paystateStoreAccept', { numberOfKeys: 1, lua: ACCEPT_SCRIPT });
}

const newStoreId = () => randomBytes(8).toString('hex');

export interface StoreIdentityEvents {
  /** First start on an empty store: it now carries a new id. */
  initialised(id: string): void;
  lost(details: { expected: string; found: string | null }): void;
  /** Found its own id again, or adopted one an operator accepted. */
  recovered(details: { id: string; adopted: boolean }): void;
}

export class StoreIdentity {
  private knownId: string | null = null;
  /** Redis time at which the loss was noticed; `null` while the store is ours. */
  private lostAt: number | null = null;
  private stopWatching: () => void = () => undefined;
  private checking: Promise<void> | undefined;

  constructor(
    private readonly redis: Redis,
    readonly key: string,
    private readonly clock: RedisClock,
    private readonly events: Partial<StoreIdentityEvents> = {},
  ) {
    defineCommands(redis);
  }

  /** Learns the store's id, writing one into an empty store. */
  async open(): Promise<void> {
    let reply: (string | number)[];
    try {
      reply = await this.redis.paystateStoreOpen(this.key, newStoreId());
    } catch (error) {
      throw toRuntimeError(error);
    }
    const [id, created, seconds, micros] = reply;
    this.clock.observe([seconds ?? '', micros ?? '']);
    this.knownId = String(id);
    if (clusterOf(this.redis) !== null) await this.fillSlotCopies(this.knownId);
    if (Number(created) === 1) this.events.initialised?.(this.knownId);
  }

  /** The identity key a write script on `key` must check: on a Cluster, the copy in `key`'s slot. */
  keyFor(key: string): string {
    return clusterOf(this.redis) === null ? this.key : besideKey(this.key, key);
  }

  /** A fresh cluster store: writes the id into every slot, once. */
  private async fillSlotCopies(id: string): Promise<void> {
    const cluster = clusterOf(this.redis);
    if (cluster === null) return;
    try {
      if ((await this.redis.hget(this.key, 'slots')) !== null) return;
      const samples = await sampleCopies(this.redis, this.key);
      if (samples.some((found) => found !== null && found !== id)) return;
      await everySlot(cluster, (pipeline, slot) => {
        pipeline.hsetnx(slotCopyKey(this.key, slot), 'id', id);
      });
      await this.redis.hset(this.key, 'slots', '1');
    } catch (error) {
      throw toRuntimeError(error);
    }
  }

  /** The id every write script must find; refuses while the store is lost. */
  get id(): string {
    if (this.lostAt !== null) throw storeLost();
    if (this.knownId === null) throw new Error('the store identity was not read yet');
    return this.knownId;
  }

  get lost(): boolean {
    return this.lostAt !== null;
  }

  /** Called when a write script refused: the store is not the one this process knows. */
  noteLost(found: string | null = null): void {
    if (this.lostAt !== null || this.knownId === null) return;
    this.lostAt = this.clock.now();
    this.events.lost?.({ expected: this.knownId, found });
  }

  /** Reads the identity (and Redis's clock) once; updates the lost state. */
  async check(): Promise<void> {
    this.checking ??= this.readOnce().finally(() => {
      this.checking = undefined;
    });
    return this.checking;
  }

  private async readOnce(): Promise<void> {
    let reply: (string | number | null)[];
    try {
      reply = await this.redis.paystateStoreRead(this.key);
    } catch (error) {
      throw toRuntimeError(error);
    }
    const [id, acceptedAt, seconds, micros] = reply;
    this.clock.observe([seconds ?? '', micros ?? '']);
    let found = id === null || id === undefined ? null : String(id);
    if (found !== null && clusterOf(this.redis) !== null) {
      // A shard that came back empty shows as a missing copy.
      let samples: (string | null)[];
      try {
        samples = await sampleCopies(this.redis, this.key);
      } catch (error) {
        throw toRuntimeError(error);
      }
      const odd = samples.find((copy) => copy !== found);
      if (odd !== undefined) found = odd;
    }
    if (this.knownId === null) return;
    if (this.lostAt === null) {
      if (found !== this.knownId) this.noteLost(found);
      return;
    }
    if (found === this.knownId) {
      this.lostAt = null;
      this.events.recovered?.({ id: found, adopted: false });
    } else if (found !== null && acceptedAt != null && Number(acceptedAt) >= this.lostAt) {
      this.knownId = found;
      this.lostAt = null;
      this.events.recovered?.({ id: found, adopted: true });
    }
  }

  /** Checks every `intervalMs` (errors while Redis is away are left to the requests). */
  watch(intervalMs: number): void {
    this.stopWatching();
    this.stopWatching = repeatEvery(intervalMs, () => this.check());
  }

  stop(): void {
    this.stopWatching();
  }
}

/** Operator's acknowledgement: processes that lost their store adopt the current one. */
export async function acceptStore(
  redis: Redis,
  key: string,
): Promise<{ id: string; created: boolean }> {
  defineCommands(redis);
  try {
    const [id, created] = await redis.paystateStoreAccept(key, newStoreId());
    const cluster = clusterOf(redis);
    if (cluster !== null) {
      await everySlot(cluster, (pipeline, slot) => {
        pipeline.hset(slotCopyKey(key, slot), 'id', String(id));
      });
      await redis.hset(key, 'slots', '1');
    }
    return { id: String(id), created: Number(created) === 1 };
  } catch (error) {
    throw toRuntimeError(error);
  }
}

/** The identity as stored, for operators. */
export async function readStore(
  redis: Redis,
  key: string,
): Promise<{ id: string | null; createdAt: number | null; acceptedAt: number | null }> {
  try {
    const [id, createdAt, acceptedAt] = await redis.hmget(key, 'id', 'createdAt', 'acceptedAt');
    return {
      id: id ?? null,
      createdAt: createdAt == null ? null : Number(createdAt),
      acceptedAt: acceptedAt == null ? null : Number(acceptedAt),
    };
  } catch (error) {
    throw toRuntimeError(error);
  }
}

/** The id copy of the first slot of each master (`null` where missing). */
async function sampleCopies(redis: Redis, key: string): Promise<(string | null)[]> {
  const cluster = clusterOf(redis);
  if (cluster === null) return [];
  const firsts = slotsByMaster(cluster).flatMap((group) => group.slice(0, 1).map((s) => [s]));
  const replies = await everySlot<string | null>(
    cluster,
    (pipeline, slot) => {
      pipeline.hget(slotCopyKey(key, slot), 'id');
    },
    firsts,
  );
  return [...replies.values()];
}

/** A write refused because the store was lost (see `noteLost`). */
function storeLost(): RuntimeError {
  return toRuntimeError(new Error(`${STORE_LOST_REPLY} the store identity changed`));
}
