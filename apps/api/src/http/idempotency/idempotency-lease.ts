import { randomUUID } from 'node:crypto';
import { Logger, type BeforeApplicationShutdown, type OnApplicationBootstrap } from '@nestjs/common';
import { AdvisoryLockLeadership, type LeadershipTiming } from '@app/database';

/** The first key of every process's lease lock: apart from worker leadership and other advisory locks. */
export const IDEMPOTENCY_LEASE_NAMESPACE = 'token-ledger-idempotency-lease';

/**
 * Whom an in-progress Idempotency-Key belongs to: this process, for as long as it lives. The process
 * holds the session advisory lock `(IDEMPOTENCY_LEASE_NAMESPACE, owner)` on a dedicated connection (an
 * `AdvisoryLockLeadership` nobody else contends for), and every key it claims records `owner`. When
 * the process dies, even by SIGKILL, its socket closes, PostgreSQL ends the session and frees the lock,
 * and a retry of the request takes the key over at once (IdempotencyStore.claim) instead of waiting
 * for the lease's `locked_until`. One session per process, not one per request: the pool is not
 * held up by requests in flight. See ADR 0016.
 */
export class IdempotencyLease implements OnApplicationBootstrap, BeforeApplicationShutdown {
  /** The lock's second key; unique per process start, so a restarted process never inherits a dead one's keys. */
  readonly owner = `idempotency-lease ${randomUUID()}`;
  /** The lock's first key. */
  readonly namespace = IDEMPOTENCY_LEASE_NAMESPACE;
  private readonly logger = new Logger('Idempotency');
  private readonly session: AdvisoryLockLeadership;

  constructor(connectionString: string, timing?: LeadershipTiming) {
    this.session = new AdvisoryLockLeadership({
      connectionString,
      worker: this.owner,
      namespace: this.namespace,
      applicationName: `token-ledger idempotency lease pid ${process.pid}`,
      timing,
      task: { lead: () => undefined, standDown: () => Promise.resolve() },
      onEvent: (event) => {
        // While the lock is not held (the database restarting), this process's keys look abandoned: a
        // retry may take one over and run beside the first attempt, which derived event ids make harmless.
        if (event.kind === 'deposed') this.logger.warn(`lost the idempotency lease session (${event.reason}); taking it again`);
        if (event.kind === 'error') this.logger.warn(`idempotency lease session: ${event.reason}; retrying`);
      },
    });
  }

  /** Whether this process holds its lease lock now. */
  get held(): boolean {
    return this.session.state === 'leading';
  }

  /** Takes the lock; resolves after the first attempt (the database may still be out of reach: it keeps trying). */
  onApplicationBootstrap(): Promise<void> {
    return this.session.start();
  }

  beforeApplicationShutdown(): Promise<void> {
    return this.session.stop();
  }
}
