/**
 * A webhook receiver as a real process on loopback
 * (test/support/webhook-receiver-main.ts: how it answers is chosen by the
 * path), and what it recorded.
 */
import { spawnScript, type ServiceProcess } from './processes.ts';

export interface ReceivedRequest {
  readonly method: string;
  readonly path: string;
  readonly headers: Record<string, string>;
  readonly body: string;
  readonly at: number;
}

export interface WebhookReceiver {
  /** `http://127.0.0.1:<port>` */
  readonly url: string;
  readonly port: number;
  readonly process: ServiceProcess;
  requests(): Promise<ReceivedRequest[]>;
  /** Forgets what was recorded (and the flaky paths' counts). */
  reset(): Promise<void>;
  stop(): Promise<void>;
}

export async function startWebhookReceiver(): Promise<WebhookReceiver> {
  const child = spawnScript('test/support/webhook-receiver-main.ts', [], {});
  try {
    await child.waitForOutput('listening on http://127.0.0.1:');
  } catch (error) {
    child.child.kill('SIGKILL');
    throw error;
  }
  const match = /listening on (http:\/\/127\.0\.0\.1:(\d+))/.exec(child.output());
  if (match?.[1] === undefined) throw new Error(`no address in ${child.output()}`);
  const url = match[1];
  return {
    url,
    port: Number(match[2]),
    process: child,
    async requests() {
      const response = await fetch(`${url}/_receiver/requests`);
      return ((await response.json()) as { requests: ReceivedRequest[] }).requests;
    },
    async reset() {
      await fetch(`${url}/_receiver/requests`, { method: 'DELETE' });
    },
    async stop() {
      if (child.child.exitCode === null && child.child.signalCode === null) {
        child.child.kill('SIGTERM');
        await child.exited();
      }
    },
  };
}
