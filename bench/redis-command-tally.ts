/**
 * Counts the commands Redis executes, from MONITOR: every command a client
 * sends (by name; scripts by what they are) and, separately, the commands
 * scripts run inside Redis. The bench's own connection is left out.
 */
import { createHash } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import * as bullScripts from 'bullmq/dist/esm/scripts/index.js';
import type { Redis } from 'ioredis';

export interface TallySnapshot {
  readonly sent: ReadonlyMap<string, number>;
  readonly inScripts: ReadonlyMap<string, number>;
}

export interface CommandCounts {
  /** Commands clients sent, by label. */
  readonly sent: Readonly<Record<string, number>>;
  /** Commands run inside scripts, by name. */
  readonly inScripts: Readonly<Record<string, number>>;
}

/** sha1 of each BullMQ script → its name (BullMQ loads them under these hashes). */
function bullScriptNames(): Map<string, string> {
  const names = new Map<string, string>();
  for (const script of Object.values(bullScripts) as { name?: unknown; content?: unknown }[]) {
    if (typeof script.name !== 'string' || typeof script.content !== 'string') continue;
    names.set(createHash('sha1').update(script.content).digest('hex'), script.name);
  }
  return names;
}

/**
 * Splits one MONITOR line's arguments: `"set" "k" "a \\"quoted\\" value"`.
 * Redis escapes quotes, backslashes and control bytes inside each argument.
 */
export function parseMonitorArgs(text: string): string[] {
  const args: string[] = [];
  let i = text.indexOf('"');
  while (i >= 0 && i < text.length) {
    let value = '';
    let j = i + 1;
    for (; j < text.length && text[j] !== '"'; j++) {
      if (text[j] === '\\' && j + 1 < text.length) {
        const next = text[j + 1] ?? '';
        if (next === 'x') {
          value += String.fromCharCode(parseInt(text.slice(j + 2, j + 4), 16));
          j += 3;
        } else {
          value += { n: '\n', r: '\r', t: '\t', a: '\x07', b: '\b' }[next] ?? next;
          j += 1;
        }
      } else {
        value += text[j] ?? '';
      }
    }
    args.push(value);
    i = text.indexOf('"', j + 1);
  }
  return args;
}

/** A raw MONITOR connection (ioredis's monitor mode drops lines that arrive with its OK). */
function openMonitor(
  url: string,
  onCommand: (args: string[], source: string) => void,
): Promise<Socket> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname);
    let buffered = '';
    let ready = false;
    socket.setEncoding('utf8');
    socket.once('error', reject);
    socket.on('connect', () => {
      socket.write('MONITOR\r\n');
    });
    socket.on('data', (chunk: string) => {
      buffered += chunk;
      let end = buffered.indexOf('\r\n');
      while (end >= 0) {
        const line = buffered.slice(0, end);
        buffered = buffered.slice(end + 2);
        end = buffered.indexOf('\r\n');
        if (!ready) {
          if (line !== '+OK') {
            reject(new Error(`MONITOR answered ${line}`));
            return;
          }
          ready = true;
          socket.off('error', reject);
          socket.on('error', () => undefined);
          resolve(socket);
          continue;
        }
        // +1700000000.123456 [0 127.0.0.1:52076] "cmd" "arg" …
        const open = line.indexOf('[');
        const close = line.indexOf(']', open);
        if (!line.startsWith('+') || open < 0 || close < 0) continue;
        const source = line.slice(open + 1, close).split(' ')[1] ?? '';
        onCommand(parseMonitorArgs(line.slice(close + 1)), source);
      }
    });
  });
}

export class RedisCommandTally {
  private readonly sent = new Map<string, number>();
  private readonly inScripts = new Map<string, number>();
  private readonly bullScripts = bullScriptNames();
  private readonly markers = new Map<string, () => void>();
  private monitor: Socket | null = null;

  private constructor(
    private readonly bench: Redis,
    private readonly benchAddress: string,
  ) {}

  static async start(url: string, bench: Redis): Promise<RedisCommandTally> {
    const info = String(await bench.call('CLIENT', 'INFO'));
    const address = /addr=(\S+)/.exec(info)?.[1] ?? '';
    const tally = new RedisCommandTally(bench, address);
    tally.monitor = await openMonitor(url, (args, source) => {
      tally.record(args, source);
    });
    await tally.sync();
    return tally;
  }

  private record(args: readonly string[], source: string): void {
    const name = (args[0] ?? '').toUpperCase();
    if (source === this.benchAddress) {
      if (name === 'ECHO') this.markers.get(args[1] ?? '')?.();
      return;
    }
    if (source === 'lua') {
      this.inScripts.set(name, (this.inScripts.get(name) ?? 0) + 1);
      return;
    }
    const label = name === 'EVALSHA' || name === 'EVAL' ? `${name} ${this.scriptOf(args)}` : name;
    this.sent.set(label, (this.sent.get(label) ?? 0) + 1);
  }

  /** What a script call is, from its hash (BullMQ) or the keys it touches. */
  private scriptOf(args: readonly string[]): string {
    const bull = this.bullScripts.get(args[1] ?? '');
    if (bull !== undefined) return `bullmq ${bull}`;
    const keyCount = Number(args[2] ?? 0);
    const firstKey = args[3] ?? '';
    const argvCount = args.length - 3 - keyCount;
    if (firstKey.endsWith(':lock')) {
      return argvCount === 2 ? 'redlock release' : 'redlock acquire/extend';
    }
    if (firstKey.endsWith(':state')) return 'snapshot write';
    if (firstKey.includes('{account:') && firstKey.endsWith(':balance')) return 'ledger move';
    return 'script';
  }

  /** Resolves once MONITOR has delivered every command executed before this call. */
  async sync(): Promise<void> {
    const marker = `tally-${process.hrtime.bigint()}`;
    const seen = new Promise<void>((resolve) => this.markers.set(marker, resolve));
    await this.bench.echo(marker);
    await seen;
    this.markers.delete(marker);
  }

  async snapshot(): Promise<TallySnapshot> {
    await this.sync();
    return { sent: new Map(this.sent), inScripts: new Map(this.inScripts) };
  }

  /** Commands executed between two snapshots. */
  static between(from: TallySnapshot, to: TallySnapshot): CommandCounts {
    const diff = (a: ReadonlyMap<string, number>, b: ReadonlyMap<string, number>) => {
      const out: Record<string, number> = {};
      for (const [key, count] of b) {
        const delta = count - (a.get(key) ?? 0);
        if (delta > 0) out[key] = delta;
      }
      return out;
    };
    return { sent: diff(from.sent, to.sent), inScripts: diff(from.inScripts, to.inScripts) };
  }

  stop(): void {
    this.monitor?.destroy();
    this.monitor = null;
  }
}
