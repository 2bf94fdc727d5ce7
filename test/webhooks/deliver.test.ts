/**
 * One delivery attempt against a real receiver process on 127.0.0.1 (so
 * allowPrivate is on where the receiver must be reached): the signature it
 * receives verifies, and a 500, a redirect, a hang and a refused
 * connection are failures with their reason. With allowPrivate off, the
 * guard refuses before anything is sent. Traffic goes to loopback only:
 * names are resolved by an injected resolver.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { verifySignature } from '../../src/processor/signature.ts';
import type { Resolver } from '../../src/webhooks/address-guard.ts';
import { USER_AGENT, WebhookDelivery } from '../../src/webhooks/deliver.ts';
import { freePort } from '../support/redis-server.ts';
import { waitFor } from '../support/service-harness.ts';
import { startWebhookReceiver, type WebhookReceiver } from '../support/webhook-receiver.ts';

const SECRET = 'whsec_test_0123456789abcdefghijklmnopqrstuvwxyzABCDEFG';
const TIMEOUT_MS = 800;

const event = {
  id: 'evt_0001',
  type: 'payment.processed',
  createdAt: '2026-12-08T00:00:00.000Z',
  data: { token: 'order-1', status: 'processed' },
};
const body = JSON.stringify(event);

/** Maps the given names to addresses; any other name does not resolve. */
function resolverOf(names: Record<string, string>): Resolver {
  return (hostname) => {
    const address = names[hostname];
    return address === undefined
      ? Promise.reject(Object.assign(new Error(`ENOTFOUND ${hostname}`), { code: 'ENOTFOUND' }))
      : Promise.resolve([{ address, family: 4 as const }]);
  };
}

describe('a webhook delivery attempt', () => {
  let receiver: WebhookReceiver;
  let delivery: WebhookDelivery;
  beforeAll(async () => {
    receiver = await startWebhookReceiver();
    delivery = new WebhookDelivery({
      timeoutMs: TIMEOUT_MS,
      allowPrivate: true,
      resolve: resolverOf({ 'receiver.test': '127.0.0.1' }),
    });
  });
  afterEach(async () => {
    await receiver.reset();
  });
  afterAll(async () => {
    await delivery.close();
    await receiver.stop();
  });

  it('POSTs the body as given with a signature the receiver verifies, and a 2xx is delivered', async () => {
    const outcome = await delivery.attempt(
      { url: `${receiver.url}/hooks?x=1`, secret: SECRET },
      body,
    );
    expect(outcome).toMatchObject({ outcome: 'delivered', status: 200 });

    const [request, ...others] = await receiver.requests();
    expect(others).toEqual([]);
    expect(request).toMatchObject({ method: 'POST', path: '/hooks?x=1', body });
    expect(request?.headers['content-type']).toBe('application/json');
    expect(request?.headers['user-agent']).toBe(USER_AGENT);
    const header = request?.headers['paystate-signature'];
    expect(header).toMatch(/^t=\d+,v1=[0-9a-f]{64}$/);
    expect(verifySignature(header, request?.body ?? '', SECRET)).toMatchObject({ ok: true });
    // Another endpoint's secret, or a changed body, does not verify.
    expect(verifySignature(header, request?.body ?? '', `${SECRET}x`)).toMatchObject({
      ok: false,
      reason: 'mismatch',
    });
    expect(verifySignature(header, body.replace('order-1', 'order-2'), SECRET)).toMatchObject({
      ok: false,
      reason: 'mismatch',
    });
  });

  it('signs with the time of the attempt', async () => {
    const fixed = new WebhookDelivery({
      timeoutMs: TIMEOUT_MS,
      allowPrivate: true,
      now: () => Date.UTC(2026, 11, 8, 1, 0, 0),
    });
    try {
      await fixed.attempt({ url: `${receiver.url}/clock`, secret: SECRET }, body);
    } finally {
      await fixed.close();
    }
    const [request] = await receiver.requests();
    const header = request?.headers['paystate-signature'];
    expect(header?.startsWith(`t=${Date.UTC(2026, 11, 8, 1, 0, 0) / 1000},`)).toBe(true);
    expect(
      verifySignature(header, request?.body ?? '', SECRET, {
        now: new Date(Date.UTC(2026, 11, 8, 1, 0, 30)),
      }),
    ).toMatchObject({ ok: true });
  });

  it('counts a 500 as failed, with its status', async () => {
    const outcome = await delivery.attempt(
      { url: `${receiver.url}/status/500`, secret: SECRET },
      body,
    );
    expect(outcome).toMatchObject({
      outcome: 'failed',
      reason: 'status',
      status: 500,
      message: 'the endpoint answered 500',
    });
    expect(await receiver.requests()).toHaveLength(1);
  });

  it('counts a 4xx as failed', async () => {
    const outcome = await delivery.attempt(
      { url: `${receiver.url}/status/410`, secret: SECRET },
      body,
    );
    expect(outcome).toMatchObject({ outcome: 'failed', reason: 'status', status: 410 });
  });

  it('does not follow a redirect: a 302 is a failure and nothing else is requested', async () => {
    const outcome = await delivery.attempt(
      { url: `${receiver.url}/status/302`, secret: SECRET },
      body,
    );
    expect(outcome).toMatchObject({ outcome: 'failed', reason: 'status', status: 302 });
    expect((await receiver.requests()).map((r) => r.path)).toEqual(['/status/302']);
  });

  it('counts a receiver that never answers as failed once the timeout passes', async () => {
    const outcome = await delivery.attempt({ url: `${receiver.url}/hang`, secret: SECRET }, body);
    expect(outcome).toMatchObject({
      outcome: 'failed',
      reason: 'timeout',
      message: `no answer within ${TIMEOUT_MS} ms`,
    });
    expect(outcome.durationMs).toBeGreaterThanOrEqual(TIMEOUT_MS - 50);
    expect(outcome.durationMs).toBeLessThan(TIMEOUT_MS + 2_000);
    // The receiver did get it: a timeout is not a refusal.
    expect((await receiver.requests()).map((r) => r.path)).toEqual(['/hang']);
  });

  it('does not wait for an answer body that never ends: a 200 is delivered at once', async () => {
    const outcome = await delivery.attempt(
      { url: `${receiver.url}/endless`, secret: SECRET },
      body,
    );
    expect(outcome).toMatchObject({ outcome: 'delivered', status: 200 });
    expect(outcome.durationMs).toBeLessThan(TIMEOUT_MS);
  });

  it('a hanging endpoint does not hold up a delivery to another', async () => {
    const hanging = delivery.attempt({ url: `${receiver.url}/hang`, secret: SECRET }, body);
    // Same receiver, another origin (by name): the hanging one holds only its own pool.
    const quick = await delivery.attempt(
      { url: `http://receiver.test:${receiver.port}/quick`, secret: SECRET },
      body,
    );
    expect(quick).toMatchObject({ outcome: 'delivered' });
    expect(quick.durationMs).toBeLessThan(TIMEOUT_MS / 2);
    expect(await hanging).toMatchObject({ outcome: 'failed', reason: 'timeout' });
  });

  it('counts a refused connection as a network failure', async () => {
    const port = await freePort();
    const outcome = await delivery.attempt(
      { url: `http://127.0.0.1:${port}/`, secret: SECRET },
      body,
    );
    expect(outcome).toMatchObject({ outcome: 'failed', reason: 'network' });
    expect(outcome.durationMs).toBeLessThan(TIMEOUT_MS);
  });

  it('connects to the address the injected resolver gave, sending the name as the host', async () => {
    const outcome = await delivery.attempt(
      { url: `http://receiver.test:${receiver.port}/by-name`, secret: SECRET },
      body,
    );
    expect(outcome).toMatchObject({ outcome: 'delivered' });
    const [request] = await receiver.requests();
    expect(request?.headers.host).toBe(`receiver.test:${receiver.port}`);
  });

  it('counts a name that does not resolve as a network failure', async () => {
    const outcome = await delivery.attempt(
      { url: `http://nowhere.test:${receiver.port}/`, secret: SECRET },
      body,
    );
    expect(outcome).toMatchObject({ outcome: 'failed', reason: 'network' });
    expect(await receiver.requests()).toEqual([]);
  });
});

describe('a webhook delivery attempt without allowPrivate', () => {
  let receiver: WebhookReceiver;
  let delivery: WebhookDelivery;
  beforeAll(async () => {
    receiver = await startWebhookReceiver();
    delivery = new WebhookDelivery({
      timeoutMs: TIMEOUT_MS,
      allowPrivate: false,
      resolve: resolverOf({
        'receiver.test': '127.0.0.1',
        'internal.example.com': '10.0.0.1',
        'metadata.example.com': '169.254.169.254',
      }),
    });
  });
  afterAll(async () => {
    await delivery.close();
    await receiver.stop();
  });

  it('refuses the receiver on loopback, by literal or by a name mapped to it, and sends nothing', async () => {
    for (const url of [
      `${receiver.url}/literal`,
      `http://[::ffff:127.0.0.1]:${receiver.port}/mapped`,
      `http://0x7f.1:${receiver.port}/hex`,
      `http://2130706433:${receiver.port}/decimal`,
      `http://receiver.test:${receiver.port}/by-name`,
      `http://localhost:${receiver.port}/localhost`,
    ]) {
      const outcome = await delivery.attempt({ url, secret: SECRET }, body);
      expect(outcome, url).toMatchObject({ outcome: 'failed', reason: 'address_refused' });
    }
    // Poll briefly: any request that got through would have been recorded by now.
    await waitFor(async () => ((await receiver.requests()).length === 0 ? true : undefined), {
      timeoutMs: 200,
    });
    expect(await receiver.requests()).toEqual([]);
  });

  it('refuses a name mapped to a private or metadata address before connecting', async () => {
    const internal = await delivery.attempt(
      { url: 'https://internal.example.com/hook', secret: SECRET },
      body,
    );
    expect(internal).toMatchObject({
      outcome: 'failed',
      reason: 'address_refused',
      message: 'internal.example.com resolves to 10.0.0.1 is a private address',
    });
    const metadata = await delivery.attempt(
      { url: 'http://metadata.example.com/latest/meta-data/', secret: SECRET },
      body,
    );
    expect(metadata).toMatchObject({ outcome: 'failed', reason: 'address_refused' });
    expect(metadata.outcome === 'failed' && metadata.message).toContain('cloud metadata address');
  });

  it('refuses a URL the guard never allows', async () => {
    for (const url of ['ftp://receiver.test/', 'http://user:pw@receiver.test/', 'nonsense']) {
      expect(await delivery.attempt({ url, secret: SECRET }, body), url).toMatchObject({
        outcome: 'failed',
        reason: 'address_refused',
      });
    }
  });
});
