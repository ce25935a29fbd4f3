import { existsSync } from 'node:fs';
import { runProgram } from './cli.js';

// As the service does: a .env file in the working directory supplies what the environment does not set.
if (existsSync('.env')) process.loadEnvFile('.env');

process.exitCode = await runProgram(process.argv);
