/**
 * `npm run bench:observer-cost`: the CPU time logs, metrics and tracing add to
 * one new payment, measured alone in one process (CPU time, not wall time:
 * far steadier than throughput on a shared host). Per payment the service
 * writes one request line and records one HTTP sample, and the engine reports
 * one lock wait, two transitions and one effect; with tracing, five spans
 * (request, lock, two transitions, effect) are made and exported as OTLP JSON
 * to a receiver in this process that drops them.
 *
 * It prints µs of CPU per payment for each, best of several passes. Divided
 * by the service's CPU per payment (docs/operations.md#overhead) it gives the
 * share of throughput each costs.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import pino from 'pino';
import type { EngineObserver } from '../src/runtime/index.ts';
import { metricsObserver } from '../src/observability/engine-metrics.ts';
import { createLogger } from '../src/observability/log.ts';
import { createMetrics } from '../src/observability/metrics.ts';
import { startTracing } from '../src/observability/tracing.ts';

const PAYMENTS = 20_000;
const PASSES = 5;

/** CPU µs per payment of `run` (which handles `count` payments), best of PASSES. */
async function cpuPerPayment(run: (count: number) => Promise<void>): Promise<number> {
  await run(2_000); // warm-up
  let best = Infinity;
  for (let pass = 0; pass < PASSES; pass++) {
    const before = process.cpuUsage();
    await run(PAYMENTS);
    const used = process.cpuUsage(before);
    best = Math.min(best, (used.user + used.system) / PAYMENTS);
  }
  return best;
}

const yieldToLoop = () => new Promise((resolve) => setImmediate(resolve));

async function main(): Promise<void> {
  const logger = createLogger('info', pino.destination({ dest: '/dev/null', sync: true }));
  const metrics = createMetrics();
  const observer: EngineObserver = metricsObserver(metrics);

  const logsAndMetrics = async (count: number) => {
    for (let i = 0; i < count; i++) {
      observer.onLockWait?.({ machine: 'payment', ms: 0.4 });
      observer.onTransition?.({
        machine: 'payment',
        from: 'pending',
        to: 'charging',
        event: 'PAY',
      });
      observer.onEffect?.({
        machine: 'payment',
        name: 'charge',
        outcome: 'CHARGE_SUCCEEDED',
        durationMs: 0.6,
      });
      observer.onTransition?.({
        machine: 'payment',
        from: 'charging',
        to: 'processed',
        event: 'CHARGE_SUCCEEDED',
      });
      metrics.request('POST', '/payments', 201, 0.002);
      logger.info({
        message: 'request',
        requestId: '61864816-4386-4193-ac0f-5986e83f6f4c',
        method: 'POST',
        route: '/payments',
        status: 201,
        durationMs: 2.125,
      });
      if (i % 500 === 0) await yieldToLoop();
    }
  };

  let received = 0;
  const receiver = createServer((req, res) => {
    req.on('data', (chunk: Buffer) => (received += chunk.length));
    req.on('end', () => res.writeHead(200, { 'content-type': 'application/json' }).end('{}'));
  });
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  const { port } = receiver.address() as AddressInfo;
  const tracing = await startTracing({ endpoint: `http://127.0.0.1:${port}` });
  const { span } = tracing.observer;
  const traced = async (count: number) => {
    const pending: Promise<unknown>[] = [];
    for (let i = 0; i < count; i++) {
      const request = tracing.startRequest('POST');
      pending.push(
        new Promise<void>((resolve) => {
          request.run(() => {
            void span('engine.lock', { machine: 'payment', command: 'PAY' }, () =>
              span(
                'engine.transition',
                { machine: 'payment', event: 'PAY', from: 'pending', to: 'charging' },
                async () => {
                  await span(
                    'engine.effect',
                    { machine: 'payment', effect: 'charge' },
                    (annotate) => {
                      annotate({ outcome: 'CHARGE_SUCCEEDED' });
                      return Promise.resolve();
                    },
                  );
                  await span(
                    'engine.transition',
                    {
                      machine: 'payment',
                      event: 'CHARGE_SUCCEEDED',
                      from: 'charging',
                      to: 'processed',
                    },
                    () => Promise.resolve(),
                  );
                },
              ),
            ).then(() => {
              request.end({ route: '/payments', status: 201, requestId: `r-${i}` });
              resolve();
            });
          });
        }),
      );
      if (i % 100 === 99) {
        // Paced, so the batch processor exports every span instead of dropping
        // those past its queue (idle time costs no CPU).
        await Promise.all(pending.splice(0));
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    }
    await Promise.all(pending);
    // Let the batch processor export what it holds (its default delay is 5 s; wait for the bytes).
    const target = received;
    for (let waited = 0; received === target && waited < 100; waited++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  };
  const nothing = async (count: number) => {
    for (let i = 0; i < count; i++) if (i % 500 === 0) await yieldToLoop();
  };

  const base = await cpuPerPayment(nothing);
  const lm = await cpuPerPayment(logsAndMetrics);
  const receivedBefore = received;
  const tr = await cpuPerPayment(traced);
  const tracedPayments = 2_000 + PASSES * PAYMENTS;
  const bytesPerPayment = (received - receivedBefore) / tracedPayments;
  await tracing.shutdown();
  receiver.close();
  console.log(`loop alone:          ${base.toFixed(2)} µs CPU per payment`);
  console.log(`logs + metrics:      ${(lm - base).toFixed(2)} µs CPU per payment`);
  console.log(`tracing (5 spans):   ${(tr - base).toFixed(2)} µs CPU per payment`);
  console.log(
    `OTLP JSON received:  ${bytesPerPayment.toFixed(0)} bytes per payment (every span: about 3,000)`,
  );
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
