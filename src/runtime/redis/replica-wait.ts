import type { Redis } from 'ioredis';
import { RuntimeError, toRuntimeError } from '../runtime-error.ts';

/**
 * Acknowledged durability: after a write that an effect or an answer
 * depends on, `WAIT` until that many replicas have it. Replication is
 * asynchronous, so without this a failover can lose a write the service
 * already acted on (a charge intent whose withdrawal went through on another
 * shard, an acknowledged payment). A write the replicas do not confirm in
 * time fails the command with `unavailable`: its effect does not run and the
 * client is told to retry.
 *
 * WAIT counts the replication offset of the connection's own last write, so
 * it goes out on the connection that wrote (on a Cluster, the one to the
 * master of the written key's slot: a pipeline led by a read of that key).
 * It holds that connection while it waits: the timeout stays below the
 * command timeout, so a replica that stops answering costs the commands
 * behind it a delay, never a failure.
 */
export class ReplicaWait {
  constructor(
    private readonly redis: Redis,
    readonly replicas: number,
    private readonly timeoutMs: number,
  ) {}

  /** Resolves once `replicas` replicas hold every write this connection made to `key`'s master. */
  async confirm(key: string): Promise<void> {
    if (this.replicas <= 0) return;
    await this.wait(key, null);
  }

  /**
   * Resolves once `replicas` replicas hold everything `key`'s master had
   * when this was called, whoever wrote it: for a record another process
   * wrote (a crash left its effects owed), before they are run again. WAIT
   * counts this connection's own writes, so a short-lived marker beside the
   * key is written first; the replication stream is in order, so the
   * replicas that have the marker have the record.
   */
  async confirmStored(key: string): Promise<void> {
    if (this.replicas <= 0) return;
    await this.wait(key, `${key}:replicated`);
  }

  private async wait(key: string, marker: string | null): Promise<void> {
    let acked: number;
    try {
      // One pipeline: on a Cluster it goes to the master of the key's slot.
      const pipeline = this.redis.pipeline();
      if (marker === null) pipeline.exists(key);
      else pipeline.set(marker, '1', 'PX', MARKER_TTL_MS);
      pipeline.call('WAIT', this.replicas, this.timeoutMs);
      const replies = await pipeline.exec();
      const [error, value] = replies?.[1] ?? [new Error('no reply to WAIT'), null];
      if (error !== null) throw error;
      acked = Number(value);
    } catch (error) {
      // A store that is full or lost says so. Anything else (Redis refusing
      // WAIT on a node that has just become a replica in a failover, no
      // reply at all) leaves the write unconfirmed, as a timeout does.
      const known = toRuntimeError(error);
      if (known.code !== 'internal') throw known;
      throw new RuntimeError(
        'unavailable',
        'storage replicas could not confirm the write; retry shortly',
        { cause: error },
      );
    }
    if (acked < this.replicas) {
      throw new RuntimeError(
        'unavailable',
        `storage replicas did not confirm the write (${acked} of ${this.replicas}); retry shortly`,
      );
    }
  }
}

/** The marker of confirmStored outlives any WAIT on it. */
const MARKER_TTL_MS = 60_000;
