/** What bench:versus adds up for one service over its timed rounds. */
export type VersusTotals = { processUs: number; postgresUs: number; elapsedMs: number; requests: number };

/** pg_stat_statements' counts over the timed rounds, by statement text. */
export type StatementTotals = Map<string, { readonly timeMs: number; readonly wal: number; readonly calls: number }>;

/** One service of the comparison: `label` names its revision. */
export type VersusSide = {
  readonly name: 'baseline' | 'current';
  readonly label: string;
  readonly totals: VersusTotals;
  /** Present with --statements. */
  readonly statements?: StatementTotals;
};

/** A row of pg_stat_statements as bench:versus reads it after a round. */
export type StatementRow = { readonly query: string; readonly calls: string; readonly time_ms: number; readonly wal: string };

/** Adds one round's rows (read after a reset before it) to the totals, by statement text. */
export function addStatementRows(totals: StatementTotals, rows: readonly StatementRow[]): void {
  for (const row of rows) {
    const sum = totals.get(row.query) ?? { timeMs: 0, wal: 0, calls: 0 };
    totals.set(row.query, { timeMs: sum.timeMs + row.time_ms, wal: sum.wal + Number(row.wal), calls: sum.calls + Number(row.calls) });
  }
}

/**
 * The report: spends/s over the summed time, CPU per spend over every timed spend, each side's and
 * the current one's over the baseline's; with statements, each side's `shown` costliest per spend.
 */
export function renderVersus(heading: string, baseline: VersusSide, current: VersusSide, shown: number): string {
  const per = ({ totals }: VersusSide) => ({
    rate: totals.requests / (totals.elapsedMs / 1_000),
    processUs: totals.processUs / totals.requests,
    postgresUs: totals.postgresUs / totals.requests,
  });
  const [b, c] = [per(baseline), per(current)];
  const times = (value: number) => `${value.toFixed(2)}x`;
  const lines = [
    heading,
    '',
    '| Service | Spends/s | Process CPU (µs/spend) | PostgreSQL CPU (µs/spend) |',
    '|---|---:|---:|---:|',
    `| baseline ${baseline.label} | ${Math.round(b.rate)} | ${Math.round(b.processUs)} | ${Math.round(b.postgresUs)} |`,
    `| current ${current.label} | ${Math.round(c.rate)} | ${Math.round(c.processUs)} | ${Math.round(c.postgresUs)} |`,
    `| current / baseline | ${times(c.rate / b.rate)} | ${times(c.processUs / b.processUs)} | ${times(c.postgresUs / b.postgresUs)} |`,
  ];
  for (const side of [baseline, current]) {
    if (side.statements === undefined) continue;
    lines.push('', `The ${side.name} service's costliest statements (pg_stat_statements, track = all; nested statements are also inside their caller's time), per spend:`, '');
    lines.push('| Time (µs) | WAL records | Calls | Statement |', '|---:|---:|---:|---|');
    const ranked = [...side.statements.entries()].sort((left, right) => right[1].timeMs - left[1].timeMs).slice(0, shown);
    for (const [query, sum] of ranked) {
      lines.push(`| ${((sum.timeMs * 1_000) / side.totals.requests).toFixed(1)} | ${(sum.wal / side.totals.requests).toFixed(2)} | ${sum.calls} | \`${query.slice(0, 100).replaceAll('|', '\\|')}\` |`);
    }
  }
  return lines.join('\n');
}
