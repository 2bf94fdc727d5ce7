/** A private redis-server for one scenario (the tests' helper: free port, temporary directory). */
import { Redis } from 'ioredis';
import { startRedisServer, type TestRedisServer } from '../test/support/redis-server.ts';
import { assertNotInterrupted, onCleanup } from './cleanup.ts';

export type Appendfsync = 'everysec' | 'always';

export interface BenchRedis {
  readonly url: string;
  readonly pid: number;
  readonly appendfsync: Appendfsync;
  /** The bench's own connection (never used by the service). */
  readonly client: Redis;
  /** One INFO section as key → value. */
  info(section: string): Promise<Record<string, string>>;
  stop(): Promise<void>;
}

export function parseInfo(text: string): Record<string, string> {
  const fields: Record<string, string> = {};
  for (const line of text.split('\r\n')) {
    const colon = line.indexOf(':');
    if (line.startsWith('#') || colon < 0) continue;
    fields[line.slice(0, colon)] = line.slice(colon + 1);
  }
  return fields;
}

export async function startBenchRedis(appendfsync: Appendfsync): Promise<BenchRedis> {
  let server: TestRedisServer | null = null;
  let client: Redis | null = null;
  const stop = async () => {
    client?.disconnect();
    client = null;
    await server?.destroy();
    server = null;
  };
  const unregister = onCleanup(stop);
  try {
    // AOF on, as a durable deployment runs it; no RDB snapshots during a run.
    assertNotInterrupted();
    server = await startRedisServer({ appendonly: true, appendfsync });
    // Interrupted while it started: the cleanup already ran without it.
    assertNotInterrupted();
    const connected = new Redis(server.url, { maxRetriesPerRequest: 1 });
    client = connected;
    connected.on('error', () => undefined);
    const info = async (section: string) => parseInfo(await connected.info(section));
    const pid = Number((await info('server')).process_id);
    return {
      url: server.url,
      pid,
      appendfsync,
      client: connected,
      info,
      async stop() {
        await stop();
        unregister();
      },
    };
  } catch (error) {
    await stop();
    unregister();
    throw error;
  }
}
