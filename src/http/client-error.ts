import { STATUS_CODES, type Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { STATUS_BY_CODE, type ErrorCode } from './error-handler.ts';
import { newRequestId } from './request-id.ts';

/** Told of each request the server answers before the app sees it. */
export type RefusalListener = (refusal: {
  readonly code: ErrorCode;
  readonly status: number;
  readonly requestId: string;
}) => void;

/**
 * What Node's HTTP parser refuses before the app sees a request, as our error
 * codes. Node would answer these itself, with an empty body.
 */
function refusalOf(error: NodeJS.ErrnoException): { code: ErrorCode; message: string } {
  switch (error.code) {
    case 'HPE_HEADER_OVERFLOW':
      return { code: 'headers_too_large', message: 'request headers are too large' };
    case 'HPE_CHUNK_EXTENSIONS_OVERFLOW':
      return { code: 'payload_too_large', message: 'chunk extensions are too large' };
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return { code: 'request_timeout', message: 'the request was not received in time' };
    default:
      return { code: 'invalid_request', message: 'the request is not valid HTTP' };
  }
}

/**
 * Answers the requests Node's parser refuses (headers too large, a malformed
 * request line or header, a request that took too long to arrive) with the
 * same JSON error body as every other refusal, then closes the connection,
 * as Node's own handler does.
 *
 * The X-Request-Id is always a new one: the parser gives up before the
 * request's headers are known (or because they cannot be read), so a
 * client's id cannot be taken.
 */
export function answerClientErrors(server: Server, refused?: RefusalListener): void {
  server.on('clientError', (error: NodeJS.ErrnoException, socket: Duplex) => {
    // Never write into a response already under way on this connection: the
    // client would read our bytes as part of it. (Node checks the same.)
    const inFlight = (socket as { _httpMessage?: { headersSent?: boolean } })._httpMessage;
    if (error.code !== 'ECONNRESET' && socket.writable && inFlight?.headersSent !== true) {
      const { code, message } = refusalOf(error);
      const status = STATUS_BY_CODE[code];
      const body = JSON.stringify({ error: { code, message } });
      const requestId = newRequestId();
      socket.write(
        `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\n` +
          'Content-Type: application/json; charset=utf-8\r\n' +
          `X-Request-Id: ${requestId}\r\n` +
          `Content-Length: ${Buffer.byteLength(body)}\r\n` +
          'Connection: close\r\n\r\n' +
          body,
      );
      refused?.({ code, status, requestId });
    }
    socket.destroy();
  });
}
