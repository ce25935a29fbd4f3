import { jest } from '@jest/globals';
import { createPublicKey, generateKeyPairSync, randomUUID, type KeyObject } from 'node:crypto';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createAuditBundle, HASH_METADATA_KEY, keyId, sealEvents, verifyAuditBundle, type TokenAccountSummary } from '@app/audit';
import { AccountAudit, AccountChecksBusyError, StreamNotReplayableError, turnWaitOf, verifyAccount } from '@app/operations';
import { connectionPairsMaxOf, withConnectionPair } from '@app/database';
import { EVENT_STORE, formatPosition, PostgresEventStore, readWholeStream, type EventStore, type EventToAppend } from '@app/event-store';
import pg, { type Pool } from 'pg';
import { CommandHandling, eventMetadata, ReadModelConsistency } from '@app/event-sourcing';
import { decideTokenAccount, initialTokenAccountState, tokenAccountDecider, tokenAccountStreamId, type TokenAccountCommand } from '@app/ledger';
import { InlineProjections, PROJECTIONS, rebuildAccount } from '@app/projections';
import { appendDecided, seededRandom, type GeneratedAccount } from '@app/testing';
import { AUDIT_SIGNING_KEY } from '../apps/api/src/audit/audit-signing-key.js';
import { runCli } from './support/run-cli.js';
import { startTestApp, TEST_ACTOR, TEST_DATA_DIR, type TestApp } from './support/test-app.js';
import { createTestDatabase } from './support/test-database.js';

/**
 * The auditor's API on the real app and database: raw stream pages and NDJSON, as-of balances,
 * verification of the hash chain and the read models after direct SQL tampering, and signed
 * bundles checked offline by the real CLI.
 */
let testApp: TestApp;
let directory: string;

beforeAll(async () => {
  // `record` waits for the runner itself, not just the inline rows. The runner sees an event only
  // once every older transaction in the cluster has ended, and the test cluster is shared by suites
  // running side by side: in one CI run the suite's first write waited past the default 5 s (the
  // suite alone passes), so the wait is bounded by 20 s here, still inside the test's 30 s.
  testApp = await startTestApp({ READ_YOUR_WRITES_TIMEOUT_MS: '20000' });
  directory = await mkdtemp(join(tmpdir(), 'audit-e2e-'));
});

afterAll(async () => {
  await testApp.close();
});

const T = (day: number) => new Date(Date.UTC(2026, 0, day, 10));

/**
 * Writes through the application's own CommandHandling (sealed like any command), at a chosen domain
 * time, and waits until the projection has applied it: tests then tamper with events the runner has
 * already passed (a runner that met a tampered event would stop, by design, and hold up every test).
 */
async function record(userId: string, kind: 'buy' | 'use', amount: number, now: Date): Promise<void> {
  const transactionId = randomUUID();
  const command: TokenAccountCommand =
    kind === 'buy'
      ? { type: 'AddTokens', data: { userId, amount, paymentId: randomUUID(), description: null, transactionId, now } }
      : { type: 'UseTokens', data: { userId, amount, description: null, transactionId, now } };
  const handled = await testApp.app.get(CommandHandling).handle({ streamId: tokenAccountStreamId(userId), decider: tokenAccountDecider, decide: (state) => decideTokenAccount(command, state), metadata: eventMetadata({ requestId: randomUUID(), actor: TEST_ACTOR }) });
  expect(await testApp.app.get(ReadModelConsistency).waitFor(handled.position)).toBe(true);
}

/** A purchase of 100 on day 1, then usages of 10 on days 2..(1 + usages). */
async function account(usages: number): Promise<string> {
  const userId = randomUUID();
  await record(userId, 'buy', 100, T(1));
  for (let day = 2; day < 2 + usages; day += 1) await record(userId, 'use', 10, T(day));
  return userId;
}

async function verify(userId: string) {
  const response = await testApp.http().get(`/v1/audit/accounts/${userId}/verify`).expect(200);
  return response.body;
}

async function sql(text: string, values: unknown[]): Promise<void> {
  await testApp.database.pool.query(text, values);
}

describe('auditor API: the raw stream', () => {
  it('pages the stream with revision, position, type, data, metadata and time, and names the next page', async () => {
    const userId = await account(9);
    const revisions: string[] = [];
    const pageSizes: number[] = [];
    let from: string | null = '0';
    while (from !== null) {
      const body: { streamRevision: string; nextFromRevision: string | null; data: { revision: string }[] } = (await testApp.http().get(`/v1/audit/accounts/${userId}/events?fromRevision=${from}&limit=4`).expect(200)).body;
      expect(body.streamRevision).toBe('9');
      revisions.push(...body.data.map((event) => event.revision));
      pageSizes.push(body.data.length);
      from = body.nextFromRevision;
    }
    expect(pageSizes).toEqual([4, 4, 2]);
    expect(revisions).toEqual(Array.from({ length: 10 }, (_, index) => String(index)));
    const first = (await testApp.http().get(`/v1/audit/accounts/${userId}/events?limit=1`).expect(200)).body;
    expect(first).toEqual({ userId, streamRevision: '9', nextFromRevision: '1', data: [expect.objectContaining({ revision: '0', type: 'TokensPurchased', position: expect.stringMatching(/^\d+\/\d+$/), time: expect.any(String) })] });
    expect(first.data[0].data).toMatchObject({ amount: 100, balanceAfter: 100, occurredAt: T(1).toISOString() });
    expect(first.data[0].metadata).toMatchObject({ schemaVersion: 1, hash: expect.stringMatching(/^[0-9a-f]{64}$/) });
  });

  it('streams the whole stream as NDJSON, the same events as the pages', async () => {
    const userId = await account(9);
    const paged = (await testApp.http().get(`/v1/audit/accounts/${userId}/events?limit=1000`).expect(200)).body.data;
    const response = await testApp.http().get(`/v1/audit/accounts/${userId}/events?format=ndjson`).expect(200);
    expect(response.headers['content-type']).toMatch(/^application\/x-ndjson/);
    const lines = response.text.trimEnd().split('\n').map((line) => JSON.parse(line));
    expect(lines).toEqual(paged);
    // The stream is produced a page at a time: a small page size gives the same events in three pages.
    const pages = [];
    for await (const page of await testApp.app.get(AccountAudit).pages(userId, 4)) pages.push(page);
    expect(pages.map((page) => page.length)).toEqual([4, 4, 2]);
    expect(pages.flat()).toEqual(paged);
  });

  it('refuses paging parameters with NDJSON, which streams the whole stream, naming each', async () => {
    const userId = await account(2);
    for (const [query, fields] of [
      ['limit=1', ['limit']],
      ['fromRevision=1', ['fromRevision']],
      ['fromRevision=0&limit=100', ['fromRevision', 'limit']],
    ] as const) {
      const response = await testApp.http().get(`/v1/audit/accounts/${userId}/events?format=ndjson&${query}`).expect(400);
      expect(response.body).toMatchObject({ code: 'VALIDATION_FAILED', errors: fields.map((field) => ({ field, rule: 'notWithNdjson', message: `${field} does not apply to format=ndjson, which streams the whole stream` })) });
    }
  });

  it('refuses bad paging parameters, naming the field and the rule', async () => {
    const userId = await account(1);
    for (const [query, field, rule] of [
      ['limit=0', 'limit', 'min'],
      ['limit=1001', 'limit', 'max'],
      ['limit=2.5', 'limit', 'isInt'],
      ['limit=5.0', 'limit', 'isInt'],
      ['fromRevision=2.0', 'fromRevision', 'isInt'],
      ['fromRevision=-1', 'fromRevision', 'min'],
      ['format=csv', 'format', 'isIn'],
    ] as const) {
      const response = await testApp.http().get(`/v1/audit/accounts/${userId}/events?${query}`).expect(400);
      expect(response.body).toMatchObject({ code: 'VALIDATION_FAILED', errors: [expect.objectContaining({ field, rule })] });
    }
  });

  it('answers 404 ACCOUNT_NOT_FOUND for a user with no stream, on every account endpoint', async () => {
    const userId = randomUUID();
    for (const path of ['events', 'events?format=ndjson', 'balance?revision=0', 'verify', 'bundle']) {
      const response = await testApp.http().get(`/v1/audit/accounts/${userId}/${path}`).expect(404);
      expect(response.body).toMatchObject({ code: 'ACCOUNT_NOT_FOUND', userId });
    }
  });
});

describe('auditor API: balances as of a point', () => {
  it('replays to a revision and to a time: before the first event, between events, after the last', async () => {
    const userId = await account(3); // 100 on day 1, then 90, 80, 70 on days 2, 3, 4.
    const balance = async (query: string) => (await testApp.http().get(`/v1/audit/accounts/${userId}/balance?${query}`).expect(200)).body;
    expect(await balance('revision=0')).toMatchObject({ userId, balance: 100, revision: '0' });
    expect(await balance('revision=2')).toMatchObject({ userId, balance: 80, revision: '2' });
    expect(await balance('revision=3')).toMatchObject({ userId, balance: 70, revision: '3' });
    expect(await balance(`at=${new Date(T(1).getTime() - 1).toISOString()}`)).toMatchObject({ userId, balance: 0, revision: '-1' });
    expect(await balance(`at=${T(1).toISOString()}`)).toMatchObject({ userId, balance: 100, revision: '0' });
    expect(await balance(`at=${new Date(T(3).getTime() + 3_600_000).toISOString()}`)).toMatchObject({ userId, balance: 80, revision: '2' });
    expect(await balance(`at=${encodeURIComponent(new Date().toISOString())}`)).toMatchObject({ userId, balance: 70, revision: '3' });
  });

  it('refuses a revision past the end of the stream, naming it and the last revision, rather than replaying to the end', async () => {
    const userId = await account(3);
    for (const revision of ['4', '99']) {
      const response = await testApp.http().get(`/v1/audit/accounts/${userId}/balance?revision=${revision}`).expect(400);
      expect(response.body).toMatchObject({ code: 'REVISION_OUT_OF_RANGE', field: 'revision', revision, streamRevision: '3', detail: `revision ${revision} is past the end of the stream, whose last revision is 3` });
    }
  });

  it('takes exactly one of at and revision, each valid', async () => {
    const userId = await account(1);
    for (const query of ['', 'at=2026-01-01T00:00:00Z&revision=1']) {
      const response = await testApp.http().get(`/v1/audit/accounts/${userId}/balance?${query}`).expect(400);
      expect(response.body).toMatchObject({ code: 'VALIDATION_FAILED', errors: [{ field: 'at', rule: 'exactlyOneOf' }, { field: 'revision', rule: 'exactlyOneOf' }] });
    }
    // Not a time at all, or not an RFC 3339 date-time with an offset: one rule says so.
    for (const at of ['yesterday', '2026-W01-1T00:00:00Z', '2026-01-01', '2026-01-01T00:00:00%2B0100', '2026-02-30T00:00:00Z']) {
      expect((await testApp.http().get(`/v1/audit/accounts/${userId}/balance?at=${at}`).expect(400)).body.errors).toEqual([expect.objectContaining({ field: 'at', rule: 'isDateTime' })]);
    }
    // A bare + in a query string reads as a space: the message says how to send it; %2B is taken.
    const bare = await testApp.http().get(`/v1/audit/accounts/${userId}/balance?at=2026-01-01T02:00:00+02:00`).expect(400);
    expect(bare.body.errors).toEqual([expect.objectContaining({ field: 'at', rule: 'isDateTime', message: expect.stringContaining('in a query string a + reads as a space, so send it as %2B') })]);
    expect((await testApp.http().get(`/v1/audit/accounts/${userId}/balance?at=2026-01-01T02:00:00%2B02:00`).expect(200)).body).toMatchObject({ balance: 0 });
    expect((await testApp.http().get(`/v1/audit/accounts/${userId}/balance?at=yesterday`).expect(400)).body.errors[0].message).not.toContain('%2B');
    expect((await testApp.http().get(`/v1/audit/accounts/${userId}/balance?revision=-1`).expect(400)).body.errors).toEqual([expect.objectContaining({ field: 'revision', rule: 'min' })]);
    expect((await testApp.http().get(`/v1/audit/accounts/${userId}/balance?revision=9007199254740992`).expect(400)).body.errors).toEqual([expect.objectContaining({ field: 'revision', rule: 'max' })]);
    expect((await testApp.http().get(`/v1/audit/accounts/${userId}/balance?revision=1.0`).expect(400)).body.errors).toEqual([expect.objectContaining({ field: 'revision', rule: 'isInt' })]);
    // Later than the service's time it would be a forecast, not a state the ledger passed through.
    const later = new Date(Date.now() + 60_000).toISOString();
    const future = await testApp.http().get(`/v1/audit/accounts/${userId}/balance?at=${encodeURIComponent(later)}`).expect(400);
    expect(future.body.errors).toEqual([{ field: 'at', rule: 'notAfterNow', message: expect.stringMatching(/^at must not be later than the service's time \(\d{4}-/) }]);
    await testApp.http().get(`/v1/audit/accounts/${userId}/balance?at=${encodeURIComponent(new Date().toISOString())}`).expect(200);
  });
});

describe('auditor API: verification', () => {
  it('reports an intact chain and read models that match the replay', async () => {
    const userId = await account(4);
    expect(await verify(userId)).toEqual({
      userId,
      ok: true,
      streamRevision: '4',
      chain: { ok: true, eventCount: 5, headHash: expect.stringMatching(/^[0-9a-f]{64}$/), unsealedPrefix: 0, reason: 'chain intact' },
      readModels: { differences: [], replayError: null },
    });
  });

  it('finds a direct SQL change to an event amount at its revision', async () => {
    const userId = await account(4);
    await sql("UPDATE events SET data = jsonb_set(data, '{amount}', '1') WHERE stream_id = $1 AND stream_revision = 2", [tokenAccountStreamId(userId)]);
    const report = await verify(userId);
    expect(report).toMatchObject({ ok: false, chain: { ok: false, firstBadRevision: '2', reason: expect.stringContaining('does not match its hash') } });
    // The edited amount no longer agrees with its balanceAfter: the ledger's own replay refuses it too.
    expect(report.readModels.replayError).toMatch(/balanceAfter/);
  });

  it('reports an event of a type the ledger does not know, sealed into an intact chain, as a replay the ledger refuses', async () => {
    const userId = await account(4);
    const streamId = tokenAccountStreamId(userId);
    const store = testApp.app.get<EventStore>(EVENT_STORE, { strict: false });
    const headHash = (await readWholeStream(store, streamId)).at(-1)?.metadata?.[HASH_METADATA_KEY] as string;
    // As a newer version's event would be after a rollback, or a forger's who recomputed the hash: no projection writes a row for it.
    const bonus: EventToAppend = { id: randomUUID(), type: 'TokensBonus', data: { userId, amount: 5, occurredAt: new Date().toISOString() } };
    await store.append(streamId, sealEvents(streamId, 5n, headHash, [bonus]), { expectedRevision: 4n });
    expect(await verify(userId)).toMatchObject({
      ok: false,
      streamRevision: '5',
      chain: { ok: true, eventCount: 6 },
      readModels: { differences: [], replayError: expect.stringContaining('unknown token account event {"type":"TokensBonus"') },
    });
    expect((await testApp.http().get(`/v1/audit/accounts/${userId}/bundle`).expect(409)).body).toMatchObject({ code: 'STREAM_NOT_REPLAYABLE' });
    // The stream's revision record removed as well: both findings, in a report, not a failed request.
    await sql('DELETE FROM event_streams WHERE stream_id = $1', [streamId]);
    expect(await verify(userId)).toMatchObject({
      ok: false,
      streamRevision: '-1',
      chain: { ok: false, firstBadRevision: '0', reason: 'the stream has events but no recorded revision' },
      readModels: { differences: [], replayError: expect.stringContaining('unknown token account event {"type":"TokensBonus"') },
    });
  });

  it('finds a deleted middle event at the revision it leaves empty', async () => {
    const userId = await account(4);
    await sql('DELETE FROM events WHERE stream_id = $1 AND stream_revision = 2', [tokenAccountStreamId(userId)]);
    expect(await verify(userId)).toMatchObject({ ok: false, chain: { ok: false, firstBadRevision: '2' } });
  });

  it('finds two events whose revisions were swapped', async () => {
    const userId = await account(4);
    const streamId = tokenAccountStreamId(userId);
    await sql('UPDATE events SET stream_revision = 1000 WHERE stream_id = $1 AND stream_revision = 1', [streamId]);
    await sql('UPDATE events SET stream_revision = 1 WHERE stream_id = $1 AND stream_revision = 2', [streamId]);
    await sql('UPDATE events SET stream_revision = 2 WHERE stream_id = $1 AND stream_revision = 1000', [streamId]);
    expect(await verify(userId)).toMatchObject({ ok: false, chain: { ok: false, firstBadRevision: '1' } });
  });

  it('finds the newest event deleted, against the revision the store records', async () => {
    const userId = await account(4);
    await sql('DELETE FROM events WHERE stream_id = $1 AND stream_revision = 4', [tokenAccountStreamId(userId)]);
    expect(await verify(userId)).toMatchObject({ ok: false, streamRevision: '4', chain: { ok: false, firstBadRevision: '4', reason: expect.stringContaining('events were removed') } });
  });

  it('finds the newest events hidden by a lowered stream revision, and signs no bundle without them', async () => {
    const userId = await account(4);
    await sql('UPDATE event_streams SET revision = revision - 2 WHERE stream_id = $1', [tokenAccountStreamId(userId)]);
    expect(await verify(userId)).toMatchObject({ ok: false, streamRevision: '2', chain: { ok: false, firstBadRevision: '3', reason: expect.stringContaining('goes past the anchor at revision 2') } });
    const bundle = await testApp.http().get(`/v1/audit/accounts/${userId}/bundle`).expect(409);
    expect(bundle.body).toMatchObject({ code: 'CHAIN_BROKEN', firstBadRevision: '3' });
    // The record removed: the events it hid are still found, not taken for an account that never was.
    await sql('DELETE FROM event_streams WHERE stream_id = $1', [tokenAccountStreamId(userId)]);
    expect(await verify(userId)).toMatchObject({ ok: false, streamRevision: '-1', chain: { ok: false, firstBadRevision: '0', reason: 'the stream has events but no recorded revision' } });
  });

  it('fails a verification whose read-model reads lose the database or fail on its side (a deadlock, a timeout), rather than report the account as broken; reports any other failure of the replay as a finding', async () => {
    const userId = await account(2);
    const store = testApp.app.get<EventStore>(EVENT_STORE, { strict: false });
    const failing = (error: Error) => new AccountAudit(store, { options: { max: 10 }, connect: () => Promise.reject(error), query: () => Promise.reject(error) } as unknown as Pool);
    await expect(failing(new Error('Connection terminated unexpectedly')).verify(userId)).rejects.toThrow('Connection terminated unexpectedly');
    // A deadlock or a timeout of the check's own statements says nothing of the account either.
    await expect(failing(Object.assign(new Error('deadlock detected'), { code: '40P01' })).verify(userId)).rejects.toThrow('deadlock detected');
    await expect(failing(Object.assign(new Error('canceling statement due to statement timeout'), { code: '57014' })).verify(userId)).rejects.toThrow('statement timeout');
    expect(await failing(new Error('a row no replay explains')).verify(userId)).toMatchObject({ ok: false, chain: { ok: true }, readModels: { replayError: 'a row no replay explains' } });
  });

  it('answers a balance whose stream cannot be read with the read\'s own failure, not as a stream the ledger refuses', async () => {
    const userId = await account(1);
    const store = testApp.app.get<EventStore>(EVENT_STORE, { strict: false });
    const denied = Object.assign(new Error('permission denied for table events'), { code: '42501' });
    const unreadable = { postgres: store.postgres, readStream: () => Promise.reject(denied) } as unknown as EventStore;
    const answer = new AccountAudit(unreadable, testApp.database.pool).balanceAsOf(userId, { revision: 1n });
    await expect(answer).rejects.toBe(denied);
    // Events the ledger refuses are the stream's fault: those are STREAM_NOT_REPLAYABLE.
    await sql(
      "UPDATE events SET event_type = 'TokensPurchased', data = (SELECT data FROM events WHERE stream_id = $1 AND stream_revision = 0) WHERE stream_id = $1 AND stream_revision = 1",
      [tokenAccountStreamId(userId)],
    );
    await expect(new AccountAudit(store, testApp.database.pool).balanceAsOf(userId, { revision: 1n })).rejects.toBeInstanceOf(StreamNotReplayableError);
  });

  it('reports the read-model rows of a user with no events, each unexpected, rather than answer 404 as for a user with neither', async () => {
    const stranger = randomUUID();
    await testApp.http().get(`/v1/audit/accounts/${stranger}/verify`).expect(404);
    await sql(
      `INSERT INTO payments (id, user_id, order_id, package_id, tokens_purchased, amount, currency, status, provider, created_at, updated_at, expires_at, last_event_id, last_event_revision)
       VALUES ($1, $2, 'order-made-up', 'starter', 100, 500, 'USD', 'COMPLETED', 'mock', now(), now(), now(), $3, 0)`,
      [randomUUID(), stranger, randomUUID()],
    );
    expect(await verify(stranger)).toEqual({
      userId: stranger,
      ok: false,
      streamRevision: '-1',
      chain: { ok: true, eventCount: 0, headHash: null, unsealedPrefix: 0, reason: 'no events' },
      readModels: { differences: [expect.objectContaining({ userId: stranger, kind: 'unexpected' })], replayError: null },
    });
  });

  it('reads an account of more rows than a call may take arguments (a million in production): each found, not a stack overflow reported as the account broken', async () => {
    const stranger = randomUUID();
    const rows = 200_000;
    await sql(
      `INSERT INTO token_transactions (id, user_id, amount, transaction_type, balance_after, created_at, event_id, stream_revision)
       SELECT gen_random_uuid(), $1, 1, 'purchase', n, now(), gen_random_uuid(), n FROM generate_series(1, $2::int) AS n`,
      [stranger, rows],
    );
    const store = testApp.app.get<EventStore>(EVENT_STORE, { strict: false });
    const findings = await new AccountAudit(store, testApp.database.pool).findings(stranger);
    expect(findings).toHaveLength(rows);
    expect(findings.every((finding) => finding.kind === 'unexpected' && finding.userId === stranger)).toBe(true);
  });

  it('lists every corrupted read-model row: a transaction amount and the balance', async () => {
    const userId = randomUUID();
    await testApp.http().post(`/v1/accounts/${userId}/purchases`).send({ amount: 100, paymentId: randomUUID() }).expect(201);
    for (let index = 0; index < 3; index += 1) await testApp.http().post(`/v1/accounts/${userId}/usage`).send({ amount: 10 }).expect(201);
    await sql('UPDATE token_transactions SET amount = -11 WHERE user_id = $1 AND stream_revision = 2', [userId]);
    await sql('UPDATE user_tokens SET balance = 71 WHERE user_id = $1', [userId]);
    const report = await verify(userId);
    expect(report.chain.ok).toBe(true);
    expect(report.ok).toBe(false);
    expect(report.readModels.differences).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ userId, projection: 'token_accounts', kind: 'missing', detail: expect.stringMatching(new RegExp(`^\\(${userId},70,`)) }),
        expect.objectContaining({ userId, projection: 'token_accounts', kind: 'unexpected', detail: expect.stringMatching(new RegExp(`^\\(${userId},71,`)) }),
        expect.objectContaining({ kind: 'missing', detail: expect.stringContaining(',-10,usage,') }),
        expect.objectContaining({ kind: 'unexpected', detail: expect.stringContaining(',-11,usage,') }),
      ]),
    );
    expect(report.readModels.differences).toHaveLength(4);
  });

  it('keeps one intact chain when 30 usages race on one account over HTTP', async () => {
    const userId = randomUUID();
    await testApp.http().post(`/v1/accounts/${userId}/purchases`).send({ amount: 20, paymentId: randomUUID() }).expect(201);
    const responses = await Promise.all(Array.from({ length: 30 }, () => testApp.http().post(`/v1/accounts/${userId}/usage`).send({ amount: 1 })));
    expect(responses.filter((response) => response.status === 201)).toHaveLength(20);
    expect(await verify(userId)).toMatchObject({ ok: true, streamRevision: '20', chain: { ok: true, eventCount: 21 } });
  });

  it('judges the chain up to the revision it anchored to while writes continue: no false alarm, bundles still signed', async () => {
    const userId = randomUUID();
    await testApp.http().post(`/v1/accounts/${userId}/purchases`).send({ amount: 1_000, paymentId: randomUUID() }).expect(201);
    let writing = true;
    const writer = (async () => {
      let written = 0;
      while (writing && written < 400) {
        await Promise.all(Array.from({ length: 4 }, () => testApp.http().post(`/v1/accounts/${userId}/usage`).send({ amount: 1 }).expect(201)));
        written += 4;
      }
    })();
    const publicKey = ((await testApp.http().get('/v1/audit/signing-key').expect(200)).body as { publicKeyPem: string }).publicKeyPem;
    const chains: unknown[] = [];
    const bundles: unknown[] = [];
    for (let round = 0; round < 15; round += 1) {
      chains.push((await verify(userId)).chain.ok);
      const response = await testApp.http().get(`/v1/audit/accounts/${userId}/bundle`);
      // Each bundle verifies offline: its chain, its signed head and the balance it signs, replayed.
      bundles.push([response.status, verifyAuditBundle(response.text, publicKey).ok]);
    }
    writing = false;
    await writer;
    expect({ chains, bundles }).toEqual({ chains: chains.map(() => true), bundles: bundles.map(() => [200, true]) });
  });
});

describe('auditor API: signed bundles, checked offline by the CLI', () => {
  async function downloadBundle(userId: string): Promise<string> {
    const response = await testApp.http().get(`/v1/audit/accounts/${userId}/bundle`).expect(200);
    expect(response.headers['content-type']).toMatch(/^application\/x-ndjson/);
    expect(response.headers['content-disposition']).toBe(`attachment; filename="token-account-${userId}.audit.ndjson"`);
    return response.text;
  }

  async function verifyBundle(text: string, ...options: string[]) {
    const file = join(directory, `${randomUUID()}.ndjson`);
    await writeFile(file, text);
    return runCli({ DATA_DIR: TEST_DATA_DIR, DATABASE_URL: 'postgres://nobody@127.0.0.1:1/none' }, 'audit', 'verify-bundle', file, ...options);
  }

  it('passes an untouched bundle with the development key and with the published public key', async () => {
    const userId = await account(4);
    const text = await downloadBundle(userId);
    const published = (await testApp.http().get('/v1/audit/signing-key').expect(200)).body;
    expect(JSON.parse(text.trimEnd().split('\n').at(-1) ?? '')).toMatchObject({ kind: 'head', eventCount: 5, keyId: published.keyId });
    const signedAt = (JSON.parse(text.trimEnd().split('\n').at(-1) ?? '') as { createdAt: string }).createdAt;
    expect(await verifyBundle(text)).toEqual({ output: `bundle intact: token-account-${userId}, 5 events, head hash ${JSON.parse(text.split('\n')[4] ?? '').hash}, signed ${signedAt} with key ${published.keyId}\n`, exitCode: 0 });
    const keyFile = join(directory, 'public.pem');
    await writeFile(keyFile, published.publicKeyPem);
    expect((await verifyBundle(text, '--public-key', keyFile)).exitCode).toBe(0);
  });

  it('checks a bundle against an earlier one of the stream kept apart (--since): it continues it unchanged, or it is refused', async () => {
    const userId = await account(2);
    const earlier = await downloadBundle(userId);
    await record(userId, 'use', 10, T(20));
    const later = await downloadBundle(userId);
    const earlierFile = join(directory, `${randomUUID()}.ndjson`);
    await writeFile(earlierFile, earlier);
    const continued = await verifyBundle(later, '--since', earlierFile);
    const signedAt = (bundle: string) => (JSON.parse(bundle.trimEnd().split('\n').at(-1) ?? '') as { createdAt: string }).createdAt;
    const { keyId } = (await testApp.http().get('/v1/audit/signing-key').expect(200)).body as { keyId: string };
    expect(continued).toEqual({
      output: `bundle intact: token-account-${userId}, 4 events, head hash ${JSON.parse(later.split('\n')[3] ?? '').hash}, signed ${signedAt(later)} with key ${keyId}; it continues the earlier bundle ${earlierFile} (signed ${signedAt(earlier)}) unchanged\n`,
      exitCode: 0,
    });
    // The later bundle given as the earlier one: its last event is not in the earlier one.
    const laterFile = join(directory, `${randomUUID()}.ndjson`);
    await writeFile(laterFile, later);
    expect(await verifyBundle(earlier, '--since', laterFile)).toEqual({ output: expect.stringMatching(/^bundle NOT intact at revision 3: the stream ends at revision 2, before the earlier bundle's last revision 3: events were removed\n$/), exitCode: 1 });
    const otherFile = join(directory, `${randomUUID()}.ndjson`);
    await writeFile(otherFile, await downloadBundle(await account(1)));
    // An earlier bundle of another stream, one that cannot be read, or one not intact under its key: the check could not be made (a usage error, saying why).
    expect(await verifyBundle(later, '--since', otherFile)).toEqual({ output: expect.stringMatching(/^error: the earlier bundle .* is of token-account-.*, this one of token-account-/), exitCode: 2 });
    expect(await verifyBundle(later, '--since', join(directory, 'missing.ndjson'))).toEqual({ output: expect.stringMatching(/^error: cannot read the earlier bundle .*missing\.ndjson: ENOENT/), exitCode: 2 });
    const strangerKey = join(directory, `${randomUUID()}.pem`);
    await writeFile(strangerKey, generateKeyPairSync('ed25519').publicKey.export({ type: 'spki', format: 'pem' }));
    expect(await verifyBundle(later, '--since', earlierFile, '--since-public-key', strangerKey)).toEqual({
      output: expect.stringMatching(/^error: the earlier bundle .* is not intact: the head signature is not valid for this public key; the head names the key [0-9a-f]{64}, and this key is [0-9a-f]{64}: was it signed with another key\?\n$/),
      exitCode: 2,
    });
    expect(await verifyBundle(later, '--since', earlierFile, '--since-public-key', join(directory, 'no-such-key.pem'))).toEqual({ output: expect.stringMatching(/^error: cannot read the public key .*no-such-key\.pem: ENOENT/), exitCode: 2 });
    expect(await verifyBundle(later, '--since-public-key', strangerKey)).toEqual({ output: expect.stringMatching(/^error: --since-public-key is the key of the earlier bundle --since names: give --since too\n$/), exitCode: 2 });
    // A bundle not intact is reported as such (exit 1), whatever the earlier bundle it is checked against.
    const edited = later.replace('"amount":10', '"amount":1');
    expect(edited).not.toBe(later);
    expect(await verifyBundle(edited, '--since', otherFile)).toEqual({ output: expect.stringMatching(/^bundle NOT intact at revision \d+: /), exitCode: 1 });
    expect(await verifyBundle(edited, '--since', join(directory, 'missing.ndjson'))).toEqual({ output: expect.stringMatching(/^bundle NOT intact at revision \d+: /), exitCode: 1 });
    expect(await verifyBundle(edited, '--since', earlierFile, '--since-public-key', join(directory, 'no-such-key.pem'))).toEqual({ output: expect.stringMatching(/^bundle NOT intact at revision \d+: /), exitCode: 1 });
  });

  it("says how many leading events were stored without a hash (written before hashes on append), as the bundle's signed head states", async () => {
    const userId = await account(3);
    await sql("UPDATE events SET metadata = metadata - 'hash' WHERE stream_id = $1 AND stream_revision < 2", [tokenAccountStreamId(userId)]);
    const text = await downloadBundle(userId);
    expect(JSON.parse(text.trimEnd().split('\n').at(-1) ?? '')).toMatchObject({ kind: 'head', unsealedPrefix: 2 });
    const checked = await verifyBundle(text);
    expect(checked).toEqual({ output: expect.stringContaining("its first 2 events were stored without a hash (written before hashes on append, covered by the next one's)") as unknown, exitCode: 0 });
  });

  it('fails a bundle with a changed amount or a removed line, naming the first bad revision', async () => {
    const userId = await account(4);
    const text = await downloadBundle(userId);
    const lines = text.split('\n');
    const edited = [...lines];
    edited[2] = (lines[2] ?? '').replace('"amount":10', '"amount":1');
    expect(edited[2]).not.toBe(lines[2]);
    expect(await verifyBundle(edited.join('\n'))).toEqual({ output: expect.stringMatching(/^bundle NOT intact at revision 2: revision 2 does not match its hash/), exitCode: 1 });
    const removed = lines.filter((_, index) => index !== 1).join('\n');
    expect(await verifyBundle(removed)).toEqual({ output: expect.stringMatching(/^bundle NOT intact at revision 1: /), exitCode: 1 });
  });

  it('exits 2 when it cannot read the bundle or the key, and never needs a database', async () => {
    const missing = await runCli({ DATA_DIR: TEST_DATA_DIR }, 'audit', 'verify-bundle', join(directory, 'no-such-file.ndjson'));
    expect(missing).toEqual({ output: expect.stringMatching(/^error: cannot read the bundle .*no-such-file\.ndjson: ENOENT/), exitCode: 2 });
    const userId = await account(1);
    const noKey = await verifyBundle(await downloadBundle(userId), '--public-key', join(directory, 'no-such-key.pem'));
    expect(noKey).toEqual({ output: expect.stringMatching(/^error: cannot read the public key .*no-such-key\.pem: ENOENT/), exitCode: 2 });
    const noEarlier = await verifyBundle(await downloadBundle(userId), '--since', join(directory, 'no-such-earlier.ndjson'));
    expect(noEarlier).toEqual({ output: expect.stringMatching(/^error: cannot read the earlier bundle .*no-such-earlier\.ndjson: ENOENT/), exitCode: 2 });
    // A key of another kind cannot check the signature: that says nothing of the bundle.
    const x25519 = join(directory, 'x25519.pem');
    await writeFile(x25519, generateKeyPairSync('x25519').publicKey.export({ type: 'spki', format: 'pem' }));
    const wrongKind = await verifyBundle(await downloadBundle(userId), '--public-key', x25519);
    expect(wrongKind).toEqual({ output: expect.stringMatching(/^error: .*x25519\.pem holds a x25519 key, not the Ed25519 key bundles are signed with\n$/), exitCode: 2 });
    expect(await readFile(join(TEST_DATA_DIR, 'secrets', 'audit-signing-key.pem'), 'utf8')).toMatch(/BEGIN PRIVATE KEY/);
  });

  /** An account of 10,050 events (READ_COUNT_MAX, 10,000, a read: two pages), appended 1,005 at a time and sealed; its user id and head hash. */
  async function longAccount(): Promise<{ userId: string; headHash: string }> {
    const userId = randomUUID();
    const streamId = tokenAccountStreamId(userId);
    const store = testApp.app.get<EventStore>(EVENT_STORE, { strict: false });
    let headHash: string | null = null;
    let state = tokenAccountDecider.initialState;
    for (let revision = 0; revision < 10_050; revision += 1_005) {
      const commands: TokenAccountCommand[] = Array.from({ length: 1_005 }, (_, index) =>
        revision + index === 0
          ? { type: 'AddTokens', data: { userId, amount: 1_000_000, paymentId: randomUUID(), description: null, transactionId: randomUUID(), now: T(1) } }
          : { type: 'UseTokens', data: { userId, amount: 1, description: 'é'.repeat(index % 7), transactionId: randomUUID(), now: T(1) } },
      );
      const events: EventToAppend[] = commands.flatMap((command) => {
        const decided = decideTokenAccount(command, state);
        for (const event of decided) state = tokenAccountDecider.evolve(state, event);
        return decided.map((event) => ({ id: randomUUID(), type: event.type, data: event.data }));
      });
      const sealed = sealEvents(streamId, BigInt(revision), headHash, events);
      headHash = sealed.at(-1)?.metadata[HASH_METADATA_KEY] as string;
      await store.append(streamId, sealed, { expectedRevision: revision === 0 ? 'no_stream' : BigInt(revision - 1) });
    }
    return { userId, headHash: headHash ?? '' };
  }

  it('writes a bundle of a stream longer than one read a page at a time, the same bundle the whole stream in memory gives', async () => {
    const { userId, headHash } = await longAccount();
    const streamId = tokenAccountStreamId(userId);
    const store = testApp.app.get<EventStore>(EVENT_STORE, { strict: false });
    const text = await downloadBundle(userId);
    const key = testApp.app.get<KeyObject>(AUDIT_SIGNING_KEY, { strict: false });
    const events = await readWholeStream(store, streamId);
    const head = JSON.parse(text.trimEnd().split('\n').at(-1) ?? '') as { createdAt: string; ledger: TokenAccountSummary };
    const whole = createAuditBundle(
      events.map((event) => ({ ...event, position: formatPosition(event.position), createdAt: event.createdAt.toISOString() })),
      { privateKey: key, streamId, createdAt: head.createdAt, ledger: head.ledger },
    );
    expect(text).toBe(whole);
    expect(await verifyBundle(text)).toEqual({ output: `bundle intact: ${streamId}, 10050 events, head hash ${headHash}, signed ${head.createdAt} with key ${keyId(createPublicKey(key))}\n`, exitCode: 0 });
  });

  it.each([
    ['an amount changed', "data = jsonb_set(data, '{amount}', '2')"],
    // The chain's hash leaves the stored hash out: only the comparison with it finds this one.
    ['a stored hash removed', "metadata = metadata - 'hash'"],
    ['metadata replaced by an array (no hash, hashed as {})', "metadata = '[]'::jsonb"],
  ])('ends a bundle before its head when its second page changed after the check: the first page sent, never the head (%s)', async (_label, change) => {
    const { userId } = await longAccount();
    const store = testApp.app.get<EventStore>(EVENT_STORE, { strict: false });
    const key = testApp.app.get<KeyObject>(AUDIT_SIGNING_KEY, { strict: false });
    const { lines } = await new AccountAudit(store, testApp.database.pool).bundle(userId, key, () => new Date());
    // Between the check and the lines' second page: a direct SQL change, which the check would have refused (CHAIN_BROKEN).
    await sql(`UPDATE events SET ${change} WHERE stream_id = $1 AND stream_revision = 10020`, [tokenAccountStreamId(userId)]);
    const written: string[] = [];
    await expect(
      (async () => {
        for await (const chunk of lines) written.push(chunk);
      })(),
    ).rejects.toMatchObject({ code: 'CHAIN_BROKEN', firstBadRevision: 10_020n, reason: 'revision 10020 changed while its bundle was written' });
    expect(written.join('').trimEnd().split('\n')).toHaveLength(10_000);
    expect(written.join('')).not.toContain('"kind":"head"');
  });

  it('answers 409 CHAIN_BROKEN when the first page changed after the check, before any line is sent', async () => {
    const userId = await account(3);
    const store = testApp.app.get<EventStore>(EVENT_STORE, { strict: false });
    const key = testApp.app.get<KeyObject>(AUDIT_SIGNING_KEY, { strict: false });
    // The check's read gives the stream as stored; the lines' read, made after it, finds revision 2 changed.
    let reads = 0;
    const changing = {
      postgres: store.postgres,
      async readStream(...args: Parameters<EventStore['readStream']>) {
        const events = await store.readStream(...args);
        if (args[1]?.fromRevision === undefined || args[1].fromRevision === 0n) reads += 1;
        return reads < 2 ? events : events.map((event) => (event.revision === 2n ? { ...event, data: { ...(event.data as object), amount: 1 } } : event));
      },
    } as unknown as EventStore;
    await expect(new AccountAudit(changing, testApp.database.pool).bundle(userId, key, () => new Date())).rejects.toMatchObject({ code: 'CHAIN_BROKEN', firstBadRevision: 2n });
    expect(reads).toBe(2);
  });

  it('cuts the download short when its lines fail once it has begun: the client sees the transfer fail, not a bundle that ends early', async () => {
    const userId = await account(1);
    const audit = testApp.app.get(AccountAudit);
    async function* failing(): AsyncGenerator<string> {
      yield await Promise.resolve('{"kind":"event"}\n');
      throw new Error('the stream changed while its bundle was written');
    }
    const spy = jest.spyOn(audit, 'bundle').mockResolvedValueOnce({ streamId: tokenAccountStreamId(userId), lines: failing() });
    try {
      await expect(testApp.http().get(`/v1/audit/accounts/${userId}/bundle`)).rejects.toThrow(/aborted|socket hang up|ECONNRESET|terminated/);
    } finally {
      spy.mockRestore();
    }
  });

  it('finds a number edited past what JSON holds (1e999: Infinity once parsed) at its revision: a report and a refused bundle, not a failed request', async () => {
    const userId = await account(4);
    await sql("UPDATE events SET data = jsonb_set(data, '{amount}', '1e999'::jsonb) WHERE stream_id = $1 AND stream_revision = 3", [tokenAccountStreamId(userId)]);
    expect(await verify(userId)).toMatchObject({ ok: false, chain: { ok: false, firstBadRevision: '3', reason: expect.stringMatching(/^revision 3 cannot be hashed/) } });
    expect((await testApp.http().get(`/v1/audit/accounts/${userId}/bundle`).expect(409)).body).toMatchObject({ code: 'CHAIN_BROKEN', firstBadRevision: '3' });
    // The operator's check of every account reports it and goes on to the others.
    const other = await account(1);
    const report = await new AccountAudit(testApp.app.get<EventStore>(EVENT_STORE, { strict: false }), testApp.database.pool).findings(userId);
    expect(report).toContainEqual({ userId, projection: null, kind: 'chain', detail: expect.stringMatching(/^revision 3 cannot be hashed/) });
    expect(await verify(other)).toMatchObject({ ok: true });
  });

  it('finds the newest event hidden behind a gap: the revision lowered past a deleted event', async () => {
    const userId = await account(4);
    const streamId = tokenAccountStreamId(userId);
    await sql('DELETE FROM events WHERE stream_id = $1 AND stream_revision = 3', [streamId]);
    await sql('UPDATE event_streams SET revision = 2 WHERE stream_id = $1', [streamId]);
    expect(await verify(userId)).toMatchObject({ ok: false, streamRevision: '2', chain: { ok: false, firstBadRevision: '3', reason: expect.stringContaining('found 4') } });
    expect((await testApp.http().get(`/v1/audit/accounts/${userId}/bundle`).expect(409)).body).toMatchObject({ code: 'CHAIN_BROKEN', firstBadRevision: '3' });
  });

  it("runs more verifications and account rebuilds at once than the pool has connections: each holds one and reads through the store with a second, so they take turns rather than wait on each other", async () => {
    const database = await createTestDatabase();
    // Four connections, and a wait for one cut to 2 s: twelve verifications all holding one and waiting for a second would fail here.
    const pool = new pg.Pool({ connectionString: database.url, max: 4, connectionTimeoutMillis: 2_000 });
    const store = new PostgresEventStore(pool, { connectionString: database.url, appendHook: new InlineProjections(PROJECTIONS) });
    try {
      expect(connectionPairsMaxOf(pool)).toBe(1);
      const accounts = await Promise.all(
        Array.from({ length: 12 }, async (_, index) => {
          const account: GeneratedAccount = { userId: randomUUID(), state: initialTokenAccountState, revision: -1n };
          await appendDecided(store, seededRandom(`pool-${index}`), account, 8, T(1));
          return account.userId;
        }),
      );
      const verified = Promise.all(accounts.map((userId) => verifyAccount(store, pool, PROJECTIONS, userId)));
      const rebuilt = Promise.all(accounts.map((userId) => rebuildAccount(store, pool, PROJECTIONS, userId)));
      expect(await verified).toEqual(accounts.map(() => []));
      expect((await rebuilt).map((result) => result.userId)).toEqual(accounts);
      expect(await Promise.all(accounts.map((userId) => verifyAccount(store, pool, PROJECTIONS, userId)))).toEqual(accounts.map(() => []));
      expect(connectionPairsMaxOf(new pg.Pool({ max: 20 }))).toBe(9);
    } finally {
      await store.close();
      await pool.end();
      await database.drop();
    }
  });

  it("fails a verification or an account rebuild that waits for its turn longer than it may (a request's): ACCOUNT_CHECKS_BUSY, not a finding, and the line goes on", async () => {
    const database = await createTestDatabase();
    const pool = new pg.Pool({ connectionString: database.url, max: 4 });
    const store = new PostgresEventStore(pool, { connectionString: database.url, appendHook: new InlineProjections(PROJECTIONS) });
    let release = () => {};
    const holding = withConnectionPair(pool, () => new Promise<void>((resolve) => (release = resolve)));
    try {
      const account: GeneratedAccount = { userId: randomUUID(), state: initialTokenAccountState, revision: -1n };
      await appendDecided(store, seededRandom('turns'), account, 5, T(1));
      // The one place of a pool of four is taken.
      const audit = new AccountAudit(store, pool, { turnWaitMs: 100 });
      await expect(audit.verify(account.userId)).rejects.toMatchObject({ code: 'ACCOUNT_CHECKS_BUSY', waitedMs: 100 });
      await expect(rebuildAccount(store, pool, PROJECTIONS, account.userId, turnWaitOf(100))).rejects.toBeInstanceOf(AccountChecksBusyError);
      // Without a limit (the CLI's), a verification waits its turn; the ones that gave up left the line.
      const waiting = verifyAccount(store, pool, PROJECTIONS, account.userId);
      release();
      await holding;
      expect(await waiting).toEqual([]);
      expect(await audit.verify(account.userId)).toMatchObject({ ok: true });
    } finally {
      release();
      await store.close();
      await pool.end();
      await database.drop();
    }
  });

  it('refuses to sign a stream whose chain is broken', async () => {
    const userId = await account(2);
    await sql("UPDATE events SET data = jsonb_set(data, '{amount}', '1') WHERE stream_id = $1 AND stream_revision = 1", [tokenAccountStreamId(userId)]);
    const response = await testApp.http().get(`/v1/audit/accounts/${userId}/bundle`).expect(409);
    expect(response.body).toMatchObject({ code: 'CHAIN_BROKEN', firstBadRevision: '1' });
  });
});

describe('verification while the projection runner makes its first batch', () => {
  it("holds the checkpoint even before it has a row: a runner starting meanwhile waits, and the account's events are all replayed", async () => {
    // A database of its own, with no runner: the test plays the runner's first batch itself.
    const database = await createTestDatabase();
    const store = new PostgresEventStore(database.pool, { connectionString: database.url, appendHook: new InlineProjections(PROJECTIONS) });
    try {
      const random = seededRandom('checkpoint-race');
      const account: GeneratedAccount = { userId: randomUUID(), state: initialTokenAccountState, revision: -1n };
      await appendDecided(store, random, account, 12, T(1));
      const streamId = tokenAccountStreamId(account.userId);
      await database.pool.query("DELETE FROM projection_checkpoints WHERE name = 'token_accounts'");
      // The stream's hold lock taken first, so the verification stops right after it locked the checkpoint.
      const holder = await database.pool.connect();
      await holder.query('BEGIN');
      await holder.query("SELECT pg_advisory_xact_lock(hashtext('token-ledger stream hold'), hashtext($1))", [streamId]);
      const verified = verifyAccount(store, database.pool, PROJECTIONS, account.userId);
      await waitForAdvisoryLockWaiter(database.pool);
      // The runner's first batch: create the checkpoint, move it past the events, forget their inline records.
      const runner = await database.pool.connect();
      let runnerError: unknown;
      try {
        await runner.query("BEGIN; SET LOCAL lock_timeout = '500ms'");
        await runner.query("INSERT INTO projection_checkpoints (name, commit_position, prepare_position) VALUES ('token_accounts', 0, 0) ON CONFLICT (name) DO NOTHING");
        await runner.query("UPDATE projection_checkpoints SET commit_position = (SELECT max(transaction_id::text::bigint) + 1 FROM events) WHERE name = 'token_accounts'");
        await runner.query('DELETE FROM token_accounts_inline_commits');
        await runner.query('COMMIT');
      } catch (error) {
        runnerError = error;
        await runner.query('ROLLBACK');
      } finally {
        runner.release();
      }
      await holder.query('COMMIT');
      holder.release();
      expect(await verified).toEqual([]);
      expect(runnerError).toMatchObject({ code: '55P03' });
    } finally {
      await store.close();
      await database.drop();
    }
  });
});

/** Until a session waits for an advisory lock (the verification, blocked on the stream's hold). */
async function waitForAdvisoryLockWaiter(pool: Pool): Promise<void> {
  for (let attempt = 0; attempt < 200; attempt += 1) {
    const waiting = await pool.query<{ count: number }>("SELECT count(*)::int AS count FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())");
    if ((waiting.rows[0]?.count ?? 0) > 0) return;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  throw new Error('no session came to wait for the stream hold');
}
