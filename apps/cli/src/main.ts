import { loadEnvFile, StartupError } from '@app/database';
import { runProgram } from './cli.js';

// As the service does: a .env file in the working directory (or the file ENV_FILE names; empty: none) supplies what the environment does not set.
let envRead = true;
try {
  loadEnvFile();
} catch (error) {
  if (!(error instanceof StartupError)) throw error;
  // As the service says it; nothing was done (the CLI's usage-error code).
  process.stderr.write(`cannot start: ${error.message}\n`);
  envRead = false;
}

process.exitCode = envRead ? await runProgram(process.argv) : 2;
