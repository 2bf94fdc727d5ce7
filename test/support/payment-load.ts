/**
 * A load of payments and cancellations for fault tests: several concurrent
 * clients, each working through fresh tokens on accounts of its own, every
 * answer recorded with its timing. A step that gets no acknowledged answer is
 * tried again a few times with the same token (what a client does with a 503),
 * then the client moves on: that step's outcome stays unknown.
 */

export type Step = 'pay' | 'cancel';

/** What a client does with one token. */
export type Script = 'pay' | 'pay-then-cancel' | 'cancel-then-pay' | 'pay-twice';

const SCRIPTS: readonly Script[] = [
  'pay',
  'pay',
  'pay-then-cancel',
  'cancel-then-pay',
  'pay-twice',
];

const STEPS: Record<Script, readonly Step[]> = {
  pay: ['pay'],
  'pay-then-cancel': ['pay', 'cancel'],
  'cancel-then-pay': ['cancel', 'pay'],
  'pay-twice': ['pay', 'pay'],
};

export interface Answer {
  readonly step: Step;
  /** HTTP status; 0 when no answer came (connection failed or the client gave up waiting). */
  readonly status: number;
  /** `error.code` of an error body. */
  readonly code: string | null;
  /** `status` of a payment body. */
  readonly paymentStatus: string | null;
  readonly replayed: boolean;
  readonly retryAfter: string | null;
  readonly sentAt: number;
  readonly answeredAt: number;
  readonly failure: string | null;
}

/**
 * - acknowledged: the service said what happened (success, or a business
 *   refusal: 402 declined, 409 cancelled/refunded, 410 expired, 422 reused key);
 * - unavailable: 503, the outcome is unknown and a retry is invited;
 * - busy: 409 token_busy or conflict, also retryable, nothing decided;
 * - failed: anything else (5xx other than 503, no answer at all).
 */
export type AnswerKind = 'acknowledged' | 'unavailable' | 'busy' | 'failed';

const BUSINESS_CONFLICTS = new Set(['payment_cancelled', 'payment_refunded']);

export function kindOf(answer: Answer): AnswerKind {
  const { status, code } = answer;
  if (status === 503) return 'unavailable';
  if (status === 409) return BUSINESS_CONFLICTS.has(code ?? '') ? 'acknowledged' : 'busy';
  if (answer.step === 'pay' && [200, 201, 402, 410, 422].includes(status)) return 'acknowledged';
  if (answer.step === 'cancel' && [200, 410].includes(status)) return 'acknowledged';
  return 'failed';
}

export interface TokenRun {
  readonly token: string;
  readonly accountId: string;
  readonly amountCents: number;
  readonly client: number;
  readonly job: number;
  readonly script: Script;
  readonly answers: Answer[];
}

export interface LoadOptions {
  readonly url: string;
  /** Prefix of every token and account of this load: fresh per run. */
  readonly runId: string;
  readonly clients: number;
  /** Tokens charged to one account before the client takes the next one. */
  readonly tokensPerAccount?: number;
  readonly minAmountCents?: number;
  readonly maxAmountCents?: number;
  /** Tries of one step while it gets no acknowledged answer. */
  readonly attemptsPerStep?: number;
  /** A client's pause before trying a step again. */
  readonly retryBackoffMs?: number;
  /** A client gives up waiting for an answer after this long. */
  readonly requestTimeoutMs?: number;
  /** Stops each client after this many tokens (unbounded: until stop()). */
  readonly jobsPerClient?: number;
}

export class PaymentLoad {
  readonly runs: TokenRun[] = [];
  private readonly counts: Record<AnswerKind, number> = {
    acknowledged: 0,
    unavailable: 0,
    busy: 0,
    failed: 0,
  };
  private stopRequested = false;
  private clients: Promise<void>[] = [];
  private readonly pending = new Set<{ token: string; step: Step; sentAt: number }>();
  /** Steps that ended without an acknowledged answer, in the order they were given up. */
  private readonly unfinished: { run: TokenRun; step: Step }[] = [];

  constructor(private readonly options: LoadOptions) {}

  start(): void {
    this.clients = Array.from({ length: this.options.clients }, (_, client) => this.client(client));
  }

  /** Resolves once every client finished its jobs (a bounded load). */
  async finished(): Promise<void> {
    await Promise.all(this.clients);
  }

  /** Asks the clients to stop after their current request and waits for them. */
  async stop(): Promise<void> {
    this.stopRequested = true;
    await Promise.all(this.clients);
  }

  /** Read across awaits: stop() may have been called meanwhile. */
  private stopping(): boolean {
    return this.stopRequested;
  }

  count(kind: AnswerKind): number {
    return this.counts[kind];
  }

  answers(): Answer[] {
    return this.runs.flatMap((run) => run.answers);
  }

  /** Requests sent and not answered yet, oldest first. */
  inFlight(): { token: string; step: Step; sentAt: number }[] {
    return [...this.pending].sort((a, b) => a.sentAt - b.sentAt);
  }

  tokens(): string[] {
    return this.runs.map((run) => run.token);
  }

  accounts(): string[] {
    return [...new Set(this.runs.map((run) => run.accountId))];
  }

  private async client(client: number): Promise<void> {
    const perAccount = this.options.tokensPerAccount ?? 8;
    const min = this.options.minAmountCents ?? 500;
    const max = this.options.maxAmountCents ?? 3_500;
    const limit = this.options.jobsPerClient ?? Number.POSITIVE_INFINITY;
    for (let job = 0; job < limit && !this.stopping(); job++) {
      const script = SCRIPTS[Math.floor(Math.random() * SCRIPTS.length)] ?? 'pay';
      const run: TokenRun = {
        token: `${this.options.runId}-c${client}-t${job}`,
        accountId: `${this.options.runId}-c${client}-a${Math.floor(job / perAccount)}`,
        amountCents: min + Math.floor(Math.random() * (max - min + 1)),
        client,
        job,
        script,
        answers: [],
      };
      this.runs.push(run);
      for (const step of STEPS[script]) {
        await this.perform(run, step);
        if (this.stopping()) break;
      }
    }
  }

  /**
   * Once the fault is over: sends again every step that ended without an
   * acknowledged answer (each token's in the order its client gave them up),
   * until it gets one or `attempts` tries pass. Tokens run concurrently.
   */
  async retryUnfinished(attempts = 20): Promise<void> {
    const byRun = new Map<TokenRun, Step[]>();
    for (const { run, step } of this.unfinished.splice(0)) {
      byRun.set(run, [...(byRun.get(run) ?? []), step]);
    }
    await Promise.all(
      [...byRun].map(async ([run, steps]) => {
        for (const step of steps) await this.perform(run, step, attempts, false);
      }),
    );
  }

  private async perform(
    run: TokenRun,
    step: Step,
    attempts = this.options.attemptsPerStep ?? 3,
    stoppable = true,
  ): Promise<void> {
    for (let attempt = 1; attempt <= attempts; attempt++) {
      const answer = await this.send(run, step);
      run.answers.push(answer);
      const kind = kindOf(answer);
      this.counts[kind]++;
      if (kind === 'acknowledged') return;
      if ((stoppable && this.stopping()) || attempt === attempts) {
        this.unfinished.push({ run, step });
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, this.options.retryBackoffMs ?? 50));
    }
  }

  private async send(run: TokenRun, step: Step): Promise<Answer> {
    const sentAt = Date.now();
    const timeout = this.options.requestTimeoutMs ?? 30_000;
    const pending = { token: run.token, step, sentAt };
    this.pending.add(pending);
    try {
      const response = await fetch(
        step === 'pay'
          ? `${this.options.url}/payments`
          : `${this.options.url}/payments/${run.token}/cancel`,
        step === 'pay'
          ? {
              method: 'POST',
              headers: { 'content-type': 'application/json', 'Idempotency-Key': run.token },
              body: JSON.stringify({ accountId: run.accountId, amountCents: run.amountCents }),
              signal: AbortSignal.timeout(timeout),
            }
          : { method: 'POST', signal: AbortSignal.timeout(timeout) },
      );
      const text = await response.text();
      let body: { status?: unknown; error?: { code?: unknown } } = {};
      try {
        body = JSON.parse(text) as typeof body;
      } catch {
        // not JSON: recorded as a failure by its status
      }
      return {
        step,
        status: response.status,
        code: typeof body.error?.code === 'string' ? body.error.code : null,
        paymentStatus: typeof body.status === 'string' ? body.status : null,
        replayed: response.headers.get('idempotent-replayed') === 'true',
        retryAfter: response.headers.get('retry-after'),
        sentAt,
        answeredAt: Date.now(),
        failure: null,
      };
    } catch (error) {
      return {
        step,
        status: 0,
        code: null,
        paymentStatus: null,
        replayed: false,
        retryAfter: null,
        sentAt,
        answeredAt: Date.now(),
        failure: error instanceof Error ? `${error.name}: ${error.message}` : String(error),
      };
    } finally {
      this.pending.delete(pending);
    }
  }
}

/** What the store holds for a token, as far as acknowledged answers are concerned. */
export interface FinalState {
  readonly status: string | null;
}

export interface LostAnswer {
  readonly token: string;
  readonly answer: Answer;
  readonly expected: string;
  readonly found: string | null;
}

/**
 * The acknowledged answers whose outcome the store no longer shows: a charge
 * (201, or 200 replayed) must have left the token processed or refunded; a
 * 409 or a cancel's 200 named the state the token must still be in; a 402
 * created a record that must still exist.
 */
export function lostAnswers(
  runs: readonly TokenRun[],
  states: ReadonlyMap<string, FinalState>,
): LostAnswer[] {
  const lost: LostAnswer[] = [];
  for (const run of runs) {
    const found = states.get(run.token)?.status ?? null;
    for (const answer of run.answers) {
      if (kindOf(answer) !== 'acknowledged') continue;
      const expected = expectedAfter(answer);
      const holds = expected === null ? found !== null : found !== null && expected.includes(found);
      if (!holds) {
        lost.push({
          token: run.token,
          answer,
          expected: expected?.join(' or ') ?? 'a record',
          found,
        });
      }
    }
  }
  return lost;
}

/** The states an acknowledged answer leaves possible from then on; `null`: any state, but a record. */
function expectedAfter(answer: Answer): readonly string[] | null {
  if (answer.status === 410) return ['expired'];
  if (answer.step === 'cancel') return [answer.paymentStatus ?? '?'];
  switch (answer.status) {
    case 200:
    case 201:
    case 422:
      return ['processed', 'refunded'];
    case 409:
      return [answer.code === 'payment_refunded' ? 'refunded' : 'cancelled'];
    default:
      // 402: the attempt was declined; a later one may still charge.
      return null;
  }
}

/** Answers a test must not see: anything but an acknowledged answer, a 503 with Retry-After, or a retryable 409. */
export function unexpectedAnswers(answers: readonly Answer[]): Answer[] {
  return answers.filter((answer) => {
    const kind = kindOf(answer);
    if (kind === 'failed') return true;
    if (kind === 'unavailable' || kind === 'busy') return !/^\d+$/.test(answer.retryAfter ?? '');
    return false;
  });
}

/** Polls `check` until it holds or `timeoutMs` passes; resolves with whether it held. */
export async function pollUntil(
  check: () => boolean | Promise<boolean>,
  timeoutMs: number,
  intervalMs = 20,
): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return true;
    if (Date.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

export function describeAnswer(answer: Answer): string {
  const what = answer.status === 0 ? (answer.failure ?? 'no answer') : String(answer.status);
  const code = answer.code === null ? '' : ` ${answer.code}`;
  const status = answer.paymentStatus === null ? '' : ` (${answer.paymentStatus})`;
  return `${answer.step} → ${what}${code}${status} in ${answer.answeredAt - answer.sentAt} ms`;
}
