import type { LeaderTask } from './advisory-lock-leadership.js';

export type IntervalTaskOptions = {
  readonly intervalMs: number;
  /** One run of the work; its failure goes to `onError` and the next tick runs it again. */
  readonly run: () => Promise<void>;
  readonly onError: (error: unknown) => void;
  /** Told of every finished run: whether it succeeded, and how long it took (metrics). */
  readonly onRun?: (outcome: JobRunOutcome, durationMs: number) => void;
  /**
   * Run once as soon as this process leads, not one interval later: what fell due while no process
   * led is done at once, and a leader replaced more often than the interval (a rolling deploy, a
   * restart) still runs it; unless this process started a run less than an interval ago (it lost its
   * lock and won it back). Every job of the service passes it (ADR 0003, addendum).
   */
  readonly runOnLead?: boolean;
};

export type JobRunOutcome = 'succeeded' | 'failed';

/**
 * Work that runs every `intervalMs` while this process leads (the first run one interval after it
 * wins, or at once with `runOnLead`). A run still going at the next tick is not overlapped; standing down clears the interval and
 * waits for the run in flight, so no run of it outlives the leadership.
 */
export function intervalTask({ intervalMs, run, onError, onRun, runOnLead = false }: IntervalTaskOptions): LeaderTask {
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;
  /** When this process last started a run: a lead won back sooner than an interval after it does not run at once again. */
  let lastStarted: number | undefined;
  const tick = () => {
    if (running !== undefined) return;
    const started = performance.now();
    lastStarted = started;
    running = run()
      .then(
        () => onRun?.('succeeded', performance.now() - started),
        (error: unknown) => {
          onRun?.('failed', performance.now() - started);
          onError(error);
        },
      )
      .finally(() => {
        running = undefined;
      });
  };
  return {
    lead() {
      if (timer !== undefined) return;
      timer = setInterval(tick, intervalMs);
      // A session lost and won back (a database blip) within an interval of this process's last run
      // waits for the next tick, rather than run the whole job again at each blip.
      if (runOnLead && (lastStarted === undefined || performance.now() - lastStarted >= intervalMs)) tick();
    },
    async standDown() {
      clearInterval(timer);
      timer = undefined;
      await running;
    },
  };
}
