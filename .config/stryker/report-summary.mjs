// `node .config/stryker/report-summary.mjs <target>...`: the score per file of each target's last
// run (reports/mutation/<target>.json, Stryker's JSON report), as the markdown table docs/quality.md
// keeps, then every mutant that survived or had no coverage, with its line and replacement.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));
const DETECTED = new Set(['Killed', 'Timeout']);
const UNDETECTED = new Set(['Survived', 'NoCoverage']);

function count(mutants) {
  const by = (status) => mutants.filter((mutant) => mutant.status === status).length;
  const detected = mutants.filter((mutant) => DETECTED.has(mutant.status)).length;
  const undetected = mutants.filter((mutant) => UNDETECTED.has(mutant.status)).length;
  const score = detected + undetected === 0 ? 100 : (100 * detected) / (detected + undetected);
  return `${by('Killed')} / ${by('Survived')} / ${by('NoCoverage')} / ${by('Timeout')} / ${by('Ignored')} | ${score.toFixed(1)}%`;
}

for (const target of process.argv.slice(2)) {
  const report = JSON.parse(readFileSync(path.join(root, 'reports/mutation', `${target}.json`), 'utf8'));
  const files = Object.entries(report.files).sort(([left], [right]) => left.localeCompare(right));
  console.log(`\n| ${target}: file | killed / survived / no coverage / timeout / ignored | score |\n|---|---|---|`);
  console.log(`| **total** | ${count(files.flatMap(([, file]) => file.mutants))} |`);
  for (const [name, file] of files) console.log(`| ${path.relative(root, path.resolve(root, name))} | ${count(file.mutants)} |`);
  for (const [name, file] of files) {
    const lines = file.source.split('\n');
    for (const mutant of file.mutants.filter((each) => UNDETECTED.has(each.status)).sort((a, b) => a.location.start.line - b.location.start.line)) {
      const line = mutant.location.start.line;
      const replacement = (mutant.replacement ?? '').replace(/\s+/g, ' ').slice(0, 80);
      console.log(`- ${mutant.status} ${path.basename(name)}:${line} ${mutant.mutatorName} -> \`${replacement}\` in \`${(lines[line - 1] ?? '').trim().slice(0, 110)}\``);
    }
  }
}
