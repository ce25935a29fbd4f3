import { randomUUID } from 'node:crypto';
import { killableService } from './support/killable-service.js';
import { keyedUntilAnswered, loopUntilKilled, type ServiceProcess } from './support/service-process.js';
import { testToken } from './support/test-app.js';

/**
 * The built service killed with SIGKILL while clients reserve and settle on a few accounts with
 * Idempotency-Keys (a hold of 3, then a settle of 2, each keyed). After each restart every
 * unanswered request is retried with its key, and every hold answered or retried is settled. At the
 * end every pair has spent exactly 2 and released 1: balances, held totals, holds and rows agree, and
 * the auditor's verify finds no difference between replay and read models.
 */
const ACCOUNTS = 4;
const FUNDS = 100_000;
const CLIENTS = 8;
const KILLS = 2;

const killed = killableService('holds-crash', { IDEMPOTENCY_LOCK_SECONDS: '1' });
const start = (): Promise<ServiceProcess> => killed.start();
let service: string;
let auditor: string;

beforeAll(async () => {
  service = `Bearer ${await testToken('service')}`;
  auditor = `Bearer ${await testToken('auditor')}`;
});

type Pair = { readonly userId: string; readonly holdKey: string; readonly settleKey: string; holdId?: string; settled: boolean };

/** Holds then settles `pair`, as far as the process lets it; false when the process died first. */
async function complete(child: ServiceProcess, pair: Pair): Promise<boolean> {
  if (pair.holdId === undefined) {
    const held = await keyedUntilAnswered(child, service, `/v1/accounts/${pair.userId}/holds`, { amount: 3 }, pair.holdKey, 201);
    if (held === undefined) return false;
    pair.holdId = held.body.holdId as string;
  }
  if (!pair.settled) {
    const settled = await keyedUntilAnswered(child, service, `/v1/accounts/${pair.userId}/holds/${pair.holdId}/settle`, { amount: 2 }, pair.settleKey, 200);
    if (settled === undefined) return false;
    pair.settled = true;
  }
  return true;
}


const accounts: string[] = Array.from({ length: ACCOUNTS }, () => randomUUID());

describe('holds and settles survive SIGKILL at any moment', () => {
  it('applies every keyed hold and settle exactly once across kills and restarts, and the read models equal the replay', async () => {
    let child = await start();
    for (const userId of accounts) {
      const funded = await fetch(`${child.url}/v1/accounts/${userId}/purchases`, {
        method: 'POST',
        headers: { authorization: service, 'content-type': 'application/json' },
        body: JSON.stringify({ paymentId: randomUUID(), amount: FUNDS }),
      });
      expect(funded.status).toBe(201);
    }
    const pairs: Pair[] = [];
    for (let kill = 0; kill < KILLS; kill += 1) {
      await loopUntilKilled(
        child,
        500 + kill * 300,
        CLIENTS,
        pairs,
        (client, index): Pair => ({ userId: accounts[(client + index) % ACCOUNTS] as string, holdKey: randomUUID(), settleKey: randomUUID(), settled: false }),
        (pair) => complete(child, pair),
      );
      child = await start();
      for (const pair of pairs) expect(await complete(child, pair)).toBe(true);
    }

    for (const userId of accounts) {
      const mine = pairs.filter((pair) => pair.userId === userId);
      const balance = await fetch(`${child.url}/v1/accounts/${userId}/balance`, { headers: { authorization: service } });
      expect(await balance.json()).toMatchObject({ userId, balance: FUNDS - 2 * mine.length, held: 0, available: FUNDS - 2 * mine.length });
      const holds = await killed.database().pool.query<{ status: string; count: string }>('SELECT status, count(*)::text AS count FROM token_holds WHERE user_id = $1 GROUP BY status', [userId]);
      expect(holds.rows).toEqual([{ status: 'settled', count: String(mine.length) }]);
      const events = await killed.database().pool.query<{ count: string }>("SELECT count(*) FROM events WHERE stream_id = $1 AND event_type IN ('TokensHeld', 'HoldSettled', 'TokensUsed')", [`token-account-${userId}`]);
      // One TokensHeld and one HoldSettled (which also debits, ADR 0028) per pair: none twice.
      expect(Number(events.rows[0]?.count)).toBe(2 * mine.length);
      const verify = await fetch(`${child.url}/v1/audit/accounts/${userId}/verify`, { headers: { authorization: auditor } });
      expect(await verify.json()).toMatchObject({ ok: true, readModels: { differences: [], replayError: null } });
    }
    process.stdout.write(`holds crash: ${pairs.length} keyed hold + settle pairs over ${KILLS} kills, each applied once\n`);
  }, 180_000);
});
