/**
 * The engine with the toy ticket machine of test/engine (no payment code),
 * over a test Redis with a key prefix of its own.
 */
import { Queue } from 'bullmq';
import { Redis as IORedis, type Redis } from 'ioredis';
import {
  createEngine,
  durableMachine,
  type DurableActors,
  type DurableMachineConfig,
  type Effects,
  type Engine,
  type EngineObserver,
} from '../../src/runtime/index.ts';
import {
  timerQueueName,
  type TimerJobData,
  setCommandHook,
  type CommandHook,
} from '../../src/runtime/testing.ts';
import { ticketMachine } from '../runtime/ticket.machine.ts';

export type Tickets = DurableActors<typeof ticketMachine>;

/** A handler of the ticket machine's `ship` action. */
export type ShipHandler = NonNullable<Effects<typeof ticketMachine>['ship']>;

export interface TicketsOptions {
  readonly ship?: ShipHandler;
  readonly retentionMs?: DurableMachineConfig<typeof ticketMachine>['finalStateRetentionMs'];
  readonly lockTtlMs?: number;
  readonly lockWaitMs?: number;
  /** Called at the named steps of every command (testing entry's setCommandHook). */
  readonly hook?: CommandHook;
  readonly timerEvent?: DurableMachineConfig<typeof ticketMachine>['timerEvent'];
  readonly keys?: DurableMachineConfig<typeof ticketMachine>['keys'];
  readonly partition?: DurableMachineConfig<typeof ticketMachine>['partition'];
  /** Seed nodes of a Redis Cluster: the engine runs on it instead of `redisUrl`. */
  readonly clusterNodes?: readonly { host: string; port: number }[];
  readonly observer?: EngineObserver;
}

/** Hash of shipments by operation id: one entry per operation, however often it is replayed. */
export const shipmentsKey = (prefix: string) => `${prefix}:test:shipments`;

/** Ships idempotently by the operation id, then answers SHIPPED. */
export function shipOnce(redis: Redis, prefix: string): ShipHandler {
  return async (params, context) => {
    await redis.hsetnx(shipmentsKey(prefix), context.operationId, params.key);
    return { type: 'SHIPPED' };
  };
}

export async function startTickets(
  redisUrl: string,
  prefix: string,
  options: TicketsOptions = {},
): Promise<{ engine: Engine; tickets: Tickets }> {
  const engine = await createEngine({
    redisUrl,
    ...(options.clusterNodes === undefined ? {} : { clusterNodes: options.clusterNodes }),
    prefix,
    lockTtlMs: options.lockTtlMs ?? 5_000,
    lockWaitMs: options.lockWaitMs ?? 10_000,
    storeCheckIntervalMs: 0,
    ...(options.observer === undefined ? {} : { observer: options.observer }),
  });
  const tickets = durableMachine(engine, {
    name: 'ticket',
    machine: ticketMachine,
    version: 1,
    input: (key, now, lifeId) => ({ key, now, lifeId }),
    effects: { ship: options.ship ?? shipOnce(engine.redis, prefix) },
    finalStateRetentionMs: options.retentionMs ?? 60_000,
    ...(options.timerEvent === undefined ? {} : { timerEvent: options.timerEvent }),
    ...(options.keys === undefined ? {} : { keys: options.keys }),
    ...(options.partition === undefined ? {} : { partition: options.partition }),
  });
  if (options.hook !== undefined) setCommandHook(tickets, options.hook);
  return { engine, tickets };
}

/** The raw hash the engine stores for a ticket (empty when it has none). */
export async function storedTicket(
  redis: Redis,
  prefix: string,
  key: string,
): Promise<Record<string, string>> {
  return redis.hgetall(`${prefix}:ticket:{${key}}`);
}

/** The live timers a ticket's record holds: id → { seq, dueAt }. */
export async function storedTimers(
  redis: Redis,
  prefix: string,
  key: string,
): Promise<Record<string, { seq: number; dueAt: number }>> {
  const json = await redis.hget(`${prefix}:ticket:{${key}}`, 't');
  return json === null ? {} : (JSON.parse(json) as Record<string, { seq: number; dueAt: number }>);
}

/** Redis's time, epoch ms. */
export async function redisNow(redis: Redis): Promise<number> {
  const [seconds = '0', micros = '0'] = await redis.time();
  return Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
}

/** The ticket machine's timer queue, as a test reads it; `close` closes its connection too. */
export function ticketTimerQueue(
  redisUrl: string,
  prefix: string,
): { queue: Queue<TimerJobData>; close: () => Promise<void> } {
  const connection = new IORedis(redisUrl, { maxRetriesPerRequest: null });
  const queue = new Queue<TimerJobData>(timerQueueName('ticket'), {
    connection,
    prefix: `${prefix}:bull`,
  });
  return {
    queue,
    async close() {
      await queue.close();
      await connection.quit();
    },
  };
}

/** The delayed timer jobs of `key`. */
export async function delayedTimersOf(
  queue: Queue<TimerJobData>,
  key: string,
): Promise<TimerJobData[]> {
  const jobs = await queue.getDelayed();
  return jobs.map((job) => job.data).filter((data) => data.key === key);
}
