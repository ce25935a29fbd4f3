/** Converts an int8/numeric column (a string from pg) to a number, asserting it is a safe integer. */
export function toSafeInteger(value: string | number, column: string): number {
  const parsed = typeof value === 'number' ? value : Number(value);
  if (!Number.isSafeInteger(parsed)) throw new Error(`${column} holds ${String(value)}, outside the safe integer range`);
  return parsed;
}
