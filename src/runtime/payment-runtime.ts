import type { Ledger } from '../accounts/ledger.ts';
import { StaleWriteError } from '../errors.ts';
import {
  changesNothing,
  isInFlight,
  owedEffects,
  startPayment,
  stepPayment,
  type PaymentSnapshot,
} from '../machine/payment.snapshot.ts';
import type {
  ClientEvent,
  Effect,
  EffectEvent,
  Outcome,
  Payment,
  PaymentEvent,
  PaymentStatus,
} from '../machine/payment.types.ts';
import type { ExpiryTimers } from './expiry-timers.ts';
import type { FaultPointName } from './fault-points.ts';
import type { Expected, SnapshotStore, StoredRecord } from './snapshot-store.ts';
import type { Held, TokenLock } from './token-lock.ts';

/**
 * The request path: lock the token → load its snapshot → finish a step a
 * crash left in flight → transition → persist → run effects → unlock. The
 * load goes out right behind the lock request (one round trip for both), and
 * a request that changes nothing in the status this process last saw the
 * token in is answered from one read without the lock (see answerWithoutLock).
 *
 * Invariants:
 * - A snapshot is persisted before the effects it asks for run, so a crash
 *   leaves the intent (e.g. `charging`) on record and the next access, or the
 *   recovery sweep, completes it with the same ledger operation id.
 * - Every write is a compare-and-set on the version read under the lock; a
 *   writer whose lease ran out fails instead of overwriting, and the request
 *   starts again from a fresh read.
 * - A token is put in the outbox before a write whose effects could be lost
 *   in a crash, and taken out once they ran; the sweep redoes what is owed.
 */

export interface RuntimeDeps {
  readonly store: SnapshotStore;
  readonly ledger: Ledger;
  readonly lock: TokenLock;
  readonly timers: ExpiryTimers;
  /** Redis's time (RedisClock.now): never this process's own clock. */
  readonly clock: () => number;
  readonly newLifeId: () => string;
  readonly paymentExpiryMs: number;
  readonly expiredRetentionMs: number;
  /** Test-only hook, called at named steps; inert unless a test sets it. */
  readonly faultPoint?: FaultPoint;
}

/** Where a command is when a fault point is reached. */
export interface FaultContext {
  readonly token: string;
  /** The client event being handled (a resumed step is handled on behalf of it). */
  readonly event: ClientEvent['type'] | 'RECOVER';
}

export type FaultPoint = (name: FaultPointName, context: FaultContext) => Promise<void> | void;

export type { FaultPointName } from './fault-points.ts';
export { FAULT_POINTS } from './fault-points.ts';

export interface CommandResult {
  /** The machine's answer; `null` when the event had nothing to act on (EXPIRE of an unknown token). */
  readonly outcome: Outcome | null;
  /** The token's state after the command; `null` when it has no record. */
  readonly snapshot: PaymentSnapshot | null;
}

interface Cursor {
  readonly expected: Expected;
  readonly snapshot: PaymentSnapshot;
}

const STALE_WRITE_RETRIES = 3;

/** How many settled tokens a process remembers (see answerWithoutLock); the oldest go first. */
const SETTLED_TOKENS_KEPT = 10_000;

type LockedRead = Awaited<ReturnType<SnapshotStore['loadWithLockValue']>>;

/** What one command carries through its steps. */
interface Run {
  readonly token: string;
  readonly fault: FaultContext;
  /** Answers the machine gave to the client event; a resumed step's answer is not collected. */
  readonly replies: Outcome[];
  /** True once the token is in the outbox for this command. */
  owes: boolean;
}

export class PaymentRuntime {
  /**
   * The status this process last left a settled token in (processed,
   * cancelled, refunded, expired). Only a hint of when a read without the
   * lock is worth trying (the event changes nothing in that status: a replay,
   * a repeated cancel, a payment on a cancelled token); what is answered
   * comes from Redis.
   */
  private readonly settled = new Map<string, PaymentStatus>();

  constructor(private readonly deps: RuntimeDeps) {}

  pay(token: string, payment: Payment): Promise<CommandResult> {
    return this.command(token, () => ({ type: 'PAY', ...payment, at: this.deps.clock() }));
  }

  cancel(token: string): Promise<CommandResult> {
    return this.command(token, () => ({ type: 'CANCEL', at: this.deps.clock() }));
  }

  /** A timer of `lifeId`'s deadline `dueAt` (absent: a timer of an older release, due). */
  expire(token: string, lifeId: string, dueAt?: number): Promise<CommandResult> {
    return this.command(token, () => ({
      type: 'EXPIRE',
      lifeId,
      ...(dueAt === undefined ? {} : { dueAt }),
      at: this.deps.clock(),
    }));
  }

  /** The stored state, as it is; reads take no lock. */
  async get(token: string): Promise<PaymentSnapshot | null> {
    return (await this.deps.store.load(token))?.snapshot ?? null;
  }

  /** Completes whatever a crashed request left owed for `token`. */
  async recover(token: string): Promise<void> {
    const recovered = async (held: Held<LockedRead>): Promise<void> => {
      const record = await this.loadHeld(token, held);
      let version: number | null = null;
      if (record !== null) {
        const run: Run = { token, fault: { token, event: 'RECOVER' }, replies: [], owes: true };
        const cursor = await this.runEffects(
          run,
          { expected: record, snapshot: record.snapshot },
          owedEffects(record.snapshot),
        );
        version = cursor.expected?.version ?? null;
      }
      await this.deps.store.clearOwed(token, version);
    };
    await this.deps.lock.withLock(token, recovered, this.readAhead(token));
  }

  private async command(token: string, makeEvent: () => ClientEvent): Promise<CommandResult> {
    const first = makeEvent();
    const fault: FaultContext = { token, event: first.type };
    const lastSeen = this.settled.get(token);
    if (lastSeen !== undefined && changesNothing(lastSeen, first.type)) {
      const answered = await this.answerWithoutLock(token, first);
      if (answered !== null) {
        await this.fault('before-response', fault);
        return answered;
      }
    }
    for (let attempt = 1; ; attempt++) {
      try {
        const result = await this.deps.lock.withLock(
          token,
          async (held) => {
            await this.fault('after-lock', fault);
            const record = await this.loadHeld(token, held);
            // Made after the locked read, which observed Redis's clock: the
            // event's time is Redis's time of this step, not of the request.
            return this.handle(token, record, makeEvent(), fault);
          },
          this.readAhead(token),
        );
        this.noteSettled(token, result.snapshot);
        await this.fault('before-response', fault);
        return result;
      } catch (error) {
        // A refused write means our lease ran out and another process moved the
        // token on: take the lock again and start from a fresh read, so nothing
        // of this attempt (not even clearing the outbox) runs without the lock.
        if (!(error instanceof StaleWriteError) || attempt >= STALE_WRITE_RETRIES) throw error;
      }
    }
  }

  /**
   * An event that changes nothing is answered from one read, without the
   * lock: the answer is the one the locked path gives when it reads the same
   * record, and nothing is written, so taking the lock would only order this
   * request among others it need not wait for. A record that changes, or that
   * owes work (a step in flight, an effect a crash left undone), takes the
   * locked path, which finishes that work first. `null`: take the lock.
   */
  private async answerWithoutLock(
    token: string,
    event: ClientEvent,
  ): Promise<CommandResult | null> {
    const record = await this.deps.store.load(token);
    if (record === null || record.owed || isInFlight(record.snapshot)) return null;
    const step = stepPayment(record.snapshot, event);
    const unchanged =
      step.snapshot.value === record.snapshot.value &&
      step.snapshot.context === record.snapshot.context;
    if (!unchanged) return null;
    const replies: Outcome[] = [];
    for (const effect of step.effects) {
      if (effect.type !== 'reply') return null;
      replies.push(effect.params.outcome);
    }
    return { outcome: replies.at(-1) ?? null, snapshot: record.snapshot };
  }

  private noteSettled(token: string, snapshot: PaymentSnapshot | null): void {
    this.settled.delete(token);
    if (snapshot === null || snapshot.value === 'pending' || isInFlight(snapshot)) return;
    this.settled.set(token, snapshot.value);
    if (this.settled.size > SETTLED_TOKENS_KEPT) {
      const oldest = this.settled.keys().next();
      if (oldest.done !== true) this.settled.delete(oldest.value);
    }
  }

  /** The token's record read behind the lock request, in the same round trip. */
  private readAhead(token: string): () => Promise<LockedRead> {
    return () => this.deps.store.loadWithLockValue(token);
  }

  /**
   * The record as read behind the lock request, if that read ran while the
   * lock was ours (the lock held our value then); otherwise read again.
   */
  private async loadHeld(token: string, held: Held<LockedRead>): Promise<StoredRecord | null> {
    const ahead = await held.readAhead;
    if (ahead !== undefined && ahead.lockValue === held.lockValue) return ahead.record;
    return this.deps.store.loadTimed(token);
  }

  private async handle(
    token: string,
    record: StoredRecord | null,
    event: ClientEvent,
    fault: FaultContext,
  ): Promise<CommandResult> {
    let cursor: Cursor;
    if (record === null) {
      // A timer for a token nobody knows (forgotten after retention) has nothing to do.
      if (event.type === 'EXPIRE') return { outcome: null, snapshot: null };
      const { snapshot } = startPayment({
        token,
        lifeId: this.deps.newLifeId(),
        at: event.at,
        expiryMs: this.deps.paymentExpiryMs,
        retentionMs: this.deps.expiredRetentionMs,
      });
      cursor = { expected: null, snapshot };
    } else {
      cursor = { expected: record, snapshot: record.snapshot };
    }

    const resuming = record !== null && (record.owed || isInFlight(record.snapshot));
    const run: Run = { token, fault, replies: [], owes: resuming };
    if (resuming) {
      // A request died before its effects all ran: finish them before anything
      // else (a charge or refund with the same operation id, a lost timer).
      // Their answers were for a client long gone and are not collected.
      await this.deps.store.markOwed(token, this.deps.clock());
      const resumed: Run = { token, fault, replies: [], owes: true };
      cursor = await this.runEffects(resumed, cursor, owedEffects(cursor.snapshot));
    }
    cursor = await this.apply(run, cursor, event);
    if (run.owes) {
      // Not awaited: it goes out on the lock's connection ahead of the lock's
      // release, which is awaited before the answer, so it has run by then.
      // Should it fail, the next access or the sweep clears it (idempotently).
      this.deps.store.clearOwed(token, cursor.expected?.version ?? null).catch(() => undefined);
    }
    return { outcome: run.replies.at(-1) ?? null, snapshot: cursor.snapshot };
  }

  /** Applies one event: transition, persist if anything changed, then run its effects. */
  private async apply(run: Run, cursor: Cursor, event: PaymentEvent): Promise<Cursor> {
    const step = stepPayment(cursor.snapshot, event);
    const changed =
      step.snapshot.value !== cursor.snapshot.value ||
      step.snapshot.context !== cursor.snapshot.context;
    let next = cursor;
    if (changed) {
      const durable = step.effects.some((e) => e.type !== 'reply' && e.type !== 'scheduleRemoval');
      if (durable) run.owes = true;
      const removal = step.effects.find((e) => e.type === 'scheduleRemoval');
      // An owed write puts the token in the outbox in the same script.
      const saved = await this.deps.store.save(run.token, cursor.expected, step.snapshot, {
        removeAt: removal?.params.removeAt ?? null,
        owed: run.owes,
      });
      next = { expected: saved, snapshot: step.snapshot };
      await this.fault(
        isInFlight(step.snapshot) ? 'after-persist-intent' : 'after-persist-outcome',
        run.fault,
      );
    }
    return this.runEffects(run, next, step.effects);
  }

  private async runEffects(run: Run, cursor: Cursor, effects: readonly Effect[]): Promise<Cursor> {
    let feedback: EffectEvent | null = null;
    for (const effect of effects) {
      switch (effect.type) {
        case 'charge': {
          const { operationId, accountId, amountCents } = effect.params;
          const result = await this.deps.ledger.withdraw(
            operationId,
            accountId,
            amountCents,
            run.token,
            this.deps.clock(),
          );
          await this.fault('after-ledger', run.fault);
          feedback =
            result.outcome === 'applied'
              ? { type: 'CHARGE_SUCCEEDED', at: this.deps.clock() }
              : { type: 'CHARGE_DECLINED', reason: 'insufficient_funds', at: this.deps.clock() };
          break;
        }
        case 'refund': {
          const { operationId, accountId, amountCents } = effect.params;
          await this.deps.ledger.deposit(
            operationId,
            accountId,
            amountCents,
            run.token,
            this.deps.clock(),
          );
          await this.fault('after-ledger', run.fault);
          feedback = { type: 'REFUND_COMPLETED', at: this.deps.clock() };
          break;
        }
        case 'scheduleExpiry':
          await this.deps.timers.schedule(
            effect.params.token,
            effect.params.lifeId,
            effect.params.expiresAt,
          );
          break;
        case 'scheduleRemoval':
          // Done by the write itself (PEXPIREAT in the same script): nothing can lose it.
          break;
        case 'reply':
          run.replies.push(effect.params.outcome);
          break;
      }
    }
    return feedback === null ? cursor : this.apply(run, cursor, feedback);
  }

  private async fault(name: FaultPointName, context: FaultContext): Promise<void> {
    if (this.deps.faultPoint) await this.deps.faultPoint(name, context);
  }
}
