/**
 * Real service processes killed with SIGKILL at each named step of a payment
 * and of a refund (PAYSTATE_TEST_CRASH_AT), against a real redis-server. The
 * client's connection drops; another process, started afterwards on the same
 * Redis and key prefix, must finish the job with money moved exactly once:
 * on the client's retry, or by its recovery sweep when nobody retries.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  PAYMENT_STEPS as FAULT_POINTS,
  type PaymentStep as FaultPointName,
} from '../../src/payments/payments.ts';
import {
  AppProcesses,
  untilAnswered,
  type AppProcess,
  type HttpReply,
  accountOf,
  tokenRequests,
} from '../support/app-process.ts';
import { iterations, reportScenario } from '../support/fault-report.ts';
import { checkToken, StoreInspector, type ExpectedToken } from '../support/payment-checks.ts';
import { startRedisServer, type TestRedisServer } from '../support/redis-server.ts';
import { randomPrefix, waitFor } from '../support/service-harness.ts';

const INITIAL_BALANCE_CENTS = 100_000;
const AMOUNT_CENTS = 2_300;
/** A dead process's lease lasts this long; the sweep only takes tokens owed longer than this. */
const LOCK_TTL_MS = 1_000;
/** Generous liveness bound for the sweep, not a performance target. */
const SWEEP_BOUND_MS = 15_000;
const RETRY_RUNS = iterations(2, 20);
const SWEEP_RUNS = iterations(2, 10);

type Kind = 'payment' | 'refund';

const KINDS: readonly Kind[] = ['payment', 'refund'];
const EVENT: Record<Kind, 'PAY' | 'CANCEL'> = { payment: 'PAY', refund: 'CANCEL' };

/**
 * Kills that leave work owed (in the outbox) for whoever comes next: the
 * charge or refund a stored intent asks for, and the expiry timer the
 * `processed` write arms. The `refunded` write owes nothing (the token's
 * timer was armed when it was charged).
 */
function leavesWorkOwed(_kind: Kind, point: FaultPointName): boolean | 'either' {
  // A charge's and a refund's outcome each start the expiry window again: the
  // write owes the timer, armed after it.
  if (point === 'after-persist-outcome') return true;
  // The answer is ready before the expiry timer is armed: a kill right then
  // may leave it owed (the sweep arms it).
  if (point === 'before-response') return 'either';
  return point === 'after-persist-intent' || point === 'after-ledger';
}

/** How a token must end after a kill at `point` once everything owed is done. */
function expectedAfter(kind: Kind, point: FaultPointName, retried: boolean): ExpectedToken {
  const charged = { withdrawals: 1, balanceCents: INITIAL_BALANCE_CENTS - AMOUNT_CENTS };
  if (kind === 'payment') {
    // Killed before anything was written and never retried: nothing happened.
    if (point === 'after-lock' && !retried) {
      return {
        status: null,
        withdrawals: 0,
        deposits: 0,
        balanceCents: INITIAL_BALANCE_CENTS,
        timer: false,
      };
    }
    return { status: 'processed', ...charged, deposits: 0, timer: true };
  }
  if (point === 'after-lock' && !retried) {
    return { status: 'processed', ...charged, deposits: 0, timer: true };
  }
  return {
    status: 'refunded',
    withdrawals: 1,
    deposits: 1,
    balanceCents: INITIAL_BALANCE_CENTS,
    timer: true,
  };
}

describe('a service process killed in the middle of a payment or refund', () => {
  let redis: TestRedisServer;
  let apps: AppProcesses;
  let store: StoreInspector;

  beforeAll(async () => {
    redis = await startRedisServer();
    const prefix = randomPrefix();
    store = new StoreInspector(redis.url, prefix);
    apps = new AppProcesses({
      REDIS_URL: redis.url,
      REDIS_KEY_PREFIX: prefix,
      ACCOUNT_INITIAL_BALANCE_CENTS: String(INITIAL_BALANCE_CENTS),
      LOCK_TTL_MS: String(LOCK_TTL_MS),
      LOCK_WAIT_MS: '5000',
    });
  });

  afterAll(async () => {
    await apps.killAll();
    await store.close();
    await redis.destroy();
  });

  const { pay, cancel } = tokenRequests(AMOUNT_CENTS);
  const request = (kind: Kind, app: AppProcess, token: string) =>
    kind === 'payment' ? pay(app, token) : cancel(app, token);

  const newToken = (kind: Kind, point: FaultPointName) =>
    `${kind}-${point}-${randomBytes(4).toString('hex')}`;

  /**
   * Runs the request of `kind` for `token` on a process that kills itself at
   * `point` (a refund's payment goes through the same process first, unharmed),
   * and checks that the connection dropped and the process died by SIGKILL.
   */
  async function crash(kind: Kind, point: FaultPointName, token: string): Promise<string[]> {
    const problems: string[] = [];
    const crashing = await apps.start(`crash at ${point}:${EVENT[kind]}`, {
      PAYSTATE_ROLES: 'api',
      PAYSTATE_TEST_CRASH_AT: `${point}:${EVENT[kind]}`,
    });
    if (kind === 'refund') {
      const paid = await pay(crashing, token);
      if (paid.status !== 201) problems.push(`${token}: the payment to refund got ${paid.status}`);
    }
    const answer = await request(kind, crashing, token).then(
      (reply) => reply,
      () => null,
    );
    if (answer !== null) {
      problems.push(
        `${token}: the request was answered (${answer.status}) by a process to be killed`,
      );
      crashing.process.child.kill('SIGKILL');
    }
    const { signal } = await crashing.exited();
    if (signal !== 'SIGKILL') problems.push(`${token}: the process ended by ${String(signal)}`);
    return problems;
  }

  /** The retry's answer says what happened: charged (or replayed) once, or refunded. */
  function checkRetryAnswer(
    kind: Kind,
    point: FaultPointName,
    token: string,
    reply: HttpReply,
  ): string[] {
    const status = (reply.body as { status?: unknown } | null)?.status;
    const replayed = reply.headers['idempotent-replayed'] === 'true';
    const problems: string[] = [];
    if (kind === 'refund') {
      if (reply.status !== 200 || status !== 'refunded') {
        problems.push(`${token}: retried cancel got ${reply.status} ${String(status)}`);
      }
      return problems;
    }
    if (status !== 'processed') problems.push(`${token}: retried payment shows ${String(status)}`);
    // Nothing was written before a kill right after locking: the retry is the charge.
    // A kill before the response came after the charge: the retry must be a replay.
    const allowed =
      point === 'after-lock' ? [201] : point === 'before-response' ? [200] : [200, 201];
    if (!allowed.includes(reply.status)) {
      problems.push(`${token}: retried payment got ${reply.status}, expected ${allowed.join('/')}`);
    }
    if (reply.status === 200 && !replayed) {
      problems.push(`${token}: a 200 without Idempotent-Replayed: true`);
    }
    if (reply.status === 201 && replayed) problems.push(`${token}: a 201 marked as replayed`);
    return problems;
  }

  describe.each(KINDS)('a %s', (kind) => {
    it.each(FAULT_POINTS)(
      `killed at %s moves money exactly once and ends ${kind === 'payment' ? 'processed' : 'refunded'} when the client retries on a new process`,
      async (point) => {
        const runs = RETRY_RUNS;
        const problems: string[] = [];
        const answers = new Map<number, number>();
        for (let i = 0; i < runs; i++) {
          const token = newToken(kind, point);
          problems.push(...(await crash(kind, point, token)));

          // The api role runs no recovery sweep: the retry alone must finish the job.
          const survivor = await apps.start('survivor', { PAYSTATE_ROLES: 'api' });
          const retried = await untilAnswered(
            () => request(kind, survivor, token),
            `${token} retry to be answered`,
          );
          answers.set(retried.status, (answers.get(retried.status) ?? 0) + 1);
          problems.push(...checkRetryAnswer(kind, point, token, retried));
          problems.push(
            ...(await checkToken(
              survivor,
              store,
              token,
              accountOf(token),
              expectedAfter(kind, point, true),
            )),
          );
          await survivor.stop();
        }
        reportScenario(`kill ${kind} at ${point}, client retries`, {
          iterations: runs,
          violations: problems.length,
          details: {
            retryAnswers: [...answers].map(([status, n]) => `${status}x${n}`).join(' '),
          },
        });
        expect(problems.length, problems.join('\n')).toBe(0);
      },
      RETRY_RUNS * 15_000,
    );
  });

  it(
    `completes the tokens nobody retries after a kill with the recovery sweep of another process within ${SWEEP_BOUND_MS / 1000} s`,
    async () => {
      const runs = SWEEP_RUNS;
      const problems: string[] = [];
      const recoveredInMs: number[] = [];
      let owedBeforeSweep = 0;
      for (let i = 0; i < runs; i++) {
        const cases = KINDS.flatMap((kind) =>
          FAULT_POINTS.map((point) => ({ kind, point, token: newToken(kind, point) })),
        );
        // Two at a time: each kill needs a process of its own.
        for (let c = 0; c < cases.length; c += 2) {
          const batch = cases.slice(c, c + 2);
          const crashed = await Promise.all(batch.map((k) => crash(k.kind, k.point, k.token)));
          problems.push(...crashed.flat());
        }
        // The sweep has work to do: what the kills left owed.
        for (const { kind, point, token } of cases) {
          const isOwed = await store.isOwed(token);
          if (isOwed) owedBeforeSweep++;
          const expectedOwed = leavesWorkOwed(kind, point);
          if (expectedOwed !== 'either' && isOwed !== expectedOwed) {
            problems.push(`${token}: ${isOwed ? '' : 'not '}owed after a kill at ${point}`);
          }
        }

        const sweeper = await apps.start('sweeper', {
          PAYSTATE_ROLES: 'api,worker',
          RECOVERY_INTERVAL_MS: '200',
        });
        const started = Date.now();
        const pending = async () => {
          const left: string[] = [];
          for (const { kind, point, token } of cases) {
            const found = await checkToken(
              sweeper,
              store,
              token,
              accountOf(token),
              expectedAfter(kind, point, false),
            );
            left.push(...found);
          }
          return left;
        };
        const done = await waitFor(
          async () => ((await pending()).length === 0 ? true : undefined),
          { timeoutMs: SWEEP_BOUND_MS, intervalMs: 100, what: 'the sweep to finish' },
        ).catch(() => false);
        recoveredInMs.push(Date.now() - started);
        if (!done) problems.push(...(await pending()));
        await sweeper.stop();
      }
      const slowest = Math.max(...recoveredInMs);
      reportScenario('kill payment/refund at every step, nobody retries, sweep completes', {
        iterations: runs,
        violations: problems.length,
        details: {
          tokensPerIteration: KINDS.length * FAULT_POINTS.length,
          owedBeforeSweep,
          slowestRecoveryMs: slowest,
          boundMs: SWEEP_BOUND_MS,
        },
      });
      expect(problems.length, problems.join('\n')).toBe(0);
      expect(slowest).toBeLessThan(SWEEP_BOUND_MS);
    },
    SWEEP_RUNS * 60_000,
  );
});
