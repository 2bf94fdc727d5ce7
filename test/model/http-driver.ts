/**
 * The HTTP driver of the generated model paths: executes each client event
 * for real against a running service and observes it through its API. Shared
 * by the paths over one Redis (http-paths.test.ts) and over a Redis Cluster
 * (test/cluster/cluster-paths.test.ts).
 */
import { randomBytes } from 'node:crypto';
import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type { ExpectStatic } from 'vitest';
import { waitFor } from '../support/service-harness.ts';
import { MODEL_ACCOUNT, isStaleExpire, type PaymentDriver } from './payment-model.ts';
import { CAPTURE_WINDOW_TIMER_ID, EXPIRY_TIMER_ID } from '../../src/machine/payment.machine.ts';
import {
  expiryJobData,
  fireNow,
  timerJobIdOf,
  type TimerJobData as ExpiryJobData,
} from '../support/timer-jobs.ts';

/** Timers never fire on their own here: the driver fires them when the path says EXPIRE. */
export const NEVER_MS = String(24 * 3600 * 1000);

/** What a client may get back from a payment or a cancel; 5xx is never one of them. */
const PAY_STATUSES = [200, 201, 402, 409, 410, 422];
const CANCEL_STATUSES = [200, 410];
/** A capture or refund of a token with no record is 404 and writes nothing. */
const CAPTURE_STATUSES = [200, 404, 409, 410, 422];
const REFUND_STATUSES = [200, 201, 404, 409, 410, 422];

export interface DriverDeps {
  readonly service: {
    request(
      method: string,
      path: string,
      options?: { body?: unknown; headers?: Record<string, string> },
    ): Promise<{ status: number; body: unknown }>;
    readonly config: { readonly keyPrefix: string };
  };
  /** The timer queue that holds the token's timers. */
  readonly queueFor: (token: string) => Queue<ExpiryJobData>;
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
export function httpDriver(
  { service, queueFor, redis, expect }: DriverDeps,
  run: string,
): PaymentDriver {
  const token = `hp-${run}`;
  const queue = queueFor(token);
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
  /** Fires the real delayed job of the record's live timer `id` now. */
  const fireTimer = async (id: string) => {
    const jobId = await timerJobIdOf(redis, service.config.keyPrefix, token, id);
    expect(jobId, `the record holds a timer ${id}`).not.toBeNull();
    const job = await queue.getJob(jobId ?? '');
    expect(job, `delayed job ${String(jobId)}`).toBeDefined();
    expect(await job?.getState()).toBe('delayed');
    if (job !== undefined) await fireNow(job);
    await waitUntilJobDone(queue, jobId ?? '');
  };

  return {
    async send(event) {
      switch (event.type) {
        case 'PAY': {
          requested = true;
          const response = await service.request('POST', '/payments', {
            headers: { 'Idempotency-Key': token },
            body: {
              accountId: accountFor(event.accountId),
              amountCents: event.amountCents,
              ...(event.capture === 'manual' ? { capture: 'manual' } : {}),
            },
          });
          expect(PAY_STATUSES).toContain(response.status);
          return;
        }
        case 'CAPTURE': {
          const response = await service.request('POST', `/payments/${token}/capture`, {
            body: event.amountCents === null ? {} : { amountCents: event.amountCents },
          });
          expect(CAPTURE_STATUSES).toContain(response.status);
          expect(response.status === 404).toBe(!requested);
          return;
        }
        case 'REFUND': {
          const response = await service.request('POST', `/payments/${token}/refunds`, {
            headers: { 'Idempotency-Key': event.refundId },
            body: {
              ...(event.amountCents === null ? {} : { amountCents: event.amountCents }),
              ...(event.reason === null ? {} : { reason: event.reason }),
            },
          });
          expect(REFUND_STATUSES).toContain(response.status);
          expect(response.status === 404).toBe(!requested);
          return;
        }
        case 'CAPTURE_WINDOW_ELAPSED':
          await fireTimer(CAPTURE_WINDOW_TIMER_ID);
          return;
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
          await fireTimer(EXPIRY_TIMER_ID);
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
