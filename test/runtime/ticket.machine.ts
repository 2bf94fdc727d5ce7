import { assign, cancel, emit, raise, setup } from 'xstate';

/**
 * A toy machine of the engine's tests (no payment code): a ticket that can be
 * reminded (a delayed `raise` with an id, re-armed or cancelled), held for a
 * while (`after`), shipped (an effect with feedback) and closed (a final
 * state). Replies are emitted; PING only replies.
 */

export interface TicketContext {
  readonly key: string;
  readonly lifeId: string;
  readonly openedAt: number;
  readonly reminders: number;
  readonly ticks: number;
  readonly shipments: number;
  /** The `at` of the last REMIND, when the timer's delivery was stamped with one. */
  readonly remindedAt: number | null;
}

export type TicketEvent =
  | { type: 'REMIND_IN'; ms: number }
  | { type: 'CANCEL_REMINDER' }
  | { type: 'REMIND'; at?: number }
  | { type: 'TICK' }
  | { type: 'PING' }
  | { type: 'HOLD' }
  | { type: 'RELEASE' }
  | { type: 'SHIP' }
  | { type: 'SHIPPED' }
  | { type: 'SHIP_FAILED' }
  | { type: 'CLOSE' };

export type TicketReply = { type: 'REPLY'; status: string; ticks: number };

export interface ShipParams {
  readonly key: string;
}

export const TICKET_HOLD_MS = 300;

export const ticketMachine = setup({
  types: {
    context: {} as TicketContext,
    events: {} as TicketEvent,
    input: {} as { key: string; now: number; lifeId: string },
    emitted: {} as TicketReply,
  },
  actions: {
    ship: (_args, _params: ShipParams) => undefined,
  },
}).createMachine({
  id: 'ticket',
  context: ({ input }) => ({
    key: input.key,
    lifeId: input.lifeId,
    openedAt: input.now,
    reminders: 0,
    ticks: 0,
    shipments: 0,
    remindedAt: null,
  }),
  initial: 'open',
  states: {
    open: {
      on: {
        REMIND_IN: {
          actions: raise({ type: 'REMIND' }, { id: 'remind', delay: ({ event }) => event.ms }),
        },
        CANCEL_REMINDER: { actions: cancel('remind') },
        REMIND: {
          actions: assign({
            reminders: ({ context }) => context.reminders + 1,
            remindedAt: ({ event }) => event.at ?? null,
          }),
        },
        TICK: {
          actions: [
            assign({ ticks: ({ context }) => context.ticks + 1 }),
            emit(({ context }) => ({
              type: 'REPLY' as const,
              status: 'open',
              ticks: context.ticks,
            })),
          ],
        },
        PING: {
          actions: emit(({ context }) => ({
            type: 'REPLY' as const,
            status: 'open',
            ticks: context.ticks,
          })),
        },
        HOLD: 'held',
        SHIP: 'shipping',
        CLOSE: 'closed',
      },
    },
    held: {
      after: { [TICKET_HOLD_MS]: 'open' },
      on: { RELEASE: 'open' },
    },
    shipping: {
      entry: { type: 'ship', params: ({ context }) => ({ key: context.key }) },
      on: {
        SHIPPED: {
          target: 'shipped',
          actions: [
            assign({ shipments: ({ context }) => context.shipments + 1 }),
            emit(({ context }) => ({
              type: 'REPLY' as const,
              status: 'shipped',
              ticks: context.ticks,
            })),
          ],
        },
        SHIP_FAILED: 'open',
      },
    },
    shipped: { on: { CLOSE: 'closed' } },
    closed: { type: 'final' },
  },
});
