import { DelayedError, Queue, Worker, type ConnectionOptions, type Job } from 'bullmq';
import { toAppError } from '../../errors.ts';
import { keySlot } from './cluster.ts';

/**
 * A machine's delayed events as BullMQ delayed jobs, one queue per machine.
 * The job id is derived from the key, its life, the timer's sequence number
 * and id, so arming the same timer twice (a replay of owed actions) adds one
 * job, and a timer re-armed with the same id gets a job of its own.
 *
 * Delivery is at-least-once; whether a delivered timer still counts is
 * decided under the key's lock against the timers the record holds (see
 * DurableActors), not here.
 *
 * Due times are on Redis's clock. BullMQ promotes a delayed job when the
 * worker's own clock says so, so a worker whose clock runs ahead gets it
 * early: the worker compares the job's due time with Redis's clock and puts
 * an early job back, due when Redis's clock says so (as the worker's own
 * clock counts).
 *
 * A machine's timers may spread over several queues (one BullMQ queue lives
 * in one cluster slot: on a Cluster, one queue would put every timer on one
 * shard). Each queue has its own prefix (braced on a Cluster); a key's
 * timers always go to the same queue, by the hash of the key; a worker
 * consumes every queue.
 */

export interface TimerJobData {
  readonly key: string;
  readonly lifeId: string;
  readonly id: string;
  readonly seq: number;
  /** Epoch ms on Redis's clock. */
  readonly dueAt: number;
  readonly event: { readonly type: string };
}

/** BullMQ job ids may not contain ':'; encodeURIComponent leaves none, nor a '/'. */
export function timerJobId(data: Pick<TimerJobData, 'key' | 'lifeId' | 'id' | 'seq'>): string {
  return `t/${encodeURIComponent(data.key)}/${data.lifeId}/${data.seq}/${encodeURIComponent(data.id)}`;
}

export function timerQueueName(machine: string): string {
  return `${machine}-timers`;
}

const JOB_OPTIONS = {
  attempts: 50,
  backoff: { type: 'exponential', delay: 200 },
  removeOnComplete: true,
  removeOnFail: { age: 7 * 24 * 3600 },
} as const;

export interface TimerQueueOptions {
  readonly machine: string;
  readonly connection: ConnectionOptions;
  /** BullMQ prefix of the machine's first queue. */
  readonly prefix: string;
  /** Prefixes of all its queues, when more than one (`prefix` is then the first). */
  readonly prefixes?: readonly string[];
  /** Redis's time (RedisClock.now). */
  readonly now: () => number;
}

/** The queue (index into the prefixes) that holds `key`'s timers. */
export function timerQueueIndex(key: string, queues: number): number {
  return queues <= 1 ? 0 : keySlot(key) % queues;
}

export class TimerQueue {
  readonly queues: readonly Queue<TimerJobData>[];

  constructor(private readonly options: TimerQueueOptions) {
    this.queues = (options.prefixes ?? [options.prefix]).map((prefix) => {
      const queue = new Queue<TimerJobData>(timerQueueName(options.machine), {
        connection: options.connection,
        prefix,
      });
      // Connection errors surface through the calls that fail; don't crash on the event.
      queue.on('error', () => undefined);
      return queue;
    });
  }

  /** The first queue (the only one on one Redis). */
  get queue(): Queue<TimerJobData> {
    const [first] = this.queues;
    if (first === undefined) throw new Error('no timer queue');
    return first;
  }

  private queueFor(key: string): Queue<TimerJobData> {
    const queue = this.queues[timerQueueIndex(key, this.queues.length)];
    if (queue === undefined) throw new Error('no timer queue');
    return queue;
  }

  async arm(data: TimerJobData): Promise<void> {
    const now = this.options.now();
    try {
      await this.queueFor(data.key).add(data.event.type, data, {
        ...JOB_OPTIONS,
        jobId: timerJobId(data),
        // Created "now" on Redis's clock: due at dueAt on that clock.
        timestamp: now,
        delay: Math.max(0, data.dueAt - now),
      });
    } catch (error) {
      throw toAppError(error);
    }
  }

  /**
   * Arms the timer again unless its job is there and can still be delivered:
   * a job that is gone (deleted, lost with a write Redis did not keep) or
   * failed for good is replaced. Returns whether it was. A job that ran
   * meanwhile and is armed again changes nothing (see fire).
   */
  async ensure(data: TimerJobData): Promise<boolean> {
    const jobId = timerJobId(data);
    try {
      const job = await this.queueFor(data.key).getJob(jobId);
      if (job !== undefined) {
        if ((await job.getState()) !== 'failed') return false;
        await job.remove();
      }
    } catch (error) {
      throw toAppError(error);
    }
    await this.arm(data);
    return true;
  }

  /** Best effort: a cancelled timer left in the queue changes nothing when delivered. */
  async remove(jobIds: readonly string[]): Promise<void> {
    // Rare (an explicit cancel): each queue is asked rather than the id parsed.
    await Promise.allSettled(this.queues.flatMap((q) => jobIds.map((id) => q.remove(id))));
  }

  async close(): Promise<void> {
    await Promise.allSettled(this.queues.map((q) => q.close()));
  }
}

/** Shortest wait before an early job is delivered again (no busy loop on a clock that jumps). */
const MIN_REARM_MS = 50;

export interface TimerWorkerOptions {
  readonly machine: string;
  readonly connection: ConnectionOptions;
  readonly prefix: string;
  readonly now: () => number;
  readonly concurrency?: number;
  /** A job held longer than this by a dead worker is delivered again. */
  readonly lockMs?: number;
  readonly onError?: (error: Error) => void;
  /** Told of every job delivered before its due time. */
  readonly onEarly?: (data: TimerJobData, earlyByMs: number) => void;
}

export function startTimerWorker(
  options: TimerWorkerOptions,
  fire: (data: TimerJobData) => Promise<void>,
): Worker<TimerJobData> {
  const worker = new Worker<TimerJobData>(
    timerQueueName(options.machine),
    async (job: Job<TimerJobData>, lockToken?: string) => {
      const { dueAt } = job.data;
      const now = options.now();
      if (now < dueAt) {
        options.onEarly?.(job.data, dueAt - now);
        // Back in the delayed set, due at dueAt on Redis's clock, counted on
        // this worker's own clock as BullMQ does.
        await job.moveToDelayed(Date.now() + Math.max(MIN_REARM_MS, dueAt - now), lockToken);
        throw new DelayedError();
      }
      await fire(job.data);
    },
    {
      connection: options.connection,
      prefix: options.prefix,
      concurrency: options.concurrency ?? 32,
      // A job whose worker died mid-job is delivered again; BullMQ's default
      // (1) would fail it for good on the second such death.
      maxStalledCount: JOB_OPTIONS.attempts,
      ...(options.lockMs === undefined
        ? {}
        : { lockDuration: options.lockMs, stalledInterval: options.lockMs }),
    },
  );
  worker.on('error', (error) => options.onError?.(error));
  return worker;
}
