import { createReadStream } from 'node:fs';
import type { BundleLine } from './bundle-check.js';

const NEWLINE = 0x0a;
/** Strict: bytes that are not UTF-8 throw rather than read as U+FFFD (a byte order mark is kept, as `toString('utf8')` keeps it). */
const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** A bundle file that could not be read (missing, a directory, an I/O error): nothing is known of the bundle. */
export class BundleReadError extends Error {
  constructor(
    readonly file: string,
    cause: unknown,
  ) {
    // Duck-typed: an error of Node's own realm is not `instanceof Error` in every context (a test's VM).
    const message = typeof cause === 'object' && cause !== null && typeof (cause as { message?: unknown }).message === 'string' ? (cause as { message: string }).message : String(cause);
    super(message, { cause });
    this.name = 'BundleReadError';
  }
}

/**
 * The longest line read as such: the service writes lines of a few kilobytes (an event) up to about
 * a megabyte (a head listing an account's lots and holds). A longer line is read as an empty one,
 * which no bundle holds (not an event record, or no head), rather than held in memory whole.
 */
export const BUNDLE_LINE_BYTES_MAX = 64 * 1024 * 1024;

/**
 * A bundle file's lines, read a chunk at a time: a bundle of millions of events is checked without
 * being one string (V8 refuses strings past about 512 MiB). Split at "\n" bytes, which UTF-8 never
 * uses inside a character, and each line decoded as the whole file would be (`bundleTextLines` of
 * `readFile(file, 'utf8')` gives the same lines, up to BUNDLE_LINE_BYTES_MAX bytes a line), but
 * strictly: a line that is not UTF-8 is marked `notUtf8`, and the check refuses it, since a lenient
 * decoding reads other bytes (a lone 0xFF for the three of U+FFFD) as the text that was signed. A read
 * that fails throws BundleReadError.
 */
export async function* bundleFileLines(file: string, lineBytesMax = BUNDLE_LINE_BYTES_MAX): AsyncGenerator<BundleLine> {
  // The start of the line being read, and whether it has grown past the most a line may hold.
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  let oversized = false;
  const keep = (piece: Buffer): void => {
    pendingBytes += piece.length;
    if (pendingBytes > lineBytesMax) [pending, oversized] = [[], true];
    else if (!oversized) pending.push(piece);
  };
  const line = (newline: boolean): BundleLine => {
    let text = '';
    let notUtf8 = false;
    try {
      if (!oversized) text = UTF8.decode(Buffer.concat(pending));
    } catch {
      notUtf8 = true;
    }
    [pending, pendingBytes, oversized] = [[], 0, false];
    return notUtf8 ? { text, newline, notUtf8 } : { text, newline };
  };
  try {
    for await (const chunk of createReadStream(file) as AsyncIterable<Buffer>) {
      let start = 0;
      for (let end = chunk.indexOf(NEWLINE); end !== -1; end = chunk.indexOf(NEWLINE, start)) {
        keep(chunk.subarray(start, end));
        yield line(true);
        start = end + 1;
      }
      if (start < chunk.length) keep(chunk.subarray(start));
    }
  } catch (error) {
    throw new BundleReadError(file, error);
  }
  if (pendingBytes > 0) yield line(false);
}
