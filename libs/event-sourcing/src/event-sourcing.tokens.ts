import type { BatchFallback } from '@app/projections';

/** Nest injection tokens of the event-sourcing module. */
export const EVENT_SOURCING_OPTIONS = Symbol('EVENT_SOURCING_OPTIONS');

export type EventSourcingOptions = {
  /** Run the projection runner in this process (the default); off for scaled-out API instances. */
  readonly projectionsEnabled: boolean;
  /** Longest a write waits for the read models to include it. */
  readonly readYourWritesTimeoutMs: number;
  /** Connection string for the event store's LISTEN connection. */
  readonly databaseUrl: string;
  /** Where the events live; PostgreSQL (the database above) when unset. */
  readonly eventStore?: EventStoreChoice;
  /** Told the number of appends of every group-commit batch of the PostgreSQL store (metrics). */
  readonly onAppendBatch?: (appends: number) => void;
  /** Told of every failed try of a projection runner of this process, each retry included, and its cause (metrics; it is logged too). */
  readonly onProjectionFailure?: (projection: string, cause: ProjectionFailureCause) => void;
  /** Told of every batch a projection runner of this process applied again the slower way (metrics; it is logged too). */
  readonly onProjectionFallback?: (projection: string, from: BatchFallback['from']) => void;
};

/** Why a projection runner's try failed: an event it cannot apply (named), or anything else (a lost connection, a failed read or commit). */
export const PROJECTION_FAILURE_CAUSES = ['event', 'other'] as const;
export type ProjectionFailureCause = (typeof PROJECTION_FAILURE_CAUSES)[number];

/** The event store adapter: PostgreSQL, or an EventStoreDB / KurrentDB server or cluster at `url` (esdb://...). */
export type EventStoreChoice = { readonly kind: 'postgres' } | { readonly kind: 'eventstoredb'; readonly url: string };
