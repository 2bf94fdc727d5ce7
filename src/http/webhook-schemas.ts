/**
 * Request and response schemas of the webhook endpoint routes, in the style
 * of schemas.ts: the request schema validates, the response schemas type
 * the bodies and are what the OpenAPI document says.
 */
import { z } from 'zod';
import { ValidationError } from '../errors.ts';
import { MAX_WEBHOOK_URL_LENGTH } from '../webhooks/address-guard.ts';
import { WEBHOOK_EVENT_TYPES, type WebhookEventType } from '../webhooks/events.ts';

const eventType = z.enum(WEBHOOK_EVENT_TYPES);

export const webhookEndpointBodySchema = z.strictObject({
  url: z
    .string({
      error: (issue) => (issue.input === undefined ? 'url is required' : 'url must be a string'),
    })
    .meta({
      description: `An http or https URL (at most ${MAX_WEBHOOK_URL_LENGTH} characters, no credentials) whose host is a public address; see docs/webhooks.md`,
    }),
  events: z
    .array(eventType, { error: 'events must be an array of event types' })
    .min(1, 'events must name at least one event type')
    .optional()
    .meta({ description: 'The event types to receive; omitted: every type' }),
});

/** A registration body; every problem named, nothing written. */
export function parseWebhookEndpointBody(body: unknown): {
  url: string;
  events?: WebhookEventType[];
} {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new ValidationError('body must be a JSON object with url and, optionally, events');
  }
  const parsed = webhookEndpointBodySchema.safeParse(body);
  if (!parsed.success) {
    throw new ValidationError(
      parsed.error.issues
        .map((issue) => {
          if (issue.code === 'unrecognized_keys')
            return `unknown field(s): ${issue.keys.join(', ')}`;
          if (issue.path[0] === 'events' && issue.path.length === 2) {
            const given = (body as { events: unknown[] }).events[Number(issue.path[1])];
            const shown = typeof given === 'string' ? given.slice(0, 64) : String(given);
            return `events[${String(issue.path[1])}] must be one of ${WEBHOOK_EVENT_TYPES.join(', ')}, got ${JSON.stringify(shown)}`;
          }
          return issue.message;
        })
        .join('; '),
    );
  }
  const { url, events } = parsed.data;
  return events === undefined ? { url } : { url, events };
}

const timestamp = z.iso.datetime();

export const webhookEndpointSchema = z.strictObject({
  id: z.string().meta({ description: '`we_` and 24 hex digits' }),
  url: z.string(),
  events: z.array(eventType),
  createdAt: timestamp,
});
export type WebhookEndpointBody = z.output<typeof webhookEndpointSchema>;

export const webhookEndpointCreatedSchema = webhookEndpointSchema.extend({
  secret: z.string().meta({
    description:
      '`whsec_` and 43 base64url characters: the HMAC key of every delivery to this endpoint (the whole string). Shown only in this answer.',
  }),
});
export type WebhookEndpointCreatedBody = z.output<typeof webhookEndpointCreatedSchema>;

export const webhookEndpointListSchema = z.strictObject({
  endpoints: z.array(webhookEndpointSchema).meta({ description: 'Oldest first; never a secret' }),
});
export type WebhookEndpointListBody = z.output<typeof webhookEndpointListSchema>;
