import { READ_COUNT_MAX, type Position, type PostgresEventStore } from '@app/event-store';
import { DEFAULT_RUNNER_OPTIONS, ProjectionRunner, tokenAccountsProjection } from '@app/projections';
import type { Pool } from 'pg';
import { rate } from './measure.js';

/**
 * `bench:rebuild`'s runner row: the projection runner applying the first `events` events of `$all`
 * event by event from an empty read model, as it applies every batch with EventStoreDB (which has no
 * set-based delta): batches of DEFAULT_RUNNER_OPTIONS.batchSizeMax, each committed with its
 * checkpoint. `coldEventsPerSecond` (the cold set-based rebuild of the same run) is the reference the
 * rate is stated against. Run it last: it empties the read model and moves its checkpoint back.
 */
export async function measureRunnerEventByEvent(options: { readonly store: PostgresEventStore; readonly pool: Pool; readonly events: number; readonly coldEventsPerSecond: number }): Promise<string> {
  const { store, pool } = options;
  const { count, last } = await headOfAll(store, options.events);
  await pool.query('TRUNCATE user_tokens, token_transactions, payments, token_holds, token_lots, token_accounts_inline_commits');
  await pool.query('DELETE FROM projection_checkpoints WHERE name = $1', [tokenAccountsProjection.name]);
  // As the service runs it with EventStoreDB: no set-based batches.
  const runner = new ProjectionRunner(store, pool, tokenAccountsProjection, DEFAULT_RUNNER_OPTIONS);
  const started = performance.now();
  runner.start();
  const reached = await runner.waitFor(last, RUNNER_TIMEOUT_MS);
  const milliseconds = performance.now() - started;
  await runner.stop();
  if (!reached) throw new Error(`the runner did not apply ${count} events in ${RUNNER_TIMEOUT_MS / 60_000} minutes${runner.failure === undefined ? '' : `: ${runner.failure.error}`}`);
  if (runner.batches.eventByEvent === 0 || runner.batches.setBased > 0 || runner.batches.oneAtATime > 0) throw new Error(`the runner did not apply its batches event by event in few round trips: ${JSON.stringify(runner.batches)}`);
  const perSecond = (count * 1000) / milliseconds;
  return `| the projection runner applying the first ${count.toLocaleString('en-US')} events of \`$all\` event by event from an empty read model (as with EventStoreDB: no set-based delta; batches of ${DEFAULT_RUNNER_OPTIONS.batchSizeMax}, each committed with its checkpoint) | ${rate(count, milliseconds)} events/s, ${(perSecond / options.coldEventsPerSecond).toFixed(2)}x the cold set-based rebuild's rate | ${(milliseconds / 1000).toFixed(2)} s |`;
}

const RUNNER_TIMEOUT_MS = 30 * 60_000;

/** How many of the first `events` events of `$all` there are (fewer when `$all` is shorter), and the position of the last. */
async function headOfAll(store: PostgresEventStore, events: number): Promise<{ readonly count: number; readonly last: Position }> {
  let count = 0;
  let last: Position | undefined;
  while (count < events) {
    const page = await store.readAll({ ...(last === undefined ? {} : { after: last }), maxCount: Math.min(READ_COUNT_MAX, events - count) });
    const end = page.at(-1);
    if (end === undefined) break;
    count += page.length;
    last = end.position;
  }
  if (last === undefined) throw new Error('no events to apply');
  return { count, last };
}
