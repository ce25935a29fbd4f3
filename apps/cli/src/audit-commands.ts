import { createPublicKey, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { BundleReadError, bundleFileLines, checkBundlesInStep, verifyAuditBundleLines, type BundleVerification } from '@app/audit';
import { developmentAuditSigningKeyPath } from '@app/auth';
import { InvalidArgumentError, type Command } from 'commander';
import { printable } from './arguments.js';

/** Exit codes of `audit verify-bundle`: 0 intact, 1 not intact; 2, the command could not check, is a usage error's (`runProgram`, as every command's). */
export const EXIT_INVALID = 1;

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
      // A usage error: printed, with exit 2, by runProgram, as every command's is.
      const usage = (text: string): never => {
        throw new InvalidArgumentError(text);
      };
      if (options.sincePublicKey !== undefined && options.since === undefined) return usage('--since-public-key is the key of the earlier bundle --since names: give --since too');
      const publicKey = await readPublicKey(options.publicKey);
      if (typeof publicKey === 'string') return usage(publicKey);
      // Read a line at a time, never whole: a bundle of a million events is larger than a string may be.
      let result: BundleVerification;
      let earlierSignedAt: string | undefined;
      try {
        if (options.since === undefined) result = await verifyAuditBundleLines(bundleFileLines(file), publicKey);
        else ({ result, earlierSignedAt } = await continuing(file, options.since, publicKey, options.sincePublicKey));
      } catch (error) {
        if (error instanceof SinceUnusable) return usage(error.message);
        if (!(error instanceof BundleReadError)) throw error;
        return usage(`cannot read the ${error.file === file ? 'bundle' : 'earlier bundle'} ${error.file}: ${error.message}`);
      }
      report(result, options.since === undefined ? undefined : { file: options.since, signedAt: earlierSignedAt });
    });
}

/** The earlier bundle of `--since` cannot show anything of the bundle checked (a usage error): its key unreadable, it not intact under it, or of another stream. */
class SinceUnusable extends Error {}

/**
 * The bundle checked against the earlier one, both read once in step (a pipe cannot be read twice).
 * The bundle is judged first: one not intact is the answer (exit 1) whatever the earlier one is, even
 * one that cannot be read or used.
 */
async function continuing(file: string, since: string, publicKey: KeyObject, sincePublicKeyFile: string | undefined): Promise<{ readonly result: BundleVerification; readonly earlierSignedAt?: string }> {
  const alone = async () => verifyAuditBundleLines(bundleFileLines(file), publicKey);
  const earlierKey = sincePublicKeyFile === undefined ? publicKey : await readPublicKey(sincePublicKeyFile);
  if (typeof earlierKey === 'string') {
    const verdict = await alone();
    if (!verdict.ok) return { result: verdict };
    throw new SinceUnusable(earlierKey);
  }
  // An earlier bundle that cannot be read is thrown (a BundleReadError, a usage error) only once the bundle, read to its end, is intact.
  const { newer, earlier, verdict } = await checkBundlesInStep(bundleFileLines(file), bundleFileLines(since), publicKey, earlierKey);
  if (!newer.ok) return { result: newer };
  if (!earlier.ok) throw new SinceUnusable(`the earlier bundle ${since} is not intact${sincePublicKeyFile === undefined ? ' under this key (if the key was rotated since, give --since-public-key)' : ''}: ${earlier.reason}`);
  if (earlier.streamId !== newer.streamId) throw new SinceUnusable(`the earlier bundle ${since} is of ${earlier.streamId}, this one of ${newer.streamId}`);
  return { result: verdict, earlierSignedAt: earlier.createdAt };
}

function report(result: BundleVerification, since: { readonly file: string; readonly signedAt: string | undefined } | undefined): void {
  if (result.ok) {
    // Events written before hashes on append are covered only by the first sealed one: only as trustworthy as the stream was then.
    const unsealed = result.unsealedPrefix === 0 ? '' : `; its first ${result.unsealedPrefix} events were stored without a hash (written before hashes on append, covered by the next one's)`;
    // When each was signed, so that an auditor sees how old a bundle is (nothing here judges freshness).
    const earlierSigned = since?.signedAt === undefined ? '' : ` (signed ${printable(since.signedAt)})`;
    const continues = since === undefined ? '' : `; it continues the earlier bundle ${since.file}${earlierSigned} unchanged`;
    process.stdout.write(`bundle intact: ${result.streamId}, ${result.eventCount} events, head hash ${result.headHash ?? '-'}, signed ${printable(result.createdAt)} with key ${printable(result.keyId)}${unsealed}${continues}\n`);
    return;
  }
  const where = result.firstBadRevision === undefined ? (result.line === undefined ? '' : ` at line ${result.line}`) : ` at revision ${result.firstBadRevision}`;
  // A reason may quote the bundle (an event's type, the ledger's refusal of it): one line, whatever it holds.
  process.stdout.write(`bundle NOT intact${where}: ${printable(result.reason)}\n`);
  process.exitCode = EXIT_INVALID;
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

function message(error: unknown): string {
  // Duck-typed: an error of Node's own realm is not `instanceof Error` in every context (a test's VM).
  const text = typeof error === 'object' && error !== null ? (error as { message?: unknown }).message : undefined;
  return typeof text === 'string' ? text : String(error);
}
