import { RuntimeError, toRuntimeError } from './runtime/index.ts';

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

/**
 * The app's edge over the runtime: a RuntimeError's code becomes the one the
 * API answers with (docs/api.md). The message names the runtime's key; the
 * payment service names the client's token where it differs (TenantPayments).
 */
function fromRuntimeError(error: RuntimeError): AppError {
  // The low-level failure behind it, for the logs.
  const cause = { cause: error.cause ?? error };
  switch (error.code) {
    case 'busy':
      return new TokenBusyError(error.key ?? 'unknown');
    case 'stale_write':
      return new StaleWriteError(error.key ?? 'unknown');
    case 'unavailable':
      return new UnavailableError(error.message, cause);
    case 'storage_full':
      return new StorageFullError(error.message, cause);
    case 'store_lost':
      return new StoreLostError(cause);
    case 'record_unreadable':
      return new StoredDataError(error.message, cause);
    case 'invalid_cursor':
      return new ValidationError(error.message, 'invalid_cursor');
    case 'invalid_event':
      return new ValidationError(error.message);
    case 'timeout':
      return new UnavailableError(error.message, cause);
    case 'unsupported':
    case 'internal':
      return new AppError('internal', 'internal error', false, cause);
  }
}

/**
 * The one place where failures become the project's errors: the runtime's
 * by their code, anything else (a Redis client's own, from the ledger)
 * through the runtime's classification of Redis failures.
 */
export function toAppError(error: unknown): AppError {
  if (error instanceof AppError) return error;
  return fromRuntimeError(toRuntimeError(error));
}
