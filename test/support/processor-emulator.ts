/**
 * The processor emulator as a real process (`node --import tsx
 * src/processor/emulator/main.ts`) on a free loopback port, and its control
 * API, for tests of the processor connector.
 */
import type { Charge } from '../../src/processor/protocol.ts';
import type { JournalEntry } from '../../src/processor/emulator/charge-book.ts';
import type { Delivery } from '../../src/processor/emulator/webhook-sender.ts';
import type { FaultRule } from '../../src/processor/emulator/faults.ts';
import type { WebhookEvent } from '../../src/processor/protocol.ts';
import { spawnScript, type ServiceProcess } from './processes.ts';
import { freePort } from './redis-server.ts';

export const EMULATOR_SCRIPT = 'src/processor/emulator/main.ts';

export interface EmulatorProcess {
  readonly url: string;
  readonly secret: string;
  readonly process: ServiceProcess;
  addFault(rule: Omit<FaultRule, 'id'>): Promise<FaultRule>;
  faults(): Promise<(FaultRule & { seen: number; fired: number })[]>;
  journal(filter?: {
    idempotency_key?: string;
    account?: string;
    charge?: string;
  }): Promise<JournalEntry[]>;
  events(): Promise<WebhookEvent[]>;
  deliveries(): Promise<Delivery[]>;
  /** The charge as the emulator holds it, read with the bearer secret. */
  charge(id: string): Promise<Charge>;
  reset(): Promise<void>;
  stop(): Promise<void>;
}

async function control(url: string, path: string, init: RequestInit = {}): Promise<unknown> {
  const response = await fetch(`${url}${path}`, init);
  if (!response.ok) throw new Error(`${path}: ${response.status} ${await response.text()}`);
  return response.status === 204 ? null : response.json();
}

export async function startEmulatorProcess({
  secret = 'emulator-test-secret',
  args = [] as readonly string[],
} = {}): Promise<EmulatorProcess> {
  const port = await freePort();
  const child = spawnScript(
    EMULATOR_SCRIPT,
    ['--port', String(port), '--host', '127.0.0.1', '--secret', secret, ...args],
    {},
  );
  const url = `http://127.0.0.1:${port}`;
  try {
    await child.waitForOutput(`listening on ${url}`);
  } catch (error) {
    child.child.kill('SIGKILL');
    throw error;
  }
  const json = (body: unknown): RequestInit => ({
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return {
    url,
    secret,
    process: child,
    addFault: async (rule) => (await control(url, '/_emulator/faults', json(rule))) as FaultRule,
    faults: async () =>
      (
        (await control(url, '/_emulator/faults')) as {
          faults: (FaultRule & { seen: number; fired: number })[];
        }
      ).faults,
    journal: async (filter = {}) =>
      (
        (await control(url, `/_emulator/journal?${new URLSearchParams(filter).toString()}`)) as {
          entries: JournalEntry[];
        }
      ).entries,
    events: async () =>
      ((await control(url, '/_emulator/events')) as { events: WebhookEvent[] }).events,
    deliveries: async () =>
      ((await control(url, '/_emulator/webhooks')) as { deliveries: Delivery[] }).deliveries,
    charge: async (id) =>
      (await control(url, `/charges/${encodeURIComponent(id)}`, {
        headers: { authorization: `Bearer ${secret}` },
      })) as Charge,
    reset: async () => {
      await control(url, '/_emulator/reset', { method: 'POST' });
    },
    async stop() {
      if (child.child.exitCode === null && child.child.signalCode === null) {
        child.child.kill('SIGTERM');
        const killer = setTimeout(() => child.child.kill('SIGKILL'), 5_000);
        await child.exited();
        clearTimeout(killer);
      }
    },
  };
}

/** Polls `read` until `done` holds for its value, or fails after `timeoutMs`. */
export async function eventually<T>(
  read: () => T | Promise<T>,
  done: (value: T) => boolean,
  { timeoutMs = 10_000, what = 'condition' } = {},
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (done(value)) return value;
    if (Date.now() > deadline)
      throw new Error(`${what} not reached; last: ${JSON.stringify(value)}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}
