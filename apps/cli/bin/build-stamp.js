// What decides whether `npm run cli` must build the CLI first (run.mjs). Plain JavaScript: it runs
// before anything is compiled.
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';

/** Files the build reads besides the sources: dependency versions, TypeScript and Nest settings. */
const SETTINGS = ['package-lock.json', 'tsconfig.base.json', 'nest-cli.json', 'apps/cli/tsconfig.app.json'];

/** Every file under `directory` (relative to `root`) that the build reads, in a stable order. */
function filesUnder(root, directory) {
  const absolute = path.join(root, directory);
  if (!existsSync(absolute)) return [];
  return readdirSync(absolute, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile() && /\.(ts|sql)$/.test(entry.name) && !entry.name.endsWith('.spec.ts'))
    .map((entry) => path.relative(root, path.join(entry.parentPath ?? entry.path, entry.name)))
    .sort();
}

/** A hash of what `nest build cli` compiles and copies: the CLI's and the libs' sources, the migrations, the settings. */
export function sourceHash(root) {
  const libs = existsSync(path.join(root, 'libs')) ? readdirSync(path.join(root, 'libs')).sort() : [];
  const directories = ['apps/cli/src', ...libs.flatMap((lib) => [`libs/${lib}/src`, `libs/${lib}/migrations`])];
  const hash = createHash('sha256');
  for (const file of [...SETTINGS.filter((setting) => existsSync(path.join(root, setting))), ...directories.flatMap((directory) => filesUnder(root, directory))]) {
    hash.update(file).update('\0').update(readFileSync(path.join(root, file))).update('\0');
  }
  return hash.digest('hex');
}

/** The build's identity: the sources' hash and the time its main.js was written (a `nest build cli` by hand changes it). */
export function stampOf(hash, main) {
  return `${hash} ${statSync(main).mtimeMs}`;
}

/** True when `main` exists and `stampFile` says it was built from sources hashing to `hash`. */
export function isUpToDate({ main, stampFile, hash }) {
  return existsSync(main) && existsSync(stampFile) && readFileSync(stampFile, 'utf8').trim() === stampOf(hash, main);
}
