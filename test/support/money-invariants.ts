/**
 * The money rules, one source for the tests (store-audit.ts, the fault
 * suite's checks) and the bench (bench/invariants.ts): pure checks over what
 * Redis holds, each problem one line.
 *
 * - an account's ledger chains from the initial balance to its stored
 *   balance, each entry's balance the running one, never below zero, and no
 *   operation id twice;
 * - a token is charged at most once and refunded no more often than charged;
 * - a token's state says what its money did (MONEY_BY_STATE).
 */
import type { LedgerEntry } from '../../src/accounts/ledger.ts';

export interface TokenMoney {
  readonly withdrawals: number;
  readonly deposits: number;
}

/** Withdrawals and deposits of a token's current life that each state allows. */
export const MONEY_BY_STATE: Readonly<
  Record<string, { readonly withdrawals: readonly number[]; readonly deposits: readonly number[] }>
> = {
  pending: { withdrawals: [0], deposits: [0] },
  cancelled: { withdrawals: [0], deposits: [0] },
  // A charge whose outcome is not recorded yet may have moved the money.
  charging: { withdrawals: [0, 1], deposits: [0] },
  processed: { withdrawals: [1], deposits: [0] },
  refunding: { withdrawals: [1], deposits: [0, 1] },
  refunded: { withdrawals: [1], deposits: [1] },
  // An expired token may have been charged, refunded, or neither.
  expired: { withdrawals: [0, 1], deposits: [0, 1] },
};

/**
 * Checks one account's ledger (oldest entry first) against its stored
 * balance (`null`: never written, so the initial balance).
 */
export function ledgerProblems(
  accountId: string,
  initialBalanceCents: number,
  storedBalanceCents: number | null,
  entries: readonly LedgerEntry[],
): string[] {
  const problems: string[] = [];
  const seen = new Set<string>();
  let running = initialBalanceCents;
  for (const entry of entries) {
    running += entry.kind === 'deposit' ? entry.amountCents : -entry.amountCents;
    if (entry.balanceCents !== running) {
      problems.push(
        `${accountId}: entry ${entry.operationId} says balance ${entry.balanceCents}, the entries before it make ${running}`,
      );
      // Go on from what the entry says: one bad entry is one problem.
      running = entry.balanceCents;
    }
    if (running < 0) problems.push(`${accountId}: balance went negative (${running})`);
    if (seen.has(entry.operationId)) {
      problems.push(`${accountId}: operation ${entry.operationId} is in the ledger twice`);
    }
    seen.add(entry.operationId);
  }
  const stored = storedBalanceCents ?? initialBalanceCents;
  if (stored !== running) {
    problems.push(`${accountId}: balance ${stored} but its ledger adds up to ${running}`);
  }
  return problems;
}

/** What each token's entries moved, over any number of ledgers. */
export function moneyByToken(entries: Iterable<LedgerEntry>): Map<string, TokenMoney> {
  const byToken = new Map<string, TokenMoney>();
  for (const entry of entries) {
    const { withdrawals, deposits } = byToken.get(entry.token) ?? { withdrawals: 0, deposits: 0 };
    byToken.set(
      entry.token,
      entry.kind === 'withdrawal'
        ? { withdrawals: withdrawals + 1, deposits }
        : { withdrawals, deposits: deposits + 1 },
    );
  }
  return byToken;
}

/** Checks a token's money, and against its state when it has a record (`status` not null). */
export function tokenMoneyProblems(
  token: string,
  status: string | null,
  money: TokenMoney,
): string[] {
  const problems: string[] = [];
  if (money.withdrawals > 1) problems.push(`${token}: charged ${money.withdrawals} times`);
  if (money.deposits > money.withdrawals) {
    problems.push(`${token}: refunded ${money.deposits} times after ${money.withdrawals} charges`);
  }
  if (status === null) return problems;
  const allowed = MONEY_BY_STATE[status];
  if (
    allowed === undefined ||
    !allowed.withdrawals.includes(money.withdrawals) ||
    !allowed.deposits.includes(money.deposits)
  ) {
    problems.push(
      `${token}: ${status} with ${money.withdrawals} withdrawal(s) and ${money.deposits} deposit(s)`,
    );
  }
  return problems;
}
