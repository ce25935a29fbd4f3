import { connect, createServer, type Server, type Socket } from 'node:net';

export type FrozenableProxy = {
  /** The target's connection string, through the proxy. */
  readonly url: string;
  /** From now on bytes are dropped both ways: the connections stay open and answer nothing (a hung network). */
  freeze(): void;
  /** Bytes flow again (on connections opened from now on; a frozen one has lost bytes and is of no use). */
  thaw(): void;
  /** Closes every connection at once (a cut network). */
  cut(): void;
  close(): Promise<void>;
};

/** A TCP proxy in front of a PostgreSQL server, for specs of what a client does when its connection hangs. */
export async function frozenableProxy(target: URL): Promise<FrozenableProxy> {
  const sockets = new Set<Socket>();
  let frozen = false;
  const server: Server = createServer((client) => {
    const upstream = connect(Number(target.port), target.hostname);
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on('error', () => undefined);
      socket.on('close', () => sockets.delete(socket));
    }
    client.on('data', (chunk: Buffer) => frozen || upstream.write(chunk));
    upstream.on('data', (chunk: Buffer) => frozen || client.write(chunk));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('proxy has no port');
  const url = new URL(target);
  url.hostname = '127.0.0.1';
  url.port = String(address.port);
  return {
    url: url.toString(),
    freeze: () => {
      frozen = true;
    },
    thaw: () => {
      frozen = false;
    },
    cut: () => {
      for (const socket of sockets) socket.destroy();
    },
    close: () =>
      new Promise((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
