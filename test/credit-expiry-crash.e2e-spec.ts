import { randomUUID } from 'node:crypto';
import { killableService } from './support/killable-service.js';
import { keyedSpendsUntilGone, retrySpends, type KeyedSpend, type ServiceProcess } from './support/service-process.js';
import { testToken } from './support/test-app.js';

/**
 * The built service killed with SIGKILL in the middle of a credit expiry run. Every account has a
 * purchase of 1,000, a hold of 30 on it and a grant of 100, both expiring, all due before the job
 * first runs (it is off while they are made). The job then walks more than two pages of due
 * accounts; it is killed once a third of them are recorded and again at two thirds, while clients
 * spend with Idempotency-Keys on ten of the accounts (each spend's own append records the account's
 * expiries first, so those appends and the job's race on the same streams). After the last restart
 * every account has exactly one `HoldExpired` and one `LotExpired`, whoever recorded them, and
 * exactly what the spends took is gone besides the grant: read models, history and the auditor's
 * verify agree.
 */
const ACCOUNTS = 250;
const RACED = 10;
const CLIENTS = 6;
const FUNDS = 1_000;
const GRANT = 100;
const HELD = 30;
const SETUP_CLIENTS = 8;

const killed = killableService('credit-expiry-crash', { CREDIT_EXPIRY_JOB_INTERVAL_MS: '100' });
let service: string;
let admin: string;
let auditor: string;

beforeAll(async () => {
  service = `Bearer ${await testToken('service')}`;
  admin = `Bearer ${await testToken('admin')}`;
  auditor = `Bearer ${await testToken('auditor')}`;
});

const accounts: string[] = Array.from({ length: ACCOUNTS }, () => randomUUID());

async function post(child: ServiceProcess, authorization: string, route: string, body: unknown, status: number): Promise<Record<string, unknown>> {
  const response = await fetch(`${child.url}${route}`, { method: 'POST', headers: { authorization, 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const answer = (await response.json()) as Record<string, unknown>;
  if (response.status !== status) throw new Error(`${route}: ${response.status} ${JSON.stringify(answer)}`);
  return answer;
}

/** Accounts whose hold's expiry is recorded, in the events table. */
async function recorded(): Promise<number> {
  const rows = await killed.database().pool.query<{ count: string }>("SELECT count(DISTINCT stream_id) AS count FROM events WHERE event_type = 'HoldExpired'");
  return Number(rows.rows[0]?.count);
}

/** Resolves once `count` accounts are recorded expired (polled every 5 ms). */
async function untilRecorded(count: number, timeoutMs: number): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const now = await recorded();
    if (now >= count || Date.now() > deadline) return now;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

describe('the credit expiry job survives SIGKILL in the middle of a run', () => {
  it('records each due hold and lot exactly once across kills and restarts, racing keyed spends, and the read models equal the replay', async () => {
    let child = await killed.start({ CREDIT_EXPIRY_JOB_ENABLED: 'false' });
    // Each hold first, so it draws on the purchase (a grant expiring sooner would be drawn first);
    // each grant expires 3 s after it is made. Once the last is due, all are.
    let lastExpiry = 0;
    let next = 0;
    await Promise.all(
      Array.from({ length: SETUP_CLIENTS }, async () => {
        for (let index = next++; index < ACCOUNTS; index = next++) {
          const userId = accounts[index] as string;
          await post(child, service, `/v1/accounts/${userId}/purchases`, { paymentId: randomUUID(), amount: FUNDS }, 201);
          await post(child, service, `/v1/accounts/${userId}/holds`, { amount: HELD, expiresInSeconds: 1 }, 201);
          const expiresAt = Date.now() + 3_000;
          lastExpiry = Math.max(lastExpiry, expiresAt);
          await post(child, admin, `/v1/admin/accounts/${userId}/grants`, { amount: GRANT, reason: 'Expiring promotion', expiresAt: new Date(expiresAt).toISOString() }, 201);
        }
      }),
    );
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, lastExpiry + 200 - Date.now())));
    child.process.kill('SIGKILL');
    await child.exited;
    expect(await recorded()).toBe(0);

    const spends: KeyedSpend[] = [];
    for (const share of [1 / 3, 2 / 3]) {
      child = await killed.start();
      const spending = keyedSpendsUntilGone(child, service, accounts.slice(0, RACED), CLIENTS, spends);
      const reached = await untilRecorded(Math.ceil(ACCOUNTS * share), 60_000);
      child.process.kill('SIGKILL');
      await Promise.all([child.exited, spending]);
      // Killed inside the run: some accounts recorded, not all.
      expect(reached).toBeGreaterThanOrEqual(Math.ceil(ACCOUNTS * share));
      expect(await recorded()).toBeLessThan(ACCOUNTS);
    }

    child = await killed.start();
    await retrySpends(child, service, spends);
    expect(await untilRecorded(ACCOUNTS, 60_000)).toBe(ACCOUNTS);

    const pool = killed.database().pool;
    const expiries = await pool.query<{ event_type: string; count: string; streams: string }>(
      "SELECT event_type, count(*)::text AS count, count(DISTINCT stream_id)::text AS streams FROM events WHERE event_type IN ('HoldExpired', 'LotExpired') GROUP BY event_type ORDER BY event_type",
    );
    expect(expiries.rows).toEqual([
      { event_type: 'HoldExpired', count: String(ACCOUNTS), streams: String(ACCOUNTS) },
      { event_type: 'LotExpired', count: String(ACCOUNTS), streams: String(ACCOUNTS) },
    ]);
    const holds = await pool.query<{ status: string; count: string }>('SELECT status, count(*)::text AS count FROM token_holds GROUP BY status');
    expect(holds.rows).toEqual([{ status: 'expired', count: String(ACCOUNTS) }]);
    const grants = await pool.query<{ status: string; remaining: string; count: string }>("SELECT status, remaining::text, count(*)::text AS count FROM token_lots WHERE source = 'grant' GROUP BY status, remaining");
    expect(grants.rows).toEqual([{ status: 'expired', remaining: '0', count: String(ACCOUNTS) }]);
    const rows = await pool.query<{ amount: string; count: string }>("SELECT amount::text, count(*)::text AS count FROM token_transactions WHERE transaction_type = 'expiry' GROUP BY amount");
    expect(rows.rows).toEqual([{ amount: String(-GRANT), count: String(ACCOUNTS) }]);

    for (const userId of accounts) {
      const spent = spends.filter((spend) => spend.userId === userId).length;
      const balance = await fetch(`${child.url}/v1/accounts/${userId}/balance`, { headers: { authorization: service } });
      expect(await balance.json()).toMatchObject({ userId, balance: FUNDS - spent, held: 0, available: FUNDS - spent, nextExpiry: null });
      const used = await pool.query<{ count: string }>("SELECT count(*)::text AS count FROM events WHERE stream_id = $1 AND event_type = 'TokensUsed'", [`token-account-${userId}`]);
      expect(Number(used.rows[0]?.count)).toBe(spent);
    }
    for (const userId of [...accounts.slice(0, RACED), accounts[ACCOUNTS - 1] as string]) {
      const verify = await fetch(`${child.url}/v1/audit/accounts/${userId}/verify`, { headers: { authorization: auditor } });
      expect(await verify.json()).toMatchObject({ ok: true, readModels: { differences: [], replayError: null } });
    }
    process.stdout.write(`credit expiry crash: ${ACCOUNTS} accounts expired over 2 kills mid-run, ${spends.length} keyed spends racing, each applied once\n`);
  }, 240_000);
});
