import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createServer } from 'node:net';

/** A child whose stdout and stderr go to a file, so the bench spends no CPU reading its logs. */
export type LoggedChild = {
  readonly pid: number;
  readonly logFile: string;
  readonly process: ChildProcess;
  /** Settles with the exit code (null after a signal) once the child has ended. */
  readonly exited: Promise<number | null>;
};

const START_WAIT_MS_MAX = 120_000;
const STOP_WAIT_MS_MAX = 30_000;

/**
 * Starts `args` under node in its own process group, so a Ctrl-C in the terminal reaches only the
 * bench, which then stops the children in order (the service closes HTTP before its PostgreSQL).
 */
export function spawnNode(args: readonly string[], options: { readonly cwd: string; readonly env: NodeJS.ProcessEnv; readonly logFile: string }): LoggedChild {
  const output = openSync(options.logFile, 'a');
  try {
    const child = spawn(process.execPath, args, { cwd: options.cwd, env: options.env, stdio: ['ignore', output, output], detached: true });
    const exited = new Promise<number | null>((resolve) => {
      child.once('exit', (code) => resolve(code));
      child.once('error', () => resolve(null));
    });
    if (child.pid === undefined) throw new Error(`could not start node ${args.join(' ')}`);
    return { pid: child.pid, logFile: options.logFile, process: child, exited };
  } finally {
    closeSync(output);
  }
}

/** Waits until the child's log holds `line`; fails when it exits first or takes over two minutes. */
export async function waitForLogLine(child: LoggedChild, line: string): Promise<void> {
  const deadline = Date.now() + START_WAIT_MS_MAX;
  for (;;) {
    const log = await readFile(child.logFile, 'utf8');
    if (log.includes(line)) return;
    if (child.process.exitCode !== null || child.process.signalCode !== null) throw new Error(`${child.logFile}: the process exited before "${line}":\n${log.slice(-4_000)}`);
    if (Date.now() > deadline) throw new Error(`${child.logFile}: no "${line}" after ${START_WAIT_MS_MAX / 1_000} s:\n${log.slice(-4_000)}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/**
 * Asks the child to stop with SIGINT (the service's and the CRUD service's clean shutdown) and
 * waits; after 30 s it is killed. Returns whether it stopped cleanly.
 */
export async function stopChild(child: LoggedChild): Promise<boolean> {
  if (child.process.exitCode !== null || child.process.signalCode !== null) return true;
  child.process.kill('SIGINT');
  const timeout = new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), STOP_WAIT_MS_MAX).unref());
  if ((await Promise.race([child.exited, timeout])) !== 'timeout') return true;
  child.process.kill('SIGKILL');
  await child.exited;
  return false;
}

/** A TCP port on the loopback interface that nothing listened on a moment ago. */
export function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address !== null ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}
