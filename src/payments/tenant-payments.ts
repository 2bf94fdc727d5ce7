import type { AccountView, Ledger } from '../accounts/ledger.ts';
import type { Currency } from '../money/currency.ts';
import { StaleWriteError, TokenBusyError } from '../errors.ts';
import { RuntimeError } from '../runtime/index.ts';
import { tenantKey, type Tenant } from '../tenants.ts';
import type { PaymentSnapshot } from './payment.snapshot.ts';
import type { CommandResult, PaymentRequest, Payments, RefundRequest } from './payments.ts';

/**
 * Payments and accounts as one tenant sees them: every token and account id
 * a client names is its tenant's (src/tenants.ts), so another tenant's are
 * out of reach, as if absent. Answers still carry stored keys; the views
 * (src/http/views.ts) show them as the client's own ids. In local mode
 * (tenant null) this is Payments and the ledger unchanged.
 */
export class TenantPayments {
  constructor(
    private readonly payments: Payments,
    private readonly ledger: Ledger,
    readonly tenant: Tenant,
  ) {}

  pay(token: string, payment: PaymentRequest): Promise<CommandResult> {
    const stored = { ...payment, accountId: tenantKey(this.tenant, payment.accountId) };
    return this.asClient(token, this.payments.pay(tenantKey(this.tenant, token), stored));
  }

  cancel(token: string): Promise<CommandResult> {
    return this.asClient(token, this.payments.cancel(tenantKey(this.tenant, token)));
  }

  capture(token: string, amountCents?: number): Promise<CommandResult | null> {
    return this.asClient(token, this.payments.capture(tenantKey(this.tenant, token), amountCents));
  }

  refund(token: string, request: RefundRequest): Promise<CommandResult | null> {
    return this.asClient(token, this.payments.refund(tenantKey(this.tenant, token), request));
  }

  get(token: string): Promise<PaymentSnapshot | null> {
    return this.payments.get(tenantKey(this.tenant, token));
  }

  /** `currency`: that currency's balance and movements only. */
  account(accountId: string, currency?: Currency): Promise<AccountView> {
    return this.ledger.view(tenantKey(this.tenant, accountId), currency);
  }

  /** Errors that name the token name the client's, not the stored key. */
  private async asClient<T>(token: string, answer: Promise<T>): Promise<T> {
    try {
      return await answer;
    } catch (error) {
      if (error instanceof RuntimeError && error.code === 'busy') throw new TokenBusyError(token);
      if (error instanceof RuntimeError && error.code === 'stale_write')
        throw new StaleWriteError(token);
      throw error;
    }
  }
}
