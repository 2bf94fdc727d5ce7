/**
 * The generated model paths of machine-paths.test.ts, run against the real
 * service over HTTP: real Redis, real locks, real BullMQ timers. Only the
 * driver differs. Each path run gets its own token and account, so paths run
 * concurrently against one service.
 */
import { randomBytes } from 'node:crypto';
import type { Queue } from 'bullmq';
import { afterAll, beforeAll, describe, inject, it, type ExpectStatic } from 'vitest';
import {
  expiryQueue,
  startTestService,
  testConfig,
  waitFor,
  type TestService,
} from '../support/service-harness.ts';
import {
  describePath,
  MODEL_ACCOUNT,
  MODEL_INITIAL_BALANCE_CENTS,
  shortestPaths,
  simplePaths,
  isStaleExpire,
  testParamsFor,
  type PaymentDriver,
} from './payment-model.ts';
import {
  expiryJobData,
  expiryJobIdOf,
  fireNow,
  type TimerJobData as ExpiryJobData,
} from '../support/timer-jobs.ts';
import { Redis } from 'ioredis';

/** Timers never fire on their own here: the driver fires them when the path says EXPIRE. */
const NEVER_MS = String(24 * 3600 * 1000);

/** What a client may get back from a payment or a cancel; 5xx is never one of them. */
const PAY_STATUSES = [200, 201, 402, 409, 410, 422];
const CANCEL_STATUSES = [200, 410];

interface DriverDeps {
  readonly service: TestService;
  readonly queue: Queue<ExpiryJobData>;
  readonly redis: Redis;
  readonly expect: ExpectStatic;
}

/** Polls until the job is gone (jobs are removed on completion); fails fast if it failed. */
async function waitUntilJobDone(queue: Queue<ExpiryJobData>, jobId: string): Promise<void> {
  await waitFor(
    async () => {
      const job = await queue.getJob(jobId);
      if (job === undefined) return true;
      if (job.failedReason) throw new Error(`expiry job ${jobId} failed: ${job.failedReason}`);
      return undefined;
    },
    { what: `expiry job ${jobId} to complete` },
  );
}

/** Executes each client event for real and observes the service through its API. */
function httpDriver({ service, queue, redis, expect }: DriverDeps, run: string): PaymentDriver {
  const token = `hp-${run}`;
  const account = `acct-${run}`;
  let requested = false;

  const accountFor = (accountId: string) => {
    expect(accountId).toBe(MODEL_ACCOUNT);
    return account;
  };
  const view = async () => {
    const { status, body } = await service.request('GET', `/payments/${token}`);
    return { status, body };
  };

  return {
    async send(event) {
      switch (event.type) {
        case 'PAY': {
          requested = true;
          const response = await service.request('POST', '/payments', {
            headers: { 'Idempotency-Key': token },
            body: { accountId: accountFor(event.accountId), amountCents: event.amountCents },
          });
          expect(PAY_STATUSES).toContain(response.status);
          return;
        }
        case 'CANCEL': {
          requested = true;
          const response = await service.request('POST', `/payments/${token}/cancel`);
          expect(CANCEL_STATUSES).toContain(response.status);
          return;
        }
        case 'EXPIRE': {
          if (isStaleExpire(event)) {
            // A timer of an earlier life of the token, delivered now: nothing may change.
            const before = await view();
            const job = await queue.add('EXPIRE', expiryJobData(token, 'stale-life', 1), {
              jobId: `stale.${randomBytes(6).toString('hex')}.${token}`,
              removeOnComplete: true,
            });
            await waitUntilJobDone(queue, job.id ?? '');
            expect(await view()).toEqual(before);
            return;
          }
          // The timer the record holds: fire the real delayed job now.
          const jobId = await expiryJobIdOf(redis, service.config.keyPrefix, token);
          expect(jobId, 'the record holds an expiry timer').not.toBeNull();
          const job = await queue.getJob(jobId ?? '');
          expect(job, `delayed job ${String(jobId)}`).toBeDefined();
          expect(await job?.getState()).toBe('delayed');
          if (job !== undefined) await fireNow(job);
          await waitUntilJobDone(queue, jobId ?? '');
          return;
        }
      }
    },
    async observe({ status, balanceCents }) {
      const payment = await view();
      if (requested) {
        expect(payment.status).toBe(200);
        expect((payment.body as { status: string }).status).toBe(status);
      } else {
        // Nothing was ever asked about this token: the service has no record of it.
        expect(status).toBe('pending');
        expect(payment.status).toBe(404);
      }
      const accountView = await service.request('GET', `/accounts/${account}`);
      expect(accountView.status).toBe(200);
      expect((accountView.body as { balanceCents: number }).balanceCents).toBe(balanceCents);
    },
  };
}

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
        const driver = httpDriver({ service, queue, redis, expect }, `s${i}-${suffix}`);
        await path.test(testParamsFor(driver));
      },
    );
  });

  describe('simple paths', () => {
    it.concurrent.for(simple.map((path, i) => [describePath(path), path, i] as const))(
      '%s',
      async ([, path, i], { expect }) => {
        const driver = httpDriver({ service, queue, redis, expect }, `p${i}-${suffix}`);
        await path.test(testParamsFor(driver));
      },
    );
  });
});
