/**
 * HTTP/1.1 written by hand on one TCP connection, for tests that need
 * control no client library gives: half a request, pipelined requests, and
 * every byte the server sends back until it closes the connection.
 */
import { connect, type Socket } from 'node:net';
import { waitFor } from './service-harness.ts';

export interface RawConnection {
  readonly socket: Socket;
  /** Everything received so far. */
  text(): string;
  /** Resolves when the connection is closed. */
  readonly closed: Promise<void>;
  /** Writes one request and resolves with its whole response (headers and a Content-Length body). */
  exchange(request: string): Promise<string>;
  write(bytes: string): void;
}

export function rawConnection(url: string): RawConnection {
  const { hostname, port } = new URL(url);
  const socket = connect(Number(port), hostname);
  let text = '';
  socket.setEncoding('utf8');
  socket.on('data', (chunk: string) => (text += chunk));
  socket.on('error', () => undefined);
  const closed = new Promise<void>((resolve) => {
    socket.once('close', () => {
      resolve();
    });
  });
  return {
    socket,
    text: () => text,
    closed,
    write: (bytes) => {
      socket.write(bytes);
    },
    async exchange(request) {
      const from = text.length;
      socket.write(request);
      return waitFor(() => {
        const response = text.slice(from);
        const end = response.indexOf('\r\n\r\n');
        const length = /\r\ncontent-length: (\d+)\r\n/i.exec(response)?.[1];
        if (end < 0 || length === undefined) return undefined;
        return response.length < end + 4 + Number(length) ? undefined : response;
      });
    },
  };
}

/** A `POST /payments` request as bytes. */
export function paymentRequest(token: string, body: unknown): string {
  const json = JSON.stringify(body);
  return (
    'POST /payments HTTP/1.1\r\nHost: paystate\r\nContent-Type: application/json\r\n' +
    `Idempotency-Key: ${token}\r\nContent-Length: ${Buffer.byteLength(json)}\r\n\r\n${json}`
  );
}
