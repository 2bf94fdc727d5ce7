/**
 * The webhook endpoint routes: register, list, delete, per tenant. A URL is
 * checked by the address guard (after DNS) before anything is written; the
 * secret is returned by the registration only.
 */
import { Router } from 'express';
import { NotFoundError, UnavailableError, ValidationError } from '../errors.ts';
import { checkWebhookUrl, type GuardOptions } from '../webhooks/address-guard.ts';
import type { WebhookEndpoint, WebhookEndpoints } from '../webhooks/endpoints.ts';
import { tenantOf } from './auth.ts';
import {
  parseWebhookEndpointBody,
  type WebhookEndpointBody,
  type WebhookEndpointCreatedBody,
  type WebhookEndpointListBody,
} from './webhook-schemas.ts';

function endpointView(endpoint: WebhookEndpoint): WebhookEndpointBody {
  return {
    id: endpoint.id,
    url: endpoint.url,
    events: [...endpoint.events],
    createdAt: new Date(endpoint.createdAt).toISOString(),
  };
}

export function webhookRouter(endpoints: WebhookEndpoints, guard: GuardOptions): Router {
  const router = Router();

  router.post('/webhook-endpoints', async (req, res) => {
    const request = parseWebhookEndpointBody(req.body);
    const checked = await checkWebhookUrl(request.url, guard);
    if (!checked.ok) {
      if (checked.reason === 'dns_error') {
        throw new UnavailableError(`${checked.message}; retry shortly`);
      }
      throw new ValidationError(checked.message, 'invalid_webhook_url');
    }
    const { endpoint, secret } = await endpoints.create(tenantOf(req), {
      url: request.url,
      ...(request.events === undefined ? {} : { events: request.events }),
    });
    const body: WebhookEndpointCreatedBody = { ...endpointView(endpoint), secret };
    res.status(201).location(`/webhook-endpoints/${endpoint.id}`).json(body);
  });

  router.get('/webhook-endpoints', async (req, res) => {
    const body: WebhookEndpointListBody = {
      endpoints: (await endpoints.list(tenantOf(req))).map(endpointView),
    };
    res.json(body);
  });

  router.delete('/webhook-endpoints/:id', async (req, res) => {
    const { id } = req.params;
    if (!(await endpoints.delete(tenantOf(req), id))) {
      throw new NotFoundError(`no webhook endpoint ${id.slice(0, 64)}`);
    }
    res.status(204).end();
  });

  return router;
}
