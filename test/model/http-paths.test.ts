/**
 * The generated model paths of machine-paths.test.ts, run against the real
 * service over HTTP: real Redis, real locks, real BullMQ timers. Only the
 * driver differs. Each path run gets its own token and account, so paths run
 * concurrently against one service.
 */
import { randomBytes } from 'node:crypto';
import type { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, inject, it } from 'vitest';
import {
  expiryQueue,
  startTestService,
  testConfig,
  type TestService,
} from '../support/service-harness.ts';
import type { TimerJobData as ExpiryJobData } from '../support/timer-jobs.ts';
import { httpDriver, NEVER_MS } from './http-driver.ts';
import {
  describePath,
  MODEL_INITIAL_BALANCE_CENTS,
  MODEL_REFUND_LIMIT,
  shortestPaths,
  simplePaths,
  testParamsFor,
} from './payment-model.ts';

const shortest = shortestPaths();
const simple = simplePaths();

describe('generated paths over HTTP', () => {
  let service: TestService;
  let queue: Queue<ExpiryJobData>;
  let redis: Redis;
  const suffix = randomBytes(4).toString('hex');

  beforeAll(async () => {
    const redisUrl = inject('redisUrl');
    const config = testConfig(redisUrl, {
      PAYMENT_EXPIRY_MS: NEVER_MS,
      PAYMENT_CAPTURE_WINDOW_MS: NEVER_MS,
      PAYMENT_REFUND_LIMIT: String(MODEL_REFUND_LIMIT),
      EXPIRED_RETENTION_MS: NEVER_MS,
      ACCOUNT_INITIAL_BALANCE_CENTS: String(MODEL_INITIAL_BALANCE_CENTS),
    });
    service = await startTestService(config);
    queue = expiryQueue(redisUrl, config);
    redis = new Redis(redisUrl);
    console.log(`running all ${shortest.length} shortest and all ${simple.length} simple paths`);
  });

  afterAll(async () => {
    await service.stop();
    await queue.close();
    // The harness hands the queue a connection of its own; close() leaves it open.
    await queue.disconnect();
    redis.disconnect();
  });

  describe('shortest paths', () => {
    it.concurrent.for(shortest.map((path, i) => [describePath(path), path, i] as const))(
      '%s',
      async ([, path, i], { expect }) => {
        const driver = httpDriver(
          { service, queueFor: () => queue, redis, expect },
          `s${i}-${suffix}`,
        );
        await path.test(testParamsFor(driver));
      },
    );
  });

  describe('simple paths', () => {
    it.concurrent.for(simple.map((path, i) => [describePath(path), path, i] as const))(
      '%s',
      async ([, path, i], { expect }) => {
        const driver = httpDriver(
          { service, queueFor: () => queue, redis, expect },
          `p${i}-${suffix}`,
        );
        await path.test(testParamsFor(driver));
      },
    );
  });
});
