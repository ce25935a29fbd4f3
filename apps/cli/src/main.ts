import { existsSync } from 'node:fs';
import { createProgram } from './cli.js';

// As the service does: a .env file in the working directory supplies what the environment does not set.
if (existsSync('.env')) process.loadEnvFile('.env');

createProgram()
  .parseAsync(process.argv)
  .catch((error: unknown) => {
    process.stderr.write(`error: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = 1;
  });
