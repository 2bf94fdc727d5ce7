/**
 * A second machine on the engine: an order that must be paid within a
 * window (a delayed event) and is then shipped (an effect whose answer is an
 * event). Nothing here touches Redis, locks or timers: the engine does.
 */
import { assign, emit, setup } from 'xstate';
import { durableMachine, type Engine } from '../src/runtime/index.ts';

export interface OrderContext {
  readonly orderId: string;
  readonly placedAt: number;
  readonly paymentWindowMs: number;
  readonly amountCents: number | null;
  readonly trackingId: string | null;
}

export type OrderEvent =
  | { type: 'PAY'; amountCents: number }
  | { type: 'CANCEL' }
  | { type: 'SHIPPED'; trackingId: string }
  | { type: 'DELIVERED' };

export type OrderReply = { type: 'order.reply'; status: string; accepted: boolean };

export const orderMachine = setup({
  types: {
    context: {} as OrderContext,
    events: {} as OrderEvent,
    input: {} as { orderId: string; placedAt: number; paymentWindowMs: number },
    emitted: {} as OrderReply,
  },
  actions: {
    // Run by the engine after the write that enters `shipping`.
    ship: (_args, _params: { orderId: string; amountCents: number }) => undefined,
    reply: emit((_args, params: { status: string; accepted: boolean }) => ({
      type: 'order.reply' as const,
      ...params,
    })),
  },
  delays: {
    paymentWindow: ({ context }) => context.paymentWindowMs,
  },
}).createMachine({
  id: 'order',
  context: ({ input }) => ({ ...input, amountCents: null, trackingId: null }),
  initial: 'awaitingPayment',
  states: {
    awaitingPayment: {
      after: { paymentWindow: 'cancelled' },
      on: {
        PAY: {
          target: 'shipping',
          actions: [
            assign({ amountCents: ({ event }) => event.amountCents }),
            { type: 'reply', params: { status: 'paid', accepted: true } },
          ],
        },
        CANCEL: {
          target: 'cancelled',
          actions: { type: 'reply', params: { status: 'cancelled', accepted: true } },
        },
      },
    },
    shipping: {
      entry: {
        type: 'ship',
        params: ({ context }) => ({
          orderId: context.orderId,
          amountCents: context.amountCents ?? 0,
        }),
      },
      on: {
        SHIPPED: {
          target: 'shipped',
          actions: assign({ trackingId: ({ event }) => event.trackingId }),
        },
        CANCEL: { actions: { type: 'reply', params: { status: 'shipping', accepted: false } } },
      },
    },
    shipped: {
      on: {
        DELIVERED: 'delivered',
        CANCEL: { actions: { type: 'reply', params: { status: 'shipped', accepted: false } } },
      },
    },
    delivered: { type: 'final' },
    cancelled: {
      type: 'final',
      on: { PAY: { actions: { type: 'reply', params: { status: 'cancelled', accepted: false } } } },
    },
  },
});

/** Ships an order; must be idempotent by `operationId` (a replay after a crash reuses it). */
export interface Carrier {
  ship(orderId: string, operationId: string): Promise<{ trackingId: string }>;
}

export function orders(
  engine: Engine,
  options: { carrier: Carrier; paymentWindowMs: number; retentionMs: number },
) {
  return durableMachine(engine, {
    name: 'order',
    machine: orderMachine,
    version: 1,
    input: (orderId, now) => ({
      orderId,
      placedAt: now,
      paymentWindowMs: options.paymentWindowMs,
    }),
    effects: {
      ship: async (params: { orderId: string }, { operationId }) => {
        const { trackingId } = await options.carrier.ship(params.orderId, operationId);
        return { type: 'SHIPPED' as const, trackingId };
      },
    },
    finalStateRetentionMs: options.retentionMs,
  });
}
