/**
 * The operator CLI as a real process: its exit codes (0 found, 1 not found,
 * 2 usage, 3 Redis unavailable), its help, and how it fails when Redis does
 * not answer.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { runCli } from '../support/processes.ts';
import { freePort } from '../support/redis-server.ts';
import { startTestService, testConfig, type TestService } from '../support/service-harness.ts';

const UNREACHABLE = 'Cannot reach Redis: check REDIS_URL and that Redis is running.';

describe('paystate CLI', () => {
  let service: TestService;
  let env: Record<string, string>;

  beforeAll(async () => {
    service = await startTestService(testConfig(inject('redisUrl'), { PAYSTATE_ROLES: 'api' }));
    env = { REDIS_URL: inject('redisUrl'), REDIS_KEY_PREFIX: service.config.keyPrefix };
  });
  afterAll(async () => {
    await service.stop();
  });

  describe('help', () => {
    it.each(['--help', '-h'])('prints usage to stdout and exits 0 for %s', async (flag) => {
      const run = await runCli([flag], env);

      expect(run.code).toBe(0);
      expect(run.stdout).toContain('usage:');
      expect(run.stdout).toContain('exit status:');
      expect(run.stderr).toBe('');
    });

    it('prints help for a command given with --help', async () => {
      const run = await runCli(['get', '--help'], env);

      expect(run.code).toBe(0);
      expect(run.stdout).toContain('usage:');
    });
  });

  describe('usage errors exit 2 with the usage on stderr', () => {
    it.each([
      ['no arguments', []],
      ['an unknown command', ['show', 'x']],
      ['a missing token', ['get']],
      ['an extra argument', ['get', 'a', 'b']],
      ['an unknown option', ['get', 'a', '--yaml']],
    ])('%s', async (_name, args) => {
      const run = await runCli(args, env);

      expect(run.code).toBe(2);
      expect(run.stderr).toContain('usage:');
      expect(run.stdout).toBe('');
    });

    it.each([
      ['the token ..', ['get', '..']],
      ['the token .', ['get', '.']],
      ['a token with a slash', ['get', 'a/b']],
      ['a token of 256 characters', ['get', 'x'.repeat(256)]],
      ['an account id with a space', ['account', 'a b']],
    ])('%s', async (_name, args) => {
      const run = await runCli(args, env);

      expect(run.code).toBe(2);
      expect(run.stderr).toMatch(/(token|accountId) must be 1-\d+ characters/);
    });

    it('an invalid REDIS_URL, named in the message', async () => {
      const run = await runCli(['get', 'x'], { ...env, REDIS_URL: 'redis://127.0.0.1:99999' });

      expect(run.code).toBe(2);
      expect(run.stderr).toContain('REDIS_URL');
      expect(run.stderr).toContain('99999');
    });
  });

  describe('lookups', () => {
    it('exits 0 and shows the state of a token that is stored', async () => {
      const paid = await service.request('POST', '/payments', {
        body: { accountId: 'acct-cli', amountCents: 700 },
        headers: { 'Idempotency-Key': 'cli-found' },
      });
      expect(paid.status).toBe(201);

      const run = await runCli(['get', 'cli-found', '--json'], env);

      expect(run.code).toBe(0);
      expect(JSON.parse(run.stdout)).toMatchObject({
        token: 'cli-found',
        status: 'processed',
        payment: { accountId: 'acct-cli', amountCents: 700 },
      });
    });

    it('exits 1 for a token with no stored state', async () => {
      const run = await runCli(['get', 'cli-never-seen'], env);

      expect(run.code).toBe(1);
      expect(run.stderr).toContain('No state stored for token cli-never-seen');
    });
  });

  describe('Redis unavailable exits 3', () => {
    let silent: Server;
    const accepted: Socket[] = [];

    beforeAll(async () => {
      // Accepts connections and never answers, as a hung Redis or a dropped route does.
      silent = createServer((socket) => {
        accepted.push(socket);
        socket.on('error', () => undefined);
      });
      await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    });
    afterAll(async () => {
      for (const socket of accepted) socket.destroy();
      await new Promise((resolve) => silent.close(resolve));
    });

    it('when nothing listens at REDIS_URL', async () => {
      const run = await runCli(['get', 'x'], {
        ...env,
        REDIS_URL: `redis://127.0.0.1:${await freePort()}`,
      });

      expect(run).toMatchObject({ code: 3, signal: null });
      expect(run.stderr).toContain(UNREACHABLE);
    });

    it.each([['get'], ['account']])(
      '%s, when Redis accepts the connection and never answers',
      async (command) => {
        const port = (silent.address() as { port: number }).port;

        const run = await runCli([command, 'x'], {
          ...env,
          REDIS_URL: `redis://127.0.0.1:${port}`,
        });

        expect(accepted.length).toBeGreaterThan(0);
        // Not killed by runCli's deadline: it gave up by itself.
        expect(run).toMatchObject({ code: 3, signal: null });
        expect(run.stderr).toContain(UNREACHABLE);
      },
    );
  });
});
