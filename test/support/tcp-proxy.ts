/**
 * A TCP proxy between the service and its Redis that a test controls, to put
 * network faults on the path:
 *
 * - `pass`: forwards bytes both ways.
 * - `latency`: delays every chunk by `ms`, both ways, keeping each stream's order.
 * - `reset`: resets every open connection with an RST, and every new one as
 *   soon as it is accepted.
 * - `blackhole`: accepts connections but forwards nothing, either way. The
 *   bytes are held, as a network holds segments it will retransmit: when the
 *   mode changes they are delivered in order, then any close that came in the
 *   meantime. A TCP stream never loses bytes and carries on, so neither does
 *   the proxy; a client that gives up closes its connection itself.
 */
import { createServer, connect, type Server, type Socket } from 'node:net';

export type ProxyMode =
  | { readonly kind: 'pass' }
  | { readonly kind: 'latency'; readonly ms: number }
  | { readonly kind: 'reset' }
  | { readonly kind: 'blackhole' };

export interface TcpProxy {
  readonly port: number;
  /** `redis://127.0.0.1:<port>`. */
  readonly url: string;
  setMode(mode: ProxyMode): void;
  /** Connections reset by the proxy so far. */
  resets(): number;
  /** True when bytes held by the blackhole contain `text`. */
  holds(text: string): boolean;
  close(): Promise<void>;
}

/** One direction of a connection: a FIFO of chunks, each written when it is due. */
class Lane {
  private readonly queue: { due: number; chunk: Buffer }[] = [];
  private timer: NodeJS.Timeout | undefined;
  private held: Buffer[] = [];
  /** The sender closed while blackholed: close ours once the blackhole lifts. */
  private endHeld = false;
  private ending = false;

  constructor(private readonly to: Socket) {}

  push(chunk: Buffer, mode: ProxyMode): void {
    if (mode.kind === 'blackhole') {
      this.held.push(chunk);
      return;
    }
    const delay = mode.kind === 'latency' ? mode.ms : 0;
    const last = this.queue.at(-1)?.due ?? 0;
    this.queue.push({ due: Math.max(Date.now() + delay, last), chunk });
    this.pump();
  }

  /** The sending side closed: close ours once everything before it was delivered. */
  end(mode: ProxyMode): void {
    if (mode.kind === 'blackhole') {
      this.endHeld = true;
      return;
    }
    this.ending = true;
    this.pump();
  }

  /** The blackhole lifted: what it held goes out now, in order, after anything sent before it. */
  release(mode: ProxyMode): void {
    const held = this.held;
    this.held = [];
    for (const chunk of held) this.push(chunk, mode);
    if (this.endHeld) this.ending = true;
    this.pump();
  }

  holds(text: string): boolean {
    return this.held.some((chunk) => chunk.includes(text));
  }

  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.queue.length = 0;
    this.held = [];
  }

  private pump(): void {
    if (this.timer !== undefined) return;
    for (let head = this.queue[0]; head !== undefined; head = this.queue[0]) {
      const wait = head.due - Date.now();
      if (wait > 0) {
        this.timer = setTimeout(() => {
          this.timer = undefined;
          this.pump();
        }, wait);
        return;
      }
      this.queue.shift();
      if (!this.to.destroyed) this.to.write(head.chunk);
    }
    if (this.ending && !this.to.destroyed) this.to.end();
  }
}

interface Pair {
  readonly client: Socket;
  readonly upstream: Socket;
  readonly up: Lane;
  readonly down: Lane;
}

export async function startTcpProxy(target: { host: string; port: number }): Promise<TcpProxy> {
  let mode: ProxyMode = { kind: 'pass' };
  let resetCount = 0;
  const pairs = new Set<Pair>();
  const accepted = new Set<Socket>();

  const reset = (socket: Socket) => {
    if (socket.destroyed) return;
    resetCount++;
    // An RST, not a FIN: the peer sees ECONNRESET.
    socket.resetAndDestroy();
  };

  const drop = (pair: Pair) => {
    if (!pairs.delete(pair)) return;
    pair.up.stop();
    pair.down.stop();
  };

  const server: Server = createServer((client) => {
    accepted.add(client);
    client.once('close', () => accepted.delete(client));
    client.on('error', () => undefined);
    if (mode.kind === 'reset') {
      reset(client);
      return;
    }
    client.setNoDelay(true);
    const upstream = connect({ host: target.host, port: target.port });
    upstream.setNoDelay(true);
    upstream.on('error', () => undefined);
    const pair: Pair = {
      client,
      upstream,
      up: new Lane(upstream),
      down: new Lane(client),
    };
    pairs.add(pair);
    client.on('data', (chunk: Buffer) => {
      pair.up.push(chunk, mode);
    });
    upstream.on('data', (chunk: Buffer) => {
      pair.down.push(chunk, mode);
    });
    client.on('end', () => {
      pair.up.end(mode);
    });
    upstream.on('end', () => {
      pair.down.end(mode);
    });
    // A reset on one side resets the other, blackhole or not; a graceful close
    // (FIN) waits for the lanes to drain.
    client.once('close', (hadError) => {
      if (hadError) reset(upstream);
      if (hadError || upstream.destroyed) drop(pair);
    });
    upstream.once('close', (hadError) => {
      if (hadError) reset(client);
      if (hadError || client.destroyed) drop(pair);
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('proxy has no port');
  const port = address.port;

  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    setMode(next) {
      const previous = mode;
      mode = next;
      if (next.kind === 'reset') {
        for (const pair of [...pairs]) {
          drop(pair);
          reset(pair.client);
          reset(pair.upstream);
        }
        for (const socket of accepted) reset(socket);
        return;
      }
      if (previous.kind === 'blackhole' && next.kind !== 'blackhole') {
        for (const pair of pairs) {
          pair.up.release(next);
          pair.down.release(next);
        }
      }
    },
    resets: () => resetCount,
    holds: (text) => [...pairs].some((pair) => pair.up.holds(text) || pair.down.holds(text)),
    async close() {
      for (const pair of [...pairs]) {
        drop(pair);
        pair.client.destroy();
        pair.upstream.destroy();
      }
      for (const socket of accepted) socket.destroy();
      await new Promise<void>((resolve) =>
        server.close(() => {
          resolve();
        }),
      );
    },
  };
}
