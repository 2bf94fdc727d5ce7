/**
 * Where `npm start` listens, as the kernel has it: the address of the
 * process's listening socket, read from /proc/net/tcp, not from its config.
 */
import { readFileSync } from 'node:fs';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { sha256Hex, TEST_API_KEYS, TEST_KEYS } from '../support/api-keys.ts';
import { spawnScript, type ServiceProcess } from '../support/processes.ts';
import { randomPrefix } from '../support/service-harness.ts';

const running: ServiceProcess[] = [];
afterAll(() => {
  for (const p of running) p.child.kill('SIGKILL');
});

/** The service with no HOST unless `env` sets one (the harnesses always set it). */
function start(env: Record<string, string>): ServiceProcess {
  const p = spawnScript('src/main.ts', [], {
    PORT: '0',
    REDIS_URL: inject('redisUrl'),
    REDIS_KEY_PREFIX: randomPrefix(),
    PAYSTATE_MANAGED_REDIS: 'never',
    PAYSTATE_ROLES: 'api',
    HOST: '',
    ...env,
  });
  running.push(p);
  return p;
}

interface Started {
  readonly auth: string;
  readonly tenants?: string[];
  readonly url: string;
}

async function started(p: ServiceProcess): Promise<Started> {
  await p.waitForOutput('paystate started');
  const line = p
    .stdout()
    .split('\n')
    .find((l) => l.includes('"paystate started"'));
  return JSON.parse(line ?? '{}') as Started;
}

/** The IPv4 address the socket listening on `port` is bound to, from the kernel's table. */
function listeningAddress(port: number): string {
  const portHex = port.toString(16).toUpperCase().padStart(4, '0');
  for (const line of readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)) {
    const [, local, , state] = line.trim().split(/\s+/);
    if (state !== '0A' || local === undefined) continue;
    const [addressHex = '', localPort] = local.split(':');
    if (localPort !== portHex) continue;
    // Little-endian bytes of the IPv4 address.
    return [6, 4, 2, 0].map((i) => parseInt(addressHex.slice(i, i + 2), 16)).join('.');
  }
  throw new Error(`no IPv4 socket listens on port ${port}`);
}

const portOf = (url: string) => Number(new URL(url).port);

describe('the listening address', () => {
  it('is loopback by default without keys, and the log says authentication is off', async () => {
    const p = start({});
    const info = await started(p);
    expect(info.auth).toBe('off');
    expect(listeningAddress(portOf(info.url))).toBe('127.0.0.1');
    expect(p.output()).not.toContain('authentication is off on a network address');
    // The seed session works without a key.
    const pay = await fetch(`${info.url}/PaymentProcessor/local-token/makePayment`, {
      method: 'POST',
      body: '{ "accountId": "abc", "amountCents": 100 }',
    });
    expect(await pay.json()).toEqual({ success: true, reason: 'Payment successful' });
  });

  it('refuses to start on a network address without keys, naming what to set', async () => {
    const p = start({ HOST: '0.0.0.0' });
    expect(await p.exited()).toEqual({ code: 2, signal: null });
    for (const name of ['HOST=0.0.0.0', 'PAYSTATE_API_KEYS', 'PAYSTATE_ALLOW_UNAUTHENTICATED']) {
      expect(p.stderr()).toContain(name);
    }
    expect(p.stdout()).not.toContain('paystate started');
  });

  it('starts open on a network address when PAYSTATE_ALLOW_UNAUTHENTICATED=1', async () => {
    const p = start({ HOST: '0.0.0.0', PAYSTATE_ALLOW_UNAUTHENTICATED: '1' });
    const info = await started(p);
    expect(info.auth).toBe('off');
    await p.waitForOutput('authentication is off on a network address');
    expect(listeningAddress(portOf(info.url))).toBe('0.0.0.0');
  });

  it('is every interface with keys; the log names the tenants, never a key or its digest', async () => {
    const p = start({ PAYSTATE_API_KEYS: TEST_API_KEYS, LOG_LEVEL: 'debug' });
    const info = await started(p);
    expect(info).toMatchObject({ auth: 'on', tenants: ['alpha', 'beta'] });
    expect(listeningAddress(portOf(info.url))).toBe('0.0.0.0');
    const noKey = await fetch(`${info.url}/accounts/abc`);
    expect(noKey.status).toBe(401);
    const withKey = await fetch(`${info.url}/accounts/abc`, {
      headers: { authorization: `Bearer ${TEST_KEYS.beta}` },
    });
    expect(withKey.status).toBe(200);
    for (const key of Object.values(TEST_KEYS)) {
      expect(p.output()).not.toContain(key);
      expect(p.output()).not.toContain(sha256Hex(key));
    }
  });

  it('refuses to start on a PAYSTATE_API_KEYS entry that is not tenant=<sha256 hex>', async () => {
    const p = start({ PAYSTATE_API_KEYS: `alpha=${TEST_KEYS.alpha}` });
    expect(await p.exited()).toEqual({ code: 2, signal: null });
    expect(p.stderr()).toContain('PAYSTATE_API_KEYS');
    expect(p.output()).not.toContain(TEST_KEYS.alpha);
  });
});
