import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { TEST_JWT_SECRET } from './test-app.js';

/** The built service (`nest build api`) run as a child process, as `npm start` runs it. */
export const ROOT = path.resolve(import.meta.dirname, '../..');
const MAIN = path.join(ROOT, 'dist/apps/api/src/main.js');
const BUILT_MARK = path.join(ROOT, 'dist/.built-by-test-run');
const BUILD_WAIT_MS_MAX = 240_000;
// Set by test/support/global-setup.js: one build per Jest run, whichever spec asks first.
const RUN_ID_VARIABLE = 'TOKEN_LEDGER_TEST_RUN_ID';

export type ServiceProcess = {
  readonly process: ChildProcess;
  readonly url: string;
  output(): string;
  readonly exited: Promise<number | null>;
};

/**
 * Builds the service once per test run. Specs in parallel workers must not build side by side: the
 * build empties dist/ while another spec may be starting the service from it. A directory made with
 * mkdir (atomic) is the lock; the mark file says which run built dist/.
 */
export async function buildService(): Promise<void> {
  const runId = process.env[RUN_ID_VARIABLE] ?? `standalone-${process.pid}`;
  const lock = path.join(tmpdir(), `token-ledger-build-${runId}.lock`);
  const deadline = Date.now() + BUILD_WAIT_MS_MAX;
  while ((await readFile(BUILT_MARK, 'utf8').catch(() => '')) !== runId) {
    if (Date.now() > deadline) throw new Error(`no build of the service within ${BUILD_WAIT_MS_MAX} ms (lock ${lock})`);
    const locked = await mkdir(lock).then(
      () => true,
      () => false,
    );
    if (!locked) {
      await new Promise((resolve) => setTimeout(resolve, 200));
      continue;
    }
    try {
      if ((await readFile(BUILT_MARK, 'utf8').catch(() => '')) === runId) return;
      await promisify(execFile)(process.execPath, [path.join(ROOT, 'node_modules/@nestjs/cli/bin/nest.js'), 'build', 'api'], { cwd: ROOT });
      await writeFile(BUILT_MARK, runId);
    } finally {
      await rm(lock, { recursive: true, force: true });
    }
  }
}

/** Starts the built service with `environment` (plus PATH and HOME, and no .env), collecting its output. */
export function startService(environment: Record<string, string>): ServiceProcess {
  // METRICS_PORT=0: processes started side by side must not contend for the default metrics port.
  // ENV_FILE='': a developer's .env in the working directory must not reach a spec's service.
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: process.env.HOME, METRICS_PORT: '0', ENV_FILE: '', ...environment };
  const child = spawn(process.execPath, [MAIN], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { process: child, url: `http://127.0.0.1:${environment.PORT ?? '3000'}`, output: () => output, exited };
}

/** The metrics URL a started service logged (METRICS_PORT=0 lets it pick the port). */
export function metricsUrlOf(service: ServiceProcess): string {
  const match = /"metrics":"(http:\/\/[^"]+)"/.exec(service.output());
  if (match?.[1] === undefined) throw new Error(`the service logged no metrics URL:\n${service.output()}`);
  return match[1];
}

/** The API's URL a started service logged, with the port it bound (PORT=0 lets it pick one). */
export function listeningUrlOf(service: ServiceProcess): string {
  const match = /"url":"(http:\/\/[^"]+)"/.exec(service.output());
  if (match?.[1] === undefined) throw new Error(`the service logged no URL:\n${service.output()}`);
  return match[1];
}

export async function waitUntilListening(service: ServiceProcess, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!service.output().includes('Token Ledger is listening')) {
    // A process ended by a signal (a kill at a fault point) has no exit code, only its signal.
    if (service.process.exitCode !== null || service.process.signalCode !== null) throw new Error(`the service exited early (${service.process.signalCode ?? `code ${service.process.exitCode}`}):\n${service.output()}`);
    if (Date.now() > deadline) throw new Error(`the service did not start:\n${service.output()}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address !== null ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

/**
 * A process of the built service on an existing database (`DATABASE_URL`), listening on a free port,
 * with the test JWT secret: what the multi-process and crash specs start, stop and kill.
 */
export async function startServiceOn(databaseUrl: string, dataDir: string, environment: Record<string, string> = {}): Promise<ServiceProcess> {
  const child = startService({
    DATABASE_URL: databaseUrl,
    PORT: String(await freePort()),
    HOST: '127.0.0.1',
    NODE_ENV: 'test',
    AUTH_JWT_SECRET: TEST_JWT_SECRET,
    DATA_DIR: dataDir,
    DATABASE_POOL_SIZE: '10',
    // Load and crash tests send thousands of requests from one address with one credential.
    RATE_LIMIT_ENABLED: 'false',
    ...environment,
  });
  await listeningOrKilled(child);
  return child;
}

/**
 * A process of the built service on its own embedded PostgreSQL under `dataDir` (no DATABASE_URL),
 * as `npm start` runs it, with the test JWT secret: restarted on the same `dataDir`, it finds its data.
 */
export async function startServiceOnDataDir(dataDir: string, postgresPort: number, environment: Record<string, string> = {}): Promise<ServiceProcess> {
  const child = startService({
    PORT: String(await freePort()),
    HOST: '127.0.0.1',
    NODE_ENV: 'test',
    AUTH_JWT_SECRET: TEST_JWT_SECRET,
    DATA_DIR: dataDir,
    EMBEDDED_POSTGRES_PORT: String(postgresPort),
    DATABASE_POOL_SIZE: '10',
    // As startServiceOn: crash tests send thousands of requests with one credential, and the limiter's
    // window outlives a restart, so on a fast machine one test used up the next one's allowance.
    RATE_LIMIT_ENABLED: 'false',
    ...environment,
  });
  await listeningOrKilled(child);
  return child;
}

/** The pid of the embedded PostgreSQL's postmaster under `dataDir` (DATA_DIR/postgres/postmaster.pid). */
export async function postmasterPidOf(dataDir: string): Promise<number> {
  const pid = Number.parseInt((await readFile(path.join(dataDir, 'postgres', 'postmaster.pid'), 'utf8')).split('\n')[0] ?? '', 10);
  if (!Number.isSafeInteger(pid) || pid <= 0) throw new Error(`no postmaster pid under ${dataDir}`);
  return pid;
}

/** Longest a process is given to stop after SIGTERM before it is killed. */
const STOP_WAIT_MS = 15_000;

/** Stops each process still running (SIGTERM; SIGKILL if it has not exited within STOP_WAIT_MS) and waits for it. */
export async function stopServices(children: readonly (ServiceProcess | undefined)[]): Promise<void> {
  for (const child of children) {
    if (child === undefined || child.process.exitCode !== null || child.process.signalCode !== null) continue;
    child.process.kill('SIGTERM');
    const killer = setTimeout(() => child.process.kill('SIGKILL'), STOP_WAIT_MS);
    await child.exited;
    clearTimeout(killer);
  }
}

/** Waits until `child` listens; one that does not is killed (no test may leave it running), and the wait's error thrown. */
async function listeningOrKilled(child: ServiceProcess): Promise<void> {
  try {
    await waitUntilListening(child);
  } catch (error) {
    child.process.kill('SIGKILL');
    await child.exited;
    throw error;
  }
}

/** An answer of the built service: its status and JSON body. */
export type ServiceAnswer = { readonly status: number; readonly body: Record<string, unknown> };

/** The answers that ask for a retry, which the Idempotency-Key makes safe. */
const RETRIED_CODES: ReadonlySet<string> = new Set(['IDEMPOTENCY_KEY_IN_PROGRESS', 'CONCURRENCY_CONFLICT', 'APPEND_DEADLINE_EXCEEDED']);

/**
 * POSTs `body` with an Idempotency-Key until answered `ok`, retrying the answers that ask for a retry
 * (RETRIED_CODES: a key in progress, a conflict, an append past its deadline, as behind a stream a
 * rebuild holds); undefined once the process is gone (killed).
 * Any other answer is a failure of the test.
 */
export async function keyedUntilAnswered(child: ServiceProcess, authorization: string, route: string, body: unknown, key: string, ok: number): Promise<ServiceAnswer | undefined> {
  for (;;) {
    let answer: ServiceAnswer;
    try {
      const response = await fetch(`${child.url}${route}`, {
        method: 'POST',
        headers: { authorization, 'content-type': 'application/json', 'idempotency-key': key },
        body: JSON.stringify(body),
      });
      answer = { status: response.status, body: (await response.json()) as Record<string, unknown> };
    } catch {
      return undefined;
    }
    if (answer.status === ok) return answer;
    if (!RETRIED_CODES.has(String(answer.body.code))) throw new Error(`unexpected answer to ${route}: ${JSON.stringify(answer)}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/**
 * `clients` client loops against a service: each makes a unit (`next(client, index)`), keeps it in
 * `units` (to finish or check after a restart) and works it, until `work` returns false because the
 * process is gone (killed), or `stopped` says so before a unit is made. Resolves once every loop has
 * stopped.
 */
export async function loopUntilGone<Unit>(
  clients: number,
  units: Unit[],
  next: (client: number, index: number) => Unit,
  work: (unit: Unit) => Promise<boolean>,
  stopped: () => boolean = () => false,
): Promise<void> {
  await Promise.all(
    Array.from({ length: clients }, async (_, client) => {
      for (let index = 0; !stopped(); index += 1) {
        const unit = next(client, index);
        units.push(unit);
        if (!(await work(unit))) return;
      }
    }),
  );
}

/** The client loops of `loopUntilGone`, with `child` killed with SIGKILL after `killAfterMs`; resolves once it has exited. */
export async function loopUntilKilled<Unit>(
  child: ServiceProcess,
  killAfterMs: number,
  clients: number,
  units: Unit[],
  next: (client: number, index: number) => Unit,
  work: (unit: Unit) => Promise<boolean>,
): Promise<void> {
  let killed = false;
  const killer = setTimeout(() => {
    // No unit is made after the kill: each client's last unit is the one the kill cut short, if any.
    killed = true;
    child.process.kill('SIGKILL');
  }, killAfterMs);
  try {
    await loopUntilGone(clients, units, next, work, () => killed);
  } finally {
    clearTimeout(killer);
  }
  await child.exited;
}

/** A keyed spend of 1 a client sent: `done` once answered. */
export type KeyedSpend = { readonly userId: string; readonly key: string; done: boolean };

/**
 * `clients` clients spending 1 with an Idempotency-Key each on `accounts` (each client in turn over
 * them) until the process is gone; every spend is kept in `spends`, to be retried (`retrySpends`).
 */
export function keyedSpendsUntilGone(child: ServiceProcess, authorization: string, accounts: readonly string[], clients: number, spends: KeyedSpend[]): Promise<void> {
  const spending = loopUntilGone(
    clients,
    spends,
    (client, index): KeyedSpend => ({ userId: accounts[(client + index) % accounts.length] as string, key: randomUUID(), done: false }),
    async (spend) => {
      if ((await keyedUntilAnswered(child, authorization, `/v1/accounts/${spend.userId}/usage`, { amount: 1 }, spend.key, 201)) === undefined) return false;
      spend.done = true;
      return true;
    },
  );
  // Awaited by the test once it has killed the process; a test that fails before then must not also
  // leave an unhandled rejection behind (the caller's await still sees the failure).
  spending.catch(() => undefined);
  return spending;
}

/** Sends each unanswered spend again with its key until answered; throws if the process is gone. */
export async function retrySpends(child: ServiceProcess, authorization: string, spends: readonly KeyedSpend[]): Promise<void> {
  for (const spend of spends.filter((each) => !each.done)) {
    if ((await keyedUntilAnswered(child, authorization, `/v1/accounts/${spend.userId}/usage`, { amount: 1 }, spend.key, 201)) === undefined) throw new Error('the service is gone');
    spend.done = true;
  }
}
