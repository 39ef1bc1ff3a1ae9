/**
 * Lifetimes: the IKE SA's hard lifetime (over_time) and the jitter that spreads rekeys of tunnels
 * made together (rand_time).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { child, conn, pair, timerContext } from '../helpers/engine-pair.ts';
import { captureLog } from '../helpers/rewrite.ts';
import { FakeScheduler } from '../../src/common/clock.ts';
import { scheduleIkeRekey } from '../../src/ikev2/engine/ike-rekey.ts';
import { childLifetimes } from '../../src/ikev2/engine/child-rekey.ts';
import { ChildSa, IkeSa } from '../../src/ikev2/sa/ike-sa.ts';

test('an IKE SA that cannot be rekeyed is deleted, with a Delete, at its hard lifetime (rekey time + over_time)', async () => {
  const cap = captureLog();
  const env = pair({ logA: cap.log, a: { rekeyTime: 100, randTime: 0, overTime: 30 }, b: { rekeyTime: 0 } });
  await Promise.all([env.a.engine.initiate('lab'), env.w.run()]);
  const t0 = env.w.sched.now();
  const sa = [...env.a.engine.table.values()][0]!;
  const sb = [...env.b.engine.table.values()][0]!;
  // b refuses every IKE SA rekey (TEMPORARY_FAILURE), as a peer busy with something else would.
  sb.state = 'DELETING';
  await env.w.advance(129_000, 500);
  assert.ok(!sa.dead, 'up until the hard lifetime');
  assert.ok(cap.lines.filter((l) => l.msg === 'IKE SA rekey failed, retrying later').length >= 1, 'rekeys were tried');
  await env.w.advance(2_000, 500);
  assert.ok(sa.dead, `deleted at ${(env.w.sched.now() - t0) / 1000} s`);
  assert.ok(cap.lines.some((l) => String(l.msg).startsWith('IKE SA reached its hard lifetime')));
  assert.ok(sb.dead, 'the peer got the Delete');
  assert.equal(env.a.dp.installed.size, 0);
  assert.equal(env.b.dp.installed.size, 0);
});

test('an IKE SA rekeyed in time is not deleted by the hard lifetime of its predecessor', async () => {
  const env = pair({ a: { rekeyTime: 100, randTime: 0, overTime: 30 }, b: { rekeyTime: 0 } });
  await Promise.all([env.a.engine.initiate('lab'), env.w.run()]);
  await env.w.advance(300_000, 1000);
  const live = [...env.a.engine.table.values()].filter((s) => !s.dead);
  assert.equal(live.length, 1);
  assert.equal(live[0]!.children.length, 1);
  assert.ok(env.a.engine.stats.ikeRekeyed >= 2, 'rekeyed every 100 s');
  assert.equal(env.a.engine.stats.ikeDeleted, env.a.engine.stats.ikeRekeyed, 'only rekeyed SAs were deleted');
});

test('10,000 tunnels made within one minute: rand_time spreads their IKE and CHILD rekeys over the window', () => {
  const sched = new FakeScheduler(0);
  sched.setHandler(() => undefined);
  const ctx = timerContext(sched, 20_000);
  // strongSwan's defaults: IKE rekey_time 4 h, rand_time = over_time = 10 %; CHILD 1 h, rand_time 6 min.
  const c = conn('spread', { rekeyTime: 14_400, overTime: 1_440, randTime: 1_440, children: [child('net', { rekeyTime: 3_600, lifeTime: 3_960, randTime: 360 })] });
  const ike: number[] = [];
  const esp: number[] = [];
  for (let i = 0; i < 10_000; i++) {
    sched.advance(6); // 10,000 in 60 s
    const sa = new IkeSa(i + 1, true, randomBytes(8), { addr: '192.0.2.1', port: 500 }, { addr: '192.0.2.2', port: 500 }, sched.now());
    sa.conn = c;
    scheduleIkeRekey(ctx, sa);
    const ch = new ChildSa(i + 1, c.children[0]!);
    ch.installedAt = sched.now();
    childLifetimes(ctx, ch);
    ike.push(sa.rekeyAt);
    esp.push(ch.rekeyAt);
  }
  for (const [what, times, window] of [['IKE', ike, 1_440], ['CHILD', esp, 360]] as const) {
    const perSecond = new Map<number, number>();
    for (const t of times) perSecond.set(Math.floor(t / 1000), (perSecond.get(Math.floor(t / 1000)) ?? 0) + 1);
    const busiest = Math.max(...perSecond.values());
    const mean = times.length / (window + 60);
    console.log(`${what} rekeys of 10,000 tunnels made in 60 s: spread over ${perSecond.size} seconds, busiest second ${busiest}, mean ${mean.toFixed(1)}`);
    assert.ok(perSecond.size >= 0.9 * (window + 60), `${what}: spread over ${perSecond.size} seconds`);
    assert.ok(busiest <= 3 * mean + 10, `${what}: at most ${busiest} in one second`);
  }
});

test('rand_time = 1s: 1,000 CHILD_SAs and IKE SAs installed in the same millisecond spread their rekeys over that second', () => {
  const sched = new FakeScheduler(5_000);
  sched.setHandler(() => undefined);
  const ctx = timerContext(sched, 2_000);
  const c = conn('tight', { rekeyTime: 30, overTime: 3, randTime: 1, children: [child('net', { rekeyTime: 10, lifeTime: 11, randTime: 1 })] });
  const esp: number[] = [];
  const ike: number[] = [];
  for (let i = 0; i < 1_000; i++) {
    const ch = new ChildSa(i + 1, c.children[0]!);
    ch.installedAt = sched.now();
    childLifetimes(ctx, ch);
    esp.push(ch.rekeyAt - ch.installedAt);
    const sa = new IkeSa(i + 1, true, randomBytes(8), { addr: '192.0.2.1', port: 500 }, { addr: '192.0.2.2', port: 500 }, sched.now());
    sa.conn = c;
    scheduleIkeRekey(ctx, sa);
    ike.push(sa.rekeyAt - sched.now());
  }
  for (const [what, delays, rekeyMs] of [['CHILD', esp, 10_000], ['IKE', ike, 30_000]] as const) {
    // 0 <= jitter < rand_time: every rekey in (rekey_time - 1 s, rekey_time].
    assert.ok(delays.every((d) => d > rekeyMs - 1000 && d <= rekeyMs), `${what}: rekeys within the last second before rekey_time`);
    const buckets = new Set(delays.map((d) => Math.floor(d / 10)));
    const perBucket = new Map<number, number>();
    for (const d of delays) perBucket.set(Math.floor(d / 10), (perBucket.get(Math.floor(d / 10)) ?? 0) + 1);
    const busiest = Math.max(...perBucket.values());
    console.log(`${what} rekeys of 1,000 SAs with rand_time = 1s: ${buckets.size} of 100 10-ms buckets, ${new Set(delays).size} distinct ms, busiest bucket ${busiest}`);
    assert.ok(buckets.size >= 95, `${what}: spread over ${buckets.size} 10-ms buckets`);
    assert.ok(busiest <= 30, `${what}: ${busiest} rekeys in one 10-ms bucket`);
  }
});
