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
  type SendResult,
} from './durable-machine.ts';
export { machineKeys, type MachineKeys } from './redis/record-store.ts';
export { timerJobId, timerQueueName, type TimerJobData } from './redis/timer-queue.ts';
