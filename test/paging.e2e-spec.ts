import { createHash, randomUUID } from 'node:crypto';
import { ACTIVE_LOTS_PAGE_SQL, BALANCE_SQL, DUE_ACCOUNTS_SQL, HOLDS_PAGE_SQL, LOTS_PAGE_SQL, TRANSACTIONS_PAGE_SQL } from '@app/token-accounts';
import { PAYMENTS_PAGE_SQL } from '@app/payments';
import { startTestApp, type TestApp } from './support/test-app.js';

let testApp: TestApp;

beforeAll(async () => {
  testApp = await startTestApp({ CREDIT_EXPIRY_JOB_ENABLED: 'false', PAYMENT_JOBS_ENABLED: 'false' });
});

afterAll(async () => {
  await testApp.close();
});

const http = () => testApp.http();

type Row = Record<string, unknown>;
type PageBody = { data: Row[]; limit: number; offset: number | null; hasMore: boolean; nextCursor: string | null };

async function fundedUser(amount: number): Promise<string> {
  const userId = randomUUID();
  await http().post(`/v1/accounts/${userId}/purchases`).send({ paymentId: randomUUID(), amount }).expect(201);
  return userId;
}

const use = (userId: string, amount = 1) => http().post(`/v1/accounts/${userId}/usage`).send({ amount }).expect(201);
const hold = async (userId: string) => (await http().post(`/v1/accounts/${userId}/holds`).send({ amount: 1 }).expect(201)).body.holdId as string;
const grant = async (userId: string, priority: number) => (await http().post(`/v1/admin/accounts/${userId}/grants`).send({ amount: 1, reason: `p${priority}`, priority }).expect(201)).body.lotId as string;
async function payment(userId: string): Promise<string> {
  const created = await http().post('/v1/payments').send({ userId, packageId: 'starter' }).expect(201);
  const paymentId = created.body.paymentId as string;
  await http().post(`/v1/payments/${paymentId}/capture`).send().expect(200);
  return paymentId;
}

/**
 * Every page of a list by cursor, `between(page)` run after each page is read (rows written while a
 * client pages). Returns the ids of each page.
 */
async function pagesByCursor(path: string, limit: number, idOf: (row: Row) => string, between: (page: number) => Promise<void>): Promise<string[][]> {
  const pages: string[][] = [];
  const separator = path.includes('?') ? '&' : '?';
  let cursor: string | null = null;
  for (let page = 0; page < 50; page += 1) {
    const query: string = cursor === null ? `limit=${limit}` : `limit=${limit}&cursor=${cursor}`;
    const body = (await http().get(`${path}${separator}${query}`).expect(200)).body as PageBody;
    expect(body).toMatchObject({ limit, offset: cursor === null ? 0 : null });
    pages.push(body.data.map(idOf));
    expect(body.hasMore).toBe(body.nextCursor !== null);
    if (!body.hasMore) return pages;
    cursor = body.nextCursor;
    await between(page);
  }
  throw new Error('more than 50 pages');
}

/** No id twice, and every id of `expected` once. */
function expectEachOnce(pages: string[][], expected: readonly string[]): string[] {
  const seen = pages.flat();
  expect(new Set(seen).size).toBe(seen.length);
  expect(seen).toEqual(expect.arrayContaining([...expected]));
  return seen;
}

const transactionIds = async (userId: string) => ((await http().get(`/v1/accounts/${userId}/transactions?limit=100`).expect(200)).body as PageBody).data.map((row) => row.id as string);

describe('cursor paging, stable while rows are written', () => {
  it('history: usages written between pages are neither repeated nor make a row be skipped', async () => {
    const userId = await fundedUser(1000);
    for (let index = 0; index < 11; index += 1) await use(userId);
    const before = await transactionIds(userId);
    expect(before).toHaveLength(12);
    const pages = await pagesByCursor(`/v1/accounts/${userId}/transactions`, 5, (row) => row.id as string, async () => {
      await use(userId);
      await use(userId);
    });
    expect(pages.map((page) => page.length)).toEqual([5, 5, 2]);
    // Newest first: a row written meanwhile is newer than every row already shown, so it is above the cursor.
    expect(pages.flat()).toEqual(before);
  });

  it('history by offset, the classic paging, repeats a row when one is written between pages (documented as unstable)', async () => {
    const userId = await fundedUser(1000);
    for (let index = 0; index < 5; index += 1) await use(userId);
    const first = (await http().get(`/v1/accounts/${userId}/transactions?limit=3&offset=0`).expect(200)).body as PageBody;
    await use(userId);
    const second = (await http().get(`/v1/accounts/${userId}/transactions?limit=3&offset=3`).expect(200)).body as PageBody;
    expect(second.data[0]?.id).toBe(first.data[2]?.id);
    expect(first).toMatchObject({ offset: 0, hasMore: true });
  });

  it('holds: holds placed and settled between pages, with and without a status filter', async () => {
    const userId = await fundedUser(1000);
    const holds: string[] = [];
    for (let index = 0; index < 7; index += 1) holds.push(await hold(userId));
    const all = await pagesByCursor(`/v1/accounts/${userId}/holds`, 3, (row) => row.holdId as string, async (page) => {
      await hold(userId);
      await http().post(`/v1/accounts/${userId}/holds/${holds[page] as string}/settle`).send({ amount: 1 }).expect(200);
    });
    expect(expectEachOnce(all, holds)).toEqual([...holds].reverse());

    const active = (await http().get(`/v1/accounts/${userId}/holds?status=active&limit=100`).expect(200)).body as PageBody;
    const activeIds = active.data.map((row) => row.holdId as string);
    const pages = await pagesByCursor(`/v1/accounts/${userId}/holds?status=active`, 2, (row) => row.holdId as string, async () => {
      await hold(userId);
    });
    expectEachOnce(pages, activeIds);
  });

  it('lots: grants between pages land where their priority puts them; none shown twice, none skipped', async () => {
    const userId = randomUUID();
    const lots: string[] = [];
    for (const priority of [50, 5, 20, 20, 80, 10, 60, 20]) lots.push(await grant(userId, priority));
    const late: string[] = [];
    const early: string[] = [];
    const pages = await pagesByCursor(`/v1/accounts/${userId}/lots`, 3, (row) => row.lotId as string, async () => {
      early.push(await grant(userId, 1));
      late.push(await grant(userId, 1000));
    });
    const seen = expectEachOnce(pages, lots);
    // A lot credited before the cursor's place is not shown; one after it is, once, at the end.
    expect(seen).toEqual(expect.arrayContaining(late));
    expect(seen.filter((lotId) => early.includes(lotId))).toEqual([]);
    const priorities = ((await http().get(`/v1/accounts/${userId}/lots?limit=100`).expect(200)).body as PageBody).data.filter((row) => seen.includes(row.lotId as string));
    expect(priorities.map((row) => row.lotId)).toEqual(seen);
  });

  it('payments: payments made between pages, with the total of all', async () => {
    const userId = randomUUID();
    const payments: string[] = [];
    for (let index = 0; index < 5; index += 1) payments.push(await payment(userId));
    const pages = await pagesByCursor(`/v1/accounts/${userId}/payments`, 2, (row) => row.paymentId as string, async () => {
      await payment(userId);
    });
    expect(pages.flat()).toEqual([...payments].reverse());
    const total = ((await http().get(`/v1/accounts/${userId}/payments`).expect(200)).body as { total: number }).total;
    expect(total).toBe(7);
  });
});

describe('the lot list as of now', () => {
  it("counts a lot past its expiry expired, but not a purchase's lot a refund in progress reserved: shown as recorded", async () => {
    const userId = randomUUID();
    const paymentId = randomUUID();
    const past = new Date(Date.now() - 60_000);
    const pool = testApp.database.pool;
    // The read models as the ledger leaves them (rows written here, not by events): a purchase whose refund is pending, its lot past its expiry, and a grant past its own.
    await pool.query(
      `INSERT INTO payments (id, user_id, status, package_id, tokens_purchased, amount, currency, provider, order_id, created_at, updated_at, expires_at, last_event_id, last_event_revision)
       VALUES ($1, $2, 'REFUND_PENDING', 'starter', 100, 500, 'USD', 'mock', $3, $4, $4, $4, $5, 2)`,
      [paymentId, userId, `order-${paymentId}`, past, randomUUID()],
    );
    await pool.query(
      `INSERT INTO token_lots (user_id, lot_id, source, payment_id, transaction_id, original, remaining, priority, expires_at, status, created_at, stream_revision)
       VALUES ($1, 'bought', 'purchase', $2, NULL, 100, 100, 100, $3, 'active', $3, 0), ($1, 'promo', 'grant', NULL, NULL, 30, 30, 10, $3, 'active', $3, 1)`,
      [userId, paymentId, past],
    );
    const rows = (await pool.query<{ lot_id: string; status: string; remaining: string }>(LOTS_PAGE_SQL, [userId, null, 10, 0, null, new Date()])).rows;
    expect(rows.map(({ lot_id, status, remaining }) => [lot_id, status, remaining])).toEqual([
      ['promo', 'expired', '0'],
      ['bought', 'active', '100'],
    ]);
  });
});

describe('cursor refusals', () => {
  const problemOf = (body: Record<string, unknown>) => ({ status: body.status, code: body.code, field: body.field, rule: body.rule });

  it.each(['transactions', 'holds', 'lots', 'payments'])('%s: a garbled or edited cursor is 400 INVALID_CURSOR naming cursor', async (list) => {
    const userId = await fundedUser(10);
    const garbled = await http().get(`/v1/accounts/${userId}/${list}?cursor=not-a-cursor`).expect(400);
    expect(problemOf(garbled.body)).toEqual({ status: 400, code: 'INVALID_CURSOR', field: 'cursor', rule: 'encoding' });
    const edited = Buffer.from(JSON.stringify({ v: 1, l: list, s: 'forged', k: ['1'] }), 'utf8').toString('base64url');
    expect(problemOf((await http().get(`/v1/accounts/${userId}/${list}?cursor=${edited}`).expect(400)).body)).toMatchObject({ code: 'INVALID_CURSOR', field: 'cursor', rule: 'list' });
  });

  it('refuses, never answers 500 to, a cursor forged with the right scope and a key PostgreSQL could not read', async () => {
    const userId = await fundedUser(10);
    // The scope is a plain digest (cursors are positions, not secrets), so a client can forge one that passes it.
    const scope = (list: string, filter = '') => createHash('sha256').update(`${list}\n${userId}/${filter}`).digest('base64url').slice(0, 16);
    const forged = (list: string, key: unknown[]) => Buffer.from(JSON.stringify({ v: 1, l: list, s: scope(list), k: key }), 'utf8').toString('base64url');
    for (const [list, key] of [
      ['lots', [100, null, '5', 'x\u0000']],
      // A lot cursor issued before migration 140, whose third key was the creation time.
      ['lots', [100, null, '2026-01-01T00:00:00.000000Z', 'x']],
      ['lots', [100, '0000-01-01T00:00:00.000000Z', '5', 'x']],
      ['lots', [100, '2026-02-30T00:00:00.000000Z', '5', 'x']],
    ] as const) {
      const answer = await http().get(`/v1/accounts/${userId}/${list}?cursor=${forged(list, [...key])}`).expect(400);
      expect(problemOf(answer.body)).toEqual({ status: 400, code: 'INVALID_CURSOR', field: 'cursor', rule: 'key' });
    }
    // The same forgery with a key PostgreSQL can read is a position like any other.
    await http().get(`/v1/accounts/${userId}/lots?cursor=${forged('lots', [100, '2026-01-01T00:00:00.000000Z', '5', 'x'])}`).expect(200);
  });

  it("refuses one list's cursor on another list, another user or another filter", async () => {
    const userId = await fundedUser(10);
    for (let index = 0; index < 3; index += 1) await use(userId);
    const cursor = ((await http().get(`/v1/accounts/${userId}/transactions?limit=1`).expect(200)).body as PageBody).nextCursor as string;
    expect((await http().get(`/v1/accounts/${userId}/holds?cursor=${cursor}`).expect(400)).body).toMatchObject({ code: 'INVALID_CURSOR', rule: 'list' });
    expect((await http().get(`/v1/accounts/${randomUUID()}/transactions?cursor=${cursor}`).expect(400)).body).toMatchObject({ code: 'INVALID_CURSOR', rule: 'list' });
    for (let index = 0; index < 3; index += 1) await hold(userId);
    const active = ((await http().get(`/v1/accounts/${userId}/holds?status=active&limit=1`).expect(200)).body as PageBody).nextCursor as string;
    expect((await http().get(`/v1/accounts/${userId}/holds?status=settled&cursor=${active}`).expect(400)).body).toMatchObject({ code: 'INVALID_CURSOR', rule: 'list' });
  });

  it('refuses a cursor and an offset together, naming both', async () => {
    const userId = await fundedUser(10);
    await use(userId);
    const cursor = ((await http().get(`/v1/accounts/${userId}/transactions?limit=1`).expect(200)).body as PageBody).nextCursor as string;
    const response = await http().get(`/v1/accounts/${userId}/transactions?cursor=${cursor}&offset=1`).expect(400);
    expect(response.body.code).toBe('VALIDATION_FAILED');
    expect(response.body.errors.map((error: { field: string; rule: string }) => [error.field, error.rule])).toEqual([
      ['cursor', 'atMostOneOf'],
      ['offset', 'atMostOneOf'],
    ]);
  });

  it.each(['limit=0', 'limit=101', 'limit=x'])('refuses %s naming limit', async (query) => {
    const response = await http().get(`/v1/accounts/${randomUUID()}/lots?${query}`).expect(400);
    expect(new Set(response.body.errors.map((error: { field: string }) => error.field))).toEqual(new Set(['limit']));
  });

  it.each([
    ['limit=5.0', 'limit'],
    ['limit=5.', 'limit'],
    ['offset=2.0', 'offset'],
    ['offset=0.00', 'offset'],
  ])('refuses %s: limit and offset are written as decimal integers', async (query, field) => {
    const response = await http().get(`/v1/accounts/${randomUUID()}/transactions?${query}`).expect(400);
    expect(response.body.errors).toEqual([expect.objectContaining({ field, rule: 'isInt' })]);
  });
});

describe('the indexes that serve the keyset orders', () => {
  /** The plan's nodes, depth first. */
  function nodesOf(plan: Row): Row[] {
    return [plan, ...((plan.Plans as Row[] | undefined) ?? []).flatMap(nodesOf)];
  }

  /** EXPLAIN of a page after a cursor, with sequential scans priced out so that only an index that serves the order avoids a sort. */
  async function planOf(sql: string, values: unknown[]): Promise<Row[]> {
    const client = await testApp.database.pool.connect();
    try {
      await client.query('BEGIN');
      await client.query('SET LOCAL enable_seqscan = off');
      await client.query('SET LOCAL enable_bitmapscan = off');
      const result = await client.query<{ 'QUERY PLAN': [{ Plan: Row }] }>(`EXPLAIN (FORMAT JSON) ${sql}`, values);
      return nodesOf((result.rows[0]?.['QUERY PLAN'][0] as { Plan: Row }).Plan);
    } finally {
      await client.query('ROLLBACK');
      client.release();
    }
  }

  it.each([
    ['transactions', TRANSACTIONS_PAGE_SQL, [randomUUID(), 11, 0, '42'], 'token_transactions_user_revision_unique'],
    ['holds', HOLDS_PAGE_SQL, [randomUUID(), null, 11, 0, '42', new Date()], 'idx_token_holds_user_revision'],
    ['active holds', HOLDS_PAGE_SQL, [randomUUID(), 'active', 11, 0, '42', new Date()], 'idx_token_holds_user_active'],
    ['settled holds', HOLDS_PAGE_SQL, [randomUUID(), 'settled', 11, 0, '42', new Date()], 'idx_token_holds_user_revision'],
    ['lots', LOTS_PAGE_SQL, [randomUUID(), null, 11, 0, JSON.stringify([10, null, '42', 'opening']), new Date()], 'idx_token_lots_draw_order'],
    ['active lots', ACTIVE_LOTS_PAGE_SQL, [randomUUID(), 'active', 11, 0, JSON.stringify([10, null, '42', 'opening']), new Date()], 'idx_token_lots_live_draw_order'],
    ['payments', PAYMENTS_PAGE_SQL, [randomUUID(), 11, 0, null, '2026-01-01T00:00:00.000000Z', randomUUID()], 'idx_payments_user_created_at_id'],
  ])('%s: the page after a cursor is an index scan in keyset order, with no sort before the limit', async (_, sql, values, index) => {
    // Only the page's own rows (at most limit + 1) may be sorted after the LIMIT, by the JSON aggregate.
    const limited = (await planOf(sql, values)).filter((node) => node['Node Type'] === 'Limit').flatMap(nodesOf);
    expect(limited.length).toBeGreaterThan(1);
    expect(limited.filter((node) => String(node['Node Type']).includes('Sort'))).toEqual([]);
    expect(limited.filter((node) => node['Index Name'] === index).map((node) => node['Node Type'])).toEqual([expect.stringMatching(/^Index (Only )?Scan$/)]);
  });

  it("the balance reads its next expiry from the index of the account's lots with tokens left, in expiry order: not every lot the account had", async () => {
    const plan = await planOf(BALANCE_SQL, [randomUUID(), new Date()]);
    const lots = plan.filter((node) => node['Relation Name'] === 'token_lots');
    expect(lots.map((node) => [node['Node Type'], node['Index Name']])).toEqual([['Index Scan', 'idx_token_lots_next_expiry']]);
    expect(plan.filter((node) => String(node['Node Type']).includes('Sort'))).toEqual([]);
    expect(plan.filter((node) => node['Node Type'] === 'Seq Scan')).toEqual([]);
  });

  it.each([
    ['after an account', randomUUID()],
    ['from the first account', null],
  ])('the expiry job reads due holds and lots from their partial indexes, not every hold or lot that ended (%s)', async (_name, after) => {
    const plan = await planOf(DUE_ACCOUNTS_SQL, [new Date().toISOString(), after, 100]);
    const scanned = (table: string) => plan.filter((node) => node['Relation Name'] === table).map((node) => node['Index Name']);
    // Either partial index of active holds (by expiry, or by account in list order) reads active holds
    // only; so does the due lot's test of what live holds hold of it, by account.
    expect(scanned('token_holds')).toEqual([expect.stringMatching(/^idx_token_holds_(active_expiry|user_active)$/), 'idx_token_holds_user_active']);
    // Lots with tokens left and an expiry only: by expiry (due first), or by account (each account's due ones first, in the job's order).
    expect(scanned('token_lots')).toEqual([expect.stringMatching(/^idx_token_lots_(due|next_expiry)$/)]);
    // And its purchase's pending refund: by the payment's id, or among the account's pending refunds.
    expect(scanned('payments')).toEqual([expect.stringMatching(/^(payments_pkey|idx_payments_refund_pending_user)$/)]);
    expect(plan.filter((node) => node['Node Type'] === 'Seq Scan')).toEqual([]);
  });
});

