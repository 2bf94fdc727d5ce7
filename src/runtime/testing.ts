/**
 * The runtime's internals, for tests and operator tools that inspect what it
 * stored: the key layout, timer job ids, the state index, owed actions and a
 * hook at named steps of every command (fault injection). Not part of the
 * public API (src/runtime/index.ts): these change without notice.
 */
export {
  setCommandHook,
  type CommandHook,
  type HookInfo,
  type HookPoint,
  type LegacyRecord,
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
export { redisErrorKind, type RedisErrorKind } from './engine-observer.ts';
export type { PartitionOf, Partitioning } from './redis/partitions.ts';
