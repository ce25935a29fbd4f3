import { randomUUID } from 'node:crypto';
import fc from 'fast-check';
import { PostgresEventStore } from '@app/event-store';
import { decideTokenAccountWithState, tokenAccountStreamId, type TokenAccountEvent, type TokenAccountState } from '@app/ledger';
import { verifyAccount } from '@app/operations';
import { InlineProjections, PROJECTIONS } from '@app/projections';
import { ACTIVE_LOTS_PAGE_SQL, availableAfterRefunds, BALANCE_SQL, LOTS_PAGE_SQL, nextExpiryOf } from '@app/token-accounts';
import { runSteps, stepArbitrary } from '../libs/ledger/src/testing/random-history.js';
import { createTestDatabase, type TestDatabase } from './support/test-database.js';

/**
 * Random histories of purchases, payments, refunds and disputes, grants and voids, holds, settles, releases,
 * usages, adjustments and expiries, appended through the real write path (each decision one append,
 * its read-model rows written inline in the same transaction): the read models equal the ledger's
 * fold and a replay of the stream through the projection, and keep the ledger's equations.
 */
let database: TestDatabase;
let store: PostgresEventStore;

beforeAll(async () => {
  database = await createTestDatabase();
  store = new PostgresEventStore(database.pool, { connectionString: database.url, pollIntervalMs: 20, appendHook: new InlineProjections(PROJECTIONS) });
});

afterAll(async () => {
  await store.close();
  await database.drop();
});

async function appendHistory(userId: string, batches: readonly (readonly TokenAccountEvent[])[]): Promise<void> {
  let revision = -1n;
  for (const batch of batches) {
    const events = batch.map((event) => ({ id: randomUUID(), type: event.type, data: event.data }));
    await store.append(tokenAccountStreamId(userId), events, { expectedRevision: revision < 0n ? 'no_stream' : revision });
    revision += BigInt(events.length);
  }
}

async function readModels(userId: string) {
  const pool = database.pool;
  const totals = await pool.query<{ balance: string; held: string; available: string; shortfall: string; history: string }>(
    `SELECT balance::text, held::text, available::text, shortfall::text, (SELECT coalesce(sum(amount), 0)::text FROM token_transactions WHERE user_id = $1) AS history
       FROM user_tokens WHERE user_id = $1`,
    [userId],
  );
  const lots = await pool.query<{ lot_id: string; remaining: string }>('SELECT lot_id, remaining::text FROM token_lots WHERE user_id = $1 AND remaining > 0 ORDER BY lot_id', [userId]);
  const holds = await pool.query<{ hold_id: string; amount: string }>(`SELECT hold_id::text, amount::text FROM token_holds WHERE user_id = $1 AND status = 'active' ORDER BY hold_id`, [userId]);
  return { totals: totals.rows[0], lots: lots.rows.map((row) => `${row.lot_id}=${row.remaining}`), holds: holds.rows.map((row) => `${row.hold_id}=${row.amount}`) };
}

/**
 * The steps decided in turn for a new account, as one append per decision: its events, in batches of
 * what each decision appended (a decision of nothing, an expiry run with nothing due, appends
 * nothing), and the state after the last; undefined when no step was decided.
 */
function historyOf(steps: Parameters<typeof runSteps>[1]): { userId: string; batches: TokenAccountEvent[][]; events: TokenAccountEvent[]; final: TokenAccountState | undefined } {
  const userId = randomUUID();
  const batches: TokenAccountEvent[][] = [];
  let appended = 0;
  let final: TokenAccountState | undefined;
  // Ids are UUIDs, as the service makes them: the read models keep them as uuid.
  const events = runSteps(
    userId,
    steps,
    (state, decided) => {
      if (decided.length > appended) batches.push(decided.slice(appended));
      appended = decided.length;
      final = state;
    },
    randomUUID,
  );
  return { userId, batches, events, final };
}

describe('holds and lots: random histories through the write path', () => {
  it('keep read models equal to the fold and to a replay: balance = live lots, held = active holds, 0 <= available <= balance', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(stepArbitrary, { minLength: 20, maxLength: 60 }), async (steps) => {
        const { userId, batches, final } = historyOf(steps);
        if (final === undefined) return;
        if (batches.length === 0) {
          // Every command refused (a history with no credit can be): nothing appended, and no read model has a row of the account.
          expect(await readModels(userId)).toEqual({ totals: undefined, lots: [], holds: [] });
          return;
        }
        await appendHistory(userId, batches);
        const rows = await readModels(userId);
        const state = final;
        expect(rows.totals).toEqual({
          balance: String(state.balance),
          held: String(state.held),
          available: String(state.balance - state.held),
          shortfall: String(state.shortfall),
          history: String(state.balance),
        });
        expect(rows.lots).toEqual([...state.lots.values()].filter((lot) => lot.remaining > 0).map((lot) => `${lot.lotId}=${lot.remaining}`).sort());
        expect(rows.holds).toEqual([...state.holds.values()].map((hold) => `${hold.holdId}=${hold.amount}`).sort());
        expect(Number(rows.totals?.held)).toBeLessThanOrEqual(Number(rows.totals?.balance));
        expect(await verifyAccount(store, database.pool, PROJECTIONS, userId)).toEqual([]);
        expect(await verifyAccount(store, database.pool, PROJECTIONS, userId, { inPlaceEventsMax: 0 })).toEqual([]);
      }),
      { numRuns: 25 },
    );
  }, 240_000);

  it("answer the balance from the read models as the fold does, at every lot's and hold's expiry instant and a millisecond before: the same totals and next expiry, and the same instants found due; and list the same active lots through either index", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(stepArbitrary, { minLength: 20, maxLength: 60 }), async (steps) => {
        const { userId, batches, events, final } = historyOf(steps);
        if (final === undefined || batches.length === 0) return;
        await appendHistory(userId, batches);
        const state = final;
        // From the last event's time on, the state is the account's: the instants around each expiry still ahead.
        const last = Math.max(...events.map((event) => Date.parse(event.data.occurredAt)));
        const expiries = [...state.lots.values(), ...state.holds.values()].map((each) => each.expiresAtMs).filter((at) => Number.isFinite(at) && at > last);
        const instants = [...new Set([last, ...expiries.flatMap((at) => [at - 1, at])])].sort((left, right) => left - right);
        for (const at of instants) {
          const now = new Date(at);
          const row = (
            await database.pool.query<{ balance: string; held: string; shortfall: string; reserved_for_refunds: string; next_expiry: { expiresAt: string; amount: string; lotId: string; due: boolean } | null; hold_due: boolean }>(
              BALANCE_SQL,
              [userId, now],
            )
          ).rows[0];
          // The active lots read over the live lots' index are those the whole list calls active.
          const activeOf = async (sql: string) => (await database.pool.query(sql, [userId, 'active', 1_000, 0, null, now])).rows;
          expect(await activeOf(ACTIVE_LOTS_PAGE_SQL)).toEqual(await activeOf(LOTS_PAGE_SQL));
          const decided = decideTokenAccountWithState({ type: 'ExpireCredits', data: { userId, transactionId: randomUUID(), now } }, state);
          const due = row?.hold_due === true || row?.next_expiry?.due === true;
          // The read models find something due exactly when the job's decision at that instant records something.
          expect({ at: now.toISOString(), due }).toEqual({ at: now.toISOString(), due: decided.events.length > 0 });
          if (due) continue;
          const swept = decided.state;
          const next = row?.next_expiry ?? null;
          expect({
            at: now.toISOString(),
            balance: Number(row?.balance ?? 0),
            held: Number(row?.held ?? 0),
            available: availableAfterRefunds(Number(row?.balance ?? 0) - Number(row?.held ?? 0), Number(row?.reserved_for_refunds ?? 0)),
            shortfall: Number(row?.shortfall ?? 0),
            nextExpiry: next === null ? null : { expiresAt: next.expiresAt, amount: Number(next.amount), lotId: next.lotId },
          }).toEqual({
            at: now.toISOString(),
            balance: swept.balance,
            held: swept.held,
            available: availableAfterRefunds(swept.balance - swept.held, swept.reservedForRefunds),
            shortfall: swept.shortfall,
            nextExpiry: nextExpiryOf(swept, now),
          });
        }
      }),
      { numRuns: 25 },
    );
  }, 240_000);
});
