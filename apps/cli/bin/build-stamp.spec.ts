import { mkdir, mkdtemp, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { isUpToDate, sourceHash, stampOf } from './build-stamp.js';

/** `npm run cli` builds only when this says the build is stale (apps/cli/bin/run.mjs). */
describe('the CLI build stamp', () => {
  let root: string;

  beforeEach(async () => {
    root = await mkdtemp(path.join(tmpdir(), 'cli-stamp-'));
    for (const [file, text] of Object.entries({
      'package-lock.json': '{}',
      'apps/cli/src/cli.ts': 'export const a = 1;',
      'libs/ledger/src/index.ts': 'export const b = 2;',
      'libs/ledger/src/ledger.spec.ts': 'it("x", () => undefined);',
      'libs/database/migrations/1_init.sql': 'SELECT 1;',
      'libs/database/README.md': 'notes',
    })) {
      await mkdir(path.dirname(path.join(root, file)), { recursive: true });
      await writeFile(path.join(root, file), text);
    }
  });

  afterEach(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it('changes with a source, a migration or the lock file, not with a spec or another file', async () => {
    const first = sourceHash(root);
    expect(sourceHash(root)).toBe(first);
    await writeFile(path.join(root, 'libs/ledger/src/ledger.spec.ts'), 'it("y", () => undefined);');
    await writeFile(path.join(root, 'libs/database/README.md'), 'other notes');
    expect(sourceHash(root)).toBe(first);
    for (const file of ['libs/ledger/src/index.ts', 'apps/cli/src/cli.ts', 'libs/database/migrations/1_init.sql', 'package-lock.json']) {
      const before = sourceHash(root);
      await writeFile(path.join(root, file), 'changed');
      expect(sourceHash(root)).not.toBe(before);
    }
  });

  it('is up to date only with the build it stamped: not without main.js, without a stamp, after other sources, or after a build by hand', async () => {
    const main = path.join(root, 'dist/apps/cli/src/main.js');
    const stampFile = path.join(root, 'dist/apps/cli/.source-hash');
    const hash = sourceHash(root);
    expect(isUpToDate({ main, stampFile, hash })).toBe(false);
    await mkdir(path.dirname(main), { recursive: true });
    await writeFile(main, '');
    expect(isUpToDate({ main, stampFile, hash })).toBe(false);
    await writeFile(stampFile, `${stampOf(hash, main)}\n`);
    expect(isUpToDate({ main, stampFile, hash })).toBe(true);
    expect(isUpToDate({ main, stampFile, hash: 'other' })).toBe(false);
    await utimes(main, new Date(), new Date(Date.now() + 5_000));
    expect(isUpToDate({ main, stampFile, hash })).toBe(false);
    await rm(main);
    expect(isUpToDate({ main, stampFile, hash })).toBe(false);
  });
});
