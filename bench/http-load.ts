/**
 * HTTP load with autocannon: a fixed number of keep-alive connections, each
 * sending its next request as soon as the previous answer arrived (closed
 * loop), every request built on the fly so each can carry its own token.
 *
 * Several URLs share the connections round-robin (autocannon's own
 * multi-URL mode): with two service processes, 50 connections are 25 per
 * process, as a connection-level (L4) balancer would spread them.
 */
import { performance } from 'node:perf_hooks';
import autocannon from 'autocannon';
import { distribution, type Distribution } from './percentiles.ts';
import { sampleResources, type ResourceUsage, type WatchedProcess } from './resource-sampler.ts';

export interface RequestSpec {
  readonly method: 'GET' | 'POST';
  readonly path: string;
  readonly headers?: Readonly<Record<string, string>>;
  readonly body?: string;
}

export interface LoadOptions {
  readonly urls: readonly string[];
  readonly connections: number;
  /** Time-bound run… */
  readonly durationS?: number;
  /** …or count-bound: exactly this many requests. */
  readonly amount?: number;
  /** Builds each request; called once per request sent. */
  readonly next: () => RequestSpec;
  /** Sees every answer with the request it answers (costs a little generator CPU). */
  readonly onReply?: (request: RequestSpec, status: number, body: string) => void;
  /** Processes whose RSS and CPU are sampled during the run. */
  readonly watch?: readonly WatchedProcess[];
}

export interface LoadResult {
  /** Answers received. */
  readonly responses: number;
  /** From the first request sent to the last answer received. */
  readonly seconds: number;
  readonly responsesPerSecond: number;
  /** Per request, in ms, as the client saw it (includes the generator's own queueing). */
  readonly latencyMs: Distribution;
  readonly statuses: Readonly<Record<string, number>>;
  /** Connection errors and timeouts (requests that got no answer). */
  readonly connectionErrors: number;
  readonly timeouts: number;
  readonly resources: readonly ResourceUsage[];
  /** Whole-machine CPU over the run (see ResourceReport). */
  readonly machineCpuPercent: number | null;
}

interface Context {
  spec?: RequestSpec;
}

/** autocannon accepts a list of URLs; its type declarations only admit one. */
type MultiUrlOptions = Omit<autocannon.Options, 'url'> & { url: string | string[] };

const JSON_HEADERS = { 'content-type': 'application/json' };

export async function runLoad(options: LoadOptions): Promise<LoadResult> {
  const latencies: number[] = [];
  const statuses: Record<string, number> = {};
  let lastAnswer = 0;

  const request: autocannon.Request = {
    setupRequest: (base, context) => {
      const spec = options.next();
      (context as Context).spec = spec;
      return {
        ...base,
        method: spec.method,
        path: spec.path,
        headers: { ...(spec.body === undefined ? {} : JSON_HEADERS), ...spec.headers },
        body: spec.body ?? '',
      };
    },
  };
  const onReply = options.onReply;
  if (onReply !== undefined) {
    request.onResponse = (status, body, context) => {
      const spec = (context as Context).spec;
      if (spec !== undefined) onReply(spec, status, body);
    };
  }

  const cannonOptions: MultiUrlOptions = {
    url: options.urls.length === 1 ? (options.urls[0] ?? '') : [...options.urls],
    connections: options.connections,
    requests: [request],
    // Stop checks happen on each sample tick: keep them frequent so a
    // count-bound run ends right after its last answer.
    sampleInt: 100,
    timeout: 10,
    ...(options.amount === undefined
      ? { duration: options.durationS ?? 10 }
      : { amount: options.amount }),
  };

  const sampler = sampleResources(options.watch ?? []);
  const started = performance.now();
  const result = await new Promise<autocannon.Result>((resolve, reject) => {
    const instance = autocannon(cannonOptions as autocannon.Options, (error, done) => {
      if (error !== null && error !== undefined) reject(error as Error);
      else resolve(done);
    });
    instance.on('response', (_client, statusCode, _bytes, responseTime) => {
      latencies.push(responseTime);
      const key = String(statusCode);
      statuses[key] = (statuses[key] ?? 0) + 1;
      lastAnswer = performance.now();
    });
  });
  const resources = sampler.stop();
  const seconds = ((lastAnswer > 0 ? lastAnswer : performance.now()) - started) / 1000;
  return {
    responses: latencies.length,
    seconds,
    responsesPerSecond: seconds > 0 ? latencies.length / seconds : 0,
    latencyMs: distribution(latencies),
    statuses,
    connectionErrors: result.errors - result.timeouts,
    timeouts: result.timeouts,
    resources: resources.processes,
    machineCpuPercent: resources.machineCpuPercent,
  };
}

/** Sum of the counts of `statuses` in `codes`. */
export function countOf(result: Pick<LoadResult, 'statuses'>, ...codes: number[]): number {
  return codes.reduce((sum, code) => sum + (result.statuses[String(code)] ?? 0), 0);
}

/**
 * An unmeasured warm-up, then the measured run (its processes watched), with
 * the same request stream, on the same connections count.
 */
export async function warmUpThenMeasure(
  deployment: { readonly urls: readonly string[]; watched(): readonly WatchedProcess[] },
  settings: { readonly connections: number; readonly warmupS: number; readonly loadS: number },
  next: () => RequestSpec,
): Promise<{ warmup: LoadResult; load: LoadResult }> {
  const common = { urls: deployment.urls, connections: settings.connections, next };
  const warmup = await runLoad({ ...common, durationS: settings.warmupS });
  const load = await runLoad({
    ...common,
    durationS: settings.loadS,
    watch: deployment.watched(),
  });
  return { warmup, load };
}
