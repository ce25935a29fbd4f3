import { parseProcessStat, readProcessTable, readProcessTimes, treeTicks, type ProcessTimes } from './process-cpu.js';

/** A /proc/<pid>/stat line with the given name, parent and times, the other fields as Linux writes them. */
function statLine(pid: number, name: string, parentPid: number, [utime, stime, cutime, cstime]: readonly [number, number, number, number]): string {
  return `${pid} (${name}) S ${parentPid} ${pid} ${pid} 0 -1 4194560 1203 0 0 0 ${utime} ${stime} ${cutime} ${cstime} 20 0 1 0 4242 12345678 2345 18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 0 17 1 0 0 0 0 0`;
}

describe('parseProcessStat', () => {
  it('reads the parent and sums user and system time, own and of ended children', () => {
    expect(parseProcessStat(statLine(4242, 'postgres', 17, [120, 30, 900, 100]))).toEqual({ pid: 4242, parentPid: 17, ownTicks: 150, endedChildrenTicks: 1000 });
  });

  it('counts fields from the last parenthesis, so a name with spaces and parentheses does not shift them', () => {
    expect(parseProcessStat(statLine(7, 'postgres: wal (writer) ) S 1', 3, [5, 6, 7, 8]))).toEqual({ pid: 7, parentPid: 3, ownTicks: 11, endedChildrenTicks: 15 });
  });

  it('refuses a line that is not a stat line', () => {
    expect(() => parseProcessStat('no parentheses here')).toThrow('not a /proc/<pid>/stat line');
    expect(() => parseProcessStat('12 (x) S')).toThrow('unreadable /proc/<pid>/stat line');
  });
});

describe('treeTicks', () => {
  const table: ProcessTimes[] = [
    { pid: 1, parentPid: 0, ownTicks: 1_000, endedChildrenTicks: 0 },
    { pid: 10, parentPid: 1, ownTicks: 5, endedChildrenTicks: 40 },
    { pid: 11, parentPid: 10, ownTicks: 100, endedChildrenTicks: 0 },
    { pid: 12, parentPid: 10, ownTicks: 200, endedChildrenTicks: 0 },
    { pid: 13, parentPid: 12, ownTicks: 3, endedChildrenTicks: 0 },
    { pid: 20, parentPid: 1, ownTicks: 7_000, endedChildrenTicks: 0 },
  ];

  it('sums the root and all its descendants, with their ended children, and nothing outside the tree', () => {
    expect(treeTicks(10, table)).toBe(5 + 40 + 100 + 200 + 3);
    expect(treeTicks(13, table)).toBe(3);
  });

  it('is 0 for a process that is not there', () => {
    expect(treeTicks(99, table)).toBe(0);
  });
});

describe('reading /proc', () => {
  it('finds this process, as a child of its parent, in the table and by pid', () => {
    const self = readProcessTimes(process.pid);
    expect(self).toMatchObject({ pid: process.pid, parentPid: process.ppid });
    expect(readProcessTable().map((entry) => entry.pid)).toContain(process.pid);
    expect(readProcessTimes(2 ** 31 - 1)).toBeUndefined();
  });
});
