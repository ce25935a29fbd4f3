/**
 * Every row of a query, page by page in key order: each page starts after the last row of the one
 * before, so rows that change or leave the set while a run pages through it neither stop the run nor
 * make it skip a row that stayed. A run ends at the first page shorter than `pageSize`.
 */
export async function* keysetPages<Row>(fetchPage: (after: Row | undefined, pageSize: number) => Promise<readonly Row[]>, pageSize: number): AsyncGenerator<readonly Row[]> {
  let after: Row | undefined;
  for (;;) {
    const page = await fetchPage(after, pageSize);
    if (page.length > 0) yield page;
    if (page.length < pageSize) return;
    after = page[page.length - 1];
  }
}
