/**
 * Maps a position in the compiled service (what V8 profiles see: dist/*.js)
 * back to its TypeScript source, with the source map the build writes beside
 * each file. Best effort: null when there is no map or no entry.
 */
import { readFileSync } from 'node:fs';
import { SourceMap, type SourceMapPayload } from 'node:module';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const maps = new Map<string, SourceMap | null>();

function mapOf(file: string): SourceMap | null {
  let map = maps.get(file);
  if (map === undefined) {
    try {
      map = new SourceMap(JSON.parse(readFileSync(`${file}.map`, 'utf8')) as SourceMapPayload);
    } catch {
      map = null;
    }
    maps.set(file, map);
  }
  return map;
}

/** The source file and its 1-based line for a 0-based position in `file`, or null. */
export function sourcePositionOf(
  file: string,
  line: number,
  column: number,
): { readonly file: string; readonly line: number } | null {
  const entry: { originalSource?: string; originalLine?: number } | undefined = mapOf(
    file,
  )?.findEntry(line, column);
  if (entry?.originalSource === undefined || typeof entry.originalLine !== 'number') return null;
  const source = entry.originalSource.startsWith('file://')
    ? fileURLToPath(entry.originalSource)
    : resolve(dirname(file), entry.originalSource);
  return { file: source, line: entry.originalLine + 1 };
}
