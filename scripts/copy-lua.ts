/**
 * `npm run build`'s last step: the Lua scripts are read at run time beside
 * the modules that load them (src/runtime/lua/scripts.ts), so dist/ gets a
 * copy of every `.lua` file under src/, at the same relative path. The bench
 * builds with it too (bench/service-process.ts), for any checkout it builds.
 */
import { cpSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Copies `root`/src/**\/*.lua to `root`/dist/; returns the paths copied (relative to src/). */
export function copyLuaScripts(root: string): string[] {
  const scripts = readdirSync(join(root, 'src'), { recursive: true, encoding: 'utf8' }).filter(
    (path) => path.endsWith('.lua'),
  );
  for (const path of scripts) cpSync(join(root, 'src', path), join(root, 'dist', path));
  return scripts;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const copied = copyLuaScripts(fileURLToPath(new URL('..', import.meta.url)));
  console.log(`copied ${copied.length} Lua scripts into dist/`);
}
