/**
 * Summarises a V8 CPU profile (`node --cpu-prof`, e.g. from bench/vs-strongswan.ts --cpu-prof DIR):
 * self time by function, self time by source file, and inclusive time by function (a function's own
 * time plus everything it called, counted once per sample even when it recurses).
 *
 *   node_modules/.bin/node bench/cpuprofile-top.ts FILE.cpuprofile [--top 25] [--match TEXT]
 *
 * `--match` keeps only functions whose name or file contains TEXT in the inclusive list.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

function shortUrl(url: string): string {
  if (url === '') return '';
  const i = url.indexOf('/src/');
  if (i >= 0) return url.slice(i + 1);
  const j = url.indexOf('node_modules/');
  if (j >= 0) return url.slice(j);
  return url.replace(/^file:\/\//, '');
}

function label(f: CallFrame): string {
  const name = f.functionName === '' ? '(anonymous)' : f.functionName;
  const url = shortUrl(f.url);
  return url === '' ? name : `${name} ${url}:${f.lineNumber + 1}`;
}

export interface ProfileSummary {
  totalMs: number;
  self: Map<string, number>;
  selfByFile: Map<string, number>;
  inclusive: Map<string, number>;
}

export function summarise(p: Profile): ProfileSummary {
  const byId = new Map<number, ProfileNode>();
  const parent = new Map<number, number>();
  for (const n of p.nodes) {
    byId.set(n.id, n);
    for (const c of n.children ?? []) parent.set(c, n.id);
  }
  const selfUs = new Map<number, number>();
  // timeDeltas[i] is the time before sample i; the time of a sample is the delta that follows it
  for (let i = 0; i < p.samples.length; i++) {
    const dt = p.timeDeltas[i + 1] ?? 0;
    selfUs.set(p.samples[i]!, (selfUs.get(p.samples[i]!) ?? 0) + dt);
  }
  const self = new Map<string, number>();
  const selfByFile = new Map<string, number>();
  const inclusive = new Map<string, number>();
  let total = 0;
  for (const [id, us] of selfUs) {
    const node = byId.get(id)!;
    const l = label(node.callFrame);
    self.set(l, (self.get(l) ?? 0) + us / 1000);
    const file = shortUrl(node.callFrame.url) || l;
    selfByFile.set(file, (selfByFile.get(file) ?? 0) + us / 1000);
    total += us;
    const seen = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const cl = label(byId.get(cur)!.callFrame);
      if (seen.has(cl)) continue;
      seen.add(cl);
      inclusive.set(cl, (inclusive.get(cl) ?? 0) + us / 1000);
    }
  }
  return { totalMs: total / 1000, self, selfByFile, inclusive };
}

function top(m: Map<string, number>, n: number, total: number, filter?: (k: string) => boolean): string {
  return [...m]
    .filter(([k]) => (filter ? filter(k) : true))
    .sort((a, b) => b[1] - a[1])
    .slice(0, n)
    .map(([k, v]) => `${v.toFixed(0).padStart(8)} ms ${((100 * v) / total).toFixed(1).padStart(5)}%  ${k}`)
    .join('\n');
}

if (import.meta.main) {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: { top: { type: 'string', default: '25' }, match: { type: 'string' } },
  });
  const file = positionals[0];
  if (file === undefined) {
    console.error('usage: node bench/cpuprofile-top.ts FILE.cpuprofile [--top N] [--match TEXT]');
    process.exit(2);
  }
  const n = Number(values.top);
  const s = summarise(JSON.parse(readFileSync(file, 'utf8')) as Profile);
  const busy = s.totalMs - (s.self.get('(idle)') ?? 0);
  console.log(`profile ${file}: ${s.totalMs.toFixed(0)} ms sampled, ${busy.toFixed(0)} ms busy (${((100 * busy) / s.totalMs).toFixed(1)}%)`);
  console.log(`\nself time by function (% of all samples):\n${top(s.self, n, s.totalMs)}`);
  console.log(`\nself time by file:\n${top(s.selfByFile, n, s.totalMs)}`);
  const m = values.match;
  console.log(`\ninclusive time by function${m ? ` matching '${m}'` : ''}:\n${top(s.inclusive, n, s.totalMs, m ? (k) => k.includes(m) : undefined)}`);
}
