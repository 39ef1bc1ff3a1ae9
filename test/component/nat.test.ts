/**
 * Peers behind NATs and moving peers, on two engines over the in-memory wire with a fake clock and a
 * NAT in front of A (192.0.2.1 → 203.0.113.5, ports mapped): NAT-T keepalives (RFC 3948), NAT
 * mapping changes (RFC 7296 §2.23) and MOBIKE's UPDATE_SA_ADDRESSES with the return routability
 * check (RFC 4555), including what strangers and replays must not achieve.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { pair, type Wire, type Node } from '../helpers/engine-pair.ts';
import type { OutPacket } from '../../src/ikev2/engine/engine.ts';
import { EngineContext } from '../../src/ikev2/engine/context.ts';
import { FakeScheduler } from '../../src/common/clock.ts';
import { MemoryDataplane } from '../../src/dataplane/memory.ts';
import { IkeSa } from '../../src/ikev2/sa/ike-sa.ts';
import { keepaliveTick, watchKeepalive, KEEPALIVE_KEY } from '../../src/ikev2/engine/keepalive.ts';
import { seal } from '../../src/ikev2/engine/message.ts';
import { natdHash, notify } from '../../src/ikev2/engine/payload-util.ts';
import { decodeMessage, decodePayloadChain } from '../../src/ikev2/codec/message.ts';
import { ExchangeType, NotifyType, PayloadType } from '../../src/ikev2/constants.ts';
import type { Payload } from '../../src/ikev2/codec/types.ts';

const A = '192.0.2.1';
const B = '192.0.2.2';
const PUBLIC = '203.0.113.5';

/** A NAT in front of A: A's port P is PUBLIC:(base + P); `base` changes on a rebinding. */
function natInFront(w: Wire): { rebind(base: number): void } {
  let base = 40000;
  const back = new Map<number, number>();
  w.nat = (p: OutPacket): OutPacket => {
    if (p.local.addr === A) {
      back.set(base + p.local.port, p.local.port);
      return { ...p, local: { addr: PUBLIC, port: base + p.local.port } };
    }
    if (p.remote.addr === PUBLIC) {
      const port = back.get(p.remote.port);
      // A mapping the NAT no longer has: the packet is lost.
      if (port === undefined || port + base !== p.remote.port) return { ...p, remote: { addr: '0.0.0.0', port: 0 } };
      return { ...p, remote: { addr: A, port } };
    }
    return p;
  };
  return { rebind: (b) => (base = b) };
}

function natPair(o: Parameters<typeof pair>[0] = {}) {
  const env = pair({ ...o, b: { remoteAddrs: [], ...o.b } });
  const nat = natInFront(env.w);
  return { ...env, nat };
}

async function up(w: Wire, a: Node, b: Node) {
  const p = a.engine.initiate('lab');
  await w.run();
  const sa = await p;
  const sb = [...b.engine.table.values()].find((x) => !x.dead)!;
  return { sa, sb };
}

const keepalivesFrom = (w: Wire, addr: string) => w.log.filter((p) => p.keepalive && p.local.addr === addr);

test('the side behind the NAT sends NAT-T keepalives to the NAT-T port every keep_alive when it sends nothing else', async () => {
  const { w, a, b } = natPair({ engineA: { keepAlive: 20 }, engineB: { keepAlive: 20 } });
  const { sa, sb } = await up(w, a, b);
  assert.equal(sa.natHere, true);
  assert.equal(sb.natThere, true);
  assert.equal(sb.natHere, false);
  assert.equal(sa.local.port, 4500, 'floated to the NAT-T port');
  const times: number[] = [w.sched.now()];
  w.filter = (p) => {
    if (p.local.addr === A) times.push(w.sched.now());
    return 'deliver';
  };
  await w.advance(70_000, 1_000);
  const kas = keepalivesFrom(w, A);
  assert.ok(kas.length >= 3 && kas.length <= 4, `${kas.length} keepalives in 70 s`);
  for (const k of kas) {
    assert.deepEqual(k.data, Buffer.from([0xff]));
    assert.deepEqual(k.remote, { addr: B, port: 4500 });
    assert.deepEqual(k.local, { addr: A, port: 4500 });
  }
  assert.equal(keepalivesFrom(w, B).length, 0, 'the side not behind a NAT sends none');
  assert.equal(a.engine.stats.keepalivesSent, kas.length);
  for (let i = 1; i < times.length; i++) assert.ok(times[i]! - times[i - 1]! <= 20_000, 'never more than keep_alive without a packet to the peer');
  for (let i = 2; i < times.length; i++) assert.ok(times[i]! - times[i - 1]! >= 19_000, 'and no keepalive much before it is due');
  // Gone with the IKE SA.
  a.engine.deleteIke(sa);
  await w.run();
  const n = keepalivesFrom(w, A).length;
  await w.advance(60_000, 5_000);
  assert.equal(keepalivesFrom(w, A).length, n);
});

test('no keepalives while IKE traffic to the peer keeps the mapping', async () => {
  const { w, a, b } = natPair({ engineA: { keepAlive: 20 }, a: { dpdDelay: 5 } });
  await up(w, a, b);
  w.log.length = 0;
  // A checks liveness every 5 s or so: that traffic keeps the mapping, no keepalive needed.
  await w.advance(60_000, 1_000);
  assert.ok(w.log.filter((p) => p.local.addr === A && !p.keepalive).length >= 5);
  assert.equal(keepalivesFrom(w, A).length, 0);
  assert.equal(a.engine.stats.keepalivesSent, 0);
});

test('the keepalive wheel: one heap entry for all SAs, first keepalives spread over the interval, at most one per SA per interval', () => {
  const sched = new FakeScheduler(1_000_000);
  const out: { t: number; id: number }[] = [];
  let seed = 1;
  const ctx = new EngineContext({
    scheduler: sched,
    random: (n) => {
      const b = Buffer.alloc(n);
      for (let i = 0; i < n; i++) b[i] = (seed = (seed * 1103515245 + 12345) >>> 0) >>> 24;
      return b;
    },
    send: (p) => {
      if (p.keepalive) out.push({ t: sched.now(), id: Number(p.remote.port) });
    },
    dataplane: new MemoryDataplane(),
    log: pino({ level: 'silent' }),
    port: 500,
    portNatT: 4500,
    ikeSaLimit: 10_000,
    keepAlive: 20,
  });
  sched.setHandler((key, _kind, due) => {
    if (key === KEEPALIVE_KEY) keepaliveTick(ctx, due);
  });
  const N = 5000;
  for (let i = 1; i <= N; i++) {
    const sa = new IkeSa(i, true, Buffer.alloc(8, 1), { addr: A, port: 4500 }, { addr: B, port: i }, sched.now());
    sa.state = 'ESTABLISHED';
    sa.natHere = true;
    watchKeepalive(ctx, sa);
  }
  assert.equal(sched.pending, 1, 'one tick in the heap, not one timer per SA');
  sched.advance(20_000);
  assert.equal(out.length, N, 'every SA sent its first keepalive within the interval');
  const perSecond = new Map<number, number>();
  for (const k of out) perSecond.set(Math.floor(k.t / 1000), (perSecond.get(Math.floor(k.t / 1000)) ?? 0) + 1);
  assert.ok(perSecond.size >= 9, `spread over ${perSecond.size} seconds`);
  assert.ok(Math.max(...perSecond.values()) <= N / 5, 'no second carries more than a fifth of them');
  assert.ok(Math.min(...out.map((k) => k.t)) >= 1_000_000 + 10_000, 'none before half the interval');
  out.length = 0;
  sched.advance(20_000);
  assert.equal(out.length, N, 'then one per SA per interval');
  const ids = new Set(out.map((k) => k.id));
  assert.equal(ids.size, N);
  assert.ok(sched.pending <= 2);
});

test('NAT mapping change: an authenticated, new request from a new port moves the IKE SA and the CHILD SA in the dataplane', async () => {
  const { w, a, b, nat } = natPair({ engineA: { keepAlive: 0 } });
  const { sa, sb } = await up(w, a, b);
  const child = sb.children[0]!;
  assert.equal(child.encap, true);
  assert.deepEqual(sb.remote, { addr: PUBLIC, port: 44500 });
  nat.rebind(50000);
  b.dp.events.length = 0;
  a.engine.rekeyChild(sa, sa.children[0]!); // any request from A after the rebinding
  await w.run();
  assert.deepEqual(sb.remote, { addr: PUBLIC, port: 54500 });
  assert.equal(b.engine.stats.peerMoved, 1);
  // The CHILD_SAs now use the new mapping (the rekeyed one is installed with it, the old one was updated).
  for (const c of sb.children) {
    const inst = b.dp.installed.get(c.id)!;
    assert.deepEqual(inst.outbound.dst, { addr: PUBLIC, port: 54500 });
    assert.deepEqual(inst.inbound.src, { addr: PUBLIC, port: 54500 });
    assert.equal(inst.outbound.udpEncap, true);
  }
  assert.ok(b.dp.events.some((e) => e.op === 'update' && e.childId === child.id));
});

test('NAT mapping change: a replayed or forged message from a new address moves nothing', async () => {
  const { w, a, b } = natPair({ engineA: { keepAlive: 0 } });
  const { sa, sb } = await up(w, a, b);
  // Record A's next request (a liveness check) and its delivery.
  w.log.length = 0;
  a.engine.rekeyChild(sa, sa.children[0]!);
  await w.run();
  const req = w.log.find((p) => p.local.addr === A && decodeMessage(p.data).header.exchange === ExchangeType.CREATE_CHILD_SA)!;
  assert.ok(req);
  const before = { ...sb.remote };
  b.dp.events.length = 0;
  // A replay from elsewhere (an older message ID by now): answered from the cache at most, nothing moves.
  b.engine.receive({ addr: B, port: 4500 }, { addr: '198.51.100.66', port: 4500 }, req.data);
  // A forged message (the next message ID, one bit flipped) from elsewhere: its ICV fails.
  const [next] = seal(sa, ExchangeType.INFORMATIONAL, sa.sendMid, false, []);
  const bad = Buffer.from(next!);
  bad[bad.length - 3]! ^= 0x10;
  b.engine.receive({ addr: B, port: 4500 }, { addr: '198.51.100.67', port: 4500 }, bad);
  await w.run();
  assert.deepEqual(sb.remote, before);
  assert.equal(b.engine.stats.peerMoved, 0);
  assert.ok(!b.dp.events.some((e) => e.op === 'update'));
  assert.ok(b.engine.stats.rxBadIcv >= 1);
});

test('without a NAT on the peer side, an authenticated message from another address does not move the SA', async () => {
  const { w, a, b } = pair({ b: { remoteAddrs: [] } });
  const { sa, sb } = await up(w, a, b);
  assert.equal(sb.natThere, false);
  w.nat = (p) => (p.local.addr === A ? { ...p, local: { addr: '192.0.2.99', port: p.local.port } } : p);
  a.engine.rekeyChild(sa, sa.children[0]!);
  await w.run();
  assert.equal(sb.remote.addr, A);
  assert.equal(b.engine.stats.peerMoved, 0);
});

// ---------------------------------------------------------------------------------------------- MOBIKE

/** A (the MOBIKE initiator role, played by hand) tells B it is now at `addr`:4500. */
function updateSaAddresses(sa: IkeSa, addr: string, b: string, o: { cookie2?: Buffer; natd?: boolean } = {}): Buffer {
  const payloads: Payload[] = [notify(NotifyType.UPDATE_SA_ADDRESSES)];
  if (o.natd !== false) {
    payloads.push(notify(NotifyType.NAT_DETECTION_SOURCE_IP, natdHash(sa.spiI, sa.spiR, addr, 4500)));
    payloads.push(notify(NotifyType.NAT_DETECTION_DESTINATION_IP, natdHash(sa.spiI, sa.spiR, b, 4500)));
  }
  if (o.cookie2) payloads.push(notify(NotifyType.COOKIE2, o.cookie2));
  const [data] = seal(sa, ExchangeType.INFORMATIONAL, sa.sendMid++, false, payloads);
  return data!;
}

function mobikePair() {
  const env = pair({ a: { mobike: true }, b: { mobike: true, remoteAddrs: [] } });
  // A's new address reaches A.
  env.w.nat = (p) => (p.remote.addr === '192.0.2.77' || p.remote.addr === '192.0.2.88' ? { ...p, remote: { addr: A, port: p.remote.port } } : p);
  return env;
}

function decodedFromB(w: Wire, to: string) {
  return w.log.filter((p) => p.local.addr === B && p.remote.addr === to).map((p) => decodeMessage(p.data).header);
}

test('MOBIKE: announced by both in IKE_AUTH; vpp-iked as initiator stays on its port without a NAT', async () => {
  const { w, a, b } = mobikePair();
  const { sa, sb } = await up(w, a, b);
  assert.equal(sa.mobike, true);
  assert.equal(sb.mobike, true);
  assert.equal(sa.local.port, 500);
  assert.deepEqual(sb.remote, { addr: A, port: 500 });
  assert.equal(sb.children[0]!.encap, false, 'no NAT, no UDP encapsulation');
  // One side without mobike: no MOBIKE.
  const plain = pair({ a: { mobike: false }, b: { mobike: true } });
  const r = await up(plain.w, plain.a, plain.b);
  assert.equal(r.sa.mobike, false);
  assert.equal(r.sb.mobike, false);
  assert.equal(r.sa.local.port, 500);
  const half = pair({ a: { mobike: true }, b: { mobike: false } });
  const h = await up(half.w, half.a, half.b);
  assert.equal(h.sa.mobike, false);
  assert.equal(h.sb.mobike, false);
});

test('MOBIKE UPDATE_SA_ADDRESSES: the IKE SA moves at once, the CHILD SA only after the return routability check', async () => {
  const { w, a, b } = mobikePair();
  const { sa, sb } = await up(w, a, b);
  const child = sb.children[0]!;
  // Hold A's answers to B's requests (the routability check) for now.
  w.filter = (p) => (p.local.addr === A && decodeMessage(p.data).header.flags & 0x20 ? 'drop' : 'deliver');
  b.dp.events.length = 0;
  const cookie2 = Buffer.alloc(16, 0xc2);
  b.engine.receive({ addr: B, port: 4500 }, { addr: '192.0.2.77', port: 4500 }, updateSaAddresses(sa, '192.0.2.77', B, { cookie2 }));
  await w.run();
  assert.deepEqual(sb.remote, { addr: '192.0.2.77', port: 4500 });
  assert.equal(b.engine.stats.mobikeUpdates, 1);
  // B's answer: to the new address, with our COOKIE2 and NAT detection payloads.
  const answer = w.log.find((p) => p.local.addr === B && p.remote.addr === '192.0.2.77' && decodeMessage(p.data).header.flags & 0x20);
  assert.ok(answer, 'answered at the new address');
  // (A's engine has no request out for that answer: it is dropped there; what it held is checked by B's side.)
  assert.ok(!b.dp.events.some((e) => e.op === 'update'), 'CHILD SA not moved before the check');
  const checks = decodedFromB(w, '192.0.2.77').filter((h) => h.exchange === ExchangeType.INFORMATIONAL && !(h.flags & 0x20));
  assert.equal(checks.length, 1, 'a return routability check went to the new address');
  // Let A's answers through: B retransmits its check, A answers it from its cache, the CHILD SA moves.
  w.filter = () => 'deliver';
  await w.advance(5_000);
  const inst = b.dp.installed.get(child.id)!;
  assert.deepEqual(inst.outbound.dst, { addr: '192.0.2.77', port: 4500 });
  assert.equal(inst.outbound.udpEncap, false);
  assert.ok(b.dp.events.some((e) => e.op === 'update' && e.childId === child.id));
  assert.equal(b.engine.stats.mobikeCheckFailed, 0);
  assert.equal(sb.state, 'ESTABLISHED');
});

test('MOBIKE: a NAT that appears with the move turns on UDP encapsulation and keepalives', async () => {
  const { w, a, b } = mobikePair();
  const { sa, sb } = await up(w, a, b);
  // A claims to be at 10.0.0.7 behind a NAT that shows it as 192.0.2.88:4500.
  const payloads: Payload[] = [
    notify(NotifyType.UPDATE_SA_ADDRESSES),
    notify(NotifyType.NAT_DETECTION_SOURCE_IP, natdHash(sa.spiI, sa.spiR, '10.0.0.7', 4500)),
    notify(NotifyType.NAT_DETECTION_DESTINATION_IP, natdHash(sa.spiI, sa.spiR, B, 4500)),
  ];
  const [req] = seal(sa, ExchangeType.INFORMATIONAL, sa.sendMid++, false, payloads);
  b.engine.receive({ addr: B, port: 4500 }, { addr: '192.0.2.88', port: 4500 }, req!);
  await w.advance(1_000);
  assert.equal(sb.natThere, true);
  assert.equal(sb.natHere, false);
  const inst = b.dp.installed.get(sb.children[0]!.id)!;
  assert.equal(inst.outbound.udpEncap, true);
  assert.deepEqual(inst.outbound.dst, { addr: '192.0.2.88', port: 4500 });
});

test('MOBIKE: a check answered without our COOKIE2 is refused and the IKE SA closed; the CHILD SA never moves', async () => {
  const { w, a, b } = mobikePair();
  const { sa, sb } = await up(w, a, b);
  sa.mobike = false; // A's engine then answers B's check without echoing COOKIE2
  b.dp.events.length = 0;
  b.engine.receive({ addr: B, port: 4500 }, { addr: '192.0.2.77', port: 4500 }, updateSaAddresses(sa, '192.0.2.77', B));
  await w.advance(1_000);
  assert.equal(b.engine.stats.mobikeCheckFailed, 1);
  assert.equal(sb.dead, true);
  assert.ok(!b.dp.events.some((e) => e.op === 'update'));
});

test('MOBIKE: a replayed UPDATE_SA_ADDRESSES, a forged one and one without MOBIKE move nothing', async () => {
  const { w, a, b } = mobikePair();
  const { sa, sb } = await up(w, a, b);
  const upd = updateSaAddresses(sa, '192.0.2.77', B, { cookie2: Buffer.alloc(8, 1) });
  b.engine.receive({ addr: B, port: 4500 }, { addr: '192.0.2.77', port: 4500 }, upd);
  await w.advance(1_000);
  assert.deepEqual(sb.remote, { addr: '192.0.2.77', port: 4500 });
  // The same message again from somewhere else: answered from the response cache, nothing moves.
  b.engine.receive({ addr: B, port: 4500 }, { addr: '192.0.2.88', port: 4500 }, upd);
  await w.advance(1_000);
  assert.deepEqual(sb.remote, { addr: '192.0.2.77', port: 4500 });
  assert.equal(b.engine.stats.mobikeUpdates, 1);
  // A forged one (bit flipped): integrity check fails.
  const forged = Buffer.from(updateSaAddresses(sa, '192.0.2.88', B));
  sa.sendMid--;
  forged[forged.length - 5]! ^= 1;
  b.engine.receive({ addr: B, port: 4500 }, { addr: '192.0.2.88', port: 4500 }, forged);
  await w.advance(1_000);
  assert.deepEqual(sb.remote, { addr: '192.0.2.77', port: 4500 });
  // Without MOBIKE negotiated the notification is ignored.
  const plain = pair({ a: { mobike: false }, b: { mobike: false, remoteAddrs: [] } });
  plain.w.nat = (p) => (p.remote.addr === '192.0.2.77' ? { ...p, remote: { addr: A, port: p.remote.port } } : p);
  const r = await up(plain.w, plain.a, plain.b);
  plain.b.engine.receive({ addr: B, port: 500 }, { addr: '192.0.2.77', port: 500 }, updateSaAddresses(r.sa, '192.0.2.77', B));
  await plain.w.run();
  assert.equal(r.sb.remote.addr, A);
  assert.equal(plain.b.engine.stats.mobikeUpdates, 0);
});

test('MOBIKE: liveness checks with NAT detection payloads are answered with ours, for the addresses they came from', async () => {
  const { w, a, b } = mobikePair();
  const { sa } = await up(w, a, b);
  const payloads: Payload[] = [
    notify(NotifyType.NAT_DETECTION_SOURCE_IP, natdHash(sa.spiI, sa.spiR, A, 4500)),
    notify(NotifyType.NAT_DETECTION_DESTINATION_IP, natdHash(sa.spiI, sa.spiR, B, 4500)),
  ];
  const [req] = seal(sa, ExchangeType.INFORMATIONAL, sa.sendMid++, false, payloads);
  w.log.length = 0;
  // As if A's packet came through a NAT as 198.51.100.3:33000.
  b.engine.receive({ addr: B, port: 4500 }, { addr: '198.51.100.3', port: 33000 }, req!);
  await w.run();
  const resp = w.log.find((p) => p.local.addr === B);
  assert.ok(resp);
  const inner = openWith(sa, resp.data);
  const src = inner.find((p) => p.type === PayloadType.NOTIFY && p.notifyType === NotifyType.NAT_DETECTION_SOURCE_IP);
  const dst = inner.find((p) => p.type === PayloadType.NOTIFY && p.notifyType === NotifyType.NAT_DETECTION_DESTINATION_IP);
  assert.ok(src?.type === PayloadType.NOTIFY && dst?.type === PayloadType.NOTIFY);
  assert.deepEqual(src.data, natdHash(sa.spiI, sa.spiR, B, 4500));
  assert.deepEqual(dst.data, natdHash(sa.spiI, sa.spiR, '198.51.100.3', 33000), 'where B saw A: A learns of the NAT');
});

/** The payloads inside a message of `sa`'s peer. */
function openWith(sa: IkeSa, data: Buffer): Payload[] {
  const m = decodeMessage(data);
  const sk = m.payloads.find((p) => p.type === PayloadType.SK);
  assert.ok(sk?.type === PayloadType.SK);
  const plain = sa.cipher!.open(data, sk);
  return decodePayloadChain(plain, sk.innerType, 0, plain.length).payloads;
}
