/**
 * The webhook event types: part of the public contract (clients filter on
 * them, and receivers switch on them). Once shipped, never renamed.
 */
export const WEBHOOK_EVENT_TYPES = [
  'payment.processed',
  'payment.authorized',
  'payment.declined',
  'payment.cancelled',
  'payment.refunded',
  'payment.partially_refunded',
  'payment.expired',
] as const;

export type WebhookEventType = (typeof WEBHOOK_EVENT_TYPES)[number];

const KNOWN: ReadonlySet<string> = new Set(WEBHOOK_EVENT_TYPES);

export function isWebhookEventType(name: string): name is WebhookEventType {
  return KNOWN.has(name);
}

/**
 * The body every endpoint receives: `data` is the payment view with the
 * client's own ids (never the stored, tenant-prefixed ones).
 */
export interface WebhookEvent<Data = unknown> {
  /** `evt_<random>`: the same on every delivery attempt of the event. */
  readonly id: string;
  readonly type: WebhookEventType;
  /** ISO 8601, when the transition that caused it was written. */
  readonly createdAt: string;
  readonly data: Data;
}
