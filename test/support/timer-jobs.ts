/**
 * The payment expiry timer as the engine keeps it: an entry `expire` in the
 * record's live timers (field `t`: id → { seq, dueAt }) and a BullMQ delayed
 * job in the queue `payment-timers` whose id names key, life, seq and id.
 */
import { Queue, type Job } from 'bullmq';
import { Cluster, Redis } from 'ioredis';
import { timerJobId, timerQueueName, type TimerJobData } from '../../src/runtime/testing.ts';
import { spreadTags } from '../../src/runtime/redis/cluster.ts';
import { timerQueueIndex } from '../../src/runtime/redis/timer-queue.ts';
import { EXPIRY_TIMER_ID } from '../../src/machine/payment.machine.ts';

export type { TimerJobData };

/** The payment machine's timer queue under a service's key prefix. */
export function paymentTimerQueue(redisUrl: string, keyPrefix: string): Queue<TimerJobData> {
  return new Queue<TimerJobData>(timerQueueName('payment'), {
    connection: new Redis(redisUrl, { maxRetriesPerRequest: null }),
    prefix: `${keyPrefix}:bull`,
  });
}

/** The record's hash key (the layout of src/payments/keys.ts). */
export function recordKey(keyPrefix: string, token: string): string {
  return `${keyPrefix}:{${token}}:state`;
}

/** The job id of the token's live expiry timer, or null when the record has none. */
export function expiryJobIdOf(
  redis: Redis,
  keyPrefix: string,
  token: string,
): Promise<string | null> {
  return timerJobIdOf(redis, keyPrefix, token, EXPIRY_TIMER_ID);
}

/** The job id of the token's live timer `id` (`expire`, `capture-window`), or null. */
export async function timerJobIdOf(
  redis: Redis,
  keyPrefix: string,
  token: string,
  id: string,
): Promise<string | null> {
  const [lifeId, timers] = await redis.hmget(recordKey(keyPrefix, token), 'l', 't');
  if (lifeId == null || timers == null) return null;
  const entry = (JSON.parse(timers) as Record<string, { seq: number } | undefined>)[id];
  if (entry === undefined) return null;
  return timerJobId({ key: token, lifeId, id, seq: entry.seq });
}

/** An expiry job's data as the engine arms it, for tests that add one themselves. */
export function expiryJobData(token: string, lifeId: string, seq: number, dueAt = 0): TimerJobData {
  return { key: token, lifeId, id: EXPIRY_TIMER_ID, seq, dueAt, event: { type: 'EXPIRE' } };
}

/**
 * Delivers a real delayed timer job now, as if its due time had passed: the
 * worker puts back a job delivered before its due time (Redis's clock), so
 * the test moves the due time to the past, standing in for the wait.
 */
export async function fireNow(job: Job<TimerJobData>): Promise<void> {
  await job.updateData({ ...job.data, dueAt: 0 });
  await job.promote();
}

/**
 * The payment machine's timer queues on a Redis Cluster (the service's
 * TIMER_QUEUES of them, braced prefixes), and the one that holds a token's
 * timers.
 */
export function clusterTimerQueues(
  seeds: string,
  keyPrefix: string,
  timerQueues: number,
): { queueFor(token: string): Queue<TimerJobData>; close(): Promise<void> } {
  const nodes = seeds.split(',').map((seed) => {
    const [host = '', port = ''] = seed.split(':');
    return { host, port: Number(port) };
  });
  const connection = new Cluster(nodes, { redisOptions: { maxRetriesPerRequest: null } });
  connection.on('error', () => undefined);
  const queues = spreadTags(timerQueues).map(
    (tag) =>
      new Queue<TimerJobData>(timerQueueName('payment'), {
        connection,
        prefix: `${keyPrefix}:bull:{${tag}}`,
      }),
  );
  return {
    queueFor(token) {
      const queue = queues[timerQueueIndex(token, queues.length)];
      if (queue === undefined) throw new Error('no timer queue');
      return queue;
    },
    async close() {
      await Promise.allSettled(queues.map((q) => q.close()));
      connection.disconnect();
    },
  };
}
