import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { link, mkdir, readFile, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export type DevelopmentSecrets = {
  /** HS256 secret for tokens minted by `mintToken` (base64url, 256 bits). */
  readonly jwtSecret: string;
  /** Ed25519 private key (PKCS#8 PEM) that signs audit bundles. */
  readonly auditSigningKeyPem: string;
  /** Where they are kept: `<dataDir>/secrets`. */
  readonly directory: string;
};

/**
 * The secrets a development instance uses when none are configured: created on first start under
 * the data directory (mode 0600) and reused afterwards, so tokens minted yesterday still verify and
 * bundles keep one signing key. Never used in production (see checkAuthConfig).
 */
export async function loadOrCreateDevelopmentSecrets(dataDir: string): Promise<DevelopmentSecrets> {
  const directory = join(dataDir, 'secrets');
  // Only the secrets directory is private: the data directory keeps the default mode, since the
  // embedded PostgreSQL (run as another user when we are root) must enter it.
  await mkdir(dataDir, { recursive: true });
  await mkdir(directory, { recursive: true, mode: 0o700 });
  const jwtSecret = await loadOrCreate(developmentJwtSecretPath(dataDir), () => randomBytes(32).toString('base64url'));
  const auditSigningKeyPem = await loadOrCreate(developmentAuditSigningKeyPath(dataDir), () =>
    generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
  );
  return { jwtSecret: jwtSecret.trim(), auditSigningKeyPem, directory };
}

/** Where the development HS256 secret lives (the CLI's `token` command signs with it). */
export function developmentJwtSecretPath(dataDir: string): string {
  return join(dataDir, 'secrets', 'jwt-secret');
}

/** Where the development bundle-signing key lives (`audit verify-bundle` reads its public half from there). */
export function developmentAuditSigningKeyPath(dataDir: string): string {
  return join(dataDir, 'secrets', 'audit-signing-key.pem');
}

/**
 * Reads `path`, or creates it with `create()`. The content is written to a private temporary file
 * and then hard-linked into place, which fails if the file exists: of several processes starting at
 * once exactly one secret wins, every process reads that one, and none can read a half-written file.
 */
async function loadOrCreate(path: string, create: () => string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (error) {
    if (!isCode(error, 'ENOENT')) throw error;
  }
  const temporary = `${path}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
  await writeFile(temporary, create(), { mode: 0o600, flag: 'wx' });
  try {
    await link(temporary, path);
  } catch (error) {
    if (!isCode(error, 'EEXIST')) throw error;
  } finally {
    await unlink(temporary);
  }
  return readFile(path, 'utf8');
}

function isCode(error: unknown, code: string): boolean {
  // Duck-typed: errors from node:fs may come from another realm (Jest's VM), where instanceof fails.
  return typeof error === 'object' && error !== null && (error as { code?: unknown }).code === code;
}
