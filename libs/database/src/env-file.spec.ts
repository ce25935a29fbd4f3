import { mkdtemp, realpath, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { loadEnvFile } from './env-file.js';
import { StartupError } from './startup.error.js';

describe('loadEnvFile (the service and the CLI at start)', () => {
  const saved = { ...process.env };
  const cwd = process.cwd();
  let directory: string;

  beforeEach(async () => {
    // Its real path: the working directory is reported resolved (macOS's temporary directory is a link).
    directory = await realpath(await mkdtemp(path.join(tmpdir(), 'token-ledger-env-file-')));
    for (const name of ['ENV_FILE', 'ENV_FILE_SPEC_A', 'ENV_FILE_SPEC_B']) delete process.env[name];
  });

  afterEach(async () => {
    process.chdir(cwd);
    for (const name of Object.keys(process.env)) if (!(name in saved)) delete process.env[name];
    Object.assign(process.env, saved);
    await rm(directory, { recursive: true, force: true });
  });

  it('reads the file ENV_FILE names; what the environment already sets wins', async () => {
    const file = path.join(directory, 'settings.env');
    await writeFile(file, 'ENV_FILE_SPEC_A=from-file\nENV_FILE_SPEC_B=from-file\n');
    process.env.ENV_FILE = file;
    process.env.ENV_FILE_SPEC_B = 'from-environment';
    expect(loadEnvFile()).toBe(file);
    expect([process.env.ENV_FILE_SPEC_A, process.env.ENV_FILE_SPEC_B]).toEqual(['from-file', 'from-environment']);
  });

  it("takes the file's value for a variable the environment sets empty, which the settings read as unset (NODE_ENV= over NODE_ENV=production)", async () => {
    const file = path.join(directory, 'settings.env');
    await writeFile(file, 'ENV_FILE_SPEC_C=production\n');
    process.env.ENV_FILE = file;
    process.env.ENV_FILE_SPEC_C = '';
    loadEnvFile();
    expect(process.env.ENV_FILE_SPEC_C).toBe('production');
  });

  it('refuses to start when the file ENV_FILE names cannot be read, naming the variable and the path', () => {
    process.env.ENV_FILE = path.join(directory, 'missing.env');
    let refusal: unknown;
    try {
      loadEnvFile();
    } catch (error) {
      refusal = error;
    }
    expect(refusal).toBeInstanceOf(StartupError);
    expect(refusal).toMatchObject({ variable: 'ENV_FILE', message: `ENV_FILE: cannot read ${path.join(directory, 'missing.env')} (ENOENT)` });
  });

  it('reads .env in the working directory when ENV_FILE is unset, and nothing when there is none', async () => {
    process.chdir(directory);
    expect(loadEnvFile()).toBeUndefined();
    await writeFile(path.join(directory, '.env'), 'ENV_FILE_SPEC_A=from-dot-env\n');
    expect(loadEnvFile()).toBe(path.join(directory, '.env'));
    expect(process.env.ENV_FILE_SPEC_A).toBe('from-dot-env');
  });

  it('reads no file, not even .env, when ENV_FILE is empty', async () => {
    process.chdir(directory);
    await writeFile(path.join(directory, '.env'), 'ENV_FILE_SPEC_A=from-dot-env\n');
    process.env.ENV_FILE = '';
    expect(loadEnvFile()).toBeUndefined();
    expect(process.env.ENV_FILE_SPEC_A).toBeUndefined();
  });
});
