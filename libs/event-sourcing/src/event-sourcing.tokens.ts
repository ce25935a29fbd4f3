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
};

/** The event store adapter: PostgreSQL, or an EventStoreDB / KurrentDB server or cluster at `url` (esdb://...). */
export type EventStoreChoice = { readonly kind: 'postgres' } | { readonly kind: 'eventstoredb'; readonly url: string };
