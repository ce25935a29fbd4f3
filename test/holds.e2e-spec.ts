import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { EVENT_STORE, type EventStore } from '@app/event-store';
import { CommandHandling, eventMetadata } from '@app/event-sourcing';
import { ACTIVE_HOLDS_MAX, decideTokenAccountWithState, ENDED_HOLDS_REMEMBERED_MAX, LIVE_LOTS_MAX, tokenAccountDecider, tokenAccountStreamId, VOIDED_GRANTS_REMEMBERED_MAX } from '@app/ledger';
import { CreditExpiryJob } from '@app/token-accounts';
import { startTestApp, startTestAppOn, TEST_ACTOR, type TestApp } from './support/test-app.js';

let testApp: TestApp;

beforeAll(async () => {
  // The job is run by hand here, so the races below are the ones the tests make.
  testApp = await startTestApp({ CREDIT_EXPIRY_JOB_ENABLED: 'false' });
});

afterAll(async () => {
  await testApp.close();
});

const http = () => testApp.http();

async function fundedUser(amount: number): Promise<string> {
  const userId = randomUUID();
  await http().post(`/v1/accounts/${userId}/purchases`).send({ paymentId: randomUUID(), amount, description: 'Funding' }).expect(201);
  return userId;
}

const hold = (userId: string, body: Record<string, unknown>) => http().post(`/v1/accounts/${userId}/holds`).send(body);
/** Waits until `at` (a time string) is `offsetMs` away. */
const until = (at: string, offsetMs: number) => sleep(Math.max(0, Date.parse(at) + offsetMs - Date.now()));
const settle = (userId: string, holdId: string, body: Record<string, unknown>) => http().post(`/v1/accounts/${userId}/holds/${holdId}/settle`).send(body);
const release = (userId: string, holdId: string) => http().post(`/v1/accounts/${userId}/holds/${holdId}/release`).send({});
const use = (userId: string, amount: number) => http().post(`/v1/accounts/${userId}/usage`).send({ amount });
const balanceOf = async (userId: string) => (await http().get(`/v1/accounts/${userId}/balance`).expect(200)).body as { balance: number; held: number; available: number };

/** What the stream holds, the read models hold, and the history adds up to must agree. */
async function expectConsistent(userId: string): Promise<void> {
  const pool = testApp.database.pool;
  const sums = await pool.query<{ history: string; balance: string; held: string; lots: string; holds: string }>(
    `SELECT (SELECT coalesce(sum(amount), 0)::text FROM token_transactions WHERE user_id = $1) AS history,
            (SELECT balance::text FROM user_tokens WHERE user_id = $1) AS balance,
            (SELECT held::text FROM user_tokens WHERE user_id = $1) AS held,
            (SELECT coalesce(sum(remaining), 0)::text FROM token_lots WHERE user_id = $1) AS lots,
            (SELECT coalesce(sum(amount), 0)::text FROM token_holds WHERE user_id = $1 AND status = 'active') AS holds`,
    [userId],
  );
  const row = sums.rows[0];
  expect({ history: row?.history, lots: row?.lots, holds: row?.holds }).toEqual({ history: row?.balance, lots: row?.balance, holds: row?.held });
  const verify = await http().get(`/v1/audit/accounts/${userId}/verify`).expect(200);
  expect(verify.body).toMatchObject({ ok: true, readModels: { differences: [], replayError: null } });
}

describe('holds over HTTP', () => {
  it('reserves, settles less than held and releases the rest in one append, with the totals at each step', async () => {
    const userId = await fundedUser(1000);
    const placed = await hold(userId, { amount: 500, description: 'GPT call estimate' }).expect(201);
    expect(placed.body).toMatchObject({ userId, amount: 500, balance: 1000, held: 500, available: 500, readModelUpToDate: true });
    const ttl = Date.parse(placed.body.expiresAt as string) - Date.now();
    expect(ttl).toBeGreaterThan(14 * 60_000);
    expect(ttl).toBeLessThanOrEqual(15 * 60_000);
    expect(await balanceOf(userId)).toMatchObject({ balance: 1000, held: 500, available: 500 });
    const active = await http().get(`/v1/accounts/${userId}/holds?status=active`).expect(200);
    expect(active.body.data).toEqual([expect.objectContaining({ holdId: placed.body.holdId, amount: 500, status: 'active' })]);

    const holdId = placed.body.holdId as string;
    const settled = await settle(userId, holdId, { amount: 320, description: 'GPT call: 320 tokens' }).expect(200);
    expect(settled.body).toMatchObject({ holdId, settledAmount: 320, releasedAmount: 180, balance: 680, held: 0, available: 680 });
    expect(settled.body.transaction).toMatchObject({ amount: -320, transactionType: 'usage', holdId, description: 'GPT call: 320 tokens' });
    expect(await balanceOf(userId)).toMatchObject({ balance: 680, held: 0, available: 680 });
    const ended = await http().get(`/v1/accounts/${userId}/holds?status=settled`).expect(200);
    expect(ended.body.data).toEqual([expect.objectContaining({ holdId, status: 'settled', settledAmount: 320, transactionId: settled.body.transaction.id })]);
    await expectConsistent(userId);
  });

  it('reads one hold by its id as the list shows it, as of now: active, settled with its usage, expired at its expiresAt before the job records it; 404 for a hold of another account or none', async () => {
    const userId = await fundedUser(100);
    const one = (holdId: string, owner = userId) => http().get(`/v1/accounts/${owner}/holds/${holdId}`);
    const placed = await hold(userId, { amount: 40, description: 'Estimate', metadata: { job: 'j-1' } }).expect(201);
    const holdId = placed.body.holdId as string;
    const listed = (await http().get(`/v1/accounts/${userId}/holds`).expect(200)).body.data as unknown[];
    expect((await one(holdId)).body).toEqual(listed[0]);
    expect((await one(holdId)).body).toMatchObject({ holdId, userId, amount: 40, status: 'active', description: 'Estimate', metadata: { job: 'j-1' }, endedAt: null, settledAmount: null });
    const settled = await settle(userId, holdId, { amount: 15 }).expect(200);
    expect((await one(holdId)).body).toMatchObject({ holdId, status: 'settled', settledAmount: 15, transactionId: settled.body.transaction.id, endedAt: expect.any(String) as unknown });
    const short = (await hold(userId, { amount: 5, expiresInSeconds: 1 }).expect(201)).body as { holdId: string; expiresAt: string };
    await until(short.expiresAt, 20);
    expect((await one(short.holdId)).body).toMatchObject({ holdId: short.holdId, status: 'expired', endedAt: short.expiresAt });
    expect((await one(holdId, randomUUID()).expect(404)).body).toMatchObject({ code: 'HOLD_NOT_FOUND', holdId });
    expect((await one(randomUUID()).expect(404)).body).toMatchObject({ code: 'HOLD_NOT_FOUND' });
    expect((await one('not-a-hold').expect(400)).body).toMatchObject({ code: 'VALIDATION_FAILED', errors: [expect.objectContaining({ field: 'holdId' })] });
  });

  it('refuses a settle above the hold, answers HOLD_NOT_ACTIVE with the state after it ended, and HOLD_NOT_FOUND for an unknown hold', async () => {
    const userId = await fundedUser(100);
    const holdId = (await hold(userId, { amount: 40 }).expect(201)).body.holdId as string;
    const above = await settle(userId, holdId, { amount: 41 }).expect(409);
    expect(above.body).toMatchObject({ code: 'SETTLE_EXCEEDS_HOLD', held: 40, requested: 41 });
    await release(userId, holdId).expect(200);
    expect((await settle(userId, holdId, { amount: 10 }).expect(409)).body).toMatchObject({ code: 'HOLD_NOT_ACTIVE', holdStatus: 'released' });
    expect((await release(userId, holdId).expect(409)).body).toMatchObject({ code: 'HOLD_NOT_ACTIVE', holdStatus: 'released' });
    expect((await settle(userId, randomUUID(), { amount: 1 }).expect(404)).body.code).toBe('HOLD_NOT_FOUND');
    expect(await balanceOf(userId)).toMatchObject({ balance: 100, held: 0, available: 100 });
  });

  it(`answers HOLD_NOT_ACTIVE for a hold that ended before the newest ${ENDED_HOLDS_REMEMBERED_MAX} ended holds, which the account no longer folds`, async () => {
    const userId = await fundedUser(1000);
    const first = (await hold(userId, { amount: 40 }).expect(201)).body.holdId as string;
    await settle(userId, first, { amount: 10 }).expect(200);
    for (let index = 0; index < ENDED_HOLDS_REMEMBERED_MAX; index += 1) {
      const holdId = (await hold(userId, { amount: 1 }).expect(201)).body.holdId as string;
      await release(userId, holdId).expect(200);
    }
    expect((await settle(userId, first, { amount: 1 }).expect(409)).body).toMatchObject({ code: 'HOLD_NOT_ACTIVE', holdId: first, holdStatus: 'settled' });
    expect((await release(userId, first).expect(409)).body).toMatchObject({ code: 'HOLD_NOT_ACTIVE', holdId: first, holdStatus: 'settled' });
    // 404 stays for a hold this account never had, another account's included.
    const other = await fundedUser(100);
    expect((await release(other, first).expect(404)).body.code).toBe('HOLD_NOT_FOUND');
    expect((await settle(userId, randomUUID(), { amount: 1 }).expect(404)).body.code).toBe('HOLD_NOT_FOUND');
    expect(await balanceOf(userId)).toMatchObject({ balance: 990, held: 0, available: 990 });
  });

  it('answers a retried settle with its Idempotency-Key with the first answer, and a settle without it with HOLD_NOT_ACTIVE', async () => {
    const userId = await fundedUser(100);
    const holdId = (await hold(userId, { amount: 40 }).expect(201)).body.holdId as string;
    const key = randomUUID();
    const first = await settle(userId, holdId, { amount: 30 }).set('idempotency-key', key).expect(200);
    const again = await settle(userId, holdId, { amount: 30 }).set('idempotency-key', key).expect(200);
    expect(again.headers['idempotent-replayed']).toBe('true');
    expect(again.body).toEqual(first.body);
    expect((await settle(userId, holdId, { amount: 30 }).expect(409)).body).toMatchObject({ code: 'HOLD_NOT_ACTIVE', holdStatus: 'settled' });
    expect(await balanceOf(userId)).toMatchObject({ balance: 70, held: 0 });
  });

  it('lets usage draw on the available balance only', async () => {
    const userId = await fundedUser(100);
    await hold(userId, { amount: 80 }).expect(201);
    expect((await use(userId, 21).expect(409)).body).toMatchObject({ code: 'INSUFFICIENT_AVAILABLE_BALANCE', balance: 100, held: 80, available: 20, requested: 21 });
    await use(userId, 20).expect(201);
    expect(await balanceOf(userId)).toMatchObject({ balance: 80, held: 80, available: 0 });
  });

  it.each([
    [{ amount: 0 }, 'amount'],
    [{ amount: 1, expiresInSeconds: 0 }, 'expiresInSeconds'],
    [{ amount: 1.5 }, 'amount'],
  ])('refuses the hold %j naming %s', async (body, field) => {
    const userId = await fundedUser(10);
    const response = await hold(userId, body).expect(400);
    expect(JSON.stringify(response.body)).toContain(field);
  });

  it('refuses a time to live above the configured maximum with HOLD_TTL_OUT_OF_RANGE, naming the field and the rule', async () => {
    const userId = await fundedUser(10);
    expect((await hold(userId, { amount: 1, expiresInSeconds: 86_401 }).expect(400)).body).toMatchObject({
      code: 'HOLD_TTL_OUT_OF_RANGE',
      field: 'expiresInSeconds',
      rule: 'range',
      expiresInSeconds: 86_401,
      max: 86_400,
    });
  });

  it('lets exactly 20 of 50 racing 1-token holds through a balance of 20', async () => {
    const userId = await fundedUser(20);
    const responses = await Promise.all(Array.from({ length: 50 }, () => hold(userId, { amount: 1 })));
    const statuses = responses.map((response) => response.status);
    expect(statuses.filter((status) => status === 201)).toHaveLength(20);
    expect(responses.filter((response) => response.status === 409).map((response) => response.body.code as string)).toEqual(Array.from({ length: 30 }, () => 'INSUFFICIENT_AVAILABLE_BALANCE'));
    expect(await balanceOf(userId)).toMatchObject({ balance: 20, held: 20, available: 0 });
    const active = await testApp.database.pool.query<{ count: string }>(`SELECT count(*)::text FROM token_holds WHERE user_id = $1 AND status = 'active'`, [userId]);
    expect(active.rows[0]?.count).toBe('20');
    await expectConsistent(userId);
  });
});

describe('limits per account', () => {
  const eventCount = async (userId: string) => Number((await testApp.database.pool.query<{ count: string }>('SELECT count(*)::text AS count FROM events WHERE stream_id = $1', [tokenAccountStreamId(userId)])).rows[0]?.count);

  it(`lets exactly 10 of 30 holds racing for the last 10 places through, refuses the rest and hold ${ACTIVE_HOLDS_MAX + 1} with 409 HOLD_LIMIT_REACHED, writing nothing; an ended hold makes room`, async () => {
    const userId = await fundedUser(1000);
    const placed: string[] = [];
    for (let batch = 0; batch < ACTIVE_HOLDS_MAX - 10; batch += 20) {
      const answers = await Promise.all(Array.from({ length: Math.min(20, ACTIVE_HOLDS_MAX - 10 - batch) }, () => hold(userId, { amount: 1 }).expect(201)));
      placed.push(...answers.map((answer) => answer.body.holdId as string));
    }
    const before = await eventCount(userId);
    const raced = await Promise.all(Array.from({ length: 30 }, () => hold(userId, { amount: 1 })));
    expect(raced.filter((answer) => answer.status === 201)).toHaveLength(10);
    const refusals = raced.filter((answer) => answer.status !== 201);
    expect(refusals).toHaveLength(20);
    for (const refusal of refusals) expect({ status: refusal.status, ...refusal.body }).toMatchObject({ status: 409, code: 'HOLD_LIMIT_REACHED', active: ACTIVE_HOLDS_MAX, max: ACTIVE_HOLDS_MAX });
    placed.push(...raced.filter((answer) => answer.status === 201).map((answer) => answer.body.holdId as string));
    expect(await eventCount(userId)).toBe(before + 10);

    const events = await eventCount(userId);
    const refused = await hold(userId, { amount: 1 }).expect(409);
    expect(refused.body).toMatchObject({ code: 'HOLD_LIMIT_REACHED', active: ACTIVE_HOLDS_MAX, max: ACTIVE_HOLDS_MAX });
    expect(await eventCount(userId)).toBe(events);
    expect(await balanceOf(userId)).toMatchObject({ balance: 1000, held: ACTIVE_HOLDS_MAX, available: 1000 - ACTIVE_HOLDS_MAX });
    const active = await testApp.database.pool.query<{ hold_id: string }>(`SELECT hold_id FROM token_holds WHERE user_id = $1 AND status = 'active'`, [userId]);
    expect(active.rows.map((row) => row.hold_id).sort()).toEqual([...placed].sort());
    await release(userId, placed[0] ?? '').expect(200);
    await hold(userId, { amount: 1 }).expect(201);
  });

  it(`lets exactly 20 of 40 credits racing for the last 20 lots through, refuses the rest and lot ${LIVE_LOTS_MAX + 1} with 409 LOT_LIMIT_REACHED, writing nothing; a lot spent whole makes room`, async () => {
    // The purchase's lot and LIVE_LOTS_MAX - 21 grants of 1 token, priority 0 so they are spent first.
    const userId = await fundedUser(1000);
    const filled = LIVE_LOTS_MAX - 21;
    for (let batch = 0; batch < filled; batch += 37) {
      const size = Math.min(37, filled - batch);
      await Promise.all(Array.from({ length: size }, () => http().post(`/v1/admin/accounts/${userId}/grants`).send({ amount: 1, reason: 'Promotion', priority: 0 }).expect(201)));
    }
    const before = await eventCount(userId);
    // 30 grants of 1 token and 10 purchases of 10 race for the last 20 places.
    const raced = await Promise.all([
      ...Array.from({ length: 30 }, () => http().post(`/v1/admin/accounts/${userId}/grants`).send({ amount: 1, reason: 'Promotion', priority: 0 })),
      ...Array.from({ length: 10 }, () => http().post(`/v1/accounts/${userId}/purchases`).send({ paymentId: randomUUID(), amount: 10 })),
    ]);
    const credited = raced.filter((answer) => answer.status === 201);
    expect(credited).toHaveLength(20);
    const refusals = raced.filter((answer) => answer.status !== 201);
    for (const refusal of refusals) expect({ status: refusal.status, ...refusal.body }).toMatchObject({ status: 409, code: 'LOT_LIMIT_REACHED', live: LIVE_LOTS_MAX, max: LIVE_LOTS_MAX });
    expect(await eventCount(userId)).toBe(before + 20);
    const creditedTokens = credited.reduce((sum, answer) => sum + (answer.body.transaction.amount as number), 0);
    const balance = 1000 + filled + creditedTokens;
    expect(await balanceOf(userId)).toMatchObject({ balance });
    const lots = await testApp.database.pool.query<{ count: string }>(`SELECT count(*)::text AS count FROM token_lots WHERE user_id = $1 AND remaining > 0`, [userId]);
    expect(Number(lots.rows[0]?.count)).toBe(LIVE_LOTS_MAX);

    const events = await eventCount(userId);
    const grant = await http().post(`/v1/admin/accounts/${userId}/grants`).send({ amount: 1, reason: 'Promotion' }).expect(409);
    expect(grant.body).toMatchObject({ code: 'LOT_LIMIT_REACHED', live: LIVE_LOTS_MAX, max: LIVE_LOTS_MAX });
    const purchase = await http().post(`/v1/accounts/${userId}/purchases`).send({ paymentId: randomUUID(), amount: 10 }).expect(409);
    expect(purchase.body).toMatchObject({ code: 'LOT_LIMIT_REACHED', live: LIVE_LOTS_MAX, max: LIVE_LOTS_MAX });
    expect(await eventCount(userId)).toBe(events);
    // One grant spent whole leaves the folded lots: the next credit fits.
    await use(userId, 1).expect(201);
    await http().post(`/v1/admin/accounts/${userId}/grants`).send({ amount: 1, reason: 'Promotion' }).expect(201);
    expect(await balanceOf(userId)).toMatchObject({ balance: balance - 1 + 1 });
  }, 60_000);
});

describe('hold expiry', () => {

  it('settles and usages racing the expiry instant: one outcome for the hold, and exact totals', async () => {
    const userId = await fundedUser(100);
    const placed = await hold(userId, { amount: 60, expiresInSeconds: 1 }).expect(201);
    const holdId = placed.body.holdId as string;
    await until(placed.body.expiresAt as string, -40);
    const requests = [
      ...Array.from({ length: 5 }, () => settle(userId, holdId, { amount: 60 })),
      ...Array.from({ length: 20 }, (_, index) => sleep(index * 4).then(() => use(userId, 5))),
    ];
    const responses = await Promise.all(requests);
    const settles = responses.slice(0, 5);
    const usages = responses.slice(5);
    const settledCount = settles.filter((response) => response.status === 200).length;
    expect(settledCount).toBeLessThanOrEqual(1);
    for (const refused of settles.filter((response) => response.status !== 200)) {
      expect(refused.status).toBe(409);
      expect(refused.body).toMatchObject({ code: 'HOLD_NOT_ACTIVE', holdStatus: settledCount === 1 ? expect.stringMatching(/^(settled|expired)$/) : 'expired' });
    }
    for (const refused of usages.filter((response) => response.status !== 201)) expect(['INSUFFICIENT_AVAILABLE_BALANCE', 'INSUFFICIENT_BALANCE']).toContain(refused.body.code);
    const used = usages.filter((response) => response.status === 201).length * 5;
    await testApp.app.get(CreditExpiryJob).runOnce(new Date(Date.parse(placed.body.expiresAt as string) + 1));
    // Nothing more spent than there was, held ends at 0 either way, and a settled hold took its 60.
    expect(await balanceOf(userId)).toEqual(expect.objectContaining({ balance: 100 - used - settledCount * 60, held: 0 }));
    if (settledCount === 1) expect(used).toBeLessThanOrEqual(40);
    const status = await testApp.database.pool.query<{ status: string }>('SELECT status FROM token_holds WHERE hold_id = $1', [holdId]);
    expect(status.rows[0]?.status).toBe(settledCount === 1 ? 'settled' : 'expired');
    await expectConsistent(userId);
  });

  it('the expiry job resumes where its last run stopped, so accounts it cannot expire yet do not starve the accounts after them', async () => {
    // A run of 2 pages of 2 accounts. Five accounts sort first, each with a grant past its expiry whose
    // decision fails on every run (as a stream that conflicts on every try would); after them, one with a grant due.
    const commands = testApp.app.get(CommandHandling);
    const run = Date.now().toString(16).padStart(12, '0').slice(-12);
    const userIdOf = (index: number) => `00000000-0000-4000-8${index.toString(16).padStart(3, '0')}-${run}`;
    const failing = new Set(Array.from({ length: 5 }, (_, index) => `token-account-${userIdOf(index)}`));
    const failingFive = { handle: (request: { streamId: string }) => (failing.has(request.streamId) ? Promise.reject(new Error('conflicts on every try')) : commands.handle(request as never)) } as unknown as CommandHandling;
    const failed: string[] = [];
    const job = new CreditExpiryJob(testApp.database.pool, failingFive, (userId) => failed.push(userId), { pageSize: 2, pagesMax: 2 });
    const expiresAt = new Date(Date.now() + 3_600_000).toISOString();
    const grant = (userId: string) => http().post(`/v1/admin/accounts/${userId}/grants`).send({ amount: 10, reason: 'Promotion', expiresAt }).expect(201);
    for (let index = 0; index < 5; index += 1) await grant(userIdOf(index));
    const due = userIdOf(9);
    await grant(due);
    const later = new Date(Date.now() + 7_200_000);
    const expiries = async () =>
      Number((await testApp.database.pool.query<{ count: string }>("SELECT count(*) FROM events WHERE stream_id = $1 AND event_type = 'LotExpired'", [`token-account-${due}`])).rows[0]?.count);
    // Any other accounts of this file that are due sort after these (their ids are random) or were
    // expired before; within three runs the job gets past the five that stay due.
    for (let runs = 0; runs < 3 && (await expiries()) === 0; runs += 1) await job.runOnce(later);
    expect(await expiries()).toBe(1);
    expect(await balanceOf(due)).toMatchObject({ balance: 0 });
    expect(failed).toEqual(expect.arrayContaining([...Array.from({ length: 4 }, (_, index) => userIdOf(index))]));
  });

  it('the expiry job leaves out an account whose lot past its expiry live holds hold whole (nothing to record), and takes it up once the hold lets go', async () => {
    const commands = testApp.app.get(CommandHandling);
    const handled: string[] = [];
    const recording = { handle: (request: { streamId: string }) => (handled.push(request.streamId), commands.handle(request as never)) } as unknown as CommandHandling;
    const job = new CreditExpiryJob(testApp.database.pool, recording, () => undefined);
    const userId = randomUUID();
    const expiresAt = new Date(Date.now() + 3_600_000).toISOString();
    await http().post(`/v1/admin/accounts/${userId}/grants`).send({ amount: 10, reason: 'Promotion', expiresAt }).expect(201);
    const placed = await hold(userId, { amount: 10, expiresInSeconds: 86_400 }).expect(201);
    const later = new Date(Date.now() + 7_200_000);
    await job.runOnce(later);
    expect(handled).not.toContain(`token-account-${userId}`);
    await http().post(`/v1/accounts/${userId}/holds/${placed.body.holdId as string}/release`).send({}).expect(200);
    await job.runOnce(later);
    expect(handled).toContain(`token-account-${userId}`);
    const expired = await testApp.database.pool.query<{ amount: number }>("SELECT (data->>'amount')::int AS amount FROM events WHERE stream_id = $1 AND event_type = 'LotExpired'", [`token-account-${userId}`]);
    expect(expired.rows).toEqual([{ amount: 10 }]);
  });

  it('the expiry job reaches the account whose id is the nil UUID, which sorts before every other', async () => {
    const nil = '00000000-0000-0000-0000-000000000000';
    const expiries = async () =>
      Number((await testApp.database.pool.query<{ count: string }>("SELECT count(*) FROM events WHERE stream_id = $1 AND event_type = 'LotExpired'", [`token-account-${nil}`])).rows[0]?.count);
    const before = await expiries();
    const expiresAt = new Date(Date.now() + 3_600_000).toISOString();
    await http().post(`/v1/admin/accounts/${nil}/grants`).send({ amount: 10, reason: 'Promotion', expiresAt }).expect(201);
    // A job of its own, so its first run starts at the first account.
    const job = new CreditExpiryJob(testApp.database.pool, testApp.app.get(CommandHandling), () => undefined);
    await job.runOnce(new Date(Date.now() + 7_200_000));
    expect(await expiries()).toBe(before + 1);
    expect(await balanceOf(nil)).toMatchObject({ balance: 0 });
  });

  it('the expiry job runs as soon as a process takes its lead: a hold and a lot that fell due while no process led are recorded at its start, not one interval later', async () => {
    // A database of its own, so that the run at the lead finds only these; nothing leads the job while they fall due.
    const unled = await startTestApp({ CREDIT_EXPIRY_JOB_ENABLED: 'false' });
    try {
      const userId = randomUUID();
      await unled.http().post(`/v1/accounts/${userId}/purchases`).send({ paymentId: randomUUID(), amount: 100 }).expect(201);
      const placed = await unled.http().post(`/v1/accounts/${userId}/holds`).send({ amount: 30, expiresInSeconds: 1 }).expect(201);
      await unled.http().post(`/v1/admin/accounts/${userId}/grants`).send({ amount: 10, reason: 'Promotion', expiresAt: placed.body.expiresAt }).expect(201);
      await until(placed.body.expiresAt as string, 50);
      // An hour between runs: only the run at the lead can record them within the wait below.
      const leader = await startTestAppOn(unled.database, { CREDIT_EXPIRY_JOB_INTERVAL_MS: '3600000' });
      try {
        const recorded = async () =>
          (await unled.database.pool.query<{ event_type: string }>("SELECT event_type FROM events WHERE stream_id = $1 AND event_type IN ('HoldExpired', 'LotExpired') ORDER BY event_type", [`token-account-${userId}`])).rows.map(
            (row) => row.event_type,
          );
        const deadline = Date.now() + 15_000;
        while ((await recorded()).length < 2 && Date.now() < deadline) await sleep(50);
        expect(await recorded()).toEqual(['HoldExpired', 'LotExpired']);
        const held = await unled.database.pool.query<{ status: string }>('SELECT status FROM token_holds WHERE hold_id = $1', [placed.body.holdId]);
        expect(held.rows).toEqual([{ status: 'expired' }]);
        expect((await leader.http().get(`/v1/accounts/${userId}/balance`).expect(200)).body).toMatchObject({ balance: 100, held: 0, available: 100, nextExpiry: null });
      } finally {
        await leader.close();
      }
    } finally {
      await unled.close();
    }
  });

  it('the expiry job racing a settle: the hold ends exactly once, and runs racing each other append one expiry', async () => {
    const job = testApp.app.get(CreditExpiryJob);
    for (let round = 0; round < 3; round += 1) {
      const userId = await fundedUser(50);
      const placed = await hold(userId, { amount: 30, expiresInSeconds: 1 }).expect(201);
      const holdId = placed.body.holdId as string;
      await until(placed.body.expiresAt as string, -5 + round * 5);
      const [settled] = await Promise.all([settle(userId, holdId, { amount: 30 }), job.runOnce(new Date()), job.runOnce(new Date(Date.parse(placed.body.expiresAt as string)))]);
      const ends = await testApp.database.pool.query<{ event_type: string }>(
        `SELECT event_type FROM events WHERE stream_id = $1 AND event_type IN ('HoldSettled', 'HoldExpired', 'HoldReleased')`,
        [`token-account-${userId}`],
      );
      expect(ends.rows).toHaveLength(1);
      expect(ends.rows[0]?.event_type).toBe(settled.status === 200 ? 'HoldSettled' : 'HoldExpired');
      if (settled.status !== 200) expect(settled.body).toMatchObject({ code: 'HOLD_NOT_ACTIVE', holdStatus: 'expired' });
      expect(await balanceOf(userId)).toMatchObject({ balance: settled.status === 200 ? 20 : 50, held: 0 });
      await expectConsistent(userId);
    }
  });
});

describe('hold expiry at the exact instant (an application on a test clock)', () => {
  let clockApp: TestApp;
  let clockNow = new Date();

  beforeAll(async () => {
    clockApp = await startTestAppOn(testApp.database, { CREDIT_EXPIRY_JOB_ENABLED: 'false' }, { clock: () => clockNow });
  });

  afterAll(async () => {
    await clockApp.close();
  });

  /** 100 tokens bought and 60 of them held for a minute, at the present time. */
  async function held(): Promise<{ userId: string; holdId: string; expiresAt: Date }> {
    clockNow = new Date();
    const userId = randomUUID();
    await clockApp.http().post(`/v1/accounts/${userId}/purchases`).send({ paymentId: randomUUID(), amount: 100 }).expect(201);
    const placed = await clockApp.http().post(`/v1/accounts/${userId}/holds`).send({ amount: 60, expiresInSeconds: 60 }).expect(201);
    return { userId, holdId: placed.body.holdId as string, expiresAt: new Date(placed.body.expiresAt as string) };
  }

  const settleAll = (userId: string, holdId: string, count: number) => Promise.all(Array.from({ length: count }, () => clockApp.http().post(`/v1/accounts/${userId}/holds/${holdId}/settle`).send({ amount: 60 })));
  const useAll = (userId: string, count: number) => Promise.all(Array.from({ length: count }, () => clockApp.http().post(`/v1/accounts/${userId}/usage`).send({ amount: 5 })));
  /** How many answers of each kind: a status, or a status and problem code (and the hold's state). */
  const tally = (answers: readonly { readonly status: number; readonly body: Record<string, unknown> }[]) => {
    const outcomes = answers.map((answer) => (answer.status < 300 ? String(answer.status) : [answer.status, answer.body['code'], answer.body['holdStatus']].filter((part) => part !== undefined).map(String).join(' ')));
    return Object.fromEntries([...new Set(outcomes)].map((each) => [each, outcomes.filter((other) => other === each).length]));
  };

  const expiryEvents = async (userId: string) =>
    (await testApp.database.pool.query<{ event_type: string }>("SELECT event_type FROM events WHERE stream_id = $1 AND event_type IN ('HoldExpired', 'LotExpired') ORDER BY stream_revision", [tokenAccountStreamId(userId)])).rows.map((row) => row.event_type);

  /** Decides `command` on the account's stream through the write path, as a handler would. */
  async function decide(userId: string, command: Parameters<typeof decideTokenAccountWithState>[0]): Promise<void> {
    await testApp.app.get(CommandHandling, { strict: false }).handle({
      streamId: tokenAccountStreamId(userId),
      decider: tokenAccountDecider,
      decide: (state) => decideTokenAccountWithState(command, state),
      metadata: eventMetadata({ actor: TEST_ACTOR, requestId: randomUUID() }),
    });
  }

  /** A package of 40 tokens bought at a provider and captured at `now`, through the payment commands: its lot has `priority` and expires a day later. */
  async function boughtByCommands(userId: string, now: Date, priority: number): Promise<string> {
    const paymentId = randomUUID();
    const lot = { priority, expiresInDays: 1 };
    const order = { userId, paymentId, orderId: `order-${paymentId}`, packageId: 'promo', tokens: 40, amount: 100, currency: 'USD', provider: 'mock' };
    await decide(userId, { type: 'InitiatePayment', data: { ...order, now, expiresAt: new Date(now.getTime() + 3_600_000), pendingPaymentsMax: 10, lot } });
    await decide(userId, { type: 'CapturePayment', data: { userId, paymentId, outcome: { status: 'captured', providerTransactionId: `capture-${paymentId}` }, transactionId: randomUUID(), now } });
    return paymentId;
  }

  /** The job's decision for this account alone, at `now`. */
  async function recordExpiries(userId: string, now: Date): Promise<void> {
    const command = { type: 'ExpireCredits', data: { userId, transactionId: randomUUID(), now } } as const;
    await testApp.app.get(CommandHandling, { strict: false }).handle({
      streamId: tokenAccountStreamId(userId),
      decider: tokenAccountDecider,
      decide: (state) => decideTokenAccountWithState(command, state),
      metadata: eventMetadata({ actor: TEST_ACTOR, requestId: `expiries-${userId}` }),
    });
  }

  const holdEvents = async (userId: string) =>
    (await testApp.database.pool.query<{ event_type: string }>("SELECT event_type FROM events WHERE stream_id = $1 AND event_type LIKE 'Hold%' ORDER BY stream_revision", [tokenAccountStreamId(userId)])).rows.map((row) => row.event_type);

  it("times a hold placed on a clock ten minutes behind a millisecond after the stream's latest event, so it expires its TTL after that, not before it was placed", async () => {
    const userId = await fundedUser(100);
    const bought = Date.parse(((await http().get(`/v1/accounts/${userId}/transactions`).expect(200)).body.data[0] as { createdAt: string }).createdAt);
    clockNow = new Date(bought - 600_000);
    const placed = await clockApp.http().post(`/v1/accounts/${userId}/holds`).send({ amount: 60, expiresInSeconds: 60 }).expect(201);
    // A millisecond after the purchase, the stream's latest event.
    expect(placed.body.expiresAt).toBe(new Date(bought + 1 + 60_000).toISOString());
    // The process with the right clock settles it: on the placing clock's time it would have expired nine minutes ago.
    await settle(userId, placed.body.holdId as string, { amount: 25 }).expect(200);
    const times = await testApp.database.pool.query<{ event_type: string; occurred_at: string }>("SELECT event_type, data->>'occurredAt' AS occurred_at FROM events WHERE stream_id = $1 ORDER BY stream_revision", [tokenAccountStreamId(userId)]);
    expect(times.rows.map((row) => row.event_type)).toEqual(['TokensPurchased', 'TokensHeld', 'HoldSettled']);
    const occurred = times.rows.map((row) => Date.parse(row.occurred_at));
    expect(occurred[1]).toBe(bought + 1);
    expect(occurred[2]).toBeGreaterThan(bought + 1);
    expect(await balanceOf(userId)).toMatchObject({ balance: 75, held: 0, available: 75 });
    await expectConsistent(userId);
  });

  it('one millisecond before expiresAt the hold still counts: one of 5 racing settles and exactly 8 of 20 racing usages of 5 go through, balance 0', async () => {
    const { userId, holdId, expiresAt } = await held();
    clockNow = new Date(expiresAt.getTime() - 1);
    const [settles, usages] = await Promise.all([settleAll(userId, holdId, 5), useAll(userId, 20)]);
    expect(tally(settles)).toEqual({ 200: 1, '409 HOLD_NOT_ACTIVE settled': 4 });
    // 40 available whether the settle came first (100 - 60) or later (100 less 60 held).
    const refused = usages.filter((answer) => answer.status !== 201);
    expect(refused).toHaveLength(12);
    for (const refusal of refused) expect([refusal.status, refusal.body.code]).toEqual([409, expect.stringMatching(/^INSUFFICIENT_(AVAILABLE_)?BALANCE$/)]);
    expect(await balanceOf(userId)).toMatchObject({ balance: 0, held: 0, available: 0 });
    expect(await holdEvents(userId)).toEqual(['HoldSettled']);
    await expectConsistent(userId);
  });

  it('at expiresAt the hold no longer counts: all 20 racing usages of 5 go through, the expiry appended once with the first, and a settle is refused as expired', async () => {
    const { userId, holdId, expiresAt } = await held();
    clockNow = expiresAt;
    expect(tally(await useAll(userId, 20))).toEqual({ 201: 20 });
    expect(tally(await settleAll(userId, holdId, 2))).toEqual({ '409 HOLD_NOT_ACTIVE expired': 2 });
    expect(await balanceOf(userId)).toMatchObject({ balance: 0, held: 0, available: 0 });
    expect(await holdEvents(userId)).toEqual(['HoldExpired']);
    await expectConsistent(userId);
  });

  it('the expiry job expires a hold from its expiresAt, not a millisecond before', async () => {
    const { userId, expiresAt } = await held();
    const job = testApp.app.get(CreditExpiryJob);
    // Other accounts of this file may be due too: a few runs reach every one.
    for (let runs = 0; runs < 3; runs += 1) await job.runOnce(new Date(expiresAt.getTime() - 1));
    expect(await holdEvents(userId)).toEqual([]);
    for (let runs = 0; runs < 3 && (await holdEvents(userId)).length === 0; runs += 1) await job.runOnce(expiresAt);
    expect(await holdEvents(userId)).toEqual(['HoldExpired']);
    expect(await balanceOf(userId)).toMatchObject({ balance: 100, held: 0, available: 100 });
  });

  it('settles racing the expiry job at expiresAt: every settle refused as expired, the expiry appended once, ended at expiresAt', async () => {
    const { userId, holdId, expiresAt } = await held();
    clockNow = expiresAt;
    const [settles] = await Promise.all([settleAll(userId, holdId, 5), testApp.app.get(CreditExpiryJob).runOnce(expiresAt), testApp.app.get(CreditExpiryJob).runOnce(expiresAt)]);
    expect(tally(settles)).toEqual({ '409 HOLD_NOT_ACTIVE expired': 5 });
    expect(await balanceOf(userId)).toMatchObject({ balance: 100, held: 0, available: 100 });
    expect(await holdEvents(userId)).toEqual(['HoldExpired']);
    const ended = await testApp.database.pool.query<{ status: string; ended_at: Date }>('SELECT status, ended_at FROM token_holds WHERE hold_id = $1', [holdId]);
    expect(ended.rows).toEqual([{ status: 'expired', ended_at: expiresAt }]);
    await expectConsistent(userId);
  });

  it('reads as of the clock before the expiries are recorded: GET balance, GET holds and GET lots answer what recording them then leaves, and reading records nothing', async () => {
    const start = new Date();
    clockNow = start;
    const userId = randomUUID();
    const client = () => clockApp.http();
    const purchaseLot = (await client().post(`/v1/accounts/${userId}/purchases`).send({ paymentId: randomUUID(), amount: 100 }).expect(201)).body.transaction.lotId as string;
    const grantExpiresAt = new Date(start.getTime() + 60_000).toISOString();
    const grantLot = (await client().post(`/v1/admin/accounts/${userId}/grants`).send({ amount: 50, reason: 'Welcome bonus', expiresAt: grantExpiresAt }).expect(201)).body.lotId as string;
    // Both holds draw on the grant first (priority 10 before the purchase's 100): 40 of it, then 10 and 10 of the purchase.
    const early = (await client().post(`/v1/accounts/${userId}/holds`).send({ amount: 40, expiresInSeconds: 30 }).expect(201)).body as { holdId: string; expiresAt: string };
    const late = (await client().post(`/v1/accounts/${userId}/holds`).send({ amount: 20, expiresInSeconds: 120 }).expect(201)).body as { holdId: string };
    // Past the early hold's expiry and the grant's: the grant's free 40 expire, the late hold keeps its 10 of it.
    clockNow = new Date(start.getTime() + 90_000);
    const read = async () => {
      const list = async (query: string) => ((await client().get(`/v1/accounts/${userId}/holds${query}`).expect(200)).body.data as { holdId: string; status: string; endedAt: string | null }[]).map(({ holdId, status, endedAt }) => ({ holdId, status, endedAt }));
      const lots = async (query: string) => ((await client().get(`/v1/accounts/${userId}/lots${query}`).expect(200)).body.data as { lotId: string; status: string; remaining: number }[]).map(({ lotId, status, remaining }) => ({ lotId, status, remaining }));
      return {
        balance: (await client().get(`/v1/accounts/${userId}/balance`).expect(200)).body,
        all: await list(''),
        active: await list('?status=active'),
        expired: await list('?status=expired'),
        lots: await lots(''),
        activeLots: await lots('?status=active'),
        expiredLots: await lots('?status=expired'),
      };
    };
    const before = await read();
    expect(before).toEqual({
      balance: { userId, balance: 110, held: 20, available: 90, nextExpiry: null },
      all: [
        { holdId: late.holdId, status: 'active', endedAt: null },
        { holdId: early.holdId, status: 'expired', endedAt: early.expiresAt },
      ],
      active: [{ holdId: late.holdId, status: 'active', endedAt: null }],
      expired: [{ holdId: early.holdId, status: 'expired', endedAt: early.expiresAt }],
      // The grant (drawn first) past its expiry: what the late hold holds of it is all it has left.
      lots: [
        { lotId: grantLot, status: 'expired', remaining: 10 },
        { lotId: purchaseLot, status: 'active', remaining: 100 },
      ],
      activeLots: [{ lotId: purchaseLot, status: 'active', remaining: 100 }],
      expiredLots: [{ lotId: grantLot, status: 'expired', remaining: 10 }],
    });
    expect(await expiryEvents(userId)).toEqual([]);
    // A minute earlier, only the early hold is past its expiry: the grant is the next expiry, all 50 of it.
    clockNow = new Date(start.getTime() + 45_000);
    expect((await client().get(`/v1/accounts/${userId}/balance`).expect(200)).body).toEqual({ userId, balance: 150, held: 20, available: 130, nextExpiry: { expiresAt: grantExpiresAt, amount: 50, lotId: grantLot } });
    // Recorded at the later instant by the account's own expiry decision (the job's): the same answers, from the read models.
    clockNow = new Date(start.getTime() + 90_000);
    await recordExpiries(userId, clockNow);
    expect(await expiryEvents(userId)).toEqual(['HoldExpired', 'LotExpired']);
    expect(await read()).toEqual(before);
    // Past the late hold's expiry too: it gives its 10 of the expired grant back, which expire with it.
    clockNow = new Date(start.getTime() + 150_000);
    const later = await read();
    expect(later.balance).toEqual({ userId, balance: 100, held: 0, available: 100, nextExpiry: null });
    expect(later.lots).toEqual([
      { lotId: grantLot, status: 'expired', remaining: 0 },
      { lotId: purchaseLot, status: 'active', remaining: 100 },
    ]);
    expect(later.active).toEqual([]);
    await recordExpiries(userId, clockNow);
    expect(await expiryEvents(userId)).toEqual(['HoldExpired', 'LotExpired', 'HoldExpired', 'LotExpired']);
    expect(await read()).toEqual(later);
    // And what the balance said is what usage can take.
    expect((await client().post(`/v1/accounts/${userId}/usage`).send({ amount: 101 }).expect(409)).body).toMatchObject({ code: 'INSUFFICIENT_BALANCE', available: 100 });
    await client().post(`/v1/accounts/${userId}/usage`).send({ amount: 100 }).expect(201);
  });

  /** Runs `check` with the streams the service loads counted (`loads()`), then stops counting. */
  async function countingStreamLoads(check: (loads: () => number) => Promise<void>): Promise<void> {
    const handling = clockApp.app.get(CommandHandling, { strict: false });
    const load = handling.load;
    let loads = 0;
    handling.load = function (this: CommandHandling, ...args: unknown[]) {
      loads += 1;
      return Reflect.apply(load, this, args) as unknown;
    } as typeof load;
    try {
      await check(() => loads);
    } finally {
      handling.load = load;
    }
  }

  it("answers a hold, settle, release and grant asked again after their keys were purged as first answered: available without a pending refund's reservation then, though the refund has ended since", async () => {
    clockNow = new Date();
    const userId = randomUUID();
    const paymentId = await boughtByCommands(userId, clockNow, 200);
    await clockApp.http().post(`/v1/admin/accounts/${userId}/grants`).send({ amount: 50, reason: 'Welcome bonus' }).expect(201);
    // The purchase's 40 reserved by its refund, pending at the provider: 50 of the 90 are available.
    await decide(userId, { type: 'RequestRefund', data: { userId, paymentId, transactionId: randomUUID(), now: clockNow } });
    const keys = { hold: randomUUID(), toSettle: randomUUID(), settle: randomUUID(), release: randomUUID(), grant: randomUUID() };
    const keyed = (key: string) => ({ 'idempotency-key': key });
    const hold = () => clockApp.http().post(`/v1/accounts/${userId}/holds`).set(keyed(keys.hold)).send({ amount: 10 });
    const toSettle = () => clockApp.http().post(`/v1/accounts/${userId}/holds`).set(keyed(keys.toSettle)).send({ amount: 20 });
    const first = { hold: (await hold().expect(201)).body, toSettle: (await toSettle().expect(201)).body };
    const settle = () => clockApp.http().post(`/v1/accounts/${userId}/holds/${first.toSettle.holdId}/settle`).set(keyed(keys.settle)).send({ amount: 5 });
    const release = () => clockApp.http().post(`/v1/accounts/${userId}/holds/${first.hold.holdId}/release`).set(keyed(keys.release)).send({});
    const grant = () => clockApp.http().post(`/v1/admin/accounts/${userId}/grants`).set(keyed(keys.grant)).send({ amount: 5, reason: 'Goodwill' });
    const answers = { ...first, settle: (await settle().expect(200)).body, release: (await release().expect(200)).body, grant: (await grant().expect(201)).body };
    expect(answers).toMatchObject({
      hold: { balance: 90, held: 10, available: 40 },
      toSettle: { balance: 90, held: 30, available: 20 },
      settle: { balance: 85, held: 10, available: 35 },
      release: { balance: 85, held: 0, available: 45 },
      grant: { balance: 90, held: 0, available: 50 },
    });
    // The refund fails at the provider: nothing is reserved any more. The failure names its request as the refund flow does, by the pending payment's time.
    const { state } = await testApp.app.get(CommandHandling, { strict: false }).load(tokenAccountStreamId(userId), tokenAccountDecider);
    const requestedAt = state.payments.get(paymentId)?.updatedAt ?? '';
    expect(requestedAt).toBe(new Date(clockNow.getTime() + 1).toISOString());
    await decide(userId, { type: 'FailRefund', data: { userId, paymentId, requestedAt, providerRefundId: null, reason: 'failed: lost_or_stolen_card', transactionId: randomUUID(), now: clockNow } });
    expect((await clockApp.http().get(`/v1/accounts/${userId}/balance`).expect(200)).body).toMatchObject({ balance: 90, held: 0, available: 90 });
    // Keys purged (kept 24 hours): each request asked again finds its events in the stream and is answered from them.
    await testApp.database.pool.query('DELETE FROM idempotency_keys WHERE key = ANY($1)', [Object.values(keys)]);
    const again = { hold: await hold(), toSettle: await toSettle(), settle: await settle(), release: await release(), grant: await grant() };
    const withoutTrace = (body: Record<string, unknown>) => ({ ...body, readModelUpToDate: null });
    for (const [name, answer] of Object.entries(again)) {
      expect({ name, status: answer.status, body: withoutTrace(answer.body) }).toEqual({ name, status: name === 'hold' || name === 'toSettle' || name === 'grant' ? 201 : 200, body: withoutTrace(answers[name as keyof typeof answers]) });
    }
    const events = await testApp.database.pool.query<{ event_type: string }>('SELECT event_type FROM events WHERE stream_id = $1 ORDER BY stream_revision', [tokenAccountStreamId(userId)]);
    // Nothing appended again.
    expect(events.rows.map((row) => row.event_type)).toEqual([
      'PaymentInitiated',
      'PaymentCaptured',
      'TokensPurchased',
      'TokensGranted',
      'PaymentRefundRequested',
      'TokensHeld',
      'TokensHeld',
      'HoldSettled',
      'HoldReleased',
      'TokensGranted',
      'PaymentRefundFailed',
    ]);
  });

  it("answers the balance from the read models, without the stream, past the expiry of a purchase's lot that its pending refund reserves whole", async () => {
    const start = new Date();
    clockNow = start;
    const userId = randomUUID();
    const client = () => clockApp.http();
    const paymentId = await boughtByCommands(userId, start, 200);
    await decide(userId, { type: 'RequestRefund', data: { userId, paymentId, transactionId: randomUUID(), now: start } });
    // Counts the streams the service loads to answer.
    await countingStreamLoads(async (loads) => {
      // A day and a minute on, the refund still pending: its reservation keeps all 40, so nothing expires.
      clockNow = new Date(start.getTime() + 86_460_000);
      expect((await client().get(`/v1/accounts/${userId}/balance`).expect(200)).body).toEqual({ userId, balance: 40, held: 0, available: 0, reservedForRefunds: 40, nextExpiry: null });
      expect(loads()).toBe(0);
      // The same answer the stream gives with the expiries due now decided.
      await recordExpiries(userId, clockNow);
      expect(await expiryEvents(userId)).toEqual([]);
    });
  });

  it("answers the balance from the read models, without the stream, past a lot's expiry that live holds hold whole; and never names as next expiry a refunded purchase's lot that holds hold", async () => {
    const start = new Date();
    clockNow = start;
    const userId = randomUUID();
    const client = () => clockApp.http();
    // A purchase of 40 whose lot expires in a day, bought through the payment commands (a provider's capture), and a grant of 50 expiring in a minute.
    const paymentId = await boughtByCommands(userId, start, 200);
    const grantExpiresAt = new Date(start.getTime() + 60_000).toISOString();
    const grantLot = (await client().post(`/v1/admin/accounts/${userId}/grants`).send({ amount: 50, reason: 'Welcome bonus', priority: 10, expiresAt: grantExpiresAt }).expect(201)).body.lotId as string;
    // Held whole: the grant (drawn first), then the purchase.
    await client().post(`/v1/accounts/${userId}/holds`).send({ amount: 90, expiresInSeconds: 600 }).expect(201);
    // Counts the streams the service loads to answer.
    await countingStreamLoads(async (loads) => {
      // Past the grant's expiry: the hold holds all of it, so nothing expires, and the next expiry is the purchase's.
      clockNow = new Date(start.getTime() + 90_000);
      const purchaseExpiresAt = new Date(start.getTime() + 86_400_000).toISOString();
      const purchaseLot = ((await client().get(`/v1/accounts/${userId}/lots`).expect(200)).body.data as { lotId: string; paymentId: string | null }[]).find((lot) => lot.paymentId === paymentId)?.lotId;
      expect((await client().get(`/v1/accounts/${userId}/balance`).expect(200)).body).toEqual({ userId, balance: 90, held: 90, available: 0, nextExpiry: { expiresAt: purchaseExpiresAt, amount: 40, lotId: purchaseLot } });
      expect(loads()).toBe(0);
      // The provider refunds the purchase while the hold holds all of it: the refund takes its 40 as the hold gives them back, so they never expire.
      await decide(userId, { type: 'RefundPayment', data: { userId, paymentId, providerRefundId: `refund-${paymentId}`, transactionId: randomUUID(), now: clockNow } });
      expect((await client().get(`/v1/accounts/${userId}/balance`).expect(200)).body).toEqual({ userId, balance: 90, held: 90, available: 0, nextExpiry: null });
      expect(loads()).toBe(0);
      // The same answer the stream gives with the expiries due now decided.
      await recordExpiries(userId, clockNow);
      expect(await expiryEvents(userId)).toEqual([]);
    });
    expect(grantLot).toEqual(expect.any(String));
  });

  /** The account's lots as the list shows them (all, or of one status): id, status, remaining. */
  const lotsOf = async (userId: string, query = '') =>
    ((await clockApp.http().get(`/v1/accounts/${userId}/lots${query}`).expect(200)).body.data as { lotId: string; status: string; remaining: number }[]).map(({ lotId, status, remaining }) => ({ lotId, status, remaining }));
  const purchaseLotOf = async (userId: string, paymentId: string) =>
    ((await clockApp.http().get(`/v1/accounts/${userId}/lots`).expect(200)).body.data as { lotId: string; paymentId: string | null }[]).find((lot) => lot.paymentId === paymentId)?.lotId as string;

  it.each([
    ["held whole (token_lots records the lot 'active')", 40, 'HoldTokens'],
    ["held in part (the refund took the free part: 'refunded')", 30, 'HoldTokens'],
    ["held in part after its free part expired ('expired')", 30, 'expired first'],
  ])("lists a purchase's lot refunded while holds held what was left of it (%s) as refunded, with what live holds hold: those tokens go to the refund", async (_label, heldAmount, order) => {
    const start = new Date();
    clockNow = start;
    const userId = randomUUID();
    // A purchase of 40 drawn first (priority 0), its lot expiring in a day; 100 more credit without expiry.
    const paymentId = await boughtByCommands(userId, start, 0);
    await clockApp.http().post(`/v1/accounts/${userId}/purchases`).send({ paymentId: randomUUID(), amount: 100 }).expect(201);
    const purchaseLot = await purchaseLotOf(userId, paymentId);
    const otherLot = (await lotsOf(userId)).find((lot) => lot.lotId !== purchaseLot)?.lotId as string;
    // A hold of the lot that outlives it (two days, decided directly: the API caps a hold at HOLD_TTL_MAX).
    const holdId = randomUUID();
    await decide(userId, { type: 'HoldTokens', data: { userId, holdId, amount: heldAmount, description: null, ttlSeconds: 2 * 86_400, ttlSecondsMax: 2 * 86_400, transactionId: randomUUID(), now: start } });
    let refundedAt = start;
    if (order === 'expired first') {
      // Its free part expires (recorded), then the provider refunds the purchase.
      refundedAt = new Date(start.getTime() + 86_400_000 + 1_000);
      clockNow = refundedAt;
      await recordExpiries(userId, refundedAt);
      expect(await lotsOf(userId)).toEqual([{ lotId: purchaseLot, status: 'expired', remaining: heldAmount }, { lotId: otherLot, status: 'active', remaining: 100 }]);
    }
    await decide(userId, { type: 'RefundPayment', data: { userId, paymentId, providerRefundId: `refund-${paymentId}`, transactionId: randomUUID(), now: refundedAt } });
    const heldBack = { lotId: purchaseLot, status: 'refunded', remaining: heldAmount };
    expect(await lotsOf(userId)).toEqual([heldBack, { lotId: otherLot, status: 'active', remaining: 100 }]);
    expect(await lotsOf(userId, '?status=refunded')).toEqual([heldBack]);
    expect(await lotsOf(userId, '?status=active')).toEqual([{ lotId: otherLot, status: 'active', remaining: 100 }]);
    expect(await lotsOf(userId, '?status=expired')).toEqual([]);
    // Past the hold's expiry the refund has them: nothing left, before and after the job records it.
    clockNow = new Date(start.getTime() + 2 * 86_400_000 + 1_000);
    const gone = [{ lotId: purchaseLot, status: 'refunded', remaining: 0 }, { lotId: otherLot, status: 'active', remaining: 100 }];
    expect(await lotsOf(userId)).toEqual(gone);
    await recordExpiries(userId, clockNow);
    expect(await lotsOf(userId)).toEqual(gone);
    expect((await clockApp.http().get(`/v1/accounts/${userId}/balance`).expect(200)).body).toMatchObject({ balance: 100, held: 0, available: 100 });
  });

  it.each([
    ['held whole', 40],
    ["held in part (the refund took the free part, and token_lots records the lot 'refunded')", 30],
  ])("counts a refunded purchase's lot (%s) as any once its tokens are free again (a lost dispute took the refund's part elsewhere): due at its expiry, as the stream says", async (_label, heldAmount) => {
    const start = new Date();
    clockNow = start;
    const userId = randomUUID();
    const client = () => clockApp.http();
    // A purchase of 40 drawn first (priority 0), its lot expiring in a day; 100 more credit without expiry.
    const paymentId = await boughtByCommands(userId, start, 0);
    await client().post(`/v1/accounts/${userId}/purchases`).send({ paymentId: randomUUID(), amount: 100 }).expect(201);
    const { holdId } = (await client().post(`/v1/accounts/${userId}/holds`).send({ amount: heldAmount, expiresInSeconds: 600 }).expect(201)).body as { holdId: string };
    // Refunded at the provider while held (taking the free part at once); then its dispute is lost, which takes the held part from the other credit; the hold is released.
    await decide(userId, { type: 'RefundPayment', data: { userId, paymentId, providerRefundId: `refund-${paymentId}`, transactionId: randomUUID(), now: start } });
    await decide(userId, { type: 'RecordDispute', data: { userId, paymentId, disputeId: `dp-${paymentId}`, status: 'lost', amount: 100, currency: 'USD', reason: 'fraudulent', transactionId: randomUUID(), now: start } });
    const purchaseLot = await purchaseLotOf(userId, paymentId);
    // Its tokens are the account's again: listed active (as usage draws on them), held, then free.
    expect((await lotsOf(userId, '?status=active')).find((lot) => lot.lotId === purchaseLot)).toEqual({ lotId: purchaseLot, status: 'active', remaining: heldAmount });
    await client().post(`/v1/accounts/${userId}/holds/${holdId}/release`).send({}).expect(200);
    expect((await lotsOf(userId, '?status=active')).find((lot) => lot.lotId === purchaseLot)).toEqual({ lotId: purchaseLot, status: 'active', remaining: heldAmount });
    expect(await lotsOf(userId, '?status=refunded')).toEqual([]);
    const expiresAt = new Date(start.getTime() + 86_400_000);
    // 140 credited, the refund's free part and the dispute's held part taken back: 100 left, the purchase's held part spendable again.
    const left = 140 - (40 - heldAmount) - heldAmount;
    expect((await client().get(`/v1/accounts/${userId}/balance`).expect(200)).body).toEqual({ userId, balance: left, held: 0, available: left, nextExpiry: { expiresAt: expiresAt.toISOString(), amount: heldAmount, lotId: purchaseLot } });
    // Past its expiry those are gone, read as of now before the job records it.
    clockNow = expiresAt;
    const after = { userId, balance: left - heldAmount, held: 0, available: left - heldAmount, nextExpiry: null };
    expect((await client().get(`/v1/accounts/${userId}/balance`).expect(200)).body).toEqual(after);
    const expired = { lotId: purchaseLot, status: 'expired', remaining: 0 };
    expect((await lotsOf(userId)).find((lot) => lot.lotId === purchaseLot)).toEqual(expired);
    await recordExpiries(userId, clockNow);
    expect(await expiryEvents(userId)).toEqual(['LotExpired']);
    expect((await client().get(`/v1/accounts/${userId}/balance`).expect(200)).body).toEqual(after);
    expect((await lotsOf(userId)).find((lot) => lot.lotId === purchaseLot)).toEqual(expired);
  });
});

describe('an expired hold ends at its expiresAt', () => {
  it('shows endedAt equal to expiresAt though the expiry was recorded an hour late, before and after a rebuild of the account', async () => {
    const userId = await fundedUser(100);
    const placed = await hold(userId, { amount: 30, expiresInSeconds: 1 }).expect(201);
    const { holdId, expiresAt } = placed.body as { holdId: string; expiresAt: string };
    const late = new Date(Date.parse(expiresAt) + 3_600_000);
    await sleep(Math.max(0, Date.parse(expiresAt) - Date.now() + 10));
    // The job's command for this account alone, as the job would decide it an hour late.
    const command = { type: 'ExpireCredits', data: { userId, transactionId: randomUUID(), now: late } } as const;
    await testApp.app.get(CommandHandling, { strict: false }).handle({
      streamId: tokenAccountStreamId(userId),
      decider: tokenAccountDecider,
      decide: (state) => decideTokenAccountWithState(command, state),
      metadata: eventMetadata({ actor: TEST_ACTOR, requestId: 'late-expiry' }),
    });
    const recorded = await testApp.database.pool.query<{ occurred_at: string }>(`SELECT data->>'occurredAt' AS occurred_at FROM events WHERE stream_id = $1 AND event_type = 'HoldExpired'`, [`token-account-${userId}`]);
    expect(recorded.rows).toEqual([{ occurred_at: late.toISOString() }]);
    const expired = async () => (await http().get(`/v1/accounts/${userId}/holds?status=expired`).expect(200)).body.data as unknown[];
    expect(await expired()).toEqual([expect.objectContaining({ holdId, status: 'expired', expiresAt, endedAt: expiresAt })]);
    await http().post(`/v1/admin/accounts/${userId}/rebuild`).expect(200);
    expect(await expired()).toEqual([expect.objectContaining({ holdId, status: 'expired', expiresAt, endedAt: expiresAt })]);
    // A hold expiry moves no tokens, so the history has no row for it.
    const history = await http().get(`/v1/accounts/${userId}/transactions`).expect(200);
    expect(history.body.data.map((row: { transactionType: string }) => row.transactionType)).toEqual(['purchase']);
    await expectConsistent(userId);
  });
});

/**
 * A real-clock expiry soon enough to wait for, late enough that the requests before it (on a loaded
 * machine, with other test files running) are decided while the lot is still live.
 */
const EXPIRES_SOON_MS = 5_000;

describe('credit lots over HTTP', () => {
  it('spends a promotional grant before paid credit, records the draws, and expires its remainder', async () => {
    const userId = await fundedUser(100);
    const expiresAt = new Date(Date.now() + EXPIRES_SOON_MS).toISOString();
    const granted = await http().post(`/v1/admin/accounts/${userId}/grants`).send({ amount: 50, reason: 'Welcome bonus', expiresAt }).expect(201);
    const grantLot = granted.body.lotId as string;
    expect(granted.body).toMatchObject({ balance: 150, transaction: { amount: 50, transactionType: 'adjustment', description: 'Welcome bonus', lotId: grantLot } });
    expect((await http().get(`/v1/accounts/${userId}/balance`).expect(200)).body).toMatchObject({ balance: 150, nextExpiry: { expiresAt, amount: 50, lotId: grantLot } });

    const used = await use(userId, 30).expect(201);
    expect(used.body.transaction.draws).toEqual([{ lotId: grantLot, amount: 30 }]);
    const lots = await http().get(`/v1/accounts/${userId}/lots`).expect(200);
    expect(lots.body.data.map((lot: { source: string; remaining: number; status: string }) => [lot.source, lot.remaining, lot.status])).toEqual([
      ['grant', 20, 'active'],
      ['purchase', 100, 'active'],
    ]);

    await sleep(Math.max(0, Date.parse(expiresAt) - Date.now() + 10));
    expect((await testApp.app.get(CreditExpiryJob).runOnce(new Date())).expired).toBe(1);
    expect(await balanceOf(userId)).toMatchObject({ balance: 100, held: 0, available: 100 });
    const history = await http().get(`/v1/accounts/${userId}/transactions?limit=1`).expect(200);
    expect(history.body.data[0]).toMatchObject({ amount: -20, transactionType: 'expiry', draws: [{ lotId: grantLot, amount: 20 }] });
    const expired = await http().get(`/v1/accounts/${userId}/lots?status=expired`).expect(200);
    expect(expired.body.data).toEqual([expect.objectContaining({ lotId: grantLot, remaining: 0, status: 'expired' })]);
    await expectConsistent(userId);
  });

  it('voids what is left of a grant, with the reason, and refuses a lot that is not a grant', async () => {
    const userId = await fundedUser(10);
    const lotId = (await http().post(`/v1/admin/accounts/${userId}/grants`).send({ amount: 40, reason: 'Promo' }).expect(201)).body.lotId as string;
    await use(userId, 15).expect(201);
    const voided = await http().post(`/v1/admin/accounts/${userId}/grants/${lotId}/void`).send({ reason: 'Wrong account' }).expect(200);
    expect(voided.body).toMatchObject({ balance: 10, transaction: { amount: -25, transactionType: 'adjustment', description: 'Wrong account' } });
    const purchaseLot = (await http().get(`/v1/accounts/${userId}/lots?status=active`).expect(200)).body.data[0].lotId as string;
    expect((await http().post(`/v1/admin/accounts/${userId}/grants/${purchaseLot}/void`).send({ reason: 'x' }).expect(409)).body.code).toBe('LOT_NOT_A_GRANT');
    // Voided already: the lot exists, no longer active; nothing more is taken.
    const again = await http().post(`/v1/admin/accounts/${userId}/grants/${lotId}/void`).send({ reason: 'again' }).expect(409);
    expect(again.body).toMatchObject({ code: 'LOT_NOT_ACTIVE', lotId, lotStatus: 'voided', detail: `lot ${lotId} is voided` });
    expect((await http().get(`/v1/accounts/${userId}/lots?status=voided`).expect(200)).body.data).toEqual([expect.objectContaining({ lotId, status: 'voided' })]);
    expect(await balanceOf(userId)).toMatchObject({ balance: 10 });
    await expectConsistent(userId);
  });

  it('answers the void of a grant spent whole or expired with 409 LOT_NOT_ACTIVE and how it ended, of any other lot with LOT_NOT_A_GRANT, and 404 only for a lot the account never had', async () => {
    const userId = await fundedUser(10);
    const voidOf = (lotId: string) => http().post(`/v1/admin/accounts/${userId}/grants/${lotId}/void`).send({ reason: 'Wrong account' });
    const grantOf = async (amount: number, expiresAt?: string) => (await http().post(`/v1/admin/accounts/${userId}/grants`).send({ amount, reason: 'Promo', expiresAt }).expect(201)).body.lotId as string;
    // Spent whole: grants are spent before paid credit.
    const spent = await grantOf(5);
    await use(userId, 5).expect(201);
    expect((await voidOf(spent).expect(409)).body).toMatchObject({ code: 'LOT_NOT_ACTIVE', lotId: spent, lotStatus: 'spent', detail: `lot ${spent} is spent` });
    // Expired: first before the expiry is recorded (the void's own decision sees it), then after.
    const expiresAt = new Date(Date.now() + EXPIRES_SOON_MS).toISOString();
    const expired = await grantOf(5, expiresAt);
    await sleep(Math.max(0, Date.parse(expiresAt) - Date.now() + 10));
    expect((await voidOf(expired).expect(409)).body).toMatchObject({ code: 'LOT_NOT_ACTIVE', lotId: expired, lotStatus: 'expired' });
    expect((await testApp.app.get(CreditExpiryJob).runOnce(new Date())).expired).toBe(1);
    expect((await voidOf(expired).expect(409)).body).toMatchObject({ code: 'LOT_NOT_ACTIVE', lotId: expired, lotStatus: 'expired' });
    // The purchase's lot, spent whole: not a grant, whatever its state.
    const purchaseLot = (await http().get(`/v1/accounts/${userId}/lots?status=active`).expect(200)).body.data[0].lotId as string;
    await use(userId, 10).expect(201);
    expect((await voidOf(purchaseLot).expect(409)).body).toMatchObject({ code: 'LOT_NOT_A_GRANT', lotId: purchaseLot, source: 'purchase' });
    // An id this account never had, and another account's grant.
    const unknown = randomUUID();
    expect((await voidOf(unknown).expect(404)).body).toMatchObject({ code: 'LOT_NOT_FOUND', lotId: unknown, detail: `this account has no lot ${unknown}` });
    const elsewhere = await fundedUser(1);
    const othersGrant = (await http().post(`/v1/admin/accounts/${elsewhere}/grants`).send({ amount: 5, reason: 'Promo' }).expect(201)).body.lotId as string;
    expect((await voidOf(othersGrant).expect(404)).body).toMatchObject({ code: 'LOT_NOT_FOUND', lotId: othersGrant });
    expect(await balanceOf(userId)).toMatchObject({ balance: 0, held: 0 });
    await expectConsistent(userId);
  });

  it('answers the void of a grant voided before the newest 100 with 409 LOT_NOT_ACTIVE voided, as the lot list shows it', async () => {
    const userId = randomUUID();
    const lotIds: string[] = [];
    for (let index = 0; index <= VOIDED_GRANTS_REMEMBERED_MAX; index += 1) {
      const lotId = (await http().post(`/v1/admin/accounts/${userId}/grants`).send({ amount: 1, reason: 'Promo' }).expect(201)).body.lotId as string;
      await http().post(`/v1/admin/accounts/${userId}/grants/${lotId}/void`).send({ reason: 'Wrong account' }).expect(200);
      lotIds.push(lotId);
    }
    const first = lotIds[0] as string;
    expect((await http().post(`/v1/admin/accounts/${userId}/grants/${first}/void`).send({ reason: 'again' }).expect(409)).body).toMatchObject({ code: 'LOT_NOT_ACTIVE', lotId: first, lotStatus: 'voided' });
  });

  it('answers the void of the opening lot (credits written before lots), with tokens or spent, with LOT_NOT_A_GRANT', async () => {
    const store = testApp.app.get<EventStore>(EVENT_STORE, { strict: false });
    const at = new Date().toISOString();
    const [live, spent] = [randomUUID(), randomUUID()];
    const purchase = (userId: string) => ({ id: randomUUID(), type: 'TokensPurchased', data: { userId, transactionId: randomUUID(), paymentId: randomUUID(), amount: 30, description: null, balanceAfter: 30, occurredAt: at } });
    await store.append(tokenAccountStreamId(live), [purchase(live)], { expectedRevision: 'no_stream' });
    await store.append(tokenAccountStreamId(spent), [purchase(spent), { id: randomUUID(), type: 'TokensUsed', data: { userId: spent, transactionId: randomUUID(), amount: 30, description: null, balanceAfter: 0, occurredAt: at } }], { expectedRevision: 'no_stream' });
    for (const userId of [live, spent]) {
      const refused = await http().post(`/v1/admin/accounts/${userId}/grants/opening/void`).send({ reason: 'x' }).expect(409);
      expect(refused.body).toMatchObject({ code: 'LOT_NOT_A_GRANT', lotId: 'opening', source: 'opening' });
    }
  });

  it('takes a lot id in upper case, as it does a user or hold id, and the opening lot id', async () => {
    const userId = await fundedUser(10);
    const lotId = (await http().post(`/v1/admin/accounts/${userId}/grants`).send({ amount: 40, reason: 'Promo' }).expect(201)).body.lotId as string;
    const voided = await http().post(`/v1/admin/accounts/${userId.toUpperCase()}/grants/${lotId.toUpperCase()}/void`).send({ reason: 'Wrong account' }).expect(200);
    expect(voided.body).toMatchObject({ userId, lotId, balance: 10 });
    // `opening` names a lot (credits written before lots); this account has none, which the ledger says.
    for (const opening of ['opening', 'OPENING']) {
      expect((await http().post(`/v1/admin/accounts/${userId}/grants/${opening}/void`).send({ reason: 'x' }).expect(404)).body).toMatchObject({ code: 'LOT_NOT_FOUND', lotId: 'opening' });
    }
    expect((await http().post(`/v1/admin/accounts/${userId}/grants/openings/void`).send({ reason: 'x' }).expect(400)).body.errors).toEqual([expect.objectContaining({ field: 'lotId', rule: 'isUuid' })]);
  });

  it('grants, a void and usages racing on one account: every token accounted for, exactly', async () => {
    const userId = await fundedUser(10);
    const voidable = (await http().post(`/v1/admin/accounts/${userId}/grants`).send({ amount: 50, reason: 'Promo' }).expect(201)).body.lotId as string;
    const responses = await Promise.all([
      ...Array.from({ length: 10 }, (_, index) => http().post(`/v1/admin/accounts/${userId}/grants`).send({ amount: 5, reason: `Bonus ${index}` })),
      http().post(`/v1/admin/accounts/${userId}/grants/${voidable}/void`).send({ reason: 'Wrong account' }),
      ...Array.from({ length: 20 }, () => use(userId, 5)),
    ]);
    const [grants, [voided], usages] = [responses.slice(0, 10), responses.slice(10, 11), responses.slice(11)];
    expect(grants.map((response) => response.status)).toEqual(Array.from({ length: 10 }, () => 201));
    // The void takes what is left of the grant when it lands; spent whole first, it is refused as spent.
    expect([200, 409]).toContain(voided?.status);
    if (voided?.status === 409) expect(voided.body).toMatchObject({ code: 'LOT_NOT_ACTIVE', lotStatus: 'spent' });
    const voidedAmount = voided?.status === 200 ? -(voided.body.transaction.amount as number) : 0;
    const refused = usages.filter((response) => response.status !== 201).map((response) => [response.status, response.body.code]);
    expect(refused.filter(([status, code]) => !(status === 409 && ['INSUFFICIENT_BALANCE', 'INSUFFICIENT_AVAILABLE_BALANCE'].includes(code as string)))).toEqual([]);
    const spent = usages.filter((response) => response.status === 201).length * 5;
    expect(await balanceOf(userId)).toMatchObject({ balance: 10 + 50 + 50 - voidedAmount - spent, held: 0 });
    await expectConsistent(userId);
  });

  it('ten voids of one grant racing twenty usages on one account: voided once at most, every token accounted for, exactly', async () => {
    const userId = await fundedUser(10);
    const lotId = (await http().post(`/v1/admin/accounts/${userId}/grants`).send({ amount: 50, reason: 'Promo' }).expect(201)).body.lotId as string;
    const responses = await Promise.all([
      ...Array.from({ length: 10 }, (_, index) => http().post(`/v1/admin/accounts/${userId}/grants/${lotId}/void`).send({ reason: `Wrong account ${index}` })),
      ...Array.from({ length: 20 }, () => use(userId, 5)),
    ]);
    const [voids, usages] = [responses.slice(0, 10), responses.slice(10)];
    const voided = voids.filter((response) => response.status === 200);
    // The first void to land takes what is left (the rest then find it voided); a grant spent whole first is refused as spent by all.
    expect(voided.length).toBeLessThanOrEqual(1);
    expect(voids.filter((response) => response.status !== 200).map((response) => [response.status, response.body.code, response.body.lotStatus])).toEqual(
      Array.from({ length: 10 - voided.length }, () => [409, 'LOT_NOT_ACTIVE', voided.length === 1 ? 'voided' : 'spent']),
    );
    const voidedAmount = voided.length === 1 ? -(voided[0]?.body.transaction.amount as number) : 0;
    const refused = usages.filter((response) => response.status !== 201).map((response) => [response.status, response.body.code]);
    expect(refused.filter(([status, code]) => !(status === 409 && ['INSUFFICIENT_BALANCE', 'INSUFFICIENT_AVAILABLE_BALANCE'].includes(code as string)))).toEqual([]);
    const spent = usages.filter((response) => response.status === 201).length * 5;
    expect(await balanceOf(userId)).toMatchObject({ balance: 10 + 50 - voidedAmount - spent, held: 0 });
    const voidEvents = await testApp.database.pool.query("SELECT 1 FROM events WHERE stream_id = $1 AND event_type = 'GrantVoided'", [`token-account-${userId}`]);
    expect(voidEvents.rowCount).toBe(voided.length);
    await expectConsistent(userId);
  });

  it('refuses a grant expiring in the past, naming the field and the rule, and writes nothing', async () => {
    const userId = randomUUID();
    const response = await http().post(`/v1/admin/accounts/${userId}/grants`).send({ amount: 5, reason: 'Late', expiresAt: '2020-01-01T00:00:00.000Z' }).expect(400);
    expect(response.body).toMatchObject({ code: 'LOT_EXPIRY_OUT_OF_RANGE', field: 'expiresAt', rule: 'afterNow', expiresAt: '2020-01-01T00:00:00.000Z' });
    expect((await testApp.database.pool.query('SELECT 1 FROM events WHERE stream_id = $1', [`token-account-${userId}`])).rowCount).toBe(0);
  });

  it('reads expiresAt: null as no expiry, as priority: null is the default priority', async () => {
    const userId = randomUUID();
    await http().post(`/v1/admin/accounts/${userId}/grants`).send({ amount: 10, reason: 'No end', expiresAt: null, priority: null }).expect(201);
    const lots = await http().get(`/v1/accounts/${userId}/lots`).expect(200);
    expect(lots.body.data).toEqual([expect.objectContaining({ source: 'grant', original: 10, priority: 10, expiresAt: null, status: 'active' })]);
  });

  it.each(['2099-W01-1', '2099-01-01', '2099-01-01T00:00:00', '2099-01-01T00:00', '2099-01-01T00:00:00+0100', '2099-01-01 00:00:00Z', '2099-02-29T00:00:00Z', '2099-01-01T24:00:00Z', '2099-01-01T00:00:00+24:00', '9999-12-31T23:59:59-23:59'])(
    'refuses expiresAt %s, not an RFC 3339 date-time with an offset in the years 0001 to 9999, naming the field and the rule, and grants nothing',
    async (expiresAt) => {
      const userId = randomUUID();
      const response = await http().post(`/v1/admin/accounts/${userId}/grants`).send({ amount: 5, reason: 'Odd date', expiresAt }).expect(400);
      expect(response.body).toMatchObject({ code: 'VALIDATION_FAILED', errors: [{ field: 'expiresAt', rule: 'isDateTime', message: 'expiresAt must be an RFC 3339 date-time with an offset (Z or ±hh:mm), such as 2027-01-01T00:00:00Z, in the years 0001 to 9999 in UTC' }] });
      expect((await http().get(`/v1/accounts/${userId}/balance`).expect(200)).body.balance).toBe(0);
    },
  );

  it.each([
    ['2099-01-01T00:00:00Z', '2099-01-01T00:00:00.000Z'],
    ['2099-01-01t01:30:00.25+01:30', '2099-01-01T00:00:00.250Z'],
    ['2099-01-01T00:00:00-00:00', '2099-01-01T00:00:00.000Z'],
  ])('takes expiresAt %s, an RFC 3339 date-time, as the instant it names', async (expiresAt, instant) => {
    const userId = randomUUID();
    await http().post(`/v1/admin/accounts/${userId}/grants`).send({ amount: 5, reason: 'Dated', expiresAt }).expect(201);
    expect((await http().get(`/v1/accounts/${userId}/lots`).expect(200)).body.data).toEqual([expect.objectContaining({ expiresAt: instant })]);
  });
});

describe('the lot list (an application on a test clock)', () => {
  let clockApp: TestApp;
  let clockNow = new Date();

  beforeAll(async () => {
    clockApp = await startTestAppOn(testApp.database, { CREDIT_EXPIRY_JOB_ENABLED: 'false' }, { clock: () => clockNow });
  });

  afterAll(async () => {
    await clockApp.close();
  });

  it('lists lots of one priority and expiry oldest first in the stream, as usage draws them, whatever the clock read when each was credited', async () => {
    const userId = randomUUID();
    const start = new Date();
    // The second and third grants are decided at a clock a minute behind the first's (a clock set
    // back, or another process's), the third in the second's very millisecond: each is timed a
    // millisecond after the one before it, as no event of a stream is timed before those before it.
    const lots: string[] = [];
    for (const at of [start, new Date(start.getTime() - 60_000), new Date(start.getTime() - 60_000)]) {
      clockNow = at;
      lots.push((await clockApp.http().post(`/v1/admin/accounts/${userId}/grants`).send({ amount: 10, reason: 'Promotion', priority: 5 }).expect(201)).body.lotId as string);
    }
    clockNow = start;
    const listed = (await clockApp.http().get(`/v1/accounts/${userId}/lots`).expect(200)).body as { data: { lotId: string; createdAt: string }[] };
    expect(listed.data.map((lot) => [lot.lotId, lot.createdAt])).toEqual([
      [lots[0], start.toISOString()],
      [lots[1], new Date(start.getTime() + 1).toISOString()],
      [lots[2], new Date(start.getTime() + 2).toISOString()],
    ]);
    // Page by page after a cursor, the same order.
    const paged: string[] = [];
    for (let cursor: string | null = null, first = true; first || cursor !== null; first = false) {
      const page = (await clockApp.http().get(`/v1/accounts/${userId}/lots?limit=1${cursor === null ? '' : `&cursor=${cursor}`}`).expect(200)).body as { data: { lotId: string }[]; nextCursor: string | null };
      paged.push(...page.data.map((lot) => lot.lotId));
      cursor = page.nextCursor;
    }
    expect(paged).toEqual(lots);
    const used = await clockApp.http().post(`/v1/accounts/${userId}/usage`).send({ amount: 25 }).expect(201);
    expect(used.body.transaction.draws).toEqual([
      { lotId: lots[0], amount: 10 },
      { lotId: lots[1], amount: 10 },
      { lotId: lots[2], amount: 5 },
    ]);
  });

  it('records a grant a hold held whole at its expiry expired, not spent, once the hold settles all of it: as the list showed it from the expiry on', async () => {
    const userId = randomUUID();
    const start = new Date();
    clockNow = start;
    const expiresAt = new Date(start.getTime() + 10_000).toISOString();
    const lotId = (await clockApp.http().post(`/v1/admin/accounts/${userId}/grants`).send({ amount: 50, reason: 'Promotion', expiresAt }).expect(201)).body.lotId as string;
    const holdId = (await clockApp.http().post(`/v1/accounts/${userId}/holds`).send({ amount: 50, expiresInSeconds: 60 }).expect(201)).body.holdId as string;
    const listed = async () => ((await clockApp.http().get(`/v1/accounts/${userId}/lots`).expect(200)).body as { data: { lotId: string; status: string; remaining: number }[] }).data.map((lot) => [lot.lotId, lot.status, lot.remaining]);
    const recorded = async () => (await testApp.database.pool.query<{ status: string }>('SELECT status FROM token_lots WHERE user_id = $1', [userId])).rows.map((row) => row.status);
    clockNow = new Date(start.getTime() + 20_000);
    // Past its expiry, held whole: nothing free expired, so no LotExpired; the list says expired as of now.
    expect(await listed()).toEqual([[lotId, 'expired', 50]]);
    await clockApp.http().post(`/v1/accounts/${userId}/holds/${holdId}/settle`).send({ amount: 50 }).expect(200);
    expect(await listed()).toEqual([[lotId, 'expired', 0]]);
    expect(await recorded()).toEqual(['expired']);
    expect((await clockApp.http().post(`/v1/admin/accounts/${userId}/grants/${lotId}/void`).send({ reason: 'Too late' }).expect(409)).body).toMatchObject({ code: 'LOT_NOT_ACTIVE', lotStatus: 'expired' });
    // A rebuild of the account writes the same.
    await clockApp.http().post(`/v1/admin/accounts/${userId}/rebuild`).send({}).expect(200);
    expect(await recorded()).toEqual(['expired']);
  });
});

describe('lots of purchases', () => {
  it('refuses the refund of a package partly spent with REFUND_EXCEEDS_LOT, though other credit covers the balance', async () => {
    const userId = randomUUID();
    const { paymentId } = (await http().post('/v1/payments').send({ userId, packageId: 'starter' }).expect(201)).body as { paymentId: string };
    await http().post(`/v1/payments/${paymentId}/capture`).send().expect(200);
    await use(userId, 1).expect(201);
    await http().post(`/v1/accounts/${userId}/purchases`).send({ paymentId: randomUUID(), amount: 500 }).expect(201);
    const refused = await http().post(`/v1/payments/${paymentId}/refund`).send().expect(409);
    expect(refused.body).toMatchObject({ code: 'REFUND_EXCEEDS_LOT', paymentId, requested: 100, remaining: 99 });
    expect(await balanceOf(userId)).toMatchObject({ balance: 599 });
  });

  it('credits a package to a lot on its configured terms (priority, lifetime in days)', async () => {
    const packages = JSON.stringify([{ id: 'promo-pack', tokens: 40, price: 100, currency: 'USD', expiresInDays: 30, priority: 5 }]);
    const other = await startTestApp({ CREDIT_EXPIRY_JOB_ENABLED: 'false', TOKEN_PACKAGES: packages });
    try {
      const userId = randomUUID();
      const { paymentId } = (await other.http().post('/v1/payments').send({ userId, packageId: 'promo-pack' }).expect(201)).body as { paymentId: string };
      const before = Date.now();
      await other.http().post(`/v1/payments/${paymentId}/capture`).send().expect(200);
      const lots = (await other.http().get(`/v1/accounts/${userId}/lots`).expect(200)).body.data as { source: string; priority: number; expiresAt: string; paymentId: string }[];
      expect(lots).toEqual([expect.objectContaining({ source: 'purchase', priority: 5, paymentId, original: 40, remaining: 40 })]);
      const lifetime = Date.parse(lots[0]?.expiresAt ?? '') - before;
      expect(lifetime).toBeGreaterThan(30 * 86_400_000 - 60_000);
      expect(lifetime).toBeLessThanOrEqual(30 * 86_400_000 + 60_000);
    } finally {
      await other.close();
    }
  });

  it('credits a payment on the terms its package had when it was opened, though the configuration changed before the capture', async () => {
    const offered = JSON.stringify([{ id: 'promo-pack', tokens: 40, price: 100, currency: 'USD', expiresInDays: 30, priority: 5 }]);
    const changed = JSON.stringify([{ id: 'promo-pack', tokens: 40, price: 100, currency: 'USD', expiresInDays: 1, priority: 200 }]);
    const before = await startTestApp({ CREDIT_EXPIRY_JOB_ENABLED: 'false', PAYMENT_JOBS_ENABLED: 'false', TOKEN_PACKAGES: offered });
    try {
      // The buyer opens the payment on the terms offered; a deploy changes them; another instance captures.
      const userId = randomUUID();
      const { paymentId } = (await before.http().post('/v1/payments').send({ userId, packageId: 'promo-pack' }).expect(201)).body as { paymentId: string };
      const after = await startTestAppOn(before.database, { CREDIT_EXPIRY_JOB_ENABLED: 'false', PAYMENT_JOBS_ENABLED: 'false', TOKEN_PACKAGES: changed });
      try {
        expect((await after.anonymous().get('/v1/packages').expect(200)).body.data).toEqual([expect.objectContaining({ expiresInDays: 1, priority: 200 })]);
        const capturedAt = Date.now();
        await after.http().post(`/v1/payments/${paymentId}/capture`).send().expect(200);
        const lots = (await after.http().get(`/v1/accounts/${userId}/lots`).expect(200)).body.data as { priority: number; expiresAt: string }[];
        expect(lots).toEqual([expect.objectContaining({ source: 'purchase', priority: 5, paymentId, original: 40 })]);
        expect(Date.parse(lots[0]?.expiresAt ?? '') - capturedAt).toBeGreaterThan(29 * 86_400_000);
        // A payment opened after the change takes the new terms.
        const { paymentId: later } = (await after.http().post('/v1/payments').send({ userId, packageId: 'promo-pack' }).expect(201)).body as { paymentId: string };
        await after.http().post(`/v1/payments/${later}/capture`).send().expect(200);
        const both = (await after.http().get(`/v1/accounts/${userId}/lots`).expect(200)).body.data as { paymentId: string; priority: number }[];
        expect(both.map((lot) => [lot.paymentId, lot.priority])).toEqual([
          [paymentId, 5],
          [later, 200],
        ]);
      } finally {
        await after.close();
      }
    } finally {
      await before.close();
    }
  });
});
