/**
 * Every package the lockfile installs runs on every Node version the project
 * claims (package.json `engines.node`, the version the README names): an
 * install on the oldest claimed Node warns of no unsupported engine, and the
 * tools the tests use run there.
 */
import { readFileSync } from 'node:fs';
import semver from 'semver';
import { describe, expect, it } from 'vitest';

interface LockedPackage {
  readonly version?: string;
  readonly engines?: { readonly node?: string } | readonly string[];
}

const root = new URL('../../', import.meta.url);
const manifest = JSON.parse(readFileSync(new URL('package.json', root), 'utf8')) as {
  engines: { node: string };
};
const lock = JSON.parse(readFileSync(new URL('package-lock.json', root), 'utf8')) as {
  packages: Record<string, LockedPackage>;
};
const readme = readFileSync(new URL('README.md', root), 'utf8');

const claimed = manifest.engines.node;

describe('the Node versions the project claims', () => {
  it('are the ones the README names', () => {
    const oldest = semver.minVersion(claimed);
    expect(oldest).not.toBeNull();
    expect(readme).toContain(`Node ${String(oldest?.major)}.${String(oldest?.minor)} or newer`);
  });

  it('are admitted by every package in package-lock.json', () => {
    const refusing: string[] = [];
    for (const [path, locked] of Object.entries(lock.packages)) {
      // An old lockfile format lists engines as strings; these are objects.
      const node = Array.isArray(locked.engines)
        ? undefined
        : (locked.engines as { node?: string } | undefined)?.node;
      if (path === '' || node === undefined) continue;
      if (!semver.subset(claimed, node, { includePrerelease: false })) {
        refusing.push(`${path}@${String(locked.version)} wants node ${node}`);
      }
    }
    expect(refusing).toEqual([]);
  });
});
