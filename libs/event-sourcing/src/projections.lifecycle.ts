import { Inject, Injectable, Logger, type BeforeApplicationShutdown, type OnApplicationBootstrap } from '@nestjs/common';
import { EVENT_STORE, type EventStore } from '@app/event-store';
import { LeaderElection, PG_POOL, type AdvisoryLockLeadership } from '@app/database';
import {
  DEFAULT_RUNNER_OPTIONS,
  PROJECTIONS,
  ProjectionRunner,
  SET_BASED_BATCH_MIN,
  TOKEN_ACCOUNTS_PROJECTION,
  type ProjectionRunnerView,
} from '@app/projections';
import type { Pool } from 'pg';
import { EVENT_SOURCING_OPTIONS, type EventSourcingOptions } from './event-sourcing.tokens.js';

/** The leadership worker of a projection: one process at a time runs its runner. */
export function projectionWorker(projection: string): string {
  return `projection:${projection}`;
}

/**
 * Owns the projection runners of this process, one per registered projection (PROJECTIONS). When
 * enabled, this process contends for each projection's leadership after the app boots and runs a
 * runner only while it leads that projection; at shutdown the runners stop and the leaderships are
 * released before the database pool closes.
 */
@Injectable()
export class ProjectionsLifecycle implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger = new Logger('Projections');
  readonly runners: ReadonlyMap<string, ProjectionRunner>;
  readonly tokenAccounts: ProjectionRunner;
  private readonly leaderships: ReadonlyMap<string, AdvisoryLockLeadership>;

  constructor(
    @Inject(EVENT_STORE) private readonly store: EventStore,
    @Inject(PG_POOL) pool: Pool,
    @Inject(EVENT_SOURCING_OPTIONS) private readonly options: EventSourcingOptions,
    election: LeaderElection,
  ) {
    this.runners = new Map(
      PROJECTIONS.map((projection) => [
        projection.name,
        new ProjectionRunner(store, pool, projection, {
          ...DEFAULT_RUNNER_OPTIONS,
          // Large batches (a runner catching up) in one set-based pass, when the events are in this database.
          ...(store.postgres === undefined ? {} : { setBasedBatchMin: SET_BASED_BATCH_MIN }),
          onFailure: (name, failure) => {
            this.logger.error(`projection ${name} failed at ${failure.position} (${failure.eventType}), attempt ${failure.attempts}: ${failure.error}`);
            // A failure names its event when an event failed (EventFailed), and reads 'unknown' otherwise.
            options.onProjectionFailure?.(name, failure.position === 'unknown' ? 'other' : 'event');
          },
          onFallback: (name, fallback) => {
            this.logger.warn(
              `projection ${name}: a batch of ${fallback.events} events failed ${fallback.from === 'set-based' ? 'its set-based pass' : 'a round trip'} (${fallback.error}); applying it ${fallback.from === 'set-based' ? 'event by event' : 'one statement at a time'}`,
            );
            options.onProjectionFallback?.(name, fallback.from);
          },
        }),
      ]),
    );
    const tokenAccounts = this.runners.get(TOKEN_ACCOUNTS_PROJECTION);
    if (tokenAccounts === undefined) throw new Error(`${TOKEN_ACCOUNTS_PROJECTION} is not registered in PROJECTIONS`);
    this.tokenAccounts = tokenAccounts;
    this.leaderships = new Map(
      [...this.runners].map(([name, runner]) => [name, election.of(projectionWorker(name), { lead: () => runner.start(), standDown: () => runner.stop() })]),
    );
  }

  /**
   * Each projection's runner as status reports it here, kept current: its own state while this process
   * leads the projection, `standby` while it contends and another process leads, `stopped` when it does
   * not contend.
   */
  get views(): ReadonlyMap<string, ProjectionRunnerView> {
    return new Map([...this.runners].map(([name, runner]) => [name, this.viewOf(runner, this.leaderships.get(name))]));
  }

  private viewOf(runner: ProjectionRunner, leadership: AdvisoryLockLeadership | undefined): ProjectionRunnerView {
    return {
      get state() {
        const leading = leadership?.state ?? 'stopped';
        return leading === 'leading' ? runner.state : leading === 'contending' ? 'standby' : 'stopped';
      },
      get failure() {
        return runner.failure;
      },
    };
  }

  async onApplicationBootstrap(): Promise<void> {
    if (this.options.projectionsEnabled) await Promise.all([...this.leaderships.values()].map((leadership) => leadership.start()));
  }

  async beforeApplicationShutdown(): Promise<void> {
    await Promise.all([...this.leaderships.values()].map((leadership) => leadership.stop()));
    await this.store.close();
  }
}
