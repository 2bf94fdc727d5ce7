/**
 * Money and state checks run after a load, against what Redis holds: every
 * ledger chains from the initial balance to the stored one and never goes
 * negative, a token is charged at most once and refunded at most once (and
 * only after a charge), a record's status agrees with its ledger entries,
 * nothing is left in flight or owed.
 */
import type { LedgerEntry } from '../src/accounts/ledger.ts';
import { contextOf, statusOf } from '../src/payments/payment.snapshot.ts';
import { INITIAL_BALANCE_CENTS, type Deployment } from './deployment.ts';

/** Violations are listed up to this many; the count is always exact. */
const LISTED = 20;

export class InvariantReport {
  readonly checks: string[] = [];
  private readonly listed: string[] = [];
  private count = 0;

  check(description: string): void {
    this.checks.push(description);
  }

  violation(message: string): void {
    this.count++;
    if (this.listed.length < LISTED) this.listed.push(message);
  }

  get violations(): number {
    return this.count;
  }

  toJSON(): { checks: string[]; violations: number; examples: string[] } {
    return { checks: this.checks, violations: this.count, examples: this.listed };
  }
}

export interface TokenMoney {
  withdrawals: number;
  deposits: number;
}

export interface LedgerTally {
  readonly withdrawals: number;
  readonly deposits: number;
  readonly withdrawnCents: number;
  readonly depositedCents: number;
  readonly byToken: ReadonlyMap<string, TokenMoney>;
}

const BATCH = 200;

function chunks<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/** Reads every ledger of `accountIds` in full and checks it; tallies the money per token. */
export async function auditAccounts(
  deployment: Deployment,
  accountIds: Iterable<string>,
  report: InvariantReport,
): Promise<LedgerTally> {
  report.check(
    'each ledger chains from the initial balance to the stored balance, never below zero',
  );
  report.check('each token has at most one withdrawal, and no more deposits than withdrawals');
  const { client } = deployment.redis;
  const { keys } = deployment;
  const byToken = new Map<string, TokenMoney>();
  let withdrawals = 0;
  let deposits = 0;
  let withdrawnCents = 0;
  let depositedCents = 0;
  for (const batch of chunks([...new Set(accountIds)], BATCH)) {
    const pipeline = client.pipeline();
    for (const id of batch) {
      pipeline.hget(keys.account(id), 'balance');
      pipeline.lrange(keys.accountLedger(id), 0, -1);
    }
    const replies = (await pipeline.exec()) ?? [];
    batch.forEach((accountId, i) => {
      const [balanceError, balanceReply] = replies[2 * i] ?? [];
      const [ledgerError, ledgerReply] = replies[2 * i + 1] ?? [];
      const error = balanceError ?? ledgerError;
      if (error) throw error;
      const stored = balanceReply == null ? INITIAL_BALANCE_CENTS : Number(balanceReply);
      let balance = INITIAL_BALANCE_CENTS;
      for (const raw of ledgerReply as string[]) {
        const entry = JSON.parse(raw) as LedgerEntry;
        balance += entry.kind === 'withdrawal' ? -entry.amountCents : entry.amountCents;
        if (entry.balanceCents !== balance) {
          report.violation(
            `account ${accountId}: entry ${entry.operationId} says ${entry.balanceCents}, the chain gives ${balance}`,
          );
          balance = entry.balanceCents;
        }
        if (balance < 0) report.violation(`account ${accountId} went negative (${balance})`);
        const money = byToken.get(entry.token) ?? { withdrawals: 0, deposits: 0 };
        if (entry.kind === 'withdrawal') {
          money.withdrawals++;
          withdrawals++;
          withdrawnCents += entry.amountCents;
        } else {
          money.deposits++;
          deposits++;
          depositedCents += entry.amountCents;
        }
        byToken.set(entry.token, money);
      }
      if (stored !== balance) {
        report.violation(`account ${accountId}: stored balance ${stored}, ledger gives ${balance}`);
      }
    });
  }
  for (const [token, money] of byToken) {
    if (money.withdrawals > 1) {
      report.violation(`token ${token} was charged ${money.withdrawals} times`);
    }
    if (money.deposits > money.withdrawals) {
      report.violation(
        `token ${token} was refunded ${money.deposits} times after ${money.withdrawals} charges`,
      );
    }
  }
  return { withdrawals, deposits, withdrawnCents, depositedCents, byToken };
}

/** What each final status allows the ledger to hold for its token. */
const MONEY_BY_STATUS: Readonly<Record<string, TokenMoney | null>> = {
  pending: { withdrawals: 0, deposits: 0 },
  processed: { withdrawals: 1, deposits: 0 },
  cancelled: { withdrawals: 0, deposits: 0 },
  refunded: { withdrawals: 1, deposits: 1 },
  // An expired token may have been charged, refunded, or neither.
  expired: null,
};

/**
 * Loads each token's record and checks it against its ledger entries:
 * nothing in flight or owed, money consistent with the status, and (when
 * given) no more `201 Created` answers than charges.
 */
export async function auditTokens(
  deployment: Deployment,
  tokens: Iterable<string>,
  money: LedgerTally,
  report: InvariantReport,
  createdAnswers?: ReadonlyMap<string, number>,
): Promise<Map<string, string | null>> {
  report.check('no record is left charging, refunding or owing effects');
  report.check("each record's status agrees with its ledger entries");
  if (createdAnswers) report.check('at most one 201 Created per token, and only for a charge');
  const statuses = new Map<string, string | null>();
  for (const batch of chunks([...new Set(tokens)], BATCH)) {
    const records = await Promise.all(batch.map((token) => deployment.store.load(token)));
    batch.forEach((token, i) => {
      const record = records[i] ?? null;
      const held = money.byToken.get(token) ?? { withdrawals: 0, deposits: 0 };
      const status = record === null ? null : statusOf(record.snapshot);
      statuses.set(token, status);
      if (record === null) {
        if (held.withdrawals > 0) report.violation(`token ${token} has no record but was charged`);
      } else {
        if (status === 'charging' || status === 'refunding')
          report.violation(`token ${token} is left ${status}`);
        if (record.owed) report.violation(`token ${token} still owes effects`);
        const expected = status === null ? null : MONEY_BY_STATUS[status];
        if (
          expected != null &&
          (expected.withdrawals !== held.withdrawals || expected.deposits !== held.deposits)
        ) {
          report.violation(
            `token ${token} is ${status} with ${held.withdrawals} charge(s) and ${held.deposits} refund(s)`,
          );
        }
        if (contextOf(record.snapshot).token !== token) {
          report.violation(`record of ${token} names another token`);
        }
      }
      const created = createdAnswers?.get(token) ?? 0;
      if (created > 1) report.violation(`token ${token} answered 201 Created ${created} times`);
      if (created > 0 && held.withdrawals === 0) {
        report.violation(`token ${token} answered 201 Created without a charge`);
      }
    });
  }
  return statuses;
}

/** Waits (briefly) for the outbox to drain: every request's effects ran. */
export async function auditOutbox(deployment: Deployment, report: InvariantReport): Promise<void> {
  report.check('the outbox is empty once the load stops');
  // Requests the generator abandoned when it stopped may still be running.
  await new Promise((resolve) => setTimeout(resolve, 250));
  const deadline = Date.now() + 5_000;
  let owed = await deployment.redis.client.zcard(deployment.keys.outbox);
  while (owed > 0 && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    owed = await deployment.redis.client.zcard(deployment.keys.outbox);
  }
  if (owed > 0) report.violation(`${owed} token(s) still in the outbox after the load`);
}
