import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { mintToken } from '@app/auth';
import { EMBEDDED_SERVICE_DATABASE, embeddedPostgresUrl, readEmbeddedServicePassword } from '@app/database';
import { freeLoopbackPort, spawnNode, stopChild, waitForLogLine, type LoggedChild } from './child-processes.js';
import type { Cleanup } from './cleanup.js';

/** The built service, started as `npm run start:prod` starts it, on its own embedded PostgreSQL. */
export type BuiltService = {
  readonly origin: string;
  readonly child: LoggedChild;
  /** The embedded server's service database, joined the way the admin CLI joins it. */
  readonly postgresUrl: string;
  readonly postmasterPid: number;
  /** `Bearer <JWT>` with the role `service`, signed with the development secret the service created. */
  readonly authorization: string;
};

/**
 * Starts `dist/apps/api/src/main.js` with a fresh DATA_DIR under `parentDirectory` (the embedded
 * PostgreSQL, its data and the development secrets) on free loopback ports, and waits for its
 * "listening" line. With `cpuProfileDirectory` node writes a CPU profile there when the service exits;
 * `env` adds to (or overrides) the variables it is started with; `dataDirectory` restarts on the
 * DATA_DIR of an earlier start (its log goes to the new `parentDirectory`).
 */
export async function startBuiltService(options: {
  readonly root: string;
  readonly parentDirectory: string;
  readonly cpuProfileDirectory?: string;
  readonly cleanup: Cleanup;
  readonly env?: Readonly<Record<string, string>>;
  readonly dataDirectory?: string;
}): Promise<BuiltService> {
  const main = path.join(options.root, 'dist/apps/api/src/main.js');
  if (!existsSync(main)) throw new Error(`${main} is missing: run the bench with npm run bench:http, which builds the service first`);
  const dataDir = options.dataDirectory ?? path.join(options.parentDirectory, 'data');
  const [httpPort, postgresPort] = [await freeLoopbackPort(), await freeLoopbackPort()];
  // RATE_LIMIT_ENABLED=false: the benchmark's clients are one address and a few credentials, at rates far past the defaults.
  // PURCHASE_TOKENS_MAX: each account is seeded by one purchase of a billion tokens, so no spend ever runs out.
  const env = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    HOST: '127.0.0.1',
    PORT: String(httpPort),
    DATA_DIR: dataDir,
    EMBEDDED_POSTGRES_PORT: String(postgresPort),
    RATE_LIMIT_ENABLED: 'false',
    PURCHASE_TOKENS_MAX: '1000000000',
    ...options.env,
  };
  const profiling = options.cpuProfileDirectory === undefined ? [] : ['--cpu-prof', `--cpu-prof-dir=${options.cpuProfileDirectory}`];
  const child = spawnNode([...profiling, main], { cwd: options.root, env, logFile: path.join(options.parentDirectory, 'service.log') });
  options.cleanup.add('stop the service', () => stopService(child, dataDir));
  await waitForLogLine(child, 'Token Ledger is listening');
  const postmasterPid = livePostmasterPid(dataDir);
  if (postmasterPid === undefined) throw new Error(`the service is listening but no PostgreSQL runs on ${dataDir}/postgres`);
  const secret = (await readFile(path.join(dataDir, 'secrets', 'jwt-secret'), 'utf8')).trim();
  const token = await mintToken({ role: 'service', sub: randomUUID(), ttl: '12h', secret, rolesClaim: 'app_metadata.roles' });
  const servicePassword = await readEmbeddedServicePassword(path.join(dataDir, 'secrets'));
  if (servicePassword === undefined) throw new Error(`the service is listening but ${dataDir}/secrets holds no PostgreSQL password`);
  const postgresUrl = embeddedPostgresUrl(postgresPort, EMBEDDED_SERVICE_DATABASE, servicePassword);
  return { origin: `http://127.0.0.1:${httpPort}`, child, postgresUrl, postmasterPid, authorization: `Bearer ${token}` };
}

/**
 * Stops the service with SIGINT; it stops its PostgreSQL itself and exits with 0. Otherwise (it
 * died, or had to be killed) the end of its log goes to stderr, and its postmaster, which outlives
 * it then, is stopped (fast shutdown) by the pid it wrote in its data directory.
 */
async function stopService(child: LoggedChild, dataDir: string): Promise<void> {
  await stopChild(child);
  if (child.process.exitCode !== 0) {
    const log = await readFile(child.logFile, 'utf8').catch(() => '');
    process.stderr.write(`the service ended with code ${child.process.exitCode} (signal ${child.process.signalCode}); the end of its log:\n${log.slice(-2_000)}\n`);
  }
  const pid = livePostmasterPid(dataDir);
  if (pid === undefined) return;
  process.kill(pid, 'SIGINT');
  for (let waitedMs = 0; livePostmasterPid(dataDir) !== undefined; waitedMs += 100) {
    if (waitedMs > 30_000) throw new Error(`PostgreSQL (pid ${pid}) did not stop within 30 s of SIGINT`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** The pid on the first line of `<DATA_DIR>/postgres/postmaster.pid`, when that process is a live postgres. */
function livePostmasterPid(dataDir: string): number | undefined {
  try {
    const pid = Number.parseInt(readFileSync(path.join(dataDir, 'postgres', 'postmaster.pid'), 'utf8').split('\n')[0] ?? '', 10);
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('postgres') ? pid : undefined;
  } catch {
    return undefined;
  }
}
