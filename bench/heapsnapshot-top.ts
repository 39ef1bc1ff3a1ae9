/**
 * Summarises a V8 heap snapshot (e.g. from bench/vs-strongswan.ts --heap-snapshot DIR): objects and
 * their own (shallow) size grouped by constructor or kind, largest first, with the size per SA when
 * `--per N` says how many IKE SAs the process held.
 *
 *   node_modules/.bin/node bench/heapsnapshot-top.ts FILE.heapsnapshot [--top 40] [--per 10000]
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

interface Snapshot {
  snapshot: { meta: { node_fields: string[]; node_types: (string[] | string)[] } };
  nodes: number[];
  strings: string[];
}

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { top: { type: 'string', default: '40' }, per: { type: 'string' } },
});
const file = positionals[0];
if (!file) {
  console.error('usage: heapsnapshot-top.ts FILE.heapsnapshot [--top 40] [--per N]');
  process.exit(2);
}
const snap = JSON.parse(readFileSync(file, 'utf8')) as Snapshot;
const fields = snap.snapshot.meta.node_fields;
const types = snap.snapshot.meta.node_types[0] as string[];
const width = fields.length;
const iType = fields.indexOf('type');
const iName = fields.indexOf('name');
const iSize = fields.indexOf('self_size');

const groups = new Map<string, { count: number; size: number }>();
let total = 0;
for (let i = 0; i < snap.nodes.length; i += width) {
  const type = types[snap.nodes[i + iType]!]!;
  const name = snap.strings[snap.nodes[i + iName]!]!;
  const size = snap.nodes[i + iSize]!;
  total += size;
  // objects by constructor; strings, arrays, code and the rest by kind
  const key = type === 'object' || type === 'native' ? `${type}: ${name}` : type === 'closure' ? 'closure' : `(${type})`;
  const g = groups.get(key) ?? { count: 0, size: 0 };
  g.count++;
  g.size += size;
  groups.set(key, g);
}
const per = values.per !== undefined ? Number(values.per) : undefined;
const rows = [...groups].sort((a, b) => b[1].size - a[1].size).slice(0, Number(values.top));
console.log(`${file}: ${(total / 1048576).toFixed(1)} MB in ${(snap.nodes.length / width).toLocaleString('en')} objects${per ? `, ${(total / per).toFixed(0)} B per SA` : ''}`);
for (const [k, g] of rows) {
  const perSa = per ? `  ${(g.size / per).toFixed(0).padStart(6)} B/SA  ${(g.count / per).toFixed(2).padStart(6)}/SA` : '';
  console.log(`${(g.size / 1048576).toFixed(2).padStart(8)} MB ${g.count.toString().padStart(9)}${perSa}  ${k}`);
}
