/**
 * The service as it is run in production: built by `npm run build` and
 * started as `npm run start:prod` starts it (node flags and entry point read
 * from package.json), with its environment, as a child process whose pid the
 * bench watches (RSS, CPU) and whose node flags it may add to (e.g. --cpu-prof).
 */
import { copyLuaScripts } from '../scripts/copy-lua.ts';
import { execFileSync, spawn } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { assertNotInterrupted, onCleanup } from './cleanup.ts';

export const ROOT = fileURLToPath(new URL('..', import.meta.url));

export const PRODUCTION_SCRIPT = 'start:prod';

/**
 * `npm run start:prod` as node arguments: its flags, then the entry point
 * (the script's leading `exec`, which hands npm's signals to node, aside).
 */
export function productionCommand(root: string = ROOT): {
  readonly nodeFlags: string[];
  readonly entry: string;
} {
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
    scripts?: Record<string, string>;
  };
  const words = (pkg.scripts?.[PRODUCTION_SCRIPT] ?? '').trim().split(/\s+/);
  if (words[0] === 'exec') words.shift();
  const entry = words.at(-1);
  if (words[0] !== 'node' || entry === undefined || !entry.endsWith('.js')) {
    throw new Error(
      `package.json script ${PRODUCTION_SCRIPT} is not "[exec] node [flags] <entry>.js"`,
    );
  }
  return { nodeFlags: words.slice(1, -1), entry };
}

/**
 * Compiles the service afresh, as `npm run build` does (into dist/, with
 * source maps); `root`: another checkout of it (see bench/compare.ts).
 */
export function buildService(root: string = ROOT): void {
  rmSync(join(root, 'dist'), { recursive: true, force: true });
  execFileSync(
    process.execPath,
    [join(root, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.build.json'],
    { cwd: root, stdio: 'inherit' },
  );
  // The Lua scripts are read beside the compiled modules (none before they were files).
  copyLuaScripts(root);
}

/** Keep only the end of a chatty process's output. */
const OUTPUT_LIMIT = 64 * 1024;

export interface ServiceProcess {
  readonly name: string;
  readonly pid: number;
  /** `http://127.0.0.1:port` when the api role runs, else null. */
  readonly url: string | null;
  /** True when the process exited before `stop()` asked it to. */
  exitedUnexpectedly(): boolean;
  output(): string;
  /** SIGTERM, wait for the graceful exit (SIGKILL after `graceMs`). */
  stop(graceMs?: number): Promise<StopOutcome>;
}

export interface StopOutcome {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  /** True when it had to be killed. */
  readonly killed: boolean;
}

interface StartedLine {
  message?: unknown;
  url?: unknown;
}

export async function startServiceProcess(options: {
  name: string;
  env: Record<string, string>;
  nodeArgs?: readonly string[];
  readyTimeoutMs?: number;
  /**
   * `discard`: the process's stdout goes to /dev/null (nothing in this
   * process reads its log); needs a fixed PORT, readiness is then /healthz.
   */
  stdout?: 'pipe' | 'discard';
  /** The checkout whose build runs (default: this one). */
  root?: string;
}): Promise<ServiceProcess> {
  assertNotInterrupted();
  const root = options.root ?? ROOT;
  const { nodeFlags, entry } = productionCommand(root);
  const child = spawn(process.execPath, [...nodeFlags, ...(options.nodeArgs ?? []), entry], {
    cwd: root,
    env: { ...process.env, ...options.env },
    stdio: ['ignore', options.stdout === 'discard' ? 'ignore' : 'pipe', 'pipe'],
  });
  const pid = child.pid;
  if (pid === undefined) throw new Error(`${options.name}: could not spawn node`);

  let output = '';
  const append = (chunk: Buffer) => {
    output += chunk.toString();
    if (output.length > OUTPUT_LIMIT * 2) output = output.slice(-OUTPUT_LIMIT);
  };
  let stopping = false;
  let exitedEarly = false;
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => {
      if (!stopping) exitedEarly = true;
      resolve({ code, signal });
    });
  });

  const ready = new Promise<string | null>((resolve, reject) => {
    let pending = '';
    const timer = setTimeout(() => {
      reject(new Error(`${options.name} did not start in time:\n${output}`));
    }, options.readyTimeoutMs ?? 30_000);
    child.stdout?.on('data', (chunk: Buffer) => {
      append(chunk);
      pending += chunk.toString();
      let newline = pending.indexOf('\n');
      while (newline >= 0) {
        const line = pending.slice(0, newline);
        pending = pending.slice(newline + 1);
        newline = pending.indexOf('\n');
        if (!line.includes('paystate started')) continue;
        clearTimeout(timer);
        try {
          const parsed = JSON.parse(line) as StartedLine;
          resolve(typeof parsed.url === 'string' ? parsed.url : null);
        } catch {
          resolve(null);
        }
      }
    });
    child.stderr?.on('data', append);
    // A fixed port (PORT set): also ready when /healthz answers, for a process
    // that logs nothing (LOG_LEVEL=silent prints no start-up line).
    const port = options.env.PORT ?? '0';
    if (port !== '0') {
      const url = `http://${options.env.HOST ?? '127.0.0.1'}:${port}`;
      const poll = () => {
        if (child.exitCode !== null) return;
        fetch(`${url}/healthz`).then(
          (reply) => {
            if (reply.status !== 200) {
              setTimeout(poll, 50);
              return;
            }
            clearTimeout(timer);
            resolve(url);
          },
          () => {
            setTimeout(poll, 50);
          },
        );
      };
      poll();
    }
    void exit.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`${options.name} exited (${code ?? signal}) while starting:\n${output}`));
    });
  });

  const kill = async (graceMs: number): Promise<StopOutcome> => {
    stopping = true;
    if (child.exitCode !== null || child.signalCode !== null) {
      const { code, signal } = await exit;
      return { code, signal, killed: false };
    }
    child.kill('SIGTERM');
    let killed = false;
    const timer = setTimeout(() => {
      killed = true;
      child.kill('SIGKILL');
    }, graceMs);
    const { code, signal } = await exit;
    clearTimeout(timer);
    return { code, signal, killed };
  };
  const unregister = onCleanup(async () => {
    await kill(5_000);
  });

  let url: string | null;
  try {
    url = await ready;
    assertNotInterrupted();
  } catch (error) {
    await kill(2_000);
    unregister();
    throw error;
  }
  return {
    name: options.name,
    pid,
    url,
    exitedUnexpectedly: () => exitedEarly,
    output: () => output,
    async stop(graceMs = 20_000) {
      const outcome = await kill(graceMs);
      unregister();
      return outcome;
    },
  };
}
