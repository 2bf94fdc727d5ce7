import { defineConfig } from 'vitest/config';

/**
 * The tests `npm run mutate:engine` runs against each mutant of
 * durable-machine.ts: the engine's tests with toy machines on a private
 * redis-server. processes.test.ts is left out: its engines run in child
 * processes, where a mutant is never active.
 */
export default defineConfig({
  test: {
    include: ['test/runtime/*.test.ts'],
    exclude: ['test/runtime/processes.test.ts'],
    globalSetup: ['test/support/global-setup.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
  },
});
