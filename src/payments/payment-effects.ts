import type { Ledger } from '../accounts/ledger.ts';
import type { EffectContext } from '../runtime/index.ts';
import type { ChargeParams, EffectEvent, RefundParams } from '../machine/payment.types.ts';

/**
 * The payment machine's effects on the ledger. Each is idempotent by the
 * operation id in its params (`charge:{token}:{lifeId}:{attempt}`,
 * `refund:{token}:{lifeId}`), which the machine derived from the token's
 * state and the engine stored with the write that asked for it: a replay
 * after a crash, or a charge in flight across an upgrade, moves money once.
 */
export function paymentEffects(ledger: Ledger) {
  return {
    charge: async (params: ChargeParams, context: EffectContext): Promise<EffectEvent> => {
      const { key } = context;
      const now = () => context.now();
      const { operationId, accountId, amountCents } = params;
      const result = await ledger.withdraw(operationId, accountId, amountCents, key, now());
      return result.outcome === 'applied'
        ? { type: 'CHARGE_SUCCEEDED', at: now() }
        : { type: 'CHARGE_DECLINED', reason: 'insufficient_funds', at: now() };
    },
    refund: async (params: RefundParams, context: EffectContext): Promise<EffectEvent> => {
      const { key } = context;
      const now = () => context.now();
      const { operationId, accountId, amountCents } = params;
      await ledger.deposit(operationId, accountId, amountCents, key, now());
      return { type: 'REFUND_COMPLETED', at: now() };
    },
  };
}
