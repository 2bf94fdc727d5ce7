/**
 * Delivers the emulator's webhooks: each event POSTed to the configured URL
 * with a `Processor-Signature` header, one at a time in the order sent (which the
 * server may have turned round on purpose), each event retried a few times
 * on a non-2xx answer or a failed connection. Every attempt is kept for
 * `GET /_emulator/webhooks`.
 */
import { request } from 'undici';
import { SIGNATURE_HEADER, type WebhookEvent } from '../protocol.ts';
import { signPayload } from '../signature.ts';

export interface WebhookSenderOptions {
  /** Where to deliver; null: events are recorded and not sent. */
  readonly url: string | null;
  readonly secret: string;
  /** Wait before a batch is delivered. */
  readonly delayMs: number;
  /** Attempts per event (the first included). */
  readonly attempts: number;
  /** Wait before the second attempt; doubles after each failure. */
  readonly retryMs: number;
  readonly timeoutMs: number;
}

export interface Delivery {
  readonly eventId: string;
  readonly type: WebhookEvent['type'];
  readonly chargeId: string;
  readonly attempt: number;
  readonly at: string;
  /** The receiver's status, or null when no answer came. */
  readonly status: number | null;
  readonly error: string | null;
}

export class WebhookSender {
  readonly #deliveries: Delivery[] = [];
  readonly #timers = new Set<NodeJS.Timeout>();
  #generation = 0;
  #queue: Promise<void> = Promise.resolve();

  constructor(private readonly options: WebhookSenderOptions) {}

  deliveries(): readonly Delivery[] {
    return this.#deliveries;
  }

  /** Delivers `events` one after another; with `duplicate`, each one twice. */
  send(events: readonly WebhookEvent[], { duplicate = false } = {}): void {
    if (this.options.url === null || events.length === 0) return;
    const queue = events.flatMap((event) => (duplicate ? [event, event] : [event]));
    const generation = this.#generation;
    this.#after(this.options.delayMs, () => {
      // One queue for all deliveries: events arrive in the order they happened unless asked otherwise.
      this.#queue = this.#queue.then(async () => {
        for (const event of queue) {
          if (generation !== this.#generation) return;
          await this.#deliver(event, generation);
        }
      });
    });
  }

  /** Forgets deliveries and drops those not yet made. */
  reset(): void {
    this.#generation += 1;
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
    this.#deliveries.length = 0;
  }

  async #deliver(event: WebhookEvent, generation: number): Promise<void> {
    const body = JSON.stringify(event);
    let wait = this.options.retryMs;
    for (let attempt = 1; attempt <= this.options.attempts; attempt += 1) {
      if (generation !== this.#generation) return;
      const outcome = await this.#post(body);
      this.#deliveries.push({
        eventId: event.id,
        type: event.type,
        chargeId: event.data.id,
        attempt,
        at: new Date().toISOString(),
        ...outcome,
      });
      if (outcome.status !== null && outcome.status >= 200 && outcome.status < 300) return;
      if (attempt < this.options.attempts) {
        await new Promise<void>((resolve) => {
          this.#after(wait, () => {
            resolve();
          });
        });
        wait *= 2;
      }
    }
  }

  async #post(body: string): Promise<{ status: number | null; error: string | null }> {
    const url = this.options.url ?? '';
    const signature = signPayload(this.options.secret, body, Math.floor(Date.now() / 1000));
    try {
      const response = await request(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', [SIGNATURE_HEADER]: signature },
        body,
        headersTimeout: this.options.timeoutMs,
        bodyTimeout: this.options.timeoutMs,
      });
      await response.body.dump();
      return { status: response.statusCode, error: null };
    } catch (error) {
      return { status: null, error: error instanceof Error ? error.message : String(error) };
    }
  }

  #after(ms: number, run: () => unknown): void {
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      void run();
    }, ms);
    this.#timers.add(timer);
  }
}
