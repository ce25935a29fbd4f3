import { setTimeout as delay } from 'node:timers/promises';
import pg from 'pg';

/** The first key of every leadership lock (the second is the worker's): apart from other advisory locks. */
export const LEADERSHIP_LOCK_NAMESPACE = 'token-ledger-leadership';

export type LeadershipTiming = {
  /** A follower tries the lock this often, and a leader checks that its session still answers. */
  readonly retryIntervalMs: number;
  /** A leader whose session has not answered a check within this stops its work and leaves the session. */
  readonly heartbeatTimeoutMs: number;
};

export const LEADERSHIP_TIMING: LeadershipTiming = { retryIntervalMs: 1_000, heartbeatTimeoutMs: 3_000 };

/**
 * TCP keepalive of the leadership session on the server's side: a session whose client host went
 * silent (a dead machine, a cut network) is dropped after about idle + interval x count seconds, and
 * its lock with it. A process that exits, even by SIGKILL, closes its socket and frees the lock at once.
 */
const SERVER_KEEPALIVE = { idleSeconds: 5, intervalSeconds: 1, count: 3 } as const;
const SERVER_DROPS_SILENT_SESSION_MS = (SERVER_KEEPALIVE.idleSeconds + SERVER_KEEPALIVE.intervalSeconds * SERVER_KEEPALIVE.count) * 1_000;

/** What a leader runs. Leadership calls `lead` when it wins the lock and `standDown` when it ends. */
export type LeaderTask = {
  /** Start the work; return once it is started (not finished). */
  lead(): void | Promise<void>;
  /** Stop the work; resolve once nothing of it runs any more. */
  standDown(): Promise<void>;
};

/** `contending`: started, not (or no longer) leading; `leading`: holds the lock and runs the task. */
export type LeadershipState = 'stopped' | 'contending' | 'leading';

export type LeadershipEvent =
  | { readonly kind: 'elected' }
  | { readonly kind: 'deposed'; readonly reason: string }
  | { readonly kind: 'released' }
  /** The database could not be reached, or the task failed to start: retried every retry interval. */
  | { readonly kind: 'error'; readonly reason: string };

export type AdvisoryLockLeadershipOptions = {
  readonly connectionString: string;
  /** Names the work led; the lock key is derived from it, so every process must spell it the same. */
  readonly worker: string;
  /** The lock's first key (LEADERSHIP_LOCK_NAMESPACE unless another use of session locks sets its own). */
  readonly namespace?: string;
  readonly task: LeaderTask;
  /** Shown in pg_stat_activity for the leadership session (PostgreSQL keeps its first 63 bytes). */
  readonly applicationName: string;
  readonly timing?: LeadershipTiming;
  readonly onEvent?: (event: LeadershipEvent) => void;
};

/**
 * Leadership of one worker across every process on one database: the leader is the process whose
 * own session (a dedicated `pg.Client`, never a pooled connection) holds the session advisory lock
 * `(LEADERSHIP_LOCK_NAMESPACE, worker)`. Followers try `pg_try_advisory_lock` every retry interval.
 * When the leader's session is lost (terminated, the server gone, a check unanswered) the task is
 * stood down at once and the process contends again on a new session; PostgreSQL has released the
 * lock with the session, so a follower takes it at its next try. `stop` stands the task down first,
 * then unlocks, so two leaders never run side by side through a clean handover.
 */
export class AdvisoryLockLeadership {
  private readonly timing: LeadershipTiming;
  private stopping: AbortController | undefined;
  private loop: Promise<void> | undefined;
  private current: LeadershipState = 'stopped';

  constructor(private readonly options: AdvisoryLockLeadershipOptions) {
    this.timing = options.timing ?? LEADERSHIP_TIMING;
    // A leader cut off from the database must notice and stop before the server frees its lock.
    if (this.timing.retryIntervalMs + this.timing.heartbeatTimeoutMs >= SERVER_DROPS_SILENT_SESSION_MS) {
      throw new Error(`leadership of ${options.worker}: retry interval + heartbeat timeout must stay under ${SERVER_DROPS_SILENT_SESSION_MS} ms`);
    }
  }

  get worker(): string {
    return this.options.worker;
  }

  get namespace(): string {
    return this.options.namespace ?? LEADERSHIP_LOCK_NAMESPACE;
  }

  get state(): LeadershipState {
    return this.current;
  }

  /** Starts contending; resolves once the first attempt is over (won, lost, or the database unreachable). */
  start(): Promise<void> {
    if (this.loop !== undefined) return Promise.resolve();
    const stopping = new AbortController();
    this.stopping = stopping;
    this.current = 'contending';
    return new Promise((attempted) => {
      this.loop = this.contendUntilStopped(stopping.signal, attempted);
    });
  }

  /** Stands the task down if this process leads, releases the lock, closes the session. */
  async stop(): Promise<void> {
    this.stopping?.abort();
    await this.loop;
    this.loop = undefined;
    this.current = 'stopped';
  }

  private async contendUntilStopped(stopping: AbortSignal, attempted: () => void): Promise<void> {
    let failing = false;
    while (!stopping.aborted) {
      let session: LeadershipSession | undefined;
      try {
        session = await LeadershipSession.open(this.options, this.timing);
        failing = false;
        await this.contendOn(session, stopping, attempted);
      } catch (error) {
        // One report per outage, not one per retry.
        if (!failing) this.options.onEvent?.({ kind: 'error', reason: messageOf(error) });
        failing = true;
      } finally {
        await session?.close();
      }
      attempted();
      await sleep(this.timing.retryIntervalMs, stopping);
    }
  }

  /** Tries the lock every retry interval on one session until it wins, then leads on it. */
  private async contendOn(session: LeadershipSession, stopping: AbortSignal, attempted: () => void): Promise<void> {
    const ended = AbortSignal.any([stopping, session.lost]);
    while (!ended.aborted) {
      if (await session.tryLock(this.namespace, this.options.worker)) return this.leadOn(session, stopping, attempted);
      attempted();
      await sleep(this.timing.retryIntervalMs, ended);
    }
  }

  /** Runs the task until stop or the session's loss; stands it down before the lock can go to anyone else. */
  private async leadOn(session: LeadershipSession, stopping: AbortSignal, attempted: () => void): Promise<void> {
    this.current = 'leading';
    this.options.onEvent?.({ kind: 'elected' });
    try {
      await this.options.task.lead();
      attempted();
      await this.holdWhileAnswered(session, AbortSignal.any([stopping, session.lost]));
    } finally {
      this.current = 'contending';
      if (session.lost.aborted) this.options.onEvent?.({ kind: 'deposed', reason: messageOf(session.lost.reason) });
      await this.options.task.standDown();
      if (!session.lost.aborted) {
        await session.unlock(this.namespace, this.options.worker);
        this.options.onEvent?.({ kind: 'released' });
      }
    }
  }

  /**
   * Checks the session every retry interval, until stop or the session's loss. A check that fails or
   * goes unanswered loses the session (reported once, as `deposed`).
   */
  private async holdWhileAnswered(session: LeadershipSession, ended: AbortSignal): Promise<void> {
    while (!ended.aborted) {
      await sleep(this.timing.retryIntervalMs, ended);
      if (!ended.aborted) await session.check().catch(() => undefined);
    }
  }
}

/** The dedicated connection a leadership holds its lock on; `lost` aborts when it stops being usable. */
class LeadershipSession {
  private readonly losing = new AbortController();

  private constructor(private readonly client: pg.Client) {}

  static async open(options: AdvisoryLockLeadershipOptions, timing: LeadershipTiming): Promise<LeadershipSession> {
    const client = new pg.Client({
      connectionString: options.connectionString,
      application_name: options.applicationName,
      connectionTimeoutMillis: timing.heartbeatTimeoutMs,
      // Every query of the session, the lock tries and the checks, fails when unanswered for this long.
      query_timeout: timing.heartbeatTimeoutMs,
      keepAlive: true,
    });
    const session = new LeadershipSession(client);
    // Without an 'error' listener a terminated session would crash the process.
    client.on('error', (error) => session.lose(error));
    client.on('end', () => session.lose(new Error('the leadership session ended')));
    try {
      await client.connect();
      await session.query(`SELECT set_config('tcp_keepalives_idle', $1, false), set_config('tcp_keepalives_interval', $2, false), set_config('tcp_keepalives_count', $3, false)`, [
        String(SERVER_KEEPALIVE.idleSeconds),
        String(SERVER_KEEPALIVE.intervalSeconds),
        String(SERVER_KEEPALIVE.count),
      ]);
      return session;
    } catch (error) {
      await session.close();
      throw error;
    }
  }

  get lost(): AbortSignal {
    return this.losing.signal;
  }

  async tryLock(namespace: string, worker: string): Promise<boolean> {
    const result = await this.query<{ locked: boolean }>('SELECT pg_try_advisory_lock(hashtext($1), hashtext($2)) AS locked', [namespace, worker]);
    return result.rows[0]?.locked === true;
  }

  async unlock(namespace: string, worker: string): Promise<void> {
    // Should this fail, closing the session releases the lock all the same.
    await this.query('SELECT pg_advisory_unlock(hashtext($1), hashtext($2))', [namespace, worker]).catch(() => undefined);
  }

  async check(): Promise<void> {
    await this.query('SELECT 1');
  }

  /** Ends the session; one that is lost or has a query hanging is cut off rather than waited for. */
  async close(): Promise<void> {
    await this.client.end().catch(() => undefined);
  }

  private async query<Row extends pg.QueryResultRow>(text: string, values: unknown[] = []): Promise<pg.QueryResult<Row>> {
    try {
      return await this.client.query<Row>(text, values);
    } catch (error) {
      this.lose(error);
      throw error;
    }
  }

  private lose(reason: unknown): void {
    if (!this.losing.signal.aborted) this.losing.abort(reason);
  }
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Waits `ms`, or less when `signal` aborts; never rejects. */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return delay(ms, undefined, { signal }).catch(() => undefined);
}
