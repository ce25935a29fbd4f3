/**
 * The most recently used streams' folded states, bounded by entry count. An entry is the state at a
 * revision: a loader reads only the events after it, and the append's expected revision rejects a
 * decision made on an entry that another process has since moved past.
 */
export class StreamStateCache<Entry> {
  private readonly entries = new Map<string, Entry>();

  constructor(readonly entriesMax: number) {
    if (!Number.isSafeInteger(entriesMax) || entriesMax < 0) throw new RangeError(`entriesMax must be a whole number, not ${entriesMax}`);
  }

  get size(): number {
    return this.entries.size;
  }

  get(streamId: string): Entry | undefined {
    const entry = this.entries.get(streamId);
    if (entry === undefined) return undefined;
    // Map keeps insertion order: re-inserting marks the entry as the most recently used.
    this.entries.delete(streamId);
    this.entries.set(streamId, entry);
    return entry;
  }

  set(streamId: string, entry: Entry): void {
    if (this.entriesMax === 0) return;
    this.entries.delete(streamId);
    this.entries.set(streamId, entry);
    if (this.entries.size > this.entriesMax) {
      const oldest = this.entries.keys().next();
      if (oldest.done !== true) this.entries.delete(oldest.value);
    }
  }

  delete(streamId: string): void {
    this.entries.delete(streamId);
  }
}
