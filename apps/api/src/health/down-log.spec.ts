import { DownLog } from './down-log.js';

/** A log that keeps its lines, and a clock the test moves. */
function recorded() {
  const lines: string[] = [];
  let now = 0;
  const log = new DownLog({ warn: (message: string) => lines.push(`warn ${message}`), log: (message: string) => lines.push(`log ${message}`) }, () => now, 60_000);
  return { log, lines, at: (ms: number) => (now = ms) };
}

describe('the health checks’ log', () => {
  it('warns when a check goes down, not again on every probe while it stays down, again after a minute, and once when it is back', () => {
    const { log, lines, at } = recorded();
    log.answered('database');
    for (const ms of [0, 5_000, 10_000, 59_999]) {
      at(ms);
      log.failed('database', new Error('connect ECONNREFUSED 127.0.0.1:5432'));
    }
    at(60_000);
    log.failed('database', new Error('connect ECONNREFUSED 127.0.0.1:5432'));
    at(65_000);
    log.answered('database');
    log.answered('database');
    expect(lines).toEqual([
      'warn the database check is down: connect ECONNREFUSED 127.0.0.1:5432',
      'warn the database check is down: connect ECONNREFUSED 127.0.0.1:5432 (still)',
      'log the database check is up again',
    ]);
  });

  it('warns at once when the reason changes, and keeps each check apart', () => {
    const { log, lines, at } = recorded();
    log.failed('database', new Error('connect ECONNREFUSED 127.0.0.1:5432'));
    at(1_000);
    log.failed('database', 'password authentication failed for user "ledger"');
    log.failed('readModels', new Error('timeout'));
    log.failed('database', 'password authentication failed for user "ledger"');
    expect(lines).toEqual([
      'warn the database check is down: connect ECONNREFUSED 127.0.0.1:5432',
      'warn the database check is down: password authentication failed for user "ledger" (still)',
      'warn the readModels check is down: timeout',
    ]);
  });
});
