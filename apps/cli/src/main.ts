import { existsSync } from 'node:fs';
import { runProgram } from './cli.js';

// As the service does: a .env file in the working directory (or the file ENV_FILE names; empty: none) supplies what the environment does not set.
const envFile = process.env.ENV_FILE ?? '.env';
if (envFile !== '' && (process.env.ENV_FILE !== undefined || existsSync(envFile))) process.loadEnvFile(envFile);

process.exitCode = await runProgram(process.argv);
