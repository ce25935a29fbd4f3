/**
 * What the bench must undo however it ends: children to stop, directories to remove. Steps run last
 * in, first out (the CRUD service before the service that owns PostgreSQL, the service before its
 * data directory), each once; a step that fails is reported and the rest still run.
 */
export class Cleanup {
  private readonly steps: { readonly name: string; readonly run: () => Promise<void> }[] = [];
  private running: Promise<void> | undefined;

  add(name: string, run: () => Promise<void>): void {
    this.steps.push({ name, run });
  }

  /** Runs every step added so far; a second call waits for the first. */
  runAll(): Promise<void> {
    this.running ??= (async () => {
      for (let step = this.steps.pop(); step !== undefined; step = this.steps.pop()) {
        try {
          await step.run();
        } catch (error) {
          process.stderr.write(`cleanup: ${step.name} failed: ${error instanceof Error ? error.message : String(error)}\n`);
        }
      }
    })();
    return this.running;
  }
}

/**
 * On SIGINT or SIGTERM, or when `deadlineMs` has passed, cleans up and exits (130, 143, or 1 for
 * the deadline), so the bench stops by itself and leaves nothing running. Returns a function that
 * removes the handlers once the bench has finished.
 */
export function exitCleanlyOnSignalsAndDeadline(cleanup: Cleanup, deadlineMs: number): () => void {
  const stop = (reason: string, exitCode: number) => {
    process.stderr.write(`\n${reason}: stopping the children and removing the temporary files...\n`);
    void cleanup.runAll().finally(() => process.exit(exitCode));
  };
  const onInterrupt = () => stop('interrupted (SIGINT)', 130);
  const onTerminate = () => stop('terminated (SIGTERM)', 143);
  process.once('SIGINT', onInterrupt);
  process.once('SIGTERM', onTerminate);
  const deadline = setTimeout(() => stop(`the bench ran past its limit of ${Math.round(deadlineMs / 60_000)} minutes`, 1), deadlineMs);
  deadline.unref();
  return () => {
    clearTimeout(deadline);
    process.off('SIGINT', onInterrupt);
    process.off('SIGTERM', onTerminate);
  };
}
