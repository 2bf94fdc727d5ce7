/**
 * With OTEL_EXPORTER_OTLP_ENDPOINT set, a payment's request and its timer
 * are traced: spans request → lock → transition → effect, and timer → lock →
 * transition, sent as OTLP/HTTP JSON to a receiver the test runs.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { accountOf } from '../support/app-process.ts';
import { randomPrefix, startTestService, testConfig, waitFor } from '../support/service-harness.ts';

interface OtlpValue {
  readonly stringValue?: string;
  readonly intValue?: string | number;
  readonly doubleValue?: number;
  readonly boolValue?: boolean;
}

interface ReceivedSpan {
  readonly traceId: string;
  readonly spanId: string;
  readonly parentSpanId?: string;
  readonly name: string;
  readonly kind: number;
  readonly attributes: Record<string, string | number | boolean | undefined>;
}

/** An OTLP/HTTP receiver: keeps the spans of every JSON export it gets. */
async function otlpReceiver(): Promise<{
  url: string;
  spans: ReceivedSpan[];
  contentTypes: string[];
  close(): Promise<void>;
}> {
  const spans: ReceivedSpan[] = [];
  const contentTypes: string[] = [];
  const server: Server = createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => (body += chunk));
    req.on('end', () => {
      contentTypes.push(req.headers['content-type'] ?? '');
      if (req.url === '/v1/traces') {
        const exported = JSON.parse(body) as {
          resourceSpans: {
            scopeSpans: {
              spans: (Omit<ReceivedSpan, 'attributes'> & {
                attributes?: { key: string; value: OtlpValue }[];
              })[];
            }[];
          }[];
        };
        for (const resource of exported.resourceSpans) {
          for (const scope of resource.scopeSpans) {
            for (const span of scope.spans) {
              const attributes: ReceivedSpan['attributes'] = {};
              for (const { key, value } of span.attributes ?? []) {
                attributes[key] =
                  value.stringValue ??
                  (value.intValue === undefined ? undefined : Number(value.intValue)) ??
                  value.doubleValue ??
                  value.boolValue;
              }
              spans.push({ ...span, attributes });
            }
          }
        }
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    spans,
    contentTypes,
    close: () =>
      new Promise((resolve) => {
        server.close(() => {
          resolve();
        });
      }),
  };
}

const CALLER_TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const CALLER_SPAN = '00f067aa0ba902b7';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

describe('tracing', () => {
  it('sends the spans of a payment and of its expiry timer, each under its parent', async () => {
    const receiver = await otlpReceiver();
    cleanups.push(() => receiver.close());
    const service = await startTestService(
      testConfig(inject('redisUrl'), {
        OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
        PAYMENT_EXPIRY_MS: '300',
      }),
    );
    let stopped = false;
    cleanups.push(() => (stopped ? undefined : service.stop()));

    const token = `traced-${randomPrefix()}`;
    const paid = await service.request('POST', '/payments', {
      headers: {
        'Idempotency-Key': token,
        'X-Request-Id': 'trace-1',
        traceparent: `00-${CALLER_TRACE}-${CALLER_SPAN}-01`,
      },
      body: { accountId: accountOf(token), amountCents: 100 },
    });
    expect(paid.status).toBe(201);
    await waitFor(
      async () => {
        const reply = await service.request('GET', `/payments/${token}`);
        return (reply.body as { status?: string }).status === 'expired' ? true : undefined;
      },
      { what: 'the payment to expire' },
    );
    // Stopping sends what the batch still holds.
    await service.stop();
    stopped = true;

    const { spans } = receiver;
    expect(receiver.contentTypes).toContain('application/json');
    const byId = new Map(spans.map((s) => [s.spanId, s]));
    const parentOf = (span: ReceivedSpan) =>
      span.parentSpanId === undefined || span.parentSpanId === ''
        ? undefined
        : byId.get(span.parentSpanId);
    const one = (predicate: (s: ReceivedSpan) => boolean, what: string) => {
      const found = spans.filter(predicate);
      expect(found, what).toHaveLength(1);
      return found[0] as ReceivedSpan;
    };

    const request = one((s) => s.attributes['paystate.request_id'] === 'trace-1', 'request');
    expect(request).toMatchObject({
      name: 'POST /payments',
      kind: 2, // SERVER
      attributes: { 'http.route': '/payments', 'http.response.status_code': 201 },
    });
    // The caller's trace is continued: its span is the request's parent.
    expect(request.traceId).toBe(CALLER_TRACE);
    expect(request.parentSpanId).toBe(CALLER_SPAN);

    const lock = one((s) => s.name === 'engine.lock' && parentOf(s) === request, 'lock');
    expect(lock.attributes).toMatchObject({ machine: 'payment', command: 'PAY' });
    const pay = one((s) => s.name === 'engine.transition' && parentOf(s) === lock, 'PAY');
    expect(pay.attributes).toMatchObject({ event: 'PAY', from: 'pending', to: 'charging' });
    const charge = one((s) => s.name === 'engine.effect' && parentOf(s) === pay, 'charge');
    expect(charge.attributes).toMatchObject({ effect: 'charge', outcome: 'CHARGE_SUCCEEDED' });
    const charged = one(
      (s) => s.name === 'engine.transition' && s.attributes.event === 'CHARGE_SUCCEEDED',
      'CHARGE_SUCCEEDED',
    );
    expect(parentOf(charged)).toBe(pay);
    expect(charged.attributes).toMatchObject({ from: 'charging', to: 'processed' });
    for (const span of [lock, pay, charge, charged]) expect(span.traceId).toBe(request.traceId);

    // The timer's delivery: a trace of its own.
    const timer = one((s) => s.name === 'engine.timer', 'timer');
    expect(parentOf(timer)).toBeUndefined();
    expect(timer.traceId).not.toBe(request.traceId);
    expect(timer.attributes).toMatchObject({ machine: 'payment', event: 'EXPIRE' });
    expect(timer.attributes.latenessMs).toBeGreaterThanOrEqual(0);
    const timerLock = one((s) => s.name === 'engine.lock' && parentOf(s) === timer, 'timer lock');
    const expire = one(
      (s) => s.name === 'engine.transition' && parentOf(s) === timerLock,
      'EXPIRE',
    );
    expect(expire.attributes).toMatchObject({ event: 'EXPIRE', from: 'processed', to: 'expired' });

    // No token, no account in any span.
    const sent = JSON.stringify(spans);
    expect(sent).not.toContain(token);
    expect(sent).not.toContain(accountOf(token));
  });
});
