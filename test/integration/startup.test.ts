import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { runCli, spawnScript, type ServiceProcess } from '../support/processes.ts';
import { Redis } from 'ioredis';
import { redisReply } from '../../src/managed-redis.ts';
import { freePort, startRedisServer, type TestRedisServer } from '../support/redis-server.ts';
import { randomPrefix } from '../support/service-harness.ts';

const running: ServiceProcess[] = [];
afterAll(() => {
  for (const p of running) p.child.kill('SIGKILL');
});

function start(env: Record<string, string>): ServiceProcess {
  const p = spawnScript('src/main.ts', [], env);
  running.push(p);
  return p;
}

describe('npm start', () => {
  it('serves the seed session, shows it in the CLI, and stops cleanly on SIGTERM', async () => {
    const port = await freePort();
    const env = {
      PORT: String(port),
      HOST: '127.0.0.1',
      REDIS_URL: inject('redisUrl'),
      REDIS_KEY_PREFIX: randomPrefix(),
    };
    const service = start(env);
    await service.waitForOutput('paystate started');

    const base = `http://127.0.0.1:${port}/PaymentProcessor/some-string-id`;
    const pay = await fetch(`${base}/makePayment`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{ "accountId": "abc", "amountCents": 100 }',
    });
    expect(pay.status).toBe(200);
    expect(await pay.json()).toEqual({ success: true, reason: 'Payment successful' });
    const cancel = await fetch(`${base}/cancelPayment`, { method: 'POST' });
    expect(cancel.status).toBe(200);

    const cli = await runCli(['get', 'some-string-id'], env);
    expect(cli.code).toBe(0);
    expect(cli.output).toMatch(/status\s+"refunded"/);
    expect(cli.output).toMatch(
      /payment\s+\{"accountId":"abc","amountCents":100,"currency":"USD","capture":"automatic"\}/,
    );

    const account = await runCli(['account', 'abc'], env);
    expect(account.output).toMatch(/USD\s+100000 available, 0 held/);

    service.child.kill('SIGTERM');
    expect(await service.exited()).toEqual({ code: 0, signal: null });
    expect(service.output()).toContain('stopped');
  });

  it('starts a managed redis-server with AOF under the data directory when none answers', async () => {
    const port = await freePort();
    const redisPort = await freePort();
    const dataDir = mkdtempSync(join(tmpdir(), 'paystate-data-'));
    try {
      const service = start({
        PORT: String(port),
        HOST: '127.0.0.1',
        REDIS_URL: `redis://127.0.0.1:${redisPort}`,
        PAYSTATE_DATA_DIR: dataDir,
      });
      await service.waitForOutput('paystate started');
      expect(service.output()).toContain('started a managed local Redis');
      const ready = await fetch(`http://127.0.0.1:${port}/readyz`);
      expect(ready.status).toBe(200);
      const aof = join(dataDir, 'appendonlydir');
      expect(existsSync(aof) && readdirSync(aof).some((f) => f.includes('.aof'))).toBe(true);
      service.child.kill('SIGTERM');
      expect((await service.exited()).code).toBe(0);
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('exits with a message that says how to get Redis when none answers and none is installed', async () => {
    const redisPort = await freePort();
    const service = start({
      REDIS_URL: `redis://127.0.0.1:${redisPort}`,
      PATH: '/nonexistent',
    });
    const { code } = await service.exited();
    expect(code).toBe(1);
    expect(service.output()).toContain('redis-server is not installed');
    expect(service.output()).toContain('apt-get install redis-server');
  });

  it('refuses to start on an invalid setting and names it', async () => {
    const service = start({ REDIS_URL: inject('redisUrl'), PAYMENT_EXPIRY_MS: 'soon' });
    const { code } = await service.exited();
    expect(code).toBe(2);
    expect(service.output()).toContain('PAYMENT_EXPIRY_MS must be a whole number');
  });

  it('refuses to start on a REDIS_URL whose port is out of range and names the variable', async () => {
    const service = start({ REDIS_URL: 'redis://127.0.0.1:99999' });
    const { code } = await service.exited();
    expect(code).toBe(2);
    expect(service.output()).toContain('REDIS_URL must have a port between 1 and 65535');
  });
});

/**
 * A Redis that answers PING with an error is there: start-up never takes its
 * port for a managed one (which failed with "managed redis-server did not
 * start", and said nothing of the real cause).
 */
describe('npm start against a Redis that answers with an error', () => {
  const servers: TestRedisServer[] = [];
  let dataDir: string;
  afterAll(async () => {
    for (const server of servers) await server.destroy();
    rmSync(dataDir, { recursive: true, force: true });
  });

  async function redisWith(extraArgs: string[]): Promise<TestRedisServer> {
    const server = await startRedisServer({ appendonly: false, extraArgs });
    servers.push(server);
    return server;
  }

  function startOn(redisUrl: string, port = 0): ServiceProcess {
    dataDir = mkdtempSync(join(tmpdir(), 'paystate-data-'));
    return start({
      PORT: String(port),
      HOST: '127.0.0.1',
      REDIS_URL: redisUrl,
      REDIS_KEY_PREFIX: randomPrefix(),
      PAYSTATE_DATA_DIR: dataDir,
    });
  }

  it('waits for a Redis that is loading its data set (LOADING), then serves', async () => {
    // 10,000 keys loaded at 200 µs each: about two seconds of LOADING, with
    // clients answered (LOADING) every kilobyte loaded.
    const redis = await redisWith([
      '--key-load-delay',
      '200',
      '--loading-process-events-interval-bytes',
      '1024',
    ]);
    const admin = new Redis(redis.url);
    const pipeline = admin.pipeline();
    for (let i = 0; i < 10_000; i++) pipeline.set(`filler:${i}`, 'x');
    await pipeline.exec();
    await admin.save();
    admin.disconnect();
    await redis.kill('SIGKILL');
    await redis.start('listening');
    expect(await redisReply(redis.url)).toMatch(/^LOADING /);

    const port = await freePort();
    const service = startOn(redis.url, port);
    await service.waitForOutput('paystate started', 30_000);
    expect(service.output()).toContain('is loading its data; waiting for it');
    expect(service.output()).not.toContain('managed');
    const paid = await fetch(`http://127.0.0.1:${port}/payments`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'Idempotency-Key': 'after-loading' },
      body: JSON.stringify({ accountId: 'acct', amountCents: 100 }),
    });
    expect(paid.status).toBe(201);
    service.child.kill('SIGTERM');
    expect((await service.exited()).code).toBe(0);
  }, 60_000);

  it('exits saying what Redis answered when it refuses writes after a failed save (MISCONF)', async () => {
    const redis = await redisWith(['--save', '3600 1', '--enable-protected-configs', 'yes']);
    const admin = new Redis(redis.url);
    const gone = join(redis.dir, 'gone');
    mkdirSync(gone);
    await admin.config('SET', 'dir', gone);
    rmSync(gone, { recursive: true });
    await admin.bgsave();
    await expect.poll(() => redisReply(redis.url), { timeout: 10_000 }).toMatch(/^MISCONF /);

    const service = startOn(redis.url);
    const { code } = await service.exited();
    admin.disconnect();
    expect(code).toBe(1);
    expect(service.output()).not.toContain('managed');
    expect(service.output()).toMatch(/paystate failed to start: storage refuses writes.*MISCONF/);
  });

  it('exits naming REDIS_URL when Redis wants a password it was not given (NOAUTH, WRONGPASS)', async () => {
    const redis = await redisWith([]);
    const admin = new Redis(redis.url);
    await admin.config('SET', 'requirepass', 'the-right-password');
    admin.disconnect();
    for (const [url, reply] of [
      [redis.url, 'NOAUTH'],
      [`redis://:a-wrong-password@127.0.0.1:${redis.port}`, 'WRONGPASS'],
    ] as const) {
      const service = startOn(url);
      const { code } = await service.exited();
      expect(code).toBe(1);
      const output = service.output();
      expect(output).toContain(`refuses the connection: ${reply}`);
      expect(output).toContain('Put its user and password in REDIS_URL');
      expect(output).not.toContain('managed');
      expect(output).not.toContain('a-wrong-password');
    }
  });
});
