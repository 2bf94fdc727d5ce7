/**
 * Requests Node's HTTP parser refuses before the app sees them (headers too
 * large, a request line that is not HTTP) still get the JSON error body every
 * other refusal has. Sent over raw sockets: an HTTP client would not send them.
 */
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startTestService, testConfig, type TestService } from '../support/service-harness.ts';

interface RawAnswer {
  readonly status: number;
  readonly headers: Record<string, string>;
  readonly body: unknown;
  /** The server closed the connection after answering. */
  readonly closed: boolean;
}

describe("Node's own refusals", () => {
  let service: TestService;
  let port: number;

  beforeAll(async () => {
    service = await startTestService(testConfig(inject('redisUrl'), { PAYSTATE_ROLES: 'api' }));
    port = Number(new URL(service.url).port);
  });
  afterAll(async () => {
    await service.stop();
  });

  /** Writes `bytes` as they are and reads the answer until the server closes the connection. */
  function exchange(bytes: string): Promise<RawAnswer> {
    return new Promise((resolve, reject) => {
      let received = '';
      const socket = connect(port, '127.0.0.1', () => {
        socket.write(bytes);
      });
      socket.setEncoding('latin1');
      socket.on('data', (chunk: string) => (received += chunk));
      socket.on('error', () => undefined);
      socket.on('close', () => {
        const end = received.indexOf('\r\n\r\n');
        if (end < 0) {
          reject(new Error(`no HTTP answer, got ${JSON.stringify(received)}`));
          return;
        }
        const [statusLine = '', ...lines] = received.slice(0, end).split('\r\n');
        const headers = Object.fromEntries(
          lines.map((line) => {
            const colon = line.indexOf(':');
            return [line.slice(0, colon).toLowerCase(), line.slice(colon + 1).trim()];
          }),
        );
        const text = received.slice(end + 4);
        let body: unknown = text;
        try {
          body = JSON.parse(text);
        } catch {
          // not JSON: the assertion shows the text
        }
        resolve({
          status: Number(/^HTTP\/1\.1 (\d{3}) /.exec(statusLine)?.[1]),
          headers,
          body,
          closed: true,
        });
      });
      socket.setTimeout(10_000, () => socket.destroy(new Error('no answer within 10 s')));
    });
  }

  const jsonError = (code: string) => ({
    error: { code, message: expect.any(String) as unknown },
  });

  it('answers headers over the size limit with 431 and a JSON error, then closes', async () => {
    const answer = await exchange(
      `GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${'b'.repeat(64 * 1024)}\r\n\r\n`,
    );

    expect(answer).toMatchObject({ status: 431, closed: true });
    expect(answer.headers['content-type']).toMatch(/^application\/json/);
    expect(answer.headers.connection).toBe('close');
    expect(answer.body).toEqual(jsonError('headers_too_large'));
  });

  it('answers a malformed request line with 400 and a JSON error, then closes', async () => {
    const answer = await exchange('THIS IS NOT HTTP\r\n\r\n');

    expect(answer).toMatchObject({ status: 400, closed: true });
    expect(answer.headers['content-type']).toMatch(/^application\/json/);
    expect(answer.headers.connection).toBe('close');
    expect(answer.body).toEqual(jsonError('invalid_request'));
  });

  it('answers a header line without a colon with 400 and a JSON error', async () => {
    const answer = await exchange('GET /healthz HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n');

    expect(answer.status).toBe(400);
    expect(answer.body).toEqual(jsonError('invalid_request'));
  });

  it('keeps serving well-formed requests after refusing a malformed one', async () => {
    await exchange('THIS IS NOT HTTP\r\n\r\n');

    const health = await fetch(`${service.url}/healthz`);
    expect(health.status).toBe(200);
    expect(await health.json()).toEqual({ status: 'ok' });
  });
});
