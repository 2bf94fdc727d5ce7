/**
 * Redis cost of each operation: the operation is repeated sequentially (one
 * request at a time, nothing else running) and the commands Redis executed
 * are counted with MONITOR, then divided by the repetitions.
 *
 * Commands are not round trips: commands a client issues together (a
 * pipeline, or calls in Promise.all) travel in one write. So each operation
 * also reports Redis's socket reads (INFO stats total_reads_processed),
 * which is close to the number of round trips.
 */
import { contextOf, statusOf } from '../../src/payments/payment.snapshot.ts';
import { finish, type BenchContext } from '../bench-context.ts';
import { startDeployment, type Deployment } from '../deployment.ts';
import type { RequestSpec } from '../http-load.ts';
import { startTcpProxy } from '../../test/support/tcp-proxy.ts';
import { RedisCommandTally, type CommandCounts } from '../redis-command-tally.ts';
import { cancellation, payment, tokenPrefix } from '../requests.ts';

export interface OperationCost {
  readonly operation: string;
  readonly request: string;
  readonly samples: number;
  /** Commands sent by the service per operation. */
  readonly commands: number;
  /** Redis socket reads per operation: about the number of round trips. */
  readonly socketReads: number;
  /**
   * Round trips to Redis the client's answer waits for: the median latency
   * with PROXY_DELAY_MS added each way between service and Redis, over the
   * added round trip (work after the answer is not counted).
   */
  waitedRoundTrips?: number;
  /** Commands run inside scripts per operation. */
  readonly scriptCommands: number;
  readonly byCommand: Readonly<Record<string, number>>;
  readonly inScripts: Readonly<Record<string, number>>;
}

export interface RoundTripResult {
  readonly operations: readonly OperationCost[];
  /** Commands per second an idle API process sends (none expected). */
  readonly idleCommandsPerSecond: number;
  /** Commands per second an idle worker process sends (subtracted from the expiry figures). */
  readonly idleWorkerCommandsPerSecond: number;
}

const ACCOUNT = 'rt-account';

async function readsProcessed(deployment: Deployment): Promise<number> {
  return Number((await deployment.redis.info('stats')).total_reads_processed);
}

async function send(url: string, spec: RequestSpec, expected: number): Promise<void> {
  const response = await fetch(`${url}${spec.path}`, {
    method: spec.method,
    headers: {
      ...(spec.body === undefined ? {} : { 'content-type': 'application/json' }),
      ...spec.headers,
    },
    ...(spec.body === undefined ? {} : { body: spec.body }),
  });
  await response.arrayBuffer();
  if (response.status !== expected) {
    throw new Error(
      `${spec.method} ${spec.path} answered ${response.status}, expected ${expected}`,
    );
  }
}

function perOperation(
  operation: string,
  request: string,
  samples: number,
  counts: CommandCounts,
  reads: number,
): OperationCost {
  const per = (record: Readonly<Record<string, number>>) =>
    Object.fromEntries(
      Object.entries(record)
        .map(([name, count]) => [name, Math.max(0, count) / samples] as const)
        .filter(([, value]) => value > 0)
        .sort((a, b) => b[1] - a[1]),
    );
  const byCommand = per(counts.sent);
  const inScripts = per(counts.inScripts);
  const sum = (record: Readonly<Record<string, number>>) =>
    Object.values(record).reduce((a, b) => a + b, 0);
  return {
    operation,
    request,
    samples,
    commands: sum(byCommand),
    socketReads: reads / samples,
    scriptCommands: sum(inScripts),
    byCommand,
    inScripts,
  };
}

/** Counts what `samples` sequential requests cost. */
async function measureRequests(
  deployment: Deployment,
  tally: RedisCommandTally,
  operation: string,
  request: string,
  specs: readonly RequestSpec[],
  expected: number,
): Promise<OperationCost> {
  const url = deployment.urls[0] ?? '';
  const before = await tally.snapshot();
  const readsBefore = await readsProcessed(deployment);
  for (const spec of specs) await send(url, spec, expected);
  const after = await tally.snapshot();
  // Less the bench's own ECHO (snapshot) and INFO (this read).
  const reads = (await readsProcessed(deployment)) - readsBefore - 2;
  return perOperation(
    operation,
    request,
    specs.length,
    RedisCommandTally.between(before, after),
    reads,
  );
}

async function requestCosts(context: BenchContext): Promise<{
  operations: OperationCost[];
  idleCommandsPerSecond: number;
}> {
  const samples = context.settings.roundTripSamples;
  const deployment = await startDeployment({
    appendfsync: 'everysec',
    apiProcesses: 1,
    // No worker and no sweep: nothing but the measured requests talks to Redis.
    apiRoles: 'api',
    env: { RECOVERY_INTERVAL_MS: '3600000' },
  });
  try {
    const tally = await RedisCommandTally.start(deployment.redis.url, deployment.redis.client);
    try {
      const prefix = tokenPrefix('rt');
      const url = deployment.urls[0] ?? '';
      // Once each first, so script loading (NOSCRIPT → EVAL) is not counted.
      await send(url, payment(`${prefix}-warm`, ACCOUNT), 201);
      await send(url, payment(`${prefix}-warm`, ACCOUNT), 200);
      await send(url, cancellation(`${prefix}-warm`), 200);
      await send(url, cancellation(`${prefix}-warm-c`), 200);
      await send(url, payment(`${prefix}-warm-c`, ACCOUNT), 409);

      const idleFrom = await tally.snapshot();
      await new Promise((resolve) => setTimeout(resolve, 1_000));
      const idle = RedisCommandTally.between(idleFrom, await tally.snapshot());
      const idleCommandsPerSecond = Object.values(idle.sent).reduce((a, b) => a + b, 0);

      const paid = Array.from({ length: samples }, (_, i) => `${prefix}-p${i}`);
      const unknown = Array.from({ length: samples }, (_, i) => `${prefix}-c${i}`);
      const get = (token: string): RequestSpec => ({ method: 'GET', path: `/payments/${token}` });
      const operations = [
        await measureRequests(
          deployment,
          tally,
          'new payment',
          'POST /payments (new key) → 201',
          paid.map((t) => payment(t, ACCOUNT)),
          201,
        ),
        await measureRequests(
          deployment,
          tally,
          'replay',
          'POST /payments (same key and body) → 200',
          paid.map((t) => payment(t, ACCOUNT)),
          200,
        ),
        await measureRequests(
          deployment,
          tally,
          'read',
          'GET /payments/{token} → 200',
          paid.map(get),
          200,
        ),
        await measureRequests(
          deployment,
          tally,
          'cancel with refund',
          'POST /payments/{token}/cancel on a processed token → 200 refunded',
          paid.map(cancellation),
          200,
        ),
        await measureRequests(
          deployment,
          tally,
          'cancel before payment',
          'POST /payments/{token}/cancel on an unknown token → 200 cancelled',
          unknown.map(cancellation),
          200,
        ),
        await measureRequests(
          deployment,
          tally,
          'payment after cancel',
          'POST /payments on a cancelled token → 409',
          unknown.map((t) => payment(t, ACCOUNT)),
          409,
        ),
      ];
      return { operations, idleCommandsPerSecond };
    } finally {
      tally.stop();
    }
  } finally {
    await finish(context, 'round-trips/requests', deployment);
  }
}

/** Latency added each way between the service and Redis to count the round trips an answer waits for. */
const PROXY_DELAY_MS = 25;

/**
 * The round trips to Redis each request waits for: the same requests again,
 * through a proxy that delays every chunk PROXY_DELAY_MS each way, so a
 * request's latency is about 2 × PROXY_DELAY_MS per round trip it waits for.
 */
async function waitedRoundTrips(context: BenchContext): Promise<Map<string, number>> {
  const samples = Math.min(20, context.settings.roundTripSamples);
  const deployment = await startDeployment({
    appendfsync: 'everysec',
    apiProcesses: 1,
    apiRoles: 'api',
    env: { RECOVERY_INTERVAL_MS: '3600000' },
    redisVia: async (redisUrl) => {
      const proxy = await startTcpProxy({
        host: '127.0.0.1',
        port: Number(new URL(redisUrl).port),
      });
      proxy.setMode({ kind: 'latency', ms: PROXY_DELAY_MS });
      return { url: proxy.url, close: () => proxy.close() };
    },
  });
  try {
    const url = deployment.urls[0] ?? '';
    const prefix = tokenPrefix('rtw');
    const timed = async (specs: readonly RequestSpec[], expected: number) => {
      const took: number[] = [];
      for (const spec of specs) {
        const started = performance.now();
        await send(url, spec, expected);
        took.push(performance.now() - started);
        // Let work after the answer finish, so the next request waits for no lock.
        await new Promise((resolve) => setTimeout(resolve, 4 * PROXY_DELAY_MS));
      }
      took.sort((a, b) => a - b);
      return (took[Math.floor(took.length / 2)] ?? 0) / (2 * PROXY_DELAY_MS);
    };
    await send(url, payment(`${prefix}-warm`, ACCOUNT), 201);
    await send(url, cancellation(`${prefix}-warm`), 200);
    const paid = Array.from({ length: samples }, (_, i) => `${prefix}-p${i}`);
    const unknown = Array.from({ length: samples }, (_, i) => `${prefix}-c${i}`);
    return new Map([
      [
        'new payment',
        await timed(
          paid.map((t) => payment(t, ACCOUNT)),
          201,
        ),
      ],
      [
        'replay',
        await timed(
          paid.map((t) => payment(t, ACCOUNT)),
          200,
        ),
      ],
      [
        'read',
        await timed(
          paid.map((t) => ({ method: 'GET', path: `/payments/${t}` })),
          200,
        ),
      ],
      ['cancel with refund', await timed(paid.map(cancellation), 200)],
      ['cancel before payment', await timed(unknown.map(cancellation), 200)],
      [
        'payment after cancel',
        await timed(
          unknown.map((t) => payment(t, ACCOUNT)),
          409,
        ),
      ],
    ]);
  } finally {
    await finish(context, 'round-trips/waited', deployment);
  }
}

/** What one EXPIRE costs the worker, idle background subtracted. */
async function expiryCost(
  context: BenchContext,
): Promise<{ cost: OperationCost; idleCommandsPerSecond: number }> {
  const samples = context.settings.roundTripSamples;
  // Long enough for the sequential payments to finish before the first is due.
  const expiryMs = 1_000 + 50 * samples;
  const deployment = await startDeployment({
    appendfsync: 'everysec',
    apiProcesses: 1,
    apiRoles: 'api',
    workerProcesses: 1,
    env: { PAYMENT_EXPIRY_MS: String(expiryMs), RECOVERY_INTERVAL_MS: '3600000' },
  });
  try {
    const tally = await RedisCommandTally.start(deployment.redis.url, deployment.redis.client);
    try {
      const prefix = tokenPrefix('rtx');
      const url = deployment.urls[0] ?? '';
      const waitExpired = async (tokens: readonly string[]) => {
        const deadline = Date.now() + 30_000;
        for (;;) {
          const records = await Promise.all(tokens.map((t) => deployment.store.load(t)));
          if (records.every((r) => r !== null && statusOf(r.snapshot) === 'expired')) return;
          if (Date.now() > deadline) throw new Error('expiry timers did not fire');
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
      };
      await send(url, payment(`${prefix}-warm`, ACCOUNT), 201);
      await waitExpired([`${prefix}-warm`]);

      const idleFrom = await tally.snapshot();
      const idleStarted = Date.now();
      await new Promise((resolve) => setTimeout(resolve, 1_000));
      const idle = RedisCommandTally.between(idleFrom, await tally.snapshot());
      const idleSeconds = (Date.now() - idleStarted) / 1000;

      const tokens = Array.from({ length: samples }, (_, i) => `${prefix}-${i}`);
      for (const token of tokens) await send(url, payment(token, ACCOUNT), 201);
      const dueTimes = await Promise.all(
        [tokens[0] ?? '', tokens.at(-1) ?? ''].map(async (token) => {
          const record = await deployment.store.load(token);
          return record === null
            ? Date.now()
            : (contextOf(record.snapshot).expiresAt ?? Date.now());
        }),
      );
      const [firstDue = Date.now(), dueAt = Date.now()] = dueTimes;

      const before = await tally.snapshot();
      const readsBefore = await readsProcessed(deployment);
      const started = Date.now();
      const late = started > firstDue;
      // No polling inside the window: wait past the last due time, then check.
      await new Promise((resolve) => setTimeout(resolve, Math.max(0, dueAt - Date.now()) + 1_000));
      const after = await tally.snapshot();
      const reads = (await readsProcessed(deployment)) - readsBefore - 2;
      const windowSeconds = (Date.now() - started) / 1000;
      await waitExpired(tokens);

      const counts = RedisCommandTally.between(before, after);
      // Subtract what the idle service would have sent over the same window.
      const idleShare = windowSeconds / idleSeconds;
      const sent: Record<string, number> = {};
      for (const [name, count] of Object.entries(counts.sent)) {
        sent[name] = count - (idle.sent[name] ?? 0) * idleShare;
      }
      const idleCommands = Object.values(idle.sent).reduce((a, b) => a + b, 0);
      const cost = perOperation(
        'expiry',
        `EXPIRE by the worker process, for timers of tokens paid one after another`,
        samples,
        { sent, inScripts: counts.inScripts },
        Math.max(0, reads - idleCommands * idleShare),
      );
      return {
        cost: late
          ? {
              ...cost,
              request: `${cost.request} (undercounted: paying them took longer than PAYMENT_EXPIRY_MS ${expiryMs}, some expired before counting began)`,
            }
          : cost,
        idleCommandsPerSecond: idleCommands / idleSeconds,
      };
    } finally {
      tally.stop();
    }
  } finally {
    await finish(context, 'round-trips/expiry', deployment);
  }
}

export async function runRoundTrips(context: BenchContext): Promise<RoundTripResult> {
  context.log('round-trips: starting');
  const { operations, idleCommandsPerSecond } = await requestCosts(context);
  const waited = await waitedRoundTrips(context);
  for (const op of operations) op.waitedRoundTrips = waited.get(op.operation);
  const expiry = await expiryCost(context);
  return {
    operations: [...operations, expiry.cost],
    idleCommandsPerSecond,
    idleWorkerCommandsPerSecond: expiry.idleCommandsPerSecond,
  };
}
