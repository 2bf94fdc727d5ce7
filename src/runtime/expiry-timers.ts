import { Queue, Worker, type ConnectionOptions, type Job } from 'bullmq';
import { toAppError } from '../errors.ts';

/**
 * Expiry timers as BullMQ delayed jobs. The job id is derived from the token
 * and the life of the token, so scheduling twice is a no-op and a timer from
 * an earlier life can never be mistaken for the current one. Delivery is
 * at-least-once: the handler must be idempotent (EXPIRE is).
 */

export const EXPIRY_QUEUE = 'expiry';

export interface ExpiryJobData {
  readonly token: string;
  readonly lifeId: string;
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
  readonly now?: () => number;
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
    this.now = options.now ?? Date.now;
  }

  async schedule(token: string, lifeId: string, expiresAt: number): Promise<void> {
    try {
      await this.queue.add(
        'expire',
        { token, lifeId },
        {
          ...JOB_OPTIONS,
          jobId: expiryJobId(token, lifeId),
          delay: Math.max(0, expiresAt - this.now()),
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

export function startExpiryWorker(
  options: QueueOptions & {
    concurrency?: number;
    /** A job held longer than this by a dead worker is delivered again. */
    lockMs?: number;
    onError?: (error: Error) => void;
  },
  expire: (data: ExpiryJobData) => Promise<void>,
): Worker<ExpiryJobData> {
  const worker = new Worker<ExpiryJobData>(
    EXPIRY_QUEUE,
    async (job: Job<ExpiryJobData>) => {
      await expire(job.data);
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
