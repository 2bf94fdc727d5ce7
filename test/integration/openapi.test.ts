/**
 * The OpenAPI 3.1 document at /openapi.json, generated from the zod
 * schemas, and the reference page at /docs. (Every response the suites
 * receive is checked against the document: test/support/contract.ts.)
 */
import { readFileSync } from 'node:fs';
import { Validator } from '@seriousme/openapi-schema-validator';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { ROOT } from '../support/processes.ts';
import { startTestService, testConfig, type TestService } from '../support/service-harness.ts';

const addFormats = addFormatsModule as unknown as (ajv: Ajv2020) => Ajv2020;

type Json = Record<string, unknown>;

/** The value at `keys` inside a parsed JSON document (undefined where a step is missing). */
function at(value: unknown, ...keys: (string | number)[]): unknown {
  let current = value;
  for (const key of keys) {
    if (typeof current !== 'object' || current === null) return undefined;
    current = (current as Record<string | number, unknown>)[key];
  }
  return current;
}

const apiMd = readFileSync(`${ROOT}/docs/api.md`, 'utf8');

/** `### \`POST /payments\`` sections of docs/api.md: the route and the text under it. */
function routeSections(): { method: string; path: string; text: string }[] {
  const sections = apiMd.split(/^(?=#{2,3} )/m);
  return sections.flatMap((section) => {
    const heading = section.split('\n', 1)[0] ?? '';
    if (!heading.startsWith('### ')) return [];
    return [...heading.matchAll(/`(GET|POST) (\/[^`]*)`/g)].map(([, method = '', path = '']) => ({
      method: method.toLowerCase(),
      path,
      text: section,
    }));
  });
}

describe('GET /openapi.json', () => {
  let service: TestService;
  let document: Json;
  beforeAll(async () => {
    service = await startTestService(testConfig(inject('redisUrl'), { PAYSTATE_ROLES: 'api' }));
    const reply = await service.request('GET', '/openapi.json');
    expect(reply.status).toBe(200);
    document = reply.body as Json;
  });
  afterAll(async () => {
    await service.stop();
  });

  it('is a valid OpenAPI 3.1 document', async () => {
    const validator = new Validator();
    const result = await validator.validate(structuredClone(document));

    expect(result.errors).toBeUndefined();
    expect(result.valid).toBe(true);
    expect(validator.version).toBe('3.1');
    expect(document.openapi).toBe('3.1.0');
  });

  it('has schemas that compile as JSON Schema 2020-12 in strict mode', () => {
    const ajv = addFormats(new Ajv2020({ strict: true, keywords: ['components'] }));
    ajv.addSchema({ $id: 'doc', components: document.components }, 'doc');
    for (const name of Object.keys(at(document, 'components', 'schemas') as Json)) {
      expect(() => ajv.compile({ $ref: `doc#/components/schemas/${name}` }), name).not.toThrow();
    }
  });

  it('documents every route of docs/api.md, with every status its section names', () => {
    const sections = routeSections();
    expect(sections.length).toBeGreaterThanOrEqual(12);
    for (const { method, path, text } of sections) {
      const operation = at(document, 'paths', path, method) as Json | undefined;
      expect(operation, `${method.toUpperCase()} ${path}`).toBeDefined();
      const statuses = new Set(
        [...text.matchAll(/(?:^\| |`)([1-5]\d\d)\b/gm)].map(([, status]) => status),
      );
      for (const status of statuses) {
        expect(Object.keys(at(operation, 'responses') ?? {}), `${path} ${status}`).toContain(
          status,
        );
      }
    }
  });

  it('documents every error code of docs/api.md with its status, in the error body schema', () => {
    const codeEnum = at(document, 'components', 'schemas', 'ErrorCode', 'enum') as string[];
    const table = apiMd.slice(apiMd.indexOf('## Error codes'));
    const rows = [
      // | `code`, `code` | status | ...
      ...[...table.matchAll(/^\| ((?:`[a-z_]+`(?:, )?)+)\s*\| (\d{3})/gm)].flatMap(
        ([, codes = '', status = '']) =>
          [...codes.matchAll(/`([a-z_]+)`/g)].map(([, code = '']) => ({ code, status })),
      ),
      // | refusal | status | `code` |
      ...[...table.matchAll(/^\| [^|`]+\| (\d{3})\s+\| `([a-z_]+)`/gm)].map(
        ([, status = '', code = '']) => ({ code, status }),
      ),
    ];
    expect(rows.length).toBeGreaterThanOrEqual(22);
    for (const { code, status } of rows) {
      expect(codeEnum).toContain(code);
      const response = at(document, 'components', 'responses', `Error${status}`);
      expect(response, `${code} ${status}`).toBeDefined();
      const narrowed = at(response, 'content', 'application/json', 'schema', 'allOf', 1);
      expect(at(narrowed, 'properties', 'error', 'properties', 'code', 'enum'), code).toContain(
        code,
      );
    }
  });

  it('says amountCents is an integer from 1 to 100000000000', () => {
    expect(at(document, 'components', 'schemas', 'PaymentBody')).toMatchObject({
      type: 'object',
      required: ['accountId', 'amountCents'],
      additionalProperties: false,
      properties: { amountCents: { type: 'integer', minimum: 1, maximum: 100_000_000_000 } },
    });
  });
});

describe('GET /docs', () => {
  let service: TestService;
  beforeAll(async () => {
    service = await startTestService(testConfig(inject('redisUrl'), { PAYSTATE_ROLES: 'api' }));
  });
  afterAll(async () => {
    await service.stop();
  });

  it('is an HTML page whose every asset the service serves itself', async () => {
    const page = await service.request('GET', '/docs');
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toMatch(/^text\/html/);
    const html = page.body as string;
    expect(html).not.toMatch(/https?:\/\//);

    const assets = [...html.matchAll(/(?:src|href)="([^"]+)"/g)].map(([, url = '']) => url);
    expect(assets).toEqual(['/docs/swagger-ui.css', '/docs/swagger-ui-bundle.js', '/docs/docs.js']);
    for (const asset of assets) {
      const reply = await service.request('GET', asset);
      expect(reply.status, asset).toBe(200);
      expect((reply.body as string).length, asset).toBeGreaterThan(0);
    }
    // The page's one script of its own points at this service and turns the online validator off.
    const init = (await service.request('GET', '/docs/docs.js')).body as string;
    expect(init).toContain("url: '/openapi.json'");
    expect(init).toContain('validatorUrl: null');
    expect(init).not.toMatch(/https?:\/\//);
  });

  it('serves nothing else from the package', async () => {
    for (const asset of ['swagger-ui-bundle.js.map', 'package.json', '..%2Fpackage.json']) {
      expect((await service.request('GET', `/docs/${asset}`)).status, asset).toBe(404);
    }
  });
});
