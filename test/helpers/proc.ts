/**
 * CPU time and resident memory of a process from /proc, for the benchmarks that measure daemons
 * (bench/vs-strongswan.ts, bench/soak.ts).
 */
import { readdirSync, readFileSync } from 'node:fs';

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

/**
 * CPU ms of each of the process's threads, summed by thread name (/proc/PID/task/TID/comm): the main
 * thread under the process's own name, node's worker threads, V8's helpers (`V8 DefaultWorke`, garbage
 * collection and compilation), libuv's pool (`libuv-worker`). Threads that ended are not counted.
 */
export function threadCpuMs(pid: number): Map<string, number> {
  const out = new Map<string, number>();
  let tids: string[];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const tid of tids) {
    try {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      const open = stat.indexOf('(');
      const close = stat.lastIndexOf(')');
      const name = tid === String(pid) ? 'main' : stat.slice(open + 1, close);
      const f = stat.slice(close + 2).split(' ');
      const ms = ((Number(f[11]) + Number(f[12])) * 1000) / CLK_TCK;
      out.set(name, (out.get(name) ?? 0) + ms);
    } catch {
      // the thread ended between the listing and the read
    }
  }
  return out;
}

/**
 * Resident memory of a process by kind of mapping (/proc/PID/smaps), in kB: `file` (the node binary,
 * shared libraries and other mapped files), `heap` (glibc's main arena, [heap]), `stack`, `anon` (the
 * rest: V8's heap pages, glibc's arenas of other threads, large allocations).
 */
export function rssByKind(pid: number): Record<'file' | 'heap' | 'stack' | 'anon', number> {
  const out = { file: 0, heap: 0, stack: 0, anon: 0 };
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/smaps`, 'utf8');
  } catch {
    return out;
  }
  let kind: keyof typeof out = 'anon';
  for (const line of text.split('\n')) {
    const head = /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ (\d+)\s*(.*)$/.exec(line);
    if (head) {
      const inode = head[1]!;
      const path = head[2]!;
      kind = path === '[heap]' ? 'heap' : path.startsWith('[stack') ? 'stack' : inode !== '0' && path.startsWith('/') ? 'file' : 'anon';
      continue;
    }
    const rss = /^Rss:\s+(\d+) kB/.exec(line);
    if (rss) out[kind] += Number(rss[1]);
  }
  return out;
}
