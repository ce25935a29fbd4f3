import { randomUUID } from 'node:crypto';
import { chmod, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { mintToken, type Role } from '@app/auth';
import { buildService, freePort, listeningUrlOf, metricsUrlOf, startService, waitUntilListening as ready, type ServiceProcess as Service } from './support/service-process.js';

/**
 * The service as `npm start` runs it: the built bundle on the embedded PostgreSQL, started and
 * stopped by signals, data kept across restarts. Everything else runs the app in-process; this is
 * the one spec of main.ts, the embedded server's lifecycle and the Swagger UI (which cannot load
 * inside Jest's ESM sandbox).
 */
let dataDir: string;
let ports: { http: number; postgres: number };

beforeAll(async () => {
  await buildService();
  const parent = await mkdtemp(path.join(tmpdir(), 'token-ledger-service-'));
  // As root the embedded server runs as the postgres user, who must be able to enter this directory.
  await chmod(parent, 0o755);
  dataDir = path.join(parent, 'data');
  ports = { http: await freePort(), postgres: await freePort() };
}, 240_000);

afterAll(async () => {
  await rm(path.dirname(dataDir), { recursive: true, force: true });
});

function start(environment: Record<string, string> = {}): Service {
  return startService({ PORT: String(ports.http), HOST: '127.0.0.1', DATA_DIR: dataDir, EMBEDDED_POSTGRES_PORT: String(ports.postgres), ...environment });
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
      // NODE_ENV unset, the mock provider by default: both said, as a deployment that forgot NODE_ENV must hear.
      expect(service.output()).toContain('NODE_ENV is unset: running as development');
      expect(service.output()).toContain('PAYMENT_PROVIDER=mock: the mock payment provider approves every capture');
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
      expect((await fetch(`${service.url}/health/live`)).status).toBe(200);
      expect((await fetch(`${service.url}/health/ready`)).status).toBe(200);

      // Metrics on a port of their own, on loopback; the API's port does not serve them.
      const metricsUrl = metricsUrlOf(service);
      expect(metricsUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
      expect(metricsUrl).not.toBe(`${service.url}/metrics`);
      expect((await fetch(`${service.url}/metrics`)).status).toBe(404);
      const metrics = await fetch(metricsUrl);
      expect(metrics.status).toBe(200);
      expect(metrics.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
      const text = await metrics.text();
      expect(text).toContain('token_ledger_http_request_duration_seconds_count{method="POST",route="/v1/accounts/:userId/purchases",status_code="201"} 1');
      expect(text).toContain('token_ledger_command_outcomes_total{route="/v1/accounts/:userId/purchases",outcome="ok"} 1');
      expect(text).toMatch(/token_ledger_projection_lag_seconds\{projection="token_accounts"\} [\d.e-]+/);
      expect(text).toContain('process_cpu_seconds_total');
    } finally {
      expect(await stop(service, 'SIGTERM')).toBe(0);
    }
    expect(service.output()).toContain('"msg":"stopped"');
    // The embedded server went down with the service: nothing is left holding the port.
    expect(await postgresAcceptsConnections()).toBe(false);
  }, 120_000);

  it('keeps the ledger across a restart (on any free port, PORT=0, which it logs) and stops on SIGINT, sent twice as npm and the terminal both send Ctrl+C', async () => {
    const service = start({ PORT: '0' });
    try {
      await ready(service);
      const url = listeningUrlOf(service);
      expect(url).toMatch(/^http:\/\/127\.0\.0\.1:[1-9]\d*$/);
      // The development secret was kept: a token minted before the restart still verifies.
      const balance = await fetch(`${url}/v1/accounts/${userId}/balance`, { headers: { authorization: await developmentToken('user', userId) } });
      expect(await balance.json()).toEqual({ userId, balance: 40, held: 0, available: 40, nextExpiry: null });
    } finally {
      // The repeat comes once the first is being handled: two signals pending at once are delivered as one.
      service.process.kill('SIGINT');
      while (!service.output().includes('"msg":"shutting down"')) await new Promise((resolve) => setTimeout(resolve, 5));
      expect(await stop(service, 'SIGINT')).toBe(0);
      expect(service.output()).toContain('"msg":"already stopping"');
      expect(service.output()).toContain('"msg":"stopped"');
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
    expect(service.output()).toMatch(/READ_YOUR_WRITES_TIMEOUT_MS="-1": .*must not be less than 0/);
    const clash = start({ METRICS_PORT: String(ports.http) });
    expect(await clash.exited).toBe(1);
    expect(clash.output()).toContain(`PORT and METRICS_PORT are both ${ports.http} on overlapping addresses: the service listens on each of them, so they must differ`);
    expect(await postgresAcceptsConnections()).toBe(false);
  }, 30_000);
});
