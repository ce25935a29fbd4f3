export default async function globalTeardown() {
  await globalThis.tokenLedgerTestServer?.stop();
}
