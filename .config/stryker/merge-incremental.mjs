// `node .config/stryker/merge-incremental.mjs <out.json> <run.json>[=<file>,<file>...]...`: one Stryker
// incremental report (the committed .config/stryker/ledger.incremental.json) from the reports of runs
// over parts of a target, given oldest first: a target too slow to measure in one sitting is
// measured a few files at a time, each run with `--mutate <files> --incrementalFile <run.json>`
// (docs/quality.md). `=<files>` takes only those source files from a run (paths relative to the
// repository, or their ends: `=hold.state.ts`): a run that started from a copy of the committed
// results carries every other file forward unchanged, and only the files it mutated are its own.
// A later run's file replaces an earlier run's. Tests are identified by file and name, as Stryker's
// incremental differ does, and numbered again; each spec file keeps its newest source. A mutant
// measured against an older spec still counts as measured: the differ tests it again when a spec
// that covers it was added since.
import { readFileSync, writeFileSync } from 'node:fs';
const [out, ...inputs] = process.argv.slice(2);
const reports = inputs.map((input) => {
  const [file, only] = input.split('=');
  const report = JSON.parse(readFileSync(file, 'utf8'));
  if (only === undefined) return report;
  const wanted = only.split(',');
  const files = Object.fromEntries(Object.entries(report.files).filter(([name]) => wanted.some((end) => name === end || name.endsWith(`/${end}`))));
  const missing = wanted.filter((end) => !Object.keys(files).some((name) => name === end || name.endsWith(`/${end}`)));
  if (missing.length > 0) throw new Error(`${file} has no results for ${missing.join(', ')}`);
  return { ...report, files };
});
const testFiles = {};
const idByKey = new Map();
const keyOf = (file, name) => `${file}\u0000${name}`;
for (const report of reports) {
  for (const [file, testFile] of Object.entries(report.testFiles ?? {})) {
    const merged = (testFiles[file] ??= { tests: [] });
    if (testFile.source !== undefined) merged.source = testFile.source;
    const byName = new Map(merged.tests.map((test) => [test.name, test]));
    for (const test of testFile.tests) {
      const key = keyOf(file, test.name);
      if (!idByKey.has(key)) idByKey.set(key, String(idByKey.size));
      byName.set(test.name, { ...test, id: idByKey.get(key) });
    }
    merged.tests = [...byName.values()];
  }
}
const files = {};
for (const report of reports) {
  const keyById = new Map();
  for (const [file, testFile] of Object.entries(report.testFiles ?? {})) for (const test of testFile.tests) keyById.set(test.id, keyOf(file, test.name));
  const remap = (ids) => ids?.map((id) => idByKey.get(keyById.get(id))).filter((id) => id !== undefined);
  for (const [file, result] of Object.entries(report.files)) {
    files[file] = { ...result, mutants: result.mutants.map((mutant) => ({ ...mutant, ...(mutant.coveredBy ? { coveredBy: remap(mutant.coveredBy) } : {}), ...(mutant.killedBy ? { killedBy: remap(mutant.killedBy) } : {}) })) };
  }
}
let next = 0;
for (const file of Object.values(files)) for (const mutant of file.mutants) mutant.id = String(next++);
const last = reports.at(-1);
writeFileSync(out, JSON.stringify({ ...last, files, testFiles }, null, 2));
console.log(`${Object.keys(files).length} files, ${next} mutants, ${idByKey.size} tests`);
