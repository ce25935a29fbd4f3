// `node .config/stryker/apply-mutants.mjs <source file> [<mutant id>,...] [<spec>,...]`: applies each
// survived or uncovered mutant of a ledger file by hand (from the committed incremental results,
// .config/stryker/ledger.incremental.json), runs the given specs (default: the file's own spec) with
// Jest, prints whether they killed it and which tests failed, and restores the source when it ends.
// How the survivors of a file are triaged without a Stryker run (docs/quality.md): minutes, not an hour.
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';

const [file, onlyIds, specList] = process.argv.slice(2);
if (file === undefined) {
  console.error('usage: node .config/stryker/apply-mutants.mjs <source file> [<mutant id>,...] [<spec>,...]');
  process.exit(2);
}
const original = readFileSync(file, 'utf8');
const report = JSON.parse(readFileSync('.config/stryker/ledger.incremental.json', 'utf8'));
const entry = Object.entries(report.files).find(([name]) => name === file || name.endsWith(`/${file}`))?.[1];
if (entry === undefined) throw new Error(`${file} has no results in .config/stryker/ledger.incremental.json`);
const lines = original.split('\n');
const offset = (line, column) => lines.slice(0, line - 1).reduce((sum, text) => sum + text.length + 1, 0) + column - 1;
const only = onlyIds ? onlyIds.split(',') : null;
const specs = (specList ?? file.replace(/\.ts$/, '.spec.ts')).split(',');
const output = path.join(mkdtempSync(path.join(tmpdir(), 'apply-mutants-')), 'jest.json');
try {
  for (const mutant of entry.mutants) {
    if (!['Survived', 'NoCoverage'].includes(mutant.status)) continue;
    if (only && !only.includes(mutant.id)) continue;
    const start = offset(mutant.location.start.line, mutant.location.start.column);
    const end = offset(mutant.location.end.line, mutant.location.end.column);
    writeFileSync(file, original.slice(0, start) + mutant.replacement + original.slice(end));
    const run = spawnSync('node', ['--experimental-vm-modules', '--disable-warning=ExperimentalWarning', 'node_modules/.bin/jest', '--config', 'test/jest.config.js', '--silent', '--json', `--outputFile=${output}`, ...specs], { encoding: 'utf8' });
    const result = JSON.parse(readFileSync(output, 'utf8'));
    const failed = result.testResults.flatMap((suite) => suite.assertionResults.filter((test) => test.status === 'failed').map((test) => test.fullName));
    const where = `${mutant.location.start.line}:${mutant.location.start.column}`;
    console.log(`${run.status === 0 ? 'SURVIVES' : 'killed  '} ${mutant.id} ${where} ${mutant.mutatorName} ${JSON.stringify(mutant.replacement).slice(0, 60)} | ${failed.length} failing: ${failed.slice(0, 3).join(' ; ').slice(0, 400)}`);
  }
} finally {
  writeFileSync(file, original);
}
