import { runProgram } from '../../apps/cli/src/cli.js';

/**
 * Runs one command of the admin CLI in-process, through the same `runProgram` that `npm run cli`
 * runs (so the same exit codes), with `environment` set for its duration; returns what it printed on
 * stdout and its errors (what `npm run cli` prints on stderr, commander's help after a usage error
 * included), in the order printed, and its exit code.
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
  let exitCode: number;
  try {
    exitCode = await runProgram(['node', 'token-ledger', ...args], (text) => {
      output += text;
    });
  } finally {
    process.stdout.write = write;
    process.exitCode = undefined;
    for (const [key, value] of Object.entries(saved)) {
      if (value === undefined) delete process.env[key];
      else process.env[key] = value;
    }
  }
  return { output, exitCode };
}
