/**
 * The runtime's public entry stays small and names no internals (key layout,
 * job ids, index classes, owed actions, legacy adoption, test hooks): those
 * are reached through src/runtime/testing.ts.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import * as runtime from '../../src/runtime/index.ts';

/** Every name `export { … }` / `export type { … }` lists in a module's text. */
function exportedNames(path: string): string[] {
  const text = readFileSync(new URL(path, import.meta.url), 'utf8').replace(
    /\/\*[\s\S]*?\*\//g,
    '',
  );
  return [...text.matchAll(/export\s*(?:type\s*)?\{([^}]*)\}/g)].flatMap((match) =>
    (match[1] ?? '')
      .split(',')
      .map((name) => name.trim().replace(/^type\s+/, ''))
      .filter((name) => name !== ''),
  );
}

const INTERNALS = [
  'machineKeys',
  'MachineKeys',
  'OwedAction',
  'Timers',
  'StateIndex',
  'indexState',
  'timerJobId',
  'timerQueueName',
  'TimerJobData',
  'LegacyRecord',
  'HookInfo',
  'HookPoint',
  'setCommandHook',
];

describe('the public entry of the runtime', () => {
  const names = exportedNames('../../src/runtime/index.ts');

  it('has at most 20 names, values and types together', () => {
    expect(names.length).toBeGreaterThan(0);
    expect(names.length).toBeLessThanOrEqual(20);
  });

  it('names none of the internals, which the testing entry has', () => {
    expect(names.filter((name) => INTERNALS.includes(name))).toEqual([]);
    const testing = exportedNames('../../src/runtime/testing.ts');
    expect(INTERNALS.filter((name) => !testing.includes(name))).toEqual([]);
  });

  it('exports as values exactly its functions and its error class', () => {
    expect(Object.keys(runtime).sort()).toEqual([
      'RuntimeError',
      'createEngine',
      'durableMachine',
      'toRuntimeError',
    ]);
  });
});
