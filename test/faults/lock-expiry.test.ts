/**
 * A lock holder stopped with SIGSTOP inside the critical section
 * (PAYSTATE_TEST_PAUSE_AT) while its lease runs out: SIGSTOP freezes the
 * lease's automatic extension too, so another process takes the token and
 * finishes. When the first process resumes, its late write must be refused by
 * the versioned compare-and-set; it starts again from a fresh read. Money
 * moves once, the final state is one a serial order of the two requests
 * gives, and both clients are told the truth about it.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PaymentStep as FaultPointName } from '../../src/payments/payments.ts';
import {
  AppProcesses,
  errorCode,
  isRetryable,
  untilAnswered,
  waitUntilStopped,
  type AppProcess,
  type HttpReply,
  accountOf,
  tokenRequests,
} from '../support/app-process.ts';
import { iterations, reportScenario } from '../support/fault-report.ts';
import {
  checkToken,
  movementsOf,
  paymentOf,
  StoreInspector,
  type ExpectedToken,
} from '../support/payment-checks.ts';
import { startRedisServer, type TestRedisServer } from '../support/redis-server.ts';
import { randomPrefix, waitFor } from '../support/service-harness.ts';

const INITIAL_BALANCE_CENTS = 100_000;
const AMOUNT_CENTS = 1_700;
const LOCK_TTL_MS = 1_000;
const RUNS = iterations(2, 20);

type Follower = 'retried payment' | 'cancel';

const CASES: readonly { point: FaultPointName; follower: Follower }[] = [
  { point: 'after-persist-intent', follower: 'retried payment' },
  { point: 'after-persist-intent', follower: 'cancel' },
  { point: 'after-ledger', follower: 'retried payment' },
  { point: 'after-ledger', follower: 'cancel' },
];

const FINAL: Record<Follower, ExpectedToken> = {
  'retried payment': {
    status: 'processed',
    withdrawals: 1,
    deposits: 0,
    balanceCents: INITIAL_BALANCE_CENTS - AMOUNT_CENTS,
    timer: true,
  },
  cancel: {
    status: 'refunded',
    withdrawals: 1,
    deposits: 1,
    balanceCents: INITIAL_BALANCE_CENTS,
    timer: true,
  },
};

const statusIn = (reply: HttpReply) => (reply.body as { status?: unknown } | null)?.status;
const describeReply = (reply: HttpReply) =>
  `${reply.status} ${errorCode(reply) ?? String(statusIn(reply))}`;

/**
 * The paused client's answer to its payment, given the token ended `final`:
 * charged (or replayed) is true in the serial order "payment, then the other
 * request"; refused as refunded is true in the order "cancel, then payment";
 * a retryable error promises nothing.
 */
function pausedAnswerProblems(reply: HttpReply, final: string): string | null {
  if (isRetryable(reply)) return null;
  if (reply.status === 201 || reply.status === 200) {
    const replayed = reply.headers['idempotent-replayed'] === 'true';
    if (statusIn(reply) === 'processed' && replayed === (reply.status === 200)) return null;
  }
  if (reply.status === 409 && errorCode(reply) === 'payment_refunded' && final === 'refunded') {
    return null;
  }
  return `the paused client was told ${describeReply(reply)} while the token ended ${final}`;
}

/** The other client's answer: its retry sees the payment charged, its cancel refunds it. */
function followerAnswerProblems(follower: Follower, reply: HttpReply): string | null {
  if (follower === 'cancel') {
    return reply.status === 200 && statusIn(reply) === 'refunded'
      ? null
      : `the cancel was answered ${describeReply(reply)}`;
  }
  const replayed = reply.headers['idempotent-replayed'] === 'true';
  return (reply.status === 200 || reply.status === 201) &&
    statusIn(reply) === 'processed' &&
    replayed === (reply.status === 200)
    ? null
    : `the retried payment was answered ${describeReply(reply)}`;
}

describe('a lock holder paused past its lease while another process takes the token', () => {
  let redis: TestRedisServer;
  let apps: AppProcesses;
  let store: StoreInspector;
  /** A process that stops itself at the given step of every payment. */
  const pausing = new Map<FaultPointName, AppProcess>();
  let other: AppProcess;

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
      PAYSTATE_ROLES: 'api',
    });
    const points = [...new Set(CASES.map((c) => c.point))];
    const started = Promise.all(
      points.map(async (point) => {
        pausing.set(
          point,
          await apps.start(`paused at ${point}`, { PAYSTATE_TEST_PAUSE_AT: `${point}:PAY` }),
        );
      }),
    );
    other = await apps.start('other');
    await started;
  });

  afterAll(async () => {
    await apps.killAll();
    await store.close();
    await redis.destroy();
  });

  const { pay, cancel } = tokenRequests(AMOUNT_CENTS);

  it.each(CASES)(
    'a payment paused at $point loses its lease to a $follower: its late write is refused, money moves once and both clients get true answers',
    async ({ point, follower }) => {
      const paused = pausing.get(point);
      if (paused === undefined) throw new Error(`no process pauses at ${point}`);
      const problems: string[] = [];
      const pausedAnswers = new Map<string, number>();
      for (let i = 0; i < RUNS; i++) {
        const token = `pause-${point}-${randomBytes(4).toString('hex')}`;
        const found = (problem: string | null) => {
          if (problem !== null) problems.push(`${token}: ${problem}`);
        };

        const first: Promise<HttpReply | Error> = pay(paused, token).catch((error: unknown) =>
          error instanceof Error ? error : new Error(String(error)),
        );
        await waitUntilStopped(paused);
        // Stopped inside the critical section (shown as processing): the intent is stored, the
        // charge made only once past the ledger.
        const during = await paymentOf(other, token);
        found(
          during?.status === 'processing' ? null : `paused with status ${String(during?.status)}`,
        );
        const movedWhilePaused = await movementsOf(other, accountOf(token), token);
        const chargedWhilePaused = point === 'after-ledger' ? 1 : 0;
        found(
          movedWhilePaused.withdrawals === chargedWhilePaused
            ? null
            : `${movedWhilePaused.withdrawals} withdrawals while paused`,
        );
        // The lease runs out while the holder cannot extend it.
        await waitFor(async () => ((await store.isLocked(token)) ? undefined : true), {
          timeoutMs: 10 * LOCK_TTL_MS,
          what: `the lease on ${token} to expire`,
        });

        const second = await untilAnswered(
          () => (follower === 'cancel' ? cancel(other, token) : pay(other, token)),
          `${follower} of ${token}`,
        );
        found(followerAnswerProblems(follower, second));
        const settled = await paymentOf(other, token);
        const settledVersion = await store.versionOf(token);
        found(paused.isStopped() ? null : 'the paused process ran before SIGCONT');

        paused.process.child.kill('SIGCONT');
        let answer = await first;
        if (answer instanceof Error) {
          found(`the paused client got no answer: ${answer.message}`);
        } else {
          const key = describeReply(answer);
          pausedAnswers.set(key, (pausedAnswers.get(key) ?? 0) + 1);
          if (isRetryable(answer)) {
            // A client told to retry does so; that answer must be true as well.
            answer = await untilAnswered(() => pay(paused, token), `retry of ${token}`);
          }
          found(pausedAnswerProblems(answer, settled?.status ?? 'no record'));
        }

        // The late writer changed nothing: same record, same version.
        const after = await paymentOf(other, token);
        found(
          JSON.stringify(after) === JSON.stringify(settled)
            ? null
            : `the record changed after the paused process resumed: ${JSON.stringify(after?.history)}`,
        );
        const version = await store.versionOf(token);
        found(
          version === settledVersion
            ? null
            : `version ${String(version)} after resuming, ${String(settledVersion)} before`,
        );
        problems.push(
          ...(await checkToken(other, store, token, accountOf(token), FINAL[follower])),
        );
      }
      reportScenario(`pause payment at ${point} past the lease, then a ${follower}`, {
        iterations: RUNS,
        violations: problems.length,
        details: {
          pausedClientAnswers: [...pausedAnswers].map(([k, n]) => `${k} x${n}`).join(', '),
        },
      });
      expect(problems.length, problems.join('\n')).toBe(0);
    },
    RUNS * 20_000,
  );
});
