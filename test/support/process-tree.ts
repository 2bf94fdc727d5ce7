/**
 * What `/proc` and the network say about processes a test did not spawn
 * itself: the node process `npm start` runs, the redis-server that one
 * starts. Linux only, like the fault tests.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { connect } from 'node:net';

interface ProcStat {
  readonly pid: number;
  readonly command: string;
  readonly state: string;
  readonly parent: number;
}

function statOf(pid: number): ProcStat | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // "pid (comm) S ppid ...": comm may hold spaces and parentheses.
    const close = stat.lastIndexOf(')');
    const [state = '', parent = '0'] = stat.slice(close + 2).split(' ');
    return {
      pid,
      command: stat.slice(stat.indexOf('(') + 1, close),
      state,
      parent: Number(parent),
    };
  } catch {
    return null;
  }
}

/** Every live process under `pid` (children, their children, ...), with its command name. */
export function descendantsOf(pid: number): { pid: number; command: string }[] {
  const all = readdirSync('/proc')
    .filter((name) => /^\d+$/.test(name))
    .map((name) => statOf(Number(name)))
    .filter((stat): stat is ProcStat => stat !== null && stat.state !== 'Z');
  const found: { pid: number; command: string }[] = [];
  const parents = [pid];
  for (let parent = parents.pop(); parent !== undefined; parent = parents.pop()) {
    for (const stat of all.filter((s) => s.parent === parent)) {
      found.push({ pid: stat.pid, command: stat.command });
      parents.push(stat.pid);
    }
  }
  return found;
}

/** True once `pid` has exited (a zombie nobody reaped yet counts as exited). */
export function isGone(pid: number): boolean {
  const stat = statOf(pid);
  return stat === null || stat.state === 'Z';
}

/** Whether something accepts TCP connections on 127.0.0.1:`port`. */
export function portAccepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => {
      resolve(false);
    });
  });
}
