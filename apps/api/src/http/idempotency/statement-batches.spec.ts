import { StatementBatches } from './statement-batches.js';

type Item = { readonly key: string; readonly value: number };

/** A statement the spec finishes by hand: each call is recorded with its items, answered when the spec says. */
function manualStatement() {
  const calls: { readonly items: readonly Item[]; readonly answer: (answers: readonly string[]) => void; readonly fail: (error: Error) => void }[] = [];
  const run = (items: readonly Item[]) =>
    new Promise<readonly string[]>((resolve, reject) => {
      calls.push({ items, answer: resolve, fail: reject });
    });
  return { calls, run };
}

const item = (key: string, value = 0): Item => ({ key, value });
const answersFor = (items: readonly Item[]) => items.map((each) => `${each.key}:${each.value}`);
/** Answers the index-th statement with an answer per item, in order. */
function answerInTurn(calls: ReturnType<typeof manualStatement>['calls'], index: number): void {
  const call = calls[index];
  if (call === undefined) throw new Error(`no statement ${index}`);
  call.answer(answersFor(call.items));
}
const settled = () => new Promise((resolve) => setImmediate(resolve));

function batchesOf(maxInFlight: number, maxItems: number) {
  const statement = manualStatement();
  const batches = new StatementBatches<Item, string>({ maxInFlight, maxItems, keyOf: (each) => each.key }, statement.run);
  return { ...statement, batches };
}

describe('StatementBatches', () => {
  it('sends an item at once, alone, when no batch is running', async () => {
    const { calls, batches } = batchesOf(1, 10);
    const answer = batches.submit(item('a'));
    expect(calls.map((call) => call.items)).toEqual([[item('a')]]);
    calls[0]?.answer(['done']);
    await expect(answer).resolves.toBe('done');
  });

  it('gathers the items that arrive while a batch runs into the next one, and answers each with its own answer', async () => {
    const { calls, batches } = batchesOf(1, 10);
    const first = batches.submit(item('a'));
    const later = [batches.submit(item('b')), batches.submit(item('c')), batches.submit(item('d'))];
    expect(calls).toHaveLength(1);
    calls[0]?.answer(['a']);
    await settled();
    expect(calls.map((call) => call.items.map((each) => each.key))).toEqual([['a'], ['b', 'c', 'd']]);
    answerInTurn(calls, 1);
    await expect(first).resolves.toBe('a');
    await expect(Promise.all(later)).resolves.toEqual(['b:0', 'c:0', 'd:0']);
  });

  it('runs up to maxInFlight batches at once', async () => {
    const { calls, batches } = batchesOf(2, 10);
    void batches.submit(item('a'));
    void batches.submit(item('b'));
    void batches.submit(item('c'));
    expect(calls.map((call) => call.items.map((each) => each.key))).toEqual([['a'], ['b']]);
    calls[1]?.answer(['b']);
    await settled();
    expect(calls.map((call) => call.items.map((each) => each.key))).toEqual([['a'], ['b'], ['c']]);
  });

  it('puts at most maxItems in a batch, oldest first', async () => {
    const { calls, batches } = batchesOf(1, 2);
    const answers = ['a', 'b', 'c', 'd'].map((key) => batches.submit(item(key)));
    for (let index = 0; index < 3; index += 1) {
      answerInTurn(calls, index);
      await settled();
    }
    expect(calls.map((call) => call.items.map((each) => each.key))).toEqual([['a'], ['b', 'c'], ['d']]);
    await expect(Promise.all(answers)).resolves.toEqual(['a:0', 'b:0', 'c:0', 'd:0']);
  });

  it('never puts two items of one key in a batch: the later waits for the next, ahead of the items after it', async () => {
    const { calls, batches } = batchesOf(1, 10);
    const answers = [batches.submit(item('x', 0)), batches.submit(item('a', 1)), batches.submit(item('a', 2)), batches.submit(item('b', 3)), batches.submit(item('a', 4))];
    for (let index = 0; index < 4; index += 1) {
      answerInTurn(calls, index);
      await settled();
    }
    expect(calls.map((call) => call.items.map((each) => `${each.key}${each.value}`))).toEqual([['x0'], ['a1', 'b3'], ['a2'], ['a4']]);
    await expect(Promise.all(answers)).resolves.toEqual(['x:0', 'a:1', 'a:2', 'b:3', 'a:4']);
  });

  it('runs each item of a failed batch again alone, so only the item whose statement fails alone fails', async () => {
    const { calls, batches } = batchesOf(1, 10);
    const first = batches.submit(item('a'));
    const later = [batches.submit(item('b')), batches.submit(item('c')), batches.submit(item('d'))];
    calls[0]?.answer(['a']);
    await settled();
    expect(calls[1]?.items.map((each) => each.key)).toEqual(['b', 'c', 'd']);
    calls[1]?.fail(new Error('deadlock detected'));
    await settled();
    expect(calls.slice(2).map((call) => call.items.map((each) => each.key))).toEqual([['b'], ['c'], ['d']]);
    const own = new Error('value too long for type character varying(255)');
    calls[2]?.answer(['b']);
    calls[3]?.fail(own);
    calls[4]?.answer(['d']);
    await expect(first).resolves.toBe('a');
    await expect(later[0]).resolves.toBe('b');
    await expect(later[1]).rejects.toBe(own);
    await expect(later[2]).resolves.toBe('d');
    // The batch's slot is free again: the next item goes at once.
    const next = batches.submit(item('e'));
    expect(calls).toHaveLength(6);
    calls[5]?.answer(['e']);
    await expect(next).resolves.toBe('e');
  });

  it('fails an item alone with its own statement\'s error', async () => {
    const { calls, batches } = batchesOf(1, 10);
    const alone = batches.submit(item('a'));
    const failure = new Error('the connection was lost');
    calls[0]?.fail(failure);
    await expect(alone).rejects.toBe(failure);
    expect(calls).toHaveLength(1);
  });

  it("runs alone again the items of a batch answered with a different number of answers than items, rather than answer an item with another one's answer", async () => {
    const { calls, batches } = batchesOf(1, 10);
    const first = batches.submit(item('a'));
    const second = [batches.submit(item('b')), batches.submit(item('c'))];
    calls[0]?.answer(['a']);
    await settled();
    calls[1]?.answer(['b']);
    await settled();
    expect(calls.slice(2).map((call) => call.items.map((each) => each.key))).toEqual([['b'], ['c']]);
    calls[2]?.answer(['b alone']);
    calls[3]?.answer([]);
    await expect(first).resolves.toBe('a');
    await expect(second[0]).resolves.toBe('b alone');
    await expect(second[1]).rejects.toThrow('a batch of 1 statements was answered with 0 answers');
  });
});
