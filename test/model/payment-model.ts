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
  type CaptureMode,
  type ClientEvent,
  type PaymentEvent,
  type PaymentInput,
  type PublicStatus,
} from '../../src/machine/payment.types.ts';

export const MODEL_ACCOUNT = 'model-account';
export const MODEL_INITIAL_BALANCE_CENTS = 100_000;
export const FUNDED_AMOUNT_CENTS = 1_500;
export const OTHER_AMOUNT_CENTS = 2_500;
/** What a manual payment of FUNDED_AMOUNT_CENTS captures: the rest of the hold is released. */
export const CAPTURED_AMOUNT_CENTS = 1_000;
/** Each refund the model asks for; two of them fit in either captured amount. */
export const REFUND_AMOUNT_CENTS = 400;
/** Refunds one payment may have in the model: small, so that a path reaches the limit. */
export const MODEL_REFUND_LIMIT = 2;
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
  captureWindowMs: 60_000,
  retentionMs: 60_000,
  refundLimit: MODEL_REFUND_LIMIT,
};

type ModelPath = TestPath<PaymentSnapshot, PaymentEvent>;

const pay = (amountCents: number, capture: CaptureMode = 'automatic'): PaymentEvent => ({
  type: 'PAY',
  accountId: MODEL_ACCOUNT,
  amountCents,
  currency: 'USD',
  capture,
  at: 0,
});
const capture = (amountCents: number | null): PaymentEvent => ({
  type: 'CAPTURE',
  amountCents,
  at: 0,
});
const refund = (refundId: string, amountCents: number | null): PaymentEvent => ({
  type: 'REFUND',
  refundId,
  amountCents,
  reason: null,
  at: 0,
});
/** A refund id not yet used on the token. */
const nextRefundId = (snapshot: PaymentSnapshot) => `r${snapshot.context.refunds.length + 1}`;

/**
 * The events worth trying in each state. Clients may send anything; the
 * outcome of a charge is not a choice but what a ledger holding
 * MODEL_INITIAL_BALANCE_CENTS would answer, so the model stays a model of
 * the real service.
 */
export function modelEvents(snapshot: PaymentSnapshot): PaymentEvent[] {
  const { payment } = snapshot.context;
  const expire: PaymentEvent = { type: 'EXPIRE', at: 0 };
  const funded = (payment?.amountCents ?? 0) <= MODEL_INITIAL_BALANCE_CENTS;
  const declined: PaymentEvent = { type: 'CHARGE_DECLINED', reason: 'insufficient_funds', at: 0 };
  const same = pay(payment?.amountCents ?? FUNDED_AMOUNT_CENTS, payment?.capture);
  switch (snapshot.value) {
    case 'pending':
      return [
        pay(FUNDED_AMOUNT_CENTS),
        pay(FUNDED_AMOUNT_CENTS, 'manual'),
        pay(UNFUNDED_AMOUNT_CENTS),
        pay(UNFUNDED_AMOUNT_CENTS, 'manual'),
        { type: 'CANCEL', at: 0 },
        capture(null),
        refund('r1', null),
        // A pending record exists once a payment was declined, and has a timer from then on.
        ...(snapshot.context.expiresAt === null ? [] : [expire, staleExpire]),
      ];
    case 'charging':
      return funded ? [{ type: 'CHARGE_SUCCEEDED', at: 0 }] : [declined];
    case 'authorizing':
      return funded ? [{ type: 'CHARGE_AUTHORIZED', at: 0 }] : [declined];
    case 'authorized':
      return [
        same,
        pay(OTHER_AMOUNT_CENTS),
        capture(CAPTURED_AMOUNT_CENTS),
        capture(FUNDED_AMOUNT_CENTS + 1),
        refund('r1', null),
        { type: 'CANCEL', at: 0 },
        { type: 'CAPTURE_WINDOW_ELAPSED', at: 0 },
      ];
    case 'capturing':
      return [{ type: 'CAPTURE_SUCCEEDED', at: 0 }];
    case 'voiding':
      return [{ type: 'VOID_COMPLETED', at: 0 }];
    case 'processed':
    case 'partially_refunded': {
      const last = snapshot.context.refunds.at(-1);
      return [
        same,
        pay(OTHER_AMOUNT_CENTS),
        capture(snapshot.context.capturedCents),
        capture(1),
        refund(nextRefundId(snapshot), REFUND_AMOUNT_CENTS),
        refund(nextRefundId(snapshot), null),
        refund(nextRefundId(snapshot), FUNDED_AMOUNT_CENTS + 1),
        ...(last?.refundId == null
          ? []
          : [refund(last.refundId, last.requestedCents), refund(last.refundId, 1)]),
        { type: 'CANCEL', at: 0 },
        expire,
        staleExpire,
      ];
    }
    case 'refunding':
      return [{ type: 'REFUND_COMPLETED', at: 0 }];
    case 'cancelled':
      return [
        pay(FUNDED_AMOUNT_CENTS),
        capture(null),
        refund('r1', null),
        { type: 'CANCEL', at: 0 },
        expire,
        staleExpire,
      ];
    case 'refunded': {
      const last = snapshot.context.refunds.at(-1);
      return [
        pay(FUNDED_AMOUNT_CENTS),
        capture(snapshot.context.capturedCents),
        capture(1),
        refund(nextRefundId(snapshot), 1),
        ...(last?.refundId == null
          ? []
          : [refund(last.refundId, last.requestedCents), refund(last.refundId, 1)]),
        { type: 'CANCEL', at: 0 },
        expire,
        staleExpire,
      ];
    }
    case 'expired':
      return [
        pay(FUNDED_AMOUNT_CENTS),
        capture(null),
        refund('r1', null),
        { type: 'CANCEL', at: 0 },
      ];
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
  const { payment, capturedCents, refunds } = snapshot.context;
  const refundIds = refunds.map((r) => `${r.refundId ?? 'cancel'}:${r.amountCents}`).join(' ');
  const balance = `paying ${payment?.amountCents ?? 'nothing'} ${payment?.capture ?? ''}, captured ${capturedCents}, refunds [${refundIds}], balance ${expectedBalanceCents(snapshot)}`;
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

/**
 * Simple paths (every path that visits no vertex twice) grow exponentially
 * with the events: they are taken over automatic payments and cancels, the
 * events of the machine before capture and refunds by key; the shortest
 * paths cover every transition.
 */
function classicEvents(snapshot: PaymentSnapshot): PaymentEvent[] {
  return modelEvents(snapshot).filter(
    (event) =>
      !(event.type === 'PAY' && event.capture === 'manual') &&
      event.type !== 'CAPTURE' &&
      event.type !== 'REFUND' &&
      event.type !== 'CAPTURE_WINDOW_ELAPSED',
  );
}

const classicTestModel = createTestModel(modelMachine, {
  input: modelInput,
  events: classicEvents,
  filterEvents: (snapshot, event) =>
    classicEvents(snapshot).some((candidate) => isDeepStrictEqual(candidate, event)),
  serializeState: serializeVertex,
});

export function simplePaths(): ModelPath[] {
  return classicTestModel.getSimplePaths();
}

function formatEvent(event: PaymentEvent): string {
  switch (event.type) {
    case 'PAY':
      return `PAY(${event.amountCents === UNFUNDED_AMOUNT_CENTS ? 'unfunded' : event.amountCents}${event.capture === 'manual' ? ' manual' : ''})`;
    case 'CAPTURE':
      return `CAPTURE(${event.amountCents ?? 'all'})`;
    case 'REFUND':
      return `REFUND(${event.refundId} ${event.amountCents ?? 'rest'})`;
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

const CLIENT_EVENTS = new Set([
  'PAY',
  'CAPTURE',
  'REFUND',
  'CANCEL',
  'EXPIRE',
  'CAPTURE_WINDOW_ELAPSED',
]);

/** Events a client (or a timer the test fires) sends; the rest the service makes itself. */
export function isClientEvent(event: PaymentEvent): event is ClientEvent {
  return CLIENT_EVENTS.has(event.type);
}

const HOLDING: ReadonlySet<string> = new Set(['authorized', 'capturing', 'voiding']);

/**
 * What the model's account has available after reaching `snapshot`: the
 * start less what is held (an authorization) and what is captured, plus
 * what was refunded.
 */
export function expectedBalanceCents(snapshot: PaymentSnapshot): number {
  const { payment, capturedAt, capturedCents, refundedCents } = snapshot.context;
  const held = HOLDING.has(snapshot.value) ? (payment?.amountCents ?? 0) : 0;
  const captured = capturedAt === null ? 0 : capturedCents;
  return MODEL_INITIAL_BALANCE_CENTS - held - captured + refundedCents;
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
    events: Object.fromEntries(
      [
        ...CLIENT_EVENTS,
        'CHARGE_SUCCEEDED',
        'CHARGE_AUTHORIZED',
        'CHARGE_DECLINED',
        'CAPTURE_SUCCEEDED',
        'VOID_COMPLETED',
        'REFUND_COMPLETED',
      ].map((type) => [type, send]),
    ),
  };
  return params;
}
