import type { SnapshotSchema } from './snapshot.js';

/** A decider: the pure description of one aggregate (Chassaing's pattern, as in Emmett). */
export type Decider<Command, Event, State> = {
  readonly decide: (command: Command, state: State) => readonly Event[];
  readonly evolve: (state: State, event: Event) => State;
  readonly initialState: State;
  /** How to snapshot the state; without it, every load replays the stream. */
  readonly snapshot?: SnapshotSchema<State, Event>;
};

/**
 * A decision with the state its events lead to, for a decide that computes that state anyway (it
 * folds its events to decide what follows them): `state` is exactly `fold(decider, on, events)` for
 * the state `on` it decided on, so the command path does not fold the events a second time.
 */
export type Decision<Event, State> = { readonly events: readonly Event[]; readonly state: State };

export function fold<Event, State>(decider: Pick<Decider<unknown, Event, State>, 'evolve'>, state: State, events: Iterable<Event>): State {
  let folded = state;
  for (const event of events) folded = decider.evolve(folded, event);
  return folded;
}
