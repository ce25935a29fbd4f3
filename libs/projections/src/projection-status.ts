import { comparePositions, formatPosition, parsePosition, START, type EventStore, type Position } from '@app/event-store';
import type { Pool } from 'pg';
import { readCheckpoint } from './checkpoints.js';
import type { Projection } from './projection.js';
import type { ProjectionRebuilds } from './projection-rebuild.js';
import { readProjectionFailure, type ProjectionFailure } from './projection-failures.js';
import type { ProjectionState } from './projection-runner.js';

export type ProjectionStatusState = 'running' | 'catching_up' | 'rebuilding' | 'failed' | 'standby' | 'stopped';

/**
 * A projection's runner as the process answering knows it: a `ProjectionRunner`, or `standby` while
 * this process contends for the projection's leadership and another process runs it. A failure is
 * read from `projection_failures`, so a standby process reports the leader's failure too.
 */
export type ProjectionRunnerView = { readonly state: ProjectionState | 'standby'; readonly failure: ProjectionFailure | undefined };

export type ProjectionStatus = {
  readonly name: string;
  readonly state: ProjectionStatusState;
  /** The checkpoint in the database (null before the first batch). */
  readonly checkpoint: string | null;
  /** The newest event of `$all` a reader can see (null for an empty store). */
  readonly head: string | null;
  /** Events after the checkpoint; null when the event store cannot count them (EventStoreDB). */
  readonly lagEvents: number | null;
  /** Age of the oldest event not yet applied; 0 when caught up. */
  readonly lagSeconds: number;
  /**
   * The last failure since the checkpoint last moved, as stored by whichever process runs the
   * projection (null when it has none): where it stopped, why, how many attempts failed there, when
   * it first stopped there and when it last failed.
   */
  readonly failure: (Omit<ProjectionFailure, 'failedAt'> & { readonly failedAt: string; readonly firstFailedAt: string }) | null;
  /** The unfinished rebuild; `interrupted` when no process is running it any more (it died). */
  readonly rebuild: { readonly id: string; readonly phase: string; readonly interrupted: boolean } | null;
};

export type ProjectionStatusSources = {
  readonly store: EventStore;
  readonly pool: Pool;
  readonly projections: readonly Projection[];
  /** The runners of this process; a projection with none here reports `stopped`. */
  readonly runners: ReadonlyMap<string, ProjectionRunnerView>;
  readonly rebuilds: ProjectionRebuilds;
};

/** Checkpoint, head, lag, state and failure of every registered projection. */
export async function projectionStatuses(sources: ProjectionStatusSources): Promise<readonly ProjectionStatus[]> {
  const head = await sources.store.headPosition();
  return Promise.all(sources.projections.map((projection) => statusOf(sources, projection, head === undefined ? null : formatPosition(head))));
}

async function statusOf(sources: ProjectionStatusSources, projection: Projection, head: string | null): Promise<ProjectionStatus> {
  const checkpoint = await readCheckpoint(sources.pool, projection.name);
  const after = checkpoint ?? START;
  const [oldest] = await sources.store.readAll({ after, maxCount: 1 });
  const runner = sources.runners.get(projection.name);
  const active = await sources.rebuilds.active(projection.name);
  const rebuild = active === undefined ? undefined : { id: active.id, phase: active.phase, interrupted: !(await sources.rebuilds.running(projection.name)) };
  const stored = passedFailure(await readProjectionFailure(sources.pool, projection.name), checkpoint);
  // This process's own runner may know of a failure it could not store (the database was what failed).
  const remembered = runner?.state === 'failed' ? runner.failure : undefined;
  const failure = stored ?? (remembered === undefined ? undefined : { ...remembered, firstFailedAt: remembered.failedAt });
  // A runner marks itself running after a batch that leaves nothing ready; one started at the head
  // of a quiet store (a restart, a swapped rebuild) gets no batch, and is caught up all the same.
  const runnerState = runner?.state === 'catching_up' && oldest === undefined ? 'running' : runner?.state;
  const state: ProjectionStatusState = failure !== undefined ? 'failed' : rebuild !== undefined && !rebuild.interrupted ? 'rebuilding' : (runnerState ?? 'stopped');
  return {
    name: projection.name,
    state,
    checkpoint: checkpoint === undefined ? null : formatPosition(checkpoint),
    head,
    lagEvents: (await sources.store.postgres?.countEventsAfter(after)) ?? null,
    lagSeconds: oldest === undefined ? 0 : Math.max(0, (Date.now() - oldest.createdAt.getTime()) / 1000),
    failure: failure === undefined ? null : { ...failure, failedAt: failure.failedAt.toISOString(), firstFailedAt: failure.firstFailedAt.toISOString() },
    rebuild: rebuild ?? null,
  };
}

/**
 * The stored failure, unless the checkpoint has passed the event it failed at: every batch deletes
 * the row, but a leader that lost its leadership while recording a failure (paused past its
 * session's keepalive, ADR 0003) may store it after the new leader's last batch, and on a quiet
 * store no batch follows. A failure at no known event (a lost connection) stands until the next batch.
 */
function passedFailure<Failure extends { readonly position: string }>(failure: Failure | undefined, checkpoint: Position | undefined): Failure | undefined {
  const at = failure === undefined ? undefined : parsePosition(failure.position);
  return at !== undefined && checkpoint !== undefined && comparePositions(at, checkpoint) <= 0 ? undefined : failure;
}
