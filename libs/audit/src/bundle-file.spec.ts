import { generateKeyPairSync } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createAuditBundle } from './audit-bundle.js';
import { verifyAuditBundle, verifyAuditBundleLines, checkBundlesInStep, verifyBundleContinues, type BundleLine } from './bundle-check.js';
import { bundleFileLines, BundleReadError } from './bundle-file.js';
import { sealEvents } from './hash-chain.js';
import { sealedStream, STEPS, streamId, withData } from './testing/sealed-stream.fixtures.js';

/**
 * A bundle checked from its file a line at a time (`bundleFileLines`, as the CLI reads one) gets the
 * verdict the whole text gets, whatever the file's chunks cut: multi-byte characters, lines longer
 * than a chunk, a last line without its newline, CRLF line ends.
 */
const signer = generateKeyPairSync('ed25519');
const createdAt = '2026-02-01T00:00:00.000Z';
let directory: string;

beforeAll(async () => {
  directory = await mkdtemp(path.join(tmpdir(), 'bundle-file-'));
});

afterAll(async () => {
  await rm(directory, { recursive: true, force: true });
});

/** Events whose descriptions hold multi-byte characters, some lines longer than a 64 KiB read. */
function longStream() {
  const steps = Array.from({ length: 40 }, (_, index) => ({ kind: index === 0 ? ('purchase' as const) : ('usage' as const), amount: index === 0 ? 10_000 : 1, at: `2026-01-${String(1 + (index % 28)).padStart(2, '0')}T10:00:00.000Z` }));
  const described = sealedStream(steps).map((event, index) => withData(event, { description: `${'é€😀'.repeat(index * 997)}${index}` }));
  return sealEvents(streamId, 0n, null, described).map((event, index) => ({ ...described[index]!, metadata: event.metadata }));
}

async function file(content: string | Buffer): Promise<string> {
  const name = path.join(directory, `${Math.random().toString(36).slice(2)}.ndjson`);
  await writeFile(name, content);
  return name;
}

const sign = (events: ReturnType<typeof longStream>) => createAuditBundle(events, { privateKey: signer.privateKey, streamId, createdAt });

describe('a bundle read from its file a line at a time', () => {
  const text = sign(longStream());
  const lines = text.split('\n');

  it.each([
    ['intact', text, true],
    ['without its last newline', text.slice(0, -1), false],
    ['with CRLF line ends', text.replaceAll('\n', '\r\n'), false],
    ['with a line edited', lines.map((line, index) => (index === 3 ? line.replace('"amount":1', '"amount":2') : line)).join('\n'), false],
    ['with a line removed', lines.filter((_, index) => index !== 5).join('\n'), false],
    ['with its head only', `${lines.at(-2) ?? ''}\n`, false],
    ['empty', '', false],
  ] as const)('gets the verdict of the whole text: %s', async (_label, content, ok) => {
    const name = await file(content);
    const verdict = await verifyAuditBundleLines(bundleFileLines(name), signer.publicKey);
    expect(verdict).toEqual(verifyAuditBundle(await readFile(name, 'utf8'), signer.publicKey));
    expect(verdict.ok).toBe(ok);
  });

  it('refuses a file cut inside a character, at its last line, as not UTF-8 (the whole text, read leniently, is refused as cut short)', async () => {
    const bytes = Buffer.from(text, 'utf8');
    const name = await file(bytes.subarray(0, bytes.indexOf('€') + 1));
    expect(verifyAuditBundle(await readFile(name, 'utf8'), signer.publicKey)).toMatchObject({ ok: false, reason: 'the bundle does not end with a newline: it was cut short' });
    expect(await verifyAuditBundleLines(bundleFileLines(name), signer.publicKey)).toEqual({ ok: false, reason: 'a line is not UTF-8: its bytes are not the ones signed', line: 2 });
  });

  it('is intact as a whole, and its lines are the text split at each newline', async () => {
    const name = await file(text);
    const read: string[] = [];
    for await (const line of bundleFileLines(name)) read.push(line.text);
    expect(read).toEqual(lines.slice(0, -1));
    expect(text.length).toBeGreaterThan(3 * 65_536);
    expect(await verifyAuditBundleLines(bundleFileLines(name), signer.publicKey)).toMatchObject({ ok: true, eventCount: 40 });
  });

  it('checks a bundle against an earlier one from their files as from their texts', async () => {
    const events = longStream();
    const [newer, earlier] = [sign(events), sign(events.slice(0, 25))];
    const rewritten = sign(sealEvents(streamId, 0n, null, events.map((event, index) => (index === 7 ? withData(event, { amount: 2 }) : event))).map((event, index) => ({ ...events[index]!, data: event.data, metadata: event.metadata })));
    for (const [later, before] of [
      [newer, earlier],
      [rewritten, earlier],
      [earlier, newer],
    ] as const) {
      const [laterFile, beforeFile] = [await file(later), await file(before)];
      expect((await checkBundlesInStep(bundleFileLines(laterFile), bundleFileLines(beforeFile), signer.publicKey)).verdict).toEqual(verifyBundleContinues(later, before, signer.publicKey));
    }
    expect(verifyBundleContinues(rewritten, earlier, signer.publicKey)).toMatchObject({ ok: false, firstBadRevision: 7n });
    // The earlier bundle's last event: compared only once its head has come, in step.
    const lastChanged = sign(sealEvents(streamId, 0n, null, events.map((event, index) => (index === 24 ? withData(event, { amount: 2 }) : event))).map((event, index) => ({ ...events[index]!, data: event.data, metadata: event.metadata })));
    const [lastFile, earlierFile] = [await file(lastChanged), await file(earlier)];
    expect((await checkBundlesInStep(bundleFileLines(lastFile), bundleFileLines(earlierFile), signer.publicKey)).verdict).toMatchObject({ ok: false, firstBadRevision: 24n });
    expect(verifyBundleContinues(lastChanged, earlier, signer.publicKey)).toMatchObject({ ok: false, firstBadRevision: 24n });
  });

  it('reads a line longer than it may hold as an empty one: not an event record, or no head, never the whole line in memory', async () => {
    const name = await file(text);
    const longest = Math.max(...lines.map((line) => Buffer.byteLength(line, 'utf8')));
    // A limit under the second line's length (the first is shorter): line 2 is refused, every other line under it is read.
    const limit = Buffer.byteLength(lines[1] ?? '', 'utf8') - 1;
    expect(Buffer.byteLength(lines[0] ?? '', 'utf8')).toBeLessThanOrEqual(limit);
    expect(await verifyAuditBundleLines(bundleFileLines(name, limit), signer.publicKey)).toMatchObject({ ok: false });
    const read: string[] = [];
    for await (const line of bundleFileLines(name, limit)) read.push(line.text);
    expect(read[1]).toBe('');
    expect(read[0]).toBe(lines[0]);
    expect(await verifyAuditBundleLines(bundleFileLines(name, longest), signer.publicKey)).toMatchObject({ ok: true });
    // The last line, without its newline, too.
    const cut = await file(`${lines[0] ?? ''}\n${lines[1] ?? ''}`);
    const last: BundleLine[] = [];
    for await (const line of bundleFileLines(cut, limit)) last.push(line);
    expect(last).toEqual([{ text: lines[0], newline: true }, { text: '', newline: false }]);
  });

  it('throws BundleReadError for a file it cannot read, naming the file', async () => {
    const missing = path.join(directory, 'no-such-bundle.ndjson');
    await expect(verifyAuditBundleLines(bundleFileLines(missing), signer.publicKey)).rejects.toThrow(BundleReadError);
    await expect(verifyAuditBundleLines(bundleFileLines(directory), signer.publicKey)).rejects.toMatchObject({ file: directory, message: expect.stringContaining('EISDIR') });
  });

  it('reads the bundle once to its end when the earlier one cannot be read: its own verdict first, then the earlier one\'s error', async () => {
    const events = longStream();
    const missing = path.join(directory, 'no-such-earlier.ndjson');
    // Counts the lines read: a pipe cannot be read twice, so the bundle is read once, whole.
    const counted = (name: string, reads: { count: number }) => ({
      async *[Symbol.asyncIterator]() {
        for await (const line of bundleFileLines(name)) {
          reads.count += 1;
          yield line;
        }
      },
    });
    const intact = await file(sign(events));
    const reads = { count: 0 };
    await expect(checkBundlesInStep(counted(intact, reads), bundleFileLines(missing), signer.publicKey)).rejects.toMatchObject({ name: 'BundleReadError', file: missing });
    expect(reads.count).toBe(events.length + 1);
    const edited = await file(sign(events).replace('"amount":1', '"amount":2'));
    const result = await checkBundlesInStep(bundleFileLines(edited), bundleFileLines(missing), signer.publicKey);
    expect(result.verdict).toEqual(verifyAuditBundle(await readFile(edited, 'utf8'), signer.publicKey));
    expect(result.verdict.ok).toBe(false);
  });

  it('takes a line nested deeper than the canonical form can hold as no finding of the comparison: the bundle holding it is not intact', async () => {
    const events = longStream();
    // JSON.parse reads 20,000 levels; a recursive canonical form overflows the stack on them.
    const deep = `${'['.repeat(20_000)}${']'.repeat(20_000)}`;
    const earlier = sign(events.slice(0, 3)).replace('{"kind":"event",', `{"kind":"event","deep":${deep},`);
    const result = await checkBundlesInStep(bundleFileLines(await file(sign(events))), bundleFileLines(await file(earlier)), signer.publicKey);
    expect(result.newer.ok).toBe(true);
    expect(result.earlier.ok).toBe(false);
    expect(result.verdict).toMatchObject({ ok: false, reason: expect.stringContaining('the earlier bundle is not intact') });
  });

  it('reads the bundle of the fixtures as the text gives it', async () => {
    const small = createAuditBundle(sealedStream(STEPS), { privateKey: signer.privateKey, streamId, createdAt });
    expect(await verifyAuditBundleLines(bundleFileLines(await file(small)), signer.publicKey)).toEqual(verifyAuditBundle(small, signer.publicKey));
  });
});

describe('a bundle file whose bytes are not UTF-8', () => {
  /** A signed bundle of two events, the second's description holding U+FFFD as the signer wrote it (EF BF BD). */
  function withReplacementCharacter(): string {
    const steps = [
      { kind: 'purchase' as const, amount: 100, at: '2026-01-01T10:00:00.000Z' },
      { kind: 'usage' as const, amount: 1, at: '2026-01-02T10:00:00.000Z' },
    ];
    const described = sealedStream(steps).map((event, index) => (index === 1 ? withData(event, { description: 'odd \uFFFD byte' }) : event));
    return sign(sealEvents(streamId, 0n, null, described).map((event, index) => ({ ...described[index]!, metadata: event.metadata })));
  }

  it('refuses the line where one byte that is not UTF-8 stands for the three of U+FFFD, which a lenient reading takes for the signed text', async () => {
    const text = withReplacementCharacter();
    const bytes = Buffer.from(text, 'utf8');
    const at = bytes.indexOf(Buffer.from('\uFFFD', 'utf8'));
    expect(at).toBeGreaterThan(0);
    const name = await file(Buffer.concat([bytes.subarray(0, at), Buffer.from([0xff]), bytes.subarray(at + 3)]));
    // Read leniently (as the check read files until 7 December 2026), the file is the signed text.
    expect(verifyAuditBundle(await readFile(name, 'utf8'), signer.publicKey)).toMatchObject({ ok: true, eventCount: 2 });
    expect(await verifyAuditBundleLines(bundleFileLines(name), signer.publicKey)).toEqual({ ok: false, reason: 'a line is not UTF-8: its bytes are not the ones signed', line: 2 });
    // As the signer wrote it, the file is intact.
    expect(await verifyAuditBundleLines(bundleFileLines(await file(text)), signer.publicKey)).toMatchObject({ ok: true, eventCount: 2 });
  });

  it('keeps a byte order mark, as a lenient reading does, and so refuses it as the head or an event would be', async () => {
    const name = await file(`\uFEFF${sign(longStream())}`);
    const verdict = await verifyAuditBundleLines(bundleFileLines(name), signer.publicKey);
    expect(verdict).toEqual(verifyAuditBundle(await readFile(name, 'utf8'), signer.publicKey));
    expect(verdict.ok).toBe(false);
  });
});
