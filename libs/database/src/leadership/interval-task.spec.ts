import { intervalTask } from './interval-task.js';

const INTERVAL_MS = 20;

function pause(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Waits until `done()` holds, checking every interval, for up to 10 s: a run is due every interval,
 * but a loaded machine (CI on two shared cores) can hold the event loop for several intervals, so a
 * fixed pause is no measure of how many runs took place.
 */
async function until(done: () => boolean): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!done()) {
    if (Date.now() > deadline) throw new Error('the condition did not hold within 10 s');
    await pause(INTERVAL_MS);
  }
}

describe('intervalTask', () => {
  it('runs nothing before it leads, then runs every interval while it leads', async () => {
    let runs = 0;
    const task = intervalTask({ intervalMs: INTERVAL_MS, run: () => Promise.resolve(void (runs += 1)), onError: () => undefined });
    await pause(5 * INTERVAL_MS);
    expect(runs).toBe(0);
    await task.lead();
    await until(() => runs >= 3);
    await task.standDown();
    expect(runs).toBeGreaterThanOrEqual(3);
  });

  it('runs at once on taking the lead with runOnLead, then every interval; not again when told to lead while leading', async () => {
    let runs = 0;
    const task = intervalTask({ intervalMs: 60_000, run: () => Promise.resolve(void (runs += 1)), onError: () => undefined, runOnLead: true });
    await task.lead();
    await until(() => runs >= 1);
    await task.lead();
    await pause(5 * INTERVAL_MS);
    expect(runs).toBe(1);
    await task.standDown();
    // Leading again within an interval of its last run (a leadership lost, then won back): no run at once.
    await task.lead();
    await pause(5 * INTERVAL_MS);
    await task.standDown();
    expect(runs).toBe(1);
  });

  it('with runOnLead, runs at once on a lead won back once an interval has passed since its last run', async () => {
    let runs = 0;
    const intervalMs = 10 * INTERVAL_MS;
    const task = intervalTask({ intervalMs, run: () => Promise.resolve(void (runs += 1)), onError: () => undefined, runOnLead: true });
    await task.lead();
    await until(() => runs >= 1);
    await task.standDown();
    await pause(intervalMs + INTERVAL_MS);
    await task.lead();
    await until(() => runs >= 2);
    await task.standDown();
    expect(runs).toBe(2);
  });

  it('waits one interval before its first run without runOnLead', async () => {
    let runs = 0;
    const task = intervalTask({ intervalMs: 60_000, run: () => Promise.resolve(void (runs += 1)), onError: () => undefined });
    await task.lead();
    await pause(5 * INTERVAL_MS);
    await task.standDown();
    expect(runs).toBe(0);
  });

  it('never overlaps a slow run, and standing down waits for the run in flight and starts no other', async () => {
    let running = 0;
    let overlapped = false;
    let finished = 0;
    const task = intervalTask({
      intervalMs: INTERVAL_MS,
      run: async () => {
        running += 1;
        overlapped ||= running > 1;
        await pause(5 * INTERVAL_MS);
        running -= 1;
        finished += 1;
      },
      onError: () => undefined,
    });
    await task.lead();
    await pause(2 * INTERVAL_MS);
    expect(running).toBe(1);
    await task.standDown();
    expect(running).toBe(0);
    expect(finished).toBe(1);
    await pause(5 * INTERVAL_MS);
    expect(finished).toBe(1);
    expect(overlapped).toBe(false);
  });

  it('reports a failed run and runs again at the next tick', async () => {
    const errors: unknown[] = [];
    let runs = 0;
    const task = intervalTask({
      intervalMs: INTERVAL_MS,
      run: () => {
        runs += 1;
        return runs === 1 ? Promise.reject(new Error('provider down')) : Promise.resolve();
      },
      onError: (error) => errors.push(error),
    });
    await task.lead();
    await until(() => runs >= 2);
    await task.standDown();
    expect(errors).toEqual([new Error('provider down')]);
    expect(runs).toBeGreaterThanOrEqual(2);
  });

  it('tells the observer of every finished run, succeeded or failed, with its duration', async () => {
    const reported: { outcome: string; durationMs: number }[] = [];
    let runs = 0;
    const task = intervalTask({
      intervalMs: INTERVAL_MS,
      run: async () => {
        runs += 1;
        await pause(INTERVAL_MS / 2);
        if (runs === 1) throw new Error('provider down');
      },
      onError: () => undefined,
      onRun: (outcome, durationMs) => reported.push({ outcome, durationMs }),
    });
    await task.lead();
    await until(() => reported.length >= 2);
    await task.standDown();
    expect(reported.length).toBe(runs);
    expect(reported[0]?.outcome).toBe('failed');
    expect(reported.slice(1).map((run) => run.outcome)).toEqual(Array.from({ length: runs - 1 }, () => 'succeeded'));
    for (const run of reported) expect(run.durationMs).toBeGreaterThanOrEqual(INTERVAL_MS / 2 - 1);
  });

  it('leads again after standing down', async () => {
    let runs = 0;
    const task = intervalTask({ intervalMs: INTERVAL_MS, run: () => Promise.resolve(void (runs += 1)), onError: () => undefined });
    await task.lead();
    await task.standDown();
    const before = runs;
    await task.lead();
    await until(() => runs > before);
    await task.standDown();
    expect(runs).toBeGreaterThan(before);
  });
});
