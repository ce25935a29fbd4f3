/** Where `DownLog` writes: Nest's `Logger` has both. */
export type DownLogger = { warn(message: string): unknown; log(message: string): unknown };

/**
 * The log of the health checks that fail. Probes ask every few seconds, so a check that stays down
 * would write a warning on every probe: it is written when the check goes down, again at most every
 * `repeatMs` while it stays down (or at once when the reason changes), and once when it is back up.
 */
export class DownLog {
  private readonly down = new Map<string, { readonly reason: string; readonly warnedAt: number }>();

  constructor(
    private readonly logger: DownLogger,
    private readonly now: () => number = Date.now,
    private readonly repeatMs = 60_000,
  ) {}

  /** A failed check: its reason (the driver's message) goes to the log, not to the unauthenticated answer. */
  failed(check: string, error: unknown): void {
    const reason = error instanceof Error ? error.message : String(error);
    const now = this.now();
    const earlier = this.down.get(check);
    if (earlier !== undefined && earlier.reason === reason && now - earlier.warnedAt < this.repeatMs) return;
    this.down.set(check, { reason, warnedAt: now });
    this.logger.warn(`the ${check} check is down: ${reason}${earlier === undefined ? '' : ' (still)'}`);
  }

  /** A check that answered: logged once if it had been down. */
  answered(check: string): void {
    if (!this.down.delete(check)) return;
    this.logger.log(`the ${check} check is up again`);
  }
}
