/**
 * The money rules the tests and the bench both check (test/support/money-invariants.ts),
 * on ledgers and tokens made up here.
 */
import { describe, expect, it } from 'vitest';
import type { LedgerEntry } from '../../src/accounts/ledger.ts';
import { ledgerProblems, moneyByToken, tokenMoneyProblems } from '../support/money-invariants.ts';

const entry = (
  kind: LedgerEntry['kind'],
  amountCents: number,
  balanceCents: number,
  token = 't',
  operationId = `${kind}:${token}`,
): LedgerEntry => ({ kind, amountCents, balanceCents, token, operationId, at: 0 });

describe('the money rules', () => {
  it('accept a ledger that chains from the initial balance to the stored one', () => {
    const entries = [entry('withdrawal', 100, 900), entry('deposit', 100, 1_000)];
    expect(ledgerProblems('a', 1_000, 1_000, entries)).toEqual([]);
    expect(ledgerProblems('a', 1_000, null, [])).toEqual([]);
  });

  it('name a broken chain, a negative balance, an operation twice and a stored balance apart', () => {
    const entries = [
      entry('withdrawal', 100, 950),
      entry('withdrawal', 1_000, -50, 'u'),
      entry('withdrawal', 1_000, -50, 'u'),
    ];
    expect(ledgerProblems('a', 1_000, 7, entries)).toEqual([
      'a: entry withdrawal:t says balance 950, the entries before it make 900',
      'a: balance went negative (-50)',
      'a: entry withdrawal:u says balance -50, the entries before it make -1050',
      'a: balance went negative (-50)',
      'a: operation withdrawal:u is in the ledger twice',
      'a: balance 7 but its ledger adds up to -50',
    ]);
  });

  it('find a token charged twice or refunded without a charge', () => {
    const money = moneyByToken([
      entry('withdrawal', 1, 0, 'twice'),
      entry('withdrawal', 1, 0, 'twice'),
      entry('deposit', 1, 0, 'free'),
    ]);
    expect(
      tokenMoneyProblems('twice', null, money.get('twice') ?? { withdrawals: 0, deposits: 0 }),
    ).toEqual(['twice: charged 2 times']);
    expect(
      tokenMoneyProblems('free', null, money.get('free') ?? { withdrawals: 0, deposits: 0 }),
    ).toEqual(['free: refunded 1 times after 0 charges']);
  });

  it("hold a token's state to what its money did", () => {
    expect(tokenMoneyProblems('t', 'processed', { withdrawals: 1, deposits: 0 })).toEqual([]);
    expect(tokenMoneyProblems('t', 'charging', { withdrawals: 1, deposits: 0 })).toEqual([]);
    expect(tokenMoneyProblems('t', 'cancelled', { withdrawals: 1, deposits: 0 })).toEqual([
      't: cancelled with 1 withdrawal(s) and 0 deposit(s)',
    ]);
    expect(tokenMoneyProblems('t', 'refunded', { withdrawals: 1, deposits: 0 })).toEqual([
      't: refunded with 1 withdrawal(s) and 0 deposit(s)',
    ]);
  });
});
