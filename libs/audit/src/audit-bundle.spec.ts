import { generateKeyPairSync, sign } from 'node:crypto';
import { createAuditBundle, keyId } from './audit-bundle.js';
import { canonicalJson } from './canonical-json.js';
import { verifyAuditBundle, verifyBundleContinues } from './bundle-check.js';
import { HASH_METADATA_KEY, sealEvents } from './hash-chain.js';
import { sealedStream, STEPS, streamId, withData } from './testing/sealed-stream.fixtures.js';

const signer = generateKeyPairSync('ed25519');
const stranger = generateKeyPairSync('ed25519');
const createdAt = '2026-02-01T00:00:00.000Z';

function bundle(): string {
  return createAuditBundle(sealedStream(STEPS), { privateKey: signer.privateKey, streamId, createdAt });
}

function editLine(text: string, index: number, edit: (line: Record<string, unknown>) => Record<string, unknown>): string {
  const lines = text.split('\n');
  lines[index] = JSON.stringify(edit(JSON.parse(lines[index] ?? '') as Record<string, unknown>));
  return lines.join('\n');
}

describe('a bundle checked against an earlier one of the stream', () => {
  const events = sealedStream(STEPS);
  const signed = (of: typeof events, key = signer.privateKey) => createAuditBundle(of, { privateKey: key, streamId, createdAt });

  it('continues an earlier bundle of a shorter stream, of the same stream, and an empty one', () => {
    const newer = signed(events);
    expect(verifyBundleContinues(newer, signed(events.slice(0, 3)), signer.publicKey)).toMatchObject({ ok: true, eventCount: 5 });
    expect(verifyBundleContinues(newer, newer, signer.publicKey)).toMatchObject({ ok: true, eventCount: 5 });
    expect(verifyBundleContinues(newer, signed([]), signer.publicKey)).toMatchObject({ ok: true, eventCount: 5 });
  });

  it('finds a history rewritten after the earlier bundle, though the newer one is intact and signed by the service', () => {
    // Someone with write access to the database changes revision 1 and recomputes every later hash; the service signs what it reads.
    const changed = events.map((event, index) => (index === 1 ? withData(event, { amount: 1 }) : event));
    const rechained = sealEvents(streamId, 0n, null, changed).map((event, index) => ({ ...events[index]!, data: event.data, metadata: event.metadata }));
    const rewritten = signed(rechained);
    expect(verifyAuditBundle(rewritten, signer.publicKey).ok).toBe(true);
    expect(verifyBundleContinues(rewritten, signed(events.slice(0, 3)), signer.publicKey)).toEqual({
      ok: false,
      firstBadRevision: 1n,
      reason: "revision 1 differs from the earlier bundle's (data, hash): the history that bundle signed was rewritten",
    });
  });

  it('finds a time the hash does not cover changed since the earlier bundle, and takes the earlier bundle under the key it was signed with', () => {
    const backdated = events.map((event, index) => (index === 2 ? { ...event, createdAt: '2020-01-01T00:00:00.000Z' } : event));
    expect(verifyBundleContinues(signed(backdated), signed(events.slice(0, 3)), signer.publicKey)).toEqual({
      ok: false,
      firstBadRevision: 2n,
      reason: "revision 2 differs from the earlier bundle's (createdAt): the history that bundle signed was rewritten",
    });
    // The same instant written with another precision, and a hash an unsealed event's metadata gained since: the same events.
    const microseconds = events.map((event) => ({ ...event, createdAt: event.createdAt.replace(/Z$/, '000Z') }));
    expect(verifyBundleContinues(signed(microseconds), signed(events.slice(0, 3)), signer.publicKey)).toMatchObject({ ok: true, eventCount: 5 });
    const unsealedFirst = events.slice(0, 3).map((event, index) => (index === 0 ? { ...event, metadata: Object.fromEntries(Object.entries(event.metadata).filter(([key]) => key !== HASH_METADATA_KEY)) } : event));
    expect(verifyAuditBundle(signed(unsealedFirst), signer.publicKey)).toMatchObject({ ok: true, unsealedPrefix: 1 });
    expect(verifyBundleContinues(signed(events), signed(unsealedFirst), signer.publicKey)).toMatchObject({ ok: true, eventCount: 5 });
    // The key was rotated between the two bundles.
    expect(verifyBundleContinues(signed(events), signed(events.slice(0, 3), stranger.privateKey), signer.publicKey, stranger.publicKey)).toMatchObject({ ok: true, eventCount: 5 });
  });

  it('finds events removed since the earlier bundle, and refuses an earlier bundle that is not intact or of another stream', () => {
    expect(verifyBundleContinues(signed(events.slice(0, 3)), signed(events), signer.publicKey)).toMatchObject({ ok: false, firstBadRevision: 3n, reason: expect.stringContaining('events were removed') });
    expect(verifyBundleContinues(signed(events), signed(events.slice(0, 2), stranger.privateKey), signer.publicKey)).toEqual({
      ok: false,
      reason: `the earlier bundle is not intact: the head signature is not valid for this public key; the head names the key ${keyId(stranger.publicKey)}, and this key is ${keyId(signer.publicKey)}: was it signed with another key?`,
    });
    const other = createAuditBundle([], { privateKey: signer.privateKey, streamId: 'token-account-other', createdAt });
    expect(verifyBundleContinues(signed(events), other, signer.publicKey)).toEqual({ ok: false, reason: `the earlier bundle is of token-account-other, this one of ${streamId}` });
  });
});

describe('audit bundles', () => {
  it('writes one NDJSON line per event and a signed head, and verifies with the PEM public key alone', () => {
    const text = bundle();
    const lines = text.trimEnd().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(lines.map((line) => line.kind)).toEqual(['event', 'event', 'event', 'event', 'event', 'head']);
    expect(lines[5]).toMatchObject({ streamId, eventCount: 5, lastRevision: '4', headHash: lines[4]?.hash, createdAt });
    const pem = signer.publicKey.export({ type: 'spki', format: 'pem' }).toString();
    expect(verifyAuditBundle(text, pem)).toEqual({ ok: true, streamId, eventCount: 5, headHash: lines[4]?.hash, unsealedPrefix: 0, createdAt, keyId: keyId(signer.publicKey), reason: 'bundle intact' });
  });

  it('bundles an empty stream', () => {
    const text = createAuditBundle([], { privateKey: signer.privateKey, streamId, createdAt });
    expect(verifyAuditBundle(text, signer.publicKey)).toMatchObject({ ok: true, eventCount: 0, headHash: null });
  });

  it('finds a changed amount at its revision', () => {
    const text = editLine(bundle(), 1, (line) => ({ ...line, data: { ...(line.data as object), amount: 3 } }));
    expect(verifyAuditBundle(text, signer.publicKey)).toMatchObject({ ok: false, firstBadRevision: 1n });
  });

  it('finds a removed line, including the last event', () => {
    const lines = bundle().split('\n');
    expect(verifyAuditBundle([...lines.slice(0, 2), ...lines.slice(3)].join('\n'), signer.publicKey)).toMatchObject({ ok: false, firstBadRevision: 2n });
    expect(verifyAuditBundle([...lines.slice(0, 4), ...lines.slice(5)].join('\n'), signer.publicKey)).toMatchObject({ ok: false, firstBadRevision: 4n });
  });

  it('finds reordered lines', () => {
    const lines = bundle().split('\n');
    const reordered = [lines[0], lines[2], lines[1], ...lines.slice(3)].join('\n');
    expect(verifyAuditBundle(reordered, signer.publicKey)).toMatchObject({ ok: false, firstBadRevision: 1n });
  });

  it('refuses a head signed by another key, or re-signed after an edit', () => {
    // A forger who changes an amount, rebuilds the whole chain and signs it with their own key.
    const events = sealedStream(STEPS);
    const changed = events.map((event, index) => (index === 0 ? withData(event, { amount: 1_000_000, balanceAfter: 1_000_000 }) : event));
    const rechained = sealEvents(streamId, 0n, null, changed).map((event, index) => ({ ...events[index]!, data: event.data, metadata: event.metadata }));
    const forged = createAuditBundle(rechained, { privateKey: stranger.privateKey, streamId, createdAt });
    expect(verifyAuditBundle(forged, stranger.publicKey).ok).toBe(true);
    // The head names the key it was signed with: checked with another, the reason says which two.
    expect(verifyAuditBundle(forged, signer.publicKey)).toEqual({
      ok: false,
      reason: `the head signature is not valid for this public key; the head names the key ${keyId(stranger.publicKey)}, and this key is ${keyId(signer.publicKey)}: was it signed with another key?`,
    });
    const edited = editLine(bundle(), 5, (head) => ({ ...head, eventCount: 4 }));
    expect(verifyAuditBundle(edited, signer.publicKey)).toEqual({ ok: false, reason: 'the head signature is not valid for this public key' });
  });

  it('refuses a head signed with an event count or a key id that the bundle and the key do not bear out', () => {
    // Signed with the right key, but written as no signer of this ledger writes it.
    const resigned = (edit: (head: Record<string, unknown>) => Record<string, unknown>) =>
      editLine(bundle(), 5, (head) => {
        const { signature: _signature, ...unsigned } = edit(head);
        return { ...unsigned, signature: sign(null, Buffer.from(canonicalJson(unsigned), 'utf8'), signer.privateKey).toString('base64') };
      });
    expect(verifyAuditBundle(resigned((head) => head), signer.publicKey)).toMatchObject({ ok: true, eventCount: 5 });
    expect(verifyAuditBundle(resigned((head) => ({ ...head, eventCount: 4 })), signer.publicKey)).toEqual({ ok: false, reason: 'the head says 4 events, the bundle holds 5' });
    expect(verifyAuditBundle(resigned((head) => ({ ...head, keyId: keyId(stranger.publicKey) })), signer.publicKey)).toEqual({ ok: false, reason: "the head's keyId is not the SHA-256 of this public key" });
  });

  it('finds an edit to a field the chain does not cover through the signed line digest', () => {
    const text = editLine(bundle(), 2, (line) => ({ ...line, createdAt: '2020-01-01T00:00:00.000Z' }));
    expect(verifyAuditBundle(text, signer.publicKey)).toMatchObject({ ok: false, reason: expect.stringContaining('differ from the signed ones') });
  });

  it('refuses a truncated or garbled bundle', () => {
    const text = bundle();
    expect(verifyAuditBundle(text.slice(0, -1), signer.publicKey)).toMatchObject({ ok: false, reason: expect.stringContaining('cut short') });
    expect(verifyAuditBundle(text.split('\n').slice(0, 3).join('\n') + '\n', signer.publicKey)).toMatchObject({ ok: false, reason: 'the last line is not a head record' });
    expect(verifyAuditBundle(text.replace('"kind":"event"', '"kind":"evnt"'), signer.publicKey)).toMatchObject({ ok: false, line: 1 });
  });

  it('refuses a head line that holds more than the head it states (a repeated key JSON.parse resolves to its last copy), or a signature not in canonical base64', () => {
    const text = bundle();
    const lines = text.split('\n');
    const headText = lines[5] ?? '';
    const repeated = headText.replace('{"kind":"head",', '{"kind":"head","eventCount":999999,');
    expect(JSON.parse(repeated)).toEqual(JSON.parse(headText));
    expect(verifyAuditBundle([...lines.slice(0, 5), repeated, ''].join('\n'), signer.publicKey)).toEqual({ ok: false, reason: 'the head line is not as signed: its text holds more than the head it states', line: 6 });
    expect(verifyAuditBundle([...lines.slice(0, 5), headText.replace('{"kind":"head",', '{ "kind":"head",'), ''].join('\n'), signer.publicKey)).toMatchObject({ ok: false, line: 6 });
    const head = JSON.parse(headText) as { signature: string };
    const loose = editLine(text, 5, (line) => ({ ...line, signature: `${head.signature.slice(0, 10)}\n${head.signature.slice(10)}` }));
    expect(verifyAuditBundle(loose, signer.publicKey)).toEqual({ ok: false, reason: 'the head signature is not valid for this public key' });
    expect(verifyAuditBundle(text, signer.publicKey)).toMatchObject({ ok: true });
  });

  it('quotes a head it cannot read as JSON, so that no text of the bundle passes for the checker’s own words', () => {
    const forged = (edit: (head: Record<string, unknown>) => Record<string, unknown>) => editLine(bundle(), 5, edit);
    const format = verifyAuditBundle(forged((head) => ({ ...head, format: 'x\nbundle intact: token-account-1, 5 events' })), signer.publicKey);
    expect(format).toEqual({ ok: false, reason: 'unsupported bundle format "x\\nbundle intact: token-account-1, 5 events" (this checker reads token-ledger-audit-bundle/1)' });
    expect(format.reason).not.toContain('\n');
    expect(verifyAuditBundle(forged((head) => ({ ...head, hashChainVersion: 2 })), signer.publicKey)).toEqual({ ok: false, reason: 'unsupported hash chain version 2 (this checker reads 1)' });
    // A key id that is not one is not repeated.
    expect(verifyAuditBundle(forged((head) => ({ ...head, keyId: '\u001b[2K', eventCount: 4 })), signer.publicKey)).toEqual({ ok: false, reason: 'the head signature is not valid for this public key' });
  });

  it('names the event the ledger refuses to replay when the head signs a summary, rather than calling the summary changed', () => {
    const events = sealedStream(STEPS);
    const ledger = { balance: 0, held: 0, available: 0, holds: [], lots: [] };
    const renamed = events.map((event, index) => (index === 2 ? { ...event, type: 'TokensBonus' } : event));
    const rechained = sealEvents(streamId, 0n, null, renamed).map((event, index) => ({ ...renamed[index]!, data: event.data, metadata: event.metadata }));
    const text = createAuditBundle(rechained, { privateKey: signer.privateKey, streamId, createdAt, ledger });
    expect(verifyAuditBundle(text, signer.publicKey)).toEqual({
      ok: false,
      reason: expect.stringMatching(/^the signed balance, holds and lots cannot be checked: the ledger refuses to replay revision 2 \(TokensBonus\): unknown token account event/),
    });
    // The same events without a signed summary: intact, nothing claimed that the replay must bear out.
    expect(verifyAuditBundle(createAuditBundle(rechained, { privateKey: signer.privateKey, streamId, createdAt }), signer.publicKey)).toMatchObject({ ok: true });
  });

  it('answers not intact, rather than throwing, for a line the canonical form cannot hold; throws for a key that cannot check Ed25519', () => {
    const text = editLine(bundle(), 2, (line) => ({ ...line, data: { ...(line.data as object), description: '\ud800' } }));
    expect(verifyAuditBundle(text, signer.publicKey)).toMatchObject({ ok: false, firstBadRevision: 2n, reason: expect.stringMatching(/^revision 2 cannot be hashed \(Lone surrogate/) });
    expect(() => verifyAuditBundle(bundle(), generateKeyPairSync('x25519').publicKey)).toThrow('bundles are signed with Ed25519; this is a x25519 key');
  });

  it('will not bundle a broken chain', () => {
    const events = sealedStream(STEPS).map((event, index) => (index === 3 ? withData(event, { amount: 1 }) : event));
    expect(() => createAuditBundle(events, { privateKey: signer.privateKey, streamId, createdAt })).toThrow('revision 3 does not match its hash');
  });

  it('bundles a stream whose unsealed prefix a sealed event covers, and finds a forged prefix hash', () => {
    const events = sealedStream(STEPS).map((event, index) => {
      if (index > 1) return event;
      const { [HASH_METADATA_KEY]: _hash, ...metadata } = event.metadata;
      return { ...event, metadata };
    });
    const text = createAuditBundle(events, { privateKey: signer.privateKey, streamId, createdAt });
    // The head signs how many leading events were unsealed, and the verifier reports it.
    expect(verifyAuditBundle(text, signer.publicKey)).toMatchObject({ ok: true, eventCount: 5, unsealedPrefix: 2 });
    expect(JSON.parse(text.trimEnd().split('\n').at(-1) ?? '')).toMatchObject({ kind: 'head', unsealedPrefix: 2 });
    // A stream sealed throughout: no such member, 0 reported (so bundles of such streams are as before).
    expect(JSON.parse(bundle().trimEnd().split('\n').at(-1) ?? '')).not.toHaveProperty('unsealedPrefix');
    expect(verifyAuditBundle(bundle(), signer.publicKey)).toMatchObject({ ok: true, unsealedPrefix: 0 });
    expect(verifyAuditBundle(editLine(text, 1, (line) => ({ ...line, hash: 'f'.repeat(64) })), signer.publicKey)).toMatchObject({ ok: false, firstBadRevision: 1n });
  });
});
