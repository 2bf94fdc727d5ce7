/**
 * The inspector is generic: mounted for the order example, its page draws
 * the order machine and its counts and lookups read the order's records.
 */
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { randomBytes } from 'node:crypto';
import express from 'express';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createEngine, type Engine } from '../src/runtime/index.ts';
import { errorHandler } from '../src/http/error-handler.ts';
import { inspectorRouter, INSPECTOR_CSP } from '../src/inspector/inspector-router.ts';
import { orderMachine, orders } from './order.ts';

describe('the inspector mounted for the order machine', () => {
  let engine: Engine;
  let server: Server;
  let url: string;
  let shop: ReturnType<typeof orders>;

  beforeAll(async () => {
    engine = await createEngine({
      redisUrl: inject('redisUrl'),
      prefix: `example-${randomBytes(4).toString('hex')}`,
      storeCheckIntervalMs: 0,
    });
    shop = orders(engine, {
      carrier: { ship: (orderId) => Promise.resolve({ trackingId: `track-${orderId}` }) },
      paymentWindowMs: 60_000,
      retentionMs: 60_000,
    });
    const app = express();
    app.use(inspectorRouter({ title: 'orders', machine: orderMachine, actors: shop }));
    // The router throws the service's errors: the app's error handler answers them.
    app.use(errorHandler());
    server = app.listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await new Promise((resolve) => server.close(resolve));
    await engine.close();
  });

  it('draws every state of the order machine, the delayed transition labelled', async () => {
    const response = await fetch(`${url}/inspect`);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-security-policy')).toBe(INSPECTOR_CSP);
    const html = await response.text();
    const states = [...html.matchAll(/class="state-node[^"]*" data-state="([^"]+)"/g)].map(
      ([, state]) => state,
    );
    expect(states.sort()).toEqual(
      ['awaitingPayment', 'cancelled', 'delivered', 'shipped', 'shipping'].sort(),
    );
    expect(html).toContain(
      'data-from="awaitingPayment" data-to="cancelled" data-event="after paymentWindow"',
    );
    expect(html).toContain('class="state-node final" data-state="delivered"');
    expect(html).not.toMatch(/https?:\/\/(?!www\.w3\.org)/);
  });

  it("counts orders per state and shows an order's state and facts", async () => {
    await shop.send('o-1', { type: 'PAY', amountCents: 900 });
    await shop.send('o-2', { type: 'CANCEL' });

    const counts = (await (await fetch(`${url}/inspect/api/counts`)).json()) as {
      counts: Record<string, number>;
    };
    expect(counts.counts).toEqual({
      awaitingPayment: 0,
      shipping: 0,
      shipped: 1,
      delivered: 0,
      cancelled: 1,
      unreadable: 0,
    });

    const order = await fetch(`${url}/inspect/api/keys/o-1`);
    expect(order.status).toBe(200);
    expect(await order.json()).toMatchObject({
      key: 'o-1',
      state: 'shipped',
      history: [],
      fields: { orderId: 'o-1', amountCents: 900, trackingId: 'track-o-1' },
    });
    expect((await fetch(`${url}/inspect/api/keys/o-none`)).status).toBe(404);

    const listed = (await (await fetch(`${url}/inspect/api/states/shipped`)).json()) as {
      keys: { key: string }[];
    };
    expect(listed.keys.map((k) => k.key)).toEqual(['o-1']);
  });
});
