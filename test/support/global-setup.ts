import type { TestProject } from 'vitest/node';
import { startRedisServer } from './redis-server.ts';

/** One private redis-server for the suites that share it; each test uses its own key prefix. */
export default async function setup(project: TestProject) {
  const redis = await startRedisServer();
  project.provide('redisUrl', redis.url);
  return async () => {
    await redis.destroy();
  };
}

declare module 'vitest' {
  export interface ProvidedContext {
    redisUrl: string;
  }
}
