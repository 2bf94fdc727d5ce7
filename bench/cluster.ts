/**
 * `npm run bench:cluster`: new payments on a Redis Cluster (3 masters, 3
 * replicas) against one Redis, in one sitting, each with one service process
 * (api and worker) and the same closed-loop HTTP load. Reports payments per
 * second and latency, Redis CPU and commands per payment on every master
 * (and the standalone Redis), and how the expiry timers spread over the
 * masters. Writes bench/results/cluster.json.
 *
 * Options: `--seconds N` (measured, default 15), `--connections N` (32).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { format, resolveConfig } from 'prettier';
import { AppProcesses } from '../test/support/app-process.ts';
import { startRedisCluster } from '../test/support/redis-cluster.ts';
import { startRedisServer } from '../test/support/redis-server.ts';
import { describeEnvironment, loadAverage } from './environment.ts';
import { countOf, runLoad, type LoadResult } from './http-load.ts';
import { accountIds, payment, tokenPrefix } from './requests.ts';

const INITIAL_BALANCE_CENTS = 10_000_000_000;
const TIMER_QUEUES = 6;

interface NodeCounters {
  readonly calls: number;
  readonly cpuSeconds: number;
}

async function counters(redis: Redis): Promise<NodeCounters> {
  const [commandstats, cpu] = await Promise.all([redis.info('commandstats'), redis.info('cpu')]);
  let calls = 0;
  for (const match of commandstats.matchAll(/calls=(\d+)/g)) calls += Number(match[1]);
  const field = (name: string) => Number(new RegExp(`${name}:([\\d.]+)`).exec(cpu)?.[1] ?? 0);
  return { calls, cpuSeconds: field('used_cpu_user') + field('used_cpu_sys') };
}

interface ShardFigures {
  readonly node: string;
  readonly commandsPerPayment: number;
  /** Redis CPU over the measured run, % of one core. */
  readonly cpuPercent: number;
  /** Payment records it holds. */
  readonly records: number;
  /** Expiry timers (delayed jobs) it holds. */
  readonly timers: number;
}

interface SetupFigures {
  readonly setup: 'standalone' | 'cluster';
  readonly paymentsPerSecond: number;
  readonly latencyMs: { p50: number; p99: number };
  readonly created: number;
  readonly otherStatuses: Record<string, number>;
  readonly shards: readonly ShardFigures[];
}

async function measure(
  setup: SetupFigures['setup'],
  url: string,
  prefix: string,
  nodes: readonly { name: string; redis: Redis }[],
  options: { seconds: number; connections: number },
): Promise<SetupFigures> {
  const accounts = accountIds('acct', 1_000);
  const tokens = tokenPrefix(setup);
  let sent = 0;
  const next = () => {
    const i = sent++;
    return payment(`${tokens}-${i}`, accounts[i % accounts.length] ?? 'acct');
  };
  await runLoad({ urls: [url], connections: options.connections, durationS: 3, next });
  const before = await Promise.all(nodes.map((n) => counters(n.redis)));
  const load: LoadResult = await runLoad({
    urls: [url],
    connections: options.connections,
    durationS: options.seconds,
    next,
  });
  const after = await Promise.all(nodes.map((n) => counters(n.redis)));
  const created = countOf(load, 201);
  const shards = await Promise.all(
    nodes.map(async ({ name, redis }, i) => {
      const delta = {
        calls: (after[i]?.calls ?? 0) - (before[i]?.calls ?? 0),
        cpu: (after[i]?.cpuSeconds ?? 0) - (before[i]?.cpuSeconds ?? 0),
      };
      const records = (await redis.keys(`${prefix}:{${setup}-*}:state`)).length;
      let timers = 0;
      for (const key of await redis.keys(`${prefix}:bull*:payment-timers:delayed`)) {
        timers += await redis.zcard(key);
      }
      return {
        node: name,
        // INFO's own calls (one per counters() read) are a rounding error here.
        commandsPerPayment: created === 0 ? 0 : delta.calls / created,
        cpuPercent: (delta.cpu / load.seconds) * 100,
        records,
        timers,
      };
    }),
  );
  const otherStatuses = { ...load.statuses };
  delete otherStatuses['201'];
  return {
    setup,
    paymentsPerSecond: created / load.seconds,
    latencyMs: { p50: load.latencyMs.p50, p99: load.latencyMs.p99 },
    created,
    otherStatuses,
    shards,
  };
}

interface Options {
  readonly seconds: number;
  readonly connections: number;
}

/** One Redis (AOF everysec), one service process. */
async function runStandalone(
  env: Record<string, string>,
  options: Options,
  results: SetupFigures[],
): Promise<void> {
  const single = await startRedisServer({ appendfsync: 'everysec' });
  const singleApps = new AppProcesses({ ...env, REDIS_URL: single.url, REDIS_KEY_PREFIX: 'bs' });
  const singleAdmin = new Redis(single.url);
  try {
    const app = await singleApps.start('standalone');
    results.push(
      await measure(
        'standalone',
        app.url ?? '',
        'bs',
        [{ name: `:${single.port}`, redis: singleAdmin }],
        options,
      ),
    );
  } finally {
    singleAdmin.disconnect();
    await singleApps.killAll();
    await single.destroy();
  }
}

async function runCluster(
  env: Record<string, string>,
  options: Options,
  results: SetupFigures[],
): Promise<void> {
  // A 3+3 cluster (AOF everysec on every node), one service process.
  const cluster = await startRedisCluster({ extraArgs: ['--appendfsync', 'everysec'] });
  const clusterApps = new AppProcesses({
    ...env,
    REDIS_CLUSTER_NODES: cluster.seeds,
    REDIS_URL: 'redis://127.0.0.1:1',
    REDIS_KEY_PREFIX: 'bc',
    TIMER_QUEUES: String(TIMER_QUEUES),
  });
  try {
    const app = await clusterApps.start('cluster');
    const masters = (await cluster.masters()).map((port) => ({
      name: `:${port}`,
      redis: cluster.node(port),
    }));
    results.push(await measure('cluster', app.url ?? '', 'bc', masters, options));
  } finally {
    await clusterApps.killAll();
    await cluster.destroy();
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      seconds: { type: 'string' },
      connections: { type: 'string' },
      only: { type: 'string' },
      env: { type: 'string', multiple: true },
    },
  });
  const extraEnv = Object.fromEntries(
    (values.env ?? []).map((pair) => {
      const [name = '', ...value] = pair.split('=');
      return [name, value.join('=')];
    }),
  );
  const options = {
    seconds: Number(values.seconds ?? 15),
    connections: Number(values.connections ?? 32),
  };
  const loadAtStart = loadAverage();
  const results: SetupFigures[] = [];
  const env = {
    ACCOUNT_INITIAL_BALANCE_CENTS: String(INITIAL_BALANCE_CENTS),
    NODE_ENV: 'production',
    ...extraEnv,
  };

  if (values.only !== 'cluster') await runStandalone(env, options, results);
  if (values.only !== 'standalone') await runCluster(env, options, results);
  const report = {
    at: new Date().toISOString(),
    environment: describeEnvironment(),
    loadAverageAtStart: loadAtStart,
    loadAverageAtEnd: loadAverage(),
    options,
    results,
  };
  const dir = join(import.meta.dirname, 'results');
  mkdirSync(dir, { recursive: true });
  // Formatted as the repository formats it, so a run leaves a clean tree.
  const path = join(dir, 'cluster.json');
  const prettier = (await resolveConfig(path)) ?? {};
  writeFileSync(path, await format(JSON.stringify(report), { ...prettier, parser: 'json' }));
  for (const r of results) {
    console.log(
      `${r.setup}: ${r.paymentsPerSecond.toFixed(0)} payments/s, p50 ${r.latencyMs.p50.toFixed(1)} ms, p99 ${r.latencyMs.p99.toFixed(1)} ms, other statuses ${JSON.stringify(r.otherStatuses)}`,
    );
    for (const s of r.shards) {
      console.log(
        `  ${s.node}: ${s.commandsPerPayment.toFixed(1)} commands/payment, CPU ${s.cpuPercent.toFixed(0)}%, ${s.records} records, ${s.timers} timers`,
      );
    }
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
