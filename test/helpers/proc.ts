/**
 * CPU time and resident memory of a process from /proc, for the benchmarks that measure daemons
 * (bench/vs-strongswan.ts, bench/soak.ts).
 */
import { readFileSync } from 'node:fs';

const CLK_TCK = 100;

export interface ProcStat {
  cpuMs: number;
  userMs: number;
  sysMs: number;
  rssKb: number;
}

/** CPU ms of the process's main thread only (its event loop, for vpp-iked; worker threads excluded). */
export function mainThreadCpuMs(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/task/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(f[11]) + Number(f[12])) * 1000) / CLK_TCK;
  } catch {
    return NaN;
  }
}

export function procStat(pid: number): ProcStat {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // the command name (field 2) may hold spaces: fields after the closing parenthesis
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const user = (Number(f[11]) * 1000) / CLK_TCK; // utime (field 14)
  const sys = (Number(f[12]) * 1000) / CLK_TCK; // stime (field 15)
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const rss = /VmRSS:\s+(\d+)/.exec(status);
  return { cpuMs: user + sys, userMs: user, sysMs: sys, rssKb: rss ? Number(rss[1]) : 0 };
}
