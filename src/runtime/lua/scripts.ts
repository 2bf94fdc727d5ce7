import { readFileSync } from 'node:fs';

/**
 * The runtime's Lua scripts, one per `.lua` file beside this one (a header
 * names each KEYS[n], ARGV[n] and the output), read once when a module that
 * runs one is loaded. A line `--- @include "path"` is replaced by the file
 * `path.lua` (relative to the including file): shared pieces live in
 * `includes/`. `npm run build` copies the files beside the compiled code.
 */

const INCLUDE = /^--- @include "([^"]+)"[ \t]*$/gm;

/** The script at `url`, its includes inlined. */
export function readLuaScript(url: URL): string {
  return readFileSync(url, 'utf8').replace(INCLUDE, (_line, path: string) =>
    readLuaScript(new URL(`${path}.lua`, url)).trimEnd(),
  );
}

/** One of the runtime's scripts by its file name (without `.lua`). */
export function luaScript(name: string): string {
  return readLuaScript(new URL(`./${name}.lua`, import.meta.url));
}
