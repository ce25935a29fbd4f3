import { canonicalEventForm, eventHash, HASH_METADATA_KEY, recomputedHeadHash, sealEvents, verifyChain, type ChainEvent } from './hash-chain.js';
import { sealedStream, STEPS, streamId, withData } from './testing/sealed-stream.fixtures.js';

describe('the hash chain', () => {
  it('covers stream, revision, id, type, data, metadata without the hash, and the previous hash', () => {
    const [first] = sealedStream(STEPS);
    if (first === undefined) throw new Error('no event');
    const form = JSON.parse(canonicalEventForm(first, null)) as Record<string, unknown>;
    expect(Object.keys(form)).toEqual(['data', 'id', 'metadata', 'previousHash', 'revision', 'streamId', 'type']);
    expect(form.revision).toBe('0');
    expect(form.metadata).not.toHaveProperty(HASH_METADATA_KEY);
    expect(form).not.toHaveProperty('position');
    expect(form).not.toHaveProperty('createdAt');
  });

  it('chains each hash to the previous one', () => {
    const events = sealedStream(STEPS);
    let previous: string | null = null;
    for (const event of events) {
      expect(event.metadata[HASH_METADATA_KEY]).toBe(eventHash(event, previous));
      previous = eventHash(event, previous);
    }
    expect(new Set(events.map((event) => event.metadata[HASH_METADATA_KEY])).size).toBe(events.length);
  });

  it('seals a later batch onto the head of an earlier one', () => {
    const events = sealedStream(STEPS);
    const head = events[2]?.metadata[HASH_METADATA_KEY] as string;
    const resealed = sealEvents(streamId, 3n, head, events.slice(3).map(({ id, type, data, metadata }) => ({ id, type, data, metadata: { ...metadata, [HASH_METADATA_KEY]: 'stale' } })));
    expect(resealed.map((event) => event.metadata[HASH_METADATA_KEY])).toEqual(events.slice(3).map((event) => event.metadata[HASH_METADATA_KEY]));
  });

  it('accepts an intact stream and an empty one', () => {
    const events = sealedStream(STEPS);
    expect(verifyChain(events)).toEqual({ ok: true, eventCount: 5, headHash: events[4]?.metadata[HASH_METADATA_KEY], unsealedPrefix: 0, reason: 'chain intact' });
    expect(verifyChain([])).toEqual({ ok: true, eventCount: 0, headHash: null, unsealedPrefix: 0, reason: 'chain intact' });
  });

  it('finds a changed amount at its revision', () => {
    const events = sealedStream(STEPS);
    const tampered = events.map((event, index) => (index === 2 ? withData(event, { amount: 5000, balanceAfter: 5070 }) : event));
    expect(verifyChain(tampered)).toMatchObject({ ok: false, firstBadRevision: 2n });
  });

  it('finds a value JSON cannot hold (a number past the double range, as the database hands it back: Infinity) at its revision, rather than throw', () => {
    const events = sealedStream(STEPS);
    const tampered = events.map((event, index) => (index === 3 ? withData(event, { amount: Number.POSITIVE_INFINITY }) : event));
    expect(verifyChain(tampered)).toEqual({ ok: false, firstBadRevision: 3n, reason: expect.stringMatching(/^revision 3 cannot be hashed \(.+\): the event was changed$/) });
  });

  it('finds a change to metadata, type or id', () => {
    const events = sealedStream(STEPS);
    const changes = [
      (index: number) => (index === 1 ? { ...events[1]!, metadata: { ...events[1]!.metadata, actorRole: 'admin' } } : events[index]!),
      (index: number) => (index === 3 ? { ...events[3]!, type: 'TokensPurchased' } : events[index]!),
      (index: number) => (index === 0 ? { ...events[0]!, id: '00000000-0000-4000-8000-000000000000' } : events[index]!),
    ];
    expect(changes.map((change) => verifyChain(events.map((_, index) => change(index)))).map((result) => (result.ok ? 'ok' : result.firstBadRevision))).toEqual([1n, 3n, 0n]);
  });

  it('finds a change whose own hash was recomputed at the next revision', () => {
    const events = sealedStream(STEPS);
    const changed = withData(events[1]!, { description: 'rewritten' });
    const rehashed = { ...changed, metadata: { ...changed.metadata, [HASH_METADATA_KEY]: eventHash(changed, events[0]!.metadata[HASH_METADATA_KEY] as string) } };
    expect(verifyChain([events[0]!, rehashed, ...events.slice(2)])).toMatchObject({ ok: false, firstBadRevision: 2n });
  });

  it('finds a deleted event, renumbered or not', () => {
    const events = sealedStream(STEPS);
    const without = [...events.slice(0, 2), ...events.slice(3)];
    expect(verifyChain(without)).toMatchObject({ ok: false, firstBadRevision: 2n });
    const renumbered = without.map((event, index) => ({ ...event, revision: BigInt(index) }));
    expect(verifyChain(renumbered)).toMatchObject({ ok: false, firstBadRevision: 2n });
  });

  it('finds an inserted event', () => {
    const events = sealedStream(STEPS);
    const extra = sealedStream([{ kind: 'purchase', amount: 1, at: '2026-01-02T12:00:00.000Z' }])[0]!;
    const inserted = [...events.slice(0, 2), { ...extra, revision: 2n }, ...events.slice(2).map((event) => ({ ...event, revision: event.revision + 1n }))];
    expect(verifyChain(inserted)).toMatchObject({ ok: false, firstBadRevision: 2n });
  });

  it('finds reordered events, with or without their revisions swapped', () => {
    const events = sealedStream(STEPS);
    const swapped = [events[0]!, events[2]!, events[1]!, events[3]!, events[4]!];
    expect(verifyChain(swapped)).toMatchObject({ ok: false, firstBadRevision: 1n });
    const renumbered = swapped.map((event, index) => ({ ...event, revision: BigInt(index) }));
    expect(verifyChain(renumbered)).toMatchObject({ ok: false, firstBadRevision: 1n });
  });

  it('finds removed newest events only against an anchor', () => {
    const events = sealedStream(STEPS);
    const anchor = { revision: 4n, hash: events[4]!.metadata[HASH_METADATA_KEY] as string };
    expect(verifyChain(events.slice(0, 3)).ok).toBe(true);
    expect(verifyChain(events.slice(0, 3), { anchor })).toMatchObject({ ok: false, firstBadRevision: 3n });
    expect(verifyChain(events, { anchor })).toMatchObject({ ok: true });
    expect(verifyChain(events, { anchor: { revision: 4n, hash: 'f'.repeat(64) } })).toMatchObject({ ok: false, firstBadRevision: 4n });
  });

  it('refuses events of another stream and events without a hash', () => {
    const events = sealedStream(STEPS);
    expect(verifyChain([events[0]!, { ...events[1]!, streamId: 'token-account-other' }])).toMatchObject({ ok: false, firstBadRevision: 1n });
    const { [HASH_METADATA_KEY]: _hash, ...bare } = events[0]!.metadata;
    expect(verifyChain([{ ...events[0]!, metadata: bare }])).toMatchObject({ ok: false, firstBadRevision: 0n, reason: expect.stringMatching(/^revision 0 has no hash/) });
  });
});

/** The events with their hashes removed, as a stream written before hashes on append holds them. */
function unsealed(events: readonly ChainEvent[]): ChainEvent[] {
  return events.map((event) => {
    const { [HASH_METADATA_KEY]: _hash, ...metadata } = event.metadata;
    return { ...event, metadata };
  });
}

describe('a stream written before hashes on append', () => {
  it('is covered from its first sealed event on: the prefix hashes as if it had been sealed', () => {
    const events = sealedStream(STEPS);
    const legacy = unsealed(events.slice(0, 3));
    expect(recomputedHeadHash(legacy)).toBe(events[2]?.metadata[HASH_METADATA_KEY]);
    expect(verifyChain([...legacy, ...events.slice(3)])).toEqual({ ok: true, eventCount: 5, headHash: events[4]?.metadata[HASH_METADATA_KEY], unsealedPrefix: 3, reason: 'chain intact' });
  });

  it('finds a change to the unsealed prefix at the first sealed event', () => {
    const events = sealedStream(STEPS);
    const legacy = unsealed(events.slice(0, 3));
    legacy[1] = withData(events[1]!, { amount: 3 });
    legacy[1] = unsealed([legacy[1]])[0]!;
    expect(verifyChain([...legacy, ...events.slice(3)])).toMatchObject({ ok: false, firstBadRevision: 3n });
  });

  it('takes a hash key that holds no text for a damaged hash, not for an unsealed event of the prefix', () => {
    const events = sealedStream(STEPS);
    for (const damaged of [null, 123, { hash: 'x' }]) {
      const stream = [{ ...events[0]!, metadata: { ...events[0]!.metadata, [HASH_METADATA_KEY]: damaged } }, ...events.slice(1)] as ChainEvent[];
      expect(verifyChain(stream)).toEqual({ ok: false, firstBadRevision: 0n, reason: "revision 0 has a hash that is not text: the event's metadata was changed" });
    }
  });

  it('takes metadata that is not an object for changed metadata, not for an unsealed event of the prefix (it holds no hash, and hashes as {})', () => {
    const events = sealedStream(STEPS);
    for (const metadata of [[], null, '', 0, true]) {
      for (const at of [0, 3]) {
        const stream = events.map((event, index) => (index === at ? { ...event, metadata } : event)) as unknown as ChainEvent[];
        expect(verifyChain(stream)).toEqual({ ok: false, firstBadRevision: BigInt(at), reason: `revision ${at} has metadata that is not an object: the event's metadata was changed` });
      }
    }
  });

  it('vouches for nothing when no event is sealed, and refuses a hash missing after a sealed event', () => {
    const events = sealedStream(STEPS);
    expect(verifyChain(unsealed(events))).toMatchObject({ ok: false, firstBadRevision: 0n, reason: expect.stringMatching(/^revision 0 has no hash \(revisions 0\.\.4 are unsealed/) });
    expect(verifyChain([...events.slice(0, 2), ...unsealed(events.slice(2))])).toMatchObject({ ok: false, firstBadRevision: 2n, reason: 'revision 2 has no hash' });
  });
});
