/**
 * The service's CPU profile (`node --cpu-prof`, which bench:http's `--cpu-prof` asks for) cut along
 * the bench's timed phases, so a spend and a hold + settle pair can be compared where their CPU goes:
 * by package (or our library), or by function. V8 stamps samples with the monotonic clock that
 * `process.hrtime` reads in any process of the machine, so the bench's phase times select the
 * service's samples directly.
 */

/** The parts of a `.cpuprofile` (V8's `Profiler.Profile`) read here. */
export type CpuProfile = {
  readonly nodes: readonly { readonly id: number; readonly callFrame: CallFrame }[];
  /** Monotonic µs. */
  readonly startTime: number;
  /** The node sampled, per sample. */
  readonly samples: readonly number[];
  /** µs from the previous sample (the first: from startTime). */
  readonly timeDeltas: readonly number[];
};

export type CallFrame = { readonly functionName: string; readonly url: string; readonly lineNumber: number };

/** A timed phase of the bench: its kind, its monotonic µs bounds, and how many requests (spends) or pairs it timed. */
export type TimedPhase = { readonly kind: 'spends' | 'pairs'; readonly startedUs: number; readonly endedUs: number; readonly count: number };

export type ProfileRow = { readonly name: string; readonly perSpendUs: number; readonly perPairUs: number };

/** µs of the service's CPU per spend and per pair, by name (see `profileName`), with the idle time left out. */
export type ProfileSplit = { readonly rows: readonly ProfileRow[]; readonly spends: number; readonly pairs: number };

/** The monotonic clock in µs, as V8 stamps profile samples. */
export function monotonicUs(): number {
  return Number(process.hrtime.bigint() / 1_000n);
}

/**
 * What a sampled frame is counted under: for `package`, the npm package, our library or app folder
 * (`libs/ledger`, `apps/api/src/http`), Node's module (`node:internal/streams`), or V8's own entries
 * (`(garbage collector)`, `(program)`; natives as `native <name>`); for `function`, that and the
 * function's name and line.
 */
export function profileName(frame: CallFrame, level: 'package' | 'function'): string {
  const where = profilePackage(frame);
  return level === 'package' || frame.url === '' ? where : `${where} ${frame.functionName === '' ? '(anonymous)' : frame.functionName}:${frame.lineNumber + 1}`;
}

function profilePackage({ url, functionName }: CallFrame): string {
  if (url === '') return functionName.startsWith('(') ? functionName : `native ${functionName.slice(0, 40)}`;
  const dependency = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (dependency?.[1] !== undefined) return dependency[1];
  if (url.startsWith('node:')) return url.split('/').slice(0, 2).join('/');
  const ours = /\/dist\/(libs\/[^/]+|apps\/[^/]+\/src\/[^/]+)/.exec(url);
  return ours?.[1] ?? url;
}

/**
 * Each sample's time (up to the next sample) goes to the phase it falls in, under its frame's name;
 * samples outside every phase (start-up, seeding, warm-ups, settling between phases) and idle ones
 * are left out. Per spend and per pair: over every phase of that kind.
 */
export function splitProfile(profile: CpuProfile, phases: readonly TimedPhase[], level: 'package' | 'function'): ProfileSplit {
  const frames = new Map(profile.nodes.map((node) => [node.id, node.callFrame]));
  const ordered = [...phases].sort((left, right) => left.startedUs - right.startedUs);
  const byName = new Map<string, { spends: number; pairs: number }>();
  let at = profile.startTime;
  let phase = 0;
  for (let index = 0; index < profile.samples.length; index += 1) {
    at += profile.timeDeltas[index] ?? 0;
    while (phase < ordered.length && (ordered[phase] as TimedPhase).endedUs <= at) phase += 1;
    const current = ordered[phase];
    if (current === undefined || at < current.startedUs) continue;
    const frame = frames.get(profile.samples[index] as number);
    if (frame === undefined || frame.functionName === '(idle)') continue;
    const name = profileName(frame, level);
    const totals = byName.get(name) ?? { spends: 0, pairs: 0 };
    totals[current.kind] += profile.timeDeltas[index + 1] ?? 0;
    byName.set(name, totals);
  }
  const spends = phases.filter((each) => each.kind === 'spends').reduce((sum, each) => sum + each.count, 0);
  const pairs = phases.filter((each) => each.kind === 'pairs').reduce((sum, each) => sum + each.count, 0);
  const rows = [...byName].map(([name, totals]) => ({ name, perSpendUs: spends === 0 ? 0 : totals.spends / spends, perPairUs: pairs === 0 ? 0 : totals.pairs / pairs }));
  rows.sort((left, right) => extra(right) - extra(left) || left.name.localeCompare(right.name));
  return { rows, spends, pairs };
}

/** What a pair costs beyond two spends, in µs: the bar is that this sums to at most 0. */
function extra(row: ProfileRow): number {
  return row.perPairUs - 2 * row.perSpendUs;
}

/** A table of the `top` names a pair costs most beyond two spends, and the `bottom` it costs least, with the totals. */
export function renderProfileSplit(split: ProfileSplit, top: number, bottom: number): string {
  const total = split.rows.reduce((sum, row) => ({ perSpend: sum.perSpend + row.perSpendUs, perPair: sum.perPair + row.perPairUs }), { perSpend: 0, perPair: 0 });
  const line = (row: ProfileRow) => `| ${row.name} | ${row.perSpendUs.toFixed(1)} | ${row.perPairUs.toFixed(1)} | ${extra(row) >= 0 ? '+' : ''}${extra(row).toFixed(1)} |`;
  const shown = split.rows.length <= top + bottom ? split.rows : [...split.rows.slice(0, top), undefined, ...split.rows.slice(split.rows.length - bottom)];
  return [
    `The service's CPU by the profile (idle left out), over ${split.spends} timed spends and ${split.pairs} timed pairs: ${total.perSpend.toFixed(0)} µs per spend, ${total.perPair.toFixed(0)} µs per pair (${(total.perPair / (2 * total.perSpend)).toFixed(2)}x two spends).`,
    '',
    '| where | µs per spend | µs per pair | pair − two spends |',
    '|---|---:|---:|---:|',
    ...shown.map((row) => (row === undefined ? '| … | | | |' : line(row))),
  ].join('\n');
}
