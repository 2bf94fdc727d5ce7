/**
 * What HTTP alone costs on this machine, served the way the bench loads the
 * service, in a process of its own:
 * - `app`: the service's own express app (routing, body parsing and checks,
 *   views, error handling) over payments that answer from memory, with no
 *   Redis, lock or machine step: the ceiling of the service's HTTP layer;
 * - `express`: express 5 with its JSON body parser and a fixed JSON answer;
 * - `node`: node:http parsing the JSON body and answering, no framework.
 * Prints `{"port": n}` once listening.
 */
import { createServer, type RequestListener } from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import type { Ledger } from '../src/accounts/ledger.ts';
import { createApp } from '../src/http/app.ts';
import { startPayment, stepPayment } from '../src/payments/payment.snapshot.ts';
import type { CommandResult, Payments } from '../src/payments/payments.ts';

type FloorKind = 'app' | 'express' | 'node';

const ANSWER = { token: 'floor', status: 'processed' };

/** A new payment's answer, computed once: what payments return after charging. */
function chargedResult(): CommandResult {
  const started = startPayment({
    token: 'floor',
    lifeId: 'floor-life',
    at: 1,
    expiryMs: 86_400_000,
    captureWindowMs: 86_400_000,
    retentionMs: 86_400_000,
  });
  const charging = stepPayment(started.snapshot, {
    type: 'PAY',
    accountId: 'account',
    amountCents: 100,
    currency: 'USD',
    capture: 'automatic',
    at: 2,
  });
  const processed = stepPayment(charging.snapshot, { type: 'CHARGE_SUCCEEDED', at: 3 });
  return { outcome: 'charged', snapshot: processed.snapshot };
}

function listenerFor(kind: FloorKind): RequestListener {
  switch (kind) {
    case 'app': {
      const result = chargedResult();
      const payments = { pay: () => Promise.resolve(result) } as unknown as Payments;
      return createApp({
        payments,
        // Only the routes under load are served: nothing reads an account.
        ledger: {} as unknown as Ledger,
        ping: () => Promise.resolve(),
      });
    }
    case 'express': {
      const app = express();
      app.disable('x-powered-by');
      app.set('etag', false);
      app.use(express.json());
      app.post('/payments', (_req, res) => {
        res.status(201).json(ANSWER);
      });
      return app;
    }
    case 'node':
      return (req, res) => {
        const chunks: Buffer[] = [];
        req.on('data', (chunk: Buffer) => chunks.push(chunk));
        req.on('end', () => {
          JSON.parse(Buffer.concat(chunks).toString('utf8'));
          res.writeHead(201, { 'content-type': 'application/json' });
          res.end(JSON.stringify(ANSWER));
        });
      };
  }
}

const kind = process.argv[2];
if (kind !== 'app' && kind !== 'express' && kind !== 'node') {
  throw new Error('floor-server: the kind is app, express or node');
}
const server = createServer(listenerFor(kind));
server.keepAliveTimeout = 60_000;
server.listen(0, '127.0.0.1', () => {
  console.log(JSON.stringify({ port: (server.address() as AddressInfo).port }));
});
process.on('SIGTERM', () => {
  server.close();
  server.closeAllConnections();
});
