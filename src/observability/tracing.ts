/**
 * OpenTelemetry tracing, off unless OTEL_EXPORTER_OTLP_ENDPOINT is set.
 *
 * Spans: the HTTP request (`POST /payments`) → `engine.lock` (the command
 * under the key's lock, wait included) → `engine.transition` (one event:
 * transition, write, and the effects it owes) → `engine.effect` (a handler),
 * and `engine.timer` for a timer's delivery (a trace of its own), with the
 * command under the lock below it. Sent over OTLP/HTTP as JSON to
 * `${OTEL_EXPORTER_OTLP_ENDPOINT}/v1/traces`, in batches.
 *
 * When tracing is off, none of this is loaded (the SDK comes in by dynamic
 * import here): the engine's observer has no `span` and the app no tracing
 * middleware, so the cost is nil.
 *
 * Attributes are names the code defines (machine, event, states, effect,
 * route, status, error code) and the request id; never a token or an account,
 * and never an error's message (it may name the token).
 *
 * The current span is kept in an AsyncLocalStorage of this module's, not in
 * OpenTelemetry's global context: no global is registered, so several
 * services in one process (the tests) trace apart.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import type { Span } from '@opentelemetry/api';
import type { EngineObserver, SpanAttributes } from '../runtime/index.ts';

/** One request's span, started when the request arrives. */
export interface RequestTrace {
  /** Runs the rest of the request's handling inside its span. */
  run(next: () => void): void;
  /** Ends it, named after the route pattern. */
  end(answer: {
    readonly route: string;
    readonly status: number | 'aborted';
    readonly requestId: string;
    readonly code?: string | undefined;
  }): void;
}

export interface Tracing {
  /** Gives the engine's units their spans. */
  readonly observer: Required<Pick<EngineObserver, 'span'>>;
  /** `traceparent`: the W3C header of a caller's trace, continued when well-formed. */
  startRequest(method: string, traceparent?: string): RequestTrace;
  /** Sends what is buffered and stops. */
  shutdown(): Promise<void>;
}

export interface TracingOptions {
  /** OTLP/HTTP base URL (OTEL_EXPORTER_OTLP_ENDPOINT). */
  readonly endpoint: string;
  readonly serviceName?: string;
}

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

/** The caller's span a W3C `traceparent` names, or null when absent or malformed. */
function remoteParent(
  header: string | undefined,
): { traceId: string; spanId: string; traceFlags: number } | null {
  const match = header === undefined ? null : TRACEPARENT.exec(header.trim());
  if (match === null) return null;
  const [, traceId = '', spanId = '', flags = '00'] = match;
  if (/^0+$/.test(traceId) || /^0+$/.test(spanId)) return null;
  return { traceId, spanId, traceFlags: parseInt(flags, 16) };
}

/** A stable, non-secret name for a failure: an AppError's code, else the error's class. */
function failureName(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === 'string') return code;
  return error instanceof Error ? error.name : 'error';
}

export async function startTracing(options: TracingOptions): Promise<Tracing> {
  const [api, sdk, otlp, resources] = await Promise.all([
    import('@opentelemetry/api'),
    import('@opentelemetry/sdk-trace-base'),
    import('@opentelemetry/exporter-trace-otlp-http'),
    import('@opentelemetry/resources'),
  ]);
  const provider = new sdk.BasicTracerProvider({
    resource: resources.resourceFromAttributes({
      'service.name': options.serviceName ?? process.env.OTEL_SERVICE_NAME ?? 'paystate',
    }),
    spanProcessors: [
      new sdk.BatchSpanProcessor(
        new otlp.OTLPTraceExporter({ url: `${options.endpoint}/v1/traces` }),
      ),
    ],
  });
  const tracer = provider.getTracer('paystate');
  const current = new AsyncLocalStorage<Span>();

  const startSpan = (
    name: string,
    attributes: SpanAttributes,
    kind = api.SpanKind.INTERNAL,
    remote: ReturnType<typeof remoteParent> = null,
  ) => {
    const parent = current.getStore();
    const context =
      parent !== undefined
        ? api.trace.setSpan(api.ROOT_CONTEXT, parent)
        : remote !== null
          ? api.trace.setSpanContext(api.ROOT_CONTEXT, { ...remote, isRemote: true })
          : api.ROOT_CONTEXT;
    return tracer.startSpan(name, { attributes, kind }, context);
  };
  const failed = (span: Span, error: unknown) => {
    const name = failureName(error);
    span.setAttribute('error.type', name);
    span.setStatus({ code: api.SpanStatusCode.ERROR, message: name });
  };

  return {
    observer: {
      async span(name, attributes, work) {
        const span = startSpan(name, attributes);
        try {
          return await current.run(span, () =>
            work((more) => {
              span.setAttributes(more);
            }),
          );
        } catch (error) {
          failed(span, error);
          throw error;
        } finally {
          span.end();
        }
      },
    },
    startRequest(method, traceparent) {
      const span = startSpan(
        method,
        { 'http.request.method': method },
        api.SpanKind.SERVER,
        remoteParent(traceparent),
      );
      return {
        run(next) {
          current.run(span, next);
        },
        end({ route, status, requestId, code }) {
          span.updateName(`${method} ${route}`);
          span.setAttributes({
            'http.route': route,
            'paystate.request_id': requestId,
            ...(typeof status === 'number' ? { 'http.response.status_code': status } : {}),
            ...(code === undefined ? {} : { 'error.type': code }),
          });
          if (status === 'aborted' || status >= 500) {
            span.setStatus({ code: api.SpanStatusCode.ERROR, message: code ?? String(status) });
          }
          span.end();
        },
      };
    },
    async shutdown() {
      await provider.shutdown();
    },
  };
}
