/**
 * One scenario's world: a fresh redis-server with the chosen AOF fsync policy,
 * a fresh key prefix, and the service as real processes on free ports.
 */
import { randomBytes } from 'node:crypto';
import { createKeys, type Keys } from '../src/payments/keys.ts';
import { readPaymentRecord, type PaymentSnapshot } from '../src/payments/payment.snapshot.ts';
import { startBenchRedis, type Appendfsync, type BenchRedis } from './bench-redis.ts';
import type { WatchedProcess } from './resource-sampler.ts';
import { startServiceProcess, type ServiceProcess } from './service-process.ts';

/** Large enough that no scenario ever runs an account dry. */
export const INITIAL_BALANCE_CENTS = 10_000_000_000;

export interface DeploymentOptions {
  readonly appendfsync: Appendfsync;
  /** Processes serving HTTP. */
  readonly apiProcesses: number;
  /** PAYSTATE_ROLES of the HTTP processes: both roles, as `npm start` runs, unless told. */
  readonly apiRoles?: 'api,worker' | 'api';
  /** Processes with PAYSTATE_ROLES=worker only. */
  readonly workerProcesses?: number;
  /** Service settings on top of the bench's defaults. */
  readonly env?: Readonly<Record<string, string>>;
  /** Node flags of the HTTP processes (e.g. --cpu-prof). */
  readonly nodeArgs?: readonly string[];
  /** Puts something between the service and Redis (e.g. a proxy adding latency): the URL the service gets. */
  readonly redisVia?: (redisUrl: string) => Promise<{ url: string; close(): Promise<void> }>;
  /** `discard`: the HTTP processes' logs go to /dev/null (see startServiceProcess). */
  readonly stdout?: 'pipe' | 'discard';
  /** Runs the build of another checkout of the service (see bench/compare.ts). */
  readonly root?: string;
}

export interface DeploymentDescription {
  readonly appendfsync: Appendfsync;
  readonly apiProcesses: number;
  readonly apiRoles: string;
  readonly workerProcesses: number;
  readonly env: Readonly<Record<string, string>>;
}

export interface Deployment {
  readonly redis: BenchRedis;
  readonly prefix: string;
  readonly keys: Keys;
  /** Reads stored records the way the service does. */
  /** Reads a token's record straight from Redis. */
  readonly store: {
    load(
      token: string,
    ): Promise<{ version: number; snapshot: PaymentSnapshot; owed: boolean } | null>;
  };
  readonly apis: readonly ServiceProcess[];
  readonly workers: readonly ServiceProcess[];
  readonly urls: readonly string[];
  readonly description: DeploymentDescription;
  /** Starts one more PAYSTATE_ROLES=worker process. */
  addWorker(): Promise<ServiceProcess>;
  /** The processes a load run watches: service processes, Redis, and the load generator. */
  watched(): WatchedProcess[];
  /** Service processes that died on their own so far. */
  crashes(): string[];
  /** Stops everything; returns what went wrong (crashes, unclean stops). */
  stop(): Promise<string[]>;
}

export async function startDeployment(options: DeploymentOptions): Promise<Deployment> {
  const redis = await startBenchRedis(options.appendfsync);
  const via = await options.redisVia?.(redis.url);
  const prefix = `bench${randomBytes(4).toString('hex')}`;
  const keys = createKeys(prefix);
  const baseEnv: Record<string, string> = {
    HOST: '127.0.0.1',
    PORT: '0',
    REDIS_URL: via?.url ?? redis.url,
    REDIS_KEY_PREFIX: prefix,
    PAYSTATE_MANAGED_REDIS: 'never',
    PAYSTATE_TEST_CRASH_AT: '',
    ACCOUNT_INITIAL_BALANCE_CENTS: String(INITIAL_BALANCE_CENTS),
    // The audits chain every account's whole ledger from its initial balance.
    ACCOUNT_LEDGER_LIMIT: '1000000',
    NODE_ENV: 'production',
    ...options.env,
  };
  const apis: ServiceProcess[] = [];
  const workers: ServiceProcess[] = [];
  const apiRoles = options.apiRoles ?? 'api,worker';

  const addWorker = async () => {
    const worker = await startServiceProcess({
      name: `worker-${workers.length + 1}`,
      env: { ...baseEnv, PAYSTATE_ROLES: 'worker' },
      ...(options.root === undefined ? {} : { root: options.root }),
    });
    workers.push(worker);
    return worker;
  };

  const stop = async (): Promise<string[]> => {
    const problems = crashes();
    const all = [...apis, ...workers];
    const outcomes = await Promise.all(all.map((p) => p.stop()));
    outcomes.forEach((outcome, i) => {
      const name = all[i]?.name ?? '?';
      if (outcome.killed) problems.push(`${name} did not stop within its grace period`);
      else if (outcome.code !== 0 && !problems.some((p) => p.startsWith(name))) {
        problems.push(`${name} exited with ${outcome.code ?? outcome.signal} on SIGTERM`);
      }
    });
    await via?.close();
    await redis.stop();
    return problems;
  };
  const crashes = () =>
    [...apis, ...workers]
      .filter((p) => p.exitedUnexpectedly())
      .map((p) => `${p.name} exited on its own:\n${p.output().slice(-2_000)}`);

  try {
    const started = await Promise.all(
      Array.from({ length: options.apiProcesses }, (_, i) =>
        startServiceProcess({
          name: `api-${i + 1}`,
          env: { ...baseEnv, PAYSTATE_ROLES: apiRoles },
          nodeArgs: options.nodeArgs ?? [],
          ...(options.stdout === undefined ? {} : { stdout: options.stdout }),
          ...(options.root === undefined ? {} : { root: options.root }),
        }),
      ),
    );
    apis.push(...started);
    for (let i = 0; i < (options.workerProcesses ?? 0); i++) await addWorker();
  } catch (error) {
    await stop();
    throw error;
  }

  const urls = apis.map((p) => {
    if (p.url === null) throw new Error(`${p.name} does not serve HTTP`);
    return p.url;
  });

  return {
    redis,
    prefix,
    keys,
    store: { load: (token) => readPaymentRecord(redis.client, keys.state(token)) },
    apis,
    workers,
    urls,
    description: {
      appendfsync: options.appendfsync,
      apiProcesses: options.apiProcesses,
      apiRoles,
      workerProcesses: options.workerProcesses ?? 0,
      env: options.env ?? {},
    },
    addWorker,
    watched: () => [
      ...apis.map((p) => ({ name: p.name, pid: p.pid })),
      ...workers.map((p) => ({ name: p.name, pid: p.pid })),
      { name: 'redis-server', pid: redis.pid },
      { name: 'load generator', pid: process.pid },
    ],
    crashes,
    stop,
  };
}
