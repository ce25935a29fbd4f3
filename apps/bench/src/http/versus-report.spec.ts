import { addStatementRows, renderVersus, type StatementTotals, type VersusSide } from './versus-report.js';

describe('bench:versus report', () => {
  const baseline: VersusSide = { name: 'baseline', label: 'abc1234', totals: { processUs: 500 * 6_000, postgresUs: 400 * 6_000, elapsedMs: 4_000, requests: 6_000 } };
  const current: VersusSide = { name: 'current', label: 'def5678', totals: { processUs: 400 * 6_000, postgresUs: 300 * 6_000, elapsedMs: 3_000, requests: 6_000 } };

  it('gives each side its rate over the summed time and its CPU per spend, and current over baseline', () => {
    const lines = renderVersus('heading', baseline, current, 10).split('\n');
    expect(lines.slice(4)).toEqual(['| baseline abc1234 | 1500 | 500 | 400 |', '| current def5678 | 2000 | 400 | 300 |', '| current / baseline | 1.33x | 0.80x | 0.75x |']);
  });

  it('adds the rounds of a statement up and lists the costliest first, per spend, at most `shown`', () => {
    const statements: StatementTotals = new Map();
    addStatementRows(statements, [
      { query: 'SELECT a', calls: '10', time_ms: 6, wal: '0' },
      { query: 'UPDATE b | c', calls: '5', time_ms: 3, wal: '600' },
    ]);
    addStatementRows(statements, [
      { query: 'UPDATE b | c', calls: '5', time_ms: 6, wal: '600' },
      { query: 'SELECT d', calls: '1', time_ms: 1, wal: '0' },
    ]);
    const lines = renderVersus('heading', baseline, { ...current, statements }, 2).split('\n');
    const table = lines.slice(lines.indexOf('| Time (µs) | WAL records | Calls | Statement |') + 2);
    expect(table).toEqual(['| 1.5 | 0.20 | 10 | `UPDATE b \\| c` |', '| 1.0 | 0.00 | 10 | `SELECT a` |']);
    expect(lines.filter((line) => line.includes('costliest'))).toHaveLength(1);
  });
});
