/**
 * IKE_INTERMEDIATE (RFC 9242) with additional key exchanges (RFC 9370) and IKE_FOLLOWUP_KE between
 * two engines over the in-memory wire with a fake clock: message IDs and keys, loss, duplication and
 * reordering (seeded runs), hostile and out-of-order messages, peers that never follow up.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { child, pair, seededRandom, type Wire } from '../helpers/engine-pair.ts';
import { parseProposals } from '../../src/ikev2/crypto/proposals.ts';
import { encodePayloadChain, decodeMessage, decodePayloadChain } from '../../src/ikev2/codec/message.ts';
import type { Payload } from '../../src/ikev2/codec/types.ts';
import { ExchangeType, HeaderFlag, KeId, NotifyType, PayloadType } from '../../src/ikev2/constants.ts';
import { createKeyExchange } from '../../src/ikev2/crypto/ke.ts';
import type { IkeSa } from '../../src/ikev2/sa/ike-sa.ts';
import type { Node } from '../helpers/engine-pair.ts';
import { IkeCipher } from '../../src/ikev2/crypto/protect.ts';
import { randomBytes } from 'node:crypto';

const HYBRID = 'aes256gcm16-prfsha256-x25519-ke1_mlkem768';
const KE_EXCHANGE = 18;

function hybridPair(ike = HYBRID, esp = 'aes256gcm16') {
  const proposals = parseProposals(ike, 'ike');
  const espProposals = parseProposals(esp, 'esp');
  return pair({
    a: { proposals, children: [child('net', { localTs: ['10.1.0.0/16'], remoteTs: ['10.2.0.0/16'], espProposals })] },
    b: { proposals, children: [child('net', { localTs: ['10.2.0.0/16'], remoteTs: ['10.1.0.0/16'], espProposals })] },
  });
}

const only = (n: Node): IkeSa => {
  const all = [...n.engine.table.values()];
  assert.equal(all.length, 1, `one IKE SA on ${n.addr}`);
  return all[0]!;
};

/** (exchange, message ID, response) of every message on the wire (the fragments of one counted once). */
function trace(w: Wire): string[] {
  const all = w.log.map((p) => `${p.data[KE_EXCHANGE]}#${p.data.readUInt32BE(20)}${p.data[19]! & HeaderFlag.RESPONSE ? 'r' : ''}`);
  return all.filter((x, i) => i === 0 || x !== all[i - 1]);
}

/** Datagrams that are IKE fragments (SKF, RFC 7383). */
const fragments = (w: Wire): number => w.log.filter((p) => p.data[16] === PayloadType.SKF).length;

/** A copy of an SA with some fields replaced (its accessors, e.g. the SPIs, still work). */
function like(sa: IkeSa, over: Partial<Pick<IkeSa, 'initiator' | 'cipher'>>): IkeSa {
  return Object.assign(Object.create(Object.getPrototypeOf(sa) as object) as IkeSa, sa, over);
}

/** A message sealed with an SA's current keys, as its peer would send it. */
function craft(sa: IkeSa, exchange: number, mid: number, response: boolean, payloads: Payload[]): Buffer {
  const chain = encodePayloadChain(payloads);
  return sa.cipher!.seal(
    { spiI: sa.spiI, spiR: sa.spiR, version: 0x20, exchange, flags: (sa.initiator ? HeaderFlag.INITIATOR : 0) | (response ? HeaderFlag.RESPONSE : 0), messageId: mid, length: 0, nextPayload: PayloadType.SK },
    chain.firstType,
    chain.bytes,
  );
}

/** The inner payloads of a message, opened with an SA's keys. */
function open(sa: IkeSa, data: Buffer): Payload[] {
  const m = decodeMessage(data);
  const sk = m.payloads.find((p) => p.type === PayloadType.SK);
  assert.ok(sk && sk.type === PayloadType.SK);
  const plain = sa.cipher!.open(data, sk);
  return decodePayloadChain(plain, sk.innerType, 0, plain.length).payloads;
}

const notifyTypes = (ps: Payload[]): number[] => ps.flatMap((p) => (p.type === PayloadType.NOTIFY ? [p.notifyType] : []));

test('one, two and seven additional key exchanges: one IKE_INTERMEDIATE each, message IDs 1..n, IKE_AUTH n+1, same keys', async () => {
  for (const n of [1, 2, 7]) {
    const adds = Array.from({ length: n }, (_, i) => `ke${i + 1}_${['mlkem768', 'mlkem512', 'mlkem1024', 'x25519', 'ecp256', 'mlkem768', 'x448'][i]}`);
    const { w, a, b } = hybridPair(`aes256gcm16-prfsha256-x25519-${adds.join('-')}`);
    const p = a.engine.initiate('lab');
    await w.run();
    const sa = await p;
    const sb = only(b);
    assert.equal(sa.state, 'ESTABLISHED');
    assert.equal(sb.state, 'ESTABLISHED');
    const want = ['34#0', '34#0r'];
    for (let i = 1; i <= n; i++) want.push(`43#${i}`, `43#${i}r`);
    want.push(`35#${n + 1}`, `35#${n + 1}r`);
    assert.deepEqual(trace(w), want, `${n} additional key exchanges`);
    // ML-KEM-1024's messages (about 1,650 bytes) go as fragments, the ML-KEM-768 ones (1,249) whole
    if (n === 7) assert.ok(fragments(w) >= 4, `ML-KEM-1024 messages fragmented (${fragments(w)} fragments)`);
    else assert.equal(fragments(w), 0);
    assert.deepEqual(sa.keys!.skD, sb.keys!.skD);
    assert.equal(sa.addKeDone, n);
    assert.equal(sa.children.length, 1);
    assert.deepEqual(a.dp.installed.get(sa.children[0]!.id)!.outbound.encKey, b.dp.installed.get(sb.children[0]!.id)!.inbound.encKey);
    // nothing of the handshake is kept
    for (const s of [sa, sb]) assert.deepEqual([s.intAuthI, s.intAuthR, s.prevCipher, s.initRequest], [undefined, undefined, undefined, undefined]);
  }
});

test('ML-KEM-768 as the only key exchange: IKE_SA_INIT carries it, no IKE_INTERMEDIATE', async () => {
  const { w, a, b } = hybridPair('aes256gcm16-prfsha256-mlkem768');
  const p = a.engine.initiate('lab');
  await w.run();
  const sa = await p;
  assert.equal(sa.suite!.ke, KeId.ML_KEM_768);
  assert.deepEqual(trace(w), ['34#0', '34#0r', '35#1', '35#1r']);
  assert.ok(w.log[0]!.data.length > 1184 && w.log[1]!.data.length > 1088);
  assert.deepEqual(sa.keys!.skD, only(b).keys!.skD);
});

test('a classic peer: hybrid-or-classic falls back to classic, hybrid-only gets NO_PROPOSAL_CHOSEN', async () => {
  {
    const { w, a, b } = pair({ a: { proposals: parseProposals(`${HYBRID}, aes256gcm16-prfsha256-x25519`, 'ike') } });
    const p = a.engine.initiate('lab');
    await w.run();
    const sa = await p;
    assert.equal(sa.suite!.addKe, undefined);
    assert.ok(!trace(w).some((x) => x.startsWith('43')));
    assert.equal(only(b).state, 'ESTABLISHED');
  }
  {
    const { w, a, b } = pair({ a: { proposals: parseProposals(HYBRID, 'ike') } });
    const p = a.engine.initiate('lab').catch((e: Error) => e);
    await w.run();
    assert.match(String(await p), /NO_PROPOSAL_CHOSEN/);
    assert.equal(b.engine.table.size, 0);
  }
});

test('seeded loss, duplication and reordering: every run establishes with equal keys or fails cleanly, retransmissions answered from the cache', async () => {
  let retransmitted = 0;
  let answeredFromCache = 0;
  let established = 0;
  for (let seed = 1; seed <= 24; seed++) {
    const { w, a, b } = hybridPair(seed % 3 === 0 ? `${HYBRID}-ke2_mlkem512` : HYBRID);
    const rnd = seededRandom(seed * 101);
    w.filter = (): 'deliver' | 'drop' | 'dup' => {
      const x = rnd(4).readUInt32BE(0) % 100;
      return x < 25 ? 'drop' : x < 40 ? 'dup' : 'deliver';
    };
    w.delayMs = 5;
    const p = a.engine.initiate('lab').then(
      (s) => s,
      (e: Error) => e,
    );
    // until established or given up (retransmissions span about 165 s)
    for (let t = 0; t < 400_000; t += 500) {
      if (seed % 2 === 0) w.reorder();
      await w.advance(500);
      const sas = [...a.engine.table.values()];
      if (sas.length === 0 || sas[0]!.state === 'ESTABLISHED') break;
    }
    const r = await p;
    retransmitted += a.engine.stats.retransmitsSent;
    answeredFromCache += b.engine.stats.retransmitsAnswered;
    if (r instanceof Error) {
      // gave up after its retransmissions: nothing left on our side
      assert.equal(a.engine.table.size, 0, `seed ${seed}: ${r.message}`);
      continue;
    }
    assert.equal(r.state, 'ESTABLISHED', `seed ${seed}`);
    w.filter = () => 'deliver';
    await w.advance(1000);
    const sb = [...b.engine.table.values()].find((s) => s.spiI.equals(r.spiI));
    assert.ok(sb, `seed ${seed}: responder SA`);
    assert.equal(sb.state, 'ESTABLISHED', `seed ${seed}`);
    assert.deepEqual(r.keys!.skD, sb.keys!.skD, `seed ${seed}: same keys`);
    established++;
  }
  assert.ok(established >= 18, `most runs get through (${established} of 24)`);
  assert.ok(retransmitted > 10, `requests were retransmitted (${retransmitted})`);
  if (process.env.TEST_VERBOSE) console.log({ established, retransmitted, answeredFromCache });
  assert.ok(answeredFromCache > 0, `retransmitted IKE_INTERMEDIATE/IKE_AUTH answered from the cache (${answeredFromCache})`);
});

/** A hybrid pair stopped after IKE_SA_INIT: the initiator's IKE_INTERMEDIATE request never reaches b. */
async function afterInit(): Promise<{ w: Wire; a: Node; b: Node; sa: IkeSa; sb: IkeSa; p: Promise<unknown> }> {
  const { w, a, b } = hybridPair();
  w.filter = (p) => (p.data[KE_EXCHANGE] === ExchangeType.IKE_SA_INIT ? 'deliver' : 'drop');
  const p = a.engine.initiate('lab').catch((e: Error) => e);
  await w.run();
  const sa = only(a);
  const sb = only(b);
  assert.equal(sb.state, 'CONNECTING');
  w.filter = () => 'deliver';
  w.log = [];
  return { w, a, b, sa, sb, p };
}

/** Deliver a crafted message from a to b and return b's answer's payloads (opened with a's keys). */
async function toB(w: Wire, a: Node, b: Node, sa: IkeSa, data: Buffer): Promise<Payload[]> {
  b.engine.receive({ addr: b.addr, port: 500 }, { addr: a.addr, port: 500 }, data);
  const out = w.queue.filter((x) => x.p.local.addr === b.addr).map((x) => x.p.data);
  w.queue = [];
  assert.equal(out.length, 1, 'one answer');
  return open(sa, out[0]!);
}

test('responder: wrong-length ML-KEM key, wrong method, no KE, IKE_AUTH too early, an IKE_INTERMEDIATE too many: INVALID_SYNTAX and the half-open SA is gone', async () => {
  const ke = (group: number, data: Buffer): Payload => ({ type: PayloadType.KE, critical: false, group, data });
  const good = createKeyExchange(KeId.ML_KEM_768).publicValue;
  const cases: { name: string; exchange: number; payloads: Payload[] }[] = [
    { name: 'ML-KEM-768 key of 1183 bytes', exchange: ExchangeType.IKE_INTERMEDIATE, payloads: [ke(KeId.ML_KEM_768, good.subarray(1))] },
    { name: 'ML-KEM-768 key of 1185 bytes', exchange: ExchangeType.IKE_INTERMEDIATE, payloads: [ke(KeId.ML_KEM_768, Buffer.concat([good, Buffer.from([0])]))] },
    { name: 'a key that fails the FIPS 203 check', exchange: ExchangeType.IKE_INTERMEDIATE, payloads: [ke(KeId.ML_KEM_768, Buffer.alloc(1184, 0xff))] },
    { name: 'ML-KEM-1024 instead of ML-KEM-768', exchange: ExchangeType.IKE_INTERMEDIATE, payloads: [ke(KeId.ML_KEM_1024, createKeyExchange(KeId.ML_KEM_1024).publicValue)] },
    { name: 'no KE payload', exchange: ExchangeType.IKE_INTERMEDIATE, payloads: [{ type: PayloadType.NONCE, critical: false, data: Buffer.alloc(32, 1) }] },
    { name: 'IKE_AUTH before IKE_INTERMEDIATE', exchange: ExchangeType.IKE_AUTH, payloads: [{ type: PayloadType.IDi, critical: false, idType: 2, data: Buffer.from('a.lab') }, { type: PayloadType.AUTH, critical: false, method: 2, data: Buffer.alloc(32) }] },
  ];
  for (const c of cases) {
    const { w, a, b, sa, sb } = await afterInit();
    const answer = await toB(w, a, b, sa, craft(sa, c.exchange, 1, false, c.payloads));
    assert.deepEqual(notifyTypes(answer), [NotifyType.INVALID_SYNTAX], c.name);
    assert.equal(sb.dead, true, `${c.name}: responder SA dropped`);
    assert.equal(b.engine.table.size, 0, c.name);
  }
  // a second IKE_INTERMEDIATE after the only negotiated one
  {
    const { w, a, b, sa, sb } = await afterInit();
    const i = createKeyExchange(KeId.ML_KEM_768);
    const first = await toB(w, a, b, sa, craft(sa, ExchangeType.IKE_INTERMEDIATE, 1, false, [ke(KeId.ML_KEM_768, i.publicValue)]));
    assert.equal(first[0]!.type, PayloadType.KE);
    assert.equal(sb.addKeDone, 1);
    // its retransmission (old keys, same message ID) is answered from the cache, byte for byte
    const again = craft(sa, ExchangeType.IKE_INTERMEDIATE, 1, false, [ke(KeId.ML_KEM_768, i.publicValue)]);
    b.engine.receive({ addr: b.addr, port: 500 }, { addr: a.addr, port: 500 }, again);
    assert.equal(w.queue.length, 1);
    assert.deepEqual(open(sa, w.queue[0]!.p.data), first);
    w.queue = [];
    // sealed as the initiator would with the keys after the exchange (b's new keys, initiator's side)
    const asInitiator = like(sb, { initiator: true, cipher: new IkeCipher(sb.suite!, sb.keys!, true, randomBytes) });
    const extra = craft(asInitiator, ExchangeType.IKE_INTERMEDIATE, 2, false, [ke(KeId.ML_KEM_768, i.publicValue)]);
    const last = await toB(w, a, b, asInitiator, extra);
    assert.deepEqual(notifyTypes(last), [NotifyType.INVALID_SYNTAX]);
    assert.equal(sb.dead, true, 'an IKE_INTERMEDIATE beyond the negotiated ones drops the SA');
  }
});

test('initiator: a ciphertext of the wrong length or a response without KE fails the IKE SA', async () => {
  for (const payloads of [
    [{ type: PayloadType.KE, critical: false, group: KeId.ML_KEM_768, data: Buffer.alloc(1087, 1) }],
    [{ type: PayloadType.KE, critical: false, group: KeId.ML_KEM_768, data: Buffer.alloc(1184, 1) }],
    [{ type: PayloadType.KE, critical: false, group: KeId.ML_KEM_512, data: Buffer.alloc(768, 1) }],
    [{ type: PayloadType.NOTIFY, critical: false, protocol: 0, spi: Buffer.alloc(0), notifyType: NotifyType.INVALID_SYNTAX, data: Buffer.alloc(0) }],
  ] as Payload[][]) {
    const { w, a, b } = hybridPair();
    // b's answers to IKE_INTERMEDIATE are lost; we answer for it
    w.filter = (p) => (p.local.addr === b.addr && p.data[KE_EXCHANGE] === ExchangeType.IKE_INTERMEDIATE ? 'drop' : 'deliver');
    const p = a.engine.initiate('lab').catch((e: Error) => e);
    await w.run();
    const sb = only(b);
    const sa = only(a);
    assert.equal(sa.active?.exchange, ExchangeType.IKE_INTERMEDIATE);
    // sealed with the keys b used for its response (before its key update): b's previous cipher
    const resp = craft(like(sb, { cipher: sb.prevCipher }), ExchangeType.IKE_INTERMEDIATE, 1, true, payloads);
    a.engine.receive({ addr: a.addr, port: 500 }, { addr: b.addr, port: 500 }, resp);
    const r = await p;
    assert.ok(r instanceof Error, 'initiate() rejects');
    assert.equal(a.engine.table.size, 0, 'initiator SA gone');
  }
});

test('a peer that never sends IKE_INTERMEDIATE: the responder drops the half-open SA; an unanswered one: the initiator gives up', async () => {
  {
    const { w, b } = await afterInit();
    w.filter = () => 'drop';
    await w.advance(29_000, 1000);
    assert.equal(b.engine.table.size, 1);
    await w.advance(2000, 1000);
    assert.equal(b.engine.table.size, 0, 'half-open timeout (30 s)');
  }
  {
    const { w, a, p } = await afterInit();
    w.filter = (x) => (x.local.addr === a.addr ? 'deliver' : 'drop');
    await w.advance(200_000, 2000);
    const r = await p;
    assert.ok(r instanceof Error && /not responding|giving up|peer/.test(r.message), String(r));
    assert.equal(a.engine.table.size, 0);
    assert.equal(a.engine.stats.retransmitsSent, 5, 'retransmitted like any request');
  }
});

test('CHILD_SA rekey with hybrid PFS over IKE_FOLLOWUP_KE, lossy: keys agree, the old SA goes, no SPI left over', async () => {
  const { w, a, b } = hybridPair(HYBRID, 'aes256gcm16-x25519-ke1_mlkem768-ke2_mlkem512');
  const p = a.engine.initiate('lab');
  await w.run();
  const sa = await p;
  const sb = only(b);
  let n = 0;
  // lose the first IKE_FOLLOWUP_KE request and the first response once each
  w.filter = (x) => (x.data[KE_EXCHANGE] === ExchangeType.IKE_FOLLOWUP_KE && n++ % 3 === 0 ? 'drop' : 'deliver');
  w.log = [];
  a.engine.rekeyChild(sa, sa.children[0]!);
  await w.advance(60_000, 1000);
  assert.ok(trace(w).filter((x) => x.startsWith('44')).length >= 4, trace(w).join(' '));
  const ca = sa.children.filter((c) => c.state === 'INSTALLED');
  const cb = sb.children.filter((c) => c.state === 'INSTALLED');
  assert.equal(ca.length, 1);
  assert.equal(cb.length, 1);
  assert.equal(sa.children.length, 1, 'old CHILD_SA deleted');
  assert.deepEqual(ca[0]!.proposal!.addKe, [KeId.ML_KEM_768, KeId.ML_KEM_512, 0, 0, 0, 0, 0]);
  assert.deepEqual(a.dp.installed.get(ca[0]!.id)!.outbound.encKey, b.dp.installed.get(cb[0]!.id)!.inbound.encKey);
  assert.equal(a.dp.pendingSpis, 0);
  assert.equal(b.dp.pendingSpis, 0);
  // and the other way, with an IKE SA rekey after it
  w.filter = () => 'deliver';
  b.engine.rekeyChild(sb, cb[0]!);
  await w.run();
  b.engine.rekeyIke(sb);
  await w.run();
  const na = only(a);
  const nb = only(b);
  assert.notDeepEqual(na.spiI, sa.spiI);
  assert.deepEqual(na.keys!.skD, nb.keys!.skD);
  assert.deepEqual(na.suite!.addKe, [KeId.ML_KEM_768, 0, 0, 0, 0, 0, 0]);
  assert.equal(na.children.length, 1);
});

test('IKE_FOLLOWUP_KE: unknown link data gets STATE_NOT_FOUND; a peer that never follows up loses its CHILD_SA and our SPI is released', async () => {
  const { w, a, b } = hybridPair(HYBRID, 'aes256gcm16-x25519-ke1_mlkem768');
  const p = a.engine.initiate('lab');
  await w.run();
  const sa = await p;
  const sb = only(b);
  // unknown link
  const ke: Payload = { type: PayloadType.KE, critical: false, group: KeId.ML_KEM_768, data: createKeyExchange(KeId.ML_KEM_768).publicValue };
  const link: Payload = { type: PayloadType.NOTIFY, critical: false, protocol: 0, spi: Buffer.alloc(0), notifyType: NotifyType.ADDITIONAL_KEY_EXCHANGE, data: Buffer.alloc(8, 9) };
  w.log = [];
  b.engine.receive({ addr: b.addr, port: 500 }, { addr: a.addr, port: 500 }, craft(sa, ExchangeType.IKE_FOLLOWUP_KE, sa.sendMid, false, [ke, link]));
  const ans = w.queue.filter((x) => x.p.local.addr === b.addr);
  assert.equal(ans.length, 1);
  assert.deepEqual(notifyTypes(open(sa, ans[0]!.p.data)), [NotifyType.STATE_NOT_FOUND]);
  w.queue = [];
  sa.sendMid++;
  // a starts a rekey but its IKE_FOLLOWUP_KE never arrives
  w.filter = (x) => (x.data[KE_EXCHANGE] === ExchangeType.IKE_FOLLOWUP_KE ? 'drop' : 'deliver');
  a.engine.rekeyChild(sa, sa.children[0]!);
  await w.run();
  assert.ok(sb.followupIn, 'b waits for the follow-up');
  assert.equal(b.dp.pendingSpis, 1, 'b holds an SPI for it');
  await w.advance(31_000, 1000);
  assert.equal(sb.followupIn, undefined);
  assert.equal(b.dp.pendingSpis, 0, 'released after the timeout');
  assert.equal(sb.children.filter((c) => c.state === 'INSTALLED').length, 1, 'the old CHILD_SA stays');
});

test('IKE_FOLLOWUP_KE with a wrong-length ML-KEM key: INVALID_SYNTAX, the pending CHILD_SA dropped on both sides, no SPI left', async () => {
  const { w, a, b } = hybridPair(HYBRID, 'aes256gcm16-x25519-ke1_mlkem768');
  const p = a.engine.initiate('lab');
  await w.run();
  const sa = await p;
  const sb = only(b);
  // a's IKE_FOLLOWUP_KE request is lost; a forged one with the right link but a short key gets there first
  w.filter = (x) => (x.data[KE_EXCHANGE] === ExchangeType.IKE_FOLLOWUP_KE && x.local.addr === a.addr ? 'drop' : 'deliver');
  a.engine.rekeyChild(sa, sa.children[0]!);
  await w.run();
  const f = sb.followupIn;
  assert.ok(f);
  const bad: Payload[] = [
    { type: PayloadType.KE, critical: false, group: KeId.ML_KEM_768, data: Buffer.alloc(1183, 1) },
    { type: PayloadType.NOTIFY, critical: false, protocol: 0, spi: Buffer.alloc(0), notifyType: NotifyType.ADDITIONAL_KEY_EXCHANGE, data: f.link },
  ];
  b.engine.receive({ addr: b.addr, port: 500 }, { addr: a.addr, port: 500 }, craft(sa, ExchangeType.IKE_FOLLOWUP_KE, sb.recvMid, false, bad));
  const ans = w.queue.filter((x) => x.p.local.addr === b.addr);
  assert.equal(ans.length, 1);
  assert.deepEqual(notifyTypes(open(sa, ans[0]!.p.data)), [NotifyType.INVALID_SYNTAX]);
  assert.equal(sb.followupIn, undefined);
  assert.equal(b.dp.pendingSpis, 0);
  // a's own request, retransmitted, is answered from the cache with that error: its rekey fails and is retried later
  w.filter = () => 'deliver';
  await w.advance(10_000, 1000);
  assert.equal(sa.followupOut, undefined);
  assert.equal(a.dp.pendingSpis, 0);
  assert.equal(sa.children.filter((c) => c.state === 'INSTALLED').length, 1, 'the old CHILD_SA stays');
  assert.equal(sb.children.filter((c) => c.state === 'INSTALLED').length, 1);
  assert.equal(sa.state, 'ESTABLISHED');
});
