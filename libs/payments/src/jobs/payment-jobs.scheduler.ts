import { Inject, Injectable, Logger, type OnApplicationBootstrap } from '@nestjs/common';
import { SchedulerRegistry } from '@nestjs/schedule';
import { PAYMENTS_OPTIONS, type PaymentsOptions } from '../payments.tokens.js';
import { PaymentExpiryJob } from './payment-expiry.job.js';

const JOB_NAME = 'payment-expiry';

/**
 * Runs the expiry job every `jobIntervalMs` through @nestjs/schedule (which clears the interval at
 * shutdown). A run that is still going when the next tick comes is not overlapped.
 */
@Injectable()
export class PaymentJobsScheduler implements OnApplicationBootstrap {
  private readonly logger = new Logger('PaymentJobs');
  private running: Promise<void> | undefined;

  constructor(
    private readonly registry: SchedulerRegistry,
    private readonly job: PaymentExpiryJob,
    @Inject(PAYMENTS_OPTIONS) private readonly options: PaymentsOptions,
  ) {}

  onApplicationBootstrap(): void {
    if (!this.options.jobsEnabled) return;
    this.registry.addInterval(JOB_NAME, setInterval(() => this.tick(), this.options.jobIntervalMs));
  }

  private tick(): void {
    if (this.running !== undefined) return;
    const now = (this.options.now ?? (() => new Date()))();
    this.running = this.job
      .runOnce(now)
      .then((run) => {
        if (run.examined > 0) this.logger.log(`expiry run: ${run.examined} due payments examined, ${run.failed} failed`);
      })
      .catch((error: unknown) => this.logger.error(`expiry run failed: ${error instanceof Error ? error.message : String(error)}`))
      .finally(() => {
        this.running = undefined;
      });
  }
}
