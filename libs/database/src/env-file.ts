import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parseEnv } from 'node:util';
import { StartupError } from './startup.error.js';

/** The settings file read at start when it exists, unless ENV_FILE names another (or, empty, none); `.env.example` lists every variable with its default. */
export const ENV_FILE_DEFAULT = '.env';

/**
 * Reads the settings file into `process.env`, as the service and the CLI do at start: what the
 * environment already sets (to something other than the empty string) wins. The file is `ENV_FILE`, which must then be readable, or `.env` in the
 * working directory when it exists; `ENV_FILE=''` reads none (the tests' services read only what
 * they are given). Returns the file read, if any; throws a StartupError naming ENV_FILE and the path
 * when a file that must be read cannot be.
 */
export function loadEnvFile(): string | undefined {
  const named = process.env.ENV_FILE;
  const envFile = named ?? ENV_FILE_DEFAULT;
  if (envFile === '' || (named === undefined && !existsSync(envFile))) return undefined;
  let text: string;
  try {
    text = readFileSync(envFile, 'utf8');
  } catch (error) {
    throw new StartupError('ENV_FILE', `cannot read ${path.resolve(envFile)} (${(error as { code?: string }).code ?? String(error)})`);
  }
  // Node's own parser, as process.loadEnvFile uses; assigned here, so that it is this process.env that
  // gets them (a test's sandboxed one included). A variable set empty counts as unset, as the
  // settings' loaders read it: left empty, it would hide the file's value and take the default
  // (`NODE_ENV=` from an unset compose variable over the file's `NODE_ENV=production`: a development start).
  for (const [name, value] of Object.entries(parseEnv(text))) if (process.env[name] === undefined || process.env[name] === '') process.env[name] = value;
  return path.resolve(envFile);
}
