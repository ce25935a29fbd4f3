import { profileName, renderProfileSplit, splitProfile, type CpuProfile, type TimedPhase } from './profile-split.js';

const frame = (functionName: string, url: string, lineNumber = 0) => ({ functionName, url, lineNumber });

describe('profileName: where a sampled frame is counted', () => {
  it('names the npm package, scoped ones whole', () => {
    expect(profileName(frame('serialize', 'file:///work/main/node_modules/fastify/lib/reply.js', 1084), 'package')).toBe('fastify');
    expect(profileName(frame('apply', 'file:///work/main/node_modules/@nestjs/core/router/router-execution-context.js'), 'package')).toBe('@nestjs/core');
  });

  it('names our library, or the app folder, from the build', () => {
    expect(profileName(frame('holdTokens', 'file:///work/main/dist/libs/ledger/src/token-account/hold.decide.js', 76), 'package')).toBe('libs/ledger');
    expect(profileName(frame('x', 'file:///work/main/dist/apps/api/src/auth/access-control.js'), 'package')).toBe('apps/api/src/auth');
  });

  it("names Node's module and V8's own entries", () => {
    expect(profileName(frame('clearBuffer', 'node:internal/streams/writable', 742), 'package')).toBe('node:internal/streams');
    expect(profileName(frame('emit', 'node:events'), 'package')).toBe('node:events');
    expect(profileName(frame('(garbage collector)', ''), 'package')).toBe('(garbage collector)');
    expect(profileName(frame('writev', ''), 'package')).toBe('native writev');
  });

  it('adds the function and its line (from 1) at the function level, for code with a file', () => {
    expect(profileName(frame('holdTokens', 'file:///work/main/dist/libs/ledger/src/token-account/hold.decide.js', 76), 'function')).toBe('libs/ledger holdTokens:77');
    expect(profileName(frame('', 'node:events', 9), 'function')).toBe('node:events (anonymous):10');
    expect(profileName(frame('writev', ''), 'function')).toBe('native writev');
  });
});

describe('splitProfile: the samples of the timed phases, per spend and per pair', () => {
  // Node 1 is (root), 2 our ledger, 3 fastify, 4 idle. Samples every 100 µs from t = 1,000.
  const profile: CpuProfile = {
    nodes: [
      { id: 1, callFrame: frame('(root)', '') },
      { id: 2, callFrame: frame('useTokens', 'file:///x/dist/libs/ledger/src/a.js') },
      { id: 3, callFrame: frame('serialize', 'file:///x/node_modules/fastify/lib/reply.js') },
      { id: 4, callFrame: frame('(idle)', '') },
    ],
    startTime: 1_000,
    // Sampled at 1,100, 1,200, ..., 2,000.
    samples: [2, 2, 3, 4, 2, 3, 3, 4, 2, 2],
    timeDeltas: [100, 100, 100, 100, 100, 100, 100, 100, 100, 100],
  };
  // Spends: the samples at 1,100 to 1,400 (the one at 1,500 is the phase's end); pairs: 1,600 to 1,900.
  const phases: TimedPhase[] = [
    { kind: 'pairs', startedUs: 1_600, endedUs: 1_950, count: 2 },
    { kind: 'spends', startedUs: 1_100, endedUs: 1_500, count: 4 },
  ];

  it("gives each sample's time to the phase it falls in, per request of that kind, leaving out idle time and samples outside every phase", () => {
    const split = splitProfile(profile, phases, 'package');
    expect(split.spends).toBe(4);
    expect(split.pairs).toBe(2);
    // Spends: ledger 200 µs, fastify 100 µs over 4; pairs: fastify 200 µs, ledger 100 µs over 2. The last sample (2,000) is after the pairs; the one at 1,500 between the phases.
    expect(split.rows).toEqual([
      { name: 'fastify', perSpendUs: 25, perPairUs: 100 },
      { name: 'libs/ledger', perSpendUs: 50, perPairUs: 50 },
    ]);
  });

  it("has no sample's last time (no delta after it), and a phase of no requests gives 0", () => {
    const split = splitProfile(profile, [{ kind: 'spends', startedUs: 1_950, endedUs: 2_100, count: 1 }], 'package');
    expect(split.rows).toEqual([{ name: 'libs/ledger', perSpendUs: 0, perPairUs: 0 }]);
  });

  it('renders the totals and a row per name, most costly beyond two spends first, and cuts the middle of a long list', () => {
    const rendered = renderProfileSplit(splitProfile(profile, phases, 'function'), 1, 0);
    expect(rendered.split('\n')).toEqual([
      "The service's CPU by the profile (idle left out), over 4 timed spends and 2 timed pairs: 75 µs per spend, 150 µs per pair (1.00x two spends).",
      '',
      '| where | µs per spend | µs per pair | pair − two spends |',
      '|---|---:|---:|---:|',
      '| fastify serialize:1 | 25.0 | 100.0 | +50.0 |',
      '| … | | | |',
    ]);
    expect(renderProfileSplit(splitProfile(profile, phases, 'package'), 5, 5)).toContain('| libs/ledger | 50.0 | 50.0 | -50.0 |');
  });
});
