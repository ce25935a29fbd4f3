// `npm run cli -- <command>`: runs the built CLI, building it first only when its sources changed.
// The build (nest build cli, 5-20 s) is keyed by a hash of everything it compiles (build-stamp.js),
// kept beside the build (dist/apps/cli/.source-hash), so `nest build api`, which empties dist/, also
// makes the next call rebuild. Plain JavaScript: it must run before anything is compiled.
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { isUpToDate, sourceHash, stampOf } from './build-stamp.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const MAIN = path.join(ROOT, 'dist/apps/cli/src/main.js');
const STAMP = path.join(ROOT, 'dist/apps/cli/.source-hash');

const hash = sourceHash(ROOT);
if (!isUpToDate({ main: MAIN, stampFile: STAMP, hash })) {
  process.stderr.write('building the CLI (once per change of its sources)...\n');
  try {
    execFileSync(process.execPath, [path.join(ROOT, 'node_modules/@nestjs/cli/bin/nest.js'), 'build', 'cli'], { cwd: ROOT, stdio: ['ignore', 'inherit', 'inherit'] });
  } catch {
    process.exit(1);
  }
  writeFileSync(STAMP, `${stampOf(hash, MAIN)}\n`);
}
await import(pathToFileURL(MAIN).href);
