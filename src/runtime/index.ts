/**
 * Durable XState machines on Redis: the runtime's public names, nothing else
 * (docs/runtime.md). Internals (key layout, job ids, index classes, owed
 * actions) are reached by tests through `./testing.ts`.
 */
export {
  createEngine,
  type Engine,
  type EngineOptions,
  type EngineWorker,
  type WorkerOptions,
} from './engine.ts';
export {
  durableMachine,
  type DurableActors,
  type DurableMachineConfig,
  type EffectContext,
  type Effects,
  type SendResult,
} from './durable-machine.ts';
export { RuntimeError, toRuntimeError, type RuntimeErrorCode } from './runtime-error.ts';
export type { EngineObserver, SpanAttributes } from './engine-observer.ts';
