/**
 * Random interleavings as a property. Three service processes share one
 * Redis and one key prefix; generated schedules of PAY, CANCEL and EXPIRE
 * from concurrent clients hit random instances (EXPIRE goes through the
 * expiry queue, as the timer delivers it). Whatever the interleaving, each
 * token must end as SOME serial order of its requests would leave it under
 * the pure machine (ReferenceService): the same answer to every request that
 * got a definitive one, the same final state and history, the same balances.
 * Orders respect real time: a request answered before another was sent comes
 * first. A request answered with a retryable error may or may not have taken
 * effect; both are tried.
 */
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { Queue } from 'bullmq';
import fc from 'fast-check';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ClientEvent } from '../../src/machine/payment.types.ts';
import { createKeys } from '../../src/payments/keys.ts';
import { iterations, reportScenario } from '../support/fault-report.ts';
import { spawnScript, type ServiceProcess } from '../support/processes.ts';
import { freePort, startRedisServer } from '../support/redis-server.ts';
import { ReferenceService, type ReferenceReply } from '../support/reference-service.ts';
import { expiryQueue, randomPrefix, testConfig, waitFor } from '../support/service-harness.ts';
import { expiryJobData, type TimerJobData as ExpiryJobData } from '../support/timer-jobs.ts';

const NUM_RUNS = iterations(200, 2000);
const INITIAL_BALANCE_CENTS = 1_000;
/** Two amounts the initial balance covers and one it does not, so some payments are declined. */
const AMOUNTS = [300, 1_000, 1_500] as const;
const DAY_MS = 24 * 3600 * 1000;
/**
 * Lock wait per instance: the last one does not wait, so under contention it
 * answers 409 token_busy and the oracle has retryable answers to weigh.
 */
const LOCK_WAIT_MS = ['5000', '5000', '0'] as const;
const REQUEST_TIMEOUT_MS = 20_000;

type Route = 'native' | 'seed';

interface Body {
  /** Index of one of the token's two accounts. */
  readonly account: 0 | 1;
  readonly amount: number;
}

type Step =
  | {
      readonly kind: 'PAY';
      /** `base`: the token's usual body, so most payments repeat it; or another one. */
      readonly body: Body | 'base';
      readonly route: Route;
      readonly instance: number;
      readonly wave: number;
      readonly delayMs: number;
    }
  | {
      readonly kind: 'CANCEL';
      readonly route: Route;
      readonly instance: number;
      readonly wave: number;
      readonly delayMs: number;
    }
  | { readonly kind: 'EXPIRE'; readonly wave: number; readonly delayMs: number };

interface TokenSchedule {
  readonly base: Body;
  readonly steps: readonly Step[];
}

// ---------------------------------------------------------------------------
// Generators

const body = fc.record({
  account: fc.constantFrom<0 | 1>(0, 0, 1),
  amount: fc.constantFrom(...AMOUNTS),
});
const route = fc.constantFrom<Route>('native', 'seed');
const instance = fc.nat({ max: LOCK_WAIT_MS.length - 1 });
/** Requests of one wave are fired together; a wave starts when the previous one is answered. */
const wave = fc.nat({ max: 2 });
const delayMs = fc.integer({ min: 0, max: 20 });

const step: fc.Arbitrary<Step> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.record({
      kind: fc.constant('PAY' as const),
      body: fc.oneof(
        { weight: 3, arbitrary: fc.constant('base' as const) },
        { weight: 1, arbitrary: body },
      ),
      route,
      instance,
      wave,
      delayMs,
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({ kind: fc.constant('CANCEL' as const), route, instance, wave, delayMs }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('EXPIRE' as const), wave, delayMs }) },
);

const tokenSchedule: fc.Arbitrary<TokenSchedule> = fc.record({
  base: body,
  steps: fc.array(step, { minLength: 2, maxLength: 6 }),
});
const schedule = fc.array(tokenSchedule, { minLength: 1, maxLength: 3 });

// ---------------------------------------------------------------------------
// What a request answered, and what the model would answer

/** One request as it happened. */
interface Op {
  readonly step: Step;
  /** The event the model gets for it. */
  readonly event: ClientEvent;
  /** The answer seen, normalised (see answerOf / expectedAnswer); null for EXPIRE. */
  readonly answer: string | null;
  /**
   * `maybe`: a retryable error, the request may or may not have taken effect.
   * `timer`: the delivery of the token's live expiry timer, which changes
   * nothing if a later deadline replaced that timer before it ran.
   */
  readonly certainty: 'acked' | 'maybe' | 'timer';
  readonly sentAt: number;
  readonly doneAt: number;
}

interface HttpAnswer {
  readonly status: number;
  readonly headers: Headers;
  readonly body: unknown;
}

function errorCode(body: unknown): string | null {
  const code = (body as { error?: { code?: unknown } } | null)?.error?.code;
  if (code === undefined || code === null) return null;
  return typeof code === 'string' ? code : JSON.stringify(code);
}

/** 409 token_busy / conflict and 503 ask the client to retry: the request may have done nothing. */
function isRetryable(answer: HttpAnswer): boolean {
  const code = errorCode(answer.body);
  return (
    answer.status === 503 ||
    (answer.status === 409 && (code === 'token_busy' || code === 'conflict'))
  );
}

interface ViewBody {
  readonly status?: unknown;
  readonly payment?: unknown;
  readonly success?: unknown;
  readonly reason?: unknown;
}

/** The parts of an HTTP answer a serial order determines. */
function answerOf(s: Step, answer: HttpAnswer): string {
  const b = (answer.body ?? {}) as ViewBody;
  const code = errorCode(answer.body);
  if (code !== null) return `${answer.status} ${code}`;
  if (s.kind === 'EXPIRE') return 'none';
  if (s.route === 'seed') {
    const status = s.kind === 'CANCEL' ? ` ${String(b.status)}` : '';
    return `${answer.status} ${String(b.success)} ${String(b.reason)}${status}`;
  }
  if (s.kind === 'CANCEL') return `${answer.status} ${String(b.status)}`;
  const replayed = answer.headers.get('idempotent-replayed') ?? '-';
  return `${answer.status} ${replayed} ${JSON.stringify(b.payment)} ${String(b.status)}`;
}

/** The same, for the model's reply, as docs/api.md maps outcomes to HTTP. */
function expectedAnswer(s: Step, reply: ReferenceReply | undefined): string {
  if (s.kind === 'EXPIRE') return 'none';
  if (reply === undefined) return 'no reply';
  const status = reply.snapshot.value;
  const payment = JSON.stringify(reply.snapshot.context.payment);
  if (s.kind === 'CANCEL') {
    if (s.route === 'native')
      return reply.outcome === 'expired' ? '410 token_expired' : `200 ${status}`;
    switch (reply.outcome) {
      case 'cancelled':
        return `200 true Payment cancelled ${status}`;
      case 'refunded':
        return `200 true Payment refunded ${status}`;
      case 'expired':
        return `200 false Payment token expired ${status}`;
      default:
        return `unexpected outcome ${reply.outcome}`;
    }
  }
  const rejected = status === 'refunded' ? 'refunded' : 'cancelled';
  if (s.route === 'native') {
    switch (reply.outcome) {
      case 'charged':
        return `201 - ${payment} ${status}`;
      case 'replayed':
        return `200 true ${payment} ${status}`;
      case 'declined':
        return '402 payment_declined';
      case 'body_mismatch':
        return '422 idempotency_key_reused';
      case 'rejected':
        return `409 payment_${rejected}`;
      case 'expired':
        return '410 token_expired';
      default:
        return `unexpected outcome ${reply.outcome}`;
    }
  }
  switch (reply.outcome) {
    case 'charged':
      return '200 true Payment successful';
    case 'replayed':
      return '200 true Payment already completed in prior call';
    case 'declined':
      return '200 false Payment declined: insufficient_funds';
    case 'body_mismatch':
      return '422 idempotency_key_reused';
    case 'rejected':
      return `200 false Payment already ${rejected}`;
    case 'expired':
      return '200 false Payment token expired';
    default:
      return `unexpected outcome ${reply.outcome}`;
  }
}

/** Everything about a token's end a serial order determines. */
interface FinalState {
  readonly status: string | null;
  readonly payment: unknown;
  /** `EVENT>state` for every state entered. */
  readonly history: readonly string[];
  readonly balances: readonly number[];
  /** Ledger movements over the token's accounts: charges plus refunds. */
  readonly movements: number;
}

const LIFE = 'life';

function isStale(event: ClientEvent): boolean {
  return (event as { stale?: boolean }).stale === true;
}

function newReference(): ReferenceService {
  return new ReferenceService({
    initialBalanceCents: INITIAL_BALANCE_CENTS,
    newInput: (token) => ({
      token,
      lifeId: LIFE,
      at: 0,
      expiryMs: DAY_MS,
      captureWindowMs: DAY_MS,
      retentionMs: DAY_MS,
    }),
  });
}

function referenceFinal(
  reference: ReferenceService,
  token: string,
  accounts: readonly string[],
): FinalState {
  const snapshot = reference.snapshotOf(token);
  const history = snapshot?.context.history.map((h) => `${h.event}>${h.state}`) ?? [];
  return {
    status: snapshot?.value ?? null,
    payment: snapshot?.context.payment ?? null,
    history,
    balances: accounts.map((a) => reference.ledger.balanceOf(a)),
    movements: history.filter(
      (h) => h.startsWith('CHARGE_SUCCEEDED>') || h.startsWith('REFUND_COMPLETED>'),
    ).length,
  };
}

/**
 * A serial order of the ops that explains everything seen, or null. Every
 * acknowledged op is in it; a retryable one is in it or not; an op answered
 * before another was sent comes before it; each acknowledged op gets the
 * answer it got; the order ends in `final`.
 */
function findSerialOrder(
  token: string,
  accounts: readonly string[],
  ops: readonly Op[],
  final: FinalState,
): { order: number[]; explored: number } | null {
  const maybe = ops.flatMap((op, i) => (op.certainty !== 'acked' ? [i] : []));
  const target = JSON.stringify(final);
  let explored = 0;

  const replay = (order: readonly number[]) => {
    const reference = newReference();
    let last: ReferenceReply | undefined;
    for (const i of order) last = reference.send(token, (ops[i] as Op).event);
    return { reference, last };
  };

  for (let subset = 0; subset < 1 << maybe.length; subset++) {
    const included = ops
      .map((_, i) => i)
      .filter((i) => ops[i]?.certainty === 'acked' || (subset >> maybe.indexOf(i)) & 1);
    const before = (a: number, b: number) => (ops[a] as Op).doneAt < (ops[b] as Op).sentAt;
    const search = (order: number[]): number[] | null => {
      explored++;
      if (order.length === included.length) {
        return JSON.stringify(referenceFinal(replay(order).reference, token, accounts)) === target
          ? order
          : null;
      }
      for (const next of included) {
        if (order.includes(next)) continue;
        // Real time: everything answered before `next` was sent must already be placed.
        if (
          included.some((other) => !order.includes(other) && other !== next && before(other, next))
        ) {
          continue;
        }
        const candidate = [...order, next];
        const op = ops[next] as Op;
        if (op.event.type === 'EXPIRE' && !isStale(op.event)) {
          // The job is the record's live timer: it runs after the record exists.
          if (replay(order).reference.snapshotOf(token) === undefined) continue;
        } else if (op.certainty === 'acked' && op.answer !== null) {
          if (expectedAnswer(op.step, replay(candidate).last) !== op.answer) continue;
        }
        const found = search(candidate);
        if (found) return found;
      }
      return null;
    };
    const order = search([]);
    if (order) return { order, explored };
  }
  return null;
}

// ---------------------------------------------------------------------------

describe('random interleavings over three processes', () => {
  let redis: Redis;
  let prefix: string;
  let queue: Queue<ExpiryJobData>;
  const processes: ServiceProcess[] = [];
  const urls: string[] = [];
  const runTag = randomBytes(3).toString('hex');

  /** Undo steps for what beforeAll started, run in reverse even if it stopped half-way. */
  const cleanup: (() => Promise<void>)[] = [];

  beforeAll(async () => {
    const redisServer = await startRedisServer();
    cleanup.push(() => redisServer.destroy());
    prefix = randomPrefix();
    const ports = await Promise.all(LOCK_WAIT_MS.map(() => freePort()));
    for (const [i, port] of ports.entries()) {
      const p = spawnScript('src/main.ts', [], {
        PORT: String(port),
        HOST: '127.0.0.1',
        REDIS_URL: redisServer.url,
        REDIS_KEY_PREFIX: prefix,
        PAYSTATE_MANAGED_REDIS: 'never',
        ACCOUNT_INITIAL_BALANCE_CENTS: String(INITIAL_BALANCE_CENTS),
        PAYMENT_EXPIRY_MS: String(DAY_MS),
        EXPIRED_RETENTION_MS: String(DAY_MS),
        LOCK_WAIT_MS: LOCK_WAIT_MS[i] ?? '5000',
      });
      cleanup.push(() => stopProcess(p));
      urls.push(`http://127.0.0.1:${port}`);
      processes.push(p);
    }
    await Promise.all(processes.map((p) => p.waitForOutput('paystate started', 60_000)));
    redis = new Redis(redisServer.url);
    cleanup.push(async () => {
      await redis.quit();
    });
    queue = expiryQueue(redisServer.url, testConfig(redisServer.url, { REDIS_KEY_PREFIX: prefix }));
    cleanup.push(async () => {
      await queue.close();
      // The harness hands the queue a connection of its own; close() leaves it open.
      await queue.disconnect();
    });
  }, 90_000);

  afterAll(async () => {
    for (const undo of cleanup.reverse()) await undo();
  }, 60_000);

  /** SIGTERM, and SIGKILL if it has not exited 10 s later. */
  async function stopProcess(p: ServiceProcess): Promise<void> {
    if (p.child.exitCode !== null || p.child.signalCode !== null) return;
    const timer = setTimeout(() => p.child.kill('SIGKILL'), 10_000);
    p.child.kill('SIGTERM');
    await p.exited();
    clearTimeout(timer);
  }

  async function http(
    method: string,
    url: string,
    headers: Record<string, string> = {},
    json?: unknown,
  ): Promise<HttpAnswer> {
    const response = await fetch(url, {
      method,
      headers: json === undefined ? headers : { 'content-type': 'application/json', ...headers },
      body: json === undefined ? undefined : JSON.stringify(json),
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    });
    const text = await response.text();
    let body: unknown = text;
    try {
      body = text === '' ? null : JSON.parse(text);
    } catch {
      // not JSON: kept as text, and it will match no expected answer
    }
    return { status: response.status, headers: response.headers, body };
  }

  let expireJobs = 0;

  /**
   * EXPIRE as the timer delivers it: the job of the record's live expiry
   * timer, delivered now (standing for its due time passing). Without one
   * (no record, or none armed yet), a job of no live timer, which must
   * change nothing. Returns whether a live timer was delivered.
   */
  async function expire(token: string): Promise<boolean> {
    const [lifeId, timers] = await redis.hmget(createKeys(prefix).state(token), 'l', 't');
    const live =
      timers == null ? undefined : (JSON.parse(timers) as Record<string, { seq: number }>).expire;
    const jobId = `probe.${++expireJobs}.${token}`;
    await queue.add('EXPIRE', expiryJobData(token, lifeId ?? 'none', live?.seq ?? 0), {
      jobId,
      attempts: 20,
      backoff: { type: 'fixed', delay: 50 },
    });
    await waitFor(
      async () => {
        const state = await queue.getJobState(jobId);
        if (state === 'failed') throw new Error(`expiry job ${jobId} failed`);
        return state === 'completed' ? true : undefined;
      },
      { timeoutMs: REQUEST_TIMEOUT_MS, intervalMs: 5, what: `expiry job ${jobId}` },
    );
    return lifeId !== null && live !== undefined;
  }

  async function perform(
    token: string,
    accounts: readonly string[],
    base: Body,
    s: Step,
  ): Promise<Op> {
    await new Promise((resolve) => setTimeout(resolve, s.delayMs));
    const sentAt = performance.now();
    if (s.kind === 'EXPIRE') {
      const live = await expire(token);
      // A timer the engine drops is, to the model, an EXPIRE the reference ignores.
      const event = { type: 'EXPIRE', at: 0, ...(live ? {} : { stale: true }) } as ClientEvent;
      return {
        step: s,
        event,
        answer: null,
        certainty: live ? 'timer' : 'acked',
        sentAt,
        doneAt: performance.now(),
      };
    }
    const url = urls[s.instance] ?? '';
    let event: ClientEvent;
    let answer: HttpAnswer;
    if (s.kind === 'PAY') {
      const b = s.body === 'base' ? base : s.body;
      const payment = { accountId: accounts[b.account] ?? '', amountCents: b.amount };
      event = { type: 'PAY', ...payment, currency: 'USD', capture: 'automatic', at: 0 };
      answer =
        s.route === 'native'
          ? await http('POST', `${url}/payments`, { 'idempotency-key': token }, payment)
          : await http('POST', `${url}/PaymentProcessor/${token}/makePayment`, {}, payment);
    } else {
      event = { type: 'CANCEL', at: 0 };
      answer =
        s.route === 'native'
          ? await http('POST', `${url}/payments/${token}/cancel`)
          : await http('POST', `${url}/PaymentProcessor/${token}/cancelPayment`);
    }
    return {
      step: s,
      event,
      answer: answerOf(s, answer),
      certainty: isRetryable(answer) ? 'maybe' : 'acked',
      sentAt,
      doneAt: performance.now(),
    };
  }

  async function finalOf(token: string, accounts: readonly string[]): Promise<FinalState> {
    const url = urls[0] ?? '';
    const view = await http('GET', `${url}/payments/${token}`);
    const v = view.body as {
      status?: string;
      payment?: unknown;
      history?: { event: string; state: string }[];
    };
    const views = await Promise.all(accounts.map((a) => http('GET', `${url}/accounts/${a}`)));
    const ledgers = views.map((a) => a.body as { balanceCents: number; ledger: unknown[] });
    return {
      status: view.status === 404 ? null : (v.status ?? `GET answered ${view.status}`),
      payment: view.status === 404 ? null : v.payment,
      history: (v.history ?? []).map((h) => `${h.event}>${h.state}`),
      balances: ledgers.map((l) => l.balanceCents),
      movements: ledgers.reduce((n, l) => n + l.ledger.length, 0),
    };
  }

  /** Runs one token's schedule wave by wave; returns what happened and what it left. */
  async function runToken(token: string, t: TokenSchedule) {
    const accounts = [`${token}-a0`, `${token}-a1`];
    const ops: Op[] = [];
    for (const w of [0, 1, 2]) {
      const inWave = t.steps.filter((s) => s.wave === w);
      ops.push(...(await Promise.all(inWave.map((s) => perform(token, accounts, t.base, s)))));
    }
    return { token, accounts, ops, final: await finalOf(token, accounts) };
  }

  function describeFailure(token: string, ops: readonly Op[], final: FinalState): string {
    const t0 = Math.min(...ops.map((o) => o.sentAt));
    const lines = ops.map((o, i) => {
      const what =
        o.event.type === 'PAY' ? `PAY ${o.event.accountId} ${o.event.amountCents}` : o.event.type;
      const where =
        o.step.kind === 'EXPIRE' ? 'queue' : `instance ${o.step.instance} ${o.step.route}`;
      return (
        `  #${i} wave ${o.step.wave}: ${what} via ${where}, sent +${(o.sentAt - t0).toFixed(1)} ms, ` +
        `answered +${(o.doneAt - t0).toFixed(1)} ms: ${o.answer ?? '(job completed)'} [${o.certainty}]`
      );
    });
    return [
      `token ${token}: no serial order of its requests explains what happened`,
      ...lines,
      `  final: ${JSON.stringify(final)}`,
    ].join('\n');
  }

  it('ends every token as some serial order of its requests would, answers included', async () => {
    const started = Date.now();
    const seen = {
      requests: 0,
      tokens: 0,
      retryable: 0,
      declined: 0,
      expired: 0,
      refunded: 0,
      /** Steps of the search for serial orders, over all tokens. */
      searched: 0,
    };
    let run = 0;
    const details = await fc.check(
      fc.asyncProperty(schedule, async (tokens) => {
        const tag = `${runTag}r${++run}`;
        const results = await Promise.all(tokens.map((t, i) => runToken(`${tag}t${i}`, t)));
        for (const { token, accounts, ops, final } of results) {
          seen.tokens++;
          seen.requests += ops.length;
          seen.retryable += ops.filter((o) => o.certainty === 'maybe').length;
          seen.declined += ops.filter((o) =>
            /payment_declined|Payment declined/.test(o.answer ?? ''),
          ).length;
          if (final.status === 'expired') seen.expired++;
          if (final.history.includes('REFUND_COMPLETED>refunded')) seen.refunded++;
          const found = findSerialOrder(token, accounts, ops, final);
          if (found === null) throw new Error(describeFailure(token, ops, final));
          seen.searched += found.explored;
        }
      }),
      { numRuns: NUM_RUNS, includeErrorInReport: true },
    );
    reportScenario('random interleavings', {
      iterations: details.numRuns,
      violations: details.failed ? 1 : 0,
      details: {
        ...seen,
        seconds: ((Date.now() - started) / 1000).toFixed(1),
      },
    });
    expect(details.failed, fc.defaultReportMessage(details)).toBe(false);
    // The schedules did reach the interesting cases.
    expect(seen.declined).toBeGreaterThan(0);
    expect(seen.expired).toBeGreaterThan(0);
  }, 600_000);
});
