import { existsSync } from 'node:fs';
import path from 'node:path';
import { runProgram } from './cli.js';

// As the service does: a .env file in the working directory (or the file ENV_FILE names; empty: none) supplies what the environment does not set.
const envFile = process.env.ENV_FILE ?? '.env';
let envRead = true;
if (envFile !== '' && (process.env.ENV_FILE !== undefined || existsSync(envFile))) {
  try {
    process.loadEnvFile(envFile);
  } catch (error) {
    // As the service says it; nothing was done (the CLI's usage-error code).
    process.stderr.write(`cannot start: ENV_FILE: cannot read ${path.resolve(envFile)} (${(error as { code?: string }).code ?? String(error)})\n`);
    envRead = false;
  }
}

process.exitCode = envRead ? await runProgram(process.argv) : 2;
