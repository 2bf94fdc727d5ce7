/**
 * Maps a position in tsx's transpiled output (what V8 profiles see: tsx
 * strips types and whitespace, so most of a file is on one line) back to the
 * TypeScript source, with the source maps tsx keeps in its cache directory.
 * Best effort: null when no cached transform fits.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { SourceMap, type SourceMapPayload } from 'node:module';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';

interface CachedTransform {
  readonly lines: readonly string[];
  readonly map: SourceMap;
  readonly mtimeMs: number;
}

let index: Map<string, CachedTransform[]> | null = null;

function cacheDirectory(): string {
  const user = process.geteuid ? process.geteuid() : userInfo().username;
  return join(tmpdir(), `tsx-${user}`);
}

function loadIndex(): Map<string, CachedTransform[]> {
  const found = new Map<string, CachedTransform[]>();
  let names: string[] = [];
  try {
    names = readdirSync(cacheDirectory());
  } catch {
    return found;
  }
  for (const name of names) {
    const path = join(cacheDirectory(), name);
    try {
      const entry = JSON.parse(readFileSync(path, 'utf8')) as {
        code?: unknown;
        map?: SourceMapPayload;
      };
      const source = entry.map?.sources[0];
      if (typeof entry.code !== 'string' || entry.map === undefined || source === undefined)
        continue;
      const transforms = found.get(source) ?? [];
      transforms.push({
        lines: entry.code.split('\n'),
        map: new SourceMap(entry.map),
        mtimeMs: statSync(path).mtimeMs,
      });
      found.set(source, transforms);
    } catch {
      // not one of tsx's transforms
    }
  }
  for (const transforms of found.values()) transforms.sort((a, b) => b.mtimeMs - a.mtimeMs);
  return found;
}

/** 1-based line of `file` for a 0-based position in its transpiled code, or null. */
export function sourceLineOf(
  file: string,
  line: number,
  column: number,
  functionName: string,
): number | null {
  index ??= loadIndex();
  // Newest first: the transform of the file as it is now, unless none fits.
  for (const transform of index.get(file) ?? []) {
    const text = transform.lines[line];
    if (text === undefined || column >= text.length) continue;
    if (
      functionName !== '' &&
      !text.slice(Math.max(0, column - 300), column + 80).includes(functionName)
    ) {
      continue;
    }
    const entry = transform.map.findEntry(line, column) as { originalLine?: number };
    if (typeof entry.originalLine === 'number') return entry.originalLine + 1;
  }
  return null;
}
