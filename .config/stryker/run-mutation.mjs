// `npm run test:mutation [-- <target>... [<stryker option>...]]`: Stryker on each named target
// (default: all), one after another, each configured by .config/stryker/<target>.conf.json. Options
// from the first one starting with `--` on go to Stryker: `--force` tests every mutant again instead of
// reusing the committed incremental results, `--mutate <file>` narrows a run while working.
// The targets whose specs need PostgreSQL get one embedded server for the whole run, made as Jest's
// global setup makes it (test/support/global-setup.js), since Stryker calls Jest once per mutant.
// Exits non-zero when any target fails or scores below its `thresholds.break`.
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));
const TARGETS = { ledger: { database: false }, auth: { database: false }, 'event-store': { database: true } };

const args = process.argv.slice(2);
const firstOption = args.findIndex((arg) => arg.startsWith('--'));
const named = firstOption === -1 ? args : args.slice(0, firstOption);
const strykerOptions = firstOption === -1 ? [] : args.slice(firstOption);
const targets = named.length === 0 ? Object.keys(TARGETS) : named;
const unknown = targets.filter((target) => !Object.hasOwn(TARGETS, target));
if (unknown.length > 0) {
  console.error(`unknown mutation target ${unknown.join(', ')}: one of ${Object.keys(TARGETS).join(', ')}`);
  process.exit(2);
}

let server;
async function database() {
  if (server === undefined && !process.env.TOKEN_LEDGER_TEST_ADMIN_URL) {
    const { default: globalSetup } = await import(path.join(root, 'test/support/global-setup.js'));
    await globalSetup();
    server = globalThis.tokenLedgerTestServer ?? null;
  }
}

const failed = [];
try {
  for (const target of targets) {
    if (TARGETS[target].database) await database();
    const config = path.join('.config/stryker', `${target}.conf.json`);
    console.log(`\n== mutation testing: ${target} (${config}) ==`);
    // Not spawnSync: the embedded PostgreSQL writes its log through this process's event loop, and a
    // blocked loop stops draining it. Once its pipe filled, every PostgreSQL process that logged (the
    // checkpointer first) blocked on the write, so each mutant after that timed out on a stuck server.
    const run = await new Promise((resolve, reject) => {
      const child = spawn('npx', ['stryker', 'run', config, ...strykerOptions], { cwd: root, stdio: 'inherit', env: process.env });
      child.on('error', reject);
      child.on('exit', (status, signal) => resolve({ status, signal }));
    });
    if (run.status !== 0) failed.push(`${target} (exit ${run.status ?? run.signal})`);
  }
} finally {
  await server?.stop();
}
if (failed.length > 0) {
  console.error(`mutation testing failed: ${failed.join(', ')}`);
  process.exit(1);
}
