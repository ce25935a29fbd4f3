import { Inject, Injectable, Logger, type BeforeApplicationShutdown, type OnApplicationBootstrap } from '@nestjs/common';
import { LeaderElection, type AdvisoryLockLeadership } from '@app/database';
import { nowOf, TOKEN_ACCOUNTS_OPTIONS, type TokenAccountsOptions } from '../token-accounts.options.js';
import { CreditExpiryJob } from './credit-expiry.job.js';

/** The leadership worker of the credit expiry job. */
export const CREDIT_EXPIRY_WORKER = 'credit-expiry';

/**
 * Runs the credit expiry job at once when this process takes the lead of `credit-expiry`, then every
 * `expiryJobIntervalMs` while it leads (one process at a time across all on the database; the job is
 * safe without it too): holds and lots that fell due while no process led are recorded at the start.
 */
@Injectable()
export class CreditExpiryScheduler implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger = new Logger('CreditExpiry');
  private readonly leadership: AdvisoryLockLeadership;

  constructor(
    election: LeaderElection,
    private readonly job: CreditExpiryJob,
    @Inject(TOKEN_ACCOUNTS_OPTIONS) private readonly options: TokenAccountsOptions,
  ) {
    this.leadership = election.every(
      CREDIT_EXPIRY_WORKER,
      {
        intervalMs: options.expiryJobIntervalMs,
        run: () => this.expire(),
        onError: (error) => this.logger.error(`credit expiry run failed: ${error instanceof Error ? error.message : String(error)}`),
        runOnLead: true,
      },
    );
  }

  async onApplicationBootstrap(): Promise<void> {
    if (this.options.expiryJobEnabled) await this.leadership.start();
  }

  beforeApplicationShutdown(): Promise<void> {
    return this.leadership.stop();
  }

  private async expire(): Promise<void> {
    const run = await this.job.runOnce(nowOf(this.options));
    if (run.examined > 0) this.logger.log(`credit expiry run: ${run.examined} accounts examined, ${run.expired} expiries appended, ${run.failed} failed`);
  }
}
