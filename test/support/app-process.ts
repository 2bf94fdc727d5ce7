/**
 * The service as real processes (`node --import tsx src/main.ts`, or
 * test/support/service-entry.ts when a test sets a fault point) for fault
 * tests that kill, stop and resume them, and a plain HTTP client that opens a
 * connection per request, so a process dying mid-request shows up as a
 * dropped connection of that request alone.
 */
import { readFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { assertMatchesContract, ContractError } from './contract.ts';
import { spawnScript, type ServiceProcess } from './processes.ts';
import { waitFor } from './service-harness.ts';

export interface HttpReply {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: unknown;
}

/** The `code` of an error body, or null. */
export function errorCode(reply: HttpReply): string | null {
  const body = reply.body as { error?: { code?: unknown } } | null;
  return typeof body?.error?.code === 'string' ? body.error.code : null;
}

/** Error codes a client should retry the same request on. */
const RETRYABLE_CODES = new Set(['token_busy', 'conflict', 'unavailable', 'storage_full']);

export function isRetryable(reply: HttpReply): boolean {
  const code = errorCode(reply);
  return code !== null && RETRYABLE_CODES.has(code);
}

/** One request on a fresh connection; rejects if the connection drops before an answer. */
export function send(
  baseUrl: string,
  method: string,
  path: string,
  options: { body?: unknown; headers?: Record<string, string> } = {},
): Promise<HttpReply> {
  const payload = options.body === undefined ? undefined : JSON.stringify(options.body);
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      `${baseUrl}${path}`,
      {
        method,
        agent: false,
        headers: {
          ...(payload === undefined
            ? {}
            : {
                'content-type': 'application/json',
                'content-length': String(Buffer.byteLength(payload)),
              }),
          ...options.headers,
        },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (text += chunk));
        res.on('error', reject);
        res.on('end', () => {
          let body: unknown = text;
          try {
            body = text === '' ? null : JSON.parse(text);
          } catch {
            // not JSON: keep the text
          }
          const reply = { status: res.statusCode ?? 0, headers: res.headers, body };
          try {
            assertMatchesContract({
              method,
              path,
              status: reply.status,
              header: (name) => {
                const value = res.headers[name.toLowerCase()];
                return Array.isArray(value) ? value.join(', ') : value;
              },
              body,
            });
          } catch (error) {
            reject(error instanceof Error ? error : new Error(String(error)));
            return;
          }
          resolve(reply);
        });
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

export interface AppProcess {
  readonly name: string;
  readonly pid: number;
  /** `http://127.0.0.1:port` when the api role runs. */
  readonly url: string | null;
  readonly process: ServiceProcess;
  request(
    method: string,
    path: string,
    options?: { body?: unknown; headers?: Record<string, string> },
  ): Promise<HttpReply>;
  /** Waits for the process to end (by itself or a signal), at most `timeoutMs`. */
  exited(timeoutMs?: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  isAlive(): boolean;
  /** True while the process is stopped (SIGSTOP), from /proc. */
  isStopped(): boolean;
  /** Graceful shutdown (SIGTERM) and wait for the exit. */
  stop(): Promise<void>;
}

function processState(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // "pid (comm) S ...": the state follows the last ')'.
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
  } catch {
    return null;
  }
}

/**
 * Starts service processes with a common environment and kills whatever is
 * still running at the end, stopped processes included.
 */
export class AppProcesses {
  private readonly started: AppProcess[] = [];

  constructor(private readonly common: Record<string, string>) {}

  /** `wrapper` runs the process through a command (e.g. `faketime -f +10m`). */
  async start(
    name: string,
    env: Record<string, string> = {},
    wrapper: readonly string[] = [],
  ): Promise<AppProcess> {
    const all = { ...this.common, ...env };
    // Fault settings are the test entry point's; production's main knows none.
    const faults = ['PAYSTATE_TEST_CRASH_AT', 'PAYSTATE_TEST_PAUSE_AT'].some(
      (name) => (all[name] ?? '') !== '',
    );
    const child = spawnScript(
      faults ? 'test/support/service-entry.ts' : 'src/main.ts',
      [],
      { PORT: '0', HOST: '127.0.0.1', PAYSTATE_MANAGED_REDIS: 'never', ...all },
      wrapper,
    );
    const isAlive = () => child.child.exitCode === null && child.child.signalCode === null;
    const pid = child.child.pid;
    if (pid === undefined) throw new Error(`${name} did not start`);
    const app: AppProcess = {
      name,
      pid,
      url: null,
      process: child,
      request: (method, path, options) => {
        if (app.url === null) throw new Error(`${name} runs no api role`);
        return send(app.url, method, path, options);
      },
      async exited(timeoutMs = 10_000) {
        let timer: NodeJS.Timeout | undefined;
        try {
          return await Promise.race([
            child.exited(),
            new Promise<never>((_, reject) => {
              timer = setTimeout(() => {
                reject(new Error(`${name} (pid ${pid}) still running after ${timeoutMs} ms`));
              }, timeoutMs);
            }),
          ]);
        } finally {
          clearTimeout(timer);
        }
      },
      isAlive,
      isStopped: () => isAlive() && processState(pid) === 'T',
      async stop() {
        if (!isAlive()) return;
        child.child.kill('SIGTERM');
        await app.exited();
      },
    };
    this.started.push(app);
    await child.waitForOutput('paystate started');
    const line = child
      .output()
      .split('\n')
      .find((l) => l.includes('"paystate started"'));
    const started = JSON.parse(line ?? '{}') as { url?: string | null };
    return Object.assign(app, { url: started.url ?? null });
  }

  /** SIGKILL every process still running (resuming stopped ones first) and wait for them. */
  async killAll(): Promise<void> {
    await Promise.all(
      this.started
        .filter((p) => p.isAlive())
        .map(async (p) => {
          p.process.child.kill('SIGKILL');
          p.process.child.kill('SIGCONT');
          await p.exited().catch(() => undefined);
        }),
    );
  }
}

/**
 * Sends a request until it gets an answer that is not a retryable error (a
 * dropped connection, token_busy, conflict, unavailable), as a client would.
 */
export async function untilAnswered(
  attempt: () => Promise<HttpReply>,
  what: string,
  timeoutMs = 20_000,
): Promise<HttpReply> {
  return waitFor(
    async () => {
      try {
        const reply = await attempt();
        return isRetryable(reply) ? undefined : reply;
      } catch (error) {
        if (error instanceof ContractError) throw error;
        return undefined;
      }
    },
    { timeoutMs, intervalMs: 50, what },
  );
}

/** Waits until `app` is stopped by a signal (its own SIGSTOP). */
export async function waitUntilStopped(app: AppProcess, timeoutMs = 10_000): Promise<void> {
  await waitFor(() => (app.isStopped() ? true : undefined), {
    timeoutMs,
    intervalMs: 10,
    what: `${app.name} to stop`,
  });
}

/** Each token pays from an account of its own, so tokens never decline each other. */
export const accountOf = (token: string): string => `acct-${token}`;

/** The native pay and cancel requests of one token, as a client sends them to a process. */
export function tokenRequests(amountCents: number) {
  return {
    pay: (app: AppProcess, token: string) =>
      app.request('POST', '/payments', {
        headers: { 'Idempotency-Key': token },
        body: { accountId: accountOf(token), amountCents },
      }),
    cancel: (app: AppProcess, token: string) => app.request('POST', `/payments/${token}/cancel`),
  };
}

/** `promise`, or a rejection naming `what` after `timeoutMs`. */
export async function within<T>(promise: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          reject(new Error(`${what}: nothing after ${timeoutMs} ms`));
        }, timeoutMs);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Waits for `app` to exit and says how long after `since` it did. */
export async function exitOf(app: AppProcess, since: number, timeoutMs: number) {
  const exit = await app.exited(timeoutMs);
  return { ...exit, afterMs: Date.now() - since };
}
