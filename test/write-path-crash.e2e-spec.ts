import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { buildService, startServiceOn, stopServices, type ServiceProcess } from './support/service-process.js';
import { testToken } from './support/test-app.js';
import { createTestDatabase, type TestDatabase } from './support/test-database.js';

/**
 * The built service killed with SIGKILL while 16 clients spend on 8 accounts with Idempotency-Keys:
 * a batch of appends and the read-model rows committing with it may be cut at any statement. After
 * each restart every unanswered request is retried with its key, as a client does. At the end every
 * key has spent exactly once: balances, events and rows agree exactly, and the auditor's verify
 * finds no difference between replay and read models.
 */
const ACCOUNTS = 8;
const FUNDS = 100_000;
const CLIENTS = 16;
const KILLS = 3;

let database: TestDatabase;
let dataDir: string;
let service: string;
let auditor: string;
let running: ServiceProcess | undefined;

beforeAll(async () => {
  await buildService();
  database = await createTestDatabase();
  dataDir = await mkdtemp(path.join(tmpdir(), 'token-ledger-write-crash-'));
  service = `Bearer ${await testToken('service')}`;
  auditor = `Bearer ${await testToken('auditor')}`;
}, 240_000);

afterAll(async () => {
  await stopServices([running]);
  await database?.drop();
  await rm(dataDir, { recursive: true, force: true });
});

async function start(): Promise<ServiceProcess> {
  // A key held by the killed process is taken over after a second, not the default minute.
  running = await startServiceOn(database.url, dataDir, { IDEMPOTENCY_LOCK_SECONDS: '1' });
  return running;
}

type Spend = { readonly key: string; readonly userId: string };
type Answer = { readonly status: number; readonly body: Record<string, unknown> };

async function post(child: ServiceProcess, route: string, body: unknown, key?: string): Promise<Answer> {
  const response = await fetch(`${child.url}${route}`, {
    method: 'POST',
    headers: { authorization: service, 'content-type': 'application/json', ...(key === undefined ? {} : { 'idempotency-key': key }) },
    body: JSON.stringify(body),
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

/** Sends `spend` until it is answered 201; refusals that say "retry" (key in progress, conflict) are retried. Undefined once the process is gone. */
async function settle(child: ServiceProcess, spend: Spend): Promise<Answer | undefined> {
  for (;;) {
    let answer: Answer;
    try {
      answer = await post(child, `/v1/accounts/${spend.userId}/usage`, { amount: 1 }, spend.key);
    } catch {
      return undefined; // the connection died with the process: unanswered
    }
    if (answer.status === 201) return answer;
    if (answer.body.code !== 'IDEMPOTENCY_KEY_IN_PROGRESS' && answer.body.code !== 'CONCURRENCY_CONFLICT') throw new Error(`unexpected answer ${JSON.stringify(answer)}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** Clients spend new keys until the process dies; returns the keys sent and those answered. */
async function spendUntilKilled(child: ServiceProcess, killAfterMs: number): Promise<{ sent: Spend[]; answered: Set<string> }> {
  const sent: Spend[] = [];
  const answered = new Set<string>();
  let alive = true;
  const killer = setTimeout(() => {
    alive = false;
    child.process.kill('SIGKILL');
  }, killAfterMs);
  await Promise.all(
    Array.from({ length: CLIENTS }, async (_, client) => {
      for (let index = 0; alive; index += 1) {
        const spend = { key: randomUUID(), userId: accounts[(client + index) % ACCOUNTS] as string };
        sent.push(spend);
        if ((await settle(child, spend)) === undefined) return;
        answered.add(spend.key);
      }
    }),
  );
  clearTimeout(killer);
  await child.exited;
  return { sent, answered };
}

const accounts: string[] = Array.from({ length: ACCOUNTS }, () => randomUUID());

describe('the write path survives SIGKILL at any moment', () => {
  it('applies every keyed spend exactly once across kills and restarts, and the read models equal the replay', async () => {
    let child = await start();
    for (const userId of accounts) expect((await post(child, `/v1/accounts/${userId}/purchases`, { paymentId: randomUUID(), amount: FUNDS })).status).toBe(201);

    const all: Spend[] = [];
    for (let kill = 0; kill < KILLS; kill += 1) {
      const { sent, answered } = await spendUntilKilled(child, 400 + kill * 300);
      all.push(...sent);
      child = await start();
      // Every request the dead process left unanswered, again with its key.
      for (const spend of sent.filter((candidate) => !answered.has(candidate.key))) expect((await settle(child, spend))?.status).toBe(201);
    }

    const expected = new Map(accounts.map((userId) => [userId, FUNDS]));
    for (const spend of all) expected.set(spend.userId, (expected.get(spend.userId) ?? 0) - 1);
    for (const userId of accounts) {
      const balance = await fetch(`${child.url}/v1/accounts/${userId}/balance`, { headers: { authorization: service } });
      expect(await balance.json()).toMatchObject({ userId, balance: expected.get(userId), held: 0 });
      const used = await database.pool.query<{ count: string }>("SELECT count(*) FROM events WHERE stream_id = $1 AND event_type = 'TokensUsed'", [`token-account-${userId}`]);
      const rows = await database.pool.query<{ count: string }>("SELECT count(*) FROM token_transactions WHERE user_id = $1 AND transaction_type = 'usage'", [userId]);
      const spent = FUNDS - (expected.get(userId) ?? 0);
      expect([Number(used.rows[0]?.count), Number(rows.rows[0]?.count)]).toEqual([spent, spent]);
      const verify = await fetch(`${child.url}/v1/audit/accounts/${userId}/verify`, { headers: { authorization: auditor } });
      expect(await verify.json()).toMatchObject({ ok: true, readModels: { differences: [], replayError: null } });
    }
    process.stdout.write(`write-path crash: ${all.length} keyed spends over ${KILLS} kills, each applied once\n`);
  }, 180_000);
});
