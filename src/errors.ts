/**
 * The error hierarchy. Every error that can reach a client is an AppError
 * with a stable `code`; `retryable` says whether the same request may succeed
 * later. Business outcomes (a decline, a cancelled token) are results, not
 * errors.
 */
export class AppError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly retryable: boolean,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** Bad input: nothing was written. */
export class ValidationError extends AppError {
  constructor(message: string, code = 'invalid_request') {
    super(code, message, false);
  }
}

export class NotFoundError extends AppError {
  constructor(message: string) {
    super('not_found', message, false);
  }
}

/** No API key, or one that is not configured (401, with `WWW-Authenticate: Bearer`). */
export class UnauthenticatedError extends AppError {
  constructor(message: string) {
    super('unauthenticated', message, false);
  }
}

/** Over a rate limit: retryable after `retryAfterSeconds` (the Retry-After header). */
export class RateLimitedError extends AppError {
  constructor(
    message: string,
    readonly retryAfterSeconds: number,
  ) {
    super('rate_limited', message, true);
  }
}

/** Another request holds the token longer than LOCK_WAIT_MS. */
export class TokenBusyError extends AppError {
  constructor(readonly token: string) {
    super('token_busy', `another request for token ${token} is in progress; retry shortly`, true);
  }
}

/** The state moved under us (our lock lease ran out and another process wrote). */
export class StaleWriteError extends AppError {
  constructor(readonly token: string) {
    super('conflict', `token ${token} was changed by another process; retry`, true);
  }
}

/** Redis could not be reached or did not answer in time. */
export class UnavailableError extends AppError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('unavailable', message, true, options);
  }
}

/**
 * Redis is at `maxmemory` and, under `noeviction`, refuses writes. Retryable:
 * nothing is lost, the write that was refused left the token where a retry
 * (or the recovery sweep) picks it up once memory is freed.
 */
export class StorageFullError extends AppError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('storage_full', message, true, options);
  }
}

/**
 * A stored record this build cannot read: its snapshot is missing or does not
 * decode, or it is of an unknown machine or version. The record is kept and
 * listed (stuck, counts) for an operator; nothing is written over it.
 */
export class StoredDataError extends AppError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('record_unreadable', message, false, options);
  }
}

/**
 * The Redis answering is not the store this process wrote to: it came back
 * empty, failed over to an empty node or was replaced (see StoreIdentity).
 * Retryable once an operator has looked at it.
 */
export class StoreLostError extends AppError {
  constructor(options?: { cause?: unknown }) {
    super(
      'store_lost',
      'the payment store was emptied or replaced; writes are refused until an operator accepts it',
      true,
      options,
    );
  }
}

/**
 * A ledger movement whose operation id the account does not know, first
 * asked for longer ago than ACCOUNT_OPERATION_RETENTION_MS: the id may have
 * been applied and then forgotten, so applying it now could move money twice.
 * Nothing moved. Not retryable: the payment stays in its step (listed by
 * `paystate stuck`) until an operator resolves it (docs/operations.md).
 */
export class MovementTooOldError extends AppError {
  constructor(
    readonly operationId: string,
    readonly accountId: string,
    readonly retentionMs: number,
  ) {
    super(
      'movement_too_old',
      `movement ${operationId} on account ${accountId} was asked for more than ${retentionMs} ms ago and its account no longer remembers whether it was applied; nothing moved`,
      false,
    );
  }
}

/**
 * A capture or release of more than the account holds in that currency: the
 * hold it settles is not there. Nothing moved (balances never go negative).
 */
export class LedgerStateError extends AppError {
  constructor(message: string) {
    super('ledger_state', message, false);
  }
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
export function isRedisUnavailable(error: unknown): boolean {
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

/** True when Redis answered but refused a write for a reason an operator must fix on its side. */
export function isRedisRefusingWrites(error: unknown): boolean {
  return error instanceof Error && REFUSES_WRITES_PATTERN.test(error.message);
}

/** The one place where low-level Redis failures become the project's errors. */
export function toAppError(error: unknown): AppError {
  if (error instanceof AppError) return error;
  if (isRedisFull(error)) {
    return new StorageFullError('storage is full; retry shortly', { cause: error });
  }
  if (error instanceof Error && error.message.startsWith('STORE_LOST')) {
    return new StoreLostError({ cause: error });
  }
  if (isRedisRefusingWrites(error)) {
    return new UnavailableError('storage refuses writes; retry shortly', { cause: error });
  }
  if (isRedisUnavailable(error)) {
    return new UnavailableError('storage is unavailable; retry shortly', { cause: error });
  }
  return new AppError(
    'internal',
    'internal error',
    false,
    error instanceof Error ? { cause: error } : undefined,
  );
}
