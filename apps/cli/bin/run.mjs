// `npm run cli -- <command>`: runs the built CLI, building it first only when its sources changed.
// The build (nest build cli, 5-20 s) is keyed by a hash of everything it compiles: the CLI's and the
// libs' sources, the migrations it copies, the TypeScript and Nest settings, and package-lock.json.
// The hash is kept beside the build (dist/apps/cli/.source-hash), so `nest build api`, which empties
// dist/, also makes the next call rebuild. Plain JavaScript: it must run before anything is compiled.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const MAIN = path.join(ROOT, 'dist/apps/cli/src/main.js');
const STAMP = path.join(ROOT, 'dist/apps/cli/.source-hash');
const SETTINGS = ['package-lock.json', 'tsconfig.base.json', 'nest-cli.json', 'apps/cli/tsconfig.app.json'];
const SOURCE_DIRECTORIES = ['apps/cli/src', ...readdirSync(path.join(ROOT, 'libs')).flatMap((lib) => [`libs/${lib}/src`, `libs/${lib}/migrations`])];

/** Every file under `directory` (relative to ROOT) that the build reads, in a stable order. */
function filesUnder(directory) {
  const absolute = path.join(ROOT, directory);
  if (!existsSync(absolute)) return [];
  return readdirSync(absolute, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile() && /\.(ts|sql)$/.test(entry.name) && !entry.name.endsWith('.spec.ts'))
    .map((entry) => path.relative(ROOT, path.join(entry.parentPath ?? entry.path, entry.name)))
    .sort();
}

function sourceHash() {
  const hash = createHash('sha256');
  for (const file of [...SETTINGS, ...SOURCE_DIRECTORIES.flatMap(filesUnder)]) {
    hash.update(file).update('\0').update(readFileSync(path.join(ROOT, file))).update('\0');
  }
  return hash.digest('hex');
}

/** The build's identity: the sources' hash and the time main.js was written (a `nest build cli` by hand changes it). */
const stampOf = (hash) => `${hash} ${statSync(MAIN).mtimeMs}`;

const wanted = sourceHash();
const built = existsSync(STAMP) && existsSync(MAIN) ? readFileSync(STAMP, 'utf8').trim() : undefined;
if (built !== (existsSync(MAIN) ? stampOf(wanted) : undefined)) {
  process.stderr.write('building the CLI (once per change of its sources)...\n');
  const nest = path.join(ROOT, 'node_modules/@nestjs/cli/bin/nest.js');
  try {
    execFileSync(process.execPath, [nest, 'build', 'cli'], { cwd: ROOT, stdio: ['ignore', 'inherit', 'inherit'] });
  } catch {
    process.exit(1);
  }
  writeFileSync(STAMP, `${stampOf(wanted)}\n`);
}
await import(pathToFileURL(MAIN).href);
