import { randomUUID } from 'node:crypto';
import { Logger, type BeforeApplicationShutdown, type OnApplicationBootstrap } from '@nestjs/common';
import { AdvisoryLockLeadership, type LeadershipTiming } from '@app/database';

/** The first key of every process's lease lock: apart from worker leadership and other advisory locks. */
export const IDEMPOTENCY_LEASE_NAMESPACE = 'token-ledger-idempotency-lease';

type LeaseSession = { readonly owner: string; readonly lock: AdvisoryLockLeadership };

/**
 * Whom an in-progress Idempotency-Key belongs to: this process's current database session, for as
 * long as it lives. The process holds the session advisory lock `(IDEMPOTENCY_LEASE_NAMESPACE, owner)`
 * on a dedicated connection (an `AdvisoryLockLeadership` nobody else contends for), and every key it
 * claims records `owner`. When the process dies, even by SIGKILL, its socket closes, PostgreSQL ends
 * the session and frees the lock, and a retry of the request takes the key over at once
 * (IdempotencyStore.claim) instead of waiting for the lease's `locked_until`. One session per
 * process, not one per request: the pool is not held up by requests in flight. See ADR 0016.
 *
 * A lost session (the database restarted, the session was terminated) is not taken again under the
 * same owner: a fresh owner is locked on a new session, so keys claimed before the loss, whose
 * requests may have failed without releasing them while the database was away, are free at once.
 */
export class IdempotencyLease implements OnApplicationBootstrap, BeforeApplicationShutdown {
  /** The lock's first key. */
  readonly namespace = IDEMPOTENCY_LEASE_NAMESPACE;
  private readonly logger = new Logger('Idempotency');
  private current: LeaseSession;
  private renewing: Promise<void> = Promise.resolve();
  private stopped = false;

  constructor(
    private readonly connectionString: string,
    private readonly timing?: LeadershipTiming,
  ) {
    this.current = this.session();
  }

  /** The lock's second key, recorded on the keys claimed now; a fresh one per session. */
  get owner(): string {
    return this.current.owner;
  }

  /** Whether this process holds its lease lock now. */
  get held(): boolean {
    return this.current.lock.state === 'leading';
  }

  /** Takes the lock; resolves after the first attempt (the database may still be out of reach: it keeps trying). */
  onApplicationBootstrap(): Promise<void> {
    return this.current.lock.start();
  }

  async beforeApplicationShutdown(): Promise<void> {
    this.stopped = true;
    await this.renewing;
    await this.current.lock.stop();
  }

  private session(): LeaseSession {
    const owner = `idempotency-lease ${randomUUID()}`;
    const lock: AdvisoryLockLeadership = new AdvisoryLockLeadership({
      connectionString: this.connectionString,
      worker: owner,
      namespace: this.namespace,
      applicationName: `token-ledger idempotency lease pid ${process.pid}`,
      timing: this.timing,
      task: { lead: () => undefined, standDown: () => Promise.resolve() },
      onEvent: (event) => {
        if (event.kind === 'deposed') {
          this.logger.warn(`lost the idempotency lease session (${event.reason}); taking a new one`);
          // Not from inside the lock's own loop, which `stop` waits for.
          setImmediate(() => {
            this.renewing = this.renewing.then(() => this.renew(lock));
          });
        }
        if (event.kind === 'error') this.logger.warn(`idempotency lease session: ${event.reason}; retrying`);
      },
    });
    return { owner, lock };
  }

  /** Replaces a lost session by one with a fresh owner. */
  private async renew(lost: AdvisoryLockLeadership): Promise<void> {
    if (this.stopped || this.current.lock !== lost) return;
    this.current = this.session();
    await lost.stop();
    if (!this.stopped) await this.current.lock.start();
  }
}
