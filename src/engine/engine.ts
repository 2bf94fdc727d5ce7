import type { Worker } from 'bullmq';
import { Redis } from 'ioredis';
import type { WorkerTarget } from './durable-machine.ts';
import { inSpan, type EngineObserver } from './engine-observer.ts';
import { connectRedis } from './redis/connection.ts';
import { RedisClock } from './redis/redis-clock.ts';
import { StoreIdentity, type StoreIdentityEvents } from './redis/store-identity.ts';
import { startTimerWorker, type TimerJobData } from './redis/timer-queue.ts';
import { startRecoverySweep, type RecoverySweep } from './recovery-sweep.ts';

/**
 * The shared part of durable machines: Redis connections, Redis's clock and
 * the store's identity. Machines are added with `durableMachine(engine, …)`;
 * `startWorker` delivers their timers and sweeps their outboxes.
 */

export interface EngineOptions {
  readonly redisUrl: string;
  /** Prefix of every key the engine writes. */
  readonly prefix: string;
  readonly lockTtlMs?: number;
  /** Longest wait for a key's lock before `token_busy`. */
  readonly lockWaitMs?: number;
  readonly storeEvents?: Partial<StoreIdentityEvents>;
  /** How often the store's identity (and Redis's clock) is read when nothing else does; 0: never. */
  readonly storeCheckIntervalMs?: number;
  /** Told of transitions, effects, lock waits, timers and Redis failures (metrics, tracing). */
  readonly observer?: EngineObserver;
}

export interface WorkerOptions {
  readonly concurrency?: number;
  /** A timer job held longer than this by a dead worker is delivered again. */
  readonly timerLockMs?: number;
  readonly recoveryIntervalMs?: number;
  /** Keys in the outbox for less than this are left to the command that put them there. */
  readonly recoveryGraceMs?: number;
  readonly onError?: (error: unknown, where?: { machine: string; key?: string }) => void;
  readonly onEarlyTimer?: (machine: string, data: TimerJobData, earlyByMs: number) => void;
}

export interface EngineWorker {
  /** One recovery pass now; resolves with the number of keys recovered. */
  sweep(): Promise<number>;
  stop(): Promise<void>;
}

export interface Engine {
  readonly prefix: string;
  readonly queuePrefix: string;
  readonly redis: Redis;
  readonly queueConnection: Redis;
  readonly clock: RedisClock;
  readonly identity: StoreIdentity;
  readonly lockTtlMs: number;
  readonly lockWaitMs: number;
  readonly observer: EngineObserver;
  startWorker(targets: readonly WorkerTarget[], options?: WorkerOptions): Promise<EngineWorker>;
  /** Registers something to close with the engine (a machine's queue). */
  onClose(close: () => Promise<void>): void;
  close(): Promise<void>;
}

export async function createEngine(options: EngineOptions): Promise<Engine> {
  const redis = connectRedis(options.redisUrl);
  const queueConnection = connectRedis(options.redisUrl);
  const clock = new RedisClock();
  const identity = new StoreIdentity(redis, `${options.prefix}:store`, clock, options.storeEvents);
  const closers: (() => Promise<void>)[] = [];
  try {
    await identity.open();
  } catch (error) {
    redis.disconnect();
    queueConnection.disconnect();
    throw error;
  }
  const interval = options.storeCheckIntervalMs ?? 1_000;
  if (interval > 0) identity.watch(interval);
  const lockTtlMs = options.lockTtlMs ?? 5_000;
  const queuePrefix = `${options.prefix}:bull`;
  const observer = options.observer ?? {};

  const startWorker = (
    targets: readonly WorkerTarget[],
    worker: WorkerOptions = {},
  ): Promise<EngineWorker> => {
    // BullMQ's blocking worker connection must retry forever.
    const blocking = new Redis(options.redisUrl, { maxRetriesPerRequest: null });
    blocking.on('error', () => undefined);
    const onError = worker.onError ?? (() => undefined);
    const workers: Worker[] = targets.map((target) =>
      startTimerWorker(
        {
          machine: target.name,
          connection: blocking,
          prefix: queuePrefix,
          now: () => clock.now(),
          ...(worker.concurrency === undefined ? {} : { concurrency: worker.concurrency }),
          ...(worker.timerLockMs === undefined ? {} : { lockMs: worker.timerLockMs }),
          onError: (error) => {
            onError(error, { machine: target.name });
          },
          onEarly: (data, earlyByMs) => worker.onEarlyTimer?.(target.name, data, earlyByMs),
        },
        (data) => {
          // Delivered at or after its due time (an early one is put back before this).
          const latenessMs = clock.now() - data.dueAt;
          observer.onTimerFired?.({ machine: target.name, latenessMs });
          const attributes = { machine: target.name, event: data.event.type, latenessMs };
          return inSpan(observer, 'engine.timer', attributes, () => target.fire(data));
        },
      ),
    );
    const sweep: RecoverySweep = startRecoverySweep({
      targets,
      intervalMs: worker.recoveryIntervalMs ?? 5_000,
      graceMs: worker.recoveryGraceMs ?? lockTtlMs,
      now: () => clock.now(),
      onError: (error, where) => {
        onError(error, where);
      },
    });
    let stopping: Promise<void> | undefined;
    const stop = () => {
      stopping ??= (async () => {
        await sweep.stop();
        await Promise.allSettled(workers.map((w) => w.close()));
        await blocking.quit().catch(() => undefined);
      })();
      return stopping;
    };
    closers.push(stop);
    return Promise.resolve({ sweep: () => sweep.runOnce(), stop });
  };

  let closing: Promise<void> | undefined;
  return {
    prefix: options.prefix,
    queuePrefix,
    redis,
    queueConnection,
    clock,
    identity,
    lockTtlMs,
    lockWaitMs: options.lockWaitMs ?? 5_000,
    observer,
    startWorker,
    onClose: (close) => {
      closers.push(close);
    },
    close() {
      closing ??= (async () => {
        identity.stop();
        await Promise.allSettled(closers.map((close) => close()));
        await Promise.allSettled([redis.quit(), queueConnection.quit()]);
      })();
      return closing;
    },
  };
}
