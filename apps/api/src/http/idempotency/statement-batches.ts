/**
 * Many callers' statements of one kind, sent as one: while `maxInFlight` batches are running, the
 * items that arrive wait and go together in the next batch (at most `maxItems`). So a statement of a
 * few microseconds' work is not also one round trip, one transaction and one commit for each
 * request; under load the batches grow, and idle, an item goes at once, alone.
 *
 * Two items with the same `keyOf` never share a batch (a statement such as `INSERT ... ON CONFLICT DO
 * UPDATE` may not touch one row twice): the later waits for the next, keeping its place. `run`
 * answers the items in their order. If it fails for a batch, each of the batch's items is run again
 * alone (as the event store's group commit retries a failed batch), so an error that is one item's
 * own fails that item only; an error of every statement (the database away) fails each.
 *
 * Written here rather than taken from a library: DataLoader, the usual batcher, gathers what one
 * tick of the event loop asks for, and requests arrive over many ticks; what forms a batch here is a
 * statement in flight, as in the event store's group commit.
 */
export class StatementBatches<Item, Answer> {
  private readonly waiting: { readonly item: Item; readonly resolve: (answer: Answer) => void; readonly reject: (error: unknown) => void }[] = [];
  private inFlight = 0;

  constructor(
    private readonly options: { readonly maxInFlight: number; readonly maxItems: number; readonly keyOf: (item: Item) => string },
    private readonly run: (items: readonly Item[]) => Promise<readonly Answer[]>,
  ) {}

  submit(item: Item): Promise<Answer> {
    return new Promise<Answer>((resolve, reject) => {
      this.waiting.push({ item, resolve, reject });
      this.startBatches();
    });
  }

  private startBatches(): void {
    while (this.inFlight < this.options.maxInFlight && this.waiting.length > 0) {
      const batch = this.takeBatch();
      this.inFlight += 1;
      // runBatch never rejects: a failed statement fails its items.
      void this.runBatch(batch).finally(() => {
        this.inFlight -= 1;
        this.startBatches();
      });
    }
  }

  /** The waiting items, oldest first, up to `maxItems`, leaving in place any whose key the batch already has. */
  private takeBatch(): typeof this.waiting {
    const batch: typeof this.waiting = [];
    const keys = new Set<string>();
    let index = 0;
    while (index < this.waiting.length && batch.length < this.options.maxItems) {
      const entry = this.waiting[index] as (typeof this.waiting)[number];
      const key = this.options.keyOf(entry.item);
      if (keys.has(key)) {
        index += 1;
        continue;
      }
      keys.add(key);
      batch.push(entry);
      this.waiting.splice(index, 1);
    }
    return batch;
  }

  /** Runs a batch; if it fails, each of its items again alone, so one item's failure (or a deadlock) fails that item only. */
  private async runBatch(batch: typeof this.waiting): Promise<void> {
    try {
      this.answer(batch, await this.run(batch.map((entry) => entry.item)));
    } catch (error) {
      if (batch.length === 1) {
        batch[0]?.reject(error);
        return;
      }
      await Promise.all(
        batch.map(async (entry) => {
          try {
            this.answer([entry], await this.run([entry.item]));
          } catch (aloneError) {
            entry.reject(aloneError);
          }
        }),
      );
    }
  }

  private answer(batch: typeof this.waiting, answers: readonly Answer[]): void {
    if (answers.length !== batch.length) throw new Error(`a batch of ${batch.length} statements was answered with ${answers.length} answers`);
    batch.forEach((entry, index) => entry.resolve(answers[index] as Answer));
  }
}
