import type { Redis } from 'ioredis';

/**
 * Sends the commands a connection is given in one turn of the event loop in
 * one socket write, as node-redis does on its own. ioredis writes each command
 * as it is issued, one system call apiece; under load the answers of many
 * requests arrive together and their next commands are issued together, so
 * corking the socket for the rest of the turn turns a dozen writes into one.
 * Order on the connection is unchanged (the lock's read-ahead relies on it),
 * and nothing waits longer than the end of the current turn.
 */
export function coalesceWrites(redis: Redis): void {
  // Each connection (the first and every reconnection) gets a new socket.
  redis.on('connect', () => {
    const socket = redis.stream;
    const write = socket.write.bind(socket);
    let corked = false;
    const uncork = () => {
      corked = false;
      socket.uncork();
    };
    socket.write = ((...args: Parameters<typeof write>) => {
      if (!corked) {
        corked = true;
        socket.cork();
        process.nextTick(uncork);
      }
      return write(...args);
    }) as typeof socket.write;
  });
}
