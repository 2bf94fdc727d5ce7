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

  describe('tokens by state', () => {
    it('lists a token just paid under processed, newest first', async () => {
      for (const token of ['cli-list-a', 'cli-list-b']) {
        const paid = await service.request('POST', '/payments', {
          body: { accountId: 'acct-cli', amountCents: 100 },
          headers: { 'Idempotency-Key': token },
        });
        expect(paid.status).toBe(201);
      }

      const json = await runCli(['list', '--status', 'processed', '--json'], env);
      expect(json.code).toBe(0);
      const body = JSON.parse(json.stdout) as { payments: { token: string; status: string }[] };
      expect(body.payments.slice(0, 2).map((p) => p.token)).toEqual(['cli-list-b', 'cli-list-a']);
      expect(body.payments[0]?.status).toBe('processed');

      const text = await runCli(['list', '--status', 'processed'], env);
      expect(text.code).toBe(0);
      expect(text.stdout).toMatch(/TOKEN\s+STATUS\s+UPDATED/);
      expect(text.stdout).toMatch(/cli-list-b\s+processed\s+\d{4}-/);
    });

    it('lists and shows an authorization and a partly refunded payment under their states', async () => {
      const held = await service.request('POST', '/payments', {
        body: { accountId: 'acct-cli', amountCents: 300, currency: 'EUR', capture: 'manual' },
        headers: { 'Idempotency-Key': 'cli-held' },
      });
      expect(held.status).toBe(201);
      const paid = await service.request('POST', '/payments', {
        body: { accountId: 'acct-cli', amountCents: 300 },
        headers: { 'Idempotency-Key': 'cli-part' },
      });
      expect(paid.status).toBe(201);
      const refunded = await service.request('POST', '/payments/cli-part/refunds', {
        body: { amountCents: 100 },
        headers: { 'Idempotency-Key': 'cli-r1' },
      });
      expect(refunded.status).toBe(201);

      const authorized = await runCli(['list', '--status', 'authorized'], env);
      expect(authorized.code).toBe(0);
      expect(authorized.stdout).toMatch(/cli-held\s+authorized\s+\d{4}-/);
      const partly = await runCli(['list', '--status', 'partially_refunded', '--json'], env);
      expect(
        (JSON.parse(partly.stdout) as { payments: { token: string }[] }).payments.map(
          (p) => p.token,
        ),
      ).toContain('cli-part');
      const shown = await runCli(['get', 'cli-held', '--json'], env);
      expect(JSON.parse(shown.stdout)).toMatchObject({
        status: 'authorized',
        state: 'authorized',
        payment: { currency: 'EUR', capture: 'manual' },
      });
    });

    it('pages with --limit and --cursor', async () => {
      const first = await runCli(['list', '--status', 'processed', '--limit', '1', '--json'], env);
      const page = JSON.parse(first.stdout) as { payments: unknown[]; nextCursor: string };
      expect(page.payments).toHaveLength(1);
      const next = await runCli(
        ['list', '--status', 'processed', '--limit', '1', '--cursor', page.nextCursor, '--json'],
        env,
      );
      expect(next.code).toBe(0);
      expect(JSON.parse(next.stdout)).not.toEqual(page);
    });

    it('counts tokens per state', async () => {
      await service.request('POST', '/payments/cli-stats/cancel');
      const run = await runCli(['stats', '--json'], env);
      expect(run.code).toBe(0);
      const body = JSON.parse(run.stdout) as { counts: Record<string, number>; total: number };
      expect(body.counts.cancelled).toBeGreaterThanOrEqual(1);
      expect(body.counts).toHaveProperty('charging');
      expect(body.total).toBe(Object.values(body.counts).reduce((a, b) => a + b, 0));
      const text = await runCli(['stats'], env);
      expect(text.stdout).toMatch(/cancelled\s+\d+/);
    });

    it('shows no stuck token when every request finished its work', async () => {
      const run = await runCli(['stuck', '--older-than', '0s', '--json'], env);
      expect(run.code).toBe(0);
      expect(JSON.parse(run.stdout)).toEqual({ olderThanMs: 0, payments: [] });
    });

    it('recovers a token left charging by a crash and shows it processed', async () => {
      const token = 'cli-stuck';
      // Shares the store and fails right after storing the charge intent, as a crash would.
      const crashing = await startTestService(
        testConfig(inject('redisUrl'), {
          REDIS_KEY_PREFIX: service.config.keyPrefix,
          PAYSTATE_ROLES: 'api',
        }),
        {
          faultPoint: (step) => {
            if (step === 'after-persist-intent') throw new Error('simulated crash');
          },
        },
      );
      try {
        const paid = await crashing.request('POST', '/payments', {
          body: { accountId: 'acct-cli', amountCents: 100 },
          headers: { 'Idempotency-Key': token },
        });
        expect(paid.status).toBe(500);
      } finally {
        await crashing.stop();
      }
      const stuck = await runCli(['stuck', '--older-than', '0s', '--json'], env);
      expect(JSON.parse(stuck.stdout)).toMatchObject({
        payments: [{ token, status: 'charging' }],
      });
      const text = await runCli(['stuck', '--older-than', '0s'], env);
      expect(text.stdout).toMatch(/cli-stuck\s+charging\s+owed\s+\d{4}-/);

      const run = await runCli(['recover', token, '--json'], env);
      expect(run.code).toBe(0);
      expect(JSON.parse(run.stdout)).toMatchObject({ token, status: 'processed' });
      const after = await runCli(['stuck', '--older-than', '0s', '--json'], env);
      expect(JSON.parse(after.stdout)).toEqual({ olderThanMs: 0, payments: [] });
    });

    it('exits 1 when recovering a token with no state', async () => {
      const run = await runCli(['recover', 'cli-nobody'], env);
      expect(run.code).toBe(1);
      expect(run.stderr).toContain('No state stored for token cli-nobody');
    });

    it.each([
      ['list without --status', ['list']],
      ['list with an unknown status', ['list', '--status', 'lost']],
      ['list with a limit of 0', ['list', '--status', 'pending', '--limit', '0']],
      ['stuck with an unreadable duration', ['stuck', '--older-than', 'soon']],
      ['an option of another command', ['stats', '--status', 'pending']],
      ['recover without a token', ['recover']],
    ])('exits 2 for %s', async (_name, args) => {
      const run = await runCli(args, env);
      expect(run.code).toBe(2);
      expect(run.stdout).toBe('');
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

    it.each([['get'], ['account'], ['recover'], ['stats']])(
      '%s, when Redis accepts the connection and never answers',
      async (command) => {
        const port = (silent.address() as { port: number }).port;

        const run = await runCli(command === 'stats' ? [command] : [command, 'x'], {
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
