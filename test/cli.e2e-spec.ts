import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ApiKeyRepository, JwtVerifier, loadAuthConfig, resolveAuthSettings } from '@app/auth';
import { EMBEDDED_SERVICE_DATABASE, migrateDatabase, startEmbeddedPostgres } from '@app/database';
import { allVisible, cli, cliDatabases } from './support/cli-databases.js';
import { freePort } from './support/service-process.js';
import { runCli } from './support/run-cli.js';
import { adminQuery, testAdminUrl, type TestDatabase } from './support/test-database.js';
import { evolveTokenAccount, initialTokenAccountState, LIVE_LOTS_MAX, tokenAccountStreamId, type TokenAccountEvent } from '@app/ledger';

/**
 * The admin CLI's commands, run in-process (the same `createProgram` that `npm run cli` runs) on a
 * database of their own through DATABASE_URL: their output and exit codes.
 */
const { database } = cliDatabases();

async function history(on: TestDatabase): Promise<unknown[]> {
  return (await on.pool.query('SELECT stream_id, stream_revision, event_id, event_type, data FROM events ORDER BY stream_id, stream_revision')).rows;
}

describe('admin CLI', () => {
  it('seeds the same valid history for the same seed, and another for another seed; a repeat appends nothing', async () => {
    const [first, second, third] = [await database(), await database(), await database()];
    expect(await cli(first, 'seed', '--users', '4', '--events', '150', '--seed', '42')).toEqual({ output: expect.stringMatching(/^seeded 150 events over 4 accounts \(seed 42\)/), exitCode: 0 });
    await cli(second, 'seed', '--users', '4', '--events', '150', '--seed', '42');
    await cli(third, 'seed', '--users', '4', '--events', '150', '--seed', '43');
    expect(await history(first)).toHaveLength(150);
    expect(await history(second)).toEqual(await history(first));
    expect(await history(third)).not.toEqual(await history(first));
    expect(await cli(first, 'seed', '--users', '4', '--events', '150', '--seed', '42')).toEqual({
      output: expect.stringMatching(/^seeded 0 events over 4 accounts \(seed 42\) in \d+\.\d s \(150 more were there already, from the same seed\)\n$/),
      exitCode: 0,
    });
    expect(await history(first)).toHaveLength(150);
    const streams = await first.pool.query<{ count: string }>('SELECT count(DISTINCT stream_id) AS count FROM events');
    expect(streams.rows[0]?.count).toBe('4');
  });

  it('seeds one account a long history: past the most lots an account may have, it spends instead of buying, and the account verifies', async () => {
    const on = await database();
    // About 4,000 events in, purchases have left LIVE_LOTS_MAX lots with tokens; a purchase more, refused (LOT_LIMIT_REACHED), used to end the seed there.
    expect(await cli(on, 'seed', '--users', '1', '--events', '6000', '--seed', '42')).toEqual({ output: expect.stringMatching(/^seeded 6000 events over 1 accounts \(seed 42\)/), exitCode: 0 });
    // The account did reach the limit on the way (a purchase there was what the seed used to fail on).
    const [account] = (await on.pool.query<{ stream_id: string }>('SELECT DISTINCT stream_id FROM events')).rows;
    const events = await on.pool.query<{ event_type: string; data: unknown }>('SELECT event_type, data FROM events WHERE stream_id = $1 ORDER BY stream_revision', [account?.stream_id]);
    expect(events.rows).toHaveLength(6000);
    let state = initialTokenAccountState;
    let mostLots = 0;
    for (const row of events.rows) {
      state = evolveTokenAccount(state, { type: row.event_type, data: row.data } as TokenAccountEvent);
      mostLots = Math.max(mostLots, state.lots.size);
    }
    expect(mostLots).toBe(LIVE_LOTS_MAX);
    await allVisible(on);
    expect(await cli(on, 'accounts', 'verify', '--all')).toEqual({ output: '1 accounts verified\nno differences\n', exitCode: 0 });
  });

  it('refuses a database without every migration of this version, naming the command that applies them; migrate itself runs on it', async () => {
    const adminUrl = testAdminUrl();
    const name = `token_ledger_test_empty_${randomUUID().replaceAll('-', '')}`;
    await adminQuery(adminUrl, `CREATE DATABASE ${name}`);
    try {
      const url = new URL(adminUrl);
      url.pathname = `/${name}`;
      const empty = { DATABASE_URL: url.toString() };
      for (const args of [['seed', '--users', '1', '--events', '5'], ['accounts', 'verify', '--all'], ['projections', 'status'], ['api-keys', 'list']]) {
        expect(await runCli(empty, ...args)).toEqual({ output: 'error: the database has no Token Ledger tables yet: run `npm run cli -- migrate` (the service applies them too when it starts)\n', exitCode: 1 });
      }
      expect(await runCli(empty, 'migrate')).toEqual({ output: expect.stringMatching(/migrations applied\n$/), exitCode: 0 });
      expect(await runCli(empty, 'seed', '--users', '1', '--events', '5')).toEqual({ output: expect.stringMatching(/^seeded 5 events over 1 accounts/), exitCode: 0 });
    } finally {
      await adminQuery(adminUrl, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    }
    const behind = await database();
    const last = await behind.pool.query<{ name: string }>('DELETE FROM pgmigrations WHERE id = (SELECT max(id) FROM pgmigrations) RETURNING name');
    expect(await cli(behind, 'projections', 'status')).toEqual({
      output: `error: the database lacks 1 migration of this version (the first: ${last.rows[0]?.name}): run \`npm run cli -- migrate\` (the service applies them too when it starts)\n`,
      exitCode: 1,
    });
  });

  it('rebuilds, reports status, replays an account and verifies: exit code 1 on any difference', async () => {
    const on = await database();
    await cli(on, 'seed', '--users', '3', '--events', '90', '--seed', '7');
    await allVisible(on);
    expect((await cli(on, 'projections', 'status')).output).toMatch(/^token_accounts: stopped, checkpoint -, head \d+\/\d+, lag \d+ events/);

    const rebuilt = await cli(on, 'projections', 'rebuild', 'token_accounts');
    expect(rebuilt).toEqual({ output: expect.stringMatching(/token_accounts: completed, 90 events/), exitCode: 0 });
    expect((await cli(on, 'projections', 'status')).output).toMatch(/^token_accounts: stopped, checkpoint (\d+\/\d+), head \1, lag 0 events/);
    expect(await cli(on, 'accounts', 'verify', '--all')).toEqual({ output: '3 accounts verified\nno differences\n', exitCode: 0 });

    const user = await on.pool.query<{ user_id: string; balance: string }>('SELECT user_id, balance::text FROM user_tokens ORDER BY user_id LIMIT 1');
    const { user_id: userId, balance } = user.rows[0] as { user_id: string; balance: string };
    const replay = await cli(on, 'accounts', 'replay', userId);
    const lines = replay.output.trim().split('\n');
    expect(lines).toHaveLength(30);
    expect(lines[0]).toMatch(/^#0 \d+\/\d+ 2026-01-01T00:00:00.000Z TokensPurchased +\+\d+ balance \d+/);
    expect(lines[29]).toMatch(new RegExp(`^#29 .* balance ${balance}( |$)`));

    await on.pool.query('UPDATE token_transactions SET description = $2 WHERE user_id = $1 AND stream_revision = 3', [userId, 'tampered']);
    const one = await cli(on, 'accounts', 'verify', userId);
    expect(one.exitCode).toBe(1);
    expect(one.output).toMatch(new RegExp(`^${userId} token_accounts missing: .*\\n${userId} token_accounts unexpected: .*tampered.*\\n2 difference\\(s\\)\\n$`));
    expect((await cli(on, 'accounts', 'verify', '--all')).exitCode).toBe(1);

    expect((await cli(on, 'projections', 'rebuild')).exitCode).toBe(0);
    expect(await cli(on, 'accounts', 'verify', '--all')).toEqual({ output: '3 accounts verified\nno differences\n', exitCode: 0 });

    // A completed payment made up for a user with no stream (no balance row either) is found by --all too.
    const stranger = randomUUID();
    await on.pool.query(
      `INSERT INTO payments (id, user_id, order_id, package_id, tokens_purchased, amount, currency, status, provider, created_at, updated_at, expires_at, last_event_id, last_event_revision)
       VALUES ($1, $2, 'order-made-up', 'starter', 100, 500, 'USD', 'COMPLETED', 'mock', now(), now(), now(), $3, 0)`,
      [randomUUID(), stranger, randomUUID()],
    );
    const found = await cli(on, 'accounts', 'verify', '--all');
    expect(found).toEqual({ output: expect.stringMatching(new RegExp(`^4 accounts verified\\n${stranger} token_accounts unexpected: `)), exitCode: 1 });
  });

  it('replays an account up to the event the ledger refuses, printing the lines before it, then the refusal naming its revision and type (exit 1), its control characters escaped', async () => {
    const on = await database();
    await cli(on, 'seed', '--users', '1', '--events', '8', '--seed', '11');
    const user = await on.pool.query<{ stream_id: string }>("SELECT DISTINCT stream_id FROM events WHERE stream_id LIKE 'token-account-%'");
    const streamId = user.rows[0]?.stream_id ?? '';
    const userId = streamId.replace('token-account-', '');
    // An event of a type the ledger does not know, its name made to rewrite the terminal's line.
    await on.pool.query("UPDATE events SET event_type = 'TokensBonus' || chr(27) || '[2K' WHERE stream_id = $1 AND stream_revision = 5", [streamId]);
    const replay = await cli(on, 'accounts', 'replay', userId);
    expect(replay.exitCode).toBe(1);
    const lines = replay.output.trimEnd().split('\n');
    expect(lines.map((line) => line.slice(0, 3))).toEqual(['#0 ', '#1 ', '#2 ', '#3 ', '#4 ', 'err']);
    expect(lines[5]).toMatch(new RegExp(`^error: the ledger cannot replay the stream of ${userId} from revision 5: revision 5 \\(TokensBonus\\\\u001b\\[2K\\): unknown token account event `));
    expect(replay.output).not.toContain('\u001b');
  });

  it.each([
    ['an unknown command', ['nope']],
    ['migrate with an unknown option', ['migrate', '--force']],
    ['projections without a subcommand', ['projections']],
    ['projections status with an unknown option', ['projections', 'status', '--yaml']],
    ['accounts replay with a user id that is not a UUID', ['accounts', 'replay', 'not-a-uuid']],
    ['accounts replay without its user id', ['accounts', 'replay']],
    ['accounts verify with neither a user id nor --all', ['accounts', 'verify']],
    ['accounts verify with both', ['accounts', 'verify', randomUUID(), '--all']],
    ['seed with --users out of range', ['seed', '--users', '0', '--events', '5']],
    ['seed without --events', ['seed', '--users', '1']],
    ['token with an unknown role', ['token', '--role', 'root', '--sub', randomUUID()]],
    ['token with a --ttl that is not a duration', ['token', '--role', 'admin', '--sub', randomUUID(), '--ttl', 'soon']],
    ['token with a --ttl over 30 days', ['token', '--role', 'admin', '--sub', randomUUID(), '--ttl', '31d']],
    ['api-keys create with a role keys cannot have', ['api-keys', 'create', '--name', 'x', '--role', 'user']],
    ['api-keys create with both expiries', ['api-keys', 'create', '--name', 'x', '--role', 'service', '--expires-in', '1d', '--expires-at', '2099-01-01T00:00:00Z']],
    ['api-keys revoke without its id', ['api-keys', 'revoke']],
    ['api-keys revoke with an id that is not a key id', ['api-keys', 'revoke', 'xyz']],
    ['api-keys create with --replaces that is not a key id', ['api-keys', 'create', '--name', 'x', '--role', 'service', '--replaces', 'xyz']],
    ['api-keys create with a blank --name', ['api-keys', 'create', '--name', ' ', '--role', 'service']],
    ['api-keys create with a --name holding a control character', ['api-keys', 'create', '--name', 'a\u001bb', '--role', 'service']],
    ['api-keys create with an --expires-at on a day the month does not have', ['api-keys', 'create', '--name', 'x', '--role', 'service', '--expires-at', '2099-02-29T00:00:00Z']],
    ['api-keys create with an --expires-at without an offset', ['api-keys', 'create', '--name', 'x', '--role', 'service', '--expires-at', '2099-01-01T00:00:00']],
    ['audit verify-bundle with an unknown option', ['audit', 'verify-bundle', 'bundle.ndjson', '--strict']],
  ])('exits 2, a usage error, for %s, before opening any database', async (_label, args) => {
    // A database that cannot be reached: a command that got as far as opening it would exit 1.
    const { output, exitCode } = await runCli({ DATABASE_URL: 'postgres://nobody@127.0.0.1:1/none' }, ...args);
    expect({ exitCode, output }).toEqual({ exitCode: 2, output: expect.stringMatching(/^error: |^Usage: /) });
  });

  it('exits 1 when a well-formed command fails or is refused: no database, an unknown projection or key', async () => {
    expect(await runCli({ DATABASE_URL: 'postgres://nobody@127.0.0.1:1/none' }, 'accounts', 'verify', '--all')).toEqual({
      output: 'error: DATABASE_URL: cannot connect to 127.0.0.1:1 database none as nobody: nothing listens there (ECONNREFUSED)\n',
      exitCode: 1,
    });
    // localhost resolves to two addresses: Node's error for both has an empty message, which was all the CLI printed.
    expect(await runCli({ DATABASE_URL: 'postgres://nobody@localhost:1/none' }, 'api-keys', 'list')).toEqual({
      output: 'error: DATABASE_URL: cannot connect to localhost:1 database none as nobody: nothing listens there (ECONNREFUSED)\n',
      exitCode: 1,
    });
    const on = await database();
    expect(await cli(on, 'projections', 'rebuild', 'nope')).toEqual({ output: expect.stringContaining('no projection is named nope') as unknown, exitCode: 1 });
    expect(await cli(on, 'api-keys', 'revoke', 'f'.repeat(24))).toEqual({ output: `error: no API key ${'f'.repeat(24)}\n`, exitCode: 1 });
  });

  it("verifies an account as the auditor's route does: its hash chain and its replay too, past an account the ledger cannot replay; an unknown account is an error", async () => {
    const on = await database();
    await cli(on, 'seed', '--users', '3', '--events', '30', '--seed', '9');
    await allVisible(on);
    const users = (await on.pool.query<{ user_id: string }>('SELECT user_id::text FROM user_tokens ORDER BY user_id')).rows.map((row) => row.user_id);
    const [edited, renamed] = users as [string, string, string];
    // An event's amount edited in place: its hash no longer matches, and its balanceAfter no longer follows.
    await on.pool.query("UPDATE events SET data = jsonb_set(data, '{amount}', '1') WHERE stream_id = $1 AND stream_revision = 2", [tokenAccountStreamId(edited)]);
    // A history row's description holding terminal control sequences (as a client could send them).
    await on.pool.query('UPDATE token_transactions SET description = $2 WHERE user_id = $1 AND stream_revision = 1', [renamed, 'x\r\u001b[2K#0 balance 999999']);

    const one = await cli(on, 'accounts', 'verify', edited);
    expect(one).toEqual({
      output: expect.stringMatching(new RegExp(`^${edited} stream chain: revision 2 does not match its hash.*\\n${edited} stream replay: .+\\n2 difference\\(s\\)\\n$`)),
      exitCode: 1,
    });
    const all = await cli(on, 'accounts', 'verify', '--all');
    expect(all.exitCode).toBe(1);
    const lines = all.output.trim().split('\n');
    expect(lines[0]).toBe('3 accounts verified');
    expect(lines.filter((line) => line.startsWith(edited)).map((line) => line.split(':')[0])).toEqual([`${edited} stream chain`, `${edited} stream replay`]);
    // The description is printed with its control characters escaped, so it cannot rewrite the terminal.
    expect(lines.filter((line) => line.startsWith(renamed)).map((line) => line.split(':')[0])).toEqual([`${renamed} token_accounts missing`, `${renamed} token_accounts unexpected`]);
    expect(all.output).toContain('x\\u000d\\u001b[2K#0 balance 999999');
    expect(all.output.includes('\r') || all.output.includes('\u001b')).toBe(false);
    expect(lines.at(-1)).toBe('4 difference(s)');

    const unknown = randomUUID();
    expect(await cli(on, 'accounts', 'verify', unknown)).toEqual({ output: `error: no events for user ${unknown}\n`, exitCode: 1 });
  });

  it('stops following a rebuild whose database session ended (it could not record its own end): exit 1, and the next rebuild completes', async () => {
    const on = await database();
    await cli(on, 'seed', '--users', '2', '--events', '20', '--seed', '3');
    await allVisible(on);
    // Hold the live table the rebuild copies the shape of, so that it waits where the test can end its session.
    const blocker = await on.pool.connect();
    try {
      await blocker.query('BEGIN');
      await blocker.query('LOCK TABLE token_transactions IN ACCESS EXCLUSIVE MODE');
      const rebuilding = cli(on, 'projections', 'rebuild', 'token_accounts');
      for (;;) {
        const ended = await on.pool.query<{ ended: boolean }>(
          "SELECT pg_terminate_backend(pid) AS ended FROM pg_stat_activity WHERE application_name = 'token-ledger rebuild token_accounts' AND datname = current_database() AND wait_event_type = 'Lock'",
        );
        if (ended.rowCount === 1) break;
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      await blocker.query('ROLLBACK');
      expect(await rebuilding).toEqual({ output: expect.stringMatching(/error: rebuild \S+ of token_accounts was interrupted during loading: its database session ended/), exitCode: 1 });
    } finally {
      blocker.release();
    }
    expect((await cli(on, 'projections', 'status')).output).toMatch(/^token_accounts: .*\n/);
    expect(await cli(on, 'projections', 'rebuild', 'token_accounts')).toEqual({ output: expect.stringMatching(/token_accounts: completed, 20 events/), exitCode: 0 });
    expect(await cli(on, 'accounts', 'verify', '--all')).toEqual({ output: '2 accounts verified\nno differences\n', exitCode: 0 });
  });

  it('says in its help which exit code means what', async () => {
    const { output, exitCode } = await runCli({}, '--help');
    expect(exitCode).toBe(0);
    expect(output).toMatch(/Exit codes: 0 done; 1 the command failed or was refused .*; 2 usage error/s);
  });

  it('mints development tokens the service accepts, and refuses to in production', async () => {
    const on = await database();
    const dataDir = await mkdtemp(path.join(tmpdir(), 'token-ledger-cli-'));
    const names = ['DATA_DIR', 'NODE_ENV', 'AUTH_JWT_SECRET', 'AUDIT_SIGNING_KEY_FILE', 'AUTH_JWT_ISSUER', 'AUTH_JWT_AUDIENCE'];
    const saved = Object.fromEntries(names.map((name) => [name, process.env[name]]));
    process.env.DATA_DIR = dataDir;
    try {
      const sub = randomUUID();
      const minted = await cli(on, 'token', '--role', 'auditor', '--sub', sub, '--ttl', '10m');
      expect(minted.exitCode).toBe(0);
      // The service on the same DATA_DIR verifies it with the development secret it finds there.
      const verifier = await JwtVerifier.create((await resolveAuthSettings(loadAuthConfig({ DATA_DIR: dataDir }))).jwt);
      expect(await verifier.verify(minted.output.trim())).toEqual({ subject: sub, role: 'auditor', kind: 'jwt' });
      expect((await cli(on, 'token', '--role', 'root', '--sub', sub)).exitCode).toBe(2);
      expect((await cli(on, 'token', '--role', 'admin', '--sub', 'me')).exitCode).toBe(2);
      expect((await cli(on, 'token', '--role', 'admin', '--sub', sub, '--ttl', '31d')).exitCode).toBe(2);
      // Longer than the service accepts (AUTH_JWT_MAX_LIFETIME_SECONDS, 24 h by default): not minted.
      expect(await cli(on, 'token', '--role', 'admin', '--sub', sub, '--ttl', '2d')).toEqual({ output: expect.stringContaining('AUTH_JWT_MAX_LIFETIME_SECONDS') as unknown, exitCode: 2 });
      // Even with production secrets configured: tokens there come from the identity provider.
      const productionKey = path.join(dataDir, 'production-audit.pem');
      await writeFile(productionKey, generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }));
      Object.assign(process.env, { NODE_ENV: 'production', AUTH_JWT_SECRET: 'a-production-secret-of-at-least-32-chars', AUDIT_SIGNING_KEY_FILE: productionKey, AUTH_JWT_ISSUER: 'https://id.example/', AUTH_JWT_AUDIENCE: 'token-ledger' });
      expect(await cli(on, 'token', '--role', 'admin', '--sub', sub)).toEqual({ output: expect.stringContaining('NODE_ENV=production: tokens come from your identity provider') as unknown, exitCode: 1 });
    } finally {
      restore(saved);
      await rm(dataDir, { recursive: true, force: true });
    }
  });

  it("joins only its own DATA_DIR's embedded server: the server of another data directory on that port is refused in one line", async () => {
    const parent = await mkdtemp(path.join(tmpdir(), 'token-ledger-cli-embedded-'));
    // As root the embedded server runs as the postgres user, who must be able to enter this directory.
    await chmod(parent, 0o755);
    const [mine, other] = [path.join(parent, 'mine'), path.join(parent, 'other')];
    const port = await freePort();
    const server = await startEmbeddedPostgres({ dataDir: path.join(mine, 'postgres'), secretsDirectory: path.join(mine, 'secrets'), port, database: EMBEDDED_SERVICE_DATABASE, persistent: true });
    try {
      await migrateDatabase(server.url);
      const embedded = { DATABASE_URL: '', EMBEDDED_POSTGRES_PORT: String(port) };
      expect(await runCli({ ...embedded, DATA_DIR: mine }, 'accounts', 'verify', '--all')).toEqual({ output: '0 accounts verified\nno differences\n', exitCode: 0 });
      expect(await runCli({ ...embedded, DATA_DIR: other }, 'accounts', 'verify', '--all')).toEqual({
        output: `error: EMBEDDED_POSTGRES_PORT=${port}: the PostgreSQL server on this port belongs to another data directory, not DATA_DIR=${other}; set the DATA_DIR and EMBEDDED_POSTGRES_PORT of the service you mean\n`,
        exitCode: 1,
      });
    } finally {
      await server.stop();
      await rm(parent, { recursive: true, force: true });
    }
  }, 60_000);

  it('creates, lists and revokes API keys; a key works until it is revoked', async () => {
    const on = await database();
    const created = await cli(on, 'api-keys', 'create', '--name', 'billing backend', '--role', 'service');
    expect(created.exitCode).toBe(0);
    const key = created.output.trim();
    const repository = new ApiKeyRepository(on.pool);
    const actor = await repository.authenticate(key);
    expect(actor).toMatchObject({ role: 'service', kind: 'api_key' });
    expect((await cli(on, 'api-keys', 'list')).output).toMatch(
      new RegExp(`^${actor.subject} service +billing backend scopes accounts:read,usage:write,purchases:write,payments:write,holds:write created \\S+ by cli expires never last used \\S+\\n$`),
    );
    expect(await cli(on, 'api-keys', 'revoke', actor.subject)).toEqual({ output: `revoked ${actor.subject}\n`, exitCode: 0 });
    await expect(repository.authenticate(key)).rejects.toMatchObject({ code: 'API_KEY_REVOKED' });
    expect((await cli(on, 'api-keys', 'list')).output).toMatch(/ REVOKED \S+ by cli\n$/);
    expect((await cli(on, 'api-keys', 'revoke', 'f'.repeat(24))).exitCode).toBe(1);
    expect((await cli(on, 'api-keys', 'create', '--name', 'x', '--role', 'user')).exitCode).toBe(2);
    // The whole key pasted in place of its id: its id is read, and the secret is not printed back.
    const second = (await cli(on, 'api-keys', 'create', '--name', 'second backend', '--role', 'service')).output.trim();
    const secondId = (await repository.authenticate(second)).subject;
    expect(await cli(on, 'api-keys', 'revoke', second)).toEqual({ output: `revoked ${secondId}\n`, exitCode: 0 });
    const refused = await cli(on, 'api-keys', 'revoke', `${second}x`);
    expect(refused.exitCode).toBe(2);
    expect(refused.output).not.toContain(second.slice(-20));
  });

  it('creates keys with scopes and an expiry, and refuses scopes the role cannot use', async () => {
    const on = await database();
    const created = await cli(on, 'api-keys', 'create', '--name', 'purchases only', '--role', 'service', '--scopes', 'purchases:write,accounts:read', '--expires-in', '90d');
    expect(created.exitCode).toBe(0);
    const actor = await new ApiKeyRepository(on.pool).authenticate(created.output.trim());
    expect(actor).toMatchObject({ role: 'service', scopes: ['purchases:write', 'accounts:read'] });
    const record = await new ApiKeyRepository(on.pool).find(actor.subject);
    expect((record?.expiresAt?.getTime() ?? 0) - Date.now()).toBeGreaterThan(89 * 86_400_000);
    expect((await cli(on, 'api-keys', 'list')).output).toMatch(/purchases only scopes purchases:write,accounts:read created \S+ by cli expires 20\d\d-/);
    expect((await cli(on, 'api-keys', 'create', '--name', 'y', '--role', 'auditor', '--scopes', 'usage:write')).exitCode).toBe(1);
    expect((await cli(on, 'api-keys', 'create', '--name', 'z', '--role', 'service', '--scopes', 'everything')).exitCode).toBe(2);
    expect((await cli(on, 'api-keys', 'create', '--name', 'w', '--role', 'service', '--expires-at', '2001-01-01T00:00:00Z')).exitCode).toBe(1);
  });

  it("creates a key that replaces another, sharing that key's Idempotency-Keys, and refuses one that replaces no key of its role", async () => {
    const on = await database();
    const repository = new ApiKeyRepository(on.pool);
    const old = await repository.authenticate((await cli(on, 'api-keys', 'create', '--name', 'backend 2026', '--role', 'service')).output.trim());
    const created = await cli(on, 'api-keys', 'create', '--name', 'backend 2027', '--role', 'service', '--replaces', old.subject);
    expect(created.exitCode).toBe(0);
    const rotated = await repository.authenticate(created.output.trim());
    expect(rotated).toMatchObject({ role: 'service', idempotencyScope: old.subject });
    expect((await cli(on, 'api-keys', 'list')).output).toContain(`backend 2027 scopes accounts:read,usage:write,purchases:write,payments:write,holds:write created`);
    expect((await cli(on, 'api-keys', 'list')).output).toMatch(new RegExp(`^${rotated.subject} .* idempotency keys of ${old.subject}$`, 'm'));
    expect((await cli(on, 'api-keys', 'create', '--name', 'wrong role', '--role', 'admin', '--replaces', old.subject)).exitCode).toBe(1);
  });

  it("prints the repository's version with --version and -V, and opens no database for it", async () => {
    const manifest = JSON.parse(await readFile(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
    for (const flag of ['--version', '-V']) {
      // A database that cannot be reached: a command that opened it would fail.
      expect(await runCli({ DATABASE_URL: 'postgres://nobody@127.0.0.1:1/none' }, flag)).toEqual({ output: `token-ledger ${manifest.version}\n`, exitCode: 0 });
    }
  });
});

function restore(saved: Record<string, string | undefined>): void {
  for (const [name, value] of Object.entries(saved)) {
    if (value === undefined) delete process.env[name];
    else process.env[name] = value;
  }
}
