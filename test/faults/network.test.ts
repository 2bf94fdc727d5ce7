/**
 * Network faults between the service and Redis, through a TCP proxy the test
 * controls (test/support/tcp-proxy.ts): latency, connection resets, and a
 * blackhole that accepts connections and never answers. Redis itself loses
 * nothing here, so after each fault heals: every acknowledged answer still
 * holds, no token is charged twice, every token's state matches its ledger,
 * and every balance is the sum of its ledger. While the fault lasts a client
 * gets a success, a business answer, or a 503 (or a retryable 409) with
 * Retry-After, within a bound: never a hang.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { iterations, reportScenario } from '../support/fault-report.ts';
import {
  describeAnswer,
  kindOf,
  lostAnswers,
  PaymentLoad,
  pollUntil,
  unexpectedAnswers,
  type Answer,
  type TokenRun,
} from '../support/payment-load.ts';
import { startRedisServer, type TestRedisServer } from '../support/redis-server.ts';
import { ReferenceService } from '../support/reference-service.ts';
import { startTestService, testConfig, type TestService } from '../support/service-harness.ts';
import { storeAuditor, type StoreAudit, type StoreAuditor } from '../support/store-audit.ts';
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy.ts';

const INITIAL_BALANCE_CENTS = 15_000;
const LOCK_WAIT_MS = 3_000;
/**
 * No answer may take longer than this, whatever the network does: a lock wait, then a few
 * command timeouts (2 s each: the command, the lease extension in flight, the
 * release), with room for a busy machine.
 */
const ANSWER_BOUND_MS = LOCK_WAIT_MS + 9_000;
const LATENCY_MS = 50;
const CLIENTS = 8;
/** Acknowledged answers the load must get before a fault and after it heals. */
const ACKS_PER_PHASE = 30;
const RECOVERY_TIMEOUT_MS = 20_000;

let redis: TestRedisServer;
let proxy: TcpProxy;
let service: TestService;
let auditor: StoreAuditor;
let runs = 0;

beforeAll(async () => {
  redis = await startRedisServer();
  proxy = await startTcpProxy({ host: '127.0.0.1', port: redis.port });
  service = await startTestService(
    testConfig(proxy.url, {
      ACCOUNT_INITIAL_BALANCE_CENTS: String(INITIAL_BALANCE_CENTS),
      // Short leases and a frequent sweep, so what a fault left is finished within the test.
      LOCK_TTL_MS: '1000',
      LOCK_WAIT_MS: String(LOCK_WAIT_MS),
      RECOVERY_INTERVAL_MS: '100',
    }),
  );
  // The audit reads Redis directly, around the proxy.
  auditor = storeAuditor({
    redisUrl: redis.url,
    keyPrefix: service.config.keyPrefix,
    initialBalanceCents: INITIAL_BALANCE_CENTS,
  });
});

afterAll(async () => {
  // The service closes its connections cleanly only through a passing proxy.
  proxy.setMode({ kind: 'pass' });
  await service.stop();
  await auditor.close();
  await proxy.close();
  await redis.destroy();
});

function newLoad(options: { jobsPerClient?: number; clients?: number } = {}): PaymentLoad {
  runs++;
  return new PaymentLoad({
    url: service.url,
    runId: `n${runs}${Date.now().toString(36)}`,
    clients: options.clients ?? CLIENTS,
    ...(options.jobsPerClient === undefined ? {} : { jobsPerClient: options.jobsPerClient }),
    requestTimeoutMs: 60_000,
  });
}

async function acknowledged(load: PaymentLoad, more: number, when: string): Promise<void> {
  const target = load.count('acknowledged') + more;
  if (!(await pollUntil(() => load.count('acknowledged') >= target, 30_000))) {
    throw new Error(`the load got fewer than ${more} acknowledged answers ${when}`);
  }
}

/** Waits for the sweep to finish what the fault interrupted, then audits the store. */
async function settledAudit(): Promise<StoreAudit> {
  const recovered = await pollUntil(async () => {
    const audit = await auditor.audit({ settled: false });
    return audit.inFlight === 0 && audit.outbox === 0;
  }, RECOVERY_TIMEOUT_MS);
  if (!recovered) console.warn(`recovery did not finish in ${RECOVERY_TIMEOUT_MS} ms`);
  return auditor.audit({ settled: true });
}

/** Broken guarantees of a load once its fault healed and recovery ran. */
function violationsOf(load: PaymentLoad, audit: StoreAudit) {
  const answers = load.answers();
  const slow = answers.filter((a) => a.answeredAt - a.sentAt > ANSWER_BOUND_MS);
  const refundedWithoutCancel = load.runs.filter(
    (run) =>
      !run.answers.some((a) => a.step === 'cancel') &&
      (audit.tokens.get(run.token)?.deposits ?? 0) > 0,
  );
  return {
    answers,
    slow,
    unexpected: unexpectedAnswers(answers),
    lost: lostAnswers(load.runs, audit.tokens),
    problems: [
      ...audit.problems,
      ...refundedWithoutCancel.map((run) => `${run.token}: refunded without a cancel`),
    ],
  };
}

function count(v: ReturnType<typeof violationsOf>): number {
  return v.slow.length + v.unexpected.length + v.lost.length + v.problems.length;
}

function explain(v: ReturnType<typeof violationsOf>): string {
  return [
    ...v.problems.slice(0, 20),
    ...v.slow.slice(0, 10).map((a) => `too slow: ${describeAnswer(a)}`),
    ...v.unexpected.slice(0, 10).map((a) => `unexpected answer: ${describeAnswer(a)}`),
    ...v.lost
      .slice(0, 10)
      .map((l) => `${l.token}: ${describeAnswer(l.answer)}, now ${l.found ?? 'no record'}`),
  ].join('\n');
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? 0;
}

/** The machine's outcome an acknowledged answer stands for. */
function outcomeOf(answer: Answer): string {
  if (answer.step === 'cancel')
    return answer.status === 410 ? 'expired' : (answer.paymentStatus ?? '?');
  switch (answer.status) {
    case 201:
      return 'charged';
    case 200:
      return answer.replayed ? 'replayed' : 'charged without Idempotent-Replayed';
    case 402:
      return 'declined';
    case 409:
      return 'rejected';
    case 410:
      return 'expired';
    case 422:
      return 'body_mismatch';
    default:
      return `HTTP ${answer.status}`;
  }
}

/**
 * Replays each client's requests, in its order, on the in-memory reference
 * (clients share no token and no account, so their order relative to each
 * other does not matter) and lists the answers that differ.
 */
function differencesFromReference(runs: readonly TokenRun[]): string[] {
  const reference = new ReferenceService({
    initialBalanceCents: INITIAL_BALANCE_CENTS,
    newInput: (token) => ({
      token,
      lifeId: 'reference',
      at: 0,
      expiryMs: 86_400_000,
      captureWindowMs: 86_400_000,
      retentionMs: 86_400_000,
    }),
  });
  const differences: string[] = [];
  const ordered = [...runs].sort((a, b) => a.client - b.client || a.job - b.job);
  for (const run of ordered) {
    for (const answer of run.answers) {
      const reply = reference.send(
        run.token,
        answer.step === 'pay'
          ? {
              type: 'PAY',
              accountId: run.accountId,
              amountCents: run.amountCents,
              currency: 'USD',
              capture: 'automatic',
              at: 1,
            }
          : { type: 'CANCEL', at: 1 },
      );
      const expected = reply?.outcome ?? 'no answer';
      const got = outcomeOf(answer);
      if (got !== expected) {
        differences.push(`${run.token}: ${describeAnswer(answer)} (${got}), reference ${expected}`);
      }
    }
  }
  return differences;
}

describe('network faults between the service and Redis', () => {
  it(`answers as without latency, only slower, with ${LATENCY_MS} ms added each way`, async () => {
    const started = Date.now();
    const baseline = newLoad({ clients: 4, jobsPerClient: 3 });
    baseline.start();
    await baseline.finished();

    proxy.setMode({ kind: 'latency', ms: LATENCY_MS });
    const load = newLoad({ clients: 4, jobsPerClient: iterations(4, 25) });
    load.start();
    try {
      await load.finished();
    } finally {
      proxy.setMode({ kind: 'pass' });
    }

    const audit = await settledAudit();
    const v = violationsOf(load, audit);
    const notAcknowledged = v.answers.filter((a) => kindOf(a) !== 'acknowledged');
    const differences = differencesFromReference(load.runs);
    const violations = count(v) + notAcknowledged.length + differences.length;
    const latency = (l: PaymentLoad) => median(l.answers().map((a) => a.answeredAt - a.sentAt));
    reportScenario('network latency', {
      iterations: v.answers.length,
      violations,
      details: {
        'added ms each way': LATENCY_MS,
        'median answer ms without': latency(baseline),
        'median answer ms with': latency(load),
        tokens: load.runs.length,
        ms: Date.now() - started,
      },
    });
    expect(
      violations,
      [
        explain(v),
        ...notAcknowledged.slice(0, 10).map((a) => `not acknowledged: ${describeAnswer(a)}`),
        ...differences.slice(0, 10),
      ].join('\n'),
    ).toBe(0);
    // The latency was on the path: a request makes several round trips to Redis.
    expect(latency(load)).toBeGreaterThan(latency(baseline) + 2 * LATENCY_MS);
  }, 120_000);

  it('answers 503 or success while connections are reset, and works again once they are not', async () => {
    const started = Date.now();
    const cycles = iterations(3, 15);
    const load = newLoad();
    load.start();
    const resetsBefore = proxy.resets();
    try {
      for (let cycle = 0; cycle < cycles; cycle++) {
        await acknowledged(load, ACKS_PER_PHASE, 'before the resets');
        const unavailable = load.count('unavailable');
        proxy.setMode({ kind: 'reset' });
        const answered503 = await pollUntil(
          () => load.count('unavailable') >= unavailable + 2,
          15_000,
        );
        proxy.setMode({ kind: 'pass' });
        expect(answered503, 'the service answers 503 while every connection is reset').toBe(true);
        await acknowledged(load, ACKS_PER_PHASE, 'once connections are no longer reset');
      }
    } finally {
      proxy.setMode({ kind: 'pass' });
      await load.stop();
    }

    const audit = await settledAudit();
    const v = violationsOf(load, audit);
    reportScenario('network connection resets', {
      iterations: cycles,
      violations: count(v),
      details: {
        requests: v.answers.length,
        acknowledged: load.count('acknowledged'),
        '503s': load.count('unavailable'),
        busy: load.count('busy'),
        'connections reset': proxy.resets() - resetsBefore,
        tokens: load.runs.length,
        ms: Date.now() - started,
      },
    });
    expect(count(v), explain(v)).toBe(0);
  }, 120_000);

  it(`answers 503 within ${ANSWER_BOUND_MS / 1000} s while Redis is blackholed, and works again once it is reachable`, async () => {
    const started = Date.now();
    const cycles = iterations(1, 5);
    const load = newLoad();
    load.start();
    let longestBlackholeMs = 0;
    try {
      for (let cycle = 0; cycle < cycles; cycle++) {
        await acknowledged(load, ACKS_PER_PHASE, 'before the blackhole');
        const unavailable = load.count('unavailable');
        const from = Date.now();
        proxy.setMode({ kind: 'blackhole' });
        // Long enough that a request slower than the bound cannot be rescued by the
        // network coming back, and every client has had a request refused.
        await pollUntil(
          () =>
            Date.now() - from > ANSWER_BOUND_MS + 1_000 &&
            load.count('unavailable') >= unavailable + CLIENTS,
          30_000,
        );
        longestBlackholeMs = Math.max(longestBlackholeMs, Date.now() - from);
        proxy.setMode({ kind: 'pass' });
        await acknowledged(load, ACKS_PER_PHASE, 'once Redis is reachable again');
      }
    } finally {
      proxy.setMode({ kind: 'pass' });
      await load.stop();
    }

    const audit = await settledAudit();
    const v = violationsOf(load, audit);
    reportScenario('network blackhole', {
      iterations: cycles,
      violations: count(v),
      details: {
        requests: v.answers.length,
        acknowledged: load.count('acknowledged'),
        '503s': load.count('unavailable'),
        busy: load.count('busy'),
        'longest blackhole ms': longestBlackholeMs,
        'slowest answer ms': Math.max(...v.answers.map((a) => a.answeredAt - a.sentAt)),
        tokens: load.runs.length,
        ms: Date.now() - started,
      },
    });
    expect(count(v), explain(v)).toBe(0);
  }, 180_000);
});
