import type { EffectContext } from '../runtime/index.ts';
import type {
  CaptureParams,
  ChargeParams,
  EffectEvent,
  RefundParams,
  VoidParams,
} from '../machine/payment.types.ts';
import type { Processor } from '../processor/processor.ts';

/**
 * The payment machine's effects on the processor. Each is idempotent by the
 * operation id in its params (`charge:{token}:{lifeId}:{attempt}`,
 * `capture:…`, `void:…`, `refund:{token}:{lifeId}:{n}`), which the machine
 * derived from the token's state and the runtime stored with the write that
 * asked for it: a replay after a crash, or a step in flight across an
 * upgrade, moves money once.
 *
 * Params stored by machine version 1 (a charge or refund owed across the
 * upgrade) carry no currency, capture or `at`: they were the default
 * currency's, captured, and asked for no earlier than now.
 */
export function paymentEffects(processor: Processor, defaultCurrency: string) {
  const fill = <T extends { currency?: string; at?: number }>(
    params: T,
    context: EffectContext,
  ) => ({
    ...params,
    currency: params.currency ?? defaultCurrency,
    at: params.at ?? context.now(),
    token: context.key,
  });
  return {
    charge: async (params: ChargeParams, context: EffectContext): Promise<EffectEvent> => {
      const outcome = await processor.charge({
        ...fill(params, context),
        // Version 1's params have none: captured.
        capture: (params as { capture?: boolean }).capture ?? true,
      });
      const at = context.now();
      switch (outcome.status) {
        case 'succeeded':
          return { type: 'CHARGE_SUCCEEDED', at };
        case 'requires_capture':
          return { type: 'CHARGE_AUTHORIZED', at };
        case 'declined':
          return { type: 'CHARGE_DECLINED', reason: outcome.reason, at };
      }
    },
    capture: async (params: CaptureParams, context: EffectContext): Promise<EffectEvent> => {
      await processor.capture(fill(params, context));
      return { type: 'CAPTURE_SUCCEEDED', at: context.now() };
    },
    void: async (params: VoidParams, context: EffectContext): Promise<EffectEvent> => {
      await processor.void(fill(params, context));
      return { type: 'VOID_COMPLETED', at: context.now() };
    },
    refund: async (params: RefundParams, context: EffectContext): Promise<EffectEvent> => {
      await processor.refund(fill(params, context));
      return { type: 'REFUND_COMPLETED', at: context.now() };
    },
  };
}
