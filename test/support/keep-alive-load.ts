/**
 * Clients that pay continuously over keep-alive connections, as an HTTP
 * client library with a connection pool does: each client owns one agent
 * with one socket and sends the next payment (a fresh token) as soon as the
 * previous one is answered. Every request is recorded with the connection it
 * went over, so a test can see what each connection carried around a
 * shutdown. A client stops when the service refuses new connections.
 */
import { Agent, request } from 'node:http';
import type { Socket } from 'node:net';
import { accountOf } from './app-process.ts';

export interface KeepAliveAnswer {
  readonly token: string;
  readonly client: number;
  /** Which connection the request went over (numbered in order of first use). */
  readonly connection: number;
  readonly sentAt: number;
  readonly answeredAt: number;
  /** HTTP status; 0 when no full response came. */
  readonly status: number;
  readonly code: string | null;
  /** The response's `Connection` header. */
  readonly connectionHeader: string | null;
  readonly retryAfter: string | null;
  /** The error code (ECONNRESET, ECONNREFUSED, ...) when no full response came. */
  readonly failure: string | null;
}

export interface KeepAliveLoad {
  readonly answers: KeepAliveAnswer[];
  /** Resolves once every client stopped (the service refused a connection, or stop()). */
  finished(): Promise<void>;
  stop(): Promise<void>;
}

/** Longest a request may go unanswered before the client gives up on it. */
const REQUEST_TIMEOUT_MS = 20_000;

export function startKeepAliveLoad(options: {
  readonly url: string;
  readonly runId: string;
  readonly clients: number;
  readonly amountCents: number;
}): KeepAliveLoad {
  const answers: KeepAliveAnswer[] = [];
  const connections = new WeakMap<Socket, number>();
  let nextConnection = 0;
  const state = { stopped: false };

  const send = (agent: Agent, client: number, token: string): Promise<KeepAliveAnswer> => {
    const payload = JSON.stringify({
      accountId: accountOf(token),
      amountCents: options.amountCents,
    });
    const sentAt = Date.now();
    let connection = -1;
    return new Promise((resolve) => {
      const answer = (fields: Partial<KeepAliveAnswer>) => {
        resolve({
          token,
          client,
          connection,
          sentAt,
          answeredAt: Date.now(),
          status: 0,
          code: null,
          connectionHeader: null,
          retryAfter: null,
          failure: null,
          ...fields,
        });
      };
      const req = request(
        `${options.url}/payments`,
        {
          method: 'POST',
          agent,
          timeout: REQUEST_TIMEOUT_MS,
          headers: {
            'content-type': 'application/json',
            'content-length': String(Buffer.byteLength(payload)),
            'idempotency-key': token,
          },
        },
        (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (chunk: string) => (text += chunk));
          res.on('error', (error: NodeJS.ErrnoException) => {
            answer({ failure: error.code ?? error.message });
          });
          res.on('end', () => {
            let code: string | null = null;
            try {
              const body = JSON.parse(text) as { error?: { code?: unknown } };
              code = typeof body.error?.code === 'string' ? body.error.code : null;
            } catch {
              // not JSON: the status says enough
            }
            answer({
              status: res.statusCode ?? 0,
              code,
              connectionHeader: res.headers.connection ?? null,
              retryAfter: res.headers['retry-after'] ?? null,
            });
          });
        },
      );
      req.on('socket', (socket) => {
        let id = connections.get(socket);
        if (id === undefined) {
          id = nextConnection++;
          connections.set(socket, id);
        }
        connection = id;
      });
      req.on('timeout', () => {
        req.destroy(Object.assign(new Error('no answer'), { code: 'TIMEOUT' }));
      });
      req.on('error', (error: NodeJS.ErrnoException) => {
        answer({ failure: error.code ?? error.message });
      });
      req.end(payload);
    });
  };

  const client = async (client: number) => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      for (let n = 0; !state.stopped; n++) {
        const reply = await send(agent, client, `${options.runId}-c${client}-${n}`);
        answers.push(reply);
        if (reply.failure === 'ECONNREFUSED') return;
      }
    } finally {
      agent.destroy();
    }
  };

  const clients = Array.from({ length: options.clients }, (_, i) => client(i));
  const finished = async () => {
    await Promise.all(clients);
  };
  return {
    answers,
    finished,
    async stop() {
      state.stopped = true;
      await finished();
    },
  };
}
