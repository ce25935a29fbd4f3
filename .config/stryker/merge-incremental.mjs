// `node .config/stryker/merge-incremental.mjs <out.json> <run.json>...`: one Stryker incremental
// report (the committed .config/stryker/ledger.incremental.json) from the reports of runs over
// disjoint parts of a target, given oldest first: a target too slow to measure in one sitting is
// measured a few files at a time, each run with `--mutate <files> --incrementalFile <run.json>`
// (docs/quality.md). Tests are identified by file and name, as Stryker's incremental differ does, and
// numbered again; each spec file keeps its newest source. A mutant measured against an older spec
// still counts as measured: the differ tests it again when a spec that covers it was added since.
import { readFileSync, writeFileSync } from 'node:fs';
const [out, ...inputs] = process.argv.slice(2);
const reports = inputs.map((file) => JSON.parse(readFileSync(file, 'utf8')));
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
    if (files[file]) throw new Error(`${file} in two runs`);
    files[file] = { ...result, mutants: result.mutants.map((mutant) => ({ ...mutant, ...(mutant.coveredBy ? { coveredBy: remap(mutant.coveredBy) } : {}), ...(mutant.killedBy ? { killedBy: remap(mutant.killedBy) } : {}) })) };
  }
}
let next = 0;
for (const file of Object.values(files)) for (const mutant of file.mutants) mutant.id = String(next++);
const last = reports.at(-1);
writeFileSync(out, JSON.stringify({ ...last, files, testFiles }, null, 2));
console.log(`${Object.keys(files).length} files, ${next} mutants, ${idByKey.size} tests`);
