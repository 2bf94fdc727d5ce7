import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { runCli, spawnScript, type ServiceProcess } from '../support/processes.ts';
import { freePort } from '../support/redis-server.ts';
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
    expect(cli.output).toMatch(/payment\s+\{"accountId":"abc","amountCents":100\}/);

    const account = await runCli(['account', 'abc'], env);
    expect(account.output).toMatch(/Balance\s+100000 cents/);

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
