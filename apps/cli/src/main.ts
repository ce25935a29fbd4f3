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

// A signal ends the command at once, as by default, but through process.exit, so that the 'exit'
// listeners run: the embedded PostgreSQL a command started is stopped with it rather than left
// holding DATA_DIR's port (a terminal's Ctrl-C reaches it anyway; a SIGTERM to this process alone
// did not). What a command leaves unfinished is what a crash leaves, which each command is safe against.
process.once('SIGINT', () => process.exit(130));
process.once('SIGTERM', () => process.exit(143));

process.exitCode = envRead ? await runProgram(process.argv) : 2;
