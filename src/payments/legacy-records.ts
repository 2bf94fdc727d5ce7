import { DelayedError, Worker, type ConnectionOptions, type Job } from 'bullmq';
import type { DurableActors, DurableMachineConfig } from '../runtime/index.ts';
import {
  chargeParams,
  EXPIRY_TIMER_ID,
  refundParams,
  type PaymentMachine,
} from '../machine/payment.machine.ts';
import { readPaymentSnapshot } from './payment.snapshot.ts';

/**
 * Records and expiry jobs of the release before the engine, read as the
 * engine's. That release stored, per token, the snapshot and a flag `o`
 * ('1': its effects may not all have run), not the actions it owed; it kept
 * one expiry job per token life in the queue `expiry`
 * (`expire.{lifeId}.{token}`, data `{ token, lifeId, dueAt? }`).
 *
 * What such a record owes is what that release would have run again for it
 * (a charge or refund in flight, with the same operation id; the expiry
 * timer of a flagged record), fixed here once for that format: records the
 * engine writes carry their owed actions and are never read this way. Its
 * expiry job stands for the engine timer `expire` of sequence
 * LEGACY_TIMER_SEQ, which a newer deadline (a raise of the same id) replaces.
 */

export const LEGACY_EXPIRY_QUEUE = 'expiry';

/** The sequence number an adopted record's expiry timer gets (the engine's start at 1). */
export const LEGACY_TIMER_SEQ = 0;

export interface LegacyExpiryJobData {
  readonly token: string;
  readonly lifeId: string;
  /** Epoch ms on Redis's clock; absent on the oldest jobs: due. */
  readonly dueAt?: number;
}

export function legacyExpiryJobId(token: string, lifeId: string): string {
  return `expire.${lifeId}.${token}`;
}

/** The machine version that release stored. */
const LEGACY_MACHINE_VERSION = 1;

/** What the runtime's `adoptLegacy` gets and answers, in its terms. */
type AdoptLegacy = NonNullable<DurableMachineConfig<PaymentMachine>['adoptLegacy']>;
type LegacyRecord = Parameters<AdoptLegacy>[0];
type Adopted = ReturnType<AdoptLegacy>;
type OwedAction = Adopted['owed'][number];

export function adoptLegacyPayment(
  record: LegacyRecord,
  /** Lifts that release's snapshot (machine version 1) to this one's. */
  migrate: (snapshot: unknown, fromVersion: number) => unknown,
): Adopted {
  if (record.machineVersion !== LEGACY_MACHINE_VERSION) {
    throw new Error(`a record of machine version ${record.machineVersion} in the earlier format`);
  }
  const snapshot = readPaymentSnapshot(migrate(record.snapshot, LEGACY_MACHINE_VERSION));
  const { context } = snapshot;
  const dueAt = snapshot.value === 'expired' ? null : context.expiresAt;
  const timers: Adopted['timers'] =
    dueAt === null ? {} : { [EXPIRY_TIMER_ID]: { seq: LEGACY_TIMER_SEQ, dueAt } };
  const owed: OwedAction[] = [];
  // That release finished a step in flight whatever its flag said.
  if (snapshot.value === 'charging') {
    owed.push({ kind: 'effect', type: 'charge', params: chargeParams(context) });
  } else if (snapshot.value === 'refunding') {
    owed.push({ kind: 'effect', type: 'refund', params: refundParams(context) });
  } else if (record.owed === '1' && dueAt !== null) {
    // Its expiry job may never have been added: arm the engine's timer.
    owed.push({
      kind: 'timer',
      id: EXPIRY_TIMER_ID,
      seq: LEGACY_TIMER_SEQ,
      dueAt,
      event: { type: 'EXPIRE', at: dueAt } as { type: string },
    });
  }
  return { owed, timers };
}

/** Shortest wait before an early job is delivered again (no busy loop on a clock that jumps). */
const MIN_REARM_MS = 50;

/**
 * Delivers the expiry jobs of the earlier release as the engine's timer of
 * sequence LEGACY_TIMER_SEQ. As that release's worker did: a job delivered
 * before its due time (Redis's clock) is put back, and one whose token has a
 * later deadline now is put back for that deadline.
 */
export function startLegacyExpiryWorker(options: {
  readonly actors: DurableActors<PaymentMachine>;
  readonly connection: ConnectionOptions;
  readonly prefix: string;
  /** Redis's time (RedisClock.now). */
  readonly now: () => number;
  readonly lockMs?: number;
  readonly onError?: (error: Error) => void;
}): Worker<LegacyExpiryJobData> {
  const rearm = async (
    job: Job<LegacyExpiryJobData>,
    lockToken: string | undefined,
    dueAt: number,
  ): Promise<never> => {
    await job.updateData({ ...job.data, dueAt });
    await job.moveToDelayed(Date.now() + Math.max(MIN_REARM_MS, dueAt - options.now()), lockToken);
    throw new DelayedError();
  };
  const worker = new Worker<LegacyExpiryJobData>(
    LEGACY_EXPIRY_QUEUE,
    async (job, lockToken) => {
      const { token, lifeId, dueAt } = job.data;
      if (dueAt !== undefined && options.now() < dueAt) await rearm(job, lockToken, dueAt);
      const snapshot = await options.actors.get(token);
      if (snapshot === null || snapshot.context.lifeId !== lifeId) return;
      const { expiresAt } = snapshot.context;
      if (dueAt !== undefined && expiresAt !== null && expiresAt > dueAt) {
        if (snapshot.status === 'active') await rearm(job, lockToken, expiresAt);
        return;
      }
      await options.actors.fire({
        key: token,
        lifeId,
        id: EXPIRY_TIMER_ID,
        seq: LEGACY_TIMER_SEQ,
        dueAt: dueAt ?? options.now(),
        event: { type: 'EXPIRE' },
      });
    },
    {
      connection: options.connection,
      prefix: options.prefix,
      concurrency: 32,
      maxStalledCount: 50,
      ...(options.lockMs === undefined
        ? {}
        : { lockDuration: options.lockMs, stalledInterval: options.lockMs }),
    },
  );
  worker.on('error', (error) => options.onError?.(error));
  return worker;
}
