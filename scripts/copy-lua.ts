/**
 * `npm run build`'s last step: the Lua scripts are read at run time beside
 * the modules that load them (src/runtime/lua/scripts.ts), so dist/ gets a
 * copy of every `.lua` file under src/, at the same relative path.
 */
import { cpSync, readdirSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';

const src = new URL('../src/', import.meta.url).pathname;
const dist = new URL('../dist/', import.meta.url).pathname;

const scripts = readdirSync(src, { recursive: true, encoding: 'utf8' }).filter((path) =>
  path.endsWith('.lua'),
);
for (const path of scripts) {
  const to = join(dist, path);
  cpSync(join(src, path), to);
  console.log(
    `${relative(process.cwd(), join(src, path))} -> ${relative(process.cwd(), dirname(to))}`,
  );
}
