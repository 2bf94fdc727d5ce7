/**
 * A webhook receiver for tests, run as a process of its own
 * (test/support/webhook-receiver.ts starts it): it listens on 127.0.0.1 on
 * a free port, records every request it gets (method, path, headers, raw
 * body) and answers by the path it was sent to:
 *
 *   /status/<code>/…     that status (500, 302 with a Location, …)
 *   /hang/…              reads the request and never answers
 *   /endless/…           200, then a body that never ends
 *   /flaky/<n>/…         500 to the first n requests to that path, then 200
 *   anything else        200 {"received": true}
 *
 * GET /_receiver/requests lists what was recorded; DELETE forgets it. Those
 * two are not recorded.
 */
import { createServer, type ServerResponse } from 'node:http';

interface Recorded {
  readonly method: string;
  readonly path: string;
  readonly headers: Record<string, string>;
  readonly body: string;
  readonly at: number;
}

const recorded: Recorded[] = [];
const seenByPath = new Map<string, number>();

function answer(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
  });
  res.end(text);
}

const server = createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (chunk: Buffer) => chunks.push(chunk));
  req.on('end', () => {
    const path = req.url ?? '/';
    if (path === '/_receiver/requests') {
      if (req.method === 'DELETE') {
        recorded.length = 0;
        seenByPath.clear();
        res.writeHead(204).end();
      } else {
        answer(res, 200, { requests: recorded });
      }
      return;
    }
    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries(req.headers)) {
      if (value !== undefined) headers[name] = Array.isArray(value) ? value.join(', ') : value;
    }
    recorded.push({
      method: req.method ?? '',
      path,
      headers,
      body: Buffer.concat(chunks).toString('utf8'),
      at: Date.now(),
    });
    const seen = (seenByPath.get(path) ?? 0) + 1;
    seenByPath.set(path, seen);

    const [, kind = '', arg = ''] = path.split('/');
    if (kind === 'hang') return;
    if (kind === 'status') {
      const status = Number(arg);
      if (status >= 300 && status < 400) {
        res.writeHead(status, { location: '/redirected' }).end();
        return;
      }
      answer(res, status, { error: 'as asked' });
      return;
    }
    if (kind === 'endless') {
      res.writeHead(200, { 'content-type': 'text/plain' });
      const chunk = 'x'.repeat(16 * 1024);
      const more = () => {
        while (res.write(chunk)) {
          /* until the socket pushes back */
        }
      };
      res.on('drain', more);
      more();
      return;
    }
    if (kind === 'flaky' && seen <= Number(arg)) {
      answer(res, 500, { error: `failure ${seen} of ${arg}` });
      return;
    }
    answer(res, 200, { received: true });
  });
});

server.listen(0, '127.0.0.1', () => {
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  process.stdout.write(`listening on http://127.0.0.1:${address.port}\n`);
});

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.on(signal, () => {
    server.closeAllConnections();
    server.close();
    process.exit(0);
  });
}
