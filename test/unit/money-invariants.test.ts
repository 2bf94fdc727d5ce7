import { describe, expect, it } from 'vitest';
import {
  auditMoney,
  tokenMoneyProblem,
  type StoredAccount,
  type TokenMoney,
} from '../support/money-invariants.ts';

const INITIAL = 1_000;

/** An entry as the movement script writes it. */
const entry = (
  operationId: string,
  kind: string,
  amountCents: number,
  balanceCents: number,
  heldCents: number,
  { currency = 'USD', token = 't1', releasedCents = 0 } = {},
) =>
  JSON.stringify({
    operationId,
    kind,
    currency,
    amountCents,
    releasedCents,
    balanceCents,
    heldCents,
    token,
    at: 1,
  });

const audit = (account: Partial<StoredAccount>) =>
  auditMoney([{ accountId: 'a', balances: {}, entries: [], ...account }], {
    initialBalanceCents: INITIAL,
  }).problems;

describe('the money invariants', () => {
  it('hold for an account that charged, authorized, captured part, voided and refunded in two currencies', () => {
    expect(
      audit({
        balances: {
          'available:USD': '750',
          'held:USD': '0',
          'available:JPY': '1000',
          'held:JPY': '0',
        },
        entries: [
          entry('w', 'withdrawal', 300, 700, 0),
          entry('h', 'hold', 400, 300, 400, { token: 't2' }),
          entry('c', 'capture', 150, 550, 0, { token: 't2', releasedCents: 250 }),
          entry('r', 'deposit', 200, 750, 0),
          entry('hj', 'hold', 50, 950, 50, { currency: 'JPY', token: 't3' }),
          entry('v', 'release', 50, 1000, 0, { currency: 'JPY', token: 't3' }),
        ],
      }),
    ).toEqual([]);
  });

  it('finds a second charge of a token, and a refund above what it captured', () => {
    expect(
      audit({
        balances: { 'available:USD': '700', 'held:USD': '0' },
        entries: [
          entry('w1', 'withdrawal', 100, 900, 0),
          entry('w2', 'withdrawal', 100, 800, 0),
          entry('r', 'deposit', 300, 1100, 0),
        ],
      }),
    ).toEqual(
      expect.arrayContaining([
        'token t1 was charged 2 times',
        'token t1 was refunded 300 of 200 captured',
      ]),
    );
  });

  it('finds a stored balance its ledger does not make, and the broken identity', () => {
    const problems = audit({
      balances: { 'available:USD': '901', 'held:USD': '0' },
      entries: [entry('w', 'withdrawal', 100, 900, 0)],
    });
    expect(problems).toContain('a USD: stored 901 available, 0 held; its ledger makes 900, 0');
    expect(problems).toContain(
      'a USD: available 901 + held 0 + captured 100 − refunded 0 ≠ initial 1000',
    );
  });

  it('finds funds below zero, and an entry that breaks the chain', () => {
    const problems = audit({
      balances: { 'available:USD': '0', 'held:USD': '-5' },
      entries: [entry('h', 'hold', 5, 995, 5), entry('v', 'release', 10, 1000, -5)],
    });
    expect(problems).toEqual(
      expect.arrayContaining([
        'a USD: went negative (1000 available, -5 held)',
        'token t1 released or captured more than it held',
      ]),
    );
    expect(problems.some((p) => p.includes('entry v says 1000 available'))).toBe(true);
  });

  it('finds an applied operation missing from the ledger and an entry recorded as declined', () => {
    const problems = audit({
      balances: { 'available:USD': '900', 'held:USD': '0' },
      entries: [entry('w', 'withdrawal', 100, 900, 0)],
      operations: new Map([
        ['w', 'declined'],
        ['lost', 'applied'],
      ]),
    });
    expect(problems).toEqual([
      'a: ledger has w, recorded as declined',
      'a: lost is recorded as applied but not in the ledger',
    ]);
  });

  it('reads a balance stored before currencies as the default currency', () => {
    expect(
      audit({
        balances: { balance: '900' },
        entries: [
          JSON.stringify({
            operationId: 'w',
            kind: 'withdrawal',
            amountCents: 100,
            balanceCents: 900,
            token: 't',
            at: 1,
          }),
        ],
      }),
    ).toEqual([]);
  });
});

describe("a token's state against its money", () => {
  const money = (m: Partial<TokenMoney>): TokenMoney => ({
    withdrawals: 0,
    holds: 0,
    captures: 0,
    releases: 0,
    deposits: 0,
    capturedCents: 0,
    refundedCents: 0,
    heldCents: 0,
    ...m,
  });
  const charged = { withdrawals: 1, capturedCents: 500 };

  it.each([
    ['pending', undefined],
    ['processed', money(charged)],
    ['authorized', money({ holds: 1, heldCents: 500 })],
    ['processed', money({ holds: 1, captures: 1, capturedCents: 300 })],
    ['cancelled', money({ holds: 1, releases: 1 })],
    ['partially_refunded', money({ ...charged, deposits: 2, refundedCents: 200 })],
    ['refunded', money({ ...charged, deposits: 2, refundedCents: 500 })],
    ['charging', money(charged)],
    ['charging', undefined],
    ['expired', money({ ...charged, deposits: 1, refundedCents: 500 })],
  ])('%s agrees with %j', (status, m) => {
    expect(tokenMoneyProblem(status, m)).toBeNull();
  });

  it.each([
    ['pending', money(charged)],
    ['processed', money({ ...charged, deposits: 1, refundedCents: 1 })],
    ['processed', money({ holds: 1, heldCents: 500 })],
    ['cancelled', money({ holds: 1, heldCents: 500 })],
    ['partially_refunded', money({ ...charged, deposits: 1, refundedCents: 500 })],
    ['refunded', money({ ...charged, deposits: 1, refundedCents: 400 })],
    ['authorized', money(charged)],
    ['expired', money({ holds: 1, heldCents: 500 })],
    ['lost', undefined],
  ])('%s disagrees with %j', (status, m) => {
    expect(tokenMoneyProblem(status, m)).not.toBeNull();
  });
});
