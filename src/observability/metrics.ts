/**
 * The service's Prometheus metrics, on prom-client.
 *
 * prom-client rather than OpenTelemetry's metrics SDK with its Prometheus
 * exporter: it is the Prometheus client the Node ecosystem maintains and
 * uses (Prometheus's own text format, default process metrics included), one
 * small package with no SDK/exporter pipeline, and recording a sample is an
 * increment in a map (no allocation per call once a label set exists), so
 * metrics stay on in production at no measurable cost.
 *
 * Each service gets its own Registry (never prom-client's global one), so
 * several services in one process (the tests) keep their counts apart.
 *
 * Label values are bounded: only names the code defines (machine, state,
 * event, effect names, error codes, route patterns), never a token, an
 * account or a request id. As a guard, each label keeps at most
 * MAX_LABEL_VALUES distinct values; later ones are counted as `other`.
 */
import {
  collectDefaultMetrics,
  Counter,
  Gauge,
  Histogram,
  Registry,
  type CounterConfiguration,
} from 'prom-client';

/** Redis failures, by what they mean to the service. */
export type RedisErrorKind = 'unavailable' | 'full' | 'lost';

export interface OutboxState {
  /** Records that owe effects not yet run. */
  readonly depth: number;
  /** Age of the oldest of them, seconds (0 when none). */
  readonly oldestAgeSeconds: number;
}

/** BullMQ job counts by state (Queue#getJobCounts). */
export type QueueCounts = Readonly<Record<string, number>>;

/**
 * What the engine and the payments report. Every method is cheap and never
 * throws; the `observe*` ones register a source read at each scrape.
 */
export interface Metrics {
  /** A machine moved `from` → `to` on `event` (state and event names, never ids). */
  transition(machine: string, from: string, to: string, event: string): void;
  /** An effect ran: its name (charge, refund, …), outcome (the event it answered with, or `error`) and duration. */
  effect(name: string, outcome: string, seconds: number): void;
  /** How long a request waited for a key's lock (acquired or not). */
  lockWait(seconds: number): void;
  /** A request gave up waiting for a key's lock (answered token_busy). */
  tokenBusy(): void;
  /** A write lost its compare-and-set (another process wrote first) and was retried. */
  staleWrite(): void;
  /** A timer fired `seconds` after its due time. */
  timerLateness(seconds: number): void;
  /** The worker's sweep armed again `count` due timers whose jobs were gone. */
  timersRearmed(machine: string, count: number): void;
  /** A Redis command failed, by kind. */
  redisError(kind: RedisErrorKind): void;
  /** `read` gives the outbox of `machine` at each scrape. */
  observeOutbox(machine: string, read: () => OutboxState | Promise<OutboxState>): void;
  /** `counts` gives the job counts of the BullMQ queue `queue` at each scrape. */
  observeQueue(queue: string, counts: () => QueueCounts | Promise<QueueCounts>): void;
}

/** The HTTP layer's side: one call per response. */
export interface HttpMetrics {
  request(method: string, route: string, status: number | 'aborted', seconds: number): void;
  /** An error body was sent with this code. */
  errorResponse(code: string): void;
}

/** The HTTP listener's connections (docs/operations.md#connections). */
export interface ConnectionMetrics {
  /** `read` gives a listener's open connections at each scrape (summed over listeners). */
  observeConnections(read: () => number): void;
  /** A waiting connection (idle, or its headers not complete) was closed to make room for a new one. */
  connectionEvicted(): void;
  /** A new connection was refused: the cap was reached and every open connection was running a request. */
  connectionRefused(): void;
}

export interface ServiceMetrics extends Metrics, HttpMetrics, ConnectionMetrics {
  readonly registry: Registry;
  /** The exposition: `text` in `contentType`. */
  scrape(): Promise<{ contentType: string; text: string }>;
}

export const MAX_LABEL_VALUES = 100;
const OTHER = 'other';

const HTTP_METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);

/** Seconds: from a fast Redis round trip to the lock wait limit. */
const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
/** Seconds a timer may be late: a BullMQ poll, a worker backlog, a worker down for a while. */
const LATENESS_BUCKETS = [0.01, 0.05, 0.1, 0.5, 1, 5, 15, 60, 300, 1800];

/** Caps the distinct values a label takes. */
function boundedLabel(): (value: string) => string {
  const seen = new Set<string>();
  return (value) => {
    if (seen.has(value)) return value;
    if (seen.size >= MAX_LABEL_VALUES) return OTHER;
    seen.add(value);
    return value;
  };
}

export function createMetrics(): ServiceMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });

  const counter = <T extends string>(config: CounterConfiguration<T>) =>
    new Counter<T>({ ...config, registers: [registry] });
  const bound = {
    route: boundedLabel(),
    code: boundedLabel(),
    machine: boundedLabel(),
    from: boundedLabel(),
    to: boundedLabel(),
    event: boundedLabel(),
    effect: boundedLabel(),
    outcome: boundedLabel(),
    queue: boundedLabel(),
    state: boundedLabel(),
  };

  const httpDuration = new Histogram({
    name: 'paystate_http_request_duration_seconds',
    help: 'HTTP requests by method, route pattern and status (aborted: the client left first).',
    labelNames: ['method', 'route', 'status_code'] as const,
    buckets: LATENCY_BUCKETS,
    registers: [registry],
  });
  const httpErrors = counter({
    name: 'paystate_http_error_responses_total',
    help: 'Error responses by error code (the code of the JSON error body).',
    labelNames: ['code'] as const,
  });
  const connectionSources = new Set<() => number>();
  const openConnections: Gauge = new Gauge({
    name: 'paystate_http_open_connections',
    help: 'Connections open to the API listener.',
    registers: [registry],
    collect() {
      let open = 0;
      for (const read of connectionSources) open += read();
      openConnections.set(open);
    },
  });
  const connectionsEvicted = counter({
    name: 'paystate_http_connections_evicted_total',
    help: 'Waiting connections (idle, or headers not complete) closed to make room under HTTP_MAX_CONNECTIONS.',
  });
  const connectionsRefused = counter({
    name: 'paystate_http_connections_refused_total',
    help: 'New connections refused at HTTP_MAX_CONNECTIONS, every open one running a request.',
  });
  const transitions = counter({
    name: 'paystate_transitions_total',
    help: 'State machine transitions by machine, source state, target state and event.',
    labelNames: ['machine', 'from', 'to', 'event'] as const,
  });
  const effects = new Histogram({
    name: 'paystate_effect_duration_seconds',
    help: 'Effect runs (charge, refund, ...) by name and outcome, with their duration.',
    labelNames: ['effect', 'outcome'] as const,
    buckets: LATENCY_BUCKETS,
    registers: [registry],
  });
  const lockWait = new Histogram({
    name: 'paystate_lock_wait_seconds',
    help: "Time a request waited for its key's lock.",
    buckets: LATENCY_BUCKETS,
    registers: [registry],
  });
  const tokenBusy = counter({
    name: 'paystate_token_busy_total',
    help: 'Requests that gave up waiting for a lock after LOCK_WAIT_MS (token_busy).',
  });
  const staleWrites = counter({
    name: 'paystate_stale_write_retries_total',
    help: 'Writes that lost their compare-and-set to another process and were retried.',
  });
  const timerLateness = new Histogram({
    name: 'paystate_timer_lateness_seconds',
    help: 'How long after its due time a durable timer fired.',
    buckets: LATENESS_BUCKETS,
    registers: [registry],
  });
  const timersRearmed = counter({
    name: 'paystate_timers_rearmed_total',
    help: 'Due timers whose job was gone (deleted, lost with a write) armed again by the recovery sweep.',
    labelNames: ['machine'] as const,
  });
  const redisErrors = counter({
    name: 'paystate_redis_errors_total',
    help: 'Failed Redis commands by kind: unavailable, full (maxmemory), lost (store emptied or replaced).',
    labelNames: ['kind'] as const,
  });

  const outboxes = new Map<string, () => OutboxState | Promise<OutboxState>>();
  // One read of the outboxes serves both gauges: the registry collects them concurrently.
  let outboxRead: Promise<void> | null = null;
  const readOutboxes = () =>
    (outboxRead ??= (async () => {
      outboxDepth.reset();
      outboxAge.reset();
      await Promise.all(
        [...outboxes].map(async ([machine, read]) => {
          try {
            const state = await read();
            outboxDepth.set({ machine }, state.depth);
            outboxAge.set({ machine }, state.oldestAgeSeconds);
          } catch {
            // Unreadable now (Redis down): no sample rather than a wrong one.
          }
        }),
      );
    })().finally(() => {
      outboxRead = null;
    }));
  const outboxDepth: Gauge<'machine'> = new Gauge({
    name: 'paystate_outbox_depth',
    help: 'Records whose owed effects have not run yet, by machine.',
    labelNames: ['machine'] as const,
    registers: [registry],
    collect: readOutboxes,
  });
  const outboxAge: Gauge<'machine'> = new Gauge({
    name: 'paystate_outbox_oldest_age_seconds',
    help: 'Age of the oldest record with owed effects, by machine.',
    labelNames: ['machine'] as const,
    registers: [registry],
    collect: readOutboxes,
  });

  const queues = new Map<string, () => QueueCounts | Promise<QueueCounts>>();
  const queueJobs: Gauge<'queue' | 'state'> = new Gauge({
    name: 'paystate_queue_jobs',
    help: 'BullMQ jobs by queue and state (waiting, delayed, active, failed, ...).',
    labelNames: ['queue', 'state'] as const,
    registers: [registry],
    async collect() {
      queueJobs.reset();
      await Promise.all(
        [...queues].map(async ([queue, read]) => {
          try {
            for (const [state, count] of Object.entries(await read())) {
              queueJobs.set({ queue, state: bound.state(state) }, count);
            }
          } catch {
            // Unreadable now: no sample.
          }
        }),
      );
    },
  });

  return {
    registry,
    async scrape() {
      return { contentType: registry.contentType, text: await registry.metrics() };
    },
    request(method, route, status, seconds) {
      httpDuration.observe(
        {
          method: HTTP_METHODS.has(method) ? method : OTHER,
          route: bound.route(route),
          status_code: String(status),
        },
        seconds,
      );
    },
    errorResponse(code) {
      httpErrors.inc({ code: bound.code(code) });
    },
    observeConnections(read) {
      connectionSources.add(read);
    },
    connectionEvicted() {
      connectionsEvicted.inc();
    },
    connectionRefused() {
      connectionsRefused.inc();
    },
    transition(machine, from, to, event) {
      transitions.inc({
        machine: bound.machine(machine),
        from: bound.from(from),
        to: bound.to(to),
        event: bound.event(event),
      });
    },
    effect(name, outcome, seconds) {
      effects.observe({ effect: bound.effect(name), outcome: bound.outcome(outcome) }, seconds);
    },
    lockWait(seconds) {
      lockWait.observe(seconds);
    },
    tokenBusy() {
      tokenBusy.inc();
    },
    staleWrite() {
      staleWrites.inc();
    },
    timerLateness(seconds) {
      timerLateness.observe(Math.max(0, seconds));
    },
    redisError(kind) {
      redisErrors.inc({ kind });
    },
    timersRearmed(machine, count) {
      timersRearmed.inc({ machine: bound.machine(machine) }, count);
    },
    observeOutbox(machine, read) {
      outboxes.set(bound.machine(machine), read);
    },
    observeQueue(queue, counts) {
      queues.set(bound.queue(queue), counts);
    },
  };
}
