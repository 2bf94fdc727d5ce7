import type { Redis } from 'ioredis';
import { toAppError, UnavailableError } from '../../errors.ts';
import { clusterOf } from './cluster.ts';

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
    let acked: number;
    try {
      const cluster = clusterOf(this.redis);
      if (cluster === null) {
        acked = Number(await this.redis.call('WAIT', this.replicas, this.timeoutMs));
      } else {
        const replies = await cluster
          .pipeline()
          .exists(key)
          .call('WAIT', this.replicas, this.timeoutMs)
          .exec();
        const [error, value] = replies?.[1] ?? [new Error('no reply to WAIT'), null];
        if (error !== null) throw error;
        acked = Number(value);
      }
    } catch (error) {
      throw toAppError(error);
    }
    if (acked < this.replicas) {
      throw new UnavailableError(
        `storage replicas did not confirm the write (${acked} of ${this.replicas}); retry shortly`,
      );
    }
  }
}

export const NO_REPLICA_WAIT = { replicas: 0, confirm: () => Promise.resolve() } as const;
