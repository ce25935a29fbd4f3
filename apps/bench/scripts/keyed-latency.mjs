// Latency of keyed (Idempotency-Key) and unkeyed spends on ONE account as its stream grows: a probe,
// not a benchmark of record (one client, medians of 20 sequential requests per point).
//
//   DATA_DIR=/tmp/probe PORT=3077 RATE_LIMIT_ENABLED=false METRICS_ENABLED=false npm start   # in one terminal
//   T=$(DATA_DIR=/tmp/probe npm run -s cli -- token --role service --sub "$(node -e 'console.log(crypto.randomUUID())')") \
//     BASE_URL=http://localhost:3077 node apps/bench/scripts/keyed-latency.mjs
//
// Until 5 December 2026 a keyed command searched its account's stream backwards for an earlier
// attempt through every event of the last five minutes, so its latency grew with the account's
// recent history; it now looks the attempt's first event up by id.
const token = process.env.T;
const base = process.env.BASE_URL ?? 'http://localhost:3000';
if (token === undefined) throw new Error('set T to a service token (see the header)');
const user = crypto.randomUUID();
const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
const post = (path, body, key) => fetch(base + path, { method: 'POST', headers: key === undefined ? headers : { ...headers, 'idempotency-key': key }, body: JSON.stringify(body) });

async function median(count, keyed) {
  const times = [];
  for (let index = 0; index < count; index += 1) {
    const started = performance.now();
    const response = await post(`/v1/accounts/${user}/usage`, { amount: 1 }, keyed ? crypto.randomUUID() : undefined);
    await response.text();
    if (response.status !== 201) throw new Error(`usage answered ${response.status}`);
    times.push(performance.now() - started);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(count / 2)].toFixed(1);
}

await post(`/v1/accounts/${user}/purchases`, { paymentId: crypto.randomUUID(), amount: 1_000_000 }).then((response) => response.text());
let events = 1;
for (const target of [0, 2_000, 6_000]) {
  while (events < target) {
    await Promise.all(Array.from({ length: 50 }, () => post(`/v1/accounts/${user}/usage`, { amount: 1 }).then((response) => response.text())));
    events += 50;
  }
  console.log(`after about ${events} events: keyed median ${await median(20, true)} ms, unkeyed ${await median(20, false)} ms`);
  events += 40;
}
