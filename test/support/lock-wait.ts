import type pg from 'pg';

/**
 * Resolves once a session of the pool's database waits on a lock (a row lock, or the unique index
 * entry of a row another transaction has written and not committed); throws after `timeoutMs`.
 * Races are set up with it: commit the other transaction only once the append under test waits.
 */
export async function untilASessionWaitsOnALock(pool: pg.Pool, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const waiting = await pool.query<{ count: string }>("SELECT count(*) AS count FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'");
    if (Number(waiting.rows[0]?.count) > 0) return;
    if (Date.now() > deadline) throw new Error(`no session waited on a lock within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
