import { DelayedError, Queue, Worker, type ConnectionOptions, type Job } from 'bullmq';
import { toAppError } from '../errors.ts';

/**
 * Expiry timers as BullMQ delayed jobs. The job id is derived from the token
 * and the life of the token, so scheduling twice is a no-op and a timer from
 * an earlier life can never be mistaken for the current one. Delivery is
 * at-least-once: the handler must be idempotent (EXPIRE is).
 *
 * Due times are on Redis's clock (RedisClock). BullMQ promotes a delayed job
 * when the worker's own clock says so, so a worker whose clock runs ahead
 * gets it early: the worker compares the job's due time with Redis's clock
 * and puts an early job back, due when Redis's clock says so (as the
 * worker's own clock counts). A job whose deadline was moved later while it
 * waited (a declined token charged later) is put back for the new deadline
 * the same way, so there is one job per token life.
 */

export const EXPIRY_QUEUE = 'expiry';

export interface ExpiryJobData {
  readonly token: string;
  readonly lifeId: string;
  /** The deadline, epoch ms on Redis's clock. Jobs of older releases have none: due. */
  readonly dueAt?: number;
}

export interface ExpiryTimers {
  schedule(token: string, lifeId: string, expiresAt: number): Promise<void>;
}

/** Tokens are URL-safe (no ':' or '.'), lifeIds are hex: the id is unambiguous. */
export function expiryJobId(token: string, lifeId: string): string {
  return `expire.${lifeId}.${token}`;
}

export interface QueueOptions {
  readonly connection: ConnectionOptions;
  readonly prefix: string;
  /** Redis's time (RedisClock.now). */
  readonly now: () => number;
}

const JOB_OPTIONS = {
  attempts: 50,
  backoff: { type: 'exponential', delay: 200 },
  removeOnComplete: true,
  removeOnFail: { age: 7 * 24 * 3600 },
} as const;

export class BullExpiryTimers implements ExpiryTimers {
  readonly queue: Queue<ExpiryJobData>;
  private readonly now: () => number;

  constructor(options: QueueOptions) {
    this.queue = new Queue<ExpiryJobData>(EXPIRY_QUEUE, {
      connection: options.connection,
      prefix: options.prefix,
    });
    // Connection errors surface through the calls that fail; don't crash on the event.
    this.queue.on('error', () => undefined);
    this.now = options.now;
  }

  async schedule(token: string, lifeId: string, expiresAt: number): Promise<void> {
    const now = this.now();
    try {
      await this.queue.add(
        'expire',
        { token, lifeId, dueAt: expiresAt },
        {
          ...JOB_OPTIONS,
          jobId: expiryJobId(token, lifeId),
          // Created "now" on Redis's clock: the job is due at expiresAt on
          // that clock, whatever this process's own clock says.
          timestamp: now,
          delay: Math.max(0, expiresAt - now),
        },
      );
    } catch (error) {
      throw toAppError(error);
    }
  }

  async close(): Promise<void> {
    await this.queue.close();
  }
}

/** Shortest wait before an early job is delivered again (no busy loop on a clock that jumps). */
const MIN_REARM_MS = 50;

/**
 * Puts the job back in the delayed set, due at `dueAt` on Redis's clock
 * (`now`), counted on this worker's own clock as BullMQ does.
 */
async function rearm(
  job: Job<ExpiryJobData>,
  lockToken: string | undefined,
  dueAt: number,
  now: number,
): Promise<never> {
  await job.updateData({ ...job.data, dueAt });
  await job.moveToDelayed(Date.now() + Math.max(MIN_REARM_MS, dueAt - now), lockToken);
  throw new DelayedError();
}

export interface ExpiryHandling {
  /** The token's deadline is now later than the job's: deliver the job again then. */
  readonly laterDueAt: number | null;
}

export function startExpiryWorker(
  options: QueueOptions & {
    concurrency?: number;
    /** A job held longer than this by a dead worker is delivered again. */
    lockMs?: number;
    onError?: (error: Error) => void;
    /** Told of every job delivered before its due time. */
    onEarly?: (data: ExpiryJobData, earlyByMs: number) => void;
  },
  expire: (data: ExpiryJobData) => Promise<ExpiryHandling>,
): Worker<ExpiryJobData> {
  const worker = new Worker<ExpiryJobData>(
    EXPIRY_QUEUE,
    async (job: Job<ExpiryJobData>, lockToken?: string) => {
      const { dueAt } = job.data;
      const now = options.now();
      if (dueAt !== undefined && now < dueAt) {
        options.onEarly?.(job.data, dueAt - now);
        await rearm(job, lockToken, dueAt, now);
      }
      const { laterDueAt } = await expire(job.data);
      if (laterDueAt !== null) await rearm(job, lockToken, laterDueAt, options.now());
    },
    {
      connection: options.connection,
      prefix: options.prefix,
      concurrency: options.concurrency ?? 32,
      // A job whose worker died mid-job is delivered again. BullMQ's default
      // (1) fails it for good on the second such death and the token would
      // never expire; allow as many as the job's attempts.
      maxStalledCount: JOB_OPTIONS.attempts,
      ...(options.lockMs === undefined
        ? {}
        : { lockDuration: options.lockMs, stalledInterval: options.lockMs }),
    },
  );
  worker.on('error', (error) => options.onError?.(error));
  return worker;
}
