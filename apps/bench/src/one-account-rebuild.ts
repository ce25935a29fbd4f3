import { readWholeStream, type PostgresEventStore } from '@app/event-store';
import { verifyAccount } from '@app/operations';
import { applyEventByEvent, DEFAULT_RUNNER_OPTIONS, ProjectionRunner, rebuildAccount, SET_BASED_BATCH_MIN, tokenAccountsProjection } from '@app/projections';
import { initialTokenAccountState } from '@app/ledger';
import { appendDecided, seededRandom, seededUuid, seedLongAccount, type GeneratedAccount } from '@app/testing';
import type { Pool } from 'pg';
import { median, rate } from './measure.js';

/**
 * `bench:rebuild`'s last rows: one account of `events` events, projected by the runner, then rebuilt
 * alone (the admin's per-account rebuild, set-based), against the same recomputation event by event
 * in one transaction (rolled back), and verified (timing how long verify held the stream). Returns
 * the report's table rows.
 */
export async function measureOneAccount(options: {
  readonly store: PostgresEventStore;
  readonly pool: Pool;
  readonly events: number;
  readonly seed: number;
  /** Resolves once the token_accounts checkpoint is at the head. */
  readonly caughtUp: () => Promise<void>;
}): Promise<string[]> {
  const { store, pool, events } = options;
  const account = await seedLongAccount(store, events, options.seed);
  const { userId } = account;
  const projector = new ProjectionRunner(store, pool, tokenAccountsProjection, { ...DEFAULT_RUNNER_OPTIONS, setBasedBatchMin: SET_BASED_BATCH_MIN });
  projector.start();
  await options.caughtUp();
  await projector.stop();
  const setBasedSeconds: number[] = [];
  for (let run = 0; run < ACCOUNT_REBUILD_RUNS; run += 1) {
    const started = performance.now();
    const rebuilt = await rebuildAccount(store, pool, [tokenAccountsProjection], userId);
    setBasedSeconds.push((performance.now() - started) / 1000);
    const applied = rebuilt.projections[0]?.eventsApplied;
    if (applied !== events) throw new Error(`the per-account rebuild applied ${applied ?? 'no'} events of the account's ${events}`);
  }
  const eventByEventSeconds = await recomputedEventByEvent(store, pool, userId);
  const verified = await timedVerify(store, pool, userId);
  const held = await appendsWhileHeld(store, pool, account, options.seed);
  const setBased = median(setBasedSeconds);
  return [
    `| rebuild one account of ${events.toLocaleString('en-US')} events alone (per-account rebuild, set-based; median of ${ACCOUNT_REBUILD_RUNS}) | ${rate(events, setBased * 1000)} events/s | ${setBased.toFixed(2)} s |`,
    `| the same account recomputed event by event in one transaction (as the rebuild did before, and verify in place; rolled back) | ${rate(events, eventByEventSeconds * 1000)} events/s, ${(eventByEventSeconds / setBased).toFixed(1)}x the set-based time | ${eventByEventSeconds.toFixed(2)} s |`,
    `| verify the account (replay event by event in temporary tables, 500 events per transaction) | ${rate(events, verified.seconds * 1000)} events/s, ${(verified.seconds / eventByEventSeconds).toFixed(2)}x the one-transaction time; the stream held ${verified.heldSeconds.toFixed(2)} s | ${verified.seconds.toFixed(2)} s |`,
    `| appends to ${HELD_WRITERS} other accounts (one command each, ${HELD_WRITERS} loops) while the account's rebuild holds its stream, and an append to the account sent 20 ms into it is answered busy and sent again until the rebuild ends (it was answered ${held.heldAppendMs.toFixed(0)} ms after it was sent) | ${rate(held.during, held.rebuildMs)} appends/s against ${rate(held.before, HELD_BASELINE_MS)} in the ${HELD_BASELINE_MS / 1000} s before; the slowest ${held.slowestMs.toFixed(0)} ms | ${(held.rebuildMs / 1000).toFixed(2)} s |`,
  ];
}

const HELD_WRITERS = 8;
const HELD_BASELINE_MS = 1_000;

/**
 * Appends to other accounts from HELD_WRITERS loops, for HELD_BASELINE_MS, then while one more
 * rebuild of `account` holds its stream with an append to the account sent 20 ms into it: how many
 * went through before and during, the slowest during, and when the held account's append was answered.
 */
async function appendsWhileHeld(
  store: PostgresEventStore,
  pool: Pool,
  account: GeneratedAccount,
  seed: number,
): Promise<{ readonly before: number; readonly during: number; readonly slowestMs: number; readonly rebuildMs: number; readonly heldAppendMs: number }> {
  const random = seededRandom(`${seed}:while-held`);
  const at = (offset: number) => new Date(Date.UTC(2026, 6, 1) + offset * 60_000);
  let phase: 'before' | 'during' | 'after' = 'before';
  let [before, during, slowestMs, written] = [0, 0, 0, 0];
  let running = true;
  const writers = Array.from({ length: HELD_WRITERS }, async () => {
    const other: GeneratedAccount = { userId: seededUuid(random), state: initialTokenAccountState, revision: -1n };
    while (running) {
      const [started, sentIn] = [performance.now(), phase];
      await appendDecided(store, random, other, 1, at((written += 1)));
      if (sentIn === 'before') before += 1;
      else if (sentIn === 'during') [during, slowestMs] = [during + 1, Math.max(slowestMs, performance.now() - started)];
    }
  });
  await new Promise((resolve) => setTimeout(resolve, HELD_BASELINE_MS));
  phase = 'during';
  const started = performance.now();
  const rebuilding = rebuildAccount(store, pool, [tokenAccountsProjection], account.userId);
  await new Promise((resolve) => setTimeout(resolve, 20));
  const heldAppendSent = performance.now();
  const waiting = appendDecided(store, random, account, 1, at(0)).then(() => performance.now() - heldAppendSent);
  await rebuilding;
  const rebuildMs = performance.now() - started;
  phase = 'after';
  const heldAppendMs = await waiting;
  running = false;
  await Promise.all(writers);
  return { before, during, slowestMs, rebuildMs, heldAppendMs };
}

const ACCOUNT_REBUILD_RUNS = 3;

/** Seconds to recompute the account's token_accounts rows event by event in one transaction (rolled back), as the per-account rebuild and verify did. */
async function recomputedEventByEvent(store: PostgresEventStore, pool: Pool, userId: string): Promise<number> {
  const rows = tokenAccountsProjection.accountRows?.(userId);
  if (rows === undefined) throw new Error('token_accounts has per-account rows');
  const events = await readWholeStream(store, rows.streamId);
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    const started = performance.now();
    for (const change of rows.clear) await client.query(change.text, [...change.values]);
    await applyEventByEvent(client, tokenAccountsProjection, events);
    return (performance.now() - started) / 1000;
  } finally {
    await client.query('ROLLBACK').catch(() => undefined);
    client.release();
  }
}

/** Seconds `verify` takes on the account, and of those, how long it held the stream (until its replay began). */
async function timedVerify(store: PostgresEventStore, pool: Pool, userId: string): Promise<{ readonly seconds: number; readonly heldSeconds: number }> {
  const started = performance.now();
  let heldSeconds = Number.NaN;
  const differences = await verifyAccount(store, pool, [tokenAccountsProjection], userId, {
    afterCut: () => {
      heldSeconds = (performance.now() - started) / 1000;
      return Promise.resolve();
    },
  });
  if (differences.length > 0) throw new Error(`verify found ${differences.length} differences on the account: ${JSON.stringify(differences.slice(0, 3))}`);
  return { seconds: (performance.now() - started) / 1000, heldSeconds };
}
