import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createHttpProcessor, type HttpProcessor } from '../../src/processor/http-processor.ts';
import type { WebhookEvent } from '../../src/processor/protocol.ts';
import { verifySignature } from '../../src/processor/signature.ts';
import {
  eventually,
  startEmulatorProcess,
  type EmulatorProcess,
} from '../support/processor-emulator.ts';

/** Webhooks from the emulator process to a receiver on loopback, as the service will get them. */
interface Received {
  readonly signature: string | undefined;
  readonly raw: string;
  readonly event: WebhookEvent;
}

let received: Received[] = [];
/** Statuses the receiver answers with, in turn; 200 once they run out. */
let answers: number[] = [];
let receiver: Server;
let emulator: EmulatorProcess;
let processor: HttpProcessor;
let seq = 0;
const nextKey = () => `wh-${process.pid}-${++seq}`;

beforeAll(async () => {
  receiver = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const raw = Buffer.concat(chunks).toString('utf8');
      const header = req.headers['processor-signature'];
      received.push({
        signature: typeof header === 'string' ? header : undefined,
        raw,
        event: JSON.parse(raw) as WebhookEvent,
      });
      res.writeHead(answers.shift() ?? 200).end();
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  const { port } = receiver.address() as AddressInfo;
  emulator = await startEmulatorProcess({
    args: [
      '--webhook-url',
      `http://127.0.0.1:${port}/processor/webhooks`,
      '--webhook-delay-ms',
      '20',
    ],
  });
  processor = createHttpProcessor({ url: emulator.url, secret: emulator.secret, timeoutMs: 2_000 });
});
afterAll(async () => {
  try {
    await processor.close();
  } finally {
    await emulator.stop();
    await new Promise((resolve) => receiver.close(resolve));
  }
});
beforeEach(async () => {
  await emulator.reset();
  received = [];
  answers = [];
});

const charge = (amount: number, capture = true) =>
  processor.charge({
    amount,
    currency: 'EUR',
    account: 'acct-w',
    capture,
    idempotencyKey: nextKey(),
  });

async function chargeId(amount: number, capture = true): Promise<string> {
  const outcome = await charge(amount, capture);
  if (outcome.kind !== 'known') throw new Error(JSON.stringify(outcome));
  return outcome.value.id;
}

const typesFor = (id: string) =>
  received.filter((r) => r.event.data.id === id).map((r) => r.event.type);

describe('webhooks from the emulator', () => {
  it('are signed over the raw body with the secret, verifiable with verifySignature', async () => {
    const id = await chargeId(100);
    const [delivery] = await eventually(
      () => received,
      (list) => list.length >= 1,
      { what: 'a webhook' },
    );
    expect(delivery?.event).toMatchObject({ type: 'charge.succeeded', data: { id } });
    expect(delivery?.event.id).toMatch(/^evt_/);
    expect(
      verifySignature(delivery?.signature, delivery?.raw ?? '', emulator.secret),
    ).toMatchObject({
      ok: true,
    });
    expect(
      verifySignature(delivery?.signature, delivery?.raw ?? '', 'another-secret'),
    ).toMatchObject({
      ok: false,
      reason: 'mismatch',
    });
  });

  it('follow a processing charge: charge.processing, then charge.succeeded when it settles', async () => {
    await emulator.addFault({ match: {}, fault: 'processing', ms: 300 });
    const id = await chargeId(200);
    await eventually(
      () => typesFor(id),
      (types) => types.length >= 2,
      { what: 'two webhooks' },
    );
    expect(typesFor(id)).toEqual(['charge.processing', 'charge.succeeded']);
    expect((await emulator.charge(id)).status).toBe('succeeded');
  });

  it('a processing authorization that settles declined says so', async () => {
    await emulator.addFault({ match: {}, fault: 'processing', ms: 100, settle: 'declined' });
    const id = await chargeId(201, false);
    await eventually(
      () => typesFor(id),
      (types) => types.length >= 2,
      { what: 'two webhooks' },
    );
    expect(typesFor(id)).toEqual(['charge.processing', 'charge.declined']);
    expect(await emulator.charge(id)).toMatchObject({
      status: 'declined',
      failure_reason: 'processing_failed',
    });
  });

  it('arrive out of order when asked: charge.succeeded before charge.processing', async () => {
    await emulator.addFault({ match: {}, fault: 'processing', ms: 200, outOfOrder: true });
    const id = await chargeId(300);
    await eventually(
      () => typesFor(id),
      (types) => types.length >= 2,
      { what: 'two webhooks' },
    );
    expect(typesFor(id)).toEqual(['charge.succeeded', 'charge.processing']);
  });

  it('arrive twice with the same event id when asked', async () => {
    await emulator.addFault({ match: {}, fault: 'processing', ms: 100, duplicate: true });
    const id = await chargeId(400);
    await eventually(
      () => typesFor(id),
      (types) => types.length >= 4,
      { what: 'four webhooks' },
    );
    const mine = received.filter((r) => r.event.data.id === id);
    expect(mine.map((r) => r.event.type)).toEqual([
      'charge.processing',
      'charge.processing',
      'charge.succeeded',
      'charge.succeeded',
    ]);
    expect(new Set(mine.map((r) => r.event.id)).size).toBe(2);
    for (const r of mine)
      expect(verifySignature(r.signature, r.raw, emulator.secret).ok).toBe(true);
  });

  it('are retried when the receiver answers 5xx', async () => {
    answers = [500, 503];
    const id = await chargeId(500);
    await eventually(
      () => typesFor(id),
      (types) => types.length >= 3,
      { what: 'three attempts' },
    );
    const deliveries = await emulator.deliveries();
    expect(deliveries.map((d) => [d.attempt, d.status])).toEqual([
      [1, 500],
      [2, 503],
      [3, 200],
    ]);
    expect(new Set(received.map((r) => r.event.id)).size).toBe(1);
  });

  it('follow captures, cancels and refunds', async () => {
    const authorized = await chargeId(600, false);
    await processor.capture(authorized, { amount: 500 });
    const refunded = await chargeId(700);
    await processor.refund(refunded, { amount: 100, idempotencyKey: nextKey() });
    const voided = await chargeId(800, false);
    await processor.cancel(voided);
    await eventually(
      () => received,
      (list) => list.length >= 6,
      { what: 'six webhooks' },
    );
    expect(typesFor(authorized)).toEqual(['charge.requires_capture', 'charge.captured']);
    expect(typesFor(refunded)).toEqual(['charge.succeeded', 'charge.refunded']);
    expect(typesFor(voided)).toEqual(['charge.requires_capture', 'charge.canceled']);
  });
});
