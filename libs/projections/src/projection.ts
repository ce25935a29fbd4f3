import type { RecordedEvent } from '@app/event-store';

/** One parameterised statement; projections return these and the runner executes them. */
export type RowChange = { readonly text: string; readonly values: readonly unknown[] };

/**
 * A projection is a pure function from a recorded event to row changes. The runner applies the
 * changes of a batch and the projection's checkpoint in one transaction.
 */
export type Projection = {
  readonly name: string;
  /** The read-model tables it owns, for status and rebuilds. */
  readonly tables: readonly string[];
  project(event: RecordedEvent): readonly RowChange[];
};
