import { Logger } from '@nestjs/common';
import { AdvisoryLockLeadership, LEADERSHIP_TIMING, type LeaderTask, type LeadershipEvent, type LeadershipTiming } from './advisory-lock-leadership.js';
import { intervalTask, type IntervalTaskOptions, type JobRunOutcome } from './interval-task.js';

/** Hears every finished run of every interval job of this process (the service's metrics). */
export type JobRunObserver = (worker: string, outcome: JobRunOutcome, durationMs: number) => void;

/** The application name of a leadership session: the worker and the OS process, for pg_stat_activity. */
export function leadershipApplicationName(worker: string, processId: number = process.pid): string {
  return `token-ledger leader ${worker} pid ${processId}`;
}

/** Makes the leaderships of this process's workers on one database, and logs what happens to them. */
export class LeaderElection {
  private readonly logger = new Logger('Leadership');

  constructor(
    private readonly connectionString: string,
    private readonly timing: LeadershipTiming = LEADERSHIP_TIMING,
    private readonly onJobRun?: JobRunObserver,
  ) {}

  /** The leadership of `worker` running an interval job (intervalTask) while it leads; its runs are reported to the job observer. */
  every(worker: string, options: Omit<IntervalTaskOptions, 'onRun'>): AdvisoryLockLeadership {
    const observer = this.onJobRun;
    return this.of(worker, intervalTask({ ...options, ...(observer === undefined ? {} : { onRun: (outcome, durationMs) => observer(worker, outcome, durationMs) }) }));
  }

  /** The leadership of `worker`, not started: its owner starts it when the worker is enabled and stops it at shutdown. */
  of(worker: string, task: LeaderTask): AdvisoryLockLeadership {
    return new AdvisoryLockLeadership({
      connectionString: this.connectionString,
      worker,
      task,
      timing: this.timing,
      applicationName: leadershipApplicationName(worker),
      onEvent: (event) => this.log(worker, event),
    });
  }

  private log(worker: string, event: LeadershipEvent): void {
    switch (event.kind) {
      case 'elected':
        return this.logger.log(`this process leads ${worker}`);
      case 'deposed':
        return this.logger.warn(`lost the leadership of ${worker} (${event.reason}): its work stopped; contending again`);
      case 'released':
        return this.logger.log(`released the leadership of ${worker}`);
      case 'error':
        return this.logger.warn(`leadership of ${worker}: ${event.reason}; retrying every ${this.timing.retryIntervalMs} ms`);
    }
  }
}
