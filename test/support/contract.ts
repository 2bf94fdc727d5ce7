/**
 * The contract check: every response the integration, model and fault
 * suites receive through the shared HTTP helpers (service-harness.ts
 * `request`, app-process.ts `send`) must be one the OpenAPI document
 * declares: a status declared for that route (or, on a path no route
 * serves, a 404 or one of the errors any request can meet), the
 * X-Request-Id and other required headers, a declared content type, and a
 * JSON body valid against its schema. So the document and the code cannot
 * drift apart unnoticed.
 *
 * Schemas are checked with Ajv's JSON Schema 2020-12 validator, OpenAPI
 * 3.1's dialect; the document as a whole is checked as OpenAPI 3.1 by
 * test/integration/openapi.test.ts.
 */
import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';
import { openApiDocument } from '../../src/http/openapi.ts';
import { templatePattern } from '../../src/http/request-observer.ts';

// ajv-formats is CommonJS with a default export.
const addFormats = addFormatsModule as unknown as (ajv: Ajv2020) => Ajv2020;

type Json = Record<string, unknown>;

export interface ContractReply {
  readonly method: string;
  /** The request's path, with its query if any. */
  readonly path: string;
  readonly status: number;
  readonly header: (name: string) => string | undefined;
  /** The body as JSON when it parsed, else its text (null when empty). */
  readonly body: unknown;
}

export class ContractError extends Error {
  override readonly name = 'ContractError';
}

/** Statuses any request can get before or outside its route (see src/http/openapi.ts). */
const ANY_ROUTE_STATUSES = [400, 401, 408, 413, 415, 429, 431, 500, 503];

const DOCUMENT_ID = 'openapi.json';

interface Contract {
  readonly document: Json;
  readonly ajv: Ajv2020;
  readonly routes: readonly { template: string; pattern: RegExp }[];
  readonly validators: Map<string, ValidateFunction>;
}

let contract: Contract | null = null;

function load(): Contract {
  if (contract !== null) return contract;
  const document = openApiDocument();
  const ajv = new Ajv2020({ strict: false, validateSchema: false, allErrors: true });
  addFormats(ajv);
  ajv.addSchema(document, DOCUMENT_ID);
  const routes = Object.keys(document.paths as Json).map((template) => ({
    template,
    pattern: templatePattern(template),
  }));
  contract = { document, ajv, routes, validators: new Map() };
  return contract;
}

const escapePointer = (segment: string) => segment.replace(/~/g, '~0').replace(/\//g, '~1');

/** The object at a `#/a/b` pointer, and that pointer, following a `$ref` at the end. */
function resolve(document: Json, pointer: string): { value: Json; pointer: string } {
  let value: unknown = document;
  for (const segment of pointer.slice(2).split('/')) {
    value = (value as Json)[segment.replace(/~1/g, '/').replace(/~0/g, '~')];
  }
  const target = value as Json;
  if (typeof target.$ref === 'string') return resolve(document, target.$ref);
  return { value: target, pointer };
}

function validatorFor(c: Contract, schemaPointer: string): ValidateFunction {
  let validate = c.validators.get(schemaPointer);
  if (validate === undefined) {
    validate = c.ajv.compile({ $ref: `${DOCUMENT_ID}${schemaPointer}` });
    c.validators.set(schemaPointer, validate);
  }
  return validate;
}

/** Where the declared response for this reply is, or why there is none. */
function declaredResponse(c: Contract, reply: ContractReply, path: string): string {
  const method = reply.method.toUpperCase() === 'HEAD' ? 'get' : reply.method.toLowerCase();
  const route = c.routes.find(({ pattern }) => pattern.test(path));
  const paths = c.document.paths as Record<string, Json>;
  const operation = route === undefined ? undefined : (paths[route.template]?.[method] as Json);
  if (route === undefined || operation === undefined) {
    // No route serves it: the 404 of the not-found handler, or an error met first.
    if (reply.status === 404 || ANY_ROUTE_STATUSES.includes(reply.status)) {
      return `#/components/responses/Error${reply.status}`;
    }
    throw new ContractError(
      `${reply.method} ${path} answered ${reply.status}: no documented operation serves it`,
    );
  }
  const responses = operation.responses as Json;
  if (!(String(reply.status) in responses)) {
    throw new ContractError(
      `${reply.method} ${route.template} answered ${reply.status}, a status the OpenAPI document does not declare for it (declared: ${Object.keys(responses).join(', ')})`,
    );
  }
  return `#/paths/${escapePointer(route.template)}/${method}/responses/${reply.status}`;
}

/**
 * Violations seen since the last `takeViolations`: a caller may swallow the
 * error (a client retrying on any failure), so contract-setup.ts fails the
 * test after it ends as well.
 */
const violations: string[] = [];

export function takeViolations(): string[] {
  return violations.splice(0);
}

/** Throws a ContractError when the reply is not one the OpenAPI document declares. */
export function assertMatchesContract(reply: ContractReply): void {
  try {
    check(reply);
  } catch (error) {
    if (error instanceof ContractError) violations.push(error.message);
    throw error;
  }
}

function check(reply: ContractReply): void {
  const c = load();
  const path = reply.path.split('?', 1)[0] ?? '';
  const what = `${reply.method} ${path} → ${reply.status}`;
  const response = resolve(c.document, declaredResponse(c, reply, path));

  const headers = (response.value.headers ?? {}) as Record<string, Json>;
  for (const [name, declared] of Object.entries(headers)) {
    const header =
      typeof declared.$ref === 'string' ? resolve(c.document, declared.$ref).value : declared;
    const value = reply.header(name);
    if (value === undefined) {
      if (header.required === true) throw new ContractError(`${what}: no ${name} header`);
      continue;
    }
    const schema = header.schema as Json | undefined;
    if (typeof schema?.pattern === 'string' && !new RegExp(schema.pattern).test(value)) {
      throw new ContractError(`${what}: ${name} "${value}" does not match ${schema.pattern}`);
    }
  }

  if (reply.method.toUpperCase() === 'HEAD') return;
  const content = (response.value.content ?? {}) as Record<string, Json>;
  const contentType = (reply.header('content-type') ?? '').split(';', 1)[0]?.trim() ?? '';
  // A response documented with no content (204) must come without one.
  if (Object.keys(content).length === 0 && contentType === '' && reply.body === null) return;
  if (!(contentType in content)) {
    throw new ContractError(
      `${what}: content type "${contentType}" is not declared (declared: ${Object.keys(content).join(', ') || 'none'})`,
    );
  }
  if (contentType !== 'application/json') return;
  const validate = validatorFor(
    c,
    `${response.pointer}/content/${escapePointer(contentType)}/schema`,
  );
  if (!validate(reply.body)) {
    throw new ContractError(
      `${what}: the body does not match the OpenAPI document: ${c.ajv.errorsText(validate.errors, { dataVar: 'body' })}\n${JSON.stringify(reply.body)}`,
    );
  }
}
