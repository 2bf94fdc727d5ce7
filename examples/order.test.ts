/** The order example on the engine, against the test Redis. */
import { randomBytes } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, inject, it } from 'vitest';
import { createEngine, type Engine, type EngineWorker } from '../src/runtime/index.ts';
import { orders, type Carrier } from './order.ts';

/** Polls `check` until it returns true (no fixed sleeps). */
async function until(check: () => Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe('an order on the engine', () => {
  let engine: Engine;
  let worker: EngineWorker;
  let shipped: string[];
  let shop: ReturnType<typeof orders>;

  beforeEach(async () => {
    engine = await createEngine({
      redisUrl: inject('redisUrl'),
      prefix: `example-${randomBytes(4).toString('hex')}`,
      storeCheckIntervalMs: 0,
    });
    shipped = [];
    const carrier: Carrier = {
      ship: (orderId, operationId) => {
        if (!shipped.includes(operationId)) shipped.push(operationId);
        return Promise.resolve({ trackingId: `track-${orderId}` });
      },
    };
    shop = orders(engine, { carrier, paymentWindowMs: 300, retentionMs: 60_000 });
    worker = await engine.startWorker([shop]);
  });

  afterEach(async () => {
    await worker.stop();
    await engine.close();
  });

  it('ships a paid order once and answers with what the machine emitted', async () => {
    const paid = await shop.send('order-1', { type: 'PAY', amountCents: 4_200 });
    expect(paid.emitted).toEqual([{ type: 'order.reply', status: 'paid', accepted: true }]);
    expect(paid.snapshot.value).toBe('shipped');
    expect(paid.snapshot.context.trackingId).toBe('track-order-1');
    expect(shipped).toHaveLength(1);

    const late = await shop.send('order-1', { type: 'CANCEL' });
    expect(late.emitted).toEqual([{ type: 'order.reply', status: 'shipped', accepted: false }]);
    expect((await shop.send('order-1', { type: 'DELIVERED' })).snapshot.status).toBe('done');
  });

  it('cancels an order nobody paid when its payment window closes, and refuses a late payment', async () => {
    // A fresh key's first event creates it; this one only asks its state.
    await shop.send('order-3', { type: 'DELIVERED' });
    expect((await shop.get('order-3'))?.value).toBe('awaitingPayment');
    await until(
      async () => (await shop.get('order-3'))?.value === 'cancelled',
      'the payment window to close',
    );
    const late = await shop.send('order-3', { type: 'PAY', amountCents: 100 });
    expect(late.snapshot.value).toBe('cancelled');
    expect(late.emitted).toEqual([{ type: 'order.reply', status: 'cancelled', accepted: false }]);
    expect(shipped).toEqual([]);
  });
});
