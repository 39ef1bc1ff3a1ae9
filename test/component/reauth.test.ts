/**
 * IKE SA reauthentication (reauth_time), make-before-break, between two engines over the in-memory
 * wire with a fake clock, with lost and duplicated messages. After every delivered message each side
 * has an outbound SA for each tunnel, and the peer can decrypt it (its inbound SA is installed). At
 * the end one IKE SA is left on each side, carrying the recreated CHILD_SAs with the same traffic
 * selectors, the old IKE SA is gone and the dataplanes hold exactly the current CHILD_SAs.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { child, config, live, lossy, pair, psk, type Loss, type Node, type Wire } from '../helpers/engine-pair.ts';
import { captureLog, openMessage } from '../helpers/rewrite.ts';
import { ExchangeType, NotifyType, PayloadType } from '../../src/ikev2/constants.ts';
import type { IkeSa } from '../../src/ikev2/sa/ike-sa.ts';
import { selToString } from '../../src/ikev2/sa/ts.ts';
import { ikeView } from '../../src/control/views.ts';
import type { ConnectionConfig } from '../../src/config/types.ts';

const A = '192.0.2.1';
const INIT = ExchangeType.IKE_SA_INIT;
const AUTH = ExchangeType.IKE_AUTH;
const CC = ExchangeType.CREATE_CHILD_SA;
const INFO = ExchangeType.INFORMATIONAL;

type Mode = 'p2p' | 'p2mp' | 'policy';

/**
 * Two CHILD_SAs (one comes with IKE_AUTH, one with CREATE_CHILD_SA), no rekeys of their own; with
 * p2mp one (VPP's multipoint interface carries one CHILD_SA per peer).
 */
function side(local: [string, string], remote: [string, string], o: Partial<ConnectionConfig> = {}, mode: Mode = 'p2p'): Partial<ConnectionConfig> {
  const quiet = { rekeyTime: 0, lifeTime: 0, randTime: 0, vppMode: mode, ...(mode === 'p2mp' ? { vppInterface: 'ipsec0' } : mode === 'policy' ? { vppInterface: 'eth0' } : {}) };
  const children = [child('net', { localTs: [local[0]], remoteTs: [remote[0]], ...quiet }), child('net2', { localTs: [local[1]], remoteTs: [remote[1]], ...quiet })];
  return { rekeyTime: 0, children: mode === 'p2mp' ? children.slice(0, 1) : children, ...o };
}
const SIDE_A: [string, string] = ['10.1.0.0/16', '10.3.0.0/16'];
const SIDE_B: [string, string] = ['10.2.0.0/16', '10.4.0.0/16'];

/** Reauthentication every 100 s on `who`, no jitter, hard lifetime 600 s after it. */
const REAUTH = { reauthTime: 100, randTime: 0, overTime: 600 };

/** A loss in a case template: x is the side that reauthenticates, y its peer. */
type CaseLoss = Omit<Loss, 'from'> & { from: Loss['from'] | 'x' | 'y' };

/** Both sides up with two CHILD_SAs; from then on every step is checked for outbound SAs the peer can decrypt. */
async function up(o: { a?: Partial<ConnectionConfig>; b?: Partial<ConnectionConfig>; logA?: ReturnType<typeof captureLog>['log']; logB?: ReturnType<typeof captureLog>['log']; mode?: Mode }) {
  const mode = o.mode ?? 'p2p';
  const env = pair({ a: side(SIDE_A, SIDE_B, o.a, mode), b: side(SIDE_B, SIDE_A, o.b, mode), logA: o.logA, logB: o.logB });
  await Promise.all([env.a.engine.initiate('lab'), env.w.run()]);
  await env.w.run();
  const [sa] = live(env.a);
  const [sb] = live(env.b);
  const tunnelCount = mode === 'p2mp' ? 1 : 2;
  assert.equal(sa!.children.length, tunnelCount);
  assert.equal(sb!.children.length, tunnelCount);
  const gaps: string[] = [];
  env.w.afterDelivery = () => {
    for (const [name, n, peer] of [['a', env.a, env.b], ['b', env.b, env.a]] as const) {
      const tunnels = n.dp.tunnels();
      if (tunnels.length !== tunnelCount) gaps.push(`${name} at ${env.w.sched.now()}: tunnels ${JSON.stringify(tunnels)}`);
      for (const t of tunnels) {
        const out = n.dp.outboundOf(t);
        if (!out) gaps.push(`${name} at ${env.w.sched.now()}: no outbound SA for ${t}`);
        // policy mode moves outbound traffic to a new SA at once, also for a rekey we answer
        else if (mode !== 'policy' && ![...peer.dp.installed.values()].some((c) => c.inbound.spi === out.outbound.spi)) {
          gaps.push(`${name} at ${env.w.sched.now()}: sends on ${out.outbound.spi.toString(16)} for ${t}, which the peer has not installed`);
        }
      }
    }
  };
  return { ...env, gaps, oldA: sa!, oldB: sb!, tunnelCount };
}

const tsOf = (sa: IkeSa) => sa.children.map((c) => `${c.name} ${c.localTs.map(selToString)} ${c.remoteTs.map(selToString)}`).sort();

/** One new IKE SA each (not the old ones), same SPIs, both CHILD_SAs recreated with the same selectors, nothing else installed. */
function reauthenticated(env: { a: Node; b: Node; gaps: string[]; oldA: IkeSa; oldB: IkeSa; tunnelCount: number }, ts: { a: string[]; b: string[] }): { sa: IkeSa; sb: IkeSa } {
  assert.deepEqual(env.gaps, [], 'an outbound SA the peer can decrypt, for each tunnel, at every step');
  assert.ok(env.oldA.dead && env.oldB.dead, 'the old IKE SA is gone on both sides');
  assert.equal(live(env.a).length, 1, `one IKE SA on a: ${live(env.a).map((s) => `${s.id} ${s.state}`)}`);
  assert.equal(live(env.b).length, 1, `one IKE SA on b: ${live(env.b).map((s) => `${s.id} ${s.state}`)}`);
  const sa = live(env.a)[0]!;
  const sb = live(env.b)[0]!;
  assert.ok(sa.spiI.equals(sb.spiI) && sa.spiR.equals(sb.spiR), 'same IKE SPIs');
  assert.equal(sa.state, 'ESTABLISHED');
  assert.equal(sb.state, 'ESTABLISHED');
  assert.ok(sa.reauthOf === undefined && sb.reauthOf === undefined && sa.reauthBy === undefined && sb.reauthBy === undefined);
  assert.deepEqual(tsOf(sa), ts.a, 'the same CHILD_SAs with the same traffic selectors on a');
  assert.deepEqual(tsOf(sb), ts.b, 'and on b');
  for (const [n, s, peer] of [[env.a, sa, sb], [env.b, sb, sa]] as const) {
    assert.deepEqual([...n.dp.installed.keys()].sort(), s.children.map((c) => c.id).sort(), 'the dataplane holds exactly the current CHILD_SAs');
    assert.equal(n.dp.pendingSpis, 0, 'no SPI left allocated');
    assert.equal(n.dp.tunnels().length, env.tunnelCount, 'the new CHILD_SAs joined the tunnels of the old ones');
    for (const c of s.children) {
      assert.equal(c.state, 'INSTALLED');
      const p = peer.children.find((x) => x.spiOut === c.spiIn);
      assert.ok(p && p.spiIn === c.spiOut && p.name === c.name, `${c.name}: SPIs match the peer's`);
      assert.equal(n.dp.outboundOf(n.dp.tunnelOf(c.id)!)?.outbound.spi, c.spiOut, `${c.name}: sends on the new SA`);
    }
  }
  return { sa, sb };
}

/** IKE_AUTH requests of the IKE SA `sb` (the responder's record) carry no INITIAL_CONTACT. */
function noInitialContact(w: Wire, sb: IkeSa): void {
  let seen = 0;
  for (const p of w.log) {
    if (p.data[18] !== AUTH || (p.data[19]! & 0x20) !== 0 || !p.data.subarray(0, 8).equals(sb.spiI)) continue;
    const m = openMessage(sb, p.data);
    seen++;
    assert.ok(!m.payloads.some((x) => x.type === PayloadType.NOTIFY && x.notifyType === NotifyType.INITIAL_CONTACT), 'no INITIAL_CONTACT when reauthenticating');
  }
  assert.ok(seen >= 1, 'the IKE_AUTH request was seen');
}

const cases: [string, CaseLoss[], number?][] = [
  ['no loss', []],
  ['the new IKE_SA_INIT request lost once', [{ from: 'x', exchange: INIT, response: false, nth: 1 }]],
  ['the IKE_AUTH response lost once', [{ from: 'y', exchange: AUTH, response: true, nth: 1 }]],
  ['the IKE_AUTH request duplicated', [{ from: 'x', exchange: AUTH, response: false, nth: 1, what: 'dup' }]],
  ['the CREATE_CHILD_SA request and its response lost once', [{ from: 'x', exchange: CC, response: false, nth: 1 }, { from: 'y', exchange: CC, response: true, nth: 1 }]],
  // The peer deleted the old IKE SA with the first Delete that arrived; the retransmissions of a
  // Delete whose response was lost go unanswered until the old IKE SA gives up (~165 s), by when it
  // has been reauthenticated again.
  ['the Delete of the old IKE SA and its response lost once', [{ from: 'x', exchange: INFO, response: false, nth: 1 }, { from: 'y', exchange: INFO, response: true, nth: 1 }], 280_000],
];

for (const who of ['a', 'b'] as const) {
  const other = who === 'a' ? 'b' : 'a';
  for (const [name, template, wait] of cases) {
    const role = who === 'a' ? 'the original initiator' : 'the original responder';
    test(`reauthentication by ${role} (${name}): new IKE SA, CHILD_SAs recreated, old IKE SA deleted, no outbound gap`, async () => {
      const cap = captureLog();
      const env = await up({ [who]: REAUTH, [who === 'a' ? 'logA' : 'logB']: cap.log });
      const me = who === 'a' ? env.oldA : env.oldB;
      const ts = { a: tsOf(env.oldA), b: tsOf(env.oldB) };
      const t0 = env.w.sched.now();
      assert.equal(ikeView(me, (t) => (t ? String(t) : null)).reauth_at, String(t0 + 100_000), 'list-sas shows the reauthentication time');
      // x: the reauthenticating side, y: the other one
      lossy(env.w, template.map((l) => ({ ...l, from: l.from === 'x' ? who : other })));
      await env.w.advance(99_000, 1000);
      assert.equal(live(env.a).length + live(env.b).length, 2, 'nothing before reauth_time');
      await env.w.advance(wait ?? 60_000, 250);
      const { sa, sb } = reauthenticated(env, ts);
      const initiatorSide = who === 'a' ? sb : sa;
      noInitialContact(env.w, initiatorSide);
      const mine = who === 'a' ? sa : sb;
      assert.ok(mine.initiator, 'the reauthenticating side initiated the new IKE SA');
      assert.ok(cap.lines.some((l) => l.msg === 'IKE SA reauthenticated, deleting the old IKE SA'));
      // the next reauthentication is scheduled 100 s after the new IKE SA came up
      assert.ok(mine.reauthAt > t0 + 100_000 && mine.reauthAt <= env.w.sched.now() + 100_000, `next reauthentication at ${mine.reauthAt - t0}`);
      assert.equal((who === 'a' ? sb : sa).reauthAt, 0, 'the peer has no reauth_time');
      // every IKE SA deleted on either side was one that a reauthentication replaced
      const rounds = cap.lines.filter((l) => l.msg === 'IKE SA reauthenticated, deleting the old IKE SA').length;
      assert.equal(rounds, wait === undefined ? 1 : 3);
      assert.equal(env.a.engine.stats.ikeDeleted, rounds);
      assert.equal(env.b.engine.stats.ikeDeleted, rounds);
    });
  }
}

test('a reauthentication that fails keeps the old IKE SA and its tunnels, retries, and succeeds once the peer answers', async () => {
  const cap = captureLog();
  const env = await up({ a: REAUTH, logA: cap.log });
  const ts = { a: tsOf(env.oldA), b: tsOf(env.oldB) };
  // Every IKE_SA_INIT is lost for 250 s: the first attempt gives up after its retransmissions.
  let blocking = true;
  env.w.filter = (p) => (blocking && p.data[18] === INIT ? 'drop' : 'deliver');
  await env.w.advance(350_000, 1000);
  assert.ok(!env.oldA.dead && env.oldA.state === 'ESTABLISHED' && env.oldA.children.length === 2, 'the old IKE SA stays with its CHILD_SAs');
  assert.ok(!env.oldB.dead);
  assert.ok(cap.lines.some((l) => l.msg === 'IKE SA reauthentication failed, retrying later'), 'the failure is logged');
  assert.equal(live(env.b).length, 1, 'the peer never saw a new IKE SA');
  assert.deepEqual(env.gaps, []);
  blocking = false;
  await env.w.advance(200_000, 500);
  reauthenticated(env, ts);
});

test('a reauthentication that keeps failing ends at the hard lifetime: the old IKE SA is deleted as strongSwan does', async () => {
  const cap = captureLog();
  const env = await up({ a: { reauthTime: 100, randTime: 0, overTime: 200 }, logA: cap.log });
  const t0 = env.w.sched.now();
  env.w.filter = (p) => (p.data[18] === INIT ? 'drop' : 'deliver');
  await env.w.advance(299_000, 1000);
  assert.ok(!env.oldA.dead, 'up until the hard lifetime');
  assert.deepEqual(env.gaps, []);
  env.w.afterDelivery = () => undefined;
  await env.w.advance(3_000, 500);
  assert.ok(env.oldA.dead, `deleted at ${(env.w.sched.now() - t0) / 1000} s`);
  assert.ok(env.oldB.dead, 'the peer got the Delete');
  assert.ok(cap.lines.some((l) => String(l.msg).startsWith('IKE SA reached its hard lifetime')));
  await env.w.advance(200_000, 1000);
  assert.equal(live(env.a).length + live(env.b).length, 0, 'no IKE SA left');
  for (const n of [env.a, env.b]) {
    assert.equal(n.dp.installed.size, 0, 'no orphan SA');
    assert.equal(n.dp.pendingSpis, 0);
  }
});

test('a CHILD_SA that cannot be recreated fails the reauthentication: the new IKE SA goes, the old one stays and the retry succeeds', async () => {
  const cap = captureLog();
  const env = await up({ a: REAUTH, logA: cap.log });
  const ts = { a: tsOf(env.oldA), b: tsOf(env.oldB) };
  // The peer's dataplane refuses its first install (the CHILD_SA of the new IKE_AUTH).
  await env.w.advance(99_000, 1000);
  env.b.dp.failNextInstall('no room');
  await env.w.advance(5_000, 250);
  assert.ok(cap.lines.some((l) => l.msg === 'reauthentication could not recreate every CHILD SA, deleting the new IKE SA'));
  assert.ok(!env.oldA.dead && !env.oldB.dead, 'the old IKE SA stays');
  assert.equal(live(env.a).length, 1, 'the new IKE SA was deleted');
  assert.equal(live(env.b).length, 1);
  assert.equal(env.oldA.children.length, 2);
  assert.deepEqual([...env.a.dp.installed.keys()].sort(), env.oldA.children.map((c) => c.id).sort(), 'nothing of the new IKE SA left in the dataplane');
  assert.deepEqual([...env.b.dp.installed.keys()].sort(), env.oldB.children.map((c) => c.id).sort());
  await env.w.advance(60_000, 250);
  reauthenticated(env, ts);
});

for (const unique of ['replace', 'keep', 'no'] as const) {
  test(`the responder with unique = ${unique} keeps the old IKE SA until the peer deletes it after its make-before-break reauthentication`, async () => {
    const cap = captureLog();
    const env = await up({ a: REAUTH, b: { unique }, logB: cap.log });
    const ts = { a: tsOf(env.oldA), b: tsOf(env.oldB) };
    await env.w.advance(160_000, 250);
    reauthenticated(env, ts);
    assert.ok(!cap.lines.some((l) => l.msg === 'unique=keep: deleting the new duplicate'));
    if (unique === 'replace') assert.ok(cap.lines.some((l) => String(l.msg).startsWith('unique=replace: deleting the older IKE SA of this peer soon')));
    assert.equal(cap.lines.filter((l) => l.msg === 'CHILD SA takes over the tunnel of the CHILD SA of the older IKE SA').length, 2);
  });
}

test('unique = replace as responder: an older IKE SA the peer does not delete goes 10 s after the new one came up', async () => {
  const env = await up({ b: { unique: 'replace' } });
  env.w.afterDelivery = () => undefined;
  // The peer sets up a second IKE SA with the same identities from the same address and port while
  // the first is up (no INITIAL_CONTACT: it still has the first), here through a second connection.
  const a = env.a.engine.config.get('lab')!;
  env.a.engine.setConfig(config([a, { ...a, name: 'lab2' }], [psk(['a.lab', 'b.lab'], 'lab-preshared-key-0123456789')]));
  await Promise.all([env.a.engine.initiate('lab2'), env.w.run()]);
  await env.w.run();
  assert.equal(live(env.b).length, 2, 'both IKE SAs for now');
  await env.w.advance(9_000, 500);
  assert.ok(!env.oldB.dead, 'the old one is kept for 10 s');
  await env.w.advance(2_000, 500);
  assert.ok(env.oldB.dead && env.oldA.dead, 'then deleted, with a Delete');
  const [nb] = live(env.b);
  assert.equal(live(env.b).length, 1);
  assert.equal(nb!.children.length, 2);
  assert.deepEqual([...env.b.dp.installed.keys()].sort(), nb!.children.map((c) => c.id).sort());
  assert.equal(env.b.dp.tunnels().length, 2, "the new CHILD_SAs took over the old ones' tunnels");
});

test('break-before-make by the peer: it deletes the old IKE SA, then sets up a new one; no SA is left behind', async () => {
  const env = await up({});
  const ts = { a: tsOf(env.oldA), b: tsOf(env.oldB) };
  env.w.afterDelivery = () => undefined;
  env.a.engine.deleteIke(env.oldA);
  await env.w.run();
  assert.ok(env.oldA.dead && env.oldB.dead);
  assert.equal(env.b.dp.installed.size, 0);
  await Promise.all([env.a.engine.initiate('lab'), env.w.run()]);
  await env.w.run();
  reauthenticated({ ...env, gaps: [] }, ts);
});

test('the reauthentication time survives IKE SA rekeys; over_time counts from the earlier of rekey and reauthentication', async () => {
  const env = await up({ a: { rekeyTime: 40, reauthTime: 100, randTime: 0, overTime: 600 } });
  const t0 = env.w.sched.now();
  const ts = { a: tsOf(env.oldA), b: tsOf(env.oldB) };
  await env.w.advance(95_000, 500);
  assert.ok(env.a.engine.stats.ikeRekeyed >= 2, `rekeyed at 40 s and 80 s (${env.a.engine.stats.ikeRekeyed})`);
  const cur = live(env.a)[0]!;
  assert.equal(cur.reauthAt, t0 + 100_000, 'the rekeyed IKE SA keeps the reauthentication time');
  assert.ok(cur.timers[5]! <= cur.rekeyAt + 600_000 && cur.timers[5]! >= Math.min(cur.rekeyAt, cur.reauthAt) + 600_000, 'hard lifetime from the earlier time');
  await env.w.advance(10_000, 250);
  assert.ok(live(env.a)[0]!.establishedAt >= t0 + 100_000, 'reauthenticated at 100 s');
  assert.deepEqual(env.gaps, []);
  assert.deepEqual(tsOf(live(env.a)[0]!), ts.a);
  assert.equal(live(env.a).length, 1);
  assert.equal(live(env.b).length, 1);
});

for (const mode of ['p2mp', 'policy'] as const) {
  for (const who of ['a', 'b'] as const) {
    for (const [name, losses] of [cases[0]!, cases[2]!]) {
      test(`vpp_mode = ${mode}: reauthentication by ${who === 'a' ? 'the original initiator' : 'the original responder'} (${name}) keeps an outbound SA for each tunnel`, async () => {
        const env = await up({ [who]: REAUTH, mode });
        const ts = { a: tsOf(env.oldA), b: tsOf(env.oldB) };
        lossy(env.w, losses.map((l) => ({ ...l, from: l.from === 'x' ? who : who === 'a' ? 'b' : 'a' })));
        await env.w.advance(160_000, 250);
        reauthenticated(env, ts);
      });
    }
  }
}

test('both sides reauthenticate at the same moment, round after round: one reauthentication gives way, one IKE SA is left each time', async () => {
  const cap = captureLog();
  const env = await up({ a: REAUTH, b: REAUTH, logA: cap.log });
  for (let round = 1; round <= 3; round++) {
    await env.w.advance(round === 1 ? 130_000 : 100_000, 250);
    assert.deepEqual(env.gaps, [], `round ${round}: an outbound SA for each tunnel at every step`);
    const la = live(env.a);
    const lb = live(env.b);
    assert.equal(la.length, 1, `round ${round}: one IKE SA on a: ${la.map((s) => `${s.id} ${s.state} ${s.children.map((c) => c.name)}`)}`);
    assert.equal(lb.length, 1, `round ${round}: one IKE SA on b`);
    assert.ok(la[0]!.spiI.equals(lb[0]!.spiI) && la[0]!.spiR.equals(lb[0]!.spiR));
    assert.equal(la[0]!.children.length, 2);
    for (const [n, l] of [[env.a, la], [env.b, lb]] as const) {
      assert.deepEqual([...n.dp.installed.keys()].sort(), l.flatMap((s) => s.children.map((c) => c.id)).sort(), 'the dataplane holds exactly the live CHILD_SAs');
      assert.equal(n.dp.pendingSpis, 0);
    }
  }
  assert.ok(env.oldA.dead && env.oldB.dead);
  assert.ok(cap.lines.some((l) => String(l.msg).startsWith('reauthentication collision')), 'the collision was seen');
});

test('an IKE SA rekeyed while its reauthentication is under way: the reauthentication follows the rekeyed IKE SA and deletes it', async () => {
  const env = await up({ a: REAUTH });
  const ts = { a: tsOf(env.oldA), b: tsOf(env.oldB) };
  lossy(env.w, [{ from: 'b', exchange: AUTH, response: true, nth: 1 }]);
  await env.w.advance(100_000, 1000);
  assert.ok(env.oldA.reauthBy && env.oldA.reauthBy.state === 'CONNECTING', 'IKE_AUTH of the new IKE SA under way');
  assert.ok(env.a.engine.rekeyIke(env.oldA), 'the operator rekeys the old IKE SA');
  await env.w.advance(30_000, 250);
  assert.equal(env.a.engine.stats.ikeRekeyed, 1, 'the rekey happened');
  reauthenticated(env, ts);
  assert.equal(env.a.engine.stats.ikeDeleted, 2, 'the rekeyed IKE SA and its successor went');
});

test('the old IKE SA goes while its reauthentication fails: a connection kept up (start_action = start) is started again', async () => {
  const quiet = { rekeyTime: 0, lifeTime: 0, randTime: 0 };
  const env = await up({
    a: { ...REAUTH, children: [child('net', { localTs: [SIDE_A[0]], remoteTs: [SIDE_B[0]], startAction: 'start', ...quiet }), child('net2', { localTs: [SIDE_A[1]], remoteTs: [SIDE_B[1]], ...quiet })] },
  });
  env.w.afterDelivery = () => undefined;
  env.a.engine.startConnections(); // keeps 'lab' up (its IKE SA exists already)
  let blocking = true;
  env.w.filter = (p) => (blocking && p.data[18] === INIT ? 'drop' : 'deliver');
  await env.w.advance(101_000, 1000);
  assert.ok(env.oldA.reauthBy, 'reauthentication under way');
  env.b.engine.deleteIke(env.oldB);
  await env.w.advance(2_000, 500);
  assert.ok(env.oldA.dead, 'the peer deleted the old IKE SA');
  const reauthSa = live(env.a)[0]!;
  await env.w.advance(170_000, 1000);
  assert.ok(reauthSa.dead, 'the new IKE SA gave up');
  blocking = false;
  await env.w.advance(120_000, 1000);
  const [sa] = live(env.a);
  assert.equal(live(env.a).length, 1, 'the connection is up again');
  assert.equal(sa!.state, 'ESTABLISHED');
  assert.deepEqual(sa!.children.map((c) => c.name).sort(), ['net', 'net2']);
  assert.equal(live(env.b).length, 1);
  assert.deepEqual([...env.a.dp.installed.keys()].sort(), sa!.children.map((c) => c.id).sort());
});

test('an IKE SA without CHILD_SAs is not reauthenticated (as strongSwan) and expires at its hard lifetime', async () => {
  const cap = captureLog();
  const env = await up({ a: { reauthTime: 100, randTime: 0, overTime: 50 }, logA: cap.log });
  env.w.afterDelivery = () => undefined;
  for (const c of [...env.oldA.children]) env.a.engine.deleteChild(c.id);
  await env.w.run();
  assert.equal(env.oldA.children.length, 0);
  await env.w.advance(101_000, 1000);
  assert.ok(cap.lines.some((l) => l.msg === 'unable to reauthenticate IKE SA, no CHILD SA to recreate'));
  assert.equal(live(env.a).length, 1, 'no new IKE SA');
  assert.equal(env.oldA.reauthAt, 0);
  await env.w.advance(50_000, 1000);
  assert.ok(env.oldA.dead && env.oldB.dead, 'expired at reauth_time + over_time');
});

test('reauthentication checks the credentials as configured now: a PSK the peer no longer accepts fails it and the old IKE SA stays', async () => {
  const cap = captureLog();
  const env = await up({ a: REAUTH, logA: cap.log });
  // The peer's configuration now has another key for these identities (its existing IKE SA stays).
  const b = env.b.engine.config.get('lab')!;
  env.b.engine.setConfig(config([b], [psk(['a.lab', 'b.lab'], 'another-preshared-key-0123456789')]));
  await env.w.advance(101_000, 1000);
  await env.w.advance(5_000, 250);
  assert.ok(env.b.engine.stats.authFailed >= 1, 'the peer refused the new IKE SA');
  assert.ok(cap.lines.some((l) => l.msg === 'IKE SA reauthentication failed, retrying later'));
  assert.ok(!env.oldA.dead && !env.oldB.dead, 'the old IKE SA stays');
  assert.equal(live(env.a).length, 1);
  assert.equal(live(env.b).length, 1);
  assert.deepEqual([...env.a.dp.installed.keys()].sort(), env.oldA.children.map((c) => c.id).sort(), 'nothing of the failed attempt is left');
  assert.deepEqual([...env.b.dp.installed.keys()].sort(), env.oldB.children.map((c) => c.id).sort());
  assert.equal(env.a.dp.pendingSpis, 0);
  assert.deepEqual(env.gaps, []);
});

test('an IKE SA on the NAT-T port (encap = yes) is reauthenticated from and to that port, with UDP-encapsulated CHILD_SAs', async () => {
  const env = await up({ a: { ...REAUTH, encap: true } });
  const ts = { a: tsOf(env.oldA), b: tsOf(env.oldB) };
  assert.equal(env.oldA.local.port, 4500);
  await env.w.advance(160_000, 250);
  const { sa, sb } = reauthenticated(env, ts);
  assert.equal(sa.local.port, 4500);
  assert.equal(sb.local.port, 4500);
  assert.ok(sa.children.every((c) => c.encap) && sb.children.every((c) => c.encap), 'UDP encapsulation as before');
  const init = env.w.log.filter((p) => p.data[18] === INIT && (p.data[19]! & 0x20) === 0 && p.local.addr === A);
  assert.equal(init.at(-1)!.local.port, 4500, 'the new IKE_SA_INIT went from port 4500');
});

test('the operator deletes an IKE SA while its reauthentication waits for IKE_AUTH: the new IKE SA goes too, no tunnel is left', async () => {
  const env = await up({ a: REAUTH });
  // Hold the reauthentication's IKE_AUTH back until the old IKE SA was deleted.
  let hold = true;
  env.w.filter = (p) => (hold && p.data[18] === AUTH ? 'drop' : 'deliver');
  await env.w.advance(101_000, 500);
  assert.ok(env.oldA.reauthBy && !env.oldA.reauthBy.dead, 'a reauthentication is under way');
  env.w.afterDelivery = () => undefined;
  env.a.engine.deleteIke(env.oldA);
  hold = false;
  await env.w.advance(120_000, 500);
  assert.equal(live(env.a).length, 0, `no IKE SA left on a: ${live(env.a).map((s) => `${s.id} ${s.state}`)}`);
  assert.equal(live(env.b).length, 0, `no IKE SA left on b: ${live(env.b).map((s) => `${s.id} ${s.state}`)}`);
  for (const n of [env.a, env.b]) {
    assert.equal(n.dp.installed.size, 0, 'no SA installed');
    assert.equal(n.dp.pendingSpis, 0, 'no SPI left allocated');
  }
});

