import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { LEADERSHIP_LOCK_NAMESPACE } from '@app/database';
import { buildService, startServiceOn, stopServices, type ServiceProcess } from './support/service-process.js';
import { testToken } from './support/test-app.js';
import { createTestDatabase, type TestDatabase } from './support/test-database.js';

/**
 * Two processes of the built service on one DATABASE_URL, as a scaled-out deployment runs them:
 * commands from both decide on one ledger, and each background worker runs in exactly one of them
 * (advisory-lock leadership) until that process dies, when the other takes it over.
 */
const WORKERS = ['credit-expiry', 'idempotency-purge', 'payment-expiry', 'payment-reconciliation', 'projection:token_accounts'];
const TAKEOVER_MS_MAX = 5_000;
const SPEND_ATTEMPTS_MAX = 10;

let database: TestDatabase;
let dataDir: string;
let first: ServiceProcess;
let second: ServiceProcess;
let service: string;
let admin: string;

beforeAll(async () => {
  await buildService();
  database = await createTestDatabase();
  dataDir = await mkdtemp(path.join(tmpdir(), 'token-ledger-multi-process-'));
  service = `Bearer ${await testToken('service')}`;
  admin = `Bearer ${await testToken('admin')}`;
  first = await startProcess();
  // The first leads every worker before the second starts, so "the leader" below is one process.
  await waitFor(async () => sameKeys(await leaders(), WORKERS.map((worker) => [worker, [first.process.pid]])), 10_000);
  second = await startProcess();
}, 240_000);

afterAll(async () => {
  await stopServices([first, second]);
  await database?.drop();
  await rm(dataDir, { recursive: true, force: true });
});

function startProcess(): Promise<ServiceProcess> {
  return startServiceOn(database.url, dataDir);
}

/** Which OS process holds each worker's leadership lock, as PostgreSQL sees it (from the session's application name). */
async function leaders(): Promise<Map<string, number[]>> {
  const result = await database.pool.query<{ application_name: string }>(
    `SELECT activity.application_name FROM pg_locks locks JOIN pg_stat_activity activity ON activity.pid = locks.pid
      WHERE locks.locktype = 'advisory' AND locks.granted AND locks.objsubid = 2 AND locks.classid = hashtext($1)::oid
        AND locks.database = (SELECT oid FROM pg_database WHERE datname = current_database())`,
    [LEADERSHIP_LOCK_NAMESPACE],
  );
  const byWorker = new Map<string, number[]>();
  for (const { application_name: name } of result.rows) {
    const match = /^token-ledger leader (\S+) pid (\d+)$/.exec(name);
    if (match === null) throw new Error(`unexpected leadership session ${name}`);
    const [, worker = '', pid = ''] = match;
    byWorker.set(worker, [...(byWorker.get(worker) ?? []), Number(pid)].sort());
  }
  return byWorker;
}

function sameKeys(actual: Map<string, number[]>, expected: [string, (number | undefined)[]][]): boolean {
  return JSON.stringify([...actual].sort()) === JSON.stringify(expected);
}

async function waitFor(condition: () => Promise<boolean>, timeoutMs: number): Promise<number> {
  const startedAt = Date.now();
  while (!(await condition())) {
    if (Date.now() - startedAt > timeoutMs) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return Date.now() - startedAt;
}

type Answer = { status: number; body: Record<string, unknown> };

async function call(child: ServiceProcess, method: string, route: string, body?: unknown, authorization = service): Promise<Answer> {
  const response = await fetch(`${child.url}${route}`, {
    method,
    headers: { authorization, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

async function projectionStates(child: ServiceProcess): Promise<unknown[]> {
  const status = await call(child, 'GET', '/v1/admin/projections', undefined, admin);
  return (status.body.data as { name: string; state: string }[]).map((projection) => [projection.name, projection.state]);
}

/**
 * One usage of 1 token, retried as a client must when answered 409 CONCURRENCY_CONFLICT (the stream
 * kept changing under the command's bounded retries; nothing was written). Counts those answers.
 */
async function spend(child: ServiceProcess, userId: string, conflicts: { count: number }): Promise<Answer> {
  for (let attempt = 1; ; attempt += 1) {
    const answer = await call(child, 'POST', `/v1/accounts/${userId}/usage`, { amount: 1 });
    if (answer.body.code !== 'CONCURRENCY_CONFLICT' || attempt === SPEND_ATTEMPTS_MAX) return answer;
    conflicts.count += 1;
  }
}

async function count(sql: string, values: unknown[]): Promise<number> {
  const result = await database.pool.query<{ count: string }>(sql, values);
  return Number(result.rows[0]?.count);
}

describe('two processes of the service on one database', () => {
  it('leads each worker in exactly one process; the other reports standby', async () => {
    expect([...(await leaders())].sort()).toEqual(WORKERS.map((worker) => [worker, [first.process.pid]]));
    // A write through the follower: the leader projects it (a runner reports running once it has applied a batch).
    const userId = randomUUID();
    const purchase = await call(second, 'POST', `/v1/accounts/${userId}/purchases`, { paymentId: randomUUID(), amount: 10 });
    expect([purchase.status, purchase.body.readModelUpToDate]).toEqual([201, true]);
    await waitFor(async () => JSON.stringify(await projectionStates(first)) === JSON.stringify([['token_accounts', 'running']]), 10_000);
    expect(await projectionStates(second)).toEqual([['token_accounts', 'standby']]);
  });

  it('ends racing spends through both processes exactly: 100 of 150 succeed, the rest are refused, balance 0', async () => {
    const userId = randomUUID();
    const funded = await call(first, 'POST', `/v1/accounts/${userId}/purchases`, { paymentId: randomUUID(), amount: 100 });
    expect(funded.status).toBe(201);

    const conflicts = { count: 0 };
    const spends = await Promise.all(Array.from({ length: 150 }, (_, index) => spend(index % 2 === 0 ? first : second, userId, conflicts)));
    process.stdout.write(`racing spends: ${conflicts.count} answers of 409 CONCURRENCY_CONFLICT were retried\n`);

    const succeeded = spends.filter((spend) => spend.status === 201);
    const refused = spends.filter((spend) => spend.status !== 201);
    expect(succeeded).toHaveLength(100);
    expect(refused.map((spend) => [spend.status, spend.body.code])).toEqual(Array.from({ length: 50 }, () => [409, 'INSUFFICIENT_BALANCE']));
    expect(succeeded.map((spend) => spend.body.balance).sort((a, b) => Number(a) - Number(b))).toEqual(Array.from({ length: 100 }, (_, index) => index));
    for (const child of [first, second]) expect((await call(child, 'GET', `/v1/accounts/${userId}/balance`)).body).toEqual({ userId, balance: 0, held: 0, available: 0, nextExpiry: null });
    expect(await count(`SELECT count(*)::text AS count FROM events WHERE stream_id = $1 AND event_type = 'TokensUsed'`, [`token-account-${userId}`])).toBe(100);
    expect(await count(`SELECT count(*)::text AS count FROM token_transactions WHERE user_id = $1 AND transaction_type = 'usage'`, [userId])).toBe(100);
  }, 60_000);

  it('ends racing holds through both processes exactly: 20 of 50 on a balance of 20, then each settled or released once through either', async () => {
    const userId = randomUUID();
    expect((await call(first, 'POST', `/v1/accounts/${userId}/purchases`, { paymentId: randomUUID(), amount: 20 })).status).toBe(201);
    const conflicts = { count: 0 };
    const placeHold = async (child: ServiceProcess): Promise<Answer> => {
      for (let attempt = 1; ; attempt += 1) {
        const answer = await call(child, 'POST', `/v1/accounts/${userId}/holds`, { amount: 1 });
        if (answer.body.code !== 'CONCURRENCY_CONFLICT' || attempt === SPEND_ATTEMPTS_MAX) return answer;
        conflicts.count += 1;
      }
    };
    const holds = await Promise.all(Array.from({ length: 50 }, (_, index) => placeHold(index % 2 === 0 ? first : second)));
    const placed = holds.filter((answer) => answer.status === 201);
    expect(placed).toHaveLength(20);
    expect(holds.filter((answer) => answer.status !== 201).map((answer) => answer.body.code)).toEqual(Array.from({ length: 30 }, () => 'INSUFFICIENT_AVAILABLE_BALANCE'));
    // Settle half (1 token each) and release the rest, each through the other process than its neighbour, twice over: the second attempt is refused.
    const ends = await Promise.all(
      placed.flatMap((answer, index) =>
        [first, second].map((child) =>
          index % 2 === 0
            ? call(child, 'POST', `/v1/accounts/${userId}/holds/${String(answer.body.holdId)}/settle`, { amount: 1 })
            : call(child, 'POST', `/v1/accounts/${userId}/holds/${String(answer.body.holdId)}/release`),
        ),
      ),
    );
    expect(ends.filter((answer) => answer.status === 200)).toHaveLength(20);
    // Every other answer a 409 naming why: the hold ended by its twin, or the twin's append first.
    const refusals = ends.filter((answer) => answer.status !== 200);
    expect(refusals).toHaveLength(20);
    for (const refusal of refusals) expect([refusal.status, refusal.body.code]).toEqual([409, expect.stringMatching(/^(HOLD_NOT_ACTIVE|CONCURRENCY_CONFLICT)$/)]);
    for (const child of [first, second]) expect((await call(child, 'GET', `/v1/accounts/${userId}/balance`)).body).toEqual({ userId, balance: 10, held: 0, available: 10, nextExpiry: null });
    expect(await count(`SELECT count(*)::text AS count FROM events WHERE stream_id = $1 AND event_type IN ('HoldSettled', 'HoldReleased')`, [`token-account-${userId}`])).toBe(20);
  }, 60_000);

  it('hands every worker to the survivor within seconds when the leader is killed, and writes through it reach the read models', async () => {
    const killedAt = Date.now();
    first.process.kill('SIGKILL');
    await first.exited;
    const takeoverMs = await waitFor(async () => sameKeys(await leaders(), WORKERS.map((worker) => [worker, [second.process.pid]])), TAKEOVER_MS_MAX);
    process.stdout.write(`takeover after SIGKILL: every worker led by the survivor ${Date.now() - killedAt} ms after the kill (${takeoverMs} ms after the killed process exited)\n`);

    const userId = randomUUID();
    const purchase = await call(second, 'POST', `/v1/accounts/${userId}/purchases`, { paymentId: randomUUID(), amount: 25 });
    const usage = await call(second, 'POST', `/v1/accounts/${userId}/usage`, { amount: 5 });
    expect([purchase.status, purchase.body.readModelUpToDate, usage.status, usage.body.readModelUpToDate]).toEqual([201, true, 201, true]);
    expect((await call(second, 'GET', `/v1/accounts/${userId}/balance`)).body).toEqual({ userId, balance: 20, held: 0, available: 20, nextExpiry: null });
    const history = await call(second, 'GET', `/v1/accounts/${userId}/transactions`);
    expect((history.body.data as { amount: number; balanceAfter: number }[]).map((row) => [row.amount, row.balanceAfter])).toEqual([
      [-5, 20],
      [25, 25],
    ]);
    await waitFor(async () => JSON.stringify(await projectionStates(second)) === JSON.stringify([['token_accounts', 'running']]), 10_000);
  }, 60_000);
});
