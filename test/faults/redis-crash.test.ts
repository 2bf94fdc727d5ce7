/**
 * redis-server dies with SIGKILL under a load of payments and cancellations
 * and is started again on the same port and directory, replaying its AOF. The
 * service is a real process (`npm start`'s entry point) that keeps running
 * throughout: it must answer 503 with Retry-After while Redis is away and
 * carry on by itself once it is back.
 *
 * - appendfsync always: Redis replies to a write only once it is fsynced, so
 *   nothing any client was told may be lost.
 * - appendfsync everysec, SIGKILL: Redis write()s the AOF before it replies
 *   (unless a slow fsync makes it hold the buffer back, for up to 2 s), and
 *   the kernel keeps what was written when the process dies; what is lost is
 *   measured.
 * - appendfsync everysec, host crash: what was not fsynced yet is lost.
 *   Emulated by cutting the AOF back to what it held a quarter to a whole
 *   second before the kill, plus up to a few hundred bytes (a torn last
 *   command, which Redis drops on load). The AOF is one ordered log, so what
 *   survives is a prefix of the commands Redis executed: a state the service
 *   went through, as if it had crashed at that moment. Acknowledged answers
 *   are lost; the ledger and the snapshots must still agree with each other,
 *   at the restart already and once recovery has run.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync, statSync, truncateSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { iterations, reportScenario } from '../support/fault-report.ts';
import {
  describeAnswer,
  lostAnswers,
  PaymentLoad,
  pollUntil,
  unexpectedAnswers,
  type LostAnswer,
  type TokenRun,
} from '../support/payment-load.ts';
import { spawnScript } from '../support/processes.ts';
import { startRedisServer, type TestRedisServer } from '../support/redis-server.ts';
import { startTestService, testConfig, type TestService } from '../support/service-harness.ts';
import { storeAuditor, type StoreAudit, type StoreAuditor } from '../support/store-audit.ts';
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy.ts';

const INITIAL_BALANCE_CENTS = 15_000;
const CLIENTS = 8;
/** Acknowledged answers the load must get before each kill and after each restart. */
const ACKS_PER_PHASE = 40;
/** 503s the load must see while Redis is down before it is started again. */
const UNAVAILABLE_PER_OUTAGE = 4;
const CYCLES = iterations(2, 10);
/** everysec fsyncs once a second: a host crash loses about that much. */
const FSYNC_WINDOW_MS = 1_000;
const RECOVERY_TIMEOUT_MS = 20_000;
const LOCK_WAIT_MS = 3_000;
/**
 * No answer may take longer than this, Redis down or not: a lock wait, then a few
 * command timeouts (2 s each: the command, the lease extension in flight, the
 * release), with room for a busy machine.
 */
const ANSWER_BOUND_MS = LOCK_WAIT_MS + 9_000;

type Durability = 'always' | 'everysec' | 'everysec, host crash';

interface CrashRun {
  readonly load: PaymentLoad;
  /** After the load stopped and recovery ran. */
  readonly audit: StoreAudit;
  /** Broken guarantees seen right after each restart, before recovery. */
  readonly restartProblems: readonly string[];
  /** When each kill had taken effect. */
  readonly killedAt: readonly number[];
  /** Bytes of AOF cut away per cycle (host crash only). */
  readonly cutBytes: readonly number[];
  /** Right after the restarts: charges whose withdrawal is in the ledger, the snapshot still `charging`. */
  readonly ledgerAheadAtRestart: number;
  /** Right after the restarts: records in `charging` or `refunding`. */
  readonly inFlightAtRestart: number;
  readonly ms: number;
}

const cleanups: (() => Promise<void>)[] = [];

/** Stops what a scenario started, the service before its Redis. */
async function cleanUp(): Promise<void> {
  for (let cleanup = cleanups.pop(); cleanup !== undefined; cleanup = cleanups.pop()) {
    await cleanup().catch(() => undefined);
  }
}

afterEach(cleanUp);
afterAll(cleanUp);

async function startApp(redisUrl: string, keyPrefix: string): Promise<string> {
  const app = spawnScript('src/main.ts', [], {
    PORT: '0',
    HOST: '127.0.0.1',
    REDIS_URL: redisUrl,
    REDIS_KEY_PREFIX: keyPrefix,
    PAYSTATE_MANAGED_REDIS: 'never',
    ACCOUNT_INITIAL_BALANCE_CENTS: String(INITIAL_BALANCE_CENTS),
    // Short leases and a frequent sweep, so what a crash left is finished within the test.
    LOCK_TTL_MS: '1000',
    LOCK_WAIT_MS: String(LOCK_WAIT_MS),
    RECOVERY_INTERVAL_MS: '100',
    SHUTDOWN_TIMEOUT_MS: '2000',
  });
  cleanups.push(async () => {
    if (app.child.exitCode !== null || app.child.signalCode !== null) return;
    app.child.kill('SIGTERM');
    let exited = false;
    void app.exited().then(() => (exited = true));
    if (!(await pollUntil(() => exited, 8_000))) app.child.kill('SIGKILL');
    await app.exited();
  });
  await app.waitForOutput('paystate started');
  const url = /"url":"(http:\/\/[^"]+)"/.exec(app.output())?.[1];
  if (url === undefined) throw new Error(`no url in the service's output:\n${app.output()}`);
  return url;
}

/** The AOF file Redis appends to (multi-part AOF: the last `incr` file of the manifest). */
function appendedAof(redis: TestRedisServer): string {
  const dir = join(redis.dir, 'appendonlydir');
  const manifest = readFileSync(join(dir, 'appendonly.aof.manifest'), 'utf8');
  const incr = manifest
    .split('\n')
    .map((line) => /^file (\S+) seq \d+ type i/.exec(line)?.[1])
    .filter((name): name is string => name !== undefined)
    .at(-1);
  if (incr === undefined) throw new Error(`no incr file in the AOF manifest:\n${manifest}`);
  return join(dir, incr);
}

/** Samples the size of the AOF as time goes, to know what it held at a given moment. */
function sampleAof(file: string) {
  const samples: { at: number; size: number }[] = [];
  const take = () => {
    samples.push({ at: Date.now(), size: statSync(file).size });
  };
  take();
  const timer = setInterval(take, 10);
  return {
    firstAt: () => samples[0]?.at ?? Date.now(),
    stop: () => {
      clearInterval(timer);
    },
    /** The size the file had at `at` (the last sample taken by then). */
    sizeAt: (at: number) => samples.filter((s) => s.at <= at).at(-1)?.size ?? 0,
  };
}

/** The end of the RESP command starting at `offset`, and its name; null when the file ends inside it. */
function readCommand(file: Buffer, offset: number): { name: string; end: number } | null {
  const line = (from: number): { value: string; next: number } | null => {
    const end = file.indexOf('\r\n', from);
    return end < 0 ? null : { value: file.toString('latin1', from + 1, end), next: end + 2 };
  };
  const header = line(offset);
  if (header === null) return null;
  let next = header.next;
  let name = '';
  for (let arg = 0; arg < Number(header.value); arg++) {
    const length = line(next);
    if (length === null) return null;
    const start = length.next;
    next = start + Number(length.value) + 2;
    if (next > file.length) return null;
    if (arg === 0) name = file.toString('latin1', start, next - 2).toUpperCase();
  }
  return { name, end: next };
}

/**
 * Moves a cut that would tear a transaction (a script's writes are one
 * MULTI/EXEC in the AOF) back to where the transaction starts. A torn single
 * command is left as it is: Redis drops it on load. A torn transaction is
 * what a correct loader drops too, but Redis 7.0 leaves its MULTI in the file
 * and a second crash then replays it with the writes that followed
 * (valkey-io/valkey#4342): a defect of Redis this test is not about.
 */
function cutOutsideTransaction(file: Buffer, cut: number): number {
  let offset = 0;
  let transaction: number | null = null;
  for (;;) {
    const command = readCommand(file, offset);
    if (command === null || command.end > cut) break;
    if (command.name === 'MULTI') transaction = offset;
    if (command.name === 'EXEC') transaction = null;
    offset = command.end;
  }
  return transaction ?? cut;
}

/** What a host crash leaves of the AOF: up to a second of writes (and a torn command) gone. */
function cutAof(redis: TestRedisServer, sizeAt: (at: number) => number): number {
  const file = appendedAof(redis);
  const content = readFileSync(file);
  const lastFsync = Date.now() - FSYNC_WINDOW_MS * (0.25 + 0.75 * Math.random());
  const torn = Math.floor(Math.random() * 300);
  const cut = cutOutsideTransaction(content, Math.min(content.length, sizeAt(lastFsync) + torn));
  truncateSync(file, cut);
  return content.length - cut;
}

async function runCrashScenario(durability: Durability): Promise<CrashRun> {
  const started = Date.now();
  const hostCrash = durability === 'everysec, host crash';
  const redis = await startRedisServer({
    appendfsync: durability === 'always' ? 'always' : 'everysec',
  });
  cleanups.push(() => redis.destroy());
  const keyPrefix = `t${randomBytes(6).toString('hex')}`;
  const auditor = storeAuditor({
    redisUrl: redis.url,
    keyPrefix,
    initialBalanceCents: INITIAL_BALANCE_CENTS,
  });
  cleanups.push(() => auditor.close());
  const url = await startApp(redis.url, keyPrefix);

  const load = new PaymentLoad({
    url,
    runId: `rc${randomBytes(3).toString('hex')}`,
    clients: CLIENTS,
  });
  const killedAt: number[] = [];
  const cutBytes: number[] = [];
  const restartProblems: string[] = [];
  let ledgerAheadAtRestart = 0;
  let inFlightAtRestart = 0;

  const acknowledged = async (more: number, when: string) => {
    const target = load.count('acknowledged') + more;
    if (!(await pollUntil(() => load.count('acknowledged') >= target, 20_000))) {
      throw new Error(`the load got fewer than ${more} acknowledged answers ${when}`);
    }
  };

  load.start();
  try {
    for (let cycle = 0; cycle < CYCLES; cycle++) {
      const sampler = hostCrash ? sampleAof(appendedAof(redis)) : null;
      try {
        await acknowledged(ACKS_PER_PHASE, 'before the kill');
        // The cut needs a second of history to cut into.
        if (sampler) await pollUntil(() => Date.now() - sampler.firstAt() > FSYNC_WINDOW_MS, 5_000);
      } finally {
        sampler?.stop();
      }
      const unavailable = load.count('unavailable');
      await redis.kill('SIGKILL');
      killedAt.push(Date.now());
      if (sampler) cutBytes.push(cutAof(redis, sampler.sizeAt));

      const answered503 = await pollUntil(
        () => load.count('unavailable') >= unavailable + UNAVAILABLE_PER_OUTAGE,
        15_000,
      );
      expect(answered503, 'the service answers 503 while Redis is down').toBe(true);
      await redis.start();
      const atRestart = await auditor.audit({ settled: false });
      restartProblems.push(...atRestart.problems);
      ledgerAheadAtRestart += atRestart.ledgerAhead;
      inFlightAtRestart += atRestart.inFlight;
      // The same service process carries on once Redis is back.
      await acknowledged(ACKS_PER_PHASE, 'after the restart');
    }
  } finally {
    await load.stop();
  }

  // The sweep finishes what the kills interrupted and nobody came back for.
  const recovered = await pollUntil(async () => {
    const audit = await auditor.audit({ settled: false });
    return audit.inFlight === 0 && audit.outbox === 0;
  }, RECOVERY_TIMEOUT_MS);
  if (!recovered)
    console.warn(`${durability}: recovery did not finish in ${RECOVERY_TIMEOUT_MS} ms`);
  return {
    load,
    audit: await auditor.audit({ settled: true }),
    restartProblems,
    killedAt,
    cutBytes,
    ledgerAheadAtRestart,
    inFlightAtRestart,
    ms: Date.now() - started,
  };
}

/** A refund nobody asked for: the token was never sent a cancel. */
function refundsWithoutCancel(runs: readonly TokenRun[], audit: StoreAudit): string[] {
  return runs
    .filter((run) => !run.answers.some((a) => a.step === 'cancel'))
    .filter((run) => (audit.tokens.get(run.token)?.deposits ?? 0) > 0)
    .map((run) => `${run.token}: refunded without a cancel`);
}

/** What a lost answer had said happened. */
function lostKind(lost: LostAnswer): string {
  const { answer } = lost;
  if (answer.step === 'cancel') return `lost ${answer.paymentStatus ?? 'cancel'}`;
  if (answer.status === 201 || answer.status === 200) return 'lost charged';
  if (answer.status === 402) return 'lost declined';
  return `lost pay ${answer.status}`;
}

function summarize(run: CrashRun) {
  const answers = run.load.answers();
  const lost = lostAnswers(run.load.runs, run.audit.tokens);
  const unexpected = unexpectedAnswers(answers);
  const problems = [
    ...run.restartProblems,
    ...run.audit.problems,
    ...refundsWithoutCancel(run.load.runs, run.audit),
  ];
  const tokens = [...run.audit.tokens.values()];
  const lostByKind = new Map<string, number>();
  for (const l of lost) lostByKind.set(lostKind(l), (lostByKind.get(lostKind(l)) ?? 0) + 1);
  // How long before the kill that took its writes each lost request was sent.
  const lostAges = lost.map((l) => {
    const kill = run.killedAt.find((k) => k >= l.answer.sentAt);
    return kill === undefined ? Number.NaN : kill - l.answer.sentAt;
  });
  const slow = answers.filter((a) => a.answeredAt - a.sentAt > ANSWER_BOUND_MS);
  return {
    lost,
    unexpected,
    slow,
    problems,
    details: {
      requests: answers.length,
      acknowledged: run.load.count('acknowledged'),
      '503s': run.load.count('unavailable'),
      busy: run.load.count('busy'),
      tokens: run.load.runs.length,
      charged: tokens.filter((t) => t.withdrawals > 0).length,
      refunded: tokens.filter((t) => t.deposits > 0).length,
      'in flight at restart': run.inFlightAtRestart,
      'ledger ahead of snapshot at restart': run.ledgerAheadAtRestart,
      'lost acknowledged answers': lost.length,
      ...Object.fromEntries(lostByKind),
      ...(lost.length > 0
        ? { 'oldest lost request sent ms before kill': Math.max(...lostAges) }
        : {}),
      'slowest answer ms': Math.max(...answers.map((a) => a.answeredAt - a.sentAt)),
      ...(run.cutBytes.length > 0 ? { 'AOF bytes cut': run.cutBytes.join('/') } : {}),
      ms: run.ms,
    },
  };
}

function explain(summary: ReturnType<typeof summarize>): string {
  return [
    ...summary.problems.slice(0, 20),
    ...summary.unexpected.slice(0, 10).map((a) => `unexpected answer: ${describeAnswer(a)}`),
    ...summary.slow.slice(0, 10).map((a) => `too slow: ${describeAnswer(a)}`),
  ].join('\n');
}

function explainLost(lost: readonly LostAnswer[]): string {
  return lost
    .slice(0, 20)
    .map((l) => `${l.token}: ${describeAnswer(l.answer)}, now ${l.found ?? 'no record'}`)
    .join('\n');
}

describe('redis-server killed with SIGKILL under load and restarted from its AOF', () => {
  it('loses no acknowledged payment or cancel and charges no token twice with appendfsync always', async () => {
    const run = await runCrashScenario('always');
    const summary = summarize(run);
    const violations =
      summary.lost.length +
      summary.unexpected.length +
      summary.slow.length +
      summary.problems.length;
    reportScenario('redis-crash appendfsync always', {
      iterations: CYCLES,
      violations,
      details: summary.details,
    });
    expect(
      summary.problems.length + summary.unexpected.length + summary.slow.length,
      explain(summary),
    ).toBe(0);
    expect(summary.lost, explainLost(summary.lost)).toEqual([]);
  }, 120_000);

  it('keeps ledger and snapshots consistent when everysec Redis is killed, and counts lost answers', async () => {
    const run = await runCrashScenario('everysec');
    const summary = summarize(run);
    // Lost acknowledged answers are what everysec trades for speed: reported, not a violation.
    const violations = summary.unexpected.length + summary.slow.length + summary.problems.length;
    reportScenario('redis-crash appendfsync everysec', {
      iterations: CYCLES,
      violations,
      details: summary.details,
    });
    expect(violations, explain(summary)).toBe(0);
  }, 120_000);

  it('keeps ledger and snapshots consistent when everysec loses up to its last second of AOF', async () => {
    const run = await runCrashScenario('everysec, host crash');
    const summary = summarize(run);
    const violations = summary.unexpected.length + summary.slow.length + summary.problems.length;
    reportScenario('redis-crash appendfsync everysec host crash', {
      iterations: CYCLES,
      violations,
      details: summary.details,
    });
    expect(violations, explain(summary)).toBe(0);
    // Every cut took writes away: this scenario is about losing them.
    expect(run.cutBytes.every((bytes) => bytes > 0)).toBe(true);
    expect(summary.lost.length).toBeGreaterThan(0);
  }, 120_000);
});

/**
 * The worst moment for a lost suffix, made deterministic: a request has
 * stored its charge (or refund) intent and sent the ledger command, which is
 * still on the wire when Redis dies and comes back without the intent (the
 * last writes lost, as above). The proxy holds the ledger command in a
 * blackhole meanwhile; Redis never saw it. It must not reach the Redis that
 * came back: with no intent on record there, the money would move for a token
 * the store does not know, and the client's retry would charge it again.
 */
describe('a ledger command in flight when Redis comes back without the intent before it', () => {
  const AMOUNT_CENTS = 1_000;
  let redis: TestRedisServer;
  let proxy: TcpProxy;
  let service: TestService;
  let auditor: StoreAuditor;
  /** The token whose next command is caught, and what happened to it so far. */
  let armed: { token: string; event: 'PAY' | 'CANCEL'; sizeBeforeIntent: number | null } | null =
    null;

  beforeAll(async () => {
    // Every write acknowledged is in the file, so the size read at a step is exactly what was
    // written before it: the cut takes away the intent and nothing older.
    redis = await startRedisServer({ appendfsync: 'always' });
    proxy = await startTcpProxy({ host: '127.0.0.1', port: redis.port });
    service = await startTestService(
      testConfig(proxy.url, {
        ACCOUNT_INITIAL_BALANCE_CENTS: String(INITIAL_BALANCE_CENTS),
        LOCK_TTL_MS: '1000',
        LOCK_WAIT_MS: String(LOCK_WAIT_MS),
        RECOVERY_INTERVAL_MS: '100',
      }),
      {
        faultPoint: (name, context) => {
          if (armed === null || context.token !== armed.token || context.event !== armed.event) {
            return;
          }
          // Before the intent is written: where the AOF is cut back to.
          if (name === 'after-lock') armed.sizeBeforeIntent = statSync(appendedAof(redis)).size;
          // The intent is stored; the ledger command goes out next, into the blackhole.
          if (name === 'after-persist-intent') proxy.setMode({ kind: 'blackhole' });
        },
      },
    );
    auditor = storeAuditor({
      redisUrl: redis.url,
      keyPrefix: service.config.keyPrefix,
      initialBalanceCents: INITIAL_BALANCE_CENTS,
    });
  });

  afterAll(async () => {
    proxy.setMode({ kind: 'pass' });
    await service.stop();
    await auditor.close();
    await proxy.close();
    await redis.destroy();
  });

  const send = (step: 'pay' | 'cancel', token: string) =>
    step === 'pay'
      ? service.request('POST', '/payments', {
          headers: { 'Idempotency-Key': token },
          body: { accountId: `acct-${token}`, amountCents: AMOUNT_CENTS },
        })
      : service.request('POST', `/payments/${token}/cancel`);

  /** Retries like a client told 503 (or 409 token_busy) until it gets an acknowledged answer. */
  async function untilAcknowledged(step: 'pay' | 'cancel', token: string) {
    let last = await send(step, token);
    const retryable = () =>
      last.status === 503 || (last.status === 409 && /token_busy/.test(JSON.stringify(last.body)));
    await pollUntil(
      async () => {
        if (retryable()) last = await send(step, token);
        return !retryable();
      },
      20_000,
      100,
    );
    return last;
  }

  /**
   * Sends `step` for `token`, catches its ledger command in flight, kills
   * Redis, cuts the AOF back to before the intent, restarts Redis and lets
   * the network deliver again. Resolves with the first answer.
   */
  async function crashWithLedgerCommandInFlight(step: 'pay' | 'cancel', token: string) {
    const target = {
      token,
      event: step === 'pay' ? ('PAY' as const) : ('CANCEL' as const),
      sizeBeforeIntent: null as number | null,
    };
    armed = target;
    const first = send(step, token);
    const operation = `${step === 'pay' ? 'charge' : 'refund'}:${token}:`;
    const caught = await pollUntil(() => proxy.holds(operation), 10_000);
    armed = null;
    if (!caught || target.sizeBeforeIntent === null) {
      proxy.setMode({ kind: 'pass' });
      throw new Error(`the ${operation} command was not caught in flight`);
    }
    await redis.kill('SIGKILL');
    truncateSync(appendedAof(redis), target.sizeBeforeIntent);
    await redis.start();
    proxy.setMode({ kind: 'pass' });
    return first;
  }

  async function settledAudit(): Promise<StoreAudit> {
    await pollUntil(async () => {
      const audit = await auditor.audit({ settled: false });
      return audit.inFlight === 0 && audit.outbox === 0;
    }, RECOVERY_TIMEOUT_MS);
    return auditor.audit({ settled: true });
  }

  const CASES = iterations(1, 5);

  it('charges no token twice when Redis comes back without a charge intent whose withdrawal was in flight', async () => {
    const started = Date.now();
    const firstAnswers: number[] = [];
    const wrong: string[] = [];
    const tokens: string[] = [];
    for (let i = 0; i < CASES; i++) {
      const token = `inflight-charge-${i}-${randomBytes(3).toString('hex')}`;
      tokens.push(token);
      const first = await crashWithLedgerCommandInFlight('pay', token);
      firstAnswers.push(first.status);
      const final = await untilAcknowledged('pay', token);
      if (final.status !== 201 && final.status !== 200) {
        wrong.push(`${token}: retried payment answered ${final.status}`);
      }
    }
    const audit = await settledAudit();
    for (const token of tokens) {
      const state = audit.tokens.get(token);
      if (state?.status !== 'processed' || state.withdrawals !== 1) {
        wrong.push(`${token}: ${JSON.stringify(state)} after an acknowledged payment`);
      }
    }
    const violations = audit.problems.length + wrong.length;
    reportScenario('redis-crash withdrawal in flight, intent lost', {
      iterations: CASES,
      violations,
      details: { 'first answers': firstAnswers.join('/'), ms: Date.now() - started },
    });
    expect([...audit.problems, ...wrong]).toEqual([]);
  }, 60_000);

  it('refunds exactly once when Redis comes back without a refund intent whose deposit was in flight', async () => {
    const started = Date.now();
    const firstAnswers: number[] = [];
    const wrong: string[] = [];
    const tokens: string[] = [];
    for (let i = 0; i < CASES; i++) {
      const token = `inflight-refund-${i}-${randomBytes(3).toString('hex')}`;
      tokens.push(token);
      expect((await send('pay', token)).status).toBe(201);
      const first = await crashWithLedgerCommandInFlight('cancel', token);
      firstAnswers.push(first.status);
      const final = await untilAcknowledged('cancel', token);
      if (final.status !== 200 || (final.body as { status?: unknown }).status !== 'refunded') {
        wrong.push(
          `${token}: retried cancel answered ${final.status} ${JSON.stringify(final.body)}`,
        );
      }
    }
    const audit = await settledAudit();
    for (const token of tokens) {
      const state = audit.tokens.get(token);
      if (state?.status !== 'refunded' || state.withdrawals !== 1 || state.deposits !== 1) {
        wrong.push(`${token}: ${JSON.stringify(state)} after an acknowledged refund`);
      }
    }
    const violations = audit.problems.length + wrong.length;
    reportScenario('redis-crash deposit in flight, intent lost', {
      iterations: CASES,
      violations,
      details: { 'first answers': firstAnswers.join('/'), ms: Date.now() - started },
    });
    expect([...audit.problems, ...wrong]).toEqual([]);
  }, 60_000);
});
