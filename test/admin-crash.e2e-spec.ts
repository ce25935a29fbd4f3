import { randomUUID } from 'node:crypto';
import { killableService } from './support/killable-service.js';
import { keyedUntilAnswered, loopUntilKilled, type ServiceProcess } from './support/service-process.js';
import { testToken } from './support/test-app.js';

/**
 * The built service killed with SIGKILL while admin clients work on a few accounts with
 * Idempotency-Keys, one unit after another: a grant of 10 (drawn last: priority 1,000,000), a credit
 * adjustment of 5, a debit adjustment of 3, a hold of 4 and its release, then the grant's void. After
 * each restart every unanswered request is retried with its key, and every unit is finished. Each
 * unit leaves the balance 2 higher, whatever the interleaving: the debits and the hold draw on the
 * purchase, so each void takes its whole grant back. At the end balances, events, holds, lots and
 * the auditor's verify say each request was applied exactly once.
 */
const ACCOUNTS = 4;
const FUNDS = 100_000;
const CLIENTS = 8;
const KILLS = 2;
const GRANT_PRIORITY = 1_000_000;

const killed = killableService('admin-crash', { IDEMPOTENCY_LOCK_SECONDS: '1' });
const start = (): Promise<ServiceProcess> => killed.start();
let admin: string;
let auditor: string;

beforeAll(async () => {
  admin = `Bearer ${await testToken('admin')}`;
  auditor = `Bearer ${await testToken('auditor')}`;
});

type Step = 'grant' | 'credit' | 'debit' | 'hold' | 'release' | 'void';
const STEPS: readonly Step[] = ['grant', 'credit', 'debit', 'hold', 'release', 'void'];
type Unit = { readonly userId: string; readonly keys: Readonly<Record<Step, string>>; done: number; lotId?: string; holdId?: string };

/** The request of a unit's step: route, body and the status that answers it. */
function requestOf(unit: Unit, step: Step): { readonly route: string; readonly body: unknown; readonly ok: number } {
  const account = `/v1/accounts/${unit.userId}`;
  const adminAccount = `/v1/admin/accounts/${unit.userId}`;
  switch (step) {
    case 'grant':
      return { route: `${adminAccount}/grants`, body: { amount: 10, reason: 'Crash test grant', priority: GRANT_PRIORITY }, ok: 201 };
    case 'credit':
      return { route: `${adminAccount}/adjustments`, body: { amount: 5, reason: 'Crash test credit' }, ok: 201 };
    case 'debit':
      return { route: `${adminAccount}/adjustments`, body: { amount: -3, reason: 'Crash test debit' }, ok: 201 };
    case 'hold':
      return { route: `${account}/holds`, body: { amount: 4 }, ok: 201 };
    case 'release':
      return { route: `${account}/holds/${String(unit.holdId)}/release`, body: {}, ok: 200 };
    case 'void':
      return { route: `${adminAccount}/grants/${String(unit.lotId)}/void`, body: { reason: 'Crash test void' }, ok: 200 };
  }
}

/** Runs the unit's steps from where it stopped, as far as the process lets it; false when the process died first. */
async function complete(child: ServiceProcess, unit: Unit): Promise<boolean> {
  while (unit.done < STEPS.length) {
    const step = STEPS[unit.done] as Step;
    const { route, body, ok } = requestOf(unit, step);
    const answer = await keyedUntilAnswered(child, admin, route, body, unit.keys[step], ok);
    if (answer === undefined) return false;
    if (step === 'grant') unit.lotId = answer.body.lotId as string;
    if (step === 'hold') unit.holdId = answer.body.holdId as string;
    unit.done += 1;
  }
  return true;
}

const accounts: string[] = Array.from({ length: ACCOUNTS }, () => randomUUID());


describe('admin corrections, grants, voids and releases survive SIGKILL at any moment', () => {
  it('applies every keyed request exactly once across kills and restarts, and the read models equal the replay', async () => {
    let child = await start();
    for (const userId of accounts) {
      const funded = await fetch(`${child.url}/v1/accounts/${userId}/purchases`, {
        method: 'POST',
        headers: { authorization: admin, 'content-type': 'application/json' },
        body: JSON.stringify({ paymentId: randomUUID(), amount: FUNDS }),
      });
      expect(funded.status).toBe(201);
    }
    const units: Unit[] = [];
    for (let kill = 0; kill < KILLS; kill += 1) {
      await loopUntilKilled(
        child,
        600 + kill * 300,
        CLIENTS,
        units,
        (client, index): Unit => ({ userId: accounts[(client + index) % ACCOUNTS] as string, keys: Object.fromEntries(STEPS.map((step) => [step, randomUUID()])) as Record<Step, string>, done: 0 }),
        (unit) => complete(child, unit),
      );
      // The kill cut units short (at most one a client: one whose last unit ended as the kill fell has none), some after
      // answered steps: their retries are what this tests.
      const unfinished = units.filter((unit) => unit.done < STEPS.length).length;
      expect(unfinished).toBeGreaterThan(0);
      expect(unfinished).toBeLessThanOrEqual(CLIENTS);
      child = await start();
      for (const unit of units) expect(await complete(child, unit)).toBe(true);
    }
    expect(units.length).toBeGreaterThan(CLIENTS * KILLS);

    for (const userId of accounts) {
      const mine = units.filter((unit) => unit.userId === userId).length;
      const balance = await fetch(`${child.url}/v1/accounts/${userId}/balance`, { headers: { authorization: admin } });
      expect(await balance.json()).toEqual({ userId, balance: FUNDS + 2 * mine, held: 0, available: FUNDS + 2 * mine, nextExpiry: null });
      const events = await killed.database().pool.query<{ event_type: string; count: string }>(
        "SELECT event_type, count(*)::text AS count FROM events WHERE stream_id = $1 AND event_type <> 'TokensPurchased' GROUP BY event_type ORDER BY event_type",
        [`token-account-${userId}`],
      );
      expect(events.rows).toEqual([
        { event_type: 'GrantVoided', count: String(mine) },
        { event_type: 'HoldReleased', count: String(mine) },
        { event_type: 'TokensAdjusted', count: String(2 * mine) },
        { event_type: 'TokensGranted', count: String(mine) },
        { event_type: 'TokensHeld', count: String(mine) },
      ]);
      const voided = await killed.database().pool.query<{ amount: string }>("SELECT coalesce(sum((data->>'amount')::bigint), 0)::text AS amount FROM events WHERE stream_id = $1 AND event_type = 'GrantVoided'", [`token-account-${userId}`]);
      expect(voided.rows).toEqual([{ amount: String(10 * mine) }]);
      const holds = await killed.database().pool.query<{ status: string; count: string }>('SELECT status, count(*)::text AS count FROM token_holds WHERE user_id = $1 GROUP BY status', [userId]);
      expect(holds.rows).toEqual([{ status: 'released', count: String(mine) }]);
      const grants = await killed.database().pool.query<{ status: string; remaining: string; count: string }>(
        "SELECT status, remaining::text, count(*)::text AS count FROM token_lots WHERE user_id = $1 AND source = 'grant' GROUP BY status, remaining",
        [userId],
      );
      expect(grants.rows).toEqual([{ status: 'voided', remaining: '0', count: String(mine) }]);
      const verify = await fetch(`${child.url}/v1/audit/accounts/${userId}/verify`, { headers: { authorization: auditor } });
      expect(await verify.json()).toMatchObject({ ok: true, readModels: { differences: [], replayError: null } });
    }
    process.stdout.write(`admin crash: ${units.length} keyed units of 6 requests over ${KILLS} kills, each applied once\n`);
  }, 180_000);
});
