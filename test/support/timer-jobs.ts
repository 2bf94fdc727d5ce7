import type { Job } from 'bullmq';
import type { ExpiryJobData } from '../../src/runtime/expiry-timers.ts';

/**
 * Delivers a token's real delayed expiry job now, as if its deadline had
 * passed. A job carries its due time on Redis's clock and the worker puts an
 * early one back; a job without one (as older releases made them) is due, so
 * the test drops it, standing in for the day it would otherwise wait.
 */
export async function fireNow(job: Job<ExpiryJobData>): Promise<void> {
  await job.updateData({ token: job.data.token, lifeId: job.data.lifeId });
  await job.promote();
}
