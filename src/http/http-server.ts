import { createServer, type RequestListener, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { ConnectionMetrics } from '../observability/metrics.ts';
import { answerClientErrors, type RefusalListener } from './client-error.ts';
import { STATUS_BY_CODE, type ErrorCode } from './error-handler.ts';
import { assignRequestId } from './request-id.ts';

/**
 * The HTTP server around the app, and how it drains on shutdown.
 *
 * `server.close()` alone stops accepting connections and closes the idle
 * ones, but a keep-alive connection that is busy at that moment goes on
 * carrying request after request, so under steady load the drain never ends
 * and the deadline finally resets connections whose requests had run (a
 * client charged and never told). Here, from the start of the drain:
 * - a request already running finishes, and its response says
 *   `Connection: close`, so its connection ends after it;
 * - a request that arrives afterwards on an open connection is not run: 503
 *   `unavailable` with `Retry-After` and `Connection: close`;
 * - idle connections are closed at once, and each one that becomes idle.
 * Only requests still running at the deadline lose their connection.
 *
 * Connections are bounded (docs/operations.md#connections):
 * - headers must arrive within `headersTimeoutMs` of a connection's first
 *   byte, or of its opening when it sends nothing (408, then closed), and
 *   a whole request within `requestTimeoutMs`;
 * - at most `maxConnections` are open. A new one beyond that closes the
 *   connection that has waited longest without a request running (idle
 *   keep-alive, or headers still arriving): a request whose headers are in
 *   is never cut to make room, and a slow client cannot crowd out a quick
 *   one. Only when every open connection is running a request is the new
 *   one refused (closed unread, so nothing on it ran).
 */

export interface HttpLimits {
  readonly headersTimeoutMs: number;
  readonly requestTimeoutMs: number;
  readonly maxConnections: number;
}

export interface ListenOptions {
  readonly limits: HttpLimits;
  /** Told of the requests answered here rather than by the handler: parser refusals, shutdown 503s. */
  readonly refused?: RefusalListener | undefined;
  /** Told of the connections: how many are open, each one evicted or refused. */
  readonly connections?: ConnectionMetrics | undefined;
}

export interface HttpServer {
  /** `http://host:port`; a wildcard bind is reached through 127.0.0.1. */
  readonly url: string;
  /**
   * Drains as above until every connection has ended or `deadline` (epoch
   * ms) passes, then cuts what is left. Resolves with the number of
   * requests that were still running at the deadline (0 when all finished).
   */
  drain(deadline: number): Promise<number>;
}

// Answered here, before the app: the code is the error handler's (docs/api.md).
const SHUTDOWN_CODE: ErrorCode = 'unavailable';
const SHUTTING_DOWN = JSON.stringify({
  error: { code: SHUTDOWN_CODE, message: 'the service is shutting down; retry the request' },
});

function refuse(res: ServerResponse): void {
  res.writeHead(STATUS_BY_CODE[SHUTDOWN_CODE], {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(SHUTTING_DOWN),
    'retry-after': '1',
    connection: 'close',
  });
  res.end(SHUTTING_DOWN);
}

export async function listenHttp(
  handler: RequestListener,
  port: number,
  host: string,
  { limits, refused, connections }: ListenOptions,
): Promise<HttpServer> {
  /** Responses not yet sent, with their connection, in the order the requests arrived. */
  const running = new Map<ServerResponse, Socket>();
  /** Open connections, each with how many of its requests are running. */
  const open = new Map<Socket, number>();
  /** Open connections with no request running, the longest waiting first (a Set keeps insertion order). */
  const waiting = new Set<Socket>();
  const forget = (socket: Socket) => {
    open.delete(socket);
    waiting.delete(socket);
  };
  let draining = false;
  const server = createServer(
    {
      headersTimeout: limits.headersTimeoutMs,
      requestTimeout: limits.requestTimeoutMs,
      // Node checks both timeouts on this interval (30 s by default), so a
      // connection outlives its limit by up to one interval.
      connectionsCheckingInterval: Math.max(10, Math.min(1_000, limits.headersTimeoutMs / 4)),
    },
    (req, res) => {
      // Before anything can answer: every response carries the request's id.
      const requestId = assignRequestId(req, res);
      if (draining) {
        refuse(res);
        refused?.({ code: SHUTDOWN_CODE, status: STATUS_BY_CODE[SHUTDOWN_CODE], requestId });
        return;
      }
      const socket = req.socket;
      running.set(res, socket);
      const runningOnSocket = open.get(socket);
      if (runningOnSocket !== undefined) {
        open.set(socket, runningOnSocket + 1);
        waiting.delete(socket);
      }
      // 'close' follows 'finish' (the response handed to the OS) or a dropped connection.
      res.once('close', () => {
        running.delete(res);
        const left = open.get(socket);
        if (left !== undefined) {
          open.set(socket, left - 1);
          // Waiting again, behind every connection that has waited longer.
          if (left === 1) waiting.add(socket);
        }
        // A response whose headers went out before the drain left its connection open.
        if (draining) server.closeIdleConnections();
      });
      handler(req, res);
    },
  );
  // Node's default ends the connection when the client half-closes (FIN),
  // dropping the answers to pipelined requests that are running or queued:
  // a client charged and never told. Half-open, the response to the last of
  // them ends the connection instead. (Node reads this property; its
  // options do not name it.)
  (server as { httpAllowHalfOpen?: boolean }).httpAllowHalfOpen = true;
  // After Node's own listener, which gives the socket its parser.
  server.on('connection', (socket: Socket) => {
    if (open.size >= limits.maxConnections) {
      const longestWaiting = waiting.values().next();
      if (longestWaiting.done === true) {
        // Closed before anything on it is read: nothing it sent ran.
        socket.destroy();
        connections?.connectionRefused();
        return;
      }
      forget(longestWaiting.value);
      longestWaiting.value.destroy();
      connections?.connectionEvicted();
    }
    open.set(socket, 0);
    waiting.add(socket);
    socket.once('close', () => {
      forget(socket);
    });
  });
  connections?.observeConnections(() => open.size);
  answerClientErrors(server, refused);

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const bound = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  const url = `http://${bound === '0.0.0.0' || bound === '[::]' ? '127.0.0.1' : bound}:${address.port}`;

  return {
    url,
    async drain(deadline) {
      draining = true;
      // The last running response of each connection closes it. (A pipelining
      // client may have others queued behind it: an earlier one that closed
      // the connection would lose their answers.)
      const lastOf = new Map<Socket, ServerResponse>();
      for (const [res, socket] of running) lastOf.set(socket, res);
      for (const res of lastOf.values()) {
        if (!res.headersSent) res.setHeader('connection', 'close');
      }
      const closed = new Promise<void>((resolve) => {
        server.close(() => {
          resolve();
        });
      });
      server.closeIdleConnections();
      let timer: NodeJS.Timeout | undefined;
      const finished = await Promise.race([
        closed.then(() => true),
        new Promise<false>((resolve) => {
          timer = setTimeout(() => {
            resolve(false);
          }, deadline - Date.now());
        }),
      ]);
      clearTimeout(timer);
      if (finished) return 0;
      const cut = running.size;
      server.closeAllConnections();
      await closed;
      return cut;
    },
  };
}
