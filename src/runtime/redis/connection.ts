import { Redis, type RedisOptions } from 'ioredis';
import { connectCluster, type ClusterNode } from './cluster.ts';
import { coalesceWrites } from './write-coalescing.ts';

/** Where the store is: one Redis by URL, or a Redis Cluster by its seed nodes. */
export type RedisTarget = string | { readonly clusterNodes: readonly ClusterNode[] };

/**
 * Longest wait for one Redis command. maxRetriesPerRequest fails commands
 * queued while the connection is down, but not those already sent when it
 * dropped nor any sent into a connection that stays open and never answers:
 * without a timeout those requests hang until Redis is reachable again.
 */
const COMMAND_TIMEOUT_MS = 2_000;

/**
 * Command connection: fail fast while Redis is away so requests get a 503, not a hang.
 *
 * Commands that were in flight when the connection dropped are not sent again
 * on reconnect (they fail by the timeout): the Redis on the other side may have
 * lost the writes before them (an everysec AOF after a host crash, a failover
 * to a replica that lagged), and a side effect re-sent after the record of its
 * intent was lost lands with nothing to fence it, so a retry runs it twice.
 *
 * Commands issued in one turn of the event loop share one socket write (see
 * coalesceWrites): under load that cuts the service's CPU per request by
 * about a third (docs/benchmarks.md).
 */
export function connectRedis(target: RedisTarget): Redis {
  const options: RedisOptions = {
    maxRetriesPerRequest: 1,
    commandTimeout: COMMAND_TIMEOUT_MS,
    autoResendUnfulfilledCommands: false,
    connectTimeout: 2_000,
    retryStrategy: (attempt) => Math.min(attempt * 100, 1_000),
  };
  if (typeof target !== 'string') {
    const cluster = connectCluster(target.clusterNodes, options);
    // Each node's connection, as one Redis's below.
    cluster.on('+node', (node: Redis) => {
      coalesceWrites(node);
    });
    return cluster;
  }
  const redis = new Redis(target, options);
  redis.on('error', () => undefined);
  coalesceWrites(redis);
  return redis;
}

/**
 * A connection that waits as long as it takes (BullMQ's blocking worker
 * connection must retry forever).
 */
export function connectPatiently(target: RedisTarget): Redis {
  if (typeof target !== 'string') {
    return connectCluster(target.clusterNodes, { maxRetriesPerRequest: null });
  }
  const redis = new Redis(target, { maxRetriesPerRequest: null });
  redis.on('error', () => undefined);
  return redis;
}
