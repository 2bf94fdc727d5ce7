/**
 * The runtime's own errors: one class with a stable code and a retryable
 * flag, and one function that turns what ioredis, BullMQ or a script
 * answered into it.
 */
import { describe, expect, it } from 'vitest';
import { RuntimeError, toRuntimeError, type RuntimeErrorCode } from '../../src/runtime/index.ts';

describe('toRuntimeError', () => {
  it.each([
    ["OOM command not allowed when used memory > 'maxmemory'.", 'storage_full'],
    ['STORE_LOST the store identity changed', 'store_lost'],
    ['MISCONF Errors writing to the AOF file: No space left on device', 'unavailable'],
    ['connect ECONNREFUSED 127.0.0.1:6379', 'unavailable'],
    ['CLUSTERDOWN The cluster is down', 'unavailable'],
  ])('turns "%s" into a retryable %s', (message, code) => {
    const cause = new Error(message);
    const error = toRuntimeError(cause);
    expect(error).toBeInstanceOf(RuntimeError);
    expect(error).toMatchObject({ name: 'RuntimeError', code, retryable: true, cause });
    expect(error.message).not.toContain(message);
  });

  it('calls anything else internal, not retryable, keeping it as the cause', () => {
    const cause = new TypeError('x is not a function');
    expect(toRuntimeError(cause)).toMatchObject({ code: 'internal', retryable: false, cause });
  });

  it('returns a RuntimeError as it is', () => {
    const busy = new RuntimeError('busy', 'another command for key k is in progress', { key: 'k' });
    expect(toRuntimeError(busy)).toBe(busy);
    expect(busy).toMatchObject({ code: 'busy', retryable: true, key: 'k' });
  });

  it('says which codes a retry may cure', () => {
    const retryable = (code: RuntimeErrorCode) => new RuntimeError(code, code).retryable;
    expect(
      (
        ['busy', 'stale_write', 'unavailable', 'storage_full', 'store_lost', 'timeout'] as const
      ).map(retryable),
    ).toEqual([true, true, true, true, true, true]);
    expect(
      (
        ['unsupported', 'invalid_event', 'invalid_cursor', 'record_unreadable', 'internal'] as const
      ).map(retryable),
    ).toEqual([false, false, false, false, false]);
  });
});
