/**
 * Concurrent requests for one token, spread over two service instances that
 * share one Redis and one key prefix, as separate processes would. Whatever
 * the interleaving, the outcome must be one that some serial order of the
 * same requests gives, with money moved at most once each way.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { PaymentStep as FaultPointName } from '../../src/payments/payments.ts';
import {
  startTestService,
  testConfig,
  waitFor,
  type TestService,
} from '../support/service-harness.ts';

const INITIAL_BALANCE_CENTS = 100_000;
const AMOUNT_CENTS = 1_000;

type Kind = 'pay' | 'cancel';

interface Answer {
  readonly kind: Kind;
  readonly status: number;
  readonly headers: Headers;
  readonly body: unknown;
}

interface LedgerEntryView {
  readonly operationId: string;
  readonly kind: 'withdrawal' | 'deposit';
  readonly amountCents: number;
  readonly token: string;
}

interface PaymentView {
  readonly status: string;
  readonly history: readonly { state: string }[];
}

/** The state sequences a serial order of pays and cancels can produce for one token. */
const SERIAL_HISTORIES: Record<string, readonly string[]> = {
  cancelled: ['pending', 'cancelled'],
  processed: ['pending', 'charging', 'processed'],
  refunded: ['pending', 'charging', 'processed', 'refunding', 'refunded'],
};

const errorCode = (answer: Answer) =>
  (answer.body as { error?: { code?: string } } | null)?.error?.code ?? null;

/** 409 token_busy: the lock wait ran out; the client is told to retry, nothing happened. */
const isBusy = (answer: Answer) =>
  answer.status === 409 &&
  errorCode(answer) === 'token_busy' &&
  answer.headers.get('retry-after') !== null;

function tally(answers: readonly Answer[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const a of answers) {
    const key = `${a.kind} ${a.status}${errorCode(a) === null ? '' : ` ${String(errorCode(a))}`}`;
    counts[key] = (counts[key] ?? 0) + 1;
  }
  return counts;
}

describe('concurrent requests across two instances', () => {
  let one: TestService;
  let two: TestService;
  /** The after-lock hook both instances share; tests that need it set it and clear it. */
  let afterLock: (() => Promise<void>) | null = null;

  beforeAll(async () => {
    const config = testConfig(inject('redisUrl'), {
      ACCOUNT_INITIAL_BALANCE_CENTS: String(INITIAL_BALANCE_CENTS),
    });
    const faultPoint = async (name: FaultPointName) => {
      if (name === 'after-lock' && afterLock !== null) await afterLock();
    };
    // Same config, so the same key prefix: two processes sharing one Redis.
    one = await startTestService(config, { faultPoint });
    two = await startTestService(config, { faultPoint });
  });

  afterAll(async () => {
    await Promise.all([one.stop(), two.stop()]);
  });

  /** Fires the requests at once, alternating between the two instances. */
  function fire(
    token: string,
    accountId: string,
    kinds: readonly Kind[],
    [a, b] = [one, two],
  ): Promise<Answer[]> {
    return Promise.all(
      kinds.map(async (kind, i) => {
        const service = i % 2 === 0 ? a : b;
        const answer =
          kind === 'pay'
            ? await service.request('POST', '/payments', {
                headers: { 'Idempotency-Key': token },
                body: { accountId, amountCents: AMOUNT_CENTS },
              })
            : await service.request('POST', `/payments/${token}/cancel`);
        return { kind, ...answer };
      }),
    );
  }

  /**
   * Fires `first` at once and `second` the moment the first request holds the
   * token's lock, so the second batch races the rest of the first.
   */
  async function fireInTwoWaves(
    token: string,
    accountId: string,
    first: readonly Kind[],
    second: readonly Kind[],
  ): Promise<Answer[]> {
    let secondWave: Promise<Answer[]> | undefined;
    afterLock = () => {
      secondWave ??= fire(token, accountId, second);
      return Promise.resolve();
    };
    try {
      const firstAnswers = await fire(token, accountId, first);
      const secondAnswers = await waitFor(() => secondWave, { what: 'the second wave' });
      return [...firstAnswers, ...secondAnswers];
    } finally {
      afterLock = null;
    }
  }

  async function ledgerOf(accountId: string, service = one) {
    const response = await service.request('GET', `/accounts/${accountId}`);
    expect(response.status).toBe(200);
    return response.body as { balanceCents: number; ledger: LedgerEntryView[] };
  }

  const pays = (n: number) => Array<Kind>(n).fill('pay');
  const cancels = (n: number) => Array<Kind>(n).fill('cancel');

  it.each([
    {
      mix: '100 pays and 100 cancels interleaved',
      token: 'race-interleaved',
      send: (token: string, accountId: string) =>
        fire(
          token,
          accountId,
          Array.from({ length: 200 }, (_, i): Kind => (i % 2 === 0 ? 'pay' : 'cancel')),
        ),
    },
    {
      mix: '150 pays, then 50 cancels fired as the first request holds the lock',
      token: 'race-waves-50',
      send: (token: string, accountId: string) =>
        fireInTwoWaves(token, accountId, pays(150), cancels(50)),
    },
    {
      mix: '190 pays, then 10 cancels fired as the first request holds the lock',
      token: 'race-waves-10',
      send: (token: string, accountId: string) =>
        fireInTwoWaves(token, accountId, pays(190), cancels(10)),
    },
  ])(
    'moves money at most once each way and ends as a serial order would: $mix',
    async ({ mix, token, send }) => {
      const accountId = `acct-${token}`;
      const answers = await send(token, accountId);
      expect(answers).toHaveLength(200);

      const { balanceCents, ledger } = await ledgerOf(accountId);
      const withdrawals = ledger.filter((e) => e.kind === 'withdrawal' && e.token === token);
      const deposits = ledger.filter((e) => e.kind === 'deposit' && e.token === token);
      const view = await one.request('GET', `/payments/${token}`);
      const payAnswers = answers.filter((a) => a.kind === 'pay');
      const cancelAnswers = answers.filter((a) => a.kind === 'cancel');
      const created = payAnswers.filter((a) => a.status === 201);
      console.log(
        `${mix}: final ${view.status === 200 ? (view.body as PaymentView).status : 'no record'}, ` +
          `${withdrawals.length} charge(s), ${deposits.length} refund(s), ` +
          `${answers.filter(isBusy).length} token_busy; responses ${JSON.stringify(tally(answers))}`,
      );

      // Never a server error; every answer is a business answer or a retryable busy.
      expect(answers.filter((a) => a.status >= 500)).toEqual([]);
      expect(withdrawals.length).toBeLessThanOrEqual(1);
      expect(deposits.length).toBeLessThanOrEqual(withdrawals.length);
      expect(created.length).toBe(withdrawals.length);
      expect(balanceCents).toBe(
        INITIAL_BALANCE_CENTS - (withdrawals.length - deposits.length) * AMOUNT_CENTS,
      );

      if (view.status === 404) {
        // Only if no request ever got the lock.
        expect(answers.every(isBusy)).toBe(true);
        return;
      }
      expect(view.status).toBe(200);
      const final = view.body as PaymentView;
      expect(final.history.map((h) => h.state)).toEqual(SERIAL_HISTORIES[final.status]);
      const servedCancels = cancelAnswers.filter((a) => a.status === 200);

      switch (final.status) {
        case 'cancelled':
          // The first request served was a cancel: nothing was ever charged.
          expect([withdrawals.length, deposits.length]).toEqual([0, 0]);
          for (const a of payAnswers) {
            expect(isBusy(a) || (a.status === 409 && errorCode(a) === 'payment_cancelled')).toBe(
              true,
            );
          }
          break;
        case 'refunded':
          expect([withdrawals.length, deposits.length]).toEqual([1, 1]);
          for (const a of payAnswers) {
            const replayed = a.status === 200 && a.headers.get('idempotent-replayed') === 'true';
            const rejected = a.status === 409 && errorCode(a) === 'payment_refunded';
            expect(isBusy(a) || a.status === 201 || replayed || rejected).toBe(true);
          }
          break;
        case 'processed':
          // No cancel was served, or the token would have left `processed` for good.
          expect([withdrawals.length, deposits.length]).toEqual([1, 0]);
          expect(servedCancels).toEqual([]);
          for (const a of payAnswers) {
            const replayed = a.status === 200 && a.headers.get('idempotent-replayed') === 'true';
            expect(isBusy(a) || a.status === 201 || replayed).toBe(true);
          }
          break;
        default:
          expect.fail(`final status ${final.status} is not one a serial order gives`);
      }
      // Every served cancel reports the state the token ended in.
      for (const a of cancelAnswers) {
        expect(
          isBusy(a) || (a.status === 200 && (a.body as PaymentView).status === final.status),
        ).toBe(true);
      }
    },
  );

  it('charges once when two instances race payments only, and every success agrees', async () => {
    const token = 'race-pays-only';
    const accountId = `acct-${token}`;
    const answers = await fire(token, accountId, pays(200));

    const { balanceCents, ledger } = await ledgerOf(accountId);
    const withdrawals = ledger.filter((e) => e.kind === 'withdrawal' && e.token === token);
    const created = answers.filter((a) => a.status === 201);
    const replayed = answers.filter(
      (a) => a.status === 200 && a.headers.get('idempotent-replayed') === 'true',
    );
    const busy = answers.filter(isBusy);
    console.log(
      `pays only: ${withdrawals.length} charge(s), ${created.length} created, ` +
        `${replayed.length} replayed, ${busy.length} token_busy; responses ${JSON.stringify(tally(answers))}`,
    );

    expect(withdrawals).toHaveLength(1);
    expect(balanceCents).toBe(INITIAL_BALANCE_CENTS - AMOUNT_CENTS);
    expect(created).toHaveLength(1);
    expect(created.length + replayed.length + busy.length).toBe(answers.length);
    // A replay is the original answer: the very same record, nothing moved since.
    const original = created[0]?.body;
    expect(original).toMatchObject({
      token,
      status: 'processed',
      payment: { accountId, amountCents: AMOUNT_CENTS },
    });
    for (const a of replayed) expect(a.body).toEqual(original);
  });

  it('runs different tokens in parallel, each charged once', async () => {
    const tokens = Array.from({ length: 50 }, (_, i) => `parallel-${i}`);
    const accountId = 'acct-parallel';
    // Each request waits, holding its token's lock, until all of them hold theirs:
    // this only completes if different tokens never wait for each other.
    let arrived = 0;
    let open!: () => void;
    const opened = new Promise<void>((resolve) => {
      open = resolve;
    });
    afterLock = async () => {
      arrived++;
      if (arrived >= tokens.length) open();
      await opened;
    };
    try {
      const answers = Promise.all(
        tokens.map((token, i) =>
          (i % 2 === 0 ? one : two).request('POST', '/payments', {
            headers: { 'Idempotency-Key': token },
            body: { accountId, amountCents: AMOUNT_CENTS },
          }),
        ),
      );
      await waitFor(() => (arrived >= tokens.length ? true : undefined), {
        what: `all ${tokens.length} tokens holding their locks at once`,
      });
      const responses = await answers;
      expect(responses.map((r) => r.status)).toEqual(tokens.map(() => 201));
    } finally {
      afterLock = null;
      open();
    }

    const { balanceCents, ledger } = await ledgerOf(accountId);
    const charged = ledger.filter((e) => e.kind === 'withdrawal').map((e) => e.token);
    expect(charged.sort()).toEqual([...tokens].sort());
    expect(balanceCents).toBe(INITIAL_BALANCE_CENTS - tokens.length * AMOUNT_CENTS);
    console.log(`parallel tokens: ${tokens.length} created, ${charged.length} charges`);
  });

  describe('when a request holds the token longer than LOCK_WAIT_MS', () => {
    let first: TestService;
    let second: TestService;
    let hold: (() => Promise<void>) | null = null;

    beforeAll(async () => {
      const config = testConfig(inject('redisUrl'), {
        ACCOUNT_INITIAL_BALANCE_CENTS: String(INITIAL_BALANCE_CENTS),
        LOCK_WAIT_MS: '100',
      });
      const faultPoint = async (name: FaultPointName) => {
        if (name === 'after-lock' && hold !== null) await hold();
      };
      first = await startTestService(config, { faultPoint });
      second = await startTestService(config, { faultPoint });
    });

    afterAll(async () => {
      await Promise.all([first.stop(), second.stop()]);
    });

    it('answers the others 409 token_busy with Retry-After, and they change nothing', async () => {
      const token = 'race-busy';
      const accountId = `acct-${token}`;
      let holding = false;
      let release!: () => void;
      const released = new Promise<void>((resolve) => {
        release = resolve;
      });
      // The first request to get the lock keeps it until the others have all been answered.
      hold = async () => {
        if (holding) return;
        holding = true;
        await released;
      };
      try {
        const holder = first.request('POST', '/payments', {
          headers: { 'Idempotency-Key': token },
          body: { accountId, amountCents: AMOUNT_CENTS },
        });
        await waitFor(() => (holding ? true : undefined), { what: 'the lock to be held' });
        const others = await fire(
          token,
          accountId,
          Array.from({ length: 199 }, (_, i): Kind => (i % 3 === 0 ? 'cancel' : 'pay')),
          [first, second],
        );
        release();
        const held = await holder;
        console.log(`lock held: holder ${held.status}; others ${JSON.stringify(tally(others))}`);

        expect(held.status).toBe(201);
        expect(others.filter((a) => !isBusy(a))).toEqual([]);
      } finally {
        hold = null;
        release();
      }
      const view = await first.request('GET', `/payments/${token}`);
      expect((view.body as PaymentView).history.map((h) => h.state)).toEqual(
        SERIAL_HISTORIES.processed,
      );
      const { balanceCents, ledger } = await ledgerOf(accountId, second);
      expect(ledger.filter((e) => e.token === token)).toHaveLength(1);
      expect(balanceCents).toBe(INITIAL_BALANCE_CENTS - AMOUNT_CENTS);
    });
  });
});
