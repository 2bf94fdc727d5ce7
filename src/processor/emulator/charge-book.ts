/**
 * The emulator's memory: charges, their refunds, the idempotency keys in use
 * and the journal of money movements. Every operation here is synchronous,
 * so one request's read-check-write cannot interleave with another's; the
 * only waits (fault delays, held answers) happen outside it.
 */
import { randomBytes } from 'node:crypto';
import type {
  Charge,
  ChargeRequest,
  ChargeStatus,
  Refund,
  RefundResponse,
  WebhookEventType,
} from '../protocol.ts';

export type MovementKind = 'charge' | 'authorize' | 'capture' | 'release' | 'refund';

/** One money movement: what a processor's ledger would record. */
export interface JournalEntry {
  readonly seq: number;
  readonly at: string;
  readonly kind: MovementKind;
  readonly chargeId: string;
  readonly refundId: string | null;
  /** The key of the request that moved the money (the refund's key for a refund). */
  readonly idempotencyKey: string;
  readonly account: string;
  readonly amount: number;
  readonly currency: string;
}

/** A refusal that leaves everything as it was. */
export class BookError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export type ChangeListener = (type: WebhookEventType, charge: Charge) => void;

interface StoredCharge {
  id: string;
  status: ChargeStatus;
  amount: number;
  currency: string;
  account: string;
  capture: boolean;
  amountCaptured: number;
  amountRefunded: number;
  idempotencyKey: string;
  failureReason: string | null;
  refunds: Refund[];
  created: number;
}

const newId = (prefix: string) => `${prefix}_${randomBytes(12).toString('hex')}`;

export class ChargeBook {
  readonly #charges = new Map<string, StoredCharge>();
  readonly #chargeByKey = new Map<string, string>();
  readonly #journal: JournalEntry[] = [];
  #seq = 0;

  constructor(private readonly onChange: ChangeListener) {}

  reset(): void {
    this.#charges.clear();
    this.#chargeByKey.clear();
    this.#journal.length = 0;
  }

  get(id: string): Charge | null {
    const stored = this.#charges.get(id);
    return stored === undefined ? null : view(stored);
  }

  findByKey(key: string): Charge | null {
    const id = this.#chargeByKey.get(key);
    return id === undefined ? null : this.get(id);
  }

  journal(filter: { idempotencyKey?: string; account?: string; chargeId?: string } = {}) {
    return this.#journal.filter(
      (entry) =>
        (filter.idempotencyKey === undefined || entry.idempotencyKey === filter.idempotencyKey) &&
        (filter.account === undefined || entry.account === filter.account) &&
        (filter.chargeId === undefined || entry.chargeId === filter.chargeId),
    );
  }

  /**
   * A new charge. `outcome` is what the fault rules decided: a decline, a
   * `processing` answer settled later by `settle`, or the normal result.
   */
  create(
    request: ChargeRequest,
    key: string,
    outcome: { kind: 'normal' } | { kind: 'declined'; reason: string } | { kind: 'processing' },
    now: Date,
  ): Charge {
    const charge: StoredCharge = {
      id: newId('ch'),
      status: 'processing',
      amount: request.amount,
      currency: request.currency,
      account: request.account,
      capture: request.capture,
      amountCaptured: 0,
      amountRefunded: 0,
      idempotencyKey: key,
      failureReason: null,
      refunds: [],
      created: Math.floor(now.getTime() / 1000),
    };
    this.#charges.set(charge.id, charge);
    this.#chargeByKey.set(key, charge.id);
    if (outcome.kind === 'declined') this.#decline(charge, outcome.reason);
    else if (outcome.kind === 'normal') this.#succeed(charge, now);
    else this.onChange('charge.processing', view(charge));
    return view(charge);
  }

  /** Ends a `processing` charge; one that has already settled is left alone. */
  settle(id: string, to: 'succeeded' | 'declined', now: Date): void {
    const charge = this.#charges.get(id);
    if (charge?.status !== 'processing') return;
    if (to === 'declined') this.#decline(charge, 'processing_failed');
    else this.#succeed(charge, now);
  }

  capture(
    id: string,
    amount: number | undefined,
    now: Date,
  ): { charge: Charge; replayed: boolean } {
    const charge = this.#require(id);
    if (charge.status === 'succeeded' && !charge.capture) {
      if (amount === undefined || amount === charge.amountCaptured) {
        return { charge: view(charge), replayed: true };
      }
      throw new BookError(400, 'charge_already_captured', `charge ${id} is already captured`);
    }
    if (charge.status === 'succeeded') {
      throw new BookError(400, 'charge_already_captured', `charge ${id} was captured when made`);
    }
    if (charge.status !== 'requires_capture') {
      throw new BookError(400, 'charge_not_capturable', `charge ${id} is ${charge.status}`);
    }
    const captured = amount ?? charge.amount;
    if (captured > charge.amount) {
      throw new BookError(
        400,
        'amount_too_large',
        `capture of ${captured} exceeds the authorized ${charge.amount}`,
      );
    }
    charge.status = 'succeeded';
    charge.amountCaptured = captured;
    this.#record(charge, 'capture', captured, charge.idempotencyKey, null, now);
    if (captured < charge.amount) {
      this.#record(charge, 'release', charge.amount - captured, charge.idempotencyKey, null, now);
    }
    this.onChange('charge.captured', view(charge));
    return { charge: view(charge), replayed: false };
  }

  cancel(id: string, now: Date): { charge: Charge; replayed: boolean } {
    const charge = this.#require(id);
    if (charge.status === 'canceled') return { charge: view(charge), replayed: true };
    if (charge.status !== 'requires_capture') {
      throw new BookError(400, 'charge_not_cancelable', `charge ${id} is ${charge.status}`);
    }
    charge.status = 'canceled';
    this.#record(charge, 'release', charge.amount, charge.idempotencyKey, null, now);
    this.onChange('charge.canceled', view(charge));
    return { charge: view(charge), replayed: false };
  }

  refund(id: string, amount: number | undefined, key: string, now: Date): RefundResponse {
    const charge = this.#require(id);
    if (charge.status !== 'succeeded') {
      throw new BookError(400, 'charge_not_refundable', `charge ${id} is ${charge.status}`);
    }
    const left = charge.amountCaptured - charge.amountRefunded;
    const refunded = amount ?? left;
    if (refunded < 1 || refunded > left) {
      throw new BookError(
        400,
        'refund_exceeds_charge',
        `a refund of ${refunded} exceeds the ${left} left to refund on charge ${id}`,
      );
    }
    const refund: Refund = {
      id: newId('re'),
      amount: refunded,
      status: 'succeeded',
      idempotency_key: key,
    };
    charge.refunds.push(refund);
    charge.amountRefunded += refunded;
    this.#record(charge, 'refund', refunded, key, refund.id, now);
    this.onChange('charge.refunded', view(charge));
    return { ...refund, charge: view(charge) };
  }

  /** The refund made with `key` on charge `id`, as a refund response. */
  refundByKey(id: string, key: string): RefundResponse | null {
    const charge = this.#charges.get(id);
    const refund = charge?.refunds.find((r) => r.idempotency_key === key);
    return charge === undefined || refund === undefined
      ? null
      : { ...refund, charge: view(charge) };
  }

  #require(id: string): StoredCharge {
    const charge = this.#charges.get(id);
    if (charge === undefined) throw new BookError(404, 'not_found', `no charge ${id}`);
    return charge;
  }

  #succeed(charge: StoredCharge, now: Date): void {
    if (charge.capture) {
      charge.status = 'succeeded';
      charge.amountCaptured = charge.amount;
      this.#record(charge, 'charge', charge.amount, charge.idempotencyKey, null, now);
      this.onChange('charge.succeeded', view(charge));
    } else {
      charge.status = 'requires_capture';
      this.#record(charge, 'authorize', charge.amount, charge.idempotencyKey, null, now);
      this.onChange('charge.requires_capture', view(charge));
    }
  }

  #decline(charge: StoredCharge, reason: string): void {
    charge.status = 'declined';
    charge.failureReason = reason;
    this.onChange('charge.declined', view(charge));
  }

  #record(
    charge: StoredCharge,
    kind: MovementKind,
    amount: number,
    idempotencyKey: string,
    refundId: string | null,
    now: Date,
  ): void {
    this.#seq += 1;
    this.#journal.push({
      seq: this.#seq,
      at: now.toISOString(),
      kind,
      chargeId: charge.id,
      refundId,
      idempotencyKey,
      account: charge.account,
      amount,
      currency: charge.currency,
    });
  }
}

function view(charge: StoredCharge): Charge {
  return {
    id: charge.id,
    status: charge.status,
    amount: charge.amount,
    currency: charge.currency,
    account: charge.account,
    capture: charge.capture,
    amount_captured: charge.amountCaptured,
    amount_refunded: charge.amountRefunded,
    idempotency_key: charge.idempotencyKey,
    failure_reason: charge.failureReason,
    refunds: charge.refunds.map((refund) => ({ ...refund })),
    created: charge.created,
  };
}
