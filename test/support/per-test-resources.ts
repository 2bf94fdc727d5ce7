/**
 * Redis servers and service processes a test owns alone, each undone after
 * the test (in reverse order) whether it passed or not.
 */
import { afterEach } from 'vitest';
import { AppProcesses } from './app-process.ts';
import { startRedisServer, type TestRedisServer } from './redis-server.ts';
import { randomPrefix } from './service-harness.ts';

export function perTestResources() {
  const cleanups: (() => unknown)[] = [];
  afterEach(async () => {
    for (let cleanup = cleanups.pop(); cleanup !== undefined; cleanup = cleanups.pop()) {
      await cleanup();
    }
  });
  return {
    /** Runs `cleanup` after the current test. */
    cleanups,
    /** A redis-server of the test's own, destroyed after it. */
    ownRedis: async (): Promise<TestRedisServer> => {
      const redis = await startRedisServer();
      cleanups.push(() => redis.destroy());
      return redis;
    },
    /** Service processes on a fresh key prefix, killed after the test. */
    processes: (env: Record<string, string>): AppProcesses => {
      const apps = new AppProcesses({ REDIS_KEY_PREFIX: randomPrefix(), ...env });
      cleanups.push(() => apps.killAll());
      return apps;
    },
  };
}
