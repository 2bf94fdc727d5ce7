/** Durable XState machines on Redis: the engine's public API. */
export { createEngine, type Engine, type EngineOptions, type EngineWorker } from './engine.ts';
export {
  durableMachine,
  DurableActors,
  type DurableMachineConfig,
  type EffectContext,
  type EffectHandler,
  type HookInfo,
  type HookPoint,
  type LegacyRecord,
  type SendResult,
} from './durable-machine.ts';
export {
  machineKeys,
  type MachineKeys,
  type OwedAction,
  type Timers,
} from './redis/record-store.ts';
export {
  indexState,
  StateIndex,
  type IndexEntry,
  type ListOptions,
  type ListPage,
  type OwedEntry,
} from './redis/state-index.ts';
export { timerJobId, timerQueueName, type TimerJobData } from './redis/timer-queue.ts';
export type { WorkerOptions } from './engine.ts';
export {
  redisErrorKind,
  type EngineObserver,
  type RedisErrorKind,
  type SpanAttributes,
} from './engine-observer.ts';
export {
  isRuntimeError,
  RuntimeError,
  toRuntimeError,
  type RuntimeErrorCode,
} from './runtime-error.ts';
export type { PartitionOf, Partitioning } from './redis/partitions.ts';
