/**
 * A log reader that stops reading (a stalled collector, a full pipe): the
 * service keeps answering. Lines are written without blocking and at most
 * LOG_BUFFER_LIMIT_BYTES wait for the reader; past it, lines are dropped.
 * Written synchronously, the first 64 KiB the pipe could not take would stop
 * the process's event loop, and every request with it. At exit, the lines
 * the reader does not take are given up after about a second (they were
 * retried forever, and the process never exited).
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { Agent, request } from 'node:http';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { randomPrefix } from '../support/service-harness.ts';

const REQUESTS = 3_000;

function get(url: string, agent: Agent): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(`${url}/healthz`, { agent }, (res) => {
      res.resume();
      res.on('end', () => {
        resolve(res.statusCode ?? 0);
      });
    });
    req.setTimeout(5_000, () => req.destroy(new Error('no answer in 5 s')));
    req.on('error', reject);
    req.end();
  });
}

describe('a log reader that stops reading', () => {
  let child: ChildProcessWithoutNullStreams | null = null;
  afterEach(() => {
    // Should the test fail before its stop.
    child?.kill('SIGKILL');
    child = null;
  });

  it('does not stop the service: every request is still answered, and SIGTERM still ends it', async () => {
    const service = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
      env: {
        ...process.env,
        REDIS_URL: inject('redisUrl'),
        REDIS_KEY_PREFIX: randomPrefix(),
        PORT: '0',
        HOST: '127.0.0.1',
        PAYSTATE_MANAGED_REDIS: 'never',
        LOG_LEVEL: 'info',
      },
    });
    child = service;
    const url = await new Promise<string>((resolve, reject) => {
      let pending = '';
      service.stdout.on('data', (chunk: Buffer) => {
        pending += chunk.toString();
        const started = pending.split('\n').find((line) => line.includes('paystate started'));
        if (started !== undefined) resolve((JSON.parse(started) as { url: string }).url);
      });
      service.once('exit', (code) => {
        reject(new Error(`the service exited (${code}) before it started`));
      });
    });
    // From now on nothing reads the service's stdout.
    service.stdout.pause();

    const agent = new Agent({ keepAlive: true, maxSockets: 20 });
    const statuses: number[] = [];
    try {
      for (let sent = 0; sent < REQUESTS; sent += 20) {
        statuses.push(...(await Promise.all(Array.from({ length: 20 }, () => get(url, agent)))));
      }
    } finally {
      agent.destroy();
    }
    // About 200 bytes of log per request: several times what the pipe holds.
    expect(statuses).toHaveLength(REQUESTS);
    expect(statuses.every((status) => status === 200)).toBe(true);

    // Its stop gives up the lines the reader does not take, after about a second.
    const stoppedAt = Date.now();
    const exit = new Promise<number | null>((resolve) => service.once('exit', resolve));
    service.kill('SIGTERM');
    expect(await exit).toBe(0);
    expect(Date.now() - stoppedAt).toBeLessThan(10_000);
  }, 60_000);
});
