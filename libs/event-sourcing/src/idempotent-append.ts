import { isDeepStrictEqual } from 'node:util';
import type { EventStore, EventToAppend, Position, RecordedEvent } from '@app/event-store';
import { idempotentEventId, type IdempotentRequest } from './idempotent-request.js';
import { asEvent, type DomainEvent } from './stream-loader.js';

/** Events read per page while searching a stream backwards for an idempotent request's events (EventStoreDB). */
const FIND_PAGE_SIZE = 100;

/** Events read per page from a found attempt's first event on: a command appends a few. */
export const ATTEMPT_PAGE_SIZE = 8;

/** What an earlier attempt of a request appended: its events, where the last one landed (in `$all`, and its revision in the stream). */
export type EarlierAttempt<Event> = { readonly events: readonly Event[]; readonly position: Position; readonly attemptRevision: bigint; readonly replayed: true };

/**
 * The events an earlier attempt of `request` appended to the stream, if any, found by the derived
 * id of its first event: on PostgreSQL by the unique index on event ids (one lookup, however busy
 * the stream); elsewhere (EventStoreDB indexes no event id) by searching backwards from the end,
 * stopping at events recorded before `notBefore` (none of the request's can be older), or without
 * it through the whole stream.
 */
export async function findEarlierAttempt<Event extends DomainEvent>(
  store: EventStore,
  streamId: string,
  request: IdempotentRequest,
  { notBefore }: { readonly notBefore?: Date } = {},
): Promise<EarlierAttempt<Event> | undefined> {
  const firstId = idempotentEventId(request.requestId, 0);
  if (store.postgres !== undefined) {
    const first = await store.postgres.readEvent(streamId, firstId);
    return first === undefined ? undefined : attemptFrom<Event>(store, streamId, request, first);
  }
  let from: bigint | undefined;
  for (;;) {
    const page = await store.readStream(streamId, { direction: 'backwards', maxCount: FIND_PAGE_SIZE, ...(from === undefined ? {} : { fromRevision: from }) });
    for (const recorded of page) {
      if (recorded.id === firstId) return attemptFrom<Event>(store, streamId, request, recorded);
      if (notBefore !== undefined && recorded.createdAt.getTime() < notBefore.getTime()) return undefined;
    }
    const oldest = page[page.length - 1];
    if (page.length < FIND_PAGE_SIZE || oldest === undefined || oldest.revision === 0n) return undefined;
    from = oldest.revision - 1n;
  }
}

/** The request's events from its first one on (their ids are consecutive derivations of the request id). */
export async function attemptFrom<Event>(store: EventStore, streamId: string, request: IdempotentRequest, first: RecordedEvent): Promise<EarlierAttempt<Event>> {
  const events: RecordedEvent[] = [];
  for (let from = first.revision; ; from += BigInt(ATTEMPT_PAGE_SIZE)) {
    const page = await store.readStream(streamId, { fromRevision: from, maxCount: ATTEMPT_PAGE_SIZE });
    const firstForeign = page.findIndex((event, index) => event.id !== idempotentEventId(request.requestId, events.length + index));
    events.push(...(firstForeign === -1 ? page : page.slice(0, firstForeign)));
    if (firstForeign !== -1 || page.length < ATTEMPT_PAGE_SIZE) break;
  }
  const last = events[events.length - 1] ?? first;
  return { events: events.map((event) => asEvent<Event>(event)), position: last.position, attemptRevision: last.revision, replayed: true };
}

/**
 * After an append of a request's events that the store accepted: the events as recorded there. The
 * same ids at the same place are a success without a write when another attempt of the request,
 * deciding on the same state, got there first; `ours` is false when what is recorded is not this
 * decision (its events are then the truth), and `recorded` carries the stored metadata either way.
 */
export async function recordedAttempt(
  store: EventStore,
  streamId: string,
  appended: readonly EventToAppend[],
  nextRevision: bigint,
): Promise<{ readonly ours: boolean; readonly recorded: readonly RecordedEvent[] }> {
  const recorded = await store.readStream(streamId, { fromRevision: nextRevision - BigInt(appended.length) + 1n, maxCount: appended.length });
  const ours =
    recorded.length === appended.length &&
    recorded.every((event, index) => event.id === appended[index]?.id && event.type === appended[index].type && isDeepStrictEqual(event.data, appended[index].data));
  return { ours, recorded };
}
