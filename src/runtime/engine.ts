import type { Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import type { WorkerTarget } from './durable-machine.ts';
import { inSpan, type EngineObserver } from './engine-observer.ts';
import { clusterOf, spreadTags, type ClusterNode } from './redis/cluster.ts';
import { connectPatiently, connectRedis, type RedisTarget } from './redis/connection.ts';
import { ReplicaWait } from './redis/replica-wait.ts';
import { RedisClock } from './redis/redis-clock.ts';
import { StoreIdentity, type StoreIdentityEvents } from './redis/store-identity.ts';
import { startTimerWorker, type TimerJobData } from './redis/timer-queue.ts';
import { startRecoverySweep, type RecoverySweep } from './recovery-sweep.ts';
import { startRemovalSweep } from './removal-sweep.ts';

/**
 * The shared part of durable machines: Redis connections, Redis's clock and
 * the store's identity. Machines are added with `durableMachine(engine, …)`;
 * `startWorker` delivers their timers and sweeps their outboxes.
 */

export interface EngineOptions {
  readonly redisUrl: string;
  /** Seed nodes of a Redis Cluster; when set, `redisUrl` is not used. */
  readonly clusterNodes?: readonly ClusterNode[] | null;
  /** Replicas that must confirm each write (WAIT) before its effects run and before an answer. */
  readonly waitReplicas?: number;
  readonly waitTimeoutMs?: number;
  /** On a Cluster, how many queues each machine's timers spread over (default 6). */
  readonly timerQueues?: number;
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
  /** How often keys past their removal deadline are removed (default 1000; 5000 on a Cluster). */
  readonly removalIntervalMs?: number;
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
  /** BullMQ prefix of each machine's first timer queue. */
  readonly queuePrefix: string;
  /** BullMQ prefixes of all of a machine's timer queues (one on one Redis). */
  readonly queuePrefixes: readonly string[];
  readonly redis: Redis;
  /** Waits for replicas after writes (a no-op unless `waitReplicas` is set). */
  readonly replicas: ReplicaWait;
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
  const target: RedisTarget =
    options.clusterNodes == null || options.clusterNodes.length === 0
      ? options.redisUrl
      : { clusterNodes: options.clusterNodes };
  const redis = connectRedis(target);
  const queueConnection = connectRedis(target);
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
  // One queue per machine on one Redis (the layout every release used); on a
  // Cluster, braced prefixes spread over the slot space (see TimerQueue).
  const queuePrefixes =
    clusterOf(redis) === null
      ? [`${options.prefix}:bull`]
      : spreadTags(options.timerQueues ?? 6).map((tag) => `${options.prefix}:bull:{${tag}}`);
  const queuePrefix = queuePrefixes[0] ?? `${options.prefix}:bull`;
  const replicas = new ReplicaWait(
    redis,
    options.waitReplicas ?? 0,
    options.waitTimeoutMs ?? 1_000,
  );
  const observer = options.observer ?? {};

  const startWorker = (
    targets: readonly WorkerTarget[],
    worker: WorkerOptions = {},
  ): Promise<EngineWorker> => {
    // BullMQ's blocking worker connection must retry forever.
    const blocking = connectPatiently(target);
    const onError = worker.onError ?? (() => undefined);
    const workers: Worker[] = targets.flatMap((machine) =>
      queuePrefixes.map((prefix) =>
        startTimerWorker(
          {
            machine: machine.name,
            connection: blocking,
            prefix,
            now: () => clock.now(),
            ...(worker.concurrency === undefined ? {} : { concurrency: worker.concurrency }),
            ...(worker.timerLockMs === undefined ? {} : { lockMs: worker.timerLockMs }),
            onError: (error) => {
              onError(error, { machine: machine.name });
            },
            onEarly: (data, earlyByMs) => worker.onEarlyTimer?.(machine.name, data, earlyByMs),
          },
          (data) => {
            // Delivered at or after its due time (an early one is put back before this).
            const latenessMs = clock.now() - data.dueAt;
            observer.onTimerFired?.({ machine: machine.name, latenessMs });
            const attributes = { machine: machine.name, event: data.event.type, latenessMs };
            return inSpan(observer, 'engine.timer', attributes, () => machine.fire(data));
          },
        ),
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
      onRearmed: (machine, count) => observer.onTimersRearmed?.({ machine, count }),
    });
    const removal = startRemovalSweep({
      targets,
      // A Cluster's pass walks every slot: as often as the recovery sweep's.
      intervalMs: worker.removalIntervalMs ?? (clusterOf(redis) === null ? 1_000 : 5_000),
      onError: (error, where) => {
        onError(error, where);
      },
    });
    let stopping: Promise<void> | undefined;
    const stop = () => {
      stopping ??= (async () => {
        await Promise.all([sweep.stop(), removal.stop()]);
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
    queuePrefixes,
    redis,
    replicas,
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
