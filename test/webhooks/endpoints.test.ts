/**
 * The endpoint registry's reads for delivery, on real Redis: what a
 * delivery worker will ask (an endpoint with its secret, the endpoints of
 * an event type), per tenant, and nothing once an endpoint is deleted.
 */
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { WebhookEndpoints } from '../../src/webhooks/endpoints.ts';
import { randomPrefix } from '../support/service-harness.ts';

describe('the webhook endpoint registry', () => {
  let redis: Redis;
  let registry: WebhookEndpoints;
  let prefix: string;
  beforeAll(() => {
    redis = new Redis(inject('redisUrl'));
    prefix = randomPrefix();
    registry = new WebhookEndpoints(redis, { prefix, maxPerTenant: 3, now: () => 1_000 });
  });
  afterAll(async () => {
    const keys = await redis.keys(`${prefix}:*`);
    if (keys.length > 0) await redis.del(...keys);
    redis.disconnect();
  });

  it('gives a delivery the endpoint with its secret, and the endpoints of an event type', async () => {
    const all = await registry.create('alpha', { url: 'https://93.184.215.14/all' });
    const refunds = await registry.create('alpha', {
      url: 'https://93.184.215.14/refunds',
      events: ['payment.refunded', 'payment.partially_refunded'],
    });
    await registry.create('beta', { url: 'https://93.184.215.14/beta' });

    expect(await registry.forDelivery('alpha', all.endpoint.id)).toEqual({
      ...all.endpoint,
      secret: all.secret,
    });
    expect(await registry.forDelivery('beta', all.endpoint.id)).toBeNull();
    expect(await registry.forDelivery(null, all.endpoint.id)).toBeNull();

    const refunded = await registry.subscribedTo('alpha', 'payment.refunded');
    expect(refunded.map((t) => [t.id, t.secret])).toEqual([
      [all.endpoint.id, all.secret],
      [refunds.endpoint.id, refunds.secret],
    ]);
    expect((await registry.subscribedTo('alpha', 'payment.processed')).map((t) => t.id)).toEqual([
      all.endpoint.id,
    ]);
    expect(await registry.subscribedTo(null, 'payment.processed')).toEqual([]);

    expect(await registry.delete('alpha', refunds.endpoint.id)).toBe(true);
    expect(await registry.forDelivery('alpha', refunds.endpoint.id)).toBeNull();
    expect((await registry.subscribedTo('alpha', 'payment.refunded')).map((t) => t.id)).toEqual([
      all.endpoint.id,
    ]);
    expect(await registry.delete('alpha', refunds.endpoint.id)).toBe(false);
  });

  it('never puts the secret in a listing', async () => {
    const created = await registry.create(null, { url: 'https://93.184.215.14/local' });
    const listed = await registry.list(null);
    expect(listed).toEqual([created.endpoint]);
    expect(JSON.stringify(listed)).not.toContain(created.secret);
    expect(Object.keys(created.endpoint).sort()).toEqual(['createdAt', 'events', 'id', 'url']);
  });

  it('holds the bound under concurrent registrations', async () => {
    const results = await Promise.allSettled(
      Array.from({ length: 10 }, (_, i) =>
        registry.create('gamma', { url: `https://93.184.215.14/${i}` }),
      ),
    );
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(3);
    const refused = results.filter((r) => r.status === 'rejected');
    expect(refused).toHaveLength(7);
    expect((refused[0] as PromiseRejectedResult).reason).toMatchObject({
      code: 'webhook_endpoint_limit',
    });
    expect(await registry.list('gamma')).toHaveLength(3);
  });
});
