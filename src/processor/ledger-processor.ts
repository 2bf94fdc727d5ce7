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
 * The built-in processor over the account ledger, one balance per account:
 * an authorization takes the amount from it at once, a capture gives back
 * what it does not take, a void all of it. Each movement keeps its
 * operation id, so a repeat moves nothing.
 */
export class LedgerProcessor implements Processor {
  constructor(private readonly ledger: Ledger) {}

  async charge(r: ChargeRequest): Promise<ChargeOutcome> {
    const result = await this.ledger.withdraw(
      r.operationId,
      r.accountId,
      r.amountCents,
      r.token,
      r.at,
    );
    if (result.outcome !== 'applied') return { status: 'declined', reason: 'insufficient_funds' };
    return r.capture ? { status: 'succeeded' } : { status: 'requires_capture' };
  }

  async capture(r: CaptureRequest): Promise<{ status: 'succeeded' }> {
    const released = r.authorizedCents - r.amountCents;
    if (released > 0) {
      await this.ledger.deposit(r.operationId, r.accountId, released, r.token, r.at);
    }
    return { status: 'succeeded' };
  }

  async void(r: VoidRequest): Promise<{ status: 'canceled' }> {
    await this.ledger.deposit(r.operationId, r.accountId, r.amountCents, r.token, r.at);
    return { status: 'canceled' };
  }

  async refund(r: RefundRequest): Promise<{ status: 'succeeded' }> {
    await this.ledger.deposit(r.operationId, r.accountId, r.amountCents, r.token, r.at);
    return { status: 'succeeded' };
  }
}
