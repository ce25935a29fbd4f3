import { readWholeStream, type PostgresEventStore } from '@app/event-store';
import { verifyAccount } from '@app/operations';
import { applyEventByEvent, DEFAULT_RUNNER_OPTIONS, ProjectionRunner, rebuildAccount, SET_BASED_BATCH_MIN, tokenAccountsProjection } from '@app/projections';
import { seedLongAccount } from '@app/testing';
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
  const userId = await seedLongAccount(store, events, options.seed);
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
  const setBased = median(setBasedSeconds);
  return [
    `| rebuild one account of ${events.toLocaleString('en-US')} events alone (per-account rebuild, set-based; median of ${ACCOUNT_REBUILD_RUNS}) | ${rate(events, setBased * 1000)} events/s | ${setBased.toFixed(2)} s |`,
    `| the same account recomputed event by event in one transaction (as the rebuild did before, and verify in place; rolled back) | ${rate(events, eventByEventSeconds * 1000)} events/s, ${(eventByEventSeconds / setBased).toFixed(1)}x the set-based time | ${eventByEventSeconds.toFixed(2)} s |`,
    `| verify the account (replay event by event in temporary tables, 500 events per transaction) | ${rate(events, verified.seconds * 1000)} events/s, ${(verified.seconds / eventByEventSeconds).toFixed(2)}x the one-transaction time; the stream held ${verified.heldSeconds.toFixed(2)} s | ${verified.seconds.toFixed(2)} s |`,
  ];
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
