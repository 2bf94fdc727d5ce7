/**
 * The HTTP floor: how many new-payment requests per second one process can
 * answer on this machine when answering costs nothing but HTTP. Three servers
 * (bench/floor-server.ts), each in a process of its own, under the same load
 * as the new-payments scenario: the service's express app over a runtime that
 * answers from memory, bare express 5 with its JSON parser, and bare node:http.
 * What the service does beyond HTTP (Redis, lock, machine) is the gap between
 * the first and the new-payments run.
 */
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import type { BenchContext } from '../bench-context.ts';
import { assertNotInterrupted, onCleanup } from '../cleanup.ts';
import { warmUpThenMeasure } from '../http-load.ts';
import type { Distribution } from '../percentiles.ts';
import { payment, tokenPrefix } from '../requests.ts';
import { ROOT } from '../service-process.ts';

export interface HttpFloorRun {
  readonly kind: 'app' | 'express' | 'node';
  readonly title: string;
  readonly responsesPerSecond: number;
  readonly latencyMs: Distribution;
  /** The server process's CPU over the run, % of one core. */
  readonly serverCpuPercent: number | null;
  readonly generatorCpuPercent: number | null;
  readonly otherStatuses: number;
}

const KINDS: readonly { kind: HttpFloorRun['kind']; title: string }[] = [
  { kind: 'app', title: 'the service’s express app, runtime answering from memory' },
  { kind: 'express', title: 'express 5 with its JSON body parser, fixed answer' },
  { kind: 'node', title: 'node:http, JSON body parsed, fixed answer' },
];

async function startFloorServer(kind: string) {
  assertNotInterrupted();
  const child = spawn(process.execPath, ['--import', 'tsx', 'bench/floor-server.ts', kind], {
    cwd: ROOT,
    env: { ...process.env, NODE_ENV: 'production' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exited = new Promise<void>((resolve) => {
    child.once('exit', () => {
      resolve();
    });
  });
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited;
  };
  const unregister = onCleanup(stop);
  const lines = createInterface({ input: child.stdout });
  for await (const line of lines) {
    const port = (JSON.parse(line) as { port?: unknown }).port;
    if (typeof port === 'number' && child.pid !== undefined) {
      lines.close();
      return {
        url: `http://127.0.0.1:${port}`,
        pid: child.pid,
        async stop() {
          await stop();
          unregister();
        },
      };
    }
  }
  await stop();
  unregister();
  throw new Error(`floor server ${kind} did not start`);
}

export async function runHttpFloor(context: BenchContext): Promise<HttpFloorRun[]> {
  const runs: HttpFloorRun[] = [];
  const prefix = tokenPrefix('floor');
  for (const { kind, title } of KINDS) {
    context.log(`http-floor/${kind}: starting`);
    const server = await startFloorServer(kind);
    try {
      let sent = 0;
      const watched = [
        { name: 'server', pid: server.pid },
        { name: 'load generator', pid: process.pid },
      ];
      const { load } = await warmUpThenMeasure(
        { urls: [server.url], watched: () => watched },
        context.settings,
        () => payment(`${prefix}-${sent++}`, 'account'),
      );
      const cpu = (name: string) => load.resources.find((r) => r.name === name)?.cpuPercent ?? null;
      const ok = load.statuses['201'] ?? 0;
      runs.push({
        kind,
        title,
        responsesPerSecond: ok / load.seconds,
        latencyMs: load.latencyMs,
        serverCpuPercent: cpu('server'),
        generatorCpuPercent: cpu('load generator'),
        otherStatuses: load.responses - ok,
      });
      context.log(`http-floor/${kind}: ${(ok / load.seconds).toFixed(0)}/s`);
      if (ok !== load.responses) {
        context.fail(`http-floor/${kind}: ${load.responses - ok} answers were not 201`);
      }
    } finally {
      await server.stop();
    }
  }
  return runs;
}
