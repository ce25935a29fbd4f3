import { randomUUID } from 'node:crypto';
import { killableService } from './support/killable-service.js';
import { loopUntilKilled, type ServiceProcess } from './support/service-process.js';
import { testToken } from './support/test-app.js';

/**
 * The built service killed with SIGKILL while admin clients create API keys, use each once and
 * revoke every other one. A create takes no Idempotency-Key (a stored answer would keep the secret),
 * so one whose answer the kill lost is recovered as the README says: the same name again, and on
 * 409 API_KEY_NAME_TAKEN (it was made, its secret lost) the key of that name is revoked by id and
 * made once more. At the end every name has exactly one active key or, when meant, one revoked key
 * besides those revoked in the recovery; every key whose secret a client holds authenticates unless
 * revoked, and every revoked one is refused.
 */
const CLIENTS = 6;
const KILLS = 2;

const killed = killableService('api-keys-crash');
let admin: string;

beforeAll(async () => {
  admin = `Bearer ${await testToken('admin')}`;
});

type Unit = { readonly name: string; readonly revoke: boolean; id?: string; secret?: string; used: boolean; revoked: boolean; lostSecrets: number };
type Answer = { readonly status: number; readonly body: Record<string, unknown> };

/** One admin request; undefined once the process is gone. */
async function request(child: ServiceProcess, method: string, route: string, body?: unknown): Promise<Answer | undefined> {
  try {
    const response = await fetch(`${child.url}${route}`, {
      method,
      headers: { authorization: admin, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    return { status: response.status, body: (await response.json()) as Record<string, unknown> };
  } catch {
    return undefined;
  }
}

function expectStatus(answer: Answer, status: number, what: string): void {
  if (answer.status !== status) throw new Error(`${what}: ${answer.status} ${JSON.stringify(answer.body)}`);
}

/** The active key named `name`, from the list. */
async function activeNamed(child: ServiceProcess, name: string): Promise<string | undefined> {
  const list = await request(child, 'GET', '/v1/admin/api-keys');
  if (list === undefined) return undefined;
  return (list.body.data as { id: string; name: string; revokedAt: string | null }[]).find((key) => key.name === name && key.revokedAt === null)?.id;
}

/** Runs the unit's steps from where it stopped; false when the process died first. */
async function complete(child: ServiceProcess, unit: Unit): Promise<boolean> {
  while (unit.secret === undefined) {
    const created = await request(child, 'POST', '/v1/admin/api-keys', { name: unit.name, role: 'service' });
    if (created === undefined) return false;
    if (created.status === 201) {
      unit.id = created.body.id as string;
      unit.secret = created.body.key as string;
      break;
    }
    // Made by an attempt whose answer was lost: revoke it by id, then make it again.
    expect(created.body).toMatchObject({ code: 'API_KEY_NAME_TAKEN' });
    const lost = await activeNamed(child, unit.name);
    if (lost === undefined) return false;
    const revoked = await request(child, 'DELETE', `/v1/admin/api-keys/${lost}`);
    if (revoked === undefined) return false;
    expectStatus(revoked, 200, 'revoking a key whose secret was lost');
    unit.lostSecrets += 1;
  }
  if (!unit.used) {
    let used: Response;
    try {
      used = await fetch(`${child.url}/v1/accounts/${randomUUID()}/balance`, { headers: { 'x-api-key': unit.secret } });
    } catch {
      return false;
    }
    expect(used.status).toBe(200);
    unit.used = true;
  }
  if (unit.revoke && !unit.revoked) {
    const revoked = await request(child, 'DELETE', `/v1/admin/api-keys/${String(unit.id)}`);
    if (revoked === undefined) return false;
    expectStatus(revoked, 200, 'revoking');
    expect(revoked.body).toMatchObject({ id: unit.id, revokedAt: expect.any(String) });
    unit.revoked = true;
  }
  return true;
}


describe('API keys created, used and revoked survive SIGKILL at any moment', () => {
  it('leaves one key per name, each client-held secret working unless revoked, every revoked key refused', async () => {
    let child = await killed.start();
    const units: Unit[] = [];
    for (let kill = 0; kill < KILLS; kill += 1) {
      await loopUntilKilled(
        child,
        700 + kill * 400,
        CLIENTS,
        units,
        (): Unit => ({ name: `crash ${randomUUID()}`, revoke: units.length % 2 === 0, used: false, revoked: false, lostSecrets: 0 }),
        (unit) => complete(child, unit),
      );
      child = await killed.start();
      for (const unit of units) expect(await complete(child, unit)).toBe(true);
    }

    const rows = await killed.database().pool.query<{ name: string; active: string; revoked: string }>(
      "SELECT name, count(*) FILTER (WHERE revoked_at IS NULL)::text AS active, count(*) FILTER (WHERE revoked_at IS NOT NULL)::text AS revoked FROM api_keys WHERE name LIKE 'crash %' GROUP BY name",
    );
    const byName = new Map(rows.rows.map((row) => [row.name, { active: Number(row.active), revoked: Number(row.revoked) }]));
    expect(byName.size).toBe(units.length);
    for (const unit of units) {
      // The unit's own key, active or revoked as meant, and each key whose secret a lost answer took, revoked.
      expect({ name: unit.name, ...byName.get(unit.name) }).toEqual({ name: unit.name, active: unit.revoke ? 0 : 1, revoked: (unit.revoke ? 1 : 0) + unit.lostSecrets });
      const used = await fetch(`${child.url}/v1/accounts/${randomUUID()}/balance`, { headers: { 'x-api-key': unit.secret as string } });
      expect({ name: unit.name, status: used.status }).toEqual({ name: unit.name, status: unit.revoke ? 401 : 200 });
    }
    const lost = units.reduce((sum, unit) => sum + unit.lostSecrets, 0);
    process.stdout.write(`api keys crash: ${units.length} keys over ${KILLS} kills, ${lost} made by an attempt whose answer was lost (revoked and made again)\n`);
  }, 180_000);
});
