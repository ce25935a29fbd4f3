import { randomUUID } from 'node:crypto';
import { PostgresEventStore } from '@app/event-store';
import { InlineProjections, PROJECTIONS, shadowSchemaOf } from '@app/projections';
import { seedHistory, seedLongAccount } from '@app/testing';
import { killableService } from './support/killable-service.js';
import { keyedSpendsUntilGone, retrySpends, type KeyedSpend, type ServiceProcess } from './support/service-process.js';
import { testToken } from './support/test-app.js';

/**
 * The built service killed with SIGKILL in the middle of a rebuild, while clients spend with
 * Idempotency-Keys: a whole projection's zero-downtime rebuild, and one account's rebuild (one
 * transaction over its stream). After the restart the live read models still answer every account
 * exactly, every spend is applied once, the interrupted rebuild is reported and reaped (its shadow
 * schema dropped) by the next one, which completes, and the auditor's verify finds no difference.
 */
const FUNDS = 1_000_000;
const SPENDERS = 4;

const killed = killableService('rebuild-crash');
let service: string;
let admin: string;
let auditor: string;

// A test's service must not lead the projection runner into the next test, even when the test fails.
afterEach(() => killed.stopAll());

beforeAll(async () => {
  service = `Bearer ${await testToken('service')}`;
  admin = `Bearer ${await testToken('admin')}`;
  auditor = `Bearer ${await testToken('auditor')}`;
});

async function call(child: ServiceProcess, authorization: string, method: string, route: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetch(`${child.url}${route}`, { method, headers: { authorization } });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

async function waitUntil(condition: () => Promise<boolean>, timeoutMs = 60_000, last: () => unknown = () => undefined): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`condition not met in time; last seen: ${JSON.stringify(last())}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** The token_accounts projection's status. */
async function projectionStatus(child: ServiceProcess): Promise<Record<string, unknown>> {
  const { body } = await call(child, admin, 'GET', '/v1/admin/projections');
  return (body.data as Record<string, unknown>[]).find((projection) => projection.name === 'token_accounts') ?? {};
}

/** Writes a history straight to the event store with its read models, as the service appends (`seed` writes it and returns its accounts), and waits until the service's runner is past it. */
async function seeded(child: ServiceProcess, seed: (store: PostgresEventStore) => Promise<readonly string[]>): Promise<readonly string[]> {
  const database = killed.database();
  const store = new PostgresEventStore(database.pool, { connectionString: database.url, appendHook: new InlineProjections(PROJECTIONS) });
  const userIds = await seed(store);
  await store.close();
  let status: Record<string, unknown> = {};
  await waitUntil(
    async () => {
      status = await projectionStatus(child);
      return status.state === 'running' && status.lagEvents === 0;
    },
    60_000,
    () => status,
  );
  return userIds;
}

async function fund(child: ServiceProcess, userId: string): Promise<void> {
  const response = await fetch(`${child.url}/v1/accounts/${userId}/purchases`, {
    method: 'POST',
    headers: { authorization: service, 'content-type': 'application/json' },
    body: JSON.stringify({ paymentId: randomUUID(), amount: FUNDS }),
  });
  expect(response.status).toBe(201);
}

/** Each account (funded, then only spent on here) holds its funds less its spends, each once in its events too, and verify finds nothing. */
async function expectExact(child: ServiceProcess, accounts: readonly string[], spends: readonly KeyedSpend[]): Promise<void> {
  for (const userId of accounts) {
    const spent = spends.filter((spend) => spend.userId === userId).length;
    const used = await killed.database().pool.query<{ count: string }>(
      "SELECT count(*)::text AS count FROM events WHERE stream_id = $1 AND event_type = 'TokensUsed'",
      [`token-account-${userId}`],
    );
    expect(Number(used.rows[0]?.count)).toBe(spent);
    const balance = await call(child, service, 'GET', `/v1/accounts/${userId}/balance`);
    expect(balance.body).toMatchObject({ userId, balance: FUNDS - spent, held: 0 });
    const verify = await call(child, auditor, 'GET', `/v1/audit/accounts/${userId}/verify`);
    expect(verify.body).toMatchObject({ ok: true, readModels: { differences: [], replayError: null } });
  }
}

async function shadowSchemas(): Promise<string[]> {
  return (await killed.database().pool.query<{ nspname: string }>("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'rebuild\\_%' ORDER BY nspname")).rows.map((row) => row.nspname);
}

describe('rebuilds killed with SIGKILL mid-way, while keyed spends run', () => {
  it('a projection rebuild: the live tables keep answering exactly, the next rebuild reaps the interrupted one and completes, and every account verifies', async () => {
    let child = await killed.start();
    const history = await seeded(child, async (store) => (await seedHistory(store, { users: 40, events: 60_000, seed: 7, concurrency: 4 })).userIds);
    const accounts = [randomUUID(), randomUUID(), randomUUID()];
    for (const userId of accounts) await fund(child, userId);
    const spends: KeyedSpend[] = [];
    const spending = keyedSpendsUntilGone(child, service, accounts, SPENDERS, spends);

    const started = await call(child, admin, 'POST', '/v1/admin/projections/token_accounts/rebuild');
    expect(started.status).toBe(202);
    const id = started.body.id as string;
    let phase = '';
    await waitUntil(async () => {
      const rebuild = await call(child, admin, 'GET', `/v1/admin/projections/token_accounts/rebuilds/${id}`);
      phase = rebuild.body.phase as string;
      return phase === 'completed' || phase === 'failed' || Number(rebuild.body.eventsDone) > 0;
    });
    child.process.kill('SIGKILL');
    await Promise.all([child.exited, spending]);
    expect(['loading', 'indexing', 'catching_up', 'swapping']).toContain(phase);
    const shadow = shadowSchemaOf(id);
    expect(await shadowSchemas()).toEqual([shadow]);

    child = await killed.start();
    await retrySpends(child, service, spends);
    // The killed session's statement may still run in PostgreSQL (holding the rebuild's lock) until it ends.
    await waitUntil(async () => ((await projectionStatus(child)).rebuild as Record<string, unknown> | null)?.interrupted === true);
    expect(await projectionStatus(child)).toMatchObject({ rebuild: { id, interrupted: true } });
    await expectExact(child, accounts, spends);

    const again = await call(child, admin, 'POST', '/v1/admin/projections/token_accounts/rebuild');
    expect(again.status).toBe(202);
    expect(await shadowSchemas()).not.toContain(shadow);
    const interrupted = await call(child, admin, 'GET', `/v1/admin/projections/token_accounts/rebuilds/${id}`);
    expect(interrupted.body).toMatchObject({ phase: 'failed', interrupted: false, error: expect.stringContaining('interrupted during') });
    await waitUntil(async () => (await call(child, admin, 'GET', `/v1/admin/projections/token_accounts/rebuilds/${again.body.id as string}`)).body.phase === 'completed', 120_000);
    // The completed rebuild drops its own schemas just after the swap.
    await waitUntil(async () => (await shadowSchemas()).length === 0);
    await expectExact(child, accounts, spends);
    for (const userId of history.slice(0, 3)) {
      const verify = await call(child, auditor, 'GET', `/v1/audit/accounts/${userId}/verify`);
      expect(verify.body).toMatchObject({ ok: true, readModels: { differences: [], replayError: null } });
    }
    process.stdout.write(`rebuild crash: killed in ${phase}; ${spends.length} keyed spends, each applied once\n`);
  }, 240_000);

  it("one account's rebuild: its rows stay as they were, the spends racing it apply once, and it can be rebuilt again", async () => {
    let child = await killed.start();
    const [userId] = await seeded(child, async (store) => [(await seedLongAccount(store, 20_000, 11)).userId]);
    const long = userId as string;
    const before = await call(child, service, 'GET', `/v1/accounts/${long}/balance`);
    const spendsOn = randomUUID();
    await fund(child, spendsOn);
    // The long account gets funds of its own too, so spends on it never run short.
    await fund(child, long);
    const spends: KeyedSpend[] = [];
    const spending = keyedSpendsUntilGone(child, service, [long, spendsOn], SPENDERS, spends);

    // The first history row's version: a rebuild that committed would have written it again.
    const firstRow = async () =>
      (await killed.database().pool.query<{ xmin: string }>('SELECT xmin::text FROM token_transactions WHERE user_id = $1 ORDER BY stream_revision LIMIT 1', [long])).rows[0]?.xmin;
    const versionBefore = await firstRow();
    let answered = false;
    const rebuilding = call(child, admin, 'POST', `/v1/admin/accounts/${long}/rebuild`).then(
      () => {
        answered = true;
      },
      () => undefined,
    );
    // Inside the rebuild's transaction, its rows cleared and its history being written again (the
    // rebuild's own statement, not an append's function; an append to the account waits meanwhile).
    await waitUntil(async () => {
      const activity = await killed.database().pool.query<{ count: string }>(
        `SELECT count(*)::text AS count FROM pg_stat_activity WHERE datname = current_database() AND state = 'active' AND query ~* '^\\s*INSERT INTO token_transactions'`,
      );
      return answered || Number(activity.rows[0]?.count) > 0;
    });
    child.process.kill('SIGKILL');
    await Promise.all([child.exited, spending, rebuilding]);
    expect(answered).toBe(false);

    child = await killed.start();
    // Rolled back: the rows are the versions from before the rebuild.
    expect(await firstRow()).toBe(versionBefore);
    await retrySpends(child, service, spends);
    const startBalance = Number(before.body.balance) + FUNDS;
    const spentOnLong = spends.filter((spend) => spend.userId === long).length;
    expect((await call(child, service, 'GET', `/v1/accounts/${long}/balance`)).body).toMatchObject({ balance: startBalance - spentOnLong, held: 0 });
    await expectExact(child, [spendsOn], spends);
    const verify = await call(child, auditor, 'GET', `/v1/audit/accounts/${long}/verify`);
    expect(verify.body).toMatchObject({ ok: true, readModels: { differences: [], replayError: null } });

    const rebuilt = await call(child, admin, 'POST', `/v1/admin/accounts/${long}/rebuild`);
    expect(rebuilt.status).toBe(200);
    const events = await killed.database().pool.query<{ count: string }>('SELECT count(*)::text AS count FROM events WHERE stream_id = $1', [`token-account-${long}`]);
    expect(rebuilt.body).toMatchObject({ userId: long, projections: [{ name: 'token_accounts', eventsApplied: Number(events.rows[0]?.count) }] });
    expect((await call(child, service, 'GET', `/v1/accounts/${long}/balance`)).body).toMatchObject({ balance: startBalance - spentOnLong, held: 0 });
    process.stdout.write(`account rebuild crash: ${spends.length} keyed spends, each applied once\n`);
  }, 240_000);
});
