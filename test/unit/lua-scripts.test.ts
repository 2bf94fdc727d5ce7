/**
 * Every Lua script is a `.lua` file whose header names what it takes and
 * answers (as BullMQ's commands/): each KEYS[n] and ARGV[n] its body uses,
 * and its output. No script lives inside a `.ts` file.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { readLuaScript } from '../../src/runtime/lua/scripts.ts';

const src = new URL('../../src/', import.meta.url);
const files = readdirSync(src, { recursive: true, encoding: 'utf8' });
const scripts = files.filter((path) => path.endsWith('.lua'));

/** The header comment `--[[ ... ]]` and the code after it. */
function parts(text: string): { header: string; body: string } {
  const match = /^--\[\[([\s\S]*?)\]\]\n([\s\S]*)$/.exec(text);
  return { header: match?.[1] ?? '', body: match?.[2] ?? text };
}

describe('the Lua scripts', () => {
  it('are files of their own', () => {
    expect(scripts.length).toBeGreaterThanOrEqual(15);
    const inTs = files.filter(
      (path) =>
        path.endsWith('.ts') && /redis\.p?call\(/.test(readFileSync(new URL(path, src), 'utf8')),
    );
    expect(inTs).toEqual([]);
  });

  it.each(scripts)('%s names every KEYS[n] and ARGV[n] it uses, and its output', (path) => {
    const { header, body } = parts(readFileSync(new URL(path, src), 'utf8'));
    expect(header).not.toBe('');
    if (path.includes('includes/')) return;
    expect(header).toMatch(/\n {2}Output:\n/);
    for (const [used] of body.matchAll(/\b(KEYS|ARGV)\[\d+\]/g)) {
      expect(header, `${path} uses ${used}`).toContain(used);
    }
  });

  it('inline their includes', () => {
    const script = readLuaScript(new URL('runtime/lua/save-record.lua', src));
    expect(script).not.toContain('@include');
    expect(script).toContain('local function storeGuard(identityKey, storeId)');
  });
});
