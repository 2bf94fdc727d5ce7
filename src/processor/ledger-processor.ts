import type { Ledger } from '../accounts/ledger.ts';
import type {
  CaptureRequest,
  ChargeOutcome,
  ChargeRequest,
  Processor,
  RefundRequest,
  VoidRequest,
} from './processor.ts';

/**
 * The built-in processor (`PAYSTATE_PROCESSOR=ledger`): money moves on the
 * account ledger in Redis, no network. A charge withdraws, an authorization
 * holds, a capture settles the hold, a void releases it, a refund deposits;
 * each idempotent by its operation id (see Ledger).
 *
 * Throws what the ledger throws: AppErrors of an outage (retryable), and
 * MovementTooOldError for a movement first asked for longer ago than the
 * account remembers operation ids (not retryable: an operator resolves it).
 */
export class LedgerProcessor implements Processor {
  constructor(private readonly ledger: Ledger) {}

  async charge(r: ChargeRequest): Promise<ChargeOutcome> {
    const result = await this.ledger.move({ ...r, kind: r.capture ? 'withdrawal' : 'hold' });
    if (result.outcome === 'declined') return { status: 'declined', reason: 'insufficient_funds' };
    return r.capture ? { status: 'succeeded' } : { status: 'requires_capture' };
  }

  async capture(r: CaptureRequest): Promise<{ status: 'succeeded' }> {
    await this.ledger.move({ ...r, kind: 'capture' });
    return { status: 'succeeded' };
  }

  async void(r: VoidRequest): Promise<{ status: 'canceled' }> {
    await this.ledger.move({ ...r, kind: 'release' });
    return { status: 'canceled' };
  }

  async refund(r: RefundRequest): Promise<{ status: 'succeeded' }> {
    await this.ledger.move({ ...r, kind: 'deposit' });
    return { status: 'succeeded' };
  }
}
