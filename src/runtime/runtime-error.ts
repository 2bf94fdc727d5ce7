/**
 * The runtime's one error class. `code` is stable (callers branch on it, an
 * application maps it to its own answers); `retryable` says whether the same
 * command may succeed later with nothing changed on the caller's side.
 * Business outcomes are states of the machine, never errors.
 */
export type RuntimeErrorCode =
  /** Another command held the key's lock longer than `lockWaitMs`. */
  | 'busy'
  /** The write lost its compare-and-set on every retry: another process kept moving the key. */
  | 'stale_write'
  /** Redis could not be reached, did not answer in time, or refuses writes for now. */
  | 'unavailable'
  /** Redis is at `maxmemory` under `noeviction`: the write was refused, nothing is lost. */
  | 'storage_full'
  /** The Redis answering is not the store this process wrote to (emptied or replaced). */
  | 'store_lost'
  /** A wait ran out before its condition held. */
  | 'timeout'
  /** The machine uses something the runtime cannot make durable, or the options are invalid. */
  | 'unsupported'
  /** An event, key or argument the runtime refuses as given (nothing was written). */
  | 'invalid_event'
  /** A listing's cursor is not one a listing returned. */
  | 'invalid_cursor'
  /** A stored record this build cannot read (other machine, newer version, corrupt). */
  | 'record_unreadable'
  /** Anything else: a bug or an unclassified failure. */
  | 'internal';

const RETRYABLE: Readonly<Record<RuntimeErrorCode, boolean>> = {
  busy: true,
  stale_write: true,
  unavailable: true,
  storage_full: true,
  store_lost: true,
  timeout: true,
  unsupported: false,
  invalid_event: false,
  invalid_cursor: false,
  record_unreadable: false,
  internal: false,
};

export class RuntimeError extends Error {
  readonly code: RuntimeErrorCode;
  readonly retryable: boolean;
  /** The key the failed command was for, when there was one. */
  readonly key: string | undefined;

  constructor(
    code: RuntimeErrorCode,
    message: string,
    options?: { readonly cause?: unknown; readonly key?: string },
  ) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'RuntimeError';
    this.code = code;
    this.retryable = RETRYABLE[code];
    this.key = options?.key;
  }
}

/** True when `error` is a RuntimeError (of `code`, if given). */
export function isRuntimeError(error: unknown, code?: RuntimeErrorCode): error is RuntimeError {
  return error instanceof RuntimeError && (code === undefined || error.code === code);
}

const UNAVAILABLE_PATTERNS = [
  /connection is closed/i,
  /ECONNREFUSED/,
  /ECONNRESET/,
  /ETIMEDOUT/,
  /EPIPE/,
  /EHOSTUNREACH/,
  /max retries per request/i,
  /reached the max retries/i,
  /command timed out/i,
  /stream isn't writeable/i,
  /LOADING/,
  /MASTERDOWN/,
  /BUSY /,
  /READONLY/,
  /TRYAGAIN/,
  /CLUSTERDOWN/,
];

/** True when an error from a Redis client means "Redis is not there right now". */
function isRedisUnavailable(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  if (error.name === 'MaxRetriesPerRequestError') return true;
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string' && /^E[A-Z]+$/.test(code)) return true;
  return UNAVAILABLE_PATTERNS.some((pattern) => pattern.test(error.message));
}

/**
 * `OOM command not allowed when used memory > 'maxmemory'.`: as a command's
 * reply (`OOM ...`), or from the first write of a Lua script (Redis 7 keeps
 * the `OOM` code and adds `script: ...`; Redis 6 wraps it as `ERR Error
 * running script ... -OOM ...`).
 */
const FULL_PATTERN = /^OOM\b|\bOOM command not allowed\b/;

/** True when Redis refused a command because it is over `maxmemory` (and may not evict). */
export function isRedisFull(error: unknown): boolean {
  return error instanceof Error && FULL_PATTERN.test(error.message);
}

/**
 * Redis is up but refuses writes: the last snapshot or append-only write
 * failed (`MISCONF`, with `stop-writes-on-bgsave-error` or an AOF write
 * error), or fewer replicas are connected than `min-replicas-to-write`
 * (`NOREPLICAS`). Reads still work. Checked anywhere in the message: a
 * script's first write reports it with `script: ...` or inside an `ERR`.
 */
const REFUSES_WRITES_PATTERN = /\bMISCONF\b|\bNOREPLICAS\b/;

/** Error reply of a write script that found another store (see StoreIdentity). */
export const STORE_LOST_REPLY = 'STORE_LOST';

/**
 * The one place where low-level failures (ioredis, BullMQ, Redlock, a
 * script's error reply) become RuntimeErrors; a RuntimeError is returned as it is.
 */
export function toRuntimeError(error: unknown): RuntimeError {
  if (error instanceof RuntimeError) return error;
  const cause = { cause: error };
  if (isRedisFull(error))
    return new RuntimeError('storage_full', 'storage is full; retry shortly', cause);
  if (error instanceof Error && error.message.startsWith(STORE_LOST_REPLY)) {
    return new RuntimeError(
      'store_lost',
      'the store was emptied or replaced; writes are refused until an operator accepts it',
      cause,
    );
  }
  if (error instanceof Error && REFUSES_WRITES_PATTERN.test(error.message)) {
    return new RuntimeError('unavailable', 'storage refuses writes; retry shortly', cause);
  }
  if (isRedisUnavailable(error)) {
    return new RuntimeError('unavailable', 'storage is unavailable; retry shortly', cause);
  }
  return new RuntimeError('internal', 'internal error', cause);
}
