/**
 * A private Redis Cluster for a test suite: 3 masters and 3 replicas from
 * `redis-server` on free ports, joined by `redis-cli --cluster create`, with
 * a short cluster-node-timeout so a killed master's replica takes over
 * within a couple of seconds. Shared with bench/.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { startRedisServer, type TestRedisServer } from './redis-server.ts';

const run = promisify(execFile);

export interface ClusterNodeState {
  readonly port: number;
  readonly id: string;
  readonly role: 'master' | 'replica';
  /** For a replica, the id of its master. */
  readonly masterId: string | null;
  readonly failed: boolean;
}

export interface TestRedisCluster {
  /** Every node ever started, by port. */
  readonly servers: ReadonlyMap<number, TestRedisServer>;
  /** `127.0.0.1:port,…` of every node, for REDIS_CLUSTER_NODES. */
  readonly seeds: string;
  /** The topology as a live node sees it. */
  topology(): Promise<ClusterNodeState[]>;
  /** Ports of the current masters that are up. */
  masters(): Promise<number[]>;
  /** A direct connection to one node (closed by destroy). */
  node(port: number): Redis;
  /** Waits until every live node reports cluster_state:ok and every live replica is in sync. */
  waitHealthy(timeoutMs?: number): Promise<void>;
  /** SIGKILLs master `port` and waits until a replica has taken over its slots. */
  failover(port: number, timeoutMs?: number): Promise<number>;
  /** Starts a killed node again (it rejoins, as a replica of whoever took over). */
  restart(port: number): Promise<void>;
  destroy(): Promise<void>;
}

export interface RedisClusterOptions {
  readonly masters?: number;
  /** cluster-node-timeout, ms (default 1000). */
  readonly nodeTimeoutMs?: number;
  readonly extraArgs?: readonly string[];
}

async function poll(what: string, timeoutMs: number, check: () => Promise<boolean>) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`redis cluster: ${what} within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

function parseNodes(text: string): ClusterNodeState[] {
  return text
    .trim()
    .split('\n')
    .map((line) => {
      const [id = '', address = '', flags = '', master = '-'] = line.split(' ');
      const port = Number(/:(\d+)@/.exec(address)?.[1] ?? 0);
      const flagList = flags.split(',');
      return {
        port,
        id,
        role: flagList.includes('master') ? ('master' as const) : ('replica' as const),
        masterId: master === '-' ? null : master,
        failed: flagList.includes('fail') || flagList.includes('fail?'),
      };
    });
}

export async function startRedisCluster(
  options: RedisClusterOptions = {},
): Promise<TestRedisCluster> {
  const masterCount = options.masters ?? 3;
  const servers = new Map<number, TestRedisServer>();
  const connections = new Map<number, Redis>();
  const dead = new Set<number>();
  const started = await Promise.all(
    Array.from({ length: masterCount * 2 }, () =>
      startRedisServer({
        clusterBus: true,
        extraArgs: [
          '--cluster-enabled',
          'yes',
          '--cluster-node-timeout',
          String(options.nodeTimeoutMs ?? 1_000),
          // A replica may take over however far it lags: the tests kill masters on purpose.
          '--cluster-replica-validity-factor',
          '0',
          ...(options.extraArgs ?? []),
        ],
      }),
    ),
  );
  for (const server of started) servers.set(server.port, server);
  const ports = [...servers.keys()];

  const node = (port: number): Redis => {
    let connection = connections.get(port);
    if (connection === undefined) {
      connection = new Redis(port, '127.0.0.1', {
        maxRetriesPerRequest: 1,
        retryStrategy: () => 200,
      });
      connection.on('error', () => undefined);
      connections.set(port, connection);
    }
    return connection;
  };
  const live = () => ports.filter((p) => !dead.has(p));

  const topology = async (): Promise<ClusterNodeState[]> => {
    for (const port of live()) {
      try {
        return parseNodes((await node(port).call('CLUSTER', 'NODES')) as string);
      } catch {
        // try the next node
      }
    }
    throw new Error('no cluster node answers');
  };

  const masters = async () =>
    (await topology())
      .filter((n) => n.role === 'master' && !n.failed && !dead.has(n.port))
      .map((n) => n.port);

  const waitHealthy = (timeoutMs = 20_000) =>
    poll('not healthy', timeoutMs, async () => {
      for (const port of live()) {
        const info = (await node(port).call('CLUSTER', 'INFO')) as string;
        if (!info.includes('cluster_state:ok')) return false;
        const replication = await node(port).info('replication');
        if (replication.includes('role:slave') && !replication.includes('master_link_status:up')) {
          return false;
        }
      }
      const view = await topology();
      return view.filter((n) => n.role === 'master' && !n.failed).length === masterCount;
    });

  await run(
    'redis-cli',
    [
      '--cluster',
      'create',
      ...ports.map((p) => `127.0.0.1:${p}`),
      '--cluster-replicas',
      '1',
      '--cluster-yes',
    ],
    { timeout: 30_000 },
  );
  await waitHealthy();

  return {
    servers,
    seeds: ports.map((p) => `127.0.0.1:${p}`).join(','),
    topology,
    masters,
    node,
    waitHealthy,
    async failover(port, timeoutMs = 20_000) {
      const before = await topology();
      const victim = before.find((n) => n.port === port);
      if (victim?.role !== 'master') throw new Error(`${port} is not a master`);
      dead.add(port);
      connections.get(port)?.disconnect();
      connections.delete(port);
      await servers.get(port)?.kill('SIGKILL');
      let promoted = 0;
      await poll('no replica took over', timeoutMs, async () => {
        const view = await topology();
        const heir = view.find(
          (n) =>
            n.role === 'master' &&
            !n.failed &&
            before.some((b) => b.port === n.port && b.masterId === victim.id),
        );
        if (heir === undefined) return false;
        promoted = heir.port;
        const info = (await node(heir.port).call('CLUSTER', 'INFO')) as string;
        return info.includes('cluster_state:ok');
      });
      return promoted;
    },
    async restart(port) {
      await servers.get(port)?.start();
      dead.delete(port);
    },
    async destroy() {
      for (const connection of connections.values()) connection.disconnect();
      await Promise.all([...servers.values()].map((s) => s.destroy()));
    },
  };
}
