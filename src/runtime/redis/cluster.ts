import { createHash } from 'node:crypto';
import { Cluster, type Redis } from 'ioredis';
import { RuntimeError } from '../runtime-error.ts';

/**
 * Redis Cluster support: hash slots, per-slot companion keys, and the
 * connection.
 *
 * A script may only touch keys of one slot. A record's script also touches
 * keys shared by every record (its machine's outbox, the store's identity):
 * on a Cluster each of those is kept once per slot, under a hash tag chosen
 * so that its copy for slot s lives in slot s (`slotTag`). A record's script
 * uses the copies of its own slot (`besideKey`); a walk over every slot's
 * copy is pipelined per master (the recovery sweep, `perSlot`) or one
 * script per master and batch of slots (the state index's reads,
 * `perMaster`).
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
 * Slots (every slot, or `only` those) grouped by the master that serves
 * them (as the client last learned the topology), each group addressable by
 * one pipeline.
 */
export function slotsByMaster(cluster: Cluster, only?: Iterable<number>): number[][] {
  const groups = new Map<string, number[]>();
  const slots = only === undefined ? Array.from({ length: SLOT_COUNT }, (_, i) => i) : only;
  for (const slot of slots) {
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

/**
 * As slotsByMaster, once the client knows a master for each of the slots:
 * a client that has not connected yet is waited for, one whose topology
 * lacks a slot refreshes it once. The groups may still leave slots out (no
 * master holds them now): the caller tells.
 */
export async function knownSlotsByMaster(
  cluster: Cluster,
  only?: readonly number[],
): Promise<number[][]> {
  const wanted = only === undefined ? SLOT_COUNT : new Set(only).size;
  const covered = (groups: number[][]) => groups.reduce((n, group) => n + group.length, 0);
  const groups = slotsByMaster(cluster, only);
  if (covered(groups) >= wanted) return groups;
  await new Promise<void>((resolve, reject) => {
    const done = (error?: Error | null) => {
      if (error) reject(error);
      else resolve();
    };
    if (cluster.status === 'ready') cluster.refreshSlotsCache(done);
    else cluster.delayUntilReady(done);
  });
  return slotsByMaster(cluster, only);
}

/** Slots per pipeline: a walk under load stays well inside the command timeout. */
const SLOTS_PER_PIPELINE = 1_024;

export interface PerSlotReplies<T> {
  readonly replies: Map<number, T>;
  /** Failures of whole pipelines (a master away, a slot moved mid-walk). */
  readonly errors: unknown[];
}

/**
 * Runs `command` for every slot (or the groups given), in pipelines of up
 * to SLOTS_PER_PIPELINE slots of one master (masters in parallel, each one's
 * pipelines in turn), and returns the replies by slot and the failures. The caller's next walk
 * reads the new topology.
 */
export async function perSlot<T>(
  cluster: Cluster,
  command: (pipeline: ReturnType<Cluster['pipeline']>, slot: number) => void,
  slots?: readonly number[][],
): Promise<PerSlotReplies<T>> {
  const replies = new Map<number, T>();
  const errors: unknown[] = [];
  await Promise.all(
    (slots ?? (await knownSlotsByMaster(cluster))).map(async (group) => {
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

/**
 * A read-only script that walks many slots' copies of shared keys in one
 * call. Its keys are not declared: it gets the slots' key suffixes
 * (`:{tag}`, see slotCopyKey) in ARGV and names the copies itself, which the
 * flag `allow-cross-slot-keys` (Redis 7.0) allows for the slots of the node
 * it runs on; a copy whose slot that node does not serve (a stale topology,
 * a slot being moved) fails the call instead of reading nothing.
 */
export interface SlotsScript {
  readonly lua: string;
  readonly sha: string;
}

export function slotsScript(body: string, { cluster = true } = {}): SlotsScript {
  // One Redis needs no flag (nor Redis 7.0): the same body runs there with the suffix ''.
  const lua = cluster ? `#!lua flags=no-writes,allow-cross-slot-keys\n${body}` : body;
  return { lua, sha: createHash('sha1').update(lua).digest('hex') };
}

/** Runs `script` on `node` by its SHA, loading it on a node that does not have it. */
export async function runScript(
  node: Redis,
  script: SlotsScript,
  argv: readonly (string | number)[],
): Promise<unknown> {
  try {
    return await node.evalsha(script.sha, 0, ...argv);
  } catch (error) {
    if (!(error instanceof Error) || !error.message.startsWith('NOSCRIPT')) throw error;
    return await node.eval(script.lua, 0, ...argv);
  }
}

/** The suffix of a shared key's copy in `slot`: `${base}${slotSuffix(slot)}` is slotCopyKey(base, slot). */
export function slotSuffix(slot: number): string {
  return `:{${slotTag(slot)}}`;
}

/**
 * Slots per call of perMaster: one call walks its slots while the master
 * serves nothing else, so each stays a few milliseconds.
 */
const SLOTS_PER_SCRIPT = 1_024;

/** A script's read of a copy whose slot its node does not serve (any more, or not yet). */
const MOVED_PATTERN = /non local key|\bMOVED\b|\bASK\b/;

/**
 * Runs `script` on each master for the slots it serves (every slot, or
 * `only` those), up to SLOTS_PER_SCRIPT slots a call (masters in parallel,
 * each one's calls in turn), with ARGV `args` then each slot's suffix.
 * Returns each call's slots, in ARGV order, and its reply; fails if a slot
 * has no master the client knows, or on the first failure.
 */
export async function perMaster(
  cluster: Cluster,
  script: SlotsScript,
  args: readonly (string | number)[],
  only?: readonly number[],
): Promise<{ slots: number[]; reply: unknown }[]> {
  const groups = await knownSlotsByMaster(cluster, only);
  const wanted = only === undefined ? SLOT_COUNT : new Set(only).size;
  if (groups.reduce((n, group) => n + group.length, 0) < wanted) {
    throw new RuntimeError(
      'unavailable',
      'some hash slots of the cluster have no master; retry shortly',
    );
  }
  const masters = new Map(
    cluster.nodes('master').map((n) => [`${n.options.host}:${n.options.port}`, n]),
  );
  const calls = await Promise.all(
    groups.map(async (group) => {
      const address = group[0] === undefined ? undefined : cluster.slots[group[0]]?.[0];
      const node = address === undefined ? undefined : masters.get(address);
      if (node === undefined) {
        throw new RuntimeError(
          'unavailable',
          'a master of the cluster is not connected; retry shortly',
        );
      }
      const done: { slots: number[]; reply: unknown }[] = [];
      for (let start = 0; start < group.length; start += SLOTS_PER_SCRIPT) {
        const slots = group.slice(start, start + SLOTS_PER_SCRIPT);
        let reply: unknown;
        try {
          reply = await runScript(node, script, [...args, ...slots.map(slotSuffix)]);
        } catch (error) {
          if (!(error instanceof Error) || !MOVED_PATTERN.test(error.message)) throw error;
          // The slot moved (or is moving): the next walk reads the new topology.
          cluster.refreshSlotsCache();
          throw new RuntimeError(
            'unavailable',
            'a hash slot moved while it was read; retry shortly',
            {
              cause: error,
            },
          );
        }
        done.push({ slots, reply });
      }
      return done;
    }),
  );
  return calls.flat();
}
