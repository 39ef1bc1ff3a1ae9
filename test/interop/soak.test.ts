/**
 * The rekey soak (bench/soak.ts) in its short form: 50 tunnels from strongSwan's load-tester into
 * the real VPP through its punt socket, CHILD_SAs rekeyed every 10 s and IKE SAs every 30 s (by both
 * sides) for one minute. The bench's own checks must all pass, and the test reads its JSON to
 * assert them again: every tunnel up on both sides at the end and none negotiated anew, VPP holding
 * exactly the SAs vpp-iked lists (none leaked, none missing) while the peer is held still, vpp-iked's
 * memory flat, the rekeys done at the rate the lifetimes call for, and nothing left in VPP once
 * vpp-iked stopped.
 *
 * Skipped without root, strongSwan, the load-tester plugin or VPP (the reason is printed); fails
 * instead when REQUIRE_INTEROP=1 or REQUIRE_VPP=1. About 80 s.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requireInterop } from './harness.ts';
import { requireVpp } from '../helpers/real-vpp.ts';
import { findPlugin } from '../helpers/load-tester.ts';
import { NODE, ROOT } from '../helpers/daemon.ts';

const TUNNELS = 50;

interface SoakJson {
  tunnels: number;
  ok: boolean;
  error?: string;
  checks: { name: string; ok: boolean; detail: string }[];
  samples: { t: number; oursUp: number; theirsUp: number; retransmits: number; ikeCollisions: number }[];
  saSet?: { stable: boolean; listed: number; inVpp: number; leaked: string[]; missing: string[] };
  rekeys: { child: number; ike: number; expectedChild: number; expectedIke: number };
  rss: { warmKb: number; endKb: number };
  vppSasAfterStop?: number;
}

test(`rekey soak: ${TUNNELS} tunnels from the load-tester into the real VPP, CHILD_SA rekeys every 10 s and IKE SA rekeys every 30 s for a minute`, { timeout: 180_000 }, async (t) => {
  if (!requireInterop(t) || !requireVpp(t)) return;
  try {
    findPlugin(undefined);
  } catch (e) {
    if (process.env.REQUIRE_INTEROP === '1') throw new Error(`interop tests are required (REQUIRE_INTEROP=1) but cannot run: ${(e as Error).message}`);
    t.skip((e as Error).message);
    return;
  }
  const dir = mkdtempSync(join(tmpdir(), 'viked-soak-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const json = join(dir, 'soak.json');
  const args = [join(ROOT, 'bench/soak.ts'), '--tunnels', String(TUNNELS), '--minutes', '1', '--sample', '15', '--json', json];
  const child = spawn(NODE, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
  child.stderr.on('data', (d: Buffer) => { out += d.toString(); });
  const code = await new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)));
  t.diagnostic(out.trim());
  const r = JSON.parse(readFileSync(json, 'utf8')) as SoakJson;
  assert.equal(r.error, undefined, `the soak failed: ${r.error}\n${out}`);
  const failed = r.checks.filter((c) => !c.ok).map((c) => `${c.name}: ${c.detail}`);
  assert.deepEqual(failed, [], `failed checks:\n${failed.join('\n')}\n${out}`);
  assert.equal(code, 0, `bench/soak.ts exited ${code}\n${out}`);
  assert.equal(r.ok, true);

  const last = r.samples[r.samples.length - 1]!;
  assert.ok(r.samples.length >= 4, `sampled every 15 s: ${r.samples.length} samples`);
  assert.equal(last.oursUp, TUNNELS, 'every tunnel up on vpp-iked at the end');
  assert.equal(last.theirsUp, TUNNELS, 'every tunnel up on the load-tester at the end');
  const set = r.saSet!;
  assert.equal(set.stable, true);
  assert.deepEqual([set.leaked, set.missing], [[], []], 'VPP holds exactly the SAs vpp-iked lists');
  assert.ok(set.listed >= 2 * TUNNELS && set.inVpp === set.listed, `${set.listed} SAs listed, ${set.inVpp} in VPP`);
  assert.ok(r.rekeys.child >= 0.8 * r.rekeys.expectedChild, `${r.rekeys.child} CHILD_SA rekeys of about ${r.rekeys.expectedChild}`);
  assert.ok(r.rekeys.ike >= 0.8 * r.rekeys.expectedIke, `${r.rekeys.ike} IKE SA rekeys of about ${r.rekeys.expectedIke}`);
  assert.ok(r.rss.endKb - r.rss.warmKb <= Math.max(8192, r.rss.warmKb * 0.1), `RSS ${r.rss.warmKb} kB -> ${r.rss.endKb} kB`);
  assert.equal(r.vppSasAfterStop, 0, 'vpp-iked removed every SA from VPP when it stopped');
});
