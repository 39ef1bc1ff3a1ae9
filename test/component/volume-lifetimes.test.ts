/**
 * Volume lifetimes (rekey_bytes, life_bytes, rekey_packets, life_packets): traffic accounted on the
 * memory dataplane's SAs is read by the engine's one poll, which rekeys a CHILD_SA at its rekey limit
 * (less rand_bytes/rand_packets) and deletes it, with a Delete, at its life limit. Fake clock.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { child, pair, timerContext } from '../helpers/engine-pair.ts';
import { captureLog } from '../helpers/rewrite.ts';
import { FakeScheduler } from '../../src/common/clock.ts';
import { MemoryDataplane } from '../../src/dataplane/memory.ts';
import { CountersUnavailableError } from '../../src/dataplane/types.ts';
import type { ChildConfig } from '../../src/config/types.ts';
import { childLifetimes } from '../../src/ikev2/engine/child-rekey.ts';
import { ChildSa } from '../../src/ikev2/sa/ike-sa.ts';

const NETS = { a: { localTs: ['10.1.0.0/16'], remoteTs: ['10.2.0.0/16'] }, b: { localTs: ['10.2.0.0/16'], remoteTs: ['10.1.0.0/16'] } };

/** A pair whose initiator's CHILD_SA has volume limits (no time rekeys on either side). */
function volumePair(limits: Partial<ChildConfig>, poll = 10) {
  const cap = captureLog();
  const env = pair({
    logA: cap.log,
    a: { rekeyTime: 0, children: [child('net', { ...NETS.a, rekeyTime: 0, lifeTime: 0, randTime: 0, ...limits })] },
    b: { rekeyTime: 0, children: [child('net', { ...NETS.b, rekeyTime: 0, lifeTime: 0, randTime: 0 })] },
    engineA: { trafficPoll: poll },
  });
  return { env, cap };
}

function installedChild(dp: MemoryDataplane): number {
  const ids = [...dp.installed.keys()];
  assert.equal(ids.length, 1, `one CHILD_SA installed, not ${ids.length}`);
  return ids[0]!;
}

test('rekey_bytes: a CHILD_SA is rekeyed once its outbound SA carried rekey_bytes, at the first poll after', async () => {
  const { env, cap } = volumePair({ rekeyBytes: 1_000_000, lifeBytes: 1_100_000, randBytes: 0 });
  await Promise.all([env.a.engine.initiate('lab'), env.w.run()]);
  const first = installedChild(env.a.dp);
  const reads0 = env.a.dp.counterReads;
  // below the limit: polls read, nothing happens
  env.a.dp.addTraffic(first, { bytesOut: 999_999, packetsOut: 900 });
  await env.w.advance(30_000, 1000);
  assert.ok(env.a.dp.counterReads - reads0 >= 2 && env.a.dp.counterReads - reads0 <= 4, `one read per 10 s poll (${env.a.dp.counterReads - reads0} in 30 s)`);
  assert.equal(installedChild(env.a.dp), first);
  assert.equal(env.a.engine.stats.childRekeyed, 0);
  // one more byte: rekeyed at the next poll (within 10 s), the old CHILD_SA deleted, both sides agree
  env.a.dp.addTraffic(first, { bytesOut: 1 });
  await env.w.advance(10_000, 1000);
  assert.equal(env.a.engine.stats.childRekeyed, 1);
  const second = installedChild(env.a.dp);
  assert.notEqual(second, first);
  const line = cap.lines.find((l) => l.msg === 'CHILD SA reached its rekey bytes/packets, rekeying');
  assert.ok(line, 'logged');
  assert.equal(line.bytes_out, 1_000_000);
  assert.equal(env.b.dp.installed.size, 1, 'the peer holds the new CHILD_SA only');
  const [bChild] = env.b.dp.installed.values();
  const [aChild] = env.a.dp.installed.values();
  assert.equal(bChild!.inbound.spi, aChild!.outbound.spi);
  // the new CHILD_SA starts from zero and is rekeyed again at its own limit
  env.a.dp.addTraffic(second, { bytesIn: 1_000_000 });
  await env.w.advance(10_000, 1000);
  assert.equal(env.a.engine.stats.childRekeyed, 2, 'inbound bytes count too');
  assert.equal(env.a.engine.traffic.rekeys, 2);
});

test('life_bytes: a CHILD_SA whose rekey does not replace it is deleted, with a Delete to the peer, at life_bytes', async () => {
  const { env, cap } = volumePair({ rekeyBytes: 1000, lifeBytes: 2000, randBytes: 0 });
  await Promise.all([env.a.engine.initiate('lab'), env.w.run()]);
  const id = installedChild(env.a.dp);
  // the peer refuses CREATE_CHILD_SA (no proposal chosen: it no longer accepts our ESP proposal)
  env.b.dp.failNextInstall('VPP refused the SA');
  env.a.dp.addTraffic(id, { bytesOut: 1500 });
  await env.w.advance(10_000, 1000);
  assert.ok(cap.lines.some((l) => l.msg === 'CHILD SA reached its rekey bytes/packets, rekeying'));
  assert.equal(installedChild(env.a.dp), id, 'still the old CHILD_SA');
  // no second rekey from the volume (a failed one is retried on the time schedule)
  assert.equal(env.a.engine.traffic.rekeys, 1);
  env.a.dp.addTraffic(id, { bytesOut: 500 });
  await env.w.advance(10_000, 1000);
  assert.ok(cap.lines.some((l) => l.msg === 'CHILD SA reached its life bytes/packets'));
  assert.equal(env.a.dp.installed.size, 0, 'deleted here');
  assert.equal(env.b.dp.installed.size, 0, 'and at the peer (Delete sent)');
  assert.equal(env.a.engine.traffic.expiries, 1);
  assert.equal(env.a.engine.traffic.watched, 0);
});

test('rekey_packets / life_packets count packets of either direction; only CHILD_SAs with limits are read', async () => {
  const { env } = volumePair({ rekeyPackets: 100, lifePackets: 200, randPackets: 0 });
  await Promise.all([env.a.engine.initiate('lab'), env.w.run()]);
  const id = installedChild(env.a.dp);
  env.a.dp.addTraffic(id, { packetsIn: 100, bytesIn: 10 });
  await env.w.advance(10_000, 1000);
  assert.equal(env.a.engine.stats.childRekeyed, 1);
  // b has no volume limits: it never reads counters
  assert.equal(env.b.dp.counterReads, 0);
  assert.equal(env.b.engine.traffic.watched, 0);
});

test('the poll interval is daemon.traffic_poll; without watched CHILD_SAs nothing is read', async () => {
  const { env } = volumePair({ rekeyBytes: 1 << 30 }, 2);
  await Promise.all([env.a.engine.initiate('lab'), env.w.run()]);
  const r0 = env.a.dp.counterReads;
  await env.w.advance(20_000, 500);
  const n = env.a.dp.counterReads - r0;
  assert.ok(n >= 9 && n <= 11, `${n} reads in 20 s at a 2 s poll`);
  env.a.engine.deleteChild(installedChild(env.a.dp));
  await env.w.advance(2_000, 500);
  const r1 = env.a.dp.counterReads;
  await env.w.advance(20_000, 1000);
  assert.equal(env.a.dp.counterReads, r1, 'no reads once no CHILD_SA has a limit');
});

test('counters that cannot be read are logged once, saying the limits are not enforced, and again when they are back', async () => {
  const { env, cap } = volumePair({ rekeyBytes: 1000, lifeBytes: 0, randBytes: 0 });
  await Promise.all([env.a.engine.initiate('lab'), env.w.run()]);
  const id = installedChild(env.a.dp);
  const real = env.a.dp.counters.bind(env.a.dp);
  let broken = true;
  env.a.dp.counters = (ids) => (broken ? Promise.reject(new CountersUnavailableError('cannot open /proc/1/fd/6: EACCES')) : real(ids));
  env.a.dp.addTraffic(id, { bytesOut: 5000 });
  await env.w.advance(50_000, 1000);
  const warns = cap.lines.filter((l) => String(l.msg).startsWith('SA counters cannot be read'));
  assert.equal(warns.length, 1, 'one line, not one per poll');
  assert.match(String(warns[0]!.msg), /rekey_bytes, life_bytes, rekey_packets and life_packets are not enforced/);
  assert.equal(warns[0]!.why, 'cannot open /proc/1/fd/6: EACCES');
  assert.equal(env.a.engine.traffic.counters_unavailable, 'cannot open /proc/1/fd/6: EACCES');
  assert.equal(env.a.engine.stats.childRekeyed, 0);
  broken = false;
  await env.w.advance(10_000, 1000);
  assert.ok(cap.lines.some((l) => l.msg === 'SA counters can be read again: volume lifetimes are enforced'));
  assert.equal(env.a.engine.stats.childRekeyed, 1);
});

test('rand_bytes and rand_packets: rekey thresholds spread over (rekey − rand, rekey], as strongSwan applies its jitter', () => {
  const sched = new FakeScheduler(0);
  sched.setHandler(() => undefined);
  const ctx = timerContext(sched, 20_000);
  const cfg = child('net', { rekeyTime: 0, lifeTime: 0, randTime: 0, rekeyBytes: 1_000_000, lifeBytes: 1_100_000, randBytes: 100_000, rekeyPackets: 5000, randPackets: 1000, lifePackets: 0 });
  const bytes: number[] = [];
  const packets: number[] = [];
  for (let i = 0; i < 10_000; i++) {
    const c = new ChildSa(i + 1, cfg);
    childLifetimes(ctx, c);
    bytes.push(c.rekeyBytes);
    packets.push(c.rekeyPackets);
  }
  assert.ok(bytes.every((b) => b > 900_000 - 1 && b <= 1_000_000), 'bytes within (rekey − rand − 1, rekey]');
  assert.ok(packets.every((p) => p >= 4000 && p <= 5000));
  // spread: every tenth of the range is used
  const deciles = new Set(bytes.map((b) => Math.min(9, Math.floor((1_000_000 - b) / 10_000))));
  assert.equal(deciles.size, 10);
  assert.ok(new Set(bytes).size > 9000, 'hardly two alike');
  assert.equal(ctx.traffic.children.size, 10_000, 'all watched');
  // no rand: exactly the limit; no limits at all: not watched
  const exact = new ChildSa(20_001, child('x', { rekeyBytes: 500, randBytes: 0 }));
  childLifetimes(ctx, exact);
  assert.equal(exact.rekeyBytes, 500);
  const none = new ChildSa(20_002, child('y'));
  childLifetimes(ctx, none);
  assert.equal(none.rekeyBytes, 0);
  assert.ok(!ctx.traffic.children.has(20_002));
});
