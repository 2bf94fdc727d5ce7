/**
 * An optional partition of a machine's keys (e.g. by tenant): a function
 * names each key's partition, or none. For every partition the save script
 * keeps, in the same atomic write as the snapshot and beside the machine's
 * own index, a sorted set per top-level state of the partition's keys in it
 * (scored as the machine's: Redis's time of the last write) and an outbox
 * of the partition's keys that owe actions. So a partition's counts cost a
 * ZCARD per state, its listings and stuck keys a page, whatever the other
 * partitions hold. On a Redis Cluster each is kept once per hash slot, as
 * the machine's index is (cluster.ts).
 *
 * The partition of a key must never change (it is read again from the key
 * when an expired record leaves the index), and a partition name must not
 * hold `{`, `}` or `:` (it is part of key names; a brace would move them to
 * another cluster slot).
 */

export type PartitionOf = (key: string) => string | null;

const PARTITION_PATTERN = /^[^{}:]{1,200}$/;

export interface Partitioning {
  readonly of: PartitionOf;
  /** Base of the partitions' keys (MachineKeys.partitions). */
  readonly base: string;
}

/** The partition of `key`, checked: a bad name is a programming error. */
export function partitionOf(partitioning: Partitioning | null, key: string): string | null {
  if (partitioning === null) return null;
  const partition = partitioning.of(key);
  if (partition !== null) checkPartition(partition);
  return partition;
}

export function checkPartition(partition: string): void {
  if (!PARTITION_PATTERN.test(partition)) {
    throw new Error(
      `partition "${partition.slice(0, 80)}" must be 1-200 characters, none of { } :`,
    );
  }
}

/** Sorted set of the partition's keys in `state`, by Redis's time of their last write. */
export function partitionIndexKey(base: string, partition: string, state: string): string {
  return `${base}:${partition}:index:${state}`;
}

/** Sorted set of the partition's keys that owe actions, by Redis's time they were written. */
export function partitionOutboxKey(base: string, partition: string): string {
  return `${base}:${partition}:outbox`;
}

/** The partition's copy of a machine's timer dues or unreadable set (see MachineKeys). */
export function partitionSetKey(
  base: string,
  partition: string,
  set: 'timers' | 'unreadable',
): string {
  return `${base}:${partition}:${set === 'timers' ? 'timer-dues' : 'unreadable'}`;
}

/** Set once the partitions hold every key indexed before they were kept (see StateIndex.backfill). */
export function partitionsBuiltKey(base: string): string {
  return `${base}:built`;
}
