import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import pg from 'pg';
import { CRUD_ACCOUNTS_TABLE, CRUD_HISTORY_TABLE, CRUD_SERVICE_LISTENING } from './crud-schema.js';

/**
 * The plain CRUD reference for `npm run bench:http`: node:http and pg, no framework, no
 * authentication, no request log. A spend is one transaction: lock the balance row, update it,
 * insert a history row, commit. It answers the same paths as the service:
 * `POST /v1/accounts/{id}/usage {"amount":n}` (201, 409 when the balance is short, 404 for an
 * unknown account) and `GET /v1/accounts/{id}/balance`. Started by the bench with DATABASE_URL,
 * PORT and DATABASE_POOL_SIZE (the service's default, 20).
 */
const USAGE_PATH = /^\/v1\/accounts\/([0-9a-f-]{36})\/usage$/;
const BALANCE_PATH = /^\/v1\/accounts\/([0-9a-f-]{36})\/balance$/;
const BODY_LENGTH_MAX = 1_024;

type Answer = { readonly status: number; readonly body: Record<string, unknown> };

const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL, max: Number(process.env.DATABASE_POOL_SIZE) });

async function spend(userId: string, amount: number): Promise<Answer> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    const found = await client.query<{ balance: string }>(`SELECT balance FROM ${CRUD_ACCOUNTS_TABLE} WHERE user_id = $1 FOR UPDATE`, [userId]);
    const balance = found.rows[0] === undefined ? undefined : Number(found.rows[0].balance);
    if (balance === undefined || balance < amount) {
      await client.query('ROLLBACK');
      return balance === undefined ? { status: 404, body: { code: 'ACCOUNT_NOT_FOUND' } } : { status: 409, body: { code: 'INSUFFICIENT_BALANCE', balance, requested: amount } };
    }
    await client.query(`UPDATE ${CRUD_ACCOUNTS_TABLE} SET balance = $2, updated_at = now() WHERE user_id = $1`, [userId, balance - amount]);
    await client.query(`INSERT INTO ${CRUD_HISTORY_TABLE} (user_id, amount, balance_after) VALUES ($1, $2, $3)`, [userId, -amount, balance - amount]);
    await client.query('COMMIT');
    return { status: 201, body: { userId, balance: balance - amount } };
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  } finally {
    client.release();
  }
}

async function balanceOf(userId: string): Promise<Answer> {
  const found = await pool.query<{ balance: string }>(`SELECT balance FROM ${CRUD_ACCOUNTS_TABLE} WHERE user_id = $1`, [userId]);
  return found.rows[0] === undefined ? { status: 404, body: { code: 'ACCOUNT_NOT_FOUND' } } : { status: 200, body: { userId, balance: Number(found.rows[0].balance) } };
}

async function answer(request: IncomingMessage, body: string): Promise<Answer> {
  const url = request.url ?? '';
  const usage = USAGE_PATH.exec(url);
  if (request.method === 'POST' && usage !== null) {
    const amount = (JSON.parse(body) as { amount?: unknown }).amount;
    if (typeof amount !== 'number' || !Number.isSafeInteger(amount) || amount < 1) return { status: 400, body: { code: 'VALIDATION_FAILED', field: 'amount' } };
    return spend(usage[1] as string, amount);
  }
  const balance = BALANCE_PATH.exec(url);
  if (request.method === 'GET' && balance !== null) return balanceOf(balance[1] as string);
  return { status: 404, body: { code: 'NOT_FOUND' } };
}

function handle(request: IncomingMessage, response: ServerResponse): void {
  let body = '';
  request.setEncoding('utf8');
  request.on('data', (chunk: string) => {
    body += chunk;
    if (body.length > BODY_LENGTH_MAX) request.destroy();
  });
  request.on('end', () => {
    answer(request, body)
      .catch((error: unknown) => ({ status: error instanceof SyntaxError ? 400 : 500, body: { code: error instanceof SyntaxError ? 'MALFORMED_JSON' : 'INTERNAL', detail: String(error) } }))
      .then(({ status, body: answerBody }) => {
        const text = JSON.stringify(answerBody);
        response.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
        response.end(text);
      })
      .catch(() => response.destroy());
  });
}

const server = createServer(handle);
server.listen(Number(process.env.PORT), '127.0.0.1', () => process.stdout.write(`${CRUD_SERVICE_LISTENING}\n`));
const shutdown = () => server.close(() => void pool.end().then(() => process.exit(0)));
process.once('SIGINT', shutdown);
process.once('SIGTERM', shutdown);
