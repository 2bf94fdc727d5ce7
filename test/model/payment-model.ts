/**
 * The test model generated from the payment machine, and a path runner that
 * is independent of what it drives: the same generated paths run against the
 * pure machine with an in-memory ledger and against the real service over
 * HTTP. A driver says how a client event is executed and how a state is
 * observed; nothing else differs between the two runs.
 */
import { isDeepStrictEqual } from 'node:util';
import { createMachine } from 'xstate';
import { createTestModel } from 'xstate/graph';
import type { TestParam, TestPath } from 'xstate/graph';
import { paymentMachine } from '../../src/machine/payment.machine.ts';
import type { PaymentSnapshot } from '../../src/payments/payment.snapshot.ts';
import { transitionsTaken } from '../../src/machine/transitions.ts';
import {
  PUBLIC_STATES,
  type ClientEvent,
  type PaymentEvent,
  type PaymentInput,
  type PublicStatus,
} from '../../src/machine/payment.types.ts';

export const MODEL_ACCOUNT = 'model-account';
export const MODEL_INITIAL_BALANCE_CENTS = 100_000;
export const FUNDED_AMOUNT_CENTS = 1_500;
export const OTHER_AMOUNT_CENTS = 2_500;
/** More than any fresh account holds: the ledger declines it. */
export const UNFUNDED_AMOUNT_CENTS = MODEL_INITIAL_BALANCE_CENTS + 1;
/**
 * An EXPIRE of a timer the engine drops before the machine sees it (of an
 * earlier life of the token, cancelled, or superseded). The model's copy of
 * the machine ignores it, as the service must; the HTTP paths deliver a real
 * such job, the reference service drops it as the engine does.
 */
const staleExpire = { type: 'EXPIRE', at: 0, stale: true } as PaymentEvent;

export function isStaleExpire(event: { type: string }): boolean {
  return event.type === 'EXPIRE' && (event as { stale?: boolean }).stale === true;
}

/** The payment machine with every EXPIRE transition guarded against a stale timer. */
function ignoringStaleTimers(config: typeof paymentMachine.config): typeof paymentMachine.config {
  const states: Record<string, unknown> = Object.fromEntries(
    Object.entries(config.states ?? {}).map(([name, node]): [string, unknown] => {
      const on = (node as { on?: Record<string, unknown> }).on;
      if (on?.EXPIRE === undefined) return [name, node];
      const guarded = {
        ...(on.EXPIRE as object),
        guard: ({ event }: { event: PaymentEvent }) => !isStaleExpire(event),
      };
      return [name, { ...(node as object), on: { ...on, EXPIRE: guarded } }];
    }),
  );
  return { ...config, states } as typeof paymentMachine.config;
}

const modelMachine = createMachine(
  ignoringStaleTimers(paymentMachine.config) as never,
  paymentMachine.implementations as never,
) as unknown as typeof paymentMachine;

export const modelInput: PaymentInput = {
  token: 'model-token',
  lifeId: 'model-life',
  at: 0,
  expiryMs: 60_000,
  retentionMs: 60_000,
};

type ModelPath = TestPath<PaymentSnapshot, PaymentEvent>;

const pay = (amountCents: number): PaymentEvent => ({
  type: 'PAY',
  accountId: MODEL_ACCOUNT,
  amountCents,
  at: 0,
});

/**
 * The events worth trying in each state. Clients may send anything; the
 * outcome of a charge is not a choice but what a ledger holding
 * MODEL_INITIAL_BALANCE_CENTS would answer, so the model stays a model of
 * the real service.
 */
export function modelEvents(snapshot: PaymentSnapshot): PaymentEvent[] {
  const { payment } = snapshot.context;
  const expire: PaymentEvent = { type: 'EXPIRE', at: 0 };
  switch (snapshot.value) {
    case 'pending':
      return [
        pay(FUNDED_AMOUNT_CENTS),
        pay(UNFUNDED_AMOUNT_CENTS),
        { type: 'CANCEL', at: 0 },
        // A pending record exists once a payment was declined, and has a timer from then on.
        ...(snapshot.context.expiresAt === null ? [] : [expire, staleExpire]),
      ];
    case 'charging':
      return (payment?.amountCents ?? 0) <= MODEL_INITIAL_BALANCE_CENTS
        ? [{ type: 'CHARGE_SUCCEEDED', at: 0 }]
        : [{ type: 'CHARGE_DECLINED', reason: 'insufficient_funds', at: 0 }];
    case 'processed':
      return [
        pay(payment?.amountCents ?? FUNDED_AMOUNT_CENTS),
        pay(OTHER_AMOUNT_CENTS),
        { type: 'CANCEL', at: 0 },
        expire,
        staleExpire,
      ];
    case 'refunding':
      return [{ type: 'REFUND_COMPLETED', at: 0 }];
    case 'cancelled':
    case 'refunded':
      return [pay(FUNDED_AMOUNT_CENTS), { type: 'CANCEL', at: 0 }, expire, staleExpire];
    case 'expired':
      return [pay(FUNDED_AMOUNT_CENTS), { type: 'CANCEL', at: 0 }];
  }
}

/**
 * A vertex of the test graph is a state together with the transition that
 * entered it, so that every transition, self-loops included, is the last
 * step of some shortest path. An event the state ignores (a stale EXPIRE)
 * gets a vertex of its own, so that "changes nothing" is tested too. What
 * the events and observations from a vertex depend on is part of it as well:
 * the payment body (it decides the charge's outcome and what a replay is) and
 * the balance the account must show.
 */
function serializeVertex(
  snapshot: PaymentSnapshot,
  event: PaymentEvent | undefined,
  previous: PaymentSnapshot | undefined,
): string {
  const balance = `paying ${snapshot.context.payment?.amountCents ?? 'nothing'}, balance ${expectedBalanceCents(snapshot)}`;
  if (event === undefined || previous === undefined) return `${snapshot.value}, ${balance}`;
  const taken = isStaleExpire(event)
    ? []
    : transitionsTaken(paymentMachine, previous, event).map((t) => t.id);
  const via = taken.length > 0 ? taken.join(' + ') : `${snapshot.value} ignoring ${event.type}`;
  return `${via}, ${balance}`;
}

export const paymentTestModel = createTestModel(modelMachine, {
  input: modelInput,
  events: modelEvents,
  // createTestModel adds a bare `{ type }` for every event a state handles that
  // `events` left out; those are not events the model's world can produce.
  filterEvents: (snapshot, event) =>
    modelEvents(snapshot).some((candidate) => isDeepStrictEqual(candidate, event)),
  serializeState: serializeVertex,
});

export function shortestPaths(): ModelPath[] {
  return paymentTestModel.getShortestPaths();
}

export function simplePaths(): ModelPath[] {
  return paymentTestModel.getSimplePaths();
}

function formatEvent(event: PaymentEvent): string {
  switch (event.type) {
    case 'PAY':
      return `PAY(${event.amountCents === UNFUNDED_AMOUNT_CENTS ? 'unfunded' : event.amountCents})`;
    case 'EXPIRE':
      return `EXPIRE(${isStaleExpire(event) ? 'stale' : 'current'})`;
    default:
      return event.type;
  }
}

/** The path's description without the context dump: end state, then the events. */
export function describePath(path: ModelPath): string {
  const events = path.steps
    .map((step) => step.event)
    .filter((event) => event.type !== ('xstate.init' as string))
    .map(formatEvent);
  return `reaches ${path.state.value} via ${events.length > 0 ? events.join(' → ') : 'start'}`;
}

export function isClientEvent(event: PaymentEvent): event is ClientEvent {
  return event.type === 'PAY' || event.type === 'CANCEL' || event.type === 'EXPIRE';
}

/** What the model's account must hold after reaching `snapshot`. */
export function expectedBalanceCents(snapshot: PaymentSnapshot): number {
  const { chargedAt, refundedAt, payment } = snapshot.context;
  const owed = chargedAt !== null && refundedAt === null ? (payment?.amountCents ?? 0) : 0;
  return MODEL_INITIAL_BALANCE_CENTS - owed;
}

/**
 * What a path run needs from the system under test. Effect outcomes
 * (CHARGE_*, REFUND_COMPLETED) are produced by the system itself while it
 * handles a client event, so only client events are sent, and only public
 * states are observed: internal steps last no longer than a request.
 */
export interface PaymentDriver {
  send(event: ClientEvent): Promise<void>;
  observe(expected: {
    status: PublicStatus;
    balanceCents: number;
    snapshot: PaymentSnapshot;
  }): Promise<void>;
}

export function testParamsFor(driver: PaymentDriver): TestParam<PaymentSnapshot, PaymentEvent> {
  const observe = (snapshot: PaymentSnapshot) =>
    driver.observe({
      status: snapshot.value as PublicStatus,
      balanceCents: expectedBalanceCents(snapshot),
      snapshot,
    });
  // xstate/graph types an executor's event by its type alone; it is the full event.
  const send = async (step: { event: { type: string } }) => {
    const event = step.event as PaymentEvent;
    if (isClientEvent(event)) await driver.send(event);
  };
  const params: TestParam<PaymentSnapshot, PaymentEvent> = {
    states: Object.fromEntries(PUBLIC_STATES.map((state) => [state, observe])),
    events: {
      PAY: send,
      CANCEL: send,
      EXPIRE: send,
      CHARGE_SUCCEEDED: send,
      CHARGE_DECLINED: send,
      REFUND_COMPLETED: send,
    },
  };
  return params;
}
