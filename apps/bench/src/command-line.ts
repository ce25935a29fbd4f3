/** What every bench's `main` shares: its numeric options, and how it ends on a failure. */

/** `text` as a whole number from `min` to `max`, or an error naming the option `--<name>` and the range. */
export function wholeNumber(name: string, text: string, min: number, max: number): number {
  const value = Number(text);
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(value) || value < min || value > max) throw new Error(`--${name} must be a whole number from ${min} to ${max}, not ${text}`);
  return value;
}

/** Runs a bench's `main`; a failure prints its stack and exits with 1. */
export function runMain(main: () => Promise<void>): void {
  main().catch((error: unknown) => {
    process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exit(1);
  });
}
