import { readFileSync } from 'node:fs';
import { AUTH_CONFIG_VARIABLES } from '@app/auth';
import { APP_CONFIG_VARIABLES } from './app.config.js';
import { loadServiceSettings } from './service-settings.js';

const EXAMPLE = new URL('../../../../.env.example', import.meta.url);

/** `NAME=value` lines of .env.example, commented (`# NAME=value`) or not; an empty value means unset. */
function variablesOf(text: string): [string, string][] {
  return text.split('\n').flatMap((line) => {
    const match = /^(?:# )?([A-Z][A-Z0-9_]*)=(.*)$/.exec(line);
    return match === null ? [] : [[match[1] ?? '', match[2] ?? '']];
  });
}

describe('.env.example', () => {
  const listed = variablesOf(readFileSync(EXAMPLE, 'utf8'));

  it('lists every variable the config loaders read, each once, and nothing else', () => {
    const names = listed.map(([name]) => name);
    expect(new Set(names).size).toBe(names.length);
    expect([...names].sort()).toEqual([...new Set([...APP_CONFIG_VARIABLES, ...AUTH_CONFIG_VARIABLES])].sort());
  });

  it("gives each variable its real default: the file's values load to the settings of an empty environment", () => {
    const values = Object.fromEntries(listed.filter(([, value]) => value !== ''));
    expect(Object.keys(values).length).toBeGreaterThan(40);
    expect(loadServiceSettings(values)).toEqual(loadServiceSettings({}));
  });
});
