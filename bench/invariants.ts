/**
 * Money and state checks run after a load, against what Redis holds: the
 * money invariants the tests check (test/support/money-invariants.ts: per
 * account and currency the ledger chains to the stored balances, never
 * negative, available + held + captured − refunded = initial; a token charged
 * at most once, refunded no more than captured), a record's status agrees
 * with its ledger entries, nothing is left in flight or owed.
 */
import {
  auditMoney,
  readAccounts,
  tokenMoneyProblem,
  type TokenMoney,
} from '../test/support/money-invariants.ts';
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

export type { TokenMoney };

export interface LedgerTally {
  readonly withdrawals: number;
  readonly deposits: number;
  readonly withdrawnCents: number;
  readonly depositedCents: number;
  readonly byToken: ReadonlyMap<string, TokenMoney>;
}

const BATCH = 200;

/** The machine's internal steps: an outcome not known yet. */
const IN_FLIGHT = new Set(['charging', 'authorizing', 'capturing', 'voiding', 'refunding']);

function chunks<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/**
 * Reads every ledger of `accountIds` in full and checks the money invariants
 * the tests check (test/support/money-invariants.ts); tallies the money per token.
 */
export async function auditAccounts(
  deployment: Deployment,
  accountIds: Iterable<string>,
  report: InvariantReport,
): Promise<LedgerTally> {
  report.check(
    'per account and currency, the ledger chains from the initial balance to the stored balances, never below zero, and available + held + captured − refunded = initial',
  );
  report.check(
    'each token is charged at most once, settles a hold at most once, and is refunded no more than was captured',
  );
  const accounts = await readAccounts(deployment.redis.client, deployment.keys, accountIds, {
    batch: BATCH,
  });
  const audit = auditMoney(accounts, { initialBalanceCents: INITIAL_BALANCE_CENTS });
  for (const problem of audit.problems) report.violation(problem);
  let withdrawals = 0;
  let deposits = 0;
  let withdrawnCents = 0;
  let depositedCents = 0;
  for (const money of audit.byToken.values()) {
    withdrawals += money.withdrawals + money.captures;
    deposits += money.deposits;
    withdrawnCents += money.capturedCents;
    depositedCents += money.refundedCents;
  }
  return { withdrawals, deposits, withdrawnCents, depositedCents, byToken: audit.byToken };
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
  report.check('no record is left in an internal step (charging, refunding, …) or owing effects');
  report.check("each record's status agrees with its ledger entries");
  if (createdAnswers) report.check('at most one 201 Created per token, and only for a charge');
  const statuses = new Map<string, string | null>();
  for (const batch of chunks([...new Set(tokens)], BATCH)) {
    const records = await Promise.all(batch.map((token) => deployment.store.load(token)));
    batch.forEach((token, i) => {
      const record = records[i] ?? null;
      const tally = money.byToken.get(token);
      const charged = (tally?.withdrawals ?? 0) + (tally?.holds ?? 0);
      const status = record === null ? null : statusOf(record.snapshot);
      statuses.set(token, status);
      if (record === null) {
        if (charged > 0) report.violation(`token ${token} has no record but was charged`);
      } else {
        if (status !== null && IN_FLIGHT.has(status))
          report.violation(`token ${token} is left ${status}`);
        if (record.owed) report.violation(`token ${token} still owes effects`);
        const problem = status === null ? null : tokenMoneyProblem(status, tally);
        if (problem !== null) report.violation(`token ${token} is ${problem}`);
        if (contextOf(record.snapshot).token !== token) {
          report.violation(`record of ${token} names another token`);
        }
      }
      const created = createdAnswers?.get(token) ?? 0;
      if (created > 1) report.violation(`token ${token} answered 201 Created ${created} times`);
      if (created > 0 && charged === 0) {
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
