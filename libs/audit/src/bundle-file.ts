import { createReadStream } from 'node:fs';
import type { BundleLine } from './audit-bundle.js';

const NEWLINE = 0x0a;

/** A bundle file that could not be read (missing, a directory, an I/O error): nothing is known of the bundle. */
export class BundleReadError extends Error {
  constructor(
    readonly file: string,
    cause: unknown,
  ) {
    super(cause instanceof Error ? cause.message : String(cause), { cause });
    this.name = 'BundleReadError';
  }
}

/**
 * A bundle file's lines, read a chunk at a time: a bundle of millions of events is checked without
 * being one string (V8 refuses strings past about 512 MiB). Split at "\n" bytes, which UTF-8 never
 * uses inside a character, and each line decoded as the whole file would be (`bundleTextLines` of
 * `readFile(file, 'utf8')` gives the same lines). A read that fails throws BundleReadError.
 */
export async function* bundleFileLines(file: string): AsyncGenerator<BundleLine> {
  let pending: Buffer[] = [];
  try {
    for await (const chunk of createReadStream(file) as AsyncIterable<Buffer>) {
      let start = 0;
      for (let end = chunk.indexOf(NEWLINE); end !== -1; end = chunk.indexOf(NEWLINE, start)) {
        const piece = chunk.subarray(start, end);
        yield { text: (pending.length === 0 ? piece : Buffer.concat([...pending, piece])).toString('utf8'), newline: true };
        pending = [];
        start = end + 1;
      }
      if (start < chunk.length) pending.push(chunk.subarray(start));
    }
  } catch (error) {
    throw new BundleReadError(file, error);
  }
  if (pending.length > 0) yield { text: Buffer.concat(pending).toString('utf8'), newline: false };
}
