/**
 * Start-up refuses a Redis that may evict keys: BullMQ and the ledger need
 * `maxmemory-policy noeviction`. Where the policy cannot be read (CONFIG
 * refused, as on managed Redis), it starts and says it could not check.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { spawnScript, type ServiceProcess } from '../support/processes.ts';
import { freePort, startRedisServer, type TestRedisServer } from '../support/redis-server.ts';
import { randomPrefix } from '../support/service-harness.ts';

const running: ServiceProcess[] = [];
const servers: TestRedisServer[] = [];
afterAll(async () => {
  for (const p of running) p.child.kill('SIGKILL');
  await Promise.all(servers.map((s) => s.destroy()));
});

async function redisWith(extraArgs: string[]): Promise<TestRedisServer> {
  const server = await startRedisServer({ extraArgs });
  servers.push(server);
  return server;
}

const ports = new Map<ServiceProcess, number>();
const baseUrl = (p: ServiceProcess) => `http://127.0.0.1:${ports.get(p) ?? 0}`;

async function start(redisUrl: string): Promise<ServiceProcess> {
  const port = await freePort();
  const p = spawnScript('src/main.ts', [], {
    PORT: String(port),
    HOST: '127.0.0.1',
    REDIS_URL: redisUrl,
    REDIS_KEY_PREFIX: randomPrefix(),
    PAYSTATE_MANAGED_REDIS: 'never',
  });
  running.push(p);
  ports.set(p, port);
  return p;
}

describe('start-up check of maxmemory-policy', () => {
  it('refuses to start when Redis may evict keys, naming the setting and why', async () => {
    const redis = await redisWith(['--maxmemory-policy', 'allkeys-lru']);
    const service = await start(redis.url);
    const outcome = await Promise.race([
      service.exited().then(({ code }) => code),
      service.waitForOutput('paystate started').then(() => 'started'),
    ]);
    expect(outcome).toBe(1);
    const output = service.output();
    expect(output).toContain('maxmemory-policy allkeys-lru');
    expect(output).toContain('noeviction');
    expect(output).toMatch(/charged twice/);
    expect(output).not.toContain('paystate started');
  });

  it('starts and logs at error level that it could not check when CONFIG is refused', async () => {
    const redis = await redisWith(['--rename-command', 'CONFIG', '""']);
    const service = await start(redis.url);
    await service.waitForOutput('paystate started');
    const line = service
      .output()
      .split('\n')
      .find((l) => l.includes('could not check maxmemory-policy'));
    expect(line).toBeDefined();
    expect(JSON.parse(line ?? '{}')).toMatchObject({ level: 'error' });
    expect((await fetch(`${baseUrl(service)}/readyz`)).status).toBe(200);
  });

  it('starts quietly on noeviction', async () => {
    const redis = await redisWith(['--maxmemory-policy', 'noeviction']);
    const service = await start(redis.url);
    await service.waitForOutput('paystate started');
    expect(service.output()).not.toContain('maxmemory-policy');
    expect((await fetch(`${baseUrl(service)}/readyz`)).status).toBe(200);
  });
});
