import { createPublicKey, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { BundleReadError, bundleFileLines, bundleLinesContinue, verifyAuditBundleLines, type BundleLine, type BundleVerification } from '@app/audit';
import { developmentAuditSigningKeyPath } from '@app/auth';
import type { Command } from 'commander';

/** Exit codes of `audit verify-bundle`: 0 intact, 1 not intact, 2 the command could not check (usage, as every command's). */
export const EXIT_INVALID = 1;
export const EXIT_USAGE = 2;

/**
 * `audit verify-bundle <file>`: checks a bundle offline. It opens no database and calls no service:
 * the bundle and a public key are all it needs.
 */
export function addAuditCommands(program: Command): void {
  const audit = program.command('audit').description('audit bundles, checked offline');
  audit
    .command('verify-bundle')
    .description('check a signed audit bundle (no database, no service): exit 0 intact, 1 not intact, 2 usage error (an earlier bundle of --since that cannot be used included)')
    .argument('<file>', 'the bundle (NDJSON) from GET /v1/audit/accounts/{userId}/bundle')
    .option('--public-key <file>', "the signer's public key (PEM); default: derived from the development key under DATA_DIR")
    .option('--since <earlier>', 'an earlier bundle of the same stream, kept apart from the service: every event it holds must be in this one unchanged')
    .option('--since-public-key <file>', 'the public key the earlier bundle was signed with, when the signing key was rotated since (default: --public-key)')
    .action(async (file: string, options: { publicKey?: string; since?: string; sincePublicKey?: string }) => {
      const usage = (text: string) => {
        process.stderr.write(`error: ${text}\n`);
        process.exitCode = EXIT_USAGE;
      };
      if (options.sincePublicKey !== undefined && options.since === undefined) return usage('--since-public-key is the key of the earlier bundle --since names: give --since too');
      const publicKey = await readPublicKey(options.publicKey);
      if (typeof publicKey === 'string') return usage(publicKey);
      // Read a line at a time, never whole: a bundle of a million events is larger than a string may be.
      const newer = () => bundleFileLines(file);
      let result: BundleVerification;
      let since = '';
      try {
        // The bundle checked first: one not intact is reported (exit 1) whatever the earlier one is.
        result = await verifyAuditBundleLines(newer(), publicKey);
        if (options.since !== undefined && result.ok) {
          const earlier = await readEarlier(options.since, options.sincePublicKey, publicKey, result.streamId);
          if (typeof earlier === 'string') return usage(earlier);
          result = await bundleLinesContinue(newer, earlier.lines, result, earlier.verdict);
          since = `; it continues the earlier bundle ${options.since} unchanged`;
        }
      } catch (error) {
        if (!(error instanceof BundleReadError)) throw error;
        return usage(`cannot read the ${error.file === file ? 'bundle' : 'earlier bundle'} ${error.file}: ${error.message}`);
      }
      if (result.ok) {
        // Events written before hashes on append are covered only by the first sealed one: only as trustworthy as the stream was then.
        const unsealed = result.unsealedPrefix === 0 ? '' : `; its first ${result.unsealedPrefix} events were stored without a hash (written before hashes on append, covered by the next one's)`;
        process.stdout.write(`bundle intact: ${result.streamId}, ${result.eventCount} events, head hash ${result.headHash ?? '-'}${unsealed}${since}\n`);
        return;
      }
      const where = result.firstBadRevision === undefined ? (result.line === undefined ? '' : ` at line ${result.line}`) : ` at revision ${result.firstBadRevision}`;
      process.stdout.write(`bundle NOT intact${where}: ${result.reason}\n`);
      process.exitCode = EXIT_INVALID;
    });
}

/** The Ed25519 public key in `publicKeyFile` (a private key PEM gives its public half), by default the development key's; or what kept it from being read. */
async function readPublicKey(publicKeyFile: string | undefined): Promise<KeyObject | string> {
  const keyFile = publicKeyFile ?? developmentAuditSigningKeyPath(path.resolve(process.env.DATA_DIR ?? '.data'));
  let pem: string;
  try {
    pem = await readFile(keyFile, 'utf8');
  } catch (error) {
    return `cannot read the public key ${keyFile}${publicKeyFile === undefined ? ' (give --public-key <file>)' : ''}: ${message(error)}`;
  }
  let publicKey: KeyObject;
  try {
    publicKey = createPublicKey(pem);
  } catch (error) {
    return `${keyFile} holds no usable key: ${message(error)}`;
  }
  // Bundles are signed with Ed25519: another kind of key cannot check one, which says nothing of the bundle.
  if (publicKey.asymmetricKeyType !== 'ed25519') return `${keyFile} holds a ${String(publicKey.asymmetricKeyType)} key, not the Ed25519 key bundles are signed with`;
  return publicKey;
}

/**
 * The earlier bundle of `--since`, checked on its own: unreadable (BundleReadError), not intact
 * under its key, or of another stream, it cannot show anything of the bundle being checked (a usage
 * error).
 */
async function readEarlier(
  file: string,
  publicKeyFile: string | undefined,
  fallback: KeyObject,
  streamId: string,
): Promise<{ lines: () => AsyncIterable<BundleLine>; verdict: BundleVerification } | string> {
  const publicKey = publicKeyFile === undefined ? fallback : await readPublicKey(publicKeyFile);
  if (typeof publicKey === 'string') return publicKey;
  const lines = () => bundleFileLines(file);
  const earlier = await verifyAuditBundleLines(lines(), publicKey);
  if (!earlier.ok) return `the earlier bundle ${file} is not intact${publicKeyFile === undefined ? ' under this key (if the key was rotated since, give --since-public-key)' : ''}: ${earlier.reason}`;
  if (earlier.streamId !== streamId) return `the earlier bundle ${file} is of ${earlier.streamId}, this one of ${streamId}`;
  return { lines, verdict: earlier };
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
