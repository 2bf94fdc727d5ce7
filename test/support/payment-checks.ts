/**
 * What fault tests read back after the dust settles: a token's record and
 * its account's ledger over HTTP, and what only Redis shows (the life id, the
 * owed actions and the outbox, the expiry timer). Every check returns the violations it found as
 * sentences, so a scenario can count them over many iterations.
 */
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { createKeys, type Keys } from '../../src/payments/keys.ts';
import { expiryJobIdOf, paymentTimerQueue, type TimerJobData } from './timer-jobs.ts';
import type { AppProcess } from './app-process.ts';

export interface PaymentView {
  readonly token: string;
  readonly status: string;
  readonly payment: { readonly accountId: string; readonly amountCents: number } | null;
  readonly history: readonly { readonly event: string; readonly state: string }[];
  readonly expiresAt: string | null;
  readonly removeAt: string | null;
}

export interface AccountView {
  readonly balanceCents: number;
  readonly ledger: readonly { operationId: string; kind: string; token: string }[];
}

export interface Movements {
  readonly withdrawals: number;
  readonly deposits: number;
  readonly balanceCents: number;
}

/** The record as GET /payments/{token} shows it, or null on 404. */
export async function paymentOf(app: AppProcess, token: string): Promise<PaymentView | null> {
  const reply = await app.request('GET', `/payments/${token}`);
  if (reply.status === 404) return null;
  if (reply.status !== 200) throw new Error(`GET /payments/${token} answered ${reply.status}`);
  return reply.body as PaymentView;
}

/** The movements of `token` in the ledger of `accountId`, and that account's balance. */
export async function movementsOf(
  app: AppProcess,
  accountId: string,
  token: string,
): Promise<Movements> {
  const reply = await app.request('GET', `/accounts/${accountId}`);
  if (reply.status !== 200) throw new Error(`GET /accounts/${accountId} answered ${reply.status}`);
  const { balanceCents, ledger } = reply.body as AccountView;
  const mine = ledger.filter((e) => e.token === token);
  return {
    withdrawals: mine.filter((e) => e.kind === 'withdrawal').length,
    deposits: mine.filter((e) => e.kind === 'deposit').length,
    balanceCents,
  };
}

/** Direct reads of one key prefix in Redis, for what the API does not show. */
export class StoreInspector {
  readonly keys: Keys;
  readonly redis: Redis;
  readonly queue: Queue<TimerJobData>;

  constructor(
    redisUrl: string,
    private readonly prefix: string,
  ) {
    this.keys = createKeys(prefix);
    this.redis = new Redis(redisUrl, { maxRetriesPerRequest: null });
    this.queue = paymentTimerQueue(redisUrl, prefix);
  }

  async lifeOf(token: string): Promise<string | null> {
    return this.redis.hget(this.keys.state(token), 'l');
  }

  async versionOf(token: string): Promise<number | null> {
    const version = await this.redis.hget(this.keys.state(token), 'v');
    return version === null ? null : Number(version);
  }

  async isOwed(token: string): Promise<boolean> {
    const [score, flag] = await Promise.all([
      this.redis.zscore(this.keys.outbox, token),
      this.redis.hget(this.keys.state(token), 'o'),
    ]);
    return score !== null || flag !== null;
  }

  async isLocked(token: string): Promise<boolean> {
    return (await this.redis.exists(this.keys.lock(token))) === 1;
  }

  /** The job id of the token's live expiry timer (the record's), or null when it has none. */
  async expiryJobIdOf(token: string): Promise<string | null> {
    await this.commandsDone(token);
    return expiryJobIdOf(this.redis, this.prefix, token);
  }

  /**
   * Waits (up to 2 s) until no command holds the token's lock: a command
   * answers before it arms the timers its last write owes and releases the
   * lock, so its timer is in the queue once the lock is free.
   */
  async commandsDone(token: string): Promise<void> {
    const until = Date.now() + 2_000;
    while ((await this.isLocked(token)) && Date.now() < until) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }

  /** State of the job of the token's live expiry timer, or null when it has none. */
  async timerOf(token: string): Promise<string | null> {
    const jobId = await this.expiryJobIdOf(token);
    if (jobId === null) return null;
    const job = await this.queue.getJob(jobId);
    return job === undefined ? null : await job.getState();
  }

  async close(): Promise<void> {
    await this.queue.close();
    // The queue was handed a connection of its own; close() leaves it open.
    await this.queue.disconnect();
    this.redis.disconnect();
  }
}

export interface ExpectedToken {
  /** The record's status, or null for a token with no record. */
  readonly status: string | null;
  readonly withdrawals: number;
  readonly deposits: number;
  readonly balanceCents: number;
  /** True when the token's expiry timer must be waiting. */
  readonly timer: boolean;
}

/**
 * The token ended as `expected`: status, money moved (each way at most once),
 * balance, expiry timer, and nothing left owed.
 */
export async function checkToken(
  app: AppProcess,
  store: StoreInspector,
  token: string,
  accountId: string,
  expected: ExpectedToken,
): Promise<string[]> {
  const problems: string[] = [];
  const [view, moved] = await Promise.all([
    paymentOf(app, token),
    movementsOf(app, accountId, token),
  ]);
  // A command's last write arms its timers right after the answer, before
  // it releases the lock: read them once no command holds it.
  await store.commandsDone(token);
  const [owed, timer] = await Promise.all([store.isOwed(token), store.timerOf(token)]);
  const status = view?.status ?? null;
  if (status !== expected.status) {
    problems.push(`${token}: status ${String(status)}, expected ${String(expected.status)}`);
  }
  if (moved.withdrawals !== expected.withdrawals) {
    problems.push(`${token}: ${moved.withdrawals} withdrawals, expected ${expected.withdrawals}`);
  }
  if (moved.deposits !== expected.deposits) {
    problems.push(`${token}: ${moved.deposits} deposits, expected ${expected.deposits}`);
  }
  if (moved.balanceCents !== expected.balanceCents) {
    problems.push(`${token}: balance ${moved.balanceCents}, expected ${expected.balanceCents}`);
  }
  if (owed) problems.push(`${token}: still owed (outbox or record flag)`);
  if (expected.timer && timer !== 'delayed') {
    problems.push(`${token}: expiry timer ${String(timer)}, expected delayed`);
  }
  return problems;
}
