import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { frozenableProxy, type FrozenableProxy } from './support/frozenable-proxy.js';
import { buildService, startServiceOn, type ServiceProcess } from './support/service-process.js';
import { testToken } from './support/test-app.js';
import { createTestDatabase, type TestDatabase } from './support/test-database.js';

/**
 * The built service stopped while its database hangs (a network that drops every byte): the stop
 * cannot close what waits on the database, so SHUTDOWN_TIMEOUT bounds it, and a second signal ends
 * it at once. Without the bound the process waited for its pool forever.
 */
let database: TestDatabase;
let dataDir: string;
let service: string;
const proxies: FrozenableProxy[] = [];
const started: ServiceProcess[] = [];

beforeAll(async () => {
  await buildService();
  database = await createTestDatabase();
  dataDir = await mkdtemp(path.join(tmpdir(), 'token-ledger-shutdown-'));
  service = `Bearer ${await testToken('service')}`;
}, 240_000);

afterAll(async () => {
  for (const child of started) if (child.process.exitCode === null) child.process.kill('SIGKILL');
  await Promise.all(proxies.map((proxy) => proxy.close()));
  await database?.drop();
  await rm(dataDir, { recursive: true, force: true });
});

// A session whose client died behind a frozen proxy stays open on the server (the network "hangs"),
// and a transaction left open in it would hold back what other test files on this server read of
// $all: each test's connections end with it.
afterEach(() => {
  for (const proxy of proxies) proxy.cut();
});

/** A service on the test database through a proxy, with a purchase made, then the proxy frozen and a read left waiting on it. */
async function serviceOnHungDatabase(environment: Record<string, string>): Promise<ServiceProcess> {
  const proxy = await frozenableProxy(new URL(database.url));
  proxies.push(proxy);
  const child = await startServiceOn(proxy.url, dataDir, environment);
  started.push(child);
  const userId = randomUUID();
  const purchase = await fetch(`${child.url}/v1/accounts/${userId}/purchases`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: service },
    body: JSON.stringify({ paymentId: randomUUID(), amount: 10 }),
  });
  expect(purchase.status).toBe(201);
  proxy.freeze();
  // A read in flight on the hung database: its connection is cut by the drain; its query never ends.
  void fetch(`${child.url}/v1/accounts/${userId}/transactions`, { headers: { authorization: service } }).catch(() => undefined);
  await new Promise((resolve) => setTimeout(resolve, 300));
  return child;
}

describe('a stop while the database hangs', () => {
  it('exits with code 1 once SHUTDOWN_TIMEOUT has passed, saying why', async () => {
    const child = await serviceOnHungDatabase({ SHUTDOWN_TIMEOUT: '2s' });
    const signalled = Date.now();
    child.process.kill('SIGTERM');
    expect(await child.exited).toBe(1);
    const tookMs = Date.now() - signalled;
    expect(tookMs).toBeGreaterThanOrEqual(2_000);
    expect(tookMs).toBeLessThan(10_000);
    expect(child.output()).toContain('"msg":"the stop did not finish within SHUTDOWN_TIMEOUT: exiting now"');
    expect(child.output()).not.toContain('"msg":"stopped"');
  }, 60_000);

  it('takes a repeat of the signal within 2 s as the same stop, and exits with code 1 at a signal after that, long before SHUTDOWN_TIMEOUT', async () => {
    const child = await serviceOnHungDatabase({ SHUTDOWN_TIMEOUT: '10m' });
    child.process.kill('SIGTERM');
    // As npm forwards Ctrl+C that the terminal also sent: the same stop (sent once the first is being handled, as two pending at once are delivered as one).
    while (!child.output().includes('"msg":"shutting down"')) await new Promise((resolve) => setTimeout(resolve, 5));
    child.process.kill('SIGINT');
    await new Promise((resolve) => setTimeout(resolve, 2_500));
    expect(child.process.exitCode).toBeNull();
    expect(child.output()).toContain('"msg":"already stopping"');
    const signalled = Date.now();
    child.process.kill('SIGINT');
    expect(await child.exited).toBe(1);
    expect(Date.now() - signalled).toBeLessThan(5_000);
    expect(child.output()).toContain('"msg":"a second signal during the stop: exiting now"');
  }, 60_000);
});
