import { Cluster, type Redis } from 'ioredis';

/**
 * Redis Cluster support: hash slots, per-slot companion keys, and the
 * connection.
 *
 * A script may only touch keys of one slot. A record's script also touches
 * keys shared by every record (its machine's outbox, the store's identity):
 * on a Cluster each of those is kept once per slot, under a hash tag chosen
 * so that its copy for slot s lives in slot s (`slotTag`). A record's script
 * uses the copies of its own slot (`besideKey`); a walk over every slot's
 * copy (the recovery sweep) is pipelined per master.
 *
 * On one Redis nothing of this applies: the shared keys keep their single
 * names, as every release has written them.
 */

export const SLOT_COUNT = 16_384;

/** CRC16-CCITT (XMODEM), as Redis Cluster hashes keys. */
function crc16(bytes: Uint8Array): number {
  let crc = 0;
  for (const byte of bytes) {
    crc ^= byte << 8;
    for (let bit = 0; bit < 8; bit++) {
      crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
    }
  }
  return crc;
}

/** The hash slot of `key`: its first non-empty `{…}` if any, else the whole key. */
export function keySlot(key: string): number {
  let hashed = key;
  const open = key.indexOf('{');
  if (open !== -1) {
    const close = key.indexOf('}', open + 1);
    if (close > open + 1) hashed = key.slice(open + 1, close);
  }
  return crc16(Buffer.from(hashed, 'utf8')) % SLOT_COUNT;
}

let tags: string[] | null = null;

/**
 * The shortest base-36 string hashing to each slot, found once (about 170k
 * hashes, a few tens of ms): `{tag}` pins a key to that slot.
 */
function slotTags(): string[] {
  if (tags !== null) return tags;
  const found: (string | undefined)[] = new Array<string | undefined>(SLOT_COUNT);
  let missing = SLOT_COUNT;
  for (let i = 0; missing > 0; i++) {
    const tag = i.toString(36);
    const slot = crc16(Buffer.from(tag, 'ascii')) % SLOT_COUNT;
    if (found[slot] === undefined) {
      found[slot] = tag;
      missing--;
    }
  }
  tags = found as string[];
  return tags;
}

/** A hash tag whose keys live in `slot`. */
export function slotTag(slot: number): string {
  const tag = slotTags()[slot];
  if (tag === undefined) throw new Error(`no slot ${slot}`);
  return tag;
}

/** The copy of the shared key `base` that lives in slot `slot`. */
export function slotCopyKey(base: string, slot: number): string {
  return `${base}:{${slotTag(slot)}}`;
}

/** The copy of the shared key `base` that lives in `key`'s slot. */
export function besideKey(base: string, key: string): string {
  return slotCopyKey(base, keySlot(key));
}

export interface ClusterNode {
  readonly host: string;
  readonly port: number;
}

/** The Cluster behind a client, or `null` for one Redis. */
export function clusterOf(redis: Redis): Cluster | null {
  return (redis as unknown) instanceof Cluster ? (redis as unknown as Cluster) : null;
}

/**
 * A Cluster client typed as the engine's client: it answers every command
 * the engine sends (each script and command touches one slot), so the
 * adapters take either; the few that differ ask `clusterOf`.
 */
export function connectCluster(
  nodes: readonly ClusterNode[],
  redisOptions: NonNullable<ConstructorParameters<typeof Cluster>[1]>['redisOptions'],
  options: { readonly maxRedirections?: number } = {},
): Redis {
  const cluster = new Cluster(
    nodes.map((n) => ({ host: n.host, port: n.port })),
    {
      redisOptions,
      // A failover takes cluster-node-timeout plus an election: keep asking
      // for the new topology rather than failing the command at once.
      retryDelayOnFailover: 200,
      retryDelayOnClusterDown: 300,
      retryDelayOnTryAgain: 100,
      slotsRefreshTimeout: 2_000,
      maxRedirections: options.maxRedirections ?? 16,
      clusterRetryStrategy: (attempt) => Math.min(attempt * 100, 1_000),
    },
  );
  cluster.on('error', () => undefined);
  cluster.on('node error', () => undefined);
  return cluster as unknown as Redis;
}

/**
 * Slots grouped by the master that serves them (as the client last learned
 * the topology), each group addressable by one pipeline.
 */
export function slotsByMaster(cluster: Cluster): number[][] {
  const groups = new Map<string, number[]>();
  for (let slot = 0; slot < SLOT_COUNT; slot++) {
    const master = cluster.slots[slot]?.[0];
    if (master === undefined) continue;
    let group = groups.get(master);
    if (group === undefined) {
      group = [];
      groups.set(master, group);
    }
    group.push(slot);
  }
  return [...groups.values()];
}

/** Slots per pipeline: a walk under load stays well inside the command timeout. */
const SLOTS_PER_PIPELINE = 1_024;

export interface PerSlotReplies<T> {
  readonly replies: Map<number, T>;
  /** Failures of whole pipelines (a master away, a slot moved mid-walk). */
  readonly errors: unknown[];
}

/**
 * Runs `command` for every slot, in pipelines of up to SLOTS_PER_PIPELINE
 * slots of one master (masters in parallel, each one's pipelines in turn),
 * and returns the replies by slot and the failures. The caller's next walk
 * reads the new topology.
 */
export async function perSlot<T>(
  cluster: Cluster,
  command: (pipeline: ReturnType<Cluster['pipeline']>, slot: number) => void,
  slots: readonly number[][] = slotsByMaster(cluster),
): Promise<PerSlotReplies<T>> {
  const replies = new Map<number, T>();
  const errors: unknown[] = [];
  await Promise.all(
    slots.map(async (group) => {
      for (let start = 0; start < group.length; start += SLOTS_PER_PIPELINE) {
        const batch = group.slice(start, start + SLOTS_PER_PIPELINE);
        try {
          const pipeline = cluster.pipeline();
          for (const slot of batch) command(pipeline, slot);
          const results = (await pipeline.exec()) ?? [];
          results.forEach(([error, value], index) => {
            const slot = batch[index];
            if (error !== null) errors.push(error);
            else if (slot !== undefined) replies.set(slot, value as T);
          });
        } catch (error) {
          errors.push(error);
        }
      }
    }),
  );
  return { replies, errors };
}

/** As perSlot, failing on the first failure (for a walk that must reach every slot). */
export async function everySlot<T>(
  cluster: Cluster,
  command: (pipeline: ReturnType<Cluster['pipeline']>, slot: number) => void,
  slots?: readonly number[][],
): Promise<Map<number, T>> {
  const { replies, errors } = await perSlot<T>(cluster, command, slots);
  if (errors.length > 0) throw errors[0];
  return replies;
}

/**
 * Hash tags for `count` timer queues spread evenly over the slot space, so
 * that on a cluster with balanced slot ranges they spread over the masters.
 */
export function spreadTags(count: number): string[] {
  return Array.from({ length: count }, (_, i) =>
    slotTag(Math.floor(((i + 0.5) * SLOT_COUNT) / count)),
  );
}
