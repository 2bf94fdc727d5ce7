/**
 * The generated model paths (test/model/http-paths.test.ts) against a
 * service on a Redis Cluster: every script in one slot, timers on braced
 * queues spread over the masters, fired by the driver when a path says
 * EXPIRE. The shortest paths all run; the simple paths too when
 * CLUSTER_ALL_PATHS=1 (they take a few minutes on a loaded machine).
 */
import { randomBytes } from 'node:crypto';
import { Cluster, type Redis } from 'ioredis';
import { afterAll, beforeAll, describe, it } from 'vitest';
import { startTestService, testConfig, type TestService } from '../support/service-harness.ts';
import { startRedisCluster, type TestRedisCluster } from '../support/redis-cluster.ts';
import { clusterTimerQueues } from '../support/timer-jobs.ts';
import { httpDriver, NEVER_MS } from '../model/http-driver.ts';
import {
  describePath,
  MODEL_INITIAL_BALANCE_CENTS,
  MODEL_REFUND_LIMIT,
  shortestPaths,
  simplePaths,
  testParamsFor,
} from '../model/payment-model.ts';

const TIMER_QUEUES = 6;
const shortest = shortestPaths();
const simple = process.env.CLUSTER_ALL_PATHS === '1' ? simplePaths() : [];

describe('generated paths over HTTP on a Redis Cluster', () => {
  let cluster: TestRedisCluster;
  let service: TestService;
  let queues: ReturnType<typeof clusterTimerQueues>;
  let redis: Redis;
  const suffix = randomBytes(4).toString('hex');

  beforeAll(async () => {
    cluster = await startRedisCluster();
    const config = testConfig('redis://127.0.0.1:1', {
      REDIS_CLUSTER_NODES: cluster.seeds,
      TIMER_QUEUES: String(TIMER_QUEUES),
      PAYMENT_EXPIRY_MS: NEVER_MS,
      PAYMENT_CAPTURE_WINDOW_MS: NEVER_MS,
      PAYMENT_REFUND_LIMIT: String(MODEL_REFUND_LIMIT),
      EXPIRED_RETENTION_MS: NEVER_MS,
      ACCOUNT_INITIAL_BALANCE_CENTS: String(MODEL_INITIAL_BALANCE_CENTS),
    });
    service = await startTestService(config);
    queues = clusterTimerQueues(cluster.seeds, config.keyPrefix, TIMER_QUEUES);
    const [first = { host: '', port: 0 }] = config.redisClusterNodes ?? [];
    redis = new Cluster([first]) as unknown as Redis;
    console.log(`running ${shortest.length} shortest and ${simple.length} simple paths`);
  }, 60_000);

  afterAll(async () => {
    await service.stop();
    await queues.close();
    redis.disconnect();
    await cluster.destroy();
  });

  describe('shortest paths', () => {
    it.concurrent.for(shortest.map((path, i) => [describePath(path), path, i] as const))(
      '%s',
      async ([, path, i], { expect }) => {
        const driver = httpDriver(
          { service, queueFor: (token) => queues.queueFor(token), redis, expect },
          `s${i}-${suffix}`,
        );
        await path.test(testParamsFor(driver));
      },
    );
  });

  describe.skipIf(simple.length === 0)('simple paths', () => {
    it.concurrent.for(simple.map((path, i) => [describePath(path), path, i] as const))(
      '%s',
      async ([, path, i], { expect }) => {
        const driver = httpDriver(
          { service, queueFor: (token) => queues.queueFor(token), redis, expect },
          `p${i}-${suffix}`,
        );
        await path.test(testParamsFor(driver));
      },
    );
  });
});
