import { describe, expect, it } from 'vitest';
import { StorageFullError, toAppError, UnavailableError } from '../../src/errors.ts';
import { RuntimeError, type RuntimeErrorCode } from '../../src/runtime/index.ts';

/** Redis's replies when it is over maxmemory, as the client reports them. */
const OOM_REPLIES = {
  command: "OOM command not allowed when used memory > 'maxmemory'.",
  'Lua script (Redis 7)':
    "OOM command not allowed when used memory > 'maxmemory'. script: 84847c3342f76a3642aa54e70fc2ed202200384d, on @user_script:1.",
  'Lua script (Redis 6)':
    "ERR Error running script (call to f_84847c3342f76a3642aa54e70fc2ed202200384d): @user_script:1: @user_script: 1: -OOM command not allowed when used memory > 'maxmemory'.",
};

/** Redis's replies when it is up but refuses writes, as the client reports them. */
const REFUSED_WRITE_REPLIES = {
  'failed snapshot':
    "MISCONF Redis is configured to save RDB snapshots, but it's currently unable to persist to disk. Commands that may modify the data set are disabled, because this instance is configured to report errors during writes if RDB snapshotting fails (stop-writes-on-bgsave-error option). Please check the Redis logs for details about the RDB error.",
  'failed append-only write': 'MISCONF Errors writing to the AOF file: No space left on device',
  'missing replicas': 'NOREPLICAS Not enough good replicas to write.',
  'missing replicas in a Lua script (Redis 7)':
    'NOREPLICAS Not enough good replicas to write. script: 84847c3342f76a3642aa54e70fc2ed202200384d, on @user_script:1.',
  'failed snapshot in a Lua script (Redis 6)':
    "ERR Error running script (call to f_84847c3342f76a3642aa54e70fc2ed202200384d): @user_script:1: @user_script: 1: -MISCONF Redis is configured to save RDB snapshots, but it's currently unable to persist to disk.",
};

describe('toAppError', () => {
  for (const [source, message] of Object.entries(REFUSED_WRITE_REPLIES)) {
    it(`turns a refused write (${source}) into a retryable unavailable`, () => {
      const cause = new Error(message);
      const error = toAppError(cause);
      expect(error).toBeInstanceOf(UnavailableError);
      expect(error).toMatchObject({ code: 'unavailable', retryable: true, cause });
      expect(error.message).not.toMatch(/MISCONF|NOREPLICAS|RDB|AOF/);
    });
  }

  for (const [source, message] of Object.entries(OOM_REPLIES)) {
    it(`turns an OOM reply from a ${source} into a retryable storage_full`, () => {
      const cause = new Error(message);
      const error = toAppError(cause);
      expect(error).toBeInstanceOf(StorageFullError);
      expect(error).toMatchObject({ code: 'storage_full', retryable: true, cause });
      expect(error.message).not.toMatch(/OOM|maxmemory/);
    });
  }

  it('leaves errors that merely mention the word alone', () => {
    expect(toAppError(new Error('ROOM 12 is full')).code).toBe('internal');
    expect(toAppError(new Error('ERR unknown command OOMX')).code).toBe('internal');
    expect(toAppError(new Error('ERR unknown command MISCONFIGURED')).code).toBe('internal');
  });

  it('still tells an unreachable Redis apart', () => {
    expect(toAppError(new Error('connect ECONNREFUSED 127.0.0.1:6379')).code).toBe('unavailable');
  });
});

describe("the runtime's errors at the app's edge", () => {
  it.each([
    ['busy', 'token_busy', 'another request for token t-1 is in progress; retry shortly'],
    ['stale_write', 'conflict', 'token t-1 was changed by another process; retry'],
    ['store_lost', 'store_lost', expect.stringContaining('payment store was emptied') as string],
    ['record_unreadable', 'record_unreadable', 'the message'],
    ['invalid_cursor', 'invalid_cursor', 'the message'],
    ['storage_full', 'storage_full', 'the message'],
    ['unavailable', 'unavailable', 'the message'],
    ['internal', 'internal', 'internal error'],
  ] as const)('answers %s as %s', (runtimeCode: RuntimeErrorCode, code, message) => {
    const error = toAppError(new RuntimeError(runtimeCode, 'the message', { key: 't-1' }));
    expect(error).toMatchObject({ code, message });
    expect(error.retryable).toBe(new RuntimeError(runtimeCode, '').retryable);
  });
});
