import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  eventually,
  startEmulatorProcess,
  type EmulatorProcess,
} from '../support/processor-emulator.ts';

/** The emulator's fault rules and control API, spoken to over plain HTTP as curl would. */
let emulator: EmulatorProcess;
let seq = 0;

beforeAll(async () => {
  emulator = await startEmulatorProcess();
});
afterAll(async () => {
  await emulator.stop();
});
beforeEach(async () => {
  await emulator.reset();
});

function post(path: string, body: unknown, key: string | null = `f-${++seq}`) {
  return fetch(`${emulator.url}${path}`, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${emulator.secret}`,
      ...(key === null ? {} : { 'idempotency-key': key }),
    },
    body: JSON.stringify(body),
  });
}

const charge = (amount: number, account = 'acct-f') =>
  post('/charges', { amount, currency: 'USD', account, capture: true });

describe('fault rules', () => {
  it('nth and times pick which matching requests fail', async () => {
    await emulator.addFault({
      match: { path: '/charges', amount: 5, nth: 2 },
      fault: '5xx_before',
      times: 2,
    });
    const statuses = [];
    for (let i = 0; i < 5; i += 1) statuses.push((await charge(5)).status);
    expect(statuses).toEqual([200, 500, 500, 200, 200]);
    expect((await charge(6)).status).toBe(200);
    expect(await emulator.faults()).toMatchObject([{ seen: 5, fired: 2 }]);
    expect(await emulator.journal({ account: 'acct-f' })).toHaveLength(4);
  });

  it('a path with * matches one segment, and the method narrows it', async () => {
    await emulator.addFault({ match: { path: '/charges/*', method: 'GET' }, fault: '5xx_before' });
    const made = (await (await charge(7)).json()) as { id: string };
    const read = await fetch(`${emulator.url}/charges/${made.id}`, {
      headers: { authorization: `Bearer ${emulator.secret}` },
    });
    expect(read.status).toBe(500);
    expect((await post(`/charges/${made.id}/refunds`, { amount: 1 })).status).toBe(200);
  });

  it('an invalid rule is refused with 400 and the reason', async () => {
    const response = await fetch(`${emulator.url}/_emulator/faults`, {
      method: 'POST',
      body: JSON.stringify({ match: { nth: 0 }, fault: 'lose_response' }),
    });
    expect(response.status).toBe(400);
    expect(await response.json()).toEqual({
      error: { code: 'invalid_fault', message: 'match.nth must be a positive integer' },
    });
    const unknownKind = await fetch(`${emulator.url}/_emulator/faults`, {
      method: 'POST',
      body: JSON.stringify({ fault: 'explode' }),
    });
    expect(unknownKind.status).toBe(400);
    expect(await emulator.faults()).toEqual([]);
  });

  it('a rule can be removed by id, and reset forgets everything', async () => {
    const rule = await emulator.addFault({ match: {}, fault: 'decline' });
    expect(((await (await charge(8)).json()) as { status: string }).status).toBe('declined');
    await fetch(`${emulator.url}/_emulator/faults/${rule.id}`, { method: 'DELETE' });
    expect(((await (await charge(8)).json()) as { status: string }).status).toBe('succeeded');
    await emulator.reset();
    expect(await emulator.journal()).toEqual([]);
    expect(await emulator.events()).toEqual([]);
  });

  it('a decline fault leaves other routes alone', async () => {
    const made = (await (await charge(9)).json()) as { id: string };
    await emulator.addFault({ match: {}, fault: 'decline' });
    expect((await post(`/charges/${made.id}/refunds`, { amount: 9 })).status).toBe(200);
  });
});

describe('the protocol refuses bad requests, applying nothing', () => {
  it.each([
    [
      'no idempotency key',
      () => post('/charges', { amount: 1, currency: 'USD', account: 'a' }, null),
      'idempotency_key_required',
    ],
    [
      'an amount of 0',
      () => post('/charges', { amount: 0, currency: 'USD', account: 'a' }),
      'invalid_amount',
    ],
    [
      'a fractional amount',
      () => post('/charges', { amount: 1.5, currency: 'USD', account: 'a' }),
      'invalid_amount',
    ],
    [
      'a lower-case currency',
      () => post('/charges', { amount: 1, currency: 'usd', account: 'a' }),
      'invalid_currency',
    ],
    [
      'an unknown field',
      () => post('/charges', { amount: 1, currency: 'USD', account: 'a', tip: 1 }),
      'invalid_request',
    ],
    [
      'capture not a boolean',
      () => post('/charges', { amount: 1, currency: 'USD', account: 'a', capture: 'no' }),
      'invalid_request',
    ],
  ])('%s → 400', async (_what, send, code) => {
    const response = await send();
    expect(response.status).toBe(400);
    expect(((await response.json()) as { error: { code: string } }).error.code).toBe(code);
    expect(await emulator.journal()).toEqual([]);
  });

  it('a wrong bearer token → 401, nothing applied', async () => {
    const response = await fetch(`${emulator.url}/charges`, {
      method: 'POST',
      headers: { authorization: 'Bearer nope', 'idempotency-key': 'k' },
      body: JSON.stringify({ amount: 1, currency: 'USD', account: 'a' }),
    });
    expect(response.status).toBe(401);
    expect(response.headers.get('www-authenticate')).toBe('Bearer');
    expect(await emulator.journal()).toEqual([]);
  });

  it('a processing charge settles on its own and journals then', async () => {
    await emulator.addFault({ match: {}, fault: 'processing', ms: 200 });
    const made = (await (await charge(10)).json()) as { id: string; status: string };
    expect(made.status).toBe('processing');
    expect(await emulator.journal({ charge: made.id })).toEqual([]);
    await eventually(
      () => emulator.charge(made.id),
      (c) => c.status === 'succeeded',
      { what: 'settled' },
    );
    expect(await emulator.journal({ account: 'acct-f' })).toMatchObject([
      { kind: 'charge', amount: 10 },
    ]);
  });
});
