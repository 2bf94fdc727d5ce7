/**
 * An in-memory, single-threaded reference of the service: the pure machine
 * with its effects executed against a map-backed ledger. It is what the real
 * runtime must be indistinguishable from, minus Redis, locks and crashes; the
 * model paths and property tests use it as the oracle.
 */
import {
  startPayment,
  stepPayment,
  type Effect,
  type PaymentSnapshot,
} from '../../src/payments/payment.snapshot.ts';
import type {
  ClientEvent,
  EffectEvent,
  Outcome,
  PaymentInput,
} from '../../src/machine/payment.types.ts';

interface LedgerOperation {
  readonly accountId: string;
  readonly deltaCents: number;
  readonly applied: boolean;
}

export class ReferenceLedger {
  private readonly balances = new Map<string, number>();
  private readonly operations = new Map<string, LedgerOperation>();

  constructor(private readonly initialBalanceCents: number) {}

  balanceOf(accountId: string): number {
    return this.balances.get(accountId) ?? this.initialBalanceCents;
  }

  /** Withdraws unless funds are short; a repeated operation id returns its first outcome. */
  withdraw(operationId: string, accountId: string, amountCents: number): boolean {
    const seen = this.operations.get(operationId);
    if (seen) return seen.applied;
    const applied = this.balanceOf(accountId) >= amountCents;
    if (applied) this.balances.set(accountId, this.balanceOf(accountId) - amountCents);
    this.operations.set(operationId, { accountId, deltaCents: -amountCents, applied });
    return applied;
  }

  deposit(operationId: string, accountId: string, amountCents: number): void {
    if (this.operations.has(operationId)) return;
    this.balances.set(accountId, this.balanceOf(accountId) + amountCents);
    this.operations.set(operationId, { accountId, deltaCents: amountCents, applied: true });
  }
}

export interface ReferenceReply {
  readonly outcome: Outcome;
  readonly snapshot: PaymentSnapshot;
}

export class ReferenceService {
  readonly ledger: ReferenceLedger;
  private readonly tokens = new Map<string, PaymentSnapshot>();

  constructor(
    private readonly options: {
      initialBalanceCents: number;
      newInput: (token: string) => PaymentInput;
    },
  ) {
    this.ledger = new ReferenceLedger(options.initialBalanceCents);
  }

  snapshotOf(token: string): PaymentSnapshot | undefined {
    return this.tokens.get(token);
  }

  /** Applies a client event and every effect it leads to, as one request would. */
  send(token: string, event: ClientEvent): ReferenceReply | undefined {
    // A timer the engine drops (of an earlier life, cancelled or superseded) changes nothing.
    if (event.type === 'EXPIRE' && (event as { stale?: boolean }).stale === true) return undefined;
    let snapshot = this.tokens.get(token);
    if (snapshot === undefined) {
      // A timer for a token nobody knows has nothing to expire.
      if (event.type === 'EXPIRE') return undefined;
      snapshot = startPayment(this.options.newInput(token)).snapshot;
    }
    let reply: ReferenceReply | undefined;
    let pending: ClientEvent | EffectEvent | undefined = event;
    while (pending !== undefined) {
      const step = stepPayment(snapshot, pending);
      snapshot = step.snapshot;
      pending = undefined;
      for (const effect of step.effects) {
        const feedback = this.execute(effect, event.at);
        if (feedback) pending = feedback;
        if (effect.type === 'reply') reply = { ...effect.params, snapshot };
      }
    }
    this.tokens.set(token, snapshot);
    return reply === undefined ? undefined : { ...reply, snapshot };
  }

  private execute(effect: Effect, at: number): EffectEvent | undefined {
    switch (effect.type) {
      case 'charge': {
        const { operationId, accountId, amountCents, capture } = effect.params;
        if (!this.ledger.withdraw(operationId, accountId, amountCents)) {
          return { type: 'CHARGE_DECLINED', reason: 'insufficient_funds', at };
        }
        return capture ? { type: 'CHARGE_SUCCEEDED', at } : { type: 'CHARGE_AUTHORIZED', at };
      }
      case 'capture': {
        // The hold left available funds at the authorization; what is not captured comes back.
        const { operationId, accountId, authorizedCents, amountCents } = effect.params;
        if (authorizedCents > amountCents) {
          this.ledger.deposit(operationId, accountId, authorizedCents - amountCents);
        }
        return { type: 'CAPTURE_SUCCEEDED', at };
      }
      case 'void': {
        const { operationId, accountId, amountCents } = effect.params;
        this.ledger.deposit(operationId, accountId, amountCents);
        return { type: 'VOID_COMPLETED', at };
      }
      case 'refund': {
        const { operationId, accountId, amountCents } = effect.params;
        this.ledger.deposit(operationId, accountId, amountCents);
        return { type: 'REFUND_COMPLETED', at };
      }
      case 'scheduleExpiry':
      case 'reply':
        return undefined;
    }
  }
}
