/**
 * The inspector page polls the counts every second and a watched token
 * every two: those requests are logged at debug, so an open page does not
 * fill the log at the default level; the page itself and every other
 * request are logged at info as before.
 */
import { afterEach, describe, expect, inject, it } from 'vitest';
import { createLogger } from '../../src/observability/log.ts';
import { startTestService, testConfig } from '../support/service-harness.ts';

/** A pino logger whose lines are kept, parsed. */
function capturedLog(level: Parameters<typeof createLogger>[0]) {
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger(level, {
    write: (line: string) => {
      lines.push(JSON.parse(line) as Record<string, unknown>);
    },
  });
  return { logger, lines };
}

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

const POLLS = [
  ['poll-counts', '/inspect/api/counts', '/inspect/api/counts', 200],
  ['poll-key', '/inspect/api/keys/poll-nobody', '/inspect/api/keys/{key}', 404],
] as const;

async function requestAll(level: Parameters<typeof createLogger>[0]) {
  const { logger, lines } = capturedLog(level);
  const service = await startTestService(
    testConfig(inject('redisUrl'), { PAYSTATE_ROLES: 'api' }),
    { logger },
  );
  cleanups.push(() => service.stop());
  for (const [id, path] of POLLS) {
    await service.request('GET', path, { headers: { 'X-Request-Id': id } });
  }
  await service.request('GET', '/inspect', { headers: { 'X-Request-Id': 'page' } });
  await service.request('GET', '/payments/poll-other', { headers: { 'X-Request-Id': 'other' } });
  return (id: string) => lines.filter((l) => l.requestId === id);
}

describe("the inspector's polls in the request log", () => {
  it('are not written at LOG_LEVEL=info; the page and other requests are', async () => {
    const linesOf = await requestAll('info');
    for (const [id] of POLLS) expect(linesOf(id)).toEqual([]);
    expect(linesOf('page')).toEqual([
      expect.objectContaining({ level: 'info', message: 'request', route: '/inspect' }),
    ]);
    expect(linesOf('other')).toEqual([
      expect.objectContaining({ level: 'info', route: '/payments/{token}', status: 404 }),
    ]);
  });

  it('are written at debug, with their route and status', async () => {
    const linesOf = await requestAll('debug');
    for (const [id, , route, status] of POLLS) {
      expect(linesOf(id)).toEqual([
        expect.objectContaining({ level: 'debug', message: 'request', route, status }),
      ]);
    }
  });
});
