/**
 * Money and state checks run after a load, against what Redis holds: the
 * money rules of test/support/money-invariants.ts (the ones the tests
 * check: ledgers chain and never go negative, a token is charged at most
 * once, a record's status agrees with its ledger entries), and nothing is
 * left in flight or owed.
 */
import type { LedgerEntry } from '../src/accounts/ledger.ts';
import { contextOf, statusOf } from '../src/payments/payment.snapshot.ts';
import {
  ledgerProblems,
  moneyByToken,
  tokenMoneyProblems,
  type TokenMoney,
} from '../test/support/money-invariants.ts';
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

export type { TokenMoney } from '../test/support/money-invariants.ts';

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
  const all: LedgerEntry[] = [];
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
      const stored = balanceReply == null ? null : Number(balanceReply);
      const entries = (ledgerReply as string[]).map((raw) => JSON.parse(raw) as LedgerEntry);
      for (const problem of ledgerProblems(accountId, INITIAL_BALANCE_CENTS, stored, entries)) {
        report.violation(problem);
      }
      for (const entry of entries) {
        if (entry.kind === 'withdrawal') {
          withdrawals++;
          withdrawnCents += entry.amountCents;
        } else {
          deposits++;
          depositedCents += entry.amountCents;
        }
      }
      all.push(...entries);
    });
  }
  const byToken = moneyByToken(all);
  for (const [token, money] of byToken) {
    for (const problem of tokenMoneyProblems(token, null, money)) report.violation(problem);
  }
  return { withdrawals, deposits, withdrawnCents, depositedCents, byToken };
}

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
        for (const problem of tokenMoneyProblems(token, status, held)) report.violation(problem);
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
