import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';

// Only the event store touches the event tables (`events`, `event_streams`): every other lib reads
// events through the port, or through a method of PostgresCapabilities when it needs a plain read of
// the tables (a count, a span of positions, a stream's recorded revision). This spec finds SQL that
// names those tables anywhere else in production code.

const ROOT = path.resolve(import.meta.dirname, '../../..');
const OWNER = 'libs/event-store/';

/** SQL that reads or writes an event table: a keyword, then the table's name (optionally quoted or schema-qualified). */
const EVENT_TABLE_SQL = /\b(FROM|JOIN|INTO|UPDATE|TRUNCATE)\s+(ONLY\s+)?("?public"?\.)?"?(events|event_streams)\b/;

/** The files allowed to name the event tables, and why. Each must still need it (see the last spec). */
const ALLOWED: Readonly<Record<string, string>> = {
  // The PostgreSQL-only capability "bulk SQL": the set-based token_accounts projection (bulk load,
  // delta, inline application) runs inside PostgreSQL and reads `events` there, so no event leaves
  // the database; its rows are proven equal to `project`'s by the rebuild and inline specs.
  'libs/projections/src/read-models/token-accounts/token-accounts.bulk.ts': 'bulk SQL of the token_accounts projection',
  // A benchmark, not a path of the service: it seeds a million raw events in SQL to measure reading
  // `$all`, since appending them one call at a time would only make the run slower.
  'apps/bench/src/scenarios.ts': 'the catch-up benchmark seeds raw events',
};

async function sourceFiles(directory: string): Promise<string[]> {
  const entries = await readdir(path.join(ROOT, directory), { withFileTypes: true, recursive: true });
  return entries
    .filter((entry) => entry.isFile() && entry.name.endsWith('.ts') && !entry.name.endsWith('.spec.ts') && !entry.name.endsWith('.e2e-spec.ts'))
    .map((entry) => path.relative(ROOT, path.join(entry.parentPath, entry.name)).split(path.sep).join('/'))
    .filter((file) => !file.startsWith(OWNER))
    .sort();
}

/** Every file outside the event store whose code names an event table in SQL, with the first such line. */
async function filesNamingEventTables(): Promise<Map<string, string>> {
  const found = new Map<string, string>();
  for (const file of [...(await sourceFiles('libs')), ...(await sourceFiles('apps'))]) {
    const lines = (await readFile(path.join(ROOT, file), 'utf8')).split('\n');
    const index = lines.findIndex((line) => EVENT_TABLE_SQL.test(line));
    if (index >= 0) found.set(file, `${file}:${index + 1}: ${lines[index]?.trim() ?? ''}`);
  }
  return found;
}

describe('the event tables', () => {
  it('are named in SQL by the event store only, and by the allowed files', async () => {
    const offenders = [...(await filesNamingEventTables())].filter(([file]) => !(file in ALLOWED)).map(([, line]) => line);
    expect(offenders).toEqual([]);
  });

  it('are named by every allowed file (an allowance no longer needed is removed)', async () => {
    const found = await filesNamingEventTables();
    expect(Object.keys(ALLOWED).filter((file) => !found.has(file))).toEqual([]);
  });

  it('are found by the scan in the shapes SQL names them', () => {
    for (const sql of ['SELECT 1 FROM events WHERE', 'LEFT JOIN event_streams s', 'INSERT INTO "events" (', 'UPDATE public.event_streams SET', 'DELETE FROM events']) {
      expect(EVENT_TABLE_SQL.test(sql)).toBe(true);
    }
    for (const text of ['FROM events_all_order', 'FROM token_events', 'events FROM', 'from events']) expect(EVENT_TABLE_SQL.test(text)).toBe(false);
  });
});
