import dagre from '@dagrejs/dagre';
import type { AnyStateMachine, AnyStateNode } from 'xstate';

/**
 * A machine's statechart as an SVG, read off the machine definition itself
 * (its root's states and their transitions) and laid out on the server with
 * dagre: the page needs no renderer of its own. Drawn in the manner of the
 * Stately visualizer: rounded state boxes on a dark canvas, an arrow into the
 * initial state, event names on the edges, events that keep the state listed
 * inside it, final states with a double border.
 *
 * Top-level states are the boxes (the state index counts keys by them); a
 * transition of a nested state is drawn from and to its top-level states.
 */

export interface ChartEdge {
  readonly from: string;
  readonly to: string;
  readonly label: string;
}

export interface ChartState {
  readonly name: string;
  readonly final: boolean;
  readonly description: string | null;
  /** Events that keep the key in this state (no target, or a target inside it). */
  readonly internal: readonly string[];
}

export interface Chart {
  readonly initial: string | null;
  readonly states: readonly ChartState[];
  readonly edges: readonly ChartEdge[];
}

/** The event's label: `after 300ms` for a delayed transition, `always` for an eventless one. */
function eventLabel(eventType: string): string {
  const after = /^xstate\.after\.([^.]+)\./.exec(eventType);
  if (after !== null)
    return /^\d+$/.test(after[1] ?? '') ? `after ${after[1]}ms` : `after ${after[1]}`;
  return eventType === '' ? 'always' : eventType;
}

function guardName(guard: unknown): string | null {
  if (guard === undefined || guard === null) return null;
  if (typeof guard === 'string') return guard;
  if (typeof guard === 'object' && 'type' in guard) return String(guard.type);
  return 'guard';
}

/** The top-level state a node belongs to. */
function topLevel(node: AnyStateNode, root: AnyStateNode): string {
  let current = node;
  while (current.parent !== undefined && current.parent !== root) current = current.parent;
  return current.key;
}

function descendants(node: AnyStateNode): AnyStateNode[] {
  return [node, ...Object.values(node.states).flatMap((child) => descendants(child))];
}

/** The states and transitions of `machine`, by top-level state. */
export function chartOf(machine: AnyStateMachine): Chart {
  const root = machine.root;
  const states: ChartState[] = [];
  const edges: ChartEdge[] = [];
  const seen = new Set<string>();
  for (const [name, node] of Object.entries(root.states)) {
    const internal: string[] = [];
    for (const inner of descendants(node)) {
      const transitions = [...[...inner.transitions.values()].flat(), ...(inner.always ?? [])];
      for (const transition of transitions) {
        const guard = guardName(transition.guard);
        const eventType = String(transition.eventType);
        const label = `${eventLabel(eventType)}${guard === null ? '' : ` [${guard}]`}`;
        const targets = (transition.target ?? []).map((t) => topLevel(t, root));
        const leaving = targets.filter((t) => t !== name || transition.reenter);
        if (leaving.length === 0) {
          const plain = eventLabel(eventType);
          if (!internal.includes(plain)) internal.push(plain);
          continue;
        }
        for (const to of leaving) {
          const id = `${name}\u0000${to}\u0000${label}`;
          if (seen.has(id)) continue;
          seen.add(id);
          edges.push({ from: name, to, label });
        }
      }
    }
    states.push({
      name,
      final: node.type === 'final',
      description: node.description ?? null,
      internal,
    });
  }
  const initial = root.initial.target[0];
  return { initial: initial === undefined ? null : topLevel(initial, root), states, edges };
}

/** What is used of dagre's graph (its own types leave the graph untyped). */
interface LayoutGraph {
  setGraph(label: Record<string, number | string>): void;
  setDefaultEdgeLabel(label: () => object): void;
  setNode(name: string, label: { width: number; height: number }): void;
  setEdge(from: string, to: string, label: object, name: string): void;
  node(name: string): { x: number; y: number; width: number; height: number };
  edges(): { v: string; w: string; name?: string }[];
  edge(edge: { v: string; w: string; name?: string }): {
    points: { x: number; y: number }[];
    x?: number;
    y?: number;
  };
  graph(): { width?: number; height?: number };
}

const layoutGraph = (): LayoutGraph =>
  // eslint-disable-next-line @typescript-eslint/no-unsafe-member-access -- dagre's graphlib types do not resolve
  new (dagre.graphlib.Graph as unknown as new (options: object) => LayoutGraph)({
    multigraph: true,
  });
const layout = dagre.layout as unknown as (graph: LayoutGraph) => void;

// Text is measured by an estimate: the page's font is a system sans-serif at these sizes.
const CHAR_WIDTH = { title: 8.2, chip: 6.6, edge: 6.6 } as const;
const HEADER = 40;
const CHIP_LINE = 22;
const PAD = 14;
const COUNT_WIDTH = 44;
const MARGIN = 24;

const escape = (text: string) => text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function roundedPath(points: readonly { x: number; y: number }[]): string {
  const [first, ...rest] = points;
  if (first === undefined) return '';
  if (rest.length === 0) return `M${first.x},${first.y}`;
  let d = `M${first.x.toFixed(1)},${first.y.toFixed(1)}`;
  // Through the midpoints, bending at each control point: a smooth curve.
  for (let i = 0; i < rest.length - 1; i++) {
    const p = rest[i];
    const q = rest[i + 1];
    if (p === undefined || q === undefined) continue;
    d += ` Q${p.x.toFixed(1)},${p.y.toFixed(1)} ${((p.x + q.x) / 2).toFixed(1)},${((p.y + q.y) / 2).toFixed(1)}`;
  }
  const last = rest[rest.length - 1];
  if (last !== undefined) d += ` L${last.x.toFixed(1)},${last.y.toFixed(1)}`;
  return d;
}

/**
 * The chart as an SVG element. Each state is a `g.state-node[data-state]`
 * holding a `text[data-count-for]` the page fills with its live count; each
 * edge a `g.edge[data-from][data-to]`.
 */
export function renderChart(chart: Chart): string {
  const graph = layoutGraph();
  graph.setGraph({
    rankdir: 'TB',
    nodesep: 50,
    ranksep: 70,
    edgesep: 20,
    marginx: MARGIN,
    marginy: MARGIN,
  });
  graph.setDefaultEdgeLabel(() => ({}));
  for (const state of chart.states) {
    const width = Math.max(
      150,
      state.name.length * CHAR_WIDTH.title + COUNT_WIDTH + PAD * 3,
      ...state.internal.map((e) => e.length * CHAR_WIDTH.chip + PAD * 3),
    );
    const height =
      HEADER + (state.internal.length > 0 ? state.internal.length * CHIP_LINE + 10 : 0);
    graph.setNode(state.name, { width, height });
  }
  if (chart.initial !== null) {
    graph.setNode('\u0000initial', { width: 12, height: 12 });
    graph.setEdge('\u0000initial', chart.initial, { width: 0, height: 0, minlen: 1 }, 'initial');
  }
  chart.edges.forEach((edge, i) => {
    graph.setEdge(
      edge.from,
      edge.to,
      { width: edge.label.length * CHAR_WIDTH.edge + 20, height: 22, labelpos: 'c' },
      `e${i}`,
    );
  });
  layout(graph);

  const { width = 0, height = 0 } = graph.graph();
  const parts: string[] = [];
  parts.push(
    `<svg xmlns="http://www.w3.org/2000/svg" class="statechart" viewBox="0 0 ${Math.ceil(width)} ${Math.ceil(height)}" width="${Math.ceil(width)}" height="${Math.ceil(height)}" role="img" aria-label="statechart">`,
    '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" class="arrowhead"/></marker></defs>',
  );
  // Edges under the states, labels over them.
  const labels: string[] = [];
  for (const e of graph.edges()) {
    const edge = graph.edge(e);
    if (e.v === '\u0000initial') {
      const start = graph.node(e.v);
      parts.push(
        `<g class="initial"><circle cx="${start.x}" cy="${start.y}" r="5"/><path d="${roundedPath(edge.points)}" marker-end="url(#arrow)"/></g>`,
      );
      continue;
    }
    const index = Number((e.name ?? 'e0').slice(1));
    const chartEdge = chart.edges[index];
    if (chartEdge === undefined) continue;
    const attrs = `data-from="${escape(chartEdge.from)}" data-to="${escape(chartEdge.to)}" data-event="${escape(chartEdge.label)}"`;
    parts.push(
      `<g class="edge" ${attrs}><path d="${roundedPath(edge.points)}" marker-end="url(#arrow)"/></g>`,
    );
    if (edge.x !== undefined && edge.y !== undefined) {
      const w = chartEdge.label.length * CHAR_WIDTH.edge + 16;
      labels.push(
        `<g class="edge-label" ${attrs}><rect x="${(edge.x - w / 2).toFixed(1)}" y="${(edge.y - 10).toFixed(1)}" width="${w.toFixed(1)}" height="20" rx="10"/><text x="${edge.x.toFixed(1)}" y="${(edge.y + 4).toFixed(1)}">${escape(chartEdge.label)}</text></g>`,
      );
    }
  }
  for (const state of chart.states) {
    const node = graph.node(state.name);
    const x = node.x - node.width / 2;
    const y = node.y - node.height / 2;
    const pillX = x + node.width - PAD - COUNT_WIDTH + 6;
    const pillWidth = COUNT_WIDTH - 6;
    const cls = `state-node${state.final ? ' final' : ''}`;
    const title = state.description === null ? '' : `<title>${escape(state.description)}</title>`;
    const chips = state.internal
      .map(
        (event, i) =>
          `<text class="internal" x="${(x + PAD).toFixed(1)}" y="${(y + HEADER + 14 + i * CHIP_LINE).toFixed(1)}">${escape(event)}</text>`,
      )
      .join('');
    parts.push(
      `<g class="${cls}" data-state="${escape(state.name)}" tabindex="0">${title}` +
        `<rect class="box" x="${x.toFixed(1)}" y="${y.toFixed(1)}" width="${node.width.toFixed(1)}" height="${node.height.toFixed(1)}" rx="10"/>` +
        (state.final
          ? `<rect class="inner" x="${(x + 4).toFixed(1)}" y="${(y + 4).toFixed(1)}" width="${(node.width - 8).toFixed(1)}" height="${(node.height - 8).toFixed(1)}" rx="7"/>`
          : '') +
        `<text class="name" x="${(x + PAD).toFixed(1)}" y="${(y + 25).toFixed(1)}">${escape(state.name)}</text>` +
        `<rect class="count-pill" x="${pillX.toFixed(1)}" y="${(y + 11).toFixed(1)}" width="${pillWidth}" height="19" rx="9.5"/>` +
        `<text class="count" data-count-for="${escape(state.name)}" x="${(pillX + pillWidth / 2).toFixed(1)}" y="${(y + 25).toFixed(1)}">–</text>` +
        (state.internal.length > 0
          ? `<line class="divider" x1="${x.toFixed(1)}" x2="${(x + node.width).toFixed(1)}" y1="${(y + HEADER).toFixed(1)}" y2="${(y + HEADER).toFixed(1)}"/>`
          : '') +
        chips +
        '</g>',
    );
  }
  parts.push(...labels, '</svg>');
  return parts.join('');
}
