import { createServer, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { Pool } from 'pg';
import { ReadModelConsistency } from './read-model-consistency.js';

/**
 * A write whose read-model rows did not commit with it (EventStoreDB, a replay after a lost answer)
 * waits for the projection's checkpoint. When the checkpoint cannot be read, the write has still
 * committed: the answer says the read models are not known to hold it, and never that the write
 * failed (which a client retries, writing twice).
 */
describe('ReadModelConsistency', () => {
  const position = { commit: 10n, prepare: 10n };
  let pool: Pool;
  let server: Server | undefined;

  afterEach(async () => {
    await pool.end();
    await new Promise<void>((resolve) => (server === undefined ? resolve() : server.close(() => resolve())));
    server = undefined;
  });

  it('answers false, not an error, when PostgreSQL refuses the connection to read the checkpoint', async () => {
    // A port nothing listens on: taken, then let go.
    const probe = createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const port = (probe.address() as AddressInfo).port;
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    pool = new Pool({ host: '127.0.0.1', port, user: 'nobody', database: 'nothing', connectionTimeoutMillis: 500 });
    const consistency = new ReadModelConsistency(pool, undefined, 'token_accounts', 200);
    await expect(consistency.waitFor(position)).resolves.toBe(false);
  });

  it('answers false when the server drops every connection before it answers', async () => {
    server = createServer((socket) => socket.destroy());
    await new Promise<void>((resolve) => server?.listen(0, '127.0.0.1', resolve));
    pool = new Pool({ host: '127.0.0.1', port: (server.address() as AddressInfo).port, user: 'nobody', database: 'nothing', connectionTimeoutMillis: 500 });
    const consistency = new ReadModelConsistency(pool, undefined, 'token_accounts', 200);
    await expect(consistency.waitFor(position)).resolves.toBe(false);
  });

  it('answers false by its deadline when the server accepts the connection and never answers', async () => {
    const silent = new Set<Socket>();
    server = createServer((socket) => silent.add(socket));
    await new Promise<void>((resolve) => server?.listen(0, '127.0.0.1', resolve));
    // The pool would wait 10 s for its connection, past this test's 5 s: the write's answer may not.
    pool = new Pool({ host: '127.0.0.1', port: (server.address() as AddressInfo).port, user: 'nobody', database: 'nothing', connectionTimeoutMillis: 10_000 });
    const consistency = new ReadModelConsistency(pool, undefined, 'token_accounts', 200);
    await expect(consistency.waitFor(position)).resolves.toBe(false);
    for (const socket of silent) socket.destroy();
  }, 5_000);

  it('answers at once, reading nothing, for a write whose rows committed with it or that has no position', async () => {
    pool = new Pool({ host: '127.0.0.1', port: 1, user: 'nobody', database: 'nothing', connectionTimeoutMillis: 500 });
    const consistency = new ReadModelConsistency(pool, undefined, 'token_accounts', 200);
    await expect(consistency.waitFor(position, { committedWithAppend: true })).resolves.toBe(true);
    await expect(consistency.waitFor(undefined)).resolves.toBe(true);
    expect(pool.totalCount).toBe(0);
  });
});
