import { READ_COUNT_MAX, type EventStore, type RecordedEvent } from './event-store.port.js';

export type StreamPagesOptions = {
  /** The first revision read (inclusive); 0 when unset. */
  readonly fromRevision?: bigint;
  /** The last revision wanted (inclusive); the end of the stream when unset. */
  readonly toRevision?: bigint;
  /** Events per read, 1 to READ_COUNT_MAX; READ_COUNT_MAX when unset. */
  readonly pageSize?: number;
};

/**
 * A stream forwards, one read of at most `pageSize` events at a time; only the page being consumed
 * is in memory. Each read starts after the last revision read (revisions are followed, not counted,
 * so a gap in a damaged stream can neither repeat events nor loop). It ends after a short page, or
 * once `toRevision` is reached; events after `toRevision` are left out. Empty pages are not yielded.
 */
export async function* readStreamPages(store: EventStore, streamId: string, options: StreamPagesOptions = {}): AsyncGenerator<readonly RecordedEvent[]> {
  const { toRevision } = options;
  const pageSize = options.pageSize ?? READ_COUNT_MAX;
  let from = options.fromRevision ?? 0n;
  for (;;) {
    if (toRevision !== undefined && from > toRevision) return;
    const page = await store.readStream(streamId, { fromRevision: from, maxCount: pageSize });
    const last = page[page.length - 1];
    const wanted = toRevision === undefined || last === undefined || last.revision <= toRevision ? page : page.filter((event) => event.revision <= toRevision);
    if (wanted.length > 0) yield wanted;
    if (last === undefined || page.length < pageSize) return;
    from = last.revision + 1n;
  }
}

/** The stream's events from `fromRevision` (or its start) to `toRevision` (or its end), in one array. */
export async function readWholeStream(store: EventStore, streamId: string, options: Omit<StreamPagesOptions, 'pageSize'> = {}): Promise<RecordedEvent[]> {
  const events: RecordedEvent[] = [];
  for await (const page of readStreamPages(store, streamId, options)) events.push(...page);
  return events;
}
