import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { chmod, mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { mintToken, type Role } from '@app/auth';

/**
 * The service as `npm start` runs it: the built bundle on the embedded PostgreSQL, started and
 * stopped by signals, data kept across restarts. Everything else runs the app in-process; this is
 * the one spec of main.ts, the embedded server's lifecycle and the Swagger UI (which cannot load
 * inside Jest's ESM sandbox).
 */
const ROOT = path.resolve(import.meta.dirname, '..');
const MAIN = path.join(ROOT, 'dist/apps/api/src/main.js');

type Service = { readonly process: ChildProcess; readonly url: string; output(): string; exited: Promise<number | null> };

let dataDir: string;
let ports: { http: number; postgres: number };

beforeAll(async () => {
  await promisify(execFile)(process.execPath, [path.join(ROOT, 'node_modules/@nestjs/cli/bin/nest.js'), 'build', 'api'], { cwd: ROOT });
  const parent = await mkdtemp(path.join(tmpdir(), 'token-ledger-service-'));
  // As root the embedded server runs as the postgres user, who must be able to enter this directory.
  await chmod(parent, 0o755);
  dataDir = path.join(parent, 'data');
  ports = { http: await freePort(), postgres: await freePort() };
}, 180_000);

afterAll(async () => {
  await rm(path.dirname(dataDir), { recursive: true, force: true });
});

function start(environment: Record<string, string> = {}): Service {
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: process.env.HOME, PORT: String(ports.http), HOST: '127.0.0.1', DATA_DIR: dataDir, EMBEDDED_POSTGRES_PORT: String(ports.postgres), ...environment };
  const child = spawn(process.execPath, [MAIN], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { process: child, url: `http://127.0.0.1:${ports.http}`, output: () => output, exited };
}

async function ready(service: Service): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (!service.output().includes('Token Ledger is listening')) {
    if (service.process.exitCode !== null) throw new Error(`the service exited early:\n${service.output()}`);
    if (Date.now() > deadline) throw new Error(`the service did not start:\n${service.output()}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** `Bearer <token>` signed with the development secret the service keeps under DATA_DIR, as `npm run cli -- token` mints it. */
async function developmentToken(role: Role, sub: string = randomUUID()): Promise<string> {
  const secret = (await readFile(path.join(dataDir, 'secrets', 'jwt-secret'), 'utf8')).trim();
  return `Bearer ${await mintToken({ role, sub, ttl: '5m', secret, rolesClaim: 'app_metadata.roles' })}`;
}

async function stop(service: Service, signal: NodeJS.Signals): Promise<number | null> {
  service.process.kill(signal);
  return service.exited;
}

async function postgresAcceptsConnections(): Promise<boolean> {
  const { Client } = (await import('pg')).default;
  const client = new Client({ host: '127.0.0.1', port: ports.postgres, user: 'postgres', database: 'postgres', connectionTimeoutMillis: 1_000 });
  try {
    await client.connect();
    return true;
  } catch (error) {
    return !/ECONNREFUSED/.test(String(error));
  } finally {
    await client.end().catch(() => undefined);
  }
}

describe('the service on its embedded PostgreSQL', () => {
  const userId = randomUUID();

  it('starts with no database configured, serves the API and /docs, and stops on SIGTERM with exit code 0', async () => {
    const service = start();
    try {
      await ready(service);
      expect(service.output()).toContain('using development secrets');
      // No credentials: refused. With a token signed by the development secret the service created: served.
      expect((await fetch(`${service.url}/v1/accounts/${userId}/balance`)).status).toBe(401);
      const purchase = await fetch(`${service.url}/v1/accounts/${userId}/purchases`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: await developmentToken('service') },
        body: JSON.stringify({ paymentId: randomUUID(), amount: 40, description: 'Smoke test' }),
      });
      expect(purchase.status).toBe(201);
      const docs = await fetch(`${service.url}/docs`);
      expect(docs.status).toBe(200);
      expect(docs.headers.get('content-type')).toMatch(/^text\/html/);
      expect(await docs.text()).toContain('swagger');
      expect((await fetch(`${service.url}/health`)).status).toBe(200);
    } finally {
      expect(await stop(service, 'SIGTERM')).toBe(0);
    }
    expect(service.output()).toContain('"msg":"stopped"');
    // The embedded server went down with the service: nothing is left holding the port.
    expect(await postgresAcceptsConnections()).toBe(false);
  }, 120_000);

  it('keeps the ledger across a restart and stops on SIGINT', async () => {
    const service = start();
    try {
      await ready(service);
      // The development secret was kept: a token minted before the restart still verifies.
      const balance = await fetch(`${service.url}/v1/accounts/${userId}/balance`, { headers: { authorization: await developmentToken('user', userId) } });
      expect(await balance.json()).toEqual({ userId, balance: 40 });
    } finally {
      expect(await stop(service, 'SIGINT')).toBe(0);
    }
  }, 120_000);

  it('refuses to start in production without configured secrets, naming each', async () => {
    const service = start({ NODE_ENV: 'production', PAYMENT_WEBHOOK_SECRET: 'production-webhook-secret-0123456789' });
    expect(await service.exited).toBe(1);
    expect(service.output()).toContain('NODE_ENV=production needs AUTH_JWT_SECRET, AUTH_JWKS_URL or AUTH_JWKS_FILE');
    expect(service.output()).toContain('NODE_ENV=production needs AUDIT_SIGNING_KEY_FILE');
    expect(await postgresAcceptsConnections()).toBe(false);
  }, 30_000);

  it('refuses to start on invalid configuration, naming the variable and the rule', async () => {
    const service = start({ PORT: 'eighty', READ_YOUR_WRITES_TIMEOUT_MS: '-1' });
    expect(await service.exited).toBe(1);
    expect(service.output()).toMatch(/PORT="eighty": .*must be an integer/);
    expect(service.output()).toMatch(/READ_YOUR_WRITES_TIMEOUT_MS=-1: .*must not be less than 0/);
  }, 30_000);
});

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address !== null ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}
