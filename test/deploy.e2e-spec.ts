import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { chmod, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { connect, createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Agent, request } from 'undici';
import { buildService, freePort, ROOT, startService, startServiceOn, waitUntilListening, type ServiceProcess } from './support/service-process.js';
import { testToken } from './support/test-app.js';
import { createTestDatabase, type TestDatabase } from './support/test-database.js';

/**
 * What an operator meets when deploying: the built service refusing unsafe or broken settings at
 * start (one message naming each variable, non-zero exit, within seconds, no secret printed), and
 * stopping cleanly on the signals a process manager sends, through `npm start` too.
 */
let parent: string;
let database: TestDatabase;
const occupants: Server[] = [];

beforeAll(async () => {
  await buildService();
  database = await createTestDatabase();
}, 240_000);

beforeEach(async () => {
  parent = await mkdtemp(path.join(tmpdir(), 'token-ledger-deploy-'));
  // As root the embedded server runs as the postgres user, who must be able to enter this directory.
  await chmod(parent, 0o755);
});

afterEach(async () => {
  for (const occupant of occupants.splice(0)) await new Promise((resolve) => occupant.close(resolve));
  await rm(parent, { recursive: true, force: true });
});

afterAll(async () => {
  await database.drop();
});

/** Exit code and the time it took, for a service expected to refuse to start; killed if it does not end within `timeoutMs`. */
async function refusal(service: ServiceProcess, timeoutMs: number): Promise<{ code: number | null; elapsedMs: number; output: string }> {
  const startedAt = Date.now();
  const timer = setTimeout(() => service.process.kill('SIGKILL'), timeoutMs);
  const code = await service.exited;
  clearTimeout(timer);
  return { code, elapsedMs: Date.now() - startedAt, output: service.output() };
}

async function occupy(port: number): Promise<void> {
  const occupant = createServer();
  await new Promise<void>((resolve) => occupant.listen(port, '127.0.0.1', resolve));
  occupants.push(occupant);
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.startsWith('Z') !== true;
  } catch {
    return false;
  }
}

/** Every descendant of `pid` (from /proc), so a test can tell that nothing it started outlives it. */
function descendants(pid: number): number[] {
  const parents = new Map<number, number>();
  for (const entry of readdirSync('/proc').filter((name) => /^\d+$/.test(name))) {
    try {
      const fields = readFileSync(`/proc/${entry}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
      parents.set(Number(entry), Number(fields[1]));
    } catch {
      // The process ended while the list was read.
    }
  }
  const found: number[] = [];
  const queue = [pid];
  while (queue.length > 0) {
    const current = queue.shift() as number;
    for (const [child, parentPid] of parents) {
      if (parentPid === current) {
        found.push(child);
        queue.push(child);
      }
    }
  }
  return found;
}

async function within(timeoutMs: number, condition: () => boolean | Promise<boolean>): Promise<boolean> {
  for (const deadline = Date.now() + timeoutMs; Date.now() < deadline; await new Promise((resolve) => setTimeout(resolve, 50))) {
    if (await condition()) return true;
  }
  return condition();
}

describe('a start the operator has to fix', () => {
  it('refuses every unsafe production setting in one message, naming each, printing no secret, before starting anything', async () => {
    const dataDir = path.join(parent, 'data');
    const service = startService({ NODE_ENV: 'production', DATA_DIR: dataDir, PORT: String(await freePort()), PAYMENT_WEBHOOK_SECRET: 'short-hook-key' });
    const { code, elapsedMs, output } = await refusal(service, 20_000);
    expect(code).toBe(1);
    expect(elapsedMs).toBeLessThan(10_000);
    expect(output.startsWith('invalid configuration:\n')).toBe(true);
    for (const expected of [
      'PAYMENT_WEBHOOK_SECRET=(hidden): PAYMENT_WEBHOOK_SECRET must be longer than or equal to 16 characters',
      'PAYMENT_PROVIDER=mock: the mock provider approves every capture',
      'DATABASE_URL=(unset): production needs a PostgreSQL server; the embedded one is for a single machine only, allowed with EMBEDDED_POSTGRES_IN_PRODUCTION=true',
      'NODE_ENV=production needs AUTH_JWT_SECRET, AUTH_JWKS_URL or AUTH_JWKS_FILE',
      'NODE_ENV=production needs AUDIT_SIGNING_KEY_FILE',
      'NODE_ENV=production needs AUTH_JWT_ISSUER',
      'NODE_ENV=production needs AUTH_JWT_AUDIENCE',
    ]) {
      expect(output).toContain(expected);
    }
    expect(output).not.toContain('short-hook-key');
    // Nothing started: no embedded PostgreSQL, no development secrets.
    await expect(stat(dataDir)).rejects.toThrow('ENOENT');
  }, 30_000);

  it('reads its settings from the file ENV_FILE names (the environment wins), and names ENV_FILE when that file cannot be read', async () => {
    const dataDir = path.join(parent, 'data');
    const envFile = path.join(parent, 'settings.env');
    await writeFile(envFile, 'NODE_ENV=production\nPAYMENT_WEBHOOK_SECRET=short-hook-key\nPAYMENT_PROVIDER=stripe\n');
    const service = startService({ ENV_FILE: envFile, PAYMENT_PROVIDER: 'mock', DATA_DIR: dataDir, PORT: String(await freePort()) });
    const { code, output } = await refusal(service, 20_000);
    expect(code).toBe(1);
    expect(output).toContain('PAYMENT_WEBHOOK_SECRET=(hidden): PAYMENT_WEBHOOK_SECRET must be longer than or equal to 16 characters');
    expect(output).toContain('PAYMENT_PROVIDER=mock: the mock provider approves every capture');
    const missing = path.join(parent, 'no-such.env');
    const unread = await refusal(startService({ ENV_FILE: missing, DATA_DIR: dataDir, PORT: String(await freePort()) }), 20_000);
    expect(unread.code).toBe(1);
    expect(unread.output).toContain(`cannot start: ENV_FILE: cannot read ${missing} (ENOENT)`);
    await expect(stat(dataDir)).rejects.toThrow('ENOENT');
  }, 40_000);

  it('names EMBEDDED_POSTGRES_PORT when that port is in use, and exits 1 within seconds', async () => {
    const postgresPort = await freePort();
    await occupy(postgresPort);
    const service = startService({ DATA_DIR: path.join(parent, 'data'), PORT: String(await freePort()), EMBEDDED_POSTGRES_PORT: String(postgresPort) });
    const { code, elapsedMs, output } = await refusal(service, 30_000);
    expect(code).toBe(1);
    expect(elapsedMs).toBeLessThan(10_000);
    expect(output).toContain(`cannot start: EMBEDDED_POSTGRES_PORT: port ${postgresPort} is already in use by another process`);
    expect(output).not.toMatch(/^undefined$/m);
  }, 40_000);

  it('names a malformed DATABASE_URL without printing its password', async () => {
    const service = startService({ DATA_DIR: path.join(parent, 'data'), PORT: String(await freePort()), DATABASE_URL: 'postgres://ledger:hunter2-password@' });
    const { code, elapsedMs, output } = await refusal(service, 20_000);
    expect(code).toBe(1);
    expect(elapsedMs).toBeLessThan(10_000);
    expect(output).toContain('DATABASE_URL must be a URL such as postgres://user:password@host:5432/database');
    expect(output).not.toContain('hunter2-password');
  }, 30_000);

  it.each([
    ['nothing listens on its port', (port: number) => `postgres://ledger:hunter2-password@127.0.0.1:${port}/ledger`, /cannot start: DATABASE_URL: cannot connect to 127\.0\.0\.1:\d+ database ledger as ledger: nothing listens there \(ECONNREFUSED\)/],
    ['its host name does not resolve', () => 'postgres://ledger:hunter2-password@no-such-host.invalid:5432/ledger', /cannot start: DATABASE_URL: cannot connect to no-such-host\.invalid:5432 database ledger as ledger: the host name does not resolve/],
  ])('names an unreachable DATABASE_URL (%s) in one line, without a stack or the password', async (_label, urlOf, expected) => {
    const service = startService({ DATA_DIR: path.join(parent, 'data'), PORT: String(await freePort()), DATABASE_URL: urlOf(await freePort()) });
    const { code, elapsedMs, output } = await refusal(service, 30_000);
    expect(code).toBe(1);
    expect(elapsedMs).toBeLessThan(10_000);
    expect(output).toMatch(expected);
    expect(output).not.toContain('hunter2-password');
    expect(output).not.toMatch(/^\s+at /m);
  }, 40_000);

  it('names PORT when the HTTP port is in use, and exits 1 within seconds', async () => {
    const port = await freePort();
    await occupy(port);
    const service = startService({ DATA_DIR: path.join(parent, 'data'), PORT: String(port), NODE_ENV: 'test', DATABASE_URL: database.url, PAYMENT_JOBS_ENABLED: 'false', PROJECTIONS_ENABLED: 'false' });
    const { code, elapsedMs, output } = await refusal(service, 40_000);
    expect(code).toBe(1);
    expect(elapsedMs).toBeLessThan(15_000);
    expect(output).toContain(`cannot start: PORT: port ${port} on 127.0.0.1 is already in use by another process`);
    expect(output).not.toMatch(/^\s+at /m);
  }, 50_000);
});

describe('stopping', () => {
  it('npm run start:prod passes SIGTERM on: node and the embedded PostgreSQL stop within 10 s and nothing is left', async () => {
    // `npm start` builds first, then runs the same command as start:prod; both must hand the signal to node.
    const scripts = (JSON.parse(await readFile(path.join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts;
    expect(scripts.start).toBe(`nest build api && ${scripts['start:prod']}`);
    const dataDir = path.join(parent, 'data');
    const [httpPort, postgresPort] = [await freePort(), await freePort()];
    const env = { PATH: process.env.PATH, HOME: process.env.HOME, ENV_FILE: '', DATA_DIR: dataDir, PORT: String(httpPort), EMBEDDED_POSTGRES_PORT: String(postgresPort) };
    const npm = spawn('npm', ['run', '--silent', 'start:prod'], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    npm.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    npm.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => npm.once('exit', (code) => resolve(code)));
    const npmPid = npm.pid as number;
    let started: number[] = [];
    try {
      await waitUntilListening({ process: npm, url: '', output: () => output, exited });
      const postmaster = Number(readFileSync(path.join(dataDir, 'postgres', 'postmaster.pid'), 'utf8').split('\n')[0]);
      started = [...descendants(npmPid), postmaster];
      expect(started.length).toBeGreaterThanOrEqual(2);

      const signalledAt = Date.now();
      process.kill(npmPid, 'SIGTERM');
      expect(await within(10_000, () => started.every((pid) => !alive(pid)) && !alive(npmPid))).toBe(true);
      expect(Date.now() - signalledAt).toBeLessThan(10_000);
      expect(await accepts(httpPort)).toBe(false);
      expect(await accepts(postgresPort)).toBe(false);
      expect(output).toContain('"msg":"stopped"');
    } finally {
      for (const pid of [...started, npmPid].filter(alive)) process.kill(pid, 'SIGKILL');
    }
  }, 120_000);

  it('SIGTERM drains the requests in flight to their normal answers, then exits promptly', async () => {
    const userId = randomUUID();
    const service = await startServiceOn(database.url, path.join(parent, 'data'));
    const authorization = `Bearer ${await testToken('service')}`;
    const agent = new Agent({ connections: 32 });
    const post = (route: string, body: object) =>
      request(`${service.url}/v1/accounts/${userId}/${route}`, { method: 'POST', dispatcher: agent, headers: { 'content-type': 'application/json', authorization }, body: JSON.stringify(body) });
    try {
      expect((await post('purchases', { paymentId: randomUUID(), amount: 1_000 })).statusCode).toBe(201);
      // Open the keep-alive connections first, so every spend below is on a connection the service has accepted.
      await Promise.all(Array.from({ length: 32 }, () => request(`${service.url}/health`, { dispatcher: agent }).then((response) => response.body.dump())));

      const spends = Array.from({ length: 32 }, (_, index) =>
        post('usage', { amount: 1, description: `in flight ${index}` }).then(async (response) => ({ status: response.statusCode, body: (await response.body.json()) as { balance?: number } })),
      );
      await Promise.race(spends);
      const signalledAt = Date.now();
      service.process.kill('SIGTERM');
      const answers = await Promise.all(spends);
      expect(answers.map((answer) => answer.status)).toEqual(answers.map(() => 201));
      expect(new Set(answers.map((answer) => answer.body.balance)).size).toBe(32);
      expect(Math.min(...answers.map((answer) => answer.body.balance ?? -1))).toBe(1_000 - 32);
      expect(await service.exited).toBe(0);
      // Inside the 5 s a request may wait for its read models (and far from the 72 s keep-alive timeout):
      // nothing waited on a stopped projection or an idle connection.
      expect(Date.now() - signalledAt).toBeLessThan(5_000);
      expect(await accepts(Number(new URL(service.url).port))).toBe(false);
    } finally {
      if (service.process.exitCode === null) service.process.kill('SIGKILL');
      await agent.close();
    }
  }, 60_000);
});
