/**
 * How an aggregate's state is kept as a snapshot, so a command need not replay the stream from its
 * first event. A snapshot is only ever a shortcut: whoever loads one must check it against the
 * stream and replay instead when any check fails, so a wrong snapshot can cost time, never a
 * wrong decision.
 */
export type SnapshotSchema<State, Event> = {
  /** Bump on any change to the encoded shape or its meaning: snapshots of another version are ignored. */
  readonly version: number;
  encode(state: State): unknown;
  /** Rebuilds the state from an encoded snapshot; throws `SnapshotRejected` on anything unexpected. */
  decode(encoded: unknown): State;
  /** Whether the state agrees with the event it claims to follow (the event at the snapshot's revision). */
  agreesWith(state: State, lastEvent: Event): boolean;
};

/** A snapshot that cannot be trusted; the caller replays the stream instead. */
export class SnapshotRejected extends Error {
  override readonly name = 'SnapshotRejected';
}
