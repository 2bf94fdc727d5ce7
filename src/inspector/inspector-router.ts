import { readFileSync } from 'node:fs';
import { Router, type Request, type Response } from 'express';
import type { AnyMachineSnapshot, AnyStateMachine, StateValue } from 'xstate';
// The state names the engine's index uses, to list keys by them.
import { indexState } from '../runtime/testing.ts';
import type { DurableActors } from '../runtime/index.ts';
import { NotFoundError, ValidationError } from '../errors.ts';
import { chartOf, renderChart } from './statechart.ts';

/**
 * The live statechart page of any machine on the engine: its chart drawn
 * from the definition (statechart.ts), each state showing how many keys are
 * in it now, a search for a key that highlights its state and shows the path
 * it took, refreshed by polling. Everything is served from here (no CDN, no
 * inline script or style) under a strict Content-Security-Policy.
 *
 * Routes, under `basePath`: the page; `assets/{inspector.js,inspector.css}`;
 * `api/counts`; `api/keys/{key}`; `api/states/{state}` (newest keys).
 */

/** What the page reads of a durable machine (DurableActors has all of it). */
export interface InspectedActors {
  counts(partition?: string): Promise<Record<string, number>>;
  list(options: {
    state: string;
    limit?: number;
    partition?: string;
  }): ReturnType<DurableActors<AnyStateMachine>['list']>;
  get(key: string): Promise<AnyMachineSnapshot | null>;
}

export interface HistoryStep {
  /** Epoch ms. */
  readonly at: number;
  readonly event: string;
  readonly state: string;
}

export interface KeyDescription {
  readonly state: string;
  /** The path the key took, oldest first; empty when the machine keeps none. */
  readonly history: readonly HistoryStep[];
  /** A few facts to show beside it. */
  readonly fields: Readonly<Record<string, string | number | boolean | null>>;
}

export interface InspectorConfig<TSnapshot extends AnyMachineSnapshot = AnyMachineSnapshot> {
  readonly title: string;
  readonly machine: AnyStateMachine;
  readonly actors: InspectedActors;
  /** Where the page lives; `/inspect` by default. */
  readonly basePath?: string;
  /** Checks a key typed in the search box; throws a ValidationError for a bad one. */
  readonly parseKey?: (raw: string) => string;
  /**
   * A key's state, history and facts, shown to the caller of `req` (ids in
   * them as that caller knows them); by default its state and its context's
   * plain values.
   */
  readonly describe?: (snapshot: TSnapshot, req: Request) => KeyDescription;
  /** How many keys a state's list shows; 20 by default. */
  readonly listLimit?: number;
  /**
   * Whose keys a request may see (e.g. a tenant's, by its API key): the
   * stored key of a typed one, the typed form of a stored one (`null`: not
   * the caller's), and the partition of the machine's keys that holds the
   * caller's (`undefined`: every key), read for its counts and listings. By
   * default every key, as stored.
   */
  readonly scope?: {
    key(req: Request, typed: string): string;
    own(req: Request, stored: string): string | null;
    partition(req: Request): string | undefined;
  };
}

export const INSPECTOR_ASSETS = ['inspector.js', 'inspector.css'] as const;

// Read from the source tree, from src/ and from a build in dist/ alike (both
// sit one level under the package root, which ships src/): no build step copies them.
const assetText = (name: string) =>
  readFileSync(new URL(`../../src/inspector/assets/${name}`, import.meta.url), 'utf8');

const ASSET_TEXT: Record<(typeof INSPECTOR_ASSETS)[number], string> = {
  'inspector.js': assetText('inspector.js'),
  'inspector.css': assetText('inspector.css'),
};

/** Nothing from another origin, no inline script or style. */
export const INSPECTOR_CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const escape = (text: string) => text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/** The default description: the state and the context's plain values. */
export function describeSnapshot(snapshot: AnyMachineSnapshot): KeyDescription {
  const fields: Record<string, string | number | boolean | null> = {};
  const context = (snapshot.context ?? {}) as Record<string, unknown>;
  for (const [name, value] of Object.entries(context)) {
    if (value === null || ['string', 'number', 'boolean'].includes(typeof value)) {
      fields[name] = value as string | number | boolean | null;
    }
  }
  return { state: indexState(snapshot.value as StateValue), history: [], fields };
}

export function inspectorRouter<TSnapshot extends AnyMachineSnapshot>(
  config: InspectorConfig<TSnapshot>,
): Router {
  const base = config.basePath ?? '/inspect';
  const chart = chartOf(config.machine);
  const states = new Set(chart.states.map((s) => s.name));
  const svg = renderChart(chart);
  const describe = (config.describe ?? describeSnapshot) as (
    s: AnyMachineSnapshot,
    req: Request,
  ) => KeyDescription;
  const parseKey = config.parseKey ?? ((raw: string) => raw);
  const page = `<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8" />
    <meta name="viewport" content="width=device-width, initial-scale=1" />
    <title>${escape(config.title)} · inspector</title>
    <link rel="stylesheet" href="${base}/assets/inspector.css" />
  </head>
  <body data-base="${escape(base)}">
    <header>
      <h1>${escape(config.title)}</h1>
      <span class="machine">machine <code>${escape(config.machine.id)}</code></span>
      <span id="live" class="live" title="counts refresh every second">live</span>
      <form id="search" role="search">
        <input id="key" name="key" type="search" placeholder="Find a key (token)…" autocomplete="off" spellcheck="false" />
        <button type="submit">Find</button>
      </form>
    </header>
    <main>
      <section class="chart">
        <ul id="legend" class="legend" aria-label="legend">
          <li><span class="swatch occupied"></span>keys in it now</li>
          <li><span class="swatch active"></span>the found key's state</li>
          <li><span class="swatch visited"></span>a state on its path</li>
          <li><span class="swatch taken"></span>a transition it took</li>
          <li><span class="swatch selected"></span>the state listed</li>
          <li><span class="swatch final"></span>a final state</li>
        </ul>
        <div class="canvas" aria-label="statechart">${svg}</div>
      </section>
      <aside id="panel">
        <div id="found" hidden>
          <h2><span id="found-key"></span> <span id="found-state" class="badge"></span></h2>
          <dl id="found-fields"></dl>
          <h3>History</h3>
          <ol id="history" class="timeline"></ol>
        </div>
        <p id="message" class="message">Search a key to see where it is and the path it took. Click a state to list its newest keys.</p>
        <div id="listing" hidden>
          <h3>Newest in <span id="listing-state"></span></h3>
          <ul id="listing-keys"></ul>
        </div>
      </aside>
    </main>
    <script src="${base}/assets/inspector.js"></script>
  </body>
</html>
`;

  const router = Router();
  const secure = (res: Response) => {
    res.set('Content-Security-Policy', INSPECTOR_CSP);
    res.set('X-Content-Type-Options', 'nosniff');
    res.set('Referrer-Policy', 'no-referrer');
  };

  router.get(base, (_req, res) => {
    secure(res);
    res.type('html').send(page);
  });

  router.get(`${base}/assets/:asset`, (req: Request, res: Response) => {
    const asset = req.params.asset as (typeof INSPECTOR_ASSETS)[number];
    if (!INSPECTOR_ASSETS.includes(asset)) throw new NotFoundError(`no inspector asset ${asset}`);
    secure(res);
    res.type(asset.endsWith('.css') ? 'text/css' : 'text/javascript').send(ASSET_TEXT[asset]);
  });

  const { scope } = config;
  router.get(`${base}/api/counts`, async (req, res) => {
    res.set('Cache-Control', 'no-store');
    const partition = scope?.partition(req);
    res.json({ counts: await config.actors.counts(partition) });
  });

  router.get(`${base}/api/keys/:key`, async (req: Request, res: Response) => {
    const key = parseKey(String(req.params.key));
    const snapshot = await config.actors.get(scope?.key(req, key) ?? key);
    if (snapshot === null) throw new NotFoundError(`no record for ${key}`);
    const description = describe(snapshot, req);
    res.set('Cache-Control', 'no-store');
    res.json({
      key,
      state: description.state,
      history: description.history.map((h) => ({ ...h, at: new Date(h.at).toISOString() })),
      fields: description.fields,
    });
  });

  router.get(`${base}/api/states/:state`, async (req: Request, res: Response) => {
    const state = String(req.params.state);
    if (!states.has(state)) {
      throw new ValidationError(`state must be one of ${[...states].join(', ')}`);
    }
    const partition = scope?.partition(req);
    const page = await config.actors.list({
      state,
      limit: config.listLimit ?? 20,
      ...(partition === undefined ? {} : { partition }),
    });
    res.set('Cache-Control', 'no-store');
    // A key the caller does not own is left out, never shown as stored.
    const keys = page.entries.flatMap((e) => {
      const key = scope === undefined ? e.key : scope.own(req, e.key);
      return key === null ? [] : [{ key, updatedAt: new Date(e.updatedAt).toISOString() }];
    });
    res.json({ state, keys });
  });

  return router;
}
