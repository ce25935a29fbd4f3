import type { ScenarioResult } from './scenarios.js';

/** The results as Markdown: one table, each number with its reference, ratio, target and peak RSS. */
export function renderResults(results: readonly ScenarioResult[], run: { readonly command: string; readonly environment: string }): string {
  const lines = [
    `Made by \`${run.command}\` on ${new Date().toISOString().slice(0, 10)}: ${run.environment}.`,
    '',
    '| Scenario | Measurement | Value | Raw insert reference | Ratio | Target | Peak RSS |',
    '|---|---|---:|---:|---:|---|---:|',
  ];
  for (const result of results) {
    for (const measurement of result.measurements) {
      const value =
        measurement.unit === 'ms' ? `${measurement.value.toFixed(2)} ms`
        : measurement.unit === 'appends' ? `${measurement.value.toFixed(1)} appends`
        : `${Math.round(measurement.value).toLocaleString('en')} ${measurement.unit}`;
      const reference = measurement.reference === undefined ? '' : `${Math.round(measurement.reference).toLocaleString('en')} rows/s`;
      // Rounded down, so a ratio shown never claims more than was measured.
      const ratio = measurement.reference === undefined ? '' : `${(Math.floor((measurement.value / measurement.reference) * 100) / 100).toFixed(2)}x`;
      const target = measurement.target === undefined ? '' : `${measurement.target}: ${measurement.met === true ? 'met' : '**missed**'}`;
      lines.push(`| ${result.scenario} | ${measurement.name} | ${value} | ${reference} | ${ratio} | ${target} | ${result.peakRssMiB.toFixed(0)} MiB |`);
    }
  }
  lines.push('', '| Scenario | 1-minute load average at its start | Checkpoints during it |', '|---|---:|---:|');
  for (const result of results) lines.push(`| ${result.scenario} | ${result.conditions.loadAverage.toFixed(2)} | ${result.conditions.checkpoints} |`);
  return lines.join('\n');
}
