/**
 * `vpp-ikectl list-sas` at scale: N established IKE SAs (each with a CHILD_SA) in one engine,
 * listed through a real control socket, as JSON items streamed one per IKE SA.
 * Baseline in the same run: JSON.stringify of the same views into one string (no socket).
 *
 *   node bench/list-sas.ts [--sas 50000]
 */
import { parseArgs } from 'node:util';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { responder, handshake } from './engine.ts';
import { ControlServer, controlRequest } from '../src/control/server.ts';
import { listSasHandler } from '../src/control/commands.ts';
import { ikeView } from '../src/control/views.ts';

export async function runListSasBench(n = 50_000): Promise<Record<string, number>> {
  const r = responder(n + 10);
  for (let i = 0; i < n; i++) await handshake(r, i);
  const wall = (t: number): string | null => (t ? new Date(t).toISOString() : null);
  const sock = join(mkdtempSync(join(tmpdir(), 'viked-bench-')), 'control.sock');
  const server = new ControlServer(sock, new Map([['list-sas', listSasHandler(() => r.engine.table, wall)]]), pino({ level: 'silent' }));
  await server.start();
  let t0 = performance.now();
  const all = [...r.engine.table.values()].map((sa) => ikeView(sa, wall));
  const text = JSON.stringify(all);
  const baselineMs = performance.now() - t0;
  t0 = performance.now();
  let items = 0;
  let firstItemMs = 0;
  await controlRequest(sock, 'list-sas', {}, () => {
    if (items++ === 0) firstItemMs = performance.now() - t0;
  });
  const listMs = performance.now() - t0;
  await server.close();
  if (items !== n) throw new Error(`listed ${items} of ${n}`);
  return {
    sas: n,
    list_sas_ms: Math.round(listMs),
    first_item_ms: +firstItemMs.toFixed(1),
    baseline_stringify_ms: Math.round(baselineMs),
    ratio_vs_stringify: +(listMs / baselineMs).toFixed(2),
    json_bytes: text.length,
  };
}

if (import.meta.main) {
  const { values } = parseArgs({ options: { sas: { type: 'string' } } });
  const res = await runListSasBench(values.sas ? Number(values.sas) : undefined);
  for (const [k, v] of Object.entries(res)) console.log(`${k.padEnd(24)} ${v}`);
}
