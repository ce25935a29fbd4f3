import { readFile } from 'node:fs/promises';

/** Every problem found in the settings, one line each; the message lists them all at once. */
export class AuthConfigError extends Error {
  override readonly name = 'AuthConfigError';

  constructor(readonly problems: readonly string[]) {
    super(`invalid configuration:\n  ${problems.join('\n  ')}`);
  }
}

/**
 * The text of the file a setting names (a key, a key set), or an AuthConfigError naming the setting,
 * the path and why it cannot be read, rather than a bare ENOENT.
 */
export async function readSettingFile(variable: string, file: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (error) {
    throw new AuthConfigError([`${variable}=${file}: cannot read it (${(error as { code?: string }).code ?? String(error)})`]);
  }
}
