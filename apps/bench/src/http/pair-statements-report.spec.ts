import { renderPairStatements, statementDifferences, type PhaseTotals } from './pair-statements-report.js';

const spends: PhaseTotals = {
  count: 1_000,
  processUs: 200_000,
  postgresUs: 180_000,
  statements: new Map([
    ['INSERT INTO token_transactions ...', { timeMs: 50, wal: 3_000, calls: 70 }],
    ['UPDATE token_lots ...', { timeMs: 40, wal: 1_700, calls: 70 }],
  ]),
};
const pairs: PhaseTotals = {
  count: 500,
  processUs: 210_000,
  postgresUs: 190_000,
  statements: new Map([
    ['INSERT INTO token_transactions ...', { timeMs: 26, wal: 1_500, calls: 35 }],
    ['UPDATE token_lots ...', { timeMs: 20, wal: 850, calls: 35 }],
    ['INSERT INTO token_holds ...', { timeMs: 30, wal: 2_000, calls: 35 }],
  ]),
};

describe('statementDifferences', () => {
  it('gives each statement per spend and per pair, and the pair less two spends, the largest difference first', () => {
    const rows = statementDifferences(spends, pairs);
    expect(rows.map((row) => row.query)).toEqual(['INSERT INTO token_holds ...', 'INSERT INTO token_transactions ...', 'UPDATE token_lots ...']);
    // token_holds: 30 ms over 500 pairs = 60 µs a pair, none in spends.
    expect(rows[0]).toMatchObject({ perSpendUs: 0, perPairUs: 60, beyondTwoSpendsUs: 60, walPerSpend: 0, walPerPair: 4, callsPerPair: 0.07 });
    // token_transactions: 50 µs a spend, 52 a pair: 48 less than two spends.
    expect(rows[1]).toMatchObject({ perSpendUs: 50, perPairUs: 52, beyondTwoSpendsUs: -48, walPerSpend: 3, walPerPair: 3, callsPerSpend: 0.07, callsPerPair: 0.07 });
    expect(rows[2]?.beyondTwoSpendsUs).toBeCloseTo(-40);
  });

  it('orders equal differences by statement, so a report is stable', () => {
    const same = new Map([
      ['b', { timeMs: 1, wal: 0, calls: 1 }],
      ['a', { timeMs: 1, wal: 0, calls: 1 }],
    ]);
    expect(statementDifferences({ ...spends, statements: new Map() }, { ...pairs, statements: same }).map((row) => row.query)).toEqual(['a', 'b']);
  });
});

describe('renderPairStatements', () => {
  it('reports CPU per spend and per pair against two spends, then the statements, at most `shown` of them', () => {
    const report = renderPairStatements('heading', spends, pairs, 2);
    expect(report).toContain('| service process | 200 | 420 | +20.0 | 1.05x |');
    expect(report).toContain('| PostgreSQL | 180 | 380 | +20.0 | 1.06x |');
    expect(report).toContain('| both | 380 | 800 | +40.0 | 1.05x |');
    expect(report).toContain('| 0.0 | 60.0 | +60.0 | 0.00 / 4.00 | 0.000 / 0.070 | `INSERT INTO token_holds ...` |');
    expect(report).toContain('| 50.0 | 52.0 | −48.0 | 3.00 / 3.00 | 0.070 / 0.070 | `INSERT INTO token_transactions ...` |');
    expect(report).not.toContain('UPDATE token_lots');
  });

  it('escapes a statement\'s pipes, which would end its table cell', () => {
    const report = renderPairStatements('heading', { ...spends, statements: new Map() }, { ...pairs, statements: new Map([["SELECT 'a' || 'b'", { timeMs: 1, wal: 0, calls: 1 }]]) }, 1);
    expect(report).toContain("`SELECT 'a' \\|\\| 'b'`");
  });
});
