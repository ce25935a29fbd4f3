import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

/**
 * CPU time of processes from Linux's /proc/<pid>/stat, in clock ticks: what a process used itself
 * (utime + stime, all its threads) and what its children that ended and were waited for used
 * (cutime + cstime). A PostgreSQL backend that exits moves its time into the postmaster's children
 * fields, so a tree's total counts it either way.
 */
export type ProcessTimes = { readonly pid: number; readonly parentPid: number; readonly ownTicks: number; readonly endedChildrenTicks: number };

/**
 * Parses one /proc/<pid>/stat line. The command name (field 2) is in parentheses and may hold spaces
 * and parentheses itself, so the fields are counted from the last ')'.
 */
export function parseProcessStat(line: string): ProcessTimes {
  const open = line.indexOf('(');
  const close = line.lastIndexOf(')');
  if (open < 0 || close < open) throw new Error(`not a /proc/<pid>/stat line: ${line.slice(0, 80)}`);
  // After the name: state (field 3), ppid (4), ... utime (14), stime (15), cutime (16), cstime (17).
  const fields = line.slice(close + 2).split(' ');
  const field = (number: number) => Number(fields[number - 3]);
  const times = { pid: Number(line.slice(0, open).trim()), parentPid: field(4), ownTicks: field(14) + field(15), endedChildrenTicks: field(16) + field(17) };
  if (!Object.values(times).every(Number.isSafeInteger)) throw new Error(`unreadable /proc/<pid>/stat line: ${line.slice(0, 80)}`);
  return times;
}

/**
 * Ticks used by `rootPid` and every live descendant of it, including children of theirs that have
 * ended; 0 when `rootPid` is not among `processes`.
 */
export function treeTicks(rootPid: number, processes: readonly ProcessTimes[]): number {
  const childrenOf = new Map<number, ProcessTimes[]>();
  for (const process of processes) childrenOf.set(process.parentPid, [...(childrenOf.get(process.parentPid) ?? []), process]);
  const root = processes.find((process) => process.pid === rootPid);
  if (root === undefined) return 0;
  let ticks = 0;
  const pending = [root];
  for (let next = pending.pop(); next !== undefined; next = pending.pop()) {
    ticks += next.ownTicks + next.endedChildrenTicks;
    pending.push(...(childrenOf.get(next.pid) ?? []));
  }
  return ticks;
}

/** Every process visible in /proc now; those that end while being read are left out. */
export function readProcessTable(): ProcessTimes[] {
  const table: ProcessTimes[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const line = readStat(Number(entry));
    if (line !== undefined) table.push(parseProcessStat(line));
  }
  return table;
}

/** The times of one process, or undefined once it has ended. */
export function readProcessTimes(pid: number): ProcessTimes | undefined {
  const line = readStat(pid);
  return line === undefined ? undefined : parseProcessStat(line);
}

function readStat(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
}

/** Clock ticks per second (USER_HZ), from `getconf CLK_TCK`; 100 on every common Linux. */
export function clockTicksPerSecond(): number {
  const ticks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
  if (!Number.isSafeInteger(ticks) || ticks <= 0) throw new Error(`getconf CLK_TCK gave ${ticks}`);
  return ticks;
}
