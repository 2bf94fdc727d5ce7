/**
 * Reads a V8 .cpuprofile (node --cpu-prof) and ranks functions by self time,
 * counting only the samples taken inside a time window (the measured load,
 * not start-up or shutdown).
 */
import { readFileSync } from 'node:fs';
import { relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { sourcePositionOf } from './source-positions.ts';

interface CallFrame {
  readonly functionName: string;
  readonly url: string;
  readonly lineNumber: number;
  readonly columnNumber: number;
}

interface ProfileNode {
  readonly id: number;
  readonly callFrame: CallFrame;
  readonly children?: readonly number[];
}

interface CpuProfileFile {
  readonly nodes: readonly ProfileNode[];
  /** Microseconds on the monotonic clock (the one process.hrtime reads). */
  readonly startTime: number;
  readonly endTime: number;
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
}

export interface Frame {
  readonly functionName: string;
  /** `file:line`, for the service's compiled files mapped back to the TypeScript source. */
  readonly location: string;
  readonly origin: string;
  /**
   * For native and Node-internal frames: the nearest caller in a package or
   * the service (e.g. the library whose socket write it is), by samples.
   */
  readonly calledFrom: string | null;
  readonly selfPercent: number;
  readonly selfMs: number;
}

export interface ProfileSummary {
  readonly samples: number;
  readonly windowMs: number;
  /** False when the window did not fall inside the profile and every sample was used. */
  readonly windowed: boolean;
  readonly topFrames: readonly Frame[];
  /** Self time by where the code comes from: a package, node itself, the service, GC, idle. */
  readonly byOrigin: readonly { readonly origin: string; readonly selfPercent: number }[];
}

function originOf(url: string, functionName: string, root: string): string {
  if (url === '') {
    if (functionName === '(garbage collector)') return 'garbage collector';
    if (functionName === '(idle)') return 'idle';
    if (functionName === '(program)') return 'V8 / native (program)';
    return 'native';
  }
  if (url.startsWith('node:')) return 'node core';
  const path = url.startsWith('file://') ? fileURLToPath(url) : url;
  const modules = path.lastIndexOf('/node_modules/');
  if (modules >= 0) {
    const parts = path.slice(modules + '/node_modules/'.length).split('/');
    return parts[0]?.startsWith('@')
      ? `${parts[0]}/${parts[1] ?? ''}`
      : (parts[0] ?? 'node_modules');
  }
  // The service runs from its build: dist/runtime/… is src/runtime/….
  const local = relative(root, path).replace(/^dist\//, 'src/');
  return local.startsWith('src/') ? `service (${local.split('/').slice(0, 2).join('/')})` : local;
}

function locationOf(frame: CallFrame, root: string): string {
  if (frame.url === '') return '';
  if (!frame.url.startsWith('file://')) return `${frame.url}:${frame.lineNumber + 1}`;
  const path = fileURLToPath(frame.url);
  const local = relative(root, path);
  if (local.startsWith('dist/')) {
    const source = sourcePositionOf(path, frame.lineNumber, frame.columnNumber);
    // Unmapped: the position in the compiled output.
    return source === null
      ? `${local}:${frame.lineNumber + 1}:${frame.columnNumber + 1}`
      : `${relative(root, source.file)}:${source.line}`;
  }
  return `${local}:${frame.lineNumber + 1}`;
}

/** Code the application chose to run: a package or the service, not Node or V8 itself. */
function isApplication(frame: CallFrame): boolean {
  return frame.url !== '' && !frame.url.startsWith('node:');
}

export function summarizeProfile(
  file: string,
  root: string,
  window: { readonly fromUs: number; readonly toUs: number },
  top = 15,
): ProfileSummary {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfileFile;
  const nodes = new Map(profile.nodes.map((node) => [node.id, node]));
  const parents = new Map<number, number>();
  for (const node of profile.nodes)
    for (const child of node.children ?? []) parents.set(child, node.id);
  const callers = new Map<number, string | null>();
  const callerOf = (id: number): string | null => {
    const known = callers.get(id);
    if (known !== undefined) return known;
    let found: string | null = null;
    for (let at = parents.get(id); at !== undefined; at = parents.get(at)) {
      const frame = nodes.get(at)?.callFrame;
      if (frame !== undefined && isApplication(frame)) {
        found = `${frame.functionName === '' ? '(anonymous)' : frame.functionName} (${locationOf(frame, root)})`;
        break;
      }
    }
    callers.set(id, found);
    return found;
  };
  const windowed = window.fromUs >= profile.startTime && window.toUs <= profile.endTime;
  const counts = new Map<number, number>();
  let t = profile.startTime;
  let total = 0;
  profile.samples.forEach((id, i) => {
    t += profile.timeDeltas[i] ?? 0;
    if (windowed && (t < window.fromUs || t > window.toUs)) return;
    counts.set(id, (counts.get(id) ?? 0) + 1);
    total++;
  });
  const windowMs = windowed
    ? (window.toUs - window.fromUs) / 1000
    : (profile.endTime - profile.startTime) / 1000;
  const msPerSample = total > 0 ? windowMs / total : 0;

  const frames = new Map<
    string,
    { frame: CallFrame; samples: number; callers: Map<string, number> }
  >();
  const origins = new Map<string, number>();
  for (const [id, samples] of counts) {
    const frame = nodes.get(id)?.callFrame;
    if (frame === undefined) continue;
    const key = `${frame.functionName}\u0000${frame.url}\u0000${frame.lineNumber}`;
    const entry = frames.get(key) ?? { frame, samples: 0, callers: new Map<string, number>() };
    entry.samples += samples;
    if (!isApplication(frame)) {
      const caller = callerOf(id);
      if (caller !== null) entry.callers.set(caller, (entry.callers.get(caller) ?? 0) + samples);
    }
    frames.set(key, entry);
    const origin = originOf(frame.url, frame.functionName, root);
    origins.set(origin, (origins.get(origin) ?? 0) + samples);
  }
  const percent = (samples: number) => (total > 0 ? (samples / total) * 100 : 0);
  return {
    samples: total,
    windowMs,
    windowed,
    topFrames: [...frames.values()]
      .sort((a, b) => b.samples - a.samples)
      .slice(0, top)
      .map(({ frame, samples, callers: from }) => ({
        functionName: frame.functionName === '' ? '(anonymous)' : frame.functionName,
        location: locationOf(frame, root),
        origin: originOf(frame.url, frame.functionName, root),
        calledFrom: [...from.entries()].sort((a, b) => b[1] - a[1])[0]?.[0] ?? null,
        selfPercent: percent(samples),
        selfMs: samples * msPerSample,
      })),
    byOrigin: [...origins.entries()]
      .sort((a, b) => b[1] - a[1])
      .map(([origin, samples]) => ({ origin, selfPercent: percent(samples) })),
  };
}
