import { CommanderError } from 'commander';
import { createProgram } from '../../apps/cli/src/cli.js';

/**
 * Runs one command of the admin CLI in-process (the same `createProgram` that `npm run cli` runs)
 * with `environment` set for its duration; returns what it printed on stdout and its exit code.
 */
export async function runCli(environment: NodeJS.ProcessEnv, ...args: string[]): Promise<{ output: string; exitCode: number }> {
  const saved = Object.fromEntries(Object.keys(environment).map((key) => [key, process.env[key]]));
  Object.assign(process.env, environment);
  let output = '';
  const write = process.stdout.write.bind(process.stdout);
  process.stdout.write = ((chunk: string | Uint8Array) => {
    output += chunk.toString();
    return true;
  });
  try {
    await createProgram({ exitOverride: true }).parseAsync(['node', 'token-ledger', ...args]);
  } catch (error) {
    // Under exitOverride, --help and --version end by throwing with exit code 0: what they printed is the answer.
    if (!(error instanceof CommanderError && error.exitCode === 0)) {
      output += `error: ${error instanceof Error ? error.message : String(error)}\n`;
      process.exitCode = 1;
    }
  } finally {
    process.stdout.write = write;
    for (const [key, value] of Object.entries(saved)) {
      if (value === undefined) delete process.env[key];
      else process.env[key] = value;
    }
  }
  const exitCode = Number(process.exitCode ?? 0);
  process.exitCode = undefined;
  return { output, exitCode };
}
