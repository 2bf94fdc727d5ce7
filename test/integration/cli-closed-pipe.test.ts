/**
 * The CLI as a filter: its output piped into a reader that closes early
 * (`paystate get X | head -1`). A closed pipe ends it quietly, exit status 0,
 * nothing on stderr; the reader is a real pipe, closed before the CLI's
 * first write (every write then fails with EPIPE) or by `head -1`.
 */
import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { ROOT } from '../support/processes.ts';
import { startTestService, testConfig, type TestService } from '../support/service-harness.ts';

interface Ended {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

const CLI = ['--import', 'tsx', 'bin/paystate.js'];

const commands: [string, string[]][] = [
  ['get', ['get', 'pipe-token']],
  ['get --json', ['get', 'pipe-token', '--json']],
  ['account', ['account', 'pipe-acct']],
  ['account --json', ['account', 'pipe-acct', '--json']],
  ['list', ['list', '--status', 'processed']],
  ['list --json', ['list', '--status', 'processed', '--json']],
  ['stats', ['stats']],
  ['stuck', ['stuck', '--older-than', '0ms']],
  ['store', ['store']],
  ['--help', ['--help']],
];

describe('paystate CLI into a closed pipe', () => {
  let service: TestService;
  let env: Record<string, string>;

  beforeAll(async () => {
    service = await startTestService(testConfig(inject('redisUrl'), { PAYSTATE_ROLES: 'api' }));
    env = { REDIS_URL: inject('redisUrl'), REDIS_KEY_PREFIX: service.config.keyPrefix };
    const paid = await service.request('POST', '/payments', {
      headers: { 'Idempotency-Key': 'pipe-token' },
      body: { accountId: 'pipe-acct', amountCents: 100 },
    });
    expect(paid.status).toBe(201);
  });
  afterAll(async () => {
    await service.stop();
  });

  /** Runs `command`, its stdout a pipe whose reading end this test closes at once. */
  function intoPipeClosedAtOnce(args: readonly string[]): Promise<Ended> {
    const child = spawn(process.execPath, [...CLI, ...args], {
      cwd: ROOT,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    // Closed long before the CLI has started, read Redis and written.
    child.stdout.destroy();
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const kill = setTimeout(() => child.kill('SIGKILL'), 20_000);
    return new Promise((resolve) => {
      child.once('close', (code, signal) => {
        clearTimeout(kill);
        resolve({ code, signal, stdout: '', stderr });
      });
    });
  }

  /** `paystate … | head -1` in bash; the status is the CLI's (pipefail). */
  function intoHead(args: readonly string[]): Promise<Ended> {
    const quoted = [process.execPath, ...CLI, ...args].map((a) => `'${a}'`).join(' ');
    const child = spawn('bash', ['-c', `set -o pipefail; ${quoted} | head -1`], {
      cwd: ROOT,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const kill = setTimeout(() => child.kill('SIGKILL'), 20_000);
    return new Promise((resolve) => {
      child.once('close', (code, signal) => {
        clearTimeout(kill);
        resolve({ code, signal, stdout, stderr });
      });
    });
  }

  it.each(commands)('%s ends quietly with status 0', async (_name, args) => {
    const ended = await intoPipeClosedAtOnce(args);
    expect(ended.stderr).toBe('');
    expect(ended).toMatchObject({ code: 0, signal: null });
  });

  it.each(commands.filter(([name]) => ['get', 'account', 'list'].includes(name)))(
    '%s | head -1 prints one line and ends with status 0',
    async (_name, args) => {
      const ended = await intoHead(args);
      expect(ended.stderr).toBe('');
      expect(ended.code).toBe(0);
      expect(ended.stdout.split('\n').filter((line) => line !== '')).toHaveLength(1);
    },
  );
});
