/**
 * The OpenAPI 3.1 document of the HTTP API, built from the zod schemas that
 * validate requests (src/http/schemas.ts) and those the responses are typed
 * by, with zod's own JSON Schema output (draft 2020-12, OpenAPI 3.1's
 * dialect). Served at GET /openapi.json; the tests check every response
 * they receive against it (test/support/contract.ts).
 *
 * Every route can answer the shared errors: the JSON body parser runs on
 * every request (400, 413, 415), Node's parser refuses some requests first
 * (400, 408, 413, 431), and anything can meet a bug (500), a Redis outage, a
 * lost store or a shutdown (503). With API keys configured, every route but
 * /healthz and /readyz also answers 401 (no or unknown key) and 429 (over a
 * rate limit).
 */
import { createRequire } from 'node:module';
import { z } from 'zod';
import { STATUS_BY_CODE, type ErrorCode } from './error-handler.ts';
import {
  accountIdSchema,
  accountQuerySchema,
  accountViewSchema,
  adminListQuerySchema,
  adminPaymentListSchema,
  adminPaymentStatsSchema,
  adminStuckListSchema,
  adminStuckQuerySchema,
  healthSchema,
  paymentBodySchema,
  seedPaymentBodySchema,
  captureBodySchema,
  refundBodySchema,
  paymentViewSchema,
  readySchema,
  seedCancelResultSchema,
  seedPaymentResultSchema,
  tokenSchema,
} from './schemas.ts';
import {
  webhookEndpointBodySchema,
  webhookEndpointCreatedSchema,
  webhookEndpointListSchema,
} from './webhook-schemas.ts';

/** Files of swagger-ui-dist that GET /docs/{asset} serves. */
export const DOCS_ASSETS = ['swagger-ui.css', 'swagger-ui-bundle.js', 'docs.js'] as const;

type Json = Record<string, unknown>;

const { version } = createRequire(import.meta.url)('../../package.json') as { version: string };

/** zod → JSON Schema 2020-12, without the `$schema` line (the document sets the dialect). */
function jsonSchema(schema: z.ZodType, io: 'input' | 'output' = 'output'): Json {
  const { $schema: _dialect, ...rest } = z.toJSONSchema(schema, {
    target: 'draft-2020-12',
    io,
    // amountCents is validated from its JSON text (a JsonNumber): its
    // documented type comes from its metadata, merged over this `{}`.
    unrepresentable: 'any',
  }) as Json;
  return rest;
}

const ref = (kind: string, name: string) => ({ $ref: `#/components/${kind}/${name}` });
const json = (schema: Json) => ({ 'application/json': { schema } });

const ERROR_CODES = Object.keys(STATUS_BY_CODE) as ErrorCode[];
const RETRYABLE_STATUSES = new Set([409, 503]);
const SHARED_ERROR_STATUSES = [400, 408, 413, 415, 431, 500, 503] as const;
/** What the authentication in front of every route but the open ones may answer. */
const AUTH_ERROR_STATUSES = [401, 429] as const;

/** Headers an error status always carries. */
const REQUIRED_ERROR_HEADERS: Record<number, Json> = {
  401: {
    'WWW-Authenticate': {
      description: 'Always `Bearer realm="paystate"`: send `Authorization: Bearer <key>`',
      required: true,
      schema: { type: 'string', pattern: '^Bearer' },
    },
  },
  429: {
    'Retry-After': {
      description: 'Seconds until the limit lets this client in again',
      required: true,
      schema: { type: 'string', pattern: '^[1-9][0-9]*$' },
    },
  },
};

const codesOf = (status: number) => ERROR_CODES.filter((code) => STATUS_BY_CODE[code] === status);

const requestIdHeader = { 'X-Request-Id': ref('headers', 'XRequestId') };

function errorResponse(status: number): Json {
  const codes = codesOf(status);
  return {
    description: `Error: ${codes.join(', ')}`,
    headers: {
      ...requestIdHeader,
      ...(RETRYABLE_STATUSES.has(status) ? { 'Retry-After': ref('headers', 'RetryAfter') } : {}),
      ...REQUIRED_ERROR_HEADERS[status],
    },
    content: json({
      allOf: [
        ref('schemas', 'ErrorBody'),
        { properties: { error: { properties: { code: { enum: codes } } } } },
      ],
    }),
  };
}

function ok(description: string, content: Json, headers: Json = {}): Json {
  return { description, headers: { ...requestIdHeader, ...headers }, content };
}

interface Operation {
  readonly summary: string;
  readonly description?: string;
  readonly tags: readonly string[];
  readonly parameters?: readonly Json[];
  readonly requestBody?: Json;
  readonly responses: Record<number, Json>;
  /** Error statuses besides the shared ones. */
  readonly errors?: readonly number[];
  /** Answers without an API key (probes). */
  readonly open?: boolean;
}

const paymentBody = {
  required: true,
  content: json(ref('schemas', 'PaymentBody')),
};

const seedPaymentBody = {
  required: true,
  content: json(ref('schemas', 'SeedPaymentBody')),
};

const replayedHeader = (required: boolean) => ({
  'Idempotent-Replayed': {
    description: required
      ? 'Always `true`: nothing moved by this request'
      : '`true` when this is a replay: nothing moved by this request',
    schema: { type: 'string', const: 'true' },
    required,
  },
});

const routes: Record<
  string,
  Record<'get' | 'post', Operation | undefined> & { readonly delete?: Operation }
> = {
  '/PaymentProcessor/{token}/makePayment': {
    get: undefined,
    post: {
      summary: 'Pay (seed-compatible)',
      description:
        'Every business outcome is a 200 whose `success` says how it went; a different body on a charged token is 422.',
      tags: ['seed'],
      parameters: [ref('parameters', 'Token')],
      requestBody: seedPaymentBody,
      responses: {
        200: ok(
          'Charged, replayed, declined, cancelled, refunded or expired',
          json(ref('schemas', 'SeedPaymentResult')),
        ),
      },
      errors: [409, 422],
    },
  },
  '/PaymentProcessor/{token}/cancelPayment': {
    get: undefined,
    post: {
      summary: 'Cancel (seed-compatible)',
      tags: ['seed'],
      parameters: [ref('parameters', 'Token')],
      responses: {
        200: ok(
          'Cancelled, refunded, or (success false) expired',
          json(ref('schemas', 'SeedCancelResult')),
        ),
      },
      errors: [409],
    },
  },
  '/payments': {
    get: undefined,
    post: {
      summary: 'Pay',
      tags: ['payments'],
      parameters: [ref('parameters', 'IdempotencyKey')],
      requestBody: paymentBody,
      responses: {
        201: ok(
          'Charged now, or authorized (capture: manual)',
          json(ref('schemas', 'PaymentView')),
          {
            Location: {
              description: '/payments/{token}',
              schema: { type: 'string' },
              required: true,
            },
          },
        ),
        200: ok(
          'Replay of a charged or authorized payment with the same body (after defaults)',
          json(ref('schemas', 'PaymentView')),
          {
            'Idempotent-Replayed': {
              description: 'Always `true`: nothing was charged by this request',
              schema: { type: 'string', const: 'true' },
              required: true,
            },
          },
        ),
      },
      errors: [402, 409, 410, 422],
    },
  },
  '/payments/{token}/cancel': {
    get: undefined,
    post: {
      summary: 'Cancel, void an authorization, or refund what remains of a captured payment',
      tags: ['payments'],
      parameters: [ref('parameters', 'Token')],
      responses: {
        200: ok('The payment view: cancelled or refunded', json(ref('schemas', 'PaymentView'))),
      },
      errors: [409, 410],
    },
  },
  '/payments/{token}/capture': {
    get: undefined,
    post: {
      summary: 'Capture an authorization, all of it or part (the rest of the hold is released)',
      tags: ['payments'],
      parameters: [ref('parameters', 'Token')],
      requestBody: { required: false, content: json(ref('schemas', 'CaptureBody')) },
      responses: {
        200: ok(
          'Captured (processed); or, with Idempotent-Replayed, the same capture again',
          json(ref('schemas', 'PaymentView')),
          replayedHeader(false),
        ),
      },
      errors: [404, 409, 410, 422],
    },
  },
  '/payments/{token}/refunds': {
    get: undefined,
    post: {
      summary: 'Refund (part of) a captured payment; the refunds never sum above the capture',
      tags: ['payments'],
      parameters: [ref('parameters', 'Token'), ref('parameters', 'RefundKey')],
      requestBody: { required: false, content: json(ref('schemas', 'RefundBody')) },
      responses: {
        201: ok(
          'Refunded: partially_refunded, or refunded once nothing remains',
          json(ref('schemas', 'PaymentView')),
          {
            Location: {
              description: '/payments/{token}',
              schema: { type: 'string' },
              required: true,
            },
          },
        ),
        200: ok(
          'Replay of the refund key with the same body',
          json(ref('schemas', 'PaymentView')),
          replayedHeader(true),
        ),
      },
      errors: [404, 409, 410, 422],
    },
  },
  '/payments/{token}': {
    post: undefined,
    get: {
      summary: "A token's record (lock-free read)",
      tags: ['payments'],
      parameters: [ref('parameters', 'Token')],
      responses: { 200: ok('The payment view', json(ref('schemas', 'PaymentView'))) },
      errors: [404],
    },
  },
  '/accounts/{accountId}': {
    post: undefined,
    get: {
      summary: 'Balances per currency and the last 100 ledger movements',
      tags: ['accounts'],
      parameters: [ref('parameters', 'AccountId'), ...queryParameters(accountQuerySchema)],
      responses: { 200: ok('The account view', json(ref('schemas', 'AccountView'))) },
    },
  },
  '/webhook-endpoints': {
    post: {
      summary: 'Register a webhook endpoint',
      description:
        "The URL is checked after DNS: a host that is or resolves to a private, loopback, link-local or metadata address is refused with 400 invalid_webhook_url (unless PAYSTATE_WEBHOOK_ALLOW_PRIVATE=1). The answer is the only one that shows the endpoint's secret. At most 16 endpoints per tenant.",
      tags: ['webhooks'],
      requestBody: { required: true, content: json(ref('schemas', 'WebhookEndpointBody')) },
      responses: {
        201: ok('Registered; keep the secret', json(ref('schemas', 'WebhookEndpointCreated')), {
          Location: {
            description: '/webhook-endpoints/{id}',
            schema: { type: 'string' },
            required: true,
          },
        }),
      },
      errors: [409],
    },
    get: {
      summary: "The tenant's webhook endpoints, oldest first (no secrets)",
      tags: ['webhooks'],
      responses: { 200: ok('The endpoints', json(ref('schemas', 'WebhookEndpointList'))) },
    },
  },
  '/webhook-endpoints/{id}': {
    get: undefined,
    post: undefined,
    delete: {
      summary: 'Delete a webhook endpoint; it receives nothing more',
      tags: ['webhooks'],
      parameters: [{ name: 'id', in: 'path', required: true, schema: { type: 'string' } }],
      responses: { 204: { description: 'Deleted', headers: requestIdHeader } },
      errors: [404],
    },
  },
  '/admin/payments': {
    post: undefined,
    get: {
      summary: 'Tokens in a state, newest write first (operators)',
      description:
        'Read from an index the engine keeps in the same write as each record, so it never scans the store. Page with `nextCursor`.',
      tags: ['admin'],
      parameters: queryParameters(adminListQuerySchema),
      responses: { 200: ok('A page of tokens', json(ref('schemas', 'AdminPaymentList'))) },
    },
  },
  '/admin/payments/stats': {
    post: undefined,
    get: {
      summary: 'How many tokens are in each state (operators)',
      tags: ['admin'],
      responses: { 200: ok('Counts per state', json(ref('schemas', 'AdminPaymentStats'))) },
    },
  },
  '/admin/payments/stuck': {
    post: undefined,
    get: {
      summary: 'Tokens whose owed work is older than a threshold (operators)',
      description:
        'A charge, refund or timer written but not yet done: normally done within the request, else by the recovery sweep.',
      tags: ['admin'],
      parameters: queryParameters(adminStuckQuerySchema),
      responses: { 200: ok('Stuck tokens, oldest first', json(ref('schemas', 'AdminStuckList'))) },
    },
  },
  '/admin/payments/{token}/recover': {
    get: undefined,
    post: {
      summary: "Finish a token's owed work now, under its lock (operators)",
      tags: ['admin'],
      parameters: [ref('parameters', 'Token')],
      responses: {
        200: ok('The payment view after recovery', json(ref('schemas', 'PaymentView'))),
      },
      errors: [404, 409],
    },
  },
  '/inspect': {
    post: undefined,
    get: {
      summary: 'The live statechart page (operators)',
      description:
        'The machine drawn from its definition, each state with its live count; search a token to see its state and history. Served with a Content-Security-Policy that allows nothing from another origin.',
      tags: ['admin'],
      responses: { 200: ok('HTML page', { 'text/html': { schema: { type: 'string' } } }) },
    },
  },
  '/inspect/assets/{asset}': {
    post: undefined,
    get: {
      summary: "The inspector page's script and stylesheet",
      tags: ['admin'],
      parameters: [
        {
          name: 'asset',
          in: 'path',
          required: true,
          schema: { type: 'string', enum: ['inspector.js', 'inspector.css'] },
        },
      ],
      responses: {
        200: ok('The file', {
          'text/css': { schema: { type: 'string' } },
          'text/javascript': { schema: { type: 'string' } },
        }),
      },
      errors: [404],
    },
  },
  '/inspect/api/counts': {
    post: undefined,
    get: {
      summary: "The inspector's live counts per state",
      tags: ['admin'],
      responses: { 200: ok('Counts', json(ref('schemas', 'InspectorCounts'))) },
    },
  },
  '/inspect/api/keys/{key}': {
    post: undefined,
    get: {
      summary: "A token's state, history and facts, for the inspector",
      tags: ['admin'],
      parameters: [{ name: 'key', in: 'path', required: true, schema: jsonSchema(tokenSchema) }],
      responses: { 200: ok('The token', json(ref('schemas', 'InspectorKey'))) },
      errors: [404],
    },
  },
  '/inspect/api/states/{state}': {
    post: undefined,
    get: {
      summary: 'The newest tokens in a state, for the inspector',
      tags: ['admin'],
      parameters: [{ name: 'state', in: 'path', required: true, schema: { type: 'string' } }],
      responses: { 200: ok('Tokens', json(ref('schemas', 'InspectorState'))) },
    },
  },
  '/healthz': {
    post: undefined,
    get: {
      summary: 'Liveness: the process runs',
      tags: ['operations'],
      open: true,
      responses: { 200: ok('Running', json(ref('schemas', 'Health'))) },
    },
  },
  '/readyz': {
    post: undefined,
    get: {
      summary:
        'Readiness: Redis answers, is the store this process knows, and does not evict keys (maxmemory-policy noeviction)',
      tags: ['operations'],
      open: true,
      responses: { 200: ok('Ready', json(ref('schemas', 'Ready'))) },
    },
  },
  '/metrics': {
    post: undefined,
    get: {
      summary: 'Prometheus metrics (text exposition format)',
      description:
        'Served on the API port unless METRICS_PORT is set, in which case it is served there only and this port answers 404. ' +
        "On the API port it needs an API key (any tenant's) when keys are configured; on METRICS_PORT it needs none.",
      tags: ['operations'],
      responses: {
        200: ok('Metrics', { 'text/plain': { schema: { type: 'string' } } }),
      },
      errors: [404],
    },
  },
  '/openapi.json': {
    post: undefined,
    get: {
      summary: 'This document (OpenAPI 3.1)',
      tags: ['operations'],
      responses: { 200: ok('The OpenAPI document', json({ type: 'object' })) },
    },
  },
  '/docs': {
    post: undefined,
    get: {
      summary: 'API reference page (Swagger UI, assets served by this service)',
      tags: ['operations'],
      responses: { 200: ok('HTML page', { 'text/html': { schema: { type: 'string' } } }) },
    },
  },
  '/docs/{asset}': {
    post: undefined,
    get: {
      summary: "The reference page's scripts and stylesheet",
      tags: ['operations'],
      parameters: [
        {
          name: 'asset',
          in: 'path',
          required: true,
          schema: { type: 'string', enum: [...DOCS_ASSETS] },
        },
      ],
      responses: {
        200: ok('The file', {
          'text/css': { schema: { type: 'string' } },
          'text/javascript': { schema: { type: 'string' } },
        }),
      },
      errors: [404],
    },
  },
};

/** The query parameters of a strict zod object of optional strings. */
function queryParameters(schema: z.ZodObject): Json[] {
  const { properties = {}, required = [] } = jsonSchema(schema, 'input') as {
    properties?: Record<string, Json>;
    required?: string[];
  };
  return Object.entries(properties).map(([name, property]) => {
    const { description, ...rest } = property;
    return {
      name,
      in: 'query',
      required: required.includes(name),
      ...(description === undefined ? {} : { description }),
      schema: rest,
    };
  });
}

function operationObject(operation: Operation): Json {
  const responses: Record<string, Json> = {};
  for (const [status, response] of Object.entries(operation.responses))
    responses[status] = response;
  const auth = operation.open === true ? [] : AUTH_ERROR_STATUSES;
  for (const status of [...(operation.errors ?? []), ...auth, ...SHARED_ERROR_STATUSES].sort(
    (a, b) => a - b,
  )) {
    responses[String(status)] = ref('responses', `Error${status}`);
  }
  return {
    summary: operation.summary,
    ...(operation.open === true ? { security: [] } : {}),
    ...(operation.description === undefined ? {} : { description: operation.description }),
    tags: operation.tags,
    ...(operation.parameters === undefined ? {} : { parameters: operation.parameters }),
    ...(operation.requestBody === undefined ? {} : { requestBody: operation.requestBody }),
    responses,
  };
}

function buildDocument(): Json {
  const paths: Record<string, Json> = {};
  for (const [path, methods] of Object.entries(routes)) {
    const item: Json = {};
    if (methods.get !== undefined) item.get = operationObject(methods.get);
    if (methods.post !== undefined) item.post = operationObject(methods.post);
    if (methods.delete !== undefined) item.delete = operationObject(methods.delete);
    paths[path] = item;
  }
  const errorStatuses = [...new Set(Object.values(STATUS_BY_CODE))].sort((a, b) => a - b);
  return {
    openapi: '3.1.0',
    info: {
      title: 'paystate',
      version,
      description:
        'Exactly-once payments per idempotency token. Every response carries `X-Request-Id`: the ' +
        "client's when it sends a valid one, else a new one. Errors are " +
        '`{"error": {"code", "message"}}`; retryable ones (409 token_busy/conflict, 503) carry ' +
        '`Retry-After`, as does 429 rate_limited. With API keys configured (PAYSTATE_API_KEYS), every ' +
        'route but /healthz and /readyz needs `Authorization: Bearer <key>` and sees only the ' +
        "key's tenant's tokens and accounts; in local mode (no keys) no route asks for one.",
    },
    // Either a key, or (local mode) none.
    security: [{ bearerAuth: [] }, {}],
    tags: [
      { name: 'seed', description: "Restate's payment example API, verbatim" },
      { name: 'payments', description: 'Native routes' },
      { name: 'accounts' },
      { name: 'webhooks', description: 'Endpoints that receive signed payment events' },
      { name: 'admin', description: 'Operators: tokens by state, stuck work, recovery' },
      { name: 'operations', description: 'Health, metrics, this document' },
    ],
    paths,
    components: {
      schemas: {
        PaymentBody: jsonSchema(paymentBodySchema, 'input'),
        SeedPaymentBody: jsonSchema(seedPaymentBodySchema, 'input'),
        CaptureBody: jsonSchema(captureBodySchema, 'input'),
        RefundBody: jsonSchema(refundBodySchema, 'input'),
        PaymentView: jsonSchema(paymentViewSchema),
        AccountView: jsonSchema(accountViewSchema),
        SeedPaymentResult: jsonSchema(seedPaymentResultSchema),
        SeedCancelResult: jsonSchema(seedCancelResultSchema),
        WebhookEndpointBody: jsonSchema(webhookEndpointBodySchema, 'input'),
        WebhookEndpointCreated: jsonSchema(webhookEndpointCreatedSchema),
        WebhookEndpointList: jsonSchema(webhookEndpointListSchema),
        AdminPaymentList: jsonSchema(adminPaymentListSchema),
        AdminPaymentStats: jsonSchema(adminPaymentStatsSchema),
        AdminStuckList: jsonSchema(adminStuckListSchema),
        InspectorCounts: {
          type: 'object',
          properties: {
            counts: { type: 'object', additionalProperties: { type: 'integer', minimum: 0 } },
          },
          required: ['counts'],
          additionalProperties: false,
        },
        InspectorKey: {
          type: 'object',
          properties: {
            key: { type: 'string' },
            state: { type: 'string' },
            history: {
              type: 'array',
              items: {
                type: 'object',
                properties: {
                  at: { type: 'string', format: 'date-time' },
                  event: { type: 'string' },
                  state: { type: 'string' },
                },
                required: ['at', 'event', 'state'],
                additionalProperties: false,
              },
            },
            fields: {
              type: 'object',
              additionalProperties: {
                anyOf: [
                  { type: 'string' },
                  { type: 'number' },
                  { type: 'boolean' },
                  { type: 'null' },
                ],
              },
            },
          },
          required: ['key', 'state', 'history', 'fields'],
          additionalProperties: false,
        },
        InspectorState: {
          type: 'object',
          properties: {
            state: { type: 'string' },
            keys: {
              type: 'array',
              items: {
                type: 'object',
                properties: {
                  key: { type: 'string' },
                  updatedAt: { type: 'string', format: 'date-time' },
                },
                required: ['key', 'updatedAt'],
                additionalProperties: false,
              },
            },
          },
          required: ['state', 'keys'],
          additionalProperties: false,
        },
        Health: jsonSchema(healthSchema),
        Ready: jsonSchema(readySchema),
        ErrorCode: { type: 'string', enum: ERROR_CODES },
        ErrorBody: {
          type: 'object',
          properties: {
            error: {
              type: 'object',
              properties: { code: ref('schemas', 'ErrorCode'), message: { type: 'string' } },
              required: ['code', 'message'],
              additionalProperties: false,
            },
          },
          required: ['error'],
          additionalProperties: false,
        },
      },
      securitySchemes: {
        bearerAuth: {
          type: 'http',
          scheme: 'bearer',
          description:
            "An API key; the service is configured with its SHA-256 and the key's tenant (docs/security.md)",
        },
      },
      parameters: {
        Token: { name: 'token', in: 'path', required: true, schema: jsonSchema(tokenSchema) },
        AccountId: {
          name: 'accountId',
          in: 'path',
          required: true,
          schema: jsonSchema(accountIdSchema),
        },
        IdempotencyKey: {
          name: 'Idempotency-Key',
          in: 'header',
          required: true,
          description: 'The payment token',
          schema: jsonSchema(tokenSchema),
        },
        RefundKey: {
          name: 'Idempotency-Key',
          in: 'header',
          required: true,
          description: "The refund's id, unique within its payment",
          schema: jsonSchema(tokenSchema),
        },
      },
      headers: {
        XRequestId: {
          description:
            "The request's id: the client's X-Request-Id if it is 1-128 characters of A-Z a-z 0-9 . _ ~ : -, else a new UUID",
          required: true,
          schema: { type: 'string', pattern: '^[A-Za-z0-9._~:-]{1,128}$' },
        },
        RetryAfter: {
          description: 'Seconds to wait before retrying (retryable codes only)',
          schema: { type: 'string' },
        },
      },
      responses: Object.fromEntries(
        errorStatuses.map((status) => [`Error${status}`, errorResponse(status)]),
      ),
    },
  };
}

let built: Json | null = null;

/** The document (built once; treat it as read-only). */
export function openApiDocument(): Json {
  built ??= buildDocument();
  return built;
}

/** The path templates the document declares, for route labels and logs. */
export function documentedPaths(): string[] {
  return Object.keys(routes);
}
