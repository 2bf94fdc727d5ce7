import { isRedisFull, StorageFullError, StoreLostError, UnavailableError } from '../errors.ts';

/**
 * What the engine tells an observer (metrics, tracing) about its work. Every
 * field is what the engine defines: machine, state, event and effect names,
 * durations; never a key, whose value is a client's (a token, an account).
 *
 * Every callback is optional, must be cheap and must not throw; the engine
 * calls them inline on the command's path.
 */
export interface EngineObserver {
  /** A machine's state changed `from` → `to` on `event` (state keys, event type). */
  onTransition?(transition: {
    readonly machine: string;
    readonly from: string;
    readonly to: string;
    readonly event: string;
  }): void;
  /** An effect handler ran; `outcome` is its feedback event's type, `none` without one, or `error`. */
  onEffect?(effect: {
    readonly machine: string;
    readonly name: string;
    readonly outcome: string;
    readonly durationMs: number;
  }): void;
  /** A command waited this long for its key's lock (acquired or not). */
  onLockWait?(wait: { readonly machine: string; readonly ms: number }): void;
  /** A command gave up waiting for its key's lock (token_busy). */
  onTokenBusy?(busy: { readonly machine: string }): void;
  /** A write lost its compare-and-set to another process and the command is retried. */
  onStaleWrite?(stale: { readonly machine: string }): void;
  /** A timer was delivered `latenessMs` after its due time (Redis's clock). */
  onTimerFired?(timer: { readonly machine: string; readonly latenessMs: number }): void;
  /** The worker's sweep armed again `count` due timers of a key whose jobs were gone. */
  onTimersRearmed?(rearmed: { readonly machine: string; readonly count: number }): void;
  /** A command failed on Redis: unreachable, out of memory, or the store was lost. */
  onRedisError?(kind: RedisErrorKind): void;
  /**
   * Runs `work` as a unit named `name` (tracing: a span, the current one its
   * parent). `annotate` adds attributes learnt during the work. Absent: the
   * work runs as it is.
   */
  span?<T>(
    name: string,
    attributes: SpanAttributes,
    work: (annotate: (attributes: SpanAttributes) => void) => Promise<T>,
  ): Promise<T>;
}

export type SpanAttributes = Readonly<Record<string, string | number | boolean>>;

export type RedisErrorKind = 'unavailable' | 'full' | 'lost';

/** What a command's failure means about Redis, or null when it is not a Redis failure. */
export function redisErrorKind(error: unknown): RedisErrorKind | null {
  if (error instanceof UnavailableError) return 'unavailable';
  if (error instanceof StorageFullError || isRedisFull(error)) return 'full';
  if (error instanceof StoreLostError) return 'lost';
  return null;
}

const ignore = (): void => undefined;

/** Runs `work` in the observer's span, or as it is. */
export function inSpan<T>(
  observer: EngineObserver,
  name: string,
  attributes: SpanAttributes,
  work: (annotate: (attributes: SpanAttributes) => void) => Promise<T>,
): Promise<T> {
  return observer.span === undefined ? work(ignore) : observer.span(name, attributes, work);
}
