/**
 * The engine's observer fed into the service's Prometheus metrics, and the
 * gauges read at scrape time (outbox, timer queue) for one durable machine.
 */
import type { EngineObserver } from '../runtime/index.ts';
import type { Metrics, OutboxState, QueueCounts } from './metrics.ts';

export function metricsObserver(metrics: Metrics): EngineObserver {
  return {
    onTransition: ({ machine, from, to, event }) => {
      metrics.transition(machine, from, to, event);
    },
    onEffect: ({ name, outcome, durationMs }) => {
      metrics.effect(name, outcome, durationMs / 1000);
    },
    onLockWait: ({ ms }) => {
      metrics.lockWait(ms / 1000);
    },
    onTokenBusy: () => {
      metrics.tokenBusy();
    },
    onStaleWrite: () => {
      metrics.staleWrite();
    },
    onTimerFired: ({ latenessMs }) => {
      metrics.timerLateness(latenessMs / 1000);
    },
    onTimersRearmed: ({ machine, count }) => {
      metrics.timersRearmed(machine, count);
    },
    onRedisError: (kind) => {
      metrics.redisError(kind);
    },
  };
}

/** What a scrape reads of one durable machine (DurableActors has these). */
export interface ObservedMachine {
  readonly name: string;
  outboxState(): Promise<{ depth: number; oldestAt: number | null }>;
  timerJobCounts(): Promise<Record<string, number>>;
}

/**
 * A scrape waits at most this long for Redis: a Redis that is away leaves the
 * gauges without samples instead of failing or holding the scrape.
 */
export const SCRAPE_READ_TIMEOUT_MS = 1_000;

/** Rejects when `promise` has not settled within `ms`. */
function within<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        reject(new Error(`no answer within ${ms} ms`));
      }, ms);
    }),
  ]).finally(() => {
    clearTimeout(timer);
  });
}

/**
 * Registers the machine's outbox and timer queue gauges: two O(log n) Redis
 * reads for the outbox, BullMQ's job counts (one round trip) for the queue.
 */
export function observeMachine(
  metrics: Metrics,
  machine: ObservedMachine,
  options: { readonly queue: string; readonly now: () => number },
): void {
  metrics.observeOutbox(machine.name, async (): Promise<OutboxState> => {
    const { depth, oldestAt } = await within(machine.outboxState(), SCRAPE_READ_TIMEOUT_MS);
    const oldestAgeSeconds = oldestAt === null ? 0 : Math.max(0, options.now() - oldestAt) / 1000;
    return { depth, oldestAgeSeconds };
  });
  metrics.observeQueue(options.queue, (): Promise<QueueCounts> =>
    within(machine.timerJobCounts(), SCRAPE_READ_TIMEOUT_MS),
  );
}
