/**
 * The edges of a connection: a client that half-closes after pipelining
 * its requests, headers that trickle in, and more connections than the
 * service keeps open. Raw sockets on loopback: an HTTP client would not
 * behave this way.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { paymentRequest, rawConnection } from '../support/raw-http.ts';
import {
  randomPrefix,
  startTestService,
  testConfig,
  type TestService,
} from '../support/service-harness.ts';

const INITIAL_BALANCE = 100_000;

/** The status line and body of each response in `text`, in order. */
function responsesIn(text: string): { status: number; body: string }[] {
  const responses: { status: number; body: string }[] = [];
  let rest = text;
  for (;;) {
    const end = rest.indexOf('\r\n\r\n');
    if (end < 0) return responses;
    const head = rest.slice(0, end);
    const length = Number(/\r\ncontent-length: (\d+)/i.exec(head)?.[1] ?? 0);
    responses.push({
      status: Number(/^HTTP\/1\.1 (\d{3}) /.exec(head)?.[1]),
      body: rest.slice(end + 4, end + 4 + length),
    });
    rest = rest.slice(end + 4 + length);
  }
}

describe('a client that half-closes', () => {
  let service: TestService;

  beforeAll(async () => {
    service = await startTestService(testConfig(inject('redisUrl'), { PAYSTATE_ROLES: 'api' }));
  });
  afterAll(async () => {
    await service.stop();
  });

  it('answers all 50 pipelined payments sent before its FIN, and charges each once', async () => {
    const run = randomPrefix();
    const accountId = `acct-${run}`;
    const tokens = Array.from({ length: 50 }, (_, i) => `${run}-${i}`);
    const connection = rawConnection(service.url);
    connection.write(
      tokens.map((token) => paymentRequest(token, { accountId, amountCents: 100 })).join(''),
    );
    connection.socket.end();
    await connection.closed;

    const responses = responsesIn(connection.text());
    expect(responses.map((r) => r.status)).toEqual(tokens.map(() => 201));
    for (const token of tokens) {
      const payment = await service.request('GET', `/payments/${token}`);
      expect(payment.body).toMatchObject({ status: 'processed' });
    }
    const account = await service.request('GET', `/accounts/${accountId}`);
    expect(account.body).toMatchObject({ balanceCents: INITIAL_BALANCE - 50 * 100 });
  });
});
