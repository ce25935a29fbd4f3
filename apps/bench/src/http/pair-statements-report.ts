import type { StatementTotals } from './versus-report.js';

/** What one kind of phase cost over every timed phase of it: `count` spends, or `count` hold + settle pairs. */
export type PhaseTotals = {
  readonly count: number;
  readonly processUs: number;
  readonly postgresUs: number;
  readonly statements: StatementTotals;
};

/** A statement's cost per spend and per pair, and what a pair costs beyond two spends. */
export type StatementDifference = {
  readonly query: string;
  readonly perSpendUs: number;
  readonly perPairUs: number;
  /** perPairUs - 2 * perSpendUs. */
  readonly beyondTwoSpendsUs: number;
  readonly walPerSpend: number;
  readonly walPerPair: number;
  readonly callsPerSpend: number;
  readonly callsPerPair: number;
};

/** Every statement either kind ran, the largest difference (either way) first. */
export function statementDifferences(spends: PhaseTotals, pairs: PhaseTotals): readonly StatementDifference[] {
  const queries = new Set([...spends.statements.keys(), ...pairs.statements.keys()]);
  const rows = [...queries].map((query) => {
    const spend = spends.statements.get(query) ?? { timeMs: 0, wal: 0, calls: 0 };
    const pair = pairs.statements.get(query) ?? { timeMs: 0, wal: 0, calls: 0 };
    const perSpendUs = (spend.timeMs * 1_000) / spends.count;
    const perPairUs = (pair.timeMs * 1_000) / pairs.count;
    return {
      query,
      perSpendUs,
      perPairUs,
      beyondTwoSpendsUs: perPairUs - 2 * perSpendUs,
      walPerSpend: spend.wal / spends.count,
      walPerPair: pair.wal / pairs.count,
      callsPerSpend: spend.calls / spends.count,
      callsPerPair: pair.calls / pairs.count,
    };
  });
  return rows.sort((left, right) => Math.abs(right.beyondTwoSpendsUs) - Math.abs(left.beyondTwoSpendsUs) || left.query.localeCompare(right.query));
}

/**
 * The report: CPU per spend and per pair, then the `shown` statements whose cost differs most
 * between a pair and two spends. pg_stat_statements counts a function's statements (`track = all`)
 * and also the call that ran them, so the rows overlap and are not summed.
 */
export function renderPairStatements(heading: string, spends: PhaseTotals, pairs: PhaseTotals, shown: number): string {
  const cpu = (name: string, spend: number, pair: number) => `| ${name} | ${Math.round(spend)} | ${Math.round(pair)} | ${signed(pair - 2 * spend)} | ${(pair / (2 * spend)).toFixed(2)}x |`;
  const lines = [
    heading,
    '',
    '| CPU (µs) | per spend | per pair | pair - two spends | pair / two spends |',
    '|---|---:|---:|---:|---:|',
    cpu('service process', spends.processUs / spends.count, pairs.processUs / pairs.count),
    cpu('PostgreSQL', spends.postgresUs / spends.count, pairs.postgresUs / pairs.count),
    cpu('both', (spends.processUs + spends.postgresUs) / spends.count, (pairs.processUs + pairs.postgresUs) / pairs.count),
    '',
    `The ${shown} statements whose time differs most between a pair and two spends (pg_stat_statements, track = all: a function's statements are also inside the time of the call that ran them), per spend and per pair:`,
    '',
    '| µs per spend | µs per pair | pair - two spends | WAL records per spend / pair | calls per spend / pair | statement |',
    '|---:|---:|---:|---:|---:|---|',
    ...statementDifferences(spends, pairs)
      .slice(0, shown)
      .map(
        (row) =>
          `| ${row.perSpendUs.toFixed(1)} | ${row.perPairUs.toFixed(1)} | ${signed(row.beyondTwoSpendsUs)} | ${row.walPerSpend.toFixed(2)} / ${row.walPerPair.toFixed(2)} | ${row.callsPerSpend.toFixed(3)} / ${row.callsPerPair.toFixed(3)} | \`${row.query.slice(0, 110).replaceAll('|', '\\|')}\` |`,
      ),
  ];
  return lines.join('\n');
}

function signed(value: number): string {
  return `${value >= 0 ? '+' : '−'}${Math.abs(value).toFixed(1)}`;
}
