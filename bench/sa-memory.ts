/**
 * Memory per established IKE SA with one CHILD_SA in a responder engine (memory dataplane): the
 * growth of heapUsed, external memory (Buffer backing stores, KeyObjects' native side) and RSS
 * from an empty responder to one holding N SAs; with --snapshot, a heap snapshot of the full
 * responder summarised by constructor (count and self size per SA, the largest first), to see what
 * each SA is made of.
 *
 *   node_modules/.bin/node --expose-gc bench/sa-memory.ts [--sas 20000] [--snapshot] [--by-retainer] [--top 30]
 *   node_modules/.bin/node bench/sa-memory.ts --summarise FILE.heapsnapshot [--sas N] [--by-retainer]
 *
 * Baseline in the same run: the same numbers for an empty responder (so the result is the slope).
 */
import { parseArgs } from 'node:util';
import { writeHeapSnapshot } from 'node:v8';
import { readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { handshake, responder } from './engine.ts';

interface Snapshot {
  snapshot: { meta: { node_fields: string[]; node_types: [string[]]; edge_fields: string[]; edge_types: [string[]] } };
  nodes: number[];
  edges: number[];
  strings: string[];
}

/** Count and self size per constructor (object name, or node type for strings, code, arrays…). */
export function summariseSnapshot(file: string, byRetainer = false): Map<string, { count: number; bytes: number }> {
  const snap = JSON.parse(readFileSync(file, 'utf8')) as Snapshot;
  const fields = snap.snapshot.meta.node_fields;
  const types = snap.snapshot.meta.node_types[0];
  const stride = fields.length;
  const fType = fields.indexOf('type');
  const fName = fields.indexOf('name');
  const fSize = fields.indexOf('self_size');
  const out = new Map<string, { count: number; bytes: number }>();
  const nodes = snap.nodes;
  const label = (i: number): string => {
    const type = types[nodes[i + fType]!]!;
    const name = snap.strings[nodes[i + fName]!]!;
    return type === 'object' || type === 'native' || type === 'closure' ? `${type}:${name}` : `(${type})`;
  };
  // With byRetainer, each node is labelled with the first retainer that holds it by a named
  // property or element: "Buffer <- IkeSa.ni".
  const retainer = new Map<number, string>();
  if (byRetainer) {
    const ef = snap.snapshot.meta.edge_fields;
    const et = snap.snapshot.meta.edge_types[0];
    const eStride = ef.length;
    const fEType = ef.indexOf('type');
    const fEName = ef.indexOf('name_or_index');
    const fETo = ef.indexOf('to_node');
    const fCount = fields.indexOf('edge_count');
    let e = 0;
    for (let i = 0; i < nodes.length; i += stride) {
      const from = label(i);
      const count = nodes[i + fCount]!;
      for (let k = 0; k < count; k++, e += eStride) {
        const t = et[snap.edges[e + fEType]!]!;
        const to = snap.edges[e + fETo]!;
        if (retainer.has(to) || t === 'weak' || t === 'shortcut') continue;
        const name = t === 'element' || t === 'hidden' ? `[${t}]` : snap.strings[snap.edges[e + fEName]!]!;
        if (t === 'internal' && (name === 'map' || name === 'properties' || name === 'elements')) continue;
        retainer.set(to, `${from}.${name}`);
      }
    }
  }
  for (let i = 0; i < nodes.length; i += stride) {
    let key = label(i);
    if (byRetainer) key += ` <- ${retainer.get(i) ?? '?'}`;
    const e = out.get(key);
    const size = nodes[i + fSize]!;
    if (e) {
      e.count++;
      e.bytes += size;
    } else out.set(key, { count: 1, bytes: size });
  }
  return out;
}

function usage(): NodeJS.MemoryUsage {
  global.gc?.();
  global.gc?.();
  return process.memoryUsage();
}

export async function runSaMemory(o: { sas: number; snapshot?: boolean; byRetainer?: boolean; top?: number }): Promise<Record<string, number>> {
  const n = o.sas;
  // Warm-up: code compiled, pools allocated.
  const warm = responder(100);
  for (let i = 0; i < 50; i++) await handshake(warm, i);
  const r = responder(n + 10);
  // Both snapshots are summarised after the second one is taken, so the summary itself is in neither.
  const file0 = join(tmpdir(), `sa-memory-0-${process.pid}.heapsnapshot`);
  if (o.snapshot) writeHeapSnapshot(file0);
  const m0 = usage();
  for (let i = 0; i < n; i++) await handshake(r, i);
  if (r.engine.table.size !== n) throw new Error(`expected ${n} SAs, have ${r.engine.table.size}`);
  const m1 = usage();
  const per = (k: keyof NodeJS.MemoryUsage): number => Math.round((m1[k] - m0[k]) / n);
  const res: Record<string, number> = {
    sas: n,
    heap_used_per_sa: per('heapUsed'),
    external_per_sa: per('external'),
    array_buffers_per_sa: per('arrayBuffers'),
    heap_plus_external_per_sa: per('heapUsed') + per('external'),
    rss_per_sa: per('rss'),
    rss_mb: Math.round(m1.rss / 1048576),
  };
  if (o.snapshot) {
    const f = join(tmpdir(), `sa-memory-1-${process.pid}.heapsnapshot`);
    writeHeapSnapshot(f);
    const snap0 = summariseSnapshot(file0, o.byRetainer);
    const snap1 = summariseSnapshot(f, o.byRetainer);
    rmSync(f);
    rmSync(file0);
    const rows: { key: string; count: number; bytes: number }[] = [];
    for (const [key, v] of snap1) {
      const b = snap0.get(key) ?? { count: 0, bytes: 0 };
      const d = { key, count: (v.count - b.count) / n, bytes: (v.bytes - b.bytes) / n };
      if (d.bytes > 1) rows.push(d);
    }
    rows.sort((a, b) => b.bytes - a.bytes);
    console.log(`${'per SA: constructor'.padEnd(70)} ${'objects'.padStart(8)} ${'bytes'.padStart(8)}`);
    let total = 0;
    for (const row of rows) total += row.bytes;
    for (const row of rows.slice(0, o.top ?? 30)) {
      console.log(`${row.key.slice(0, 70).padEnd(70)} ${row.count.toFixed(2).padStart(8)} ${row.bytes.toFixed(0).padStart(8)}`);
    }
    console.log(`${'(all, snapshot self sizes)'.padEnd(70)} ${''.padStart(8)} ${total.toFixed(0).padStart(8)}`);
  }
  // keep the responder alive until measured
  if (r.engine.table.size !== n) throw new Error('responder lost SAs');
  return res;
}

if (import.meta.main) {
  const { values } = parseArgs({
    options: { sas: { type: 'string' }, snapshot: { type: 'boolean' }, 'by-retainer': { type: 'boolean' }, top: { type: 'string' }, summarise: { type: 'string' } },
  });
  if (values.summarise !== undefined) {
    // Another process's snapshot (e.g. the daemon's, from bench/vs-strongswan.ts --heap-snapshot):
    // totals per constructor, and per SA when --sas says how many it held.
    const per = values.sas ? Number(values.sas) : 1;
    const rows = [...summariseSnapshot(values.summarise, values['by-retainer'])].sort((a, b) => b[1].bytes - a[1].bytes);
    let total = 0;
    for (const [, v] of rows) total += v.bytes;
    for (const [k, v] of rows.slice(0, values.top ? Number(values.top) : 30)) {
      console.log(`${k.slice(0, 70).padEnd(70)} ${(v.count / per).toFixed(2).padStart(10)} ${(v.bytes / per).toFixed(0).padStart(10)}`);
    }
    console.log(`${'(all)'.padEnd(70)} ${''.padStart(10)} ${(total / per).toFixed(0).padStart(10)}`);
    process.exit(0);
  }
  const res = await runSaMemory({ sas: values.sas ? Number(values.sas) : 20_000, snapshot: values.snapshot, byRetainer: values['by-retainer'], top: values.top ? Number(values.top) : undefined });
  for (const [k, v] of Object.entries(res)) console.log(`${k.padEnd(40)} ${v}`);
}
