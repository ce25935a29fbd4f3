import { Client } from 'pg';

export const APPEND_CHANNEL = 'event_store_appended';

/** Longest another process's subscriber waits for a wake-up after an append commits (it also polls). */
const NOTIFY_COALESCE_MS = 5;

/**
 * LISTEN/NOTIFY wake-ups for `$all` subscribers. A notification only says "read again"; the events
 * table stays the truth, and a timed poll covers a lost connection or a commit that the snapshot
 * filter could not show yet. A generation counter closes the gap between a read and the next wait.
 */
export class AppendWakeups {
  private client: Client | undefined;
  private connecting: Promise<void> | undefined;
  private readonly waiters = new Set<() => void>();
  private closed = false;
  private publishing = false;
  private publishAgain = false;
  generation = 0;

  constructor(
    private readonly connectionString: string,
    private readonly onError: (error: Error) => void,
    /** Sends one NOTIFY on the channel, in a transaction of its own. */
    private readonly notify: () => Promise<unknown>,
  ) {}

  /**
   * An append of this process has committed: wake this process's subscribers now, and tell other
   * processes with at most one NOTIFY per few milliseconds, however many appends commit meanwhile. NOTIFY stays out of
   * the append's transaction: a notifying transaction holds a cluster-wide lock through its commit,
   * which would make appends commit one at a time.
   */
  published(): void {
    this.wakeAll();
    if (this.publishing) {
      this.publishAgain = true;
      return;
    }
    this.publishing = true;
    void this.publishLoop();
  }

  private async publishLoop(): Promise<void> {
    try {
      do {
        // Gathers the appends of a few milliseconds into one NOTIFY: each NOTIFY is a commit that
        // takes the cluster-wide notify lock, so one per append would slow every writer.
        await new Promise((resolve) => setTimeout(resolve, NOTIFY_COALESCE_MS));
        this.publishAgain = false;
        if (this.closed) return;
        await this.notify().catch((error: unknown) => this.onError(error instanceof Error ? error : new Error(String(error))));
      } while (this.publishAgain);
    } finally {
      this.publishing = false;
    }
  }

  /** Resolves after the next append notified since `generation`, after `timeoutMs`, or on abort. */
  async waitAfter(generation: number, timeoutMs: number, signal?: AbortSignal): Promise<void> {
    await this.ensureListening();
    if (this.generation !== generation || signal?.aborted === true || this.closed) return;
    await new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', done);
        this.waiters.delete(done);
        resolve();
      };
      const timer = setTimeout(done, timeoutMs);
      signal?.addEventListener('abort', done, { once: true });
      this.waiters.add(done);
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const wake of [...this.waiters]) wake();
    const client = this.client;
    this.client = undefined;
    await client?.end().catch(() => undefined);
  }

  private wakeAll(): void {
    this.generation += 1;
    for (const wake of [...this.waiters]) wake();
  }

  private async ensureListening(): Promise<void> {
    if (this.client !== undefined || this.closed) return;
    this.connecting ??= this.listen().finally(() => (this.connecting = undefined));
    await this.connecting;
  }

  private async listen(): Promise<void> {
    const client = new Client({ connectionString: this.connectionString });
    client.on('notification', () => this.wakeAll());
    client.on('error', (error) => {
      // Subscribers fall back to polling; the next wait reconnects.
      this.onError(error);
      if (this.client === client) this.client = undefined;
      void client.end().catch(() => undefined);
    });
    try {
      await client.connect();
      await client.query(`LISTEN ${APPEND_CHANNEL}`);
      if (this.closed) {
        await client.end();
        return;
      }
      this.client = client;
      // Anything appended while we were not listening is found by the read that follows.
      this.wakeAll();
    } catch (error) {
      this.onError(error instanceof Error ? error : new Error(String(error)));
      await client.end().catch(() => undefined);
    }
  }
}
