import { Inject, Injectable, Logger, type BeforeApplicationShutdown, type OnApplicationBootstrap } from '@nestjs/common';
import { LeaderElection, intervalTask, type AdvisoryLockLeadership } from '@app/database';
import { PAYMENTS_OPTIONS, type PaymentsOptions } from '../payments.tokens.js';
import { PaymentExpiryJob } from './payment-expiry.job.js';

/** The leadership worker of the expiry job. */
export const PAYMENT_EXPIRY_WORKER = 'payment-expiry';

/**
 * Runs the expiry job every `jobIntervalMs` while this process leads `payment-expiry` (one process
 * at a time across all on the database). A run still going at the next tick is not overlapped; one in
 * flight when leadership ends is waited for before the lock is released.
 */
@Injectable()
export class PaymentJobsScheduler implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger = new Logger('PaymentJobs');
  private readonly leadership: AdvisoryLockLeadership;

  constructor(
    election: LeaderElection,
    private readonly job: PaymentExpiryJob,
    @Inject(PAYMENTS_OPTIONS) private readonly options: PaymentsOptions,
  ) {
    this.leadership = election.of(
      PAYMENT_EXPIRY_WORKER,
      intervalTask({
        intervalMs: options.jobIntervalMs,
        run: () => this.expire(),
        onError: (error) => this.logger.error(`expiry run failed: ${error instanceof Error ? error.message : String(error)}`),
      }),
    );
  }

  async onApplicationBootstrap(): Promise<void> {
    if (this.options.jobsEnabled) await this.leadership.start();
  }

  beforeApplicationShutdown(): Promise<void> {
    return this.leadership.stop();
  }

  private async expire(): Promise<void> {
    const run = await this.job.runOnce((this.options.now ?? (() => new Date()))());
    if (run.examined > 0) this.logger.log(`expiry run: ${run.examined} due payments examined, ${run.failed} failed`);
  }
}
