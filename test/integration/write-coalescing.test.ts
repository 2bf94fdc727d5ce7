import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { coalesceWrites } from '../../src/runtime/redis/write-coalescing.ts';
import { startRedisServer, type TestRedisServer } from '../support/redis-server.ts';

/** Socket reads Redis has done: a batch that arrived in one write is read at once. */
async function readsProcessed(observer: Redis): Promise<number> {
  const info = await observer.info('stats');
  return Number(/total_reads_processed:(\d+)/.exec(info)?.[1]);
}

/** 50 commands issued in one turn; the socket reads Redis needed for them. */
async function readsForOneTurn(client: Redis, observer: Redis): Promise<number> {
  const before = await readsProcessed(observer);
  const answers = await Promise.all(
    Array.from({ length: 50 }, (_, i) => client.echo(`command-${i}`)),
  );
  expect(answers).toEqual(Array.from({ length: 50 }, (_, i) => `command-${i}`));
  // Less the observer's own INFO.
  return (await readsProcessed(observer)) - before - 1;
}

describe('write coalescing on a Redis connection', () => {
  // A Redis of its own: its read count is this test's alone.
  let server: TestRedisServer;
  let observer: Redis;
  let coalesced: Redis;
  let plain: Redis;

  beforeAll(async () => {
    server = await startRedisServer();
    observer = new Redis(server.url);
    plain = new Redis(server.url);
    coalesced = new Redis(server.url, { lazyConnect: true });
    coalesceWrites(coalesced);
    await coalesced.connect();
  });

  afterAll(async () => {
    await Promise.all([observer.quit(), coalesced.quit(), plain.quit()]);
    await server.destroy();
  });

  it('sends the commands of one turn of the event loop together, in order', async () => {
    expect(await readsForOneTurn(coalesced, observer)).toBeLessThanOrEqual(2);
    // Without it, each command is a write of its own, and most are read apart;
    // a busy machine can let a few pile up before Redis reads, so the best of
    // a few turns shows it.
    let most = 0;
    for (let turn = 0; turn < 5 && most <= 10; turn++) {
      most = Math.max(most, await readsForOneTurn(plain, observer));
    }
    expect(most).toBeGreaterThan(10);
  });

  it('keeps coalescing after the connection is made again', async () => {
    const ready = new Promise<void>((resolve) => coalesced.once('ready', resolve));
    coalesced.disconnect(true);
    await ready;
    expect(await readsForOneTurn(coalesced, observer)).toBeLessThanOrEqual(2);
  });
});
