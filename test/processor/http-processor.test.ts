import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  createHttpProcessor,
  type HttpProcessor,
  type HttpProcessorOptions,
} from '../../src/processor/http-processor.ts';
import { freePort } from '../support/redis-server.ts';
import {
  eventually,
  startEmulatorProcess,
  type EmulatorProcess,
} from '../support/processor-emulator.ts';

/**
 * The HTTP connector against the emulator run as a process: every answer
 * and every fault is classified as known, unknown (retry later), rejected
 * (final) or open (the breaker refuses new charges).
 */
let emulator: EmulatorProcess;
const clients: HttpProcessor[] = [];
let seq = 0;
const nextKey = () => `op-${process.pid}-${++seq}`;

function client(options: Partial<HttpProcessorOptions> = {}): HttpProcessor {
  const made = createHttpProcessor({
    url: emulator.url,
    secret: emulator.secret,
    timeoutMs: 1_000,
    ...options,
  });
  clients.push(made);
  return made;
}

const usd = (amount: number, account = 'acct-1', capture = true) => ({
  amount,
  currency: 'USD',
  account,
  capture,
});

beforeAll(async () => {
  emulator = await startEmulatorProcess();
});
afterAll(async () => {
  try {
    await Promise.all(clients.map((c) => c.close()));
  } finally {
    await emulator.stop();
  }
});
beforeEach(async () => {
  await emulator.reset();
});

describe('answers the processor gives', () => {
  it('charges once: succeeded, one journal entry for the key', async () => {
    const key = nextKey();
    const outcome = await client().charge({ ...usd(1_250), idempotencyKey: key });
    expect(outcome).toMatchObject({
      kind: 'known',
      replayed: false,
      value: { status: 'succeeded', amount: 1_250, amount_captured: 1_250, idempotency_key: key },
    });
    expect(await emulator.journal({ idempotency_key: key })).toMatchObject([
      { kind: 'charge', amount: 1_250, account: 'acct-1', currency: 'USD' },
    ]);
  });

  it('authorizes, captures part and releases the rest; the same capture again is a replay', async () => {
    const processor = client();
    const key = nextKey();
    const authorized = await processor.charge({
      ...usd(1_000, 'acct-1', false),
      idempotencyKey: key,
    });
    expect(authorized).toMatchObject({ kind: 'known', value: { status: 'requires_capture' } });
    if (authorized.kind !== 'known') return;
    const id = authorized.value.id;
    expect(await processor.capture(id, { amount: 600 })).toMatchObject({
      kind: 'known',
      replayed: false,
      value: { status: 'succeeded', amount_captured: 600 },
    });
    expect(await processor.capture(id, { amount: 600 })).toMatchObject({
      kind: 'known',
      replayed: true,
    });
    expect(await processor.capture(id, { amount: 700 })).toMatchObject({
      kind: 'rejected',
      status: 400,
      code: 'charge_already_captured',
    });
    expect(
      (await emulator.journal({ idempotency_key: key })).map((e) => [e.kind, e.amount]),
    ).toEqual([
      ['authorize', 1_000],
      ['capture', 600],
      ['release', 400],
    ]);
  });

  it('cancels an authorization: canceled, the hold released', async () => {
    const processor = client();
    const key = nextKey();
    const authorized = await processor.charge({
      ...usd(300, 'acct-1', false),
      idempotencyKey: key,
    });
    if (authorized.kind !== 'known') throw new Error(JSON.stringify(authorized));
    expect(await processor.cancel(authorized.value.id)).toMatchObject({
      kind: 'known',
      value: { status: 'canceled' },
    });
    expect(await processor.cancel(authorized.value.id)).toMatchObject({
      kind: 'known',
      replayed: true,
    });
    expect((await emulator.journal({ idempotency_key: key })).map((e) => e.kind)).toEqual([
      'authorize',
      'release',
    ]);
  });

  it('refunds in parts by refund key, never beyond the captured amount', async () => {
    const processor = client();
    const charged = await processor.charge({ ...usd(1_000), idempotencyKey: nextKey() });
    if (charged.kind !== 'known') throw new Error(JSON.stringify(charged));
    const id = charged.value.id;
    const first = nextKey();
    expect(await processor.refund(id, { amount: 400, idempotencyKey: first })).toMatchObject({
      kind: 'known',
      value: { status: 'succeeded', amount: 400, charge: { amount_refunded: 400 } },
    });
    expect(await processor.refund(id, { amount: 400, idempotencyKey: first })).toMatchObject({
      kind: 'known',
      replayed: true,
      value: { amount: 400, charge: { amount_refunded: 400 } },
    });
    expect(await processor.refund(id, { amount: 700, idempotencyKey: nextKey() })).toMatchObject({
      kind: 'rejected',
      status: 400,
      code: 'refund_exceeds_charge',
    });
    expect(await processor.refund(id, { idempotencyKey: nextKey() })).toMatchObject({
      kind: 'known',
      value: { amount: 600, charge: { amount_refunded: 1_000 } },
    });
    expect(
      (await emulator.journal()).filter((e) => e.kind === 'refund').map((e) => e.amount),
    ).toEqual([400, 600]);
  });

  it('a decline is a known answer with its reason, and moves no money', async () => {
    await emulator.addFault({
      match: { account: 'acct-poor' },
      fault: 'decline',
      reason: 'insufficient_funds',
    });
    const key = nextKey();
    expect(await client().charge({ ...usd(500, 'acct-poor'), idempotencyKey: key })).toMatchObject({
      kind: 'known',
      value: { status: 'declined', failure_reason: 'insufficient_funds' },
    });
    expect(await emulator.journal({ idempotency_key: key })).toEqual([]);
  });

  it('a processing charge is known as processing, and settles later', async () => {
    await emulator.addFault({ match: {}, fault: 'processing', ms: 300 });
    const processor = client();
    const outcome = await processor.charge({ ...usd(800), idempotencyKey: nextKey() });
    expect(outcome).toMatchObject({ kind: 'known', value: { status: 'processing' } });
    if (outcome.kind !== 'known') return;
    await eventually(
      () => processor.get(outcome.value.id),
      (o) => o.kind === 'known' && o.value.status === 'succeeded',
      { what: 'the charge settled' },
    );
  });

  it('looks a charge up by id and by idempotency key; none is not_found', async () => {
    const processor = client();
    const key = nextKey();
    const charged = await processor.charge({ ...usd(42), idempotencyKey: key });
    if (charged.kind !== 'known') throw new Error(JSON.stringify(charged));
    expect(await processor.get(charged.value.id)).toMatchObject({
      kind: 'known',
      value: { id: charged.value.id, status: 'succeeded' },
    });
    expect(await processor.findByIdempotencyKey(key)).toMatchObject({
      kind: 'known',
      value: { id: charged.value.id },
    });
    expect(await processor.get('ch_missing')).toEqual({ kind: 'not_found' });
    expect(await processor.findByIdempotencyKey(nextKey())).toEqual({ kind: 'not_found' });
  });
});

describe('idempotency', () => {
  it('the same key twice charges once and answers the second as a replay', async () => {
    const processor = client();
    const key = nextKey();
    const first = await processor.charge({ ...usd(990), idempotencyKey: key });
    const second = await processor.charge({ ...usd(990), idempotencyKey: key });
    expect(second).toMatchObject({ kind: 'known', replayed: true });
    expect(
      first.kind === 'known' && second.kind === 'known' && first.value.id === second.value.id,
    ).toBe(true);
    expect(await emulator.journal({ idempotency_key: key })).toHaveLength(1);
  });

  it('the same key with another amount is rejected (400) with the processor message', async () => {
    const processor = client();
    const key = nextKey();
    await processor.charge({ ...usd(990), idempotencyKey: key });
    expect(await processor.charge({ ...usd(991), idempotencyKey: key })).toEqual({
      kind: 'rejected',
      status: 400,
      code: 'idempotency_key_reused',
      message: 'this Idempotency-Key was used with other parameters',
    });
    expect(await emulator.journal({ idempotency_key: key })).toHaveLength(1);
  });

  it('a key whose first request is still running is unknown (409), lookups too, until it ends', async () => {
    await emulator.addFault({
      match: { method: 'POST', path: '/charges' },
      fault: 'delay',
      ms: 1_500,
      times: 1,
    });
    const processor = client({ timeoutMs: 5_000 });
    const key = nextKey();
    const first = processor.charge({ ...usd(77), idempotencyKey: key });
    await eventually(
      () => emulator.faults(),
      (faults) => faults[0]?.fired === 1,
      { what: 'the delay fault fired' },
    );
    expect(await processor.charge({ ...usd(77), idempotencyKey: key })).toMatchObject({
      kind: 'unknown',
      reason: 'in_flight',
    });
    expect(await processor.findByIdempotencyKey(key)).toMatchObject({
      kind: 'unknown',
      reason: 'in_flight',
    });
    expect(await first).toMatchObject({ kind: 'known', value: { status: 'succeeded' } });
    expect(await processor.findByIdempotencyKey(key)).toMatchObject({ kind: 'known' });
    expect(await emulator.journal({ idempotency_key: key })).toHaveLength(1);
  });
});

describe('faults leave the outcome unknown, never a second charge', () => {
  it('a lost response is unknown; the lookup by key then finds the charge succeeded', async () => {
    await emulator.addFault({
      match: { method: 'POST', path: '/charges' },
      fault: 'lose_response',
      times: 1,
    });
    const processor = client();
    const key = nextKey();
    expect(await processor.charge({ ...usd(1_500), idempotencyKey: key })).toMatchObject({
      kind: 'unknown',
      reason: 'network',
    });
    expect(await processor.findByIdempotencyKey(key)).toMatchObject({
      kind: 'known',
      value: { status: 'succeeded', amount: 1_500 },
    });
    expect(await processor.charge({ ...usd(1_500), idempotencyKey: key })).toMatchObject({
      kind: 'known',
      replayed: true,
    });
    expect(await emulator.journal({ idempotency_key: key })).toHaveLength(1);
  });

  it('an answer held past timeoutMs is unknown (timeout) after about timeoutMs; it was applied', async () => {
    await emulator.addFault({
      match: { path: '/charges', method: 'POST' },
      fault: 'timeout',
      ms: 10_000,
      times: 1,
    });
    const processor = client({ timeoutMs: 400 });
    const key = nextKey();
    const started = Date.now();
    expect(await processor.charge({ ...usd(60), idempotencyKey: key })).toMatchObject({
      kind: 'unknown',
      reason: 'timeout',
    });
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(await processor.findByIdempotencyKey(key)).toMatchObject({
      kind: 'known',
      value: { status: 'succeeded' },
    });
  });

  it('a 500 after applying is unknown; the charge is there', async () => {
    await emulator.addFault({
      match: { path: '/charges', method: 'POST' },
      fault: '5xx_after',
      times: 1,
    });
    const processor = client();
    const key = nextKey();
    expect(await processor.charge({ ...usd(61), idempotencyKey: key })).toMatchObject({
      kind: 'unknown',
      reason: 'server_error',
    });
    expect(await processor.findByIdempotencyKey(key)).toMatchObject({ kind: 'known' });
    expect(await emulator.journal({ idempotency_key: key })).toHaveLength(1);
  });

  it('a 500 before applying is unknown; nothing is there and the retry charges once', async () => {
    await emulator.addFault({
      match: { path: '/charges', method: 'POST' },
      fault: '5xx_before',
      times: 1,
    });
    const processor = client();
    const key = nextKey();
    expect(await processor.charge({ ...usd(62), idempotencyKey: key })).toMatchObject({
      kind: 'unknown',
      reason: 'server_error',
    });
    expect(await processor.findByIdempotencyKey(key)).toEqual({ kind: 'not_found' });
    expect(await processor.charge({ ...usd(62), idempotencyKey: key })).toMatchObject({
      kind: 'known',
      replayed: false,
      value: { status: 'succeeded' },
    });
    expect(await emulator.journal({ idempotency_key: key })).toHaveLength(1);
  });

  it('a reset connection is unknown; nothing was applied', async () => {
    await emulator.addFault({
      match: { path: '/charges', method: 'POST' },
      fault: 'reset',
      times: 1,
    });
    const processor = client();
    const key = nextKey();
    expect(await processor.charge({ ...usd(63), idempotencyKey: key })).toMatchObject({
      kind: 'unknown',
      reason: 'network',
    });
    expect(await processor.findByIdempotencyKey(key)).toEqual({ kind: 'not_found' });
  });

  it('429 is unknown with the Retry-After it gave', async () => {
    await emulator.addFault({
      match: { path: '/charges' },
      fault: 'rate_limit',
      ms: 2_000,
      times: 1,
    });
    expect(await client().charge({ ...usd(64), idempotencyKey: nextKey() })).toMatchObject({
      kind: 'unknown',
      reason: 'rate_limited',
      retryAfterMs: 2_000,
    });
  });

  it('a lost response to a refund is unknown; the charge read back shows the refund once', async () => {
    const processor = client();
    const charged = await processor.charge({ ...usd(500), idempotencyKey: nextKey() });
    if (charged.kind !== 'known') throw new Error(JSON.stringify(charged));
    await emulator.addFault({
      match: { path: '/charges/*/refunds' },
      fault: 'lose_response',
      times: 1,
    });
    const refundKey = nextKey();
    expect(
      await processor.refund(charged.value.id, { amount: 200, idempotencyKey: refundKey }),
    ).toMatchObject({
      kind: 'unknown',
      reason: 'network',
    });
    expect(
      await processor.refund(charged.value.id, { amount: 200, idempotencyKey: refundKey }),
    ).toMatchObject({
      kind: 'known',
      replayed: true,
    });
    const read = await processor.get(charged.value.id);
    expect(read).toMatchObject({ kind: 'known', value: { amount_refunded: 200 } });
    expect(read.kind === 'known' && read.value.refunds.map((r) => r.idempotency_key)).toEqual([
      refundKey,
    ]);
  });

  it('a 2xx answer that is not the protocol is unknown (invalid_response)', async () => {
    const impostor = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
    });
    await new Promise<void>((resolve) => impostor.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = impostor.address() as AddressInfo;
      const processor = client({ url: `http://127.0.0.1:${port}` });
      expect(await processor.charge({ ...usd(66), idempotencyKey: nextKey() })).toMatchObject({
        kind: 'unknown',
        reason: 'invalid_response',
      });
      expect(await processor.findByIdempotencyKey(nextKey())).toMatchObject({
        kind: 'unknown',
        reason: 'invalid_response',
      });
      await processor.close();
    } finally {
      await new Promise((resolve) => impostor.close(resolve));
    }
  });

  it('no processor listening is unknown (network)', async () => {
    const processor = client({ url: `http://127.0.0.1:${await freePort()}` });
    expect(await processor.charge({ ...usd(65), idempotencyKey: nextKey() })).toMatchObject({
      kind: 'unknown',
      reason: 'network',
    });
    expect(await processor.get('ch_1')).toMatchObject({ kind: 'unknown', reason: 'network' });
  });
});

describe('final refusals', () => {
  it('a wrong secret is rejected (401)', async () => {
    expect(
      await client({ secret: 'wrong' }).charge({ ...usd(10), idempotencyKey: nextKey() }),
    ).toMatchObject({
      kind: 'rejected',
      status: 401,
      code: 'unauthorized',
    });
  });

  it('bad parameters are rejected (400) with the processor message, nothing charged', async () => {
    const key = nextKey();
    expect(
      await client().charge({ ...usd(10), currency: 'usd', idempotencyKey: key }),
    ).toMatchObject({
      kind: 'rejected',
      status: 400,
      code: 'invalid_currency',
      message: 'currency must be an ISO 4217 code',
    });
    expect(await emulator.journal({ idempotency_key: key })).toEqual([]);
  });

  it('a capture of a charge the processor does not know is rejected (404)', async () => {
    expect(await client().capture('ch_missing', {})).toMatchObject({
      kind: 'rejected',
      status: 404,
      code: 'not_found',
    });
  });

  it('throws for a programming error: no idempotency key, an amount that is not an integer, a closed client', async () => {
    const processor = client();
    await expect(processor.charge({ ...usd(10), idempotencyKey: '' })).rejects.toThrow(TypeError);
    await expect(processor.charge({ ...usd(10.5), idempotencyKey: nextKey() })).rejects.toThrow(
      TypeError,
    );
    await expect(processor.get('')).rejects.toThrow(TypeError);
    await processor.close();
    await expect(processor.get('ch_1')).rejects.toThrow('the processor client is closed');
  });
});

describe('the circuit breaker around new charges', () => {
  it('opens after consecutive failures: charges fail fast, lookups still reach the processor', async () => {
    await emulator.addFault({ match: { path: '/charges', method: 'POST' }, fault: '5xx_before' });
    const processor = client({ breaker: { consecutiveFailures: 3, halfOpenAfterMs: 60_000 } });
    for (let i = 0; i < 3; i += 1) {
      expect(await processor.charge({ ...usd(10), idempotencyKey: nextKey() })).toMatchObject({
        kind: 'unknown',
      });
    }
    expect(processor.breakerState()).toBe('open');
    const refused = await processor.charge({ ...usd(10), idempotencyKey: nextKey() });
    expect(refused).toMatchObject({ kind: 'open' });
    expect(
      refused.kind === 'open' && refused.retryAfterMs > 55_000 && refused.retryAfterMs <= 60_000,
    ).toBe(true);
    expect((await emulator.faults())[0]?.seen).toBe(3);
    expect(await processor.findByIdempotencyKey(nextKey())).toEqual({ kind: 'not_found' });
    expect(await processor.get('ch_missing')).toEqual({ kind: 'not_found' });
  });

  it('lets a trial charge through after halfOpenAfterMs and closes when it succeeds', async () => {
    const rule = await emulator.addFault({
      match: { path: '/charges', method: 'POST' },
      fault: 'reset',
    });
    const processor = client({ breaker: { consecutiveFailures: 2, halfOpenAfterMs: 300 } });
    await processor.charge({ ...usd(10), idempotencyKey: nextKey() });
    await processor.charge({ ...usd(10), idempotencyKey: nextKey() });
    expect(processor.breakerState()).toBe('open');
    await fetch(`${emulator.url}/_emulator/faults/${rule.id}`, { method: 'DELETE' });
    const outcome = await eventually(
      () => processor.charge({ ...usd(10), idempotencyKey: nextKey() }),
      (o) => o.kind !== 'open',
      { what: 'a charge let through' },
    );
    expect(outcome).toMatchObject({ kind: 'known', value: { status: 'succeeded' } });
    expect(processor.breakerState()).toBe('closed');
  });

  it('declines, refusals and keys in use do not open it', async () => {
    await emulator.addFault({ match: { account: 'acct-poor' }, fault: 'decline' });
    const processor = client({ breaker: { consecutiveFailures: 2, halfOpenAfterMs: 60_000 } });
    for (let i = 0; i < 3; i += 1) {
      await processor.charge({ ...usd(10, 'acct-poor'), idempotencyKey: nextKey() });
      await processor.charge({ ...usd(10), currency: 'usd', idempotencyKey: nextKey() });
    }
    expect(processor.breakerState()).toBe('closed');
    expect(await processor.charge({ ...usd(10), idempotencyKey: nextKey() })).toMatchObject({
      kind: 'known',
    });
  });

  it('is off unless asked for', async () => {
    await emulator.addFault({ match: { path: '/charges', method: 'POST' }, fault: '5xx_before' });
    const processor = client();
    for (let i = 0; i < 6; i += 1) {
      expect(await processor.charge({ ...usd(10), idempotencyKey: nextKey() })).toMatchObject({
        kind: 'unknown',
      });
    }
    expect(processor.breakerState()).toBe('none');
  });
});
