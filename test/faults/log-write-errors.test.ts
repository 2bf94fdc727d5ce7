/**
 * Log lines that cannot be written: stdout on a full disk (`ENOSPC`), or a
 * pipe whose reader has gone (`EPIPE`: a log collector that died). The
 * lines are lost, the service is not: it keeps answering, and a SIGTERM
 * still stops it cleanly. pino's stdout stream (sonic-boom 4) retried a
 * failed write forever, synchronously, at exit: the first failed line
 * wedged the process, holding its port, answering nothing, deaf to SIGTERM.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { freePort } from '../support/redis-server.ts';
import { randomPrefix, waitFor } from '../support/service-harness.ts';

const PAYMENTS = 20;

function startService(stdout: 'pipe' | number, port: number): ChildProcess {
  return spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
    env: {
      ...process.env,
      REDIS_URL: inject('redisUrl'),
      REDIS_KEY_PREFIX: randomPrefix(),
      PORT: String(port),
      HOST: '127.0.0.1',
      PAYSTATE_MANAGED_REDIS: 'never',
      LOG_LEVEL: 'info',
    },
    stdio: ['ignore', stdout, 'pipe'],
  });
}

async function answers(url: string, path: string, init?: RequestInit): Promise<number | null> {
  try {
    const response = await fetch(`${url}${path}`, { ...init, signal: AbortSignal.timeout(2_000) });
    await response.arrayBuffer();
    return response.status;
  } catch {
    return null;
  }
}

/** Pays PAYMENTS new tokens, one after another; their statuses. */
async function payments(url: string): Promise<(number | null)[]> {
  const statuses: (number | null)[] = [];
  for (let i = 0; i < PAYMENTS; i++) {
    statuses.push(
      await answers(url, '/payments', {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'Idempotency-Key': `lost-lines-${i}` },
        body: JSON.stringify({ accountId: 'acct', amountCents: 100 }),
      }),
    );
  }
  return statuses;
}

function exited(child: ChildProcess, timeoutMs: number): Promise<number | null> {
  return new Promise((resolve, reject) => {
    if (child.exitCode !== null) {
      resolve(child.exitCode);
      return;
    }
    const timer = setTimeout(() => {
      reject(new Error(`still running ${timeoutMs} ms after SIGTERM`));
    }, timeoutMs);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve(code);
    });
  });
}

describe('log lines that cannot be written', () => {
  let child: ChildProcess | null = null;
  afterEach(() => {
    child?.kill('SIGKILL');
    child = null;
  });

  it('keeps answering and stops on SIGTERM when stdout is a full disk (ENOSPC)', async () => {
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const full = openSync('/dev/full', 'w');
    try {
      child = startService(full, port);
    } finally {
      closeSync(full);
    }
    await waitFor(async () => ((await answers(url, '/healthz')) === 200 ? true : undefined), {
      timeoutMs: 20_000,
      what: 'the service to answer',
    });
    expect(await payments(url)).toEqual(Array.from({ length: PAYMENTS }, () => 201));
    child.kill('SIGTERM');
    expect(await exited(child, 10_000)).toBe(0);
  }, 60_000);

  it('keeps answering and stops on SIGTERM when the reader of its stdout has gone (EPIPE)', async () => {
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const service = startService('pipe', port);
    child = service;
    await new Promise<void>((resolve, reject) => {
      let seen = '';
      service.stdout?.on('data', (chunk: Buffer) => {
        seen += chunk.toString();
        if (seen.includes('paystate started')) resolve();
      });
      service.once('exit', (code) => {
        reject(new Error(`the service exited (${code}) before it started`));
      });
    });
    // The collector dies: every later write to the pipe fails with EPIPE.
    service.stdout?.destroy();
    expect(await payments(url)).toEqual(Array.from({ length: PAYMENTS }, () => 201));
    service.kill('SIGTERM');
    expect(await exited(service, 10_000)).toBe(0);
  }, 60_000);
});
