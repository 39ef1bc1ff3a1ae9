/**
 * Engine scenarios over the in-memory wire with a fake clock (RFC 7296 exchange rules).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pair, child, psk, config, conn, Wire } from '../helpers/engine-pair.ts';
import { decodeMessage } from '../../src/ikev2/codec/message.ts';
import { ExchangeType, HeaderFlag, NotifyType, PayloadType } from '../../src/ikev2/constants.ts';
import { parseProposals } from '../../src/ikev2/crypto/proposals.ts';
import type { OutPacket } from '../../src/ikev2/engine/engine.ts';

function isExchange(p: OutPacket, ex: number, response?: boolean): boolean {
  const h = decodeMessage(p.data).header;
  return h.exchange === ex && (response === undefined || ((h.flags & HeaderFlag.RESPONSE) !== 0) === response);
}

async function establish() {
  const env = pair();
  const p = env.a.engine.initiate('lab');
  await env.w.run();
  const sa = await p;
  const sb = [...env.b.engine.table.values()][0]!;
  return { ...env, sa, sb };
}

test('an additional CHILD_SA is created with CREATE_CHILD_SA, with PFS when the proposal has a group', async () => {
  const { w, a, b, sa, sb } = await establish();
  const cfg = child('pfs', { localTs: ['10.1.1.0/24'], remoteTs: ['10.2.1.0/24'], espProposals: parseProposals('aes128gcm16-x25519', 'esp') });
  a.engine.config.get('lab')!.children.push(cfg);
  b.engine.config.get('lab')!.children.push(child('pfs', { localTs: ['10.2.1.0/24'], remoteTs: ['10.1.1.0/24'], espProposals: parseProposals('aes128gcm16-x25519', 'esp') }));
  w.log.length = 0;
  await a.engine.initiate('lab', 'pfs');
  await w.run();
  assert.equal(sa.children.length, 2);
  assert.equal(sb.children.length, 2);
  const c = sa.children[1]!;
  assert.equal(c.name, 'pfs');
  assert.equal(c.proposal!.ke, 31);
  assert.equal(sb.children[1]!.spiOut, c.spiIn);
  assert.ok(w.log.some((p) => isExchange(p, ExchangeType.CREATE_CHILD_SA, false)));
  // Keys differ from the first CHILD_SA and match crosswise.
  const ia = a.dp.installed.get(c.id)!;
  const ib = b.dp.installed.get(sb.children[1]!.id)!;
  assert.deepEqual(ia.outbound.encKey, ib.inbound.encKey);
  assert.notDeepEqual(ia.outbound.encKey, a.dp.installed.get(sa.children[0]!.id)!.outbound.encKey);
});

test('deleting a CHILD_SA from either side removes it on both and from both dataplanes', async () => {
  const { w, a, b, sa, sb } = await establish();
  const ca = sa.children[0]!;
  assert.ok(a.engine.deleteChild(ca.id));
  await w.run();
  assert.equal(sa.children.length, 0);
  assert.equal(sb.children.length, 0);
  assert.equal(a.dp.installed.size, 0);
  assert.equal(b.dp.installed.size, 0);
  assert.equal(sa.state, 'ESTABLISHED');
  // And from the responder side with a new child.
  await a.engine.initiate('lab', 'net');
  await w.run();
  assert.equal(sb.children.length, 1);
  assert.ok(b.engine.deleteChild(sb.children[0]!.id));
  await w.run();
  assert.equal(sa.children.length, 0);
  assert.equal(b.dp.installed.size, 0);
});

test('deleting the IKE SA from the responder side tears down both ends', async () => {
  const { w, a, b, sa, sb } = await establish();
  b.engine.deleteIke(sb);
  await w.run();
  assert.equal(sb.dead, true);
  assert.equal(sa.dead, true);
  assert.equal(a.engine.table.size, 0);
  assert.equal(b.engine.table.size, 0);
  assert.equal(a.dp.installed.size, 0);
  assert.equal(b.dp.installed.size, 0);
  assert.ok(a.events.some((e) => e.type === 'ike-down'));
});

test('a retransmitted request is answered from the response cache without reprocessing', async () => {
  const { w, a, b, sa } = await establish();
  // Duplicate every packet of the next exchange (a DPD-like empty INFORMATIONAL via CREATE_CHILD).
  w.filter = (p) => (p.local.addr === '192.0.2.1' ? 'dup' : 'deliver');
  const before = b.engine.stats.retransmitsAnswered;
  await a.engine.initiate('lab', 'net').catch(() => undefined);
  a.engine.deleteChild(sa.children[0]!.id);
  await w.run();
  assert.ok(b.engine.stats.retransmitsAnswered > before, 'duplicate answered from cache');
  // Processing happened once: the CHILD_SA is gone on both sides and nothing else changed.
  assert.equal(b.dp.installed.size, 0);
  assert.equal(a.engine.stats.rxUnmatchedResponse >= 1, true, 'the second copy of the response matches no request');
});

test('the initiator retransmits with backoff (4 s × 1.8^n) and gives up after 5 retransmissions', async () => {
  const { w, a } = pair();
  w.filter = () => 'drop';
  const p = a.engine.initiate('lab');
  let rejected: Error | undefined;
  p.catch((e: Error) => (rejected = e));
  const sent = (): number => w.log.length;
  await w.run();
  assert.equal(sent(), 1);
  const delays = [4000, 7200, 12960, 23328, 41990];
  const start = w.sched.now();
  let due = start;
  for (let i = 0; i < delays.length; i++) {
    due += delays[i]!;
    await w.advance(due - 1 - w.sched.now(), 100_000);
    assert.equal(sent(), i + 1, `no retransmission before ${due - start} ms`);
    await w.advance(1, 1);
    assert.equal(sent(), i + 2, `retransmission ${i + 1} at ${due - start} ms`);
  }
  await w.advance(75_582 + 10);
  await w.run();
  assert.ok(rejected, 'initiate rejected');
  assert.match(rejected!.message, /not responding/);
  assert.equal(a.engine.table.size, 0);
});

test('a lost response is recovered by retransmission (drop the first IKE_AUTH response)', async () => {
  const { w, a, b } = pair();
  let dropped = false;
  w.filter = (p) => {
    if (!dropped && p.local.addr === '192.0.2.2' && isExchange(p, ExchangeType.IKE_AUTH, true)) {
      dropped = true;
      return 'drop';
    }
    return 'deliver';
  };
  const p = a.engine.initiate('lab');
  await w.run();
  await w.advance(4001);
  const sa = await p;
  assert.equal(sa.state, 'ESTABLISHED');
  assert.equal(b.engine.stats.retransmitsAnswered, 1);
  assert.equal(sa.children.length, 1);
  assert.equal(b.dp.installed.size, 1, 'responder installed once');
});

test('INVALID_KE_PAYLOAD: the responder asks for its group and the initiator retries once with it', async () => {
  const { w, a, b } = pair({
    a: { proposals: parseProposals('aes256gcm16-prfsha256-x25519-ecp256', 'ike') },
    b: { proposals: parseProposals('aes256gcm16-prfsha256-ecp256', 'ike') },
  });
  const p = a.engine.initiate('lab');
  await w.run();
  const sa = await p;
  assert.equal(sa.suite!.ke, 19);
  assert.equal(b.engine.stats.invalidKe, 1);
  const inits = w.log.filter((x) => isExchange(x, ExchangeType.IKE_SA_INIT, true));
  const first = decodeMessage(inits[0]!.data);
  const n = first.payloads.find((x) => x.type === PayloadType.NOTIFY);
  assert.ok(n && n.type === PayloadType.NOTIFY && n.notifyType === NotifyType.INVALID_KE_PAYLOAD);
  assert.equal(n.data.readUInt16BE(0), 19);
});

test('NO_PROPOSAL_CHOSEN when no IKE proposal matches', async () => {
  const { w, a } = pair({ b: { proposals: parseProposals('aes128-sha256-modp3072', 'ike') } });
  const r = assert.rejects(a.engine.initiate('lab'), /NO_PROPOSAL_CHOSEN/);
  await w.run();
  await r;
});

test('AUTHENTICATION_FAILED with a wrong PSK: no SA is left on either side', async () => {
  const w = new Wire();
  const mk = (addr: string, peer: string, lid: string, rid: string, secret: string) =>
    w.add(
      addr,
      config(
        [
          conn('lab', {
            localAddrs: [addr],
            remoteAddrs: [peer],
            local: { auth: 'psk', id: lid, certs: [], cacerts: [] },
            remote: { auth: 'psk', id: rid, certs: [], cacerts: [] },
          }),
        ],
        [psk([lid, rid], secret)],
      ),
    );
  const a = mk('192.0.2.1', '192.0.2.2', 'a.lab', 'b.lab', 'secret-one-0123456789');
  const b = mk('192.0.2.2', '192.0.2.1', 'b.lab', 'a.lab', 'secret-two-0123456789');
  const r = assert.rejects(a.engine.initiate('lab'), /AUTHENTICATION_FAILED|authentication failed/);
  await w.run();
  await r;
  assert.equal(b.engine.stats.authFailed, 1);
  assert.equal(a.engine.table.size, 0);
  assert.equal(b.engine.table.size, 0);
  assert.equal(b.dp.installed.size, 0);
});

test('traffic selector narrowing: the responder installs the intersection with its config', async () => {
  const { w, a, b } = pair({
    a: { children: [child('net', { localTs: ['10.1.0.0/16'], remoteTs: ['10.2.0.0/16'] })] },
    b: { children: [child('net', { localTs: ['10.2.5.0/24[tcp/443]'], remoteTs: ['10.1.0.0/24'] })] },
  });
  const p = a.engine.initiate('lab');
  await w.run();
  const sa = await p;
  const inst = a.dp.installed.get(sa.children[0]!.id)!;
  assert.deepEqual(inst.localTs.map((t) => [t.start, t.end]), [['10.1.0.0', '10.1.0.255']]);
  assert.deepEqual(inst.remoteTs.map((t) => [t.start, t.end, t.protocol, t.startPort, t.endPort]), [['10.2.5.0', '10.2.5.255', 6, 443, 443]]);
  const sb = [...b.engine.table.values()][0]!;
  assert.equal(sb.children.length, 1);
});

test('TS_UNACCEPTABLE when selectors do not overlap: IKE SA up, no CHILD_SA', async () => {
  const { w, a, b } = pair({ b: { children: [child('net', { localTs: ['172.16.0.0/16'], remoteTs: ['10.1.0.0/16'] })] } });
  const p = a.engine.initiate('lab');
  await w.run();
  const sa = await p;
  assert.equal(sa.state, 'ESTABLISHED');
  assert.equal(sa.children.length, 0);
  assert.equal(b.engine.stats.tsUnacceptable, 1);
  assert.match(sa.authChildError ?? '', /TS_UNACCEPTABLE/);
  assert.equal(a.dp.pendingSpis, 0, 'the initiator released its unused SPI');
});

test('IPv6 selectors and addresses', async () => {
  const w = new Wire();
  const s = psk(['a.lab', 'b.lab'], 'lab-preshared-key-0123456789');
  const mk = (addr: string, peer: string, lid: string, rid: string, l: string, r: string) =>
    w.add(addr, config([conn('v6', {
      localAddrs: [addr], remoteAddrs: [peer],
      local: { auth: 'psk', id: lid, certs: [], cacerts: [] }, remote: { auth: 'psk', id: rid, certs: [], cacerts: [] },
      children: [child('net6', { localTs: [l], remoteTs: [r] })],
    })], [s]));
  const a = mk('2001:db8::1', '2001:db8::2', 'a.lab', 'b.lab', '2001:db8:a::/64', '2001:db8:b::/64');
  mk('2001:db8::2', '2001:db8::1', 'b.lab', 'a.lab', '2001:db8:b::/64', '2001:db8:a::/48');
  const p = a.engine.initiate('v6');
  await w.run();
  const sa = await p;
  const inst = a.dp.installed.get(sa.children[0]!.id)!;
  assert.equal(inst.outbound.dst.addr, '2001:db8::2');
  assert.equal(inst.remoteTs[0]!.start, '2001:db8:b::');
  assert.equal(inst.localTs[0]!.end, '2001:db8:a:0:ffff:ffff:ffff:ffff');
});

test('NAT-T: encap=yes fakes a NAT, both sides float to 4500 and install UDP-encapsulated SAs', async () => {
  const { w, a, b } = pair({ a: { encap: true } });
  const p = a.engine.initiate('lab');
  await w.run();
  const sa = await p;
  const sb = [...b.engine.table.values()][0]!;
  assert.equal(sa.local.port, 4500);
  assert.equal(sa.remote.port, 4500);
  assert.equal(sb.natThere, true);
  assert.equal(sb.remote.port, 4500);
  const auth = w.log.find((x) => isExchange(x, ExchangeType.IKE_AUTH, false))!;
  assert.equal(auth.local.port, 4500);
  const ib = b.dp.installed.get(sb.children[0]!.id)!;
  assert.equal(ib.inbound.udpEncap, true);
  assert.equal(ib.outbound.dst.port, 4500);
});

test('DPD: an idle peer is probed; when it stops answering the IKE SA is cleared', async () => {
  const { w, a, sa } = await (async () => {
    const env = pair({ a: { dpdDelay: 10 } });
    const p = env.a.engine.initiate('lab');
    await env.w.run();
    return { ...env, sa: await p };
  })();
  w.log.length = 0;
  await w.advance(10_500);
  const probes = w.log.filter((x) => isExchange(x, ExchangeType.INFORMATIONAL, false));
  assert.equal(probes.length, 1, 'one liveness check');
  assert.equal(sa.state, 'ESTABLISHED', 'peer answered');
  w.filter = () => 'drop';
  await w.advance(10_000 + 4000 + 7200 + 12960 + 23328 + 41990 + 75582 + 2000, 1000);
  assert.equal(sa.dead, true);
  assert.equal(a.dp.installed.size, 0);
});

test('INITIAL_CONTACT from a rebooted peer removes its old IKE SAs', async () => {
  const { w, a, b, sb } = await establish();
  // The initiator "reboots": a fresh engine with the same identity.
  const a2 = w.add('192.0.2.1', config([a.engine.config.get('lab')!], [psk(['a.lab', 'b.lab'], 'lab-preshared-key-0123456789')]));
  const p = a2.engine.initiate('lab');
  await w.run();
  await p;
  assert.equal(sb.dead, true, 'old SA removed');
  assert.equal(b.engine.table.size, 1);
  assert.equal(b.dp.installed.size, 1);
});

test('CHILD_SA rekey is make-before-break: the new SA is installed before the old one is removed', async () => {
  const { w, a, b, sa, sb } = await establish();
  const old = sa.children[0]!;
  a.engine.rekeyChild(sa, old);
  await w.run();
  assert.equal(sa.children.length, 1);
  assert.equal(sb.children.length, 1);
  assert.notEqual(sa.children[0]!.spiIn, old.spiIn);
  const ops = b.dp.events.map((e) => e.op).filter((o) => o === 'install' || o === 'replace' || o === 'remove');
  const lastInstall = Math.max(ops.lastIndexOf('install'), ops.lastIndexOf('replace'));
  assert.ok(lastInstall >= 0 && lastInstall < ops.lastIndexOf('remove'), `install before remove: ${ops.join(',')}`);
  assert.equal(a.engine.stats.childRekeyed, 1);
});

test('session table at capacity evicts half-open SAs first and refuses when only live tunnels remain', async () => {
  const w = new Wire();
  const s = psk([], 'shared-secret-0123456789abcdef');
  const resp = w.add('192.0.2.2', config([conn('any', { local: { auth: 'psk', id: 'b.lab', certs: [], cacerts: [] }, children: [child('net')] })], [s], 2));
  const mkInit = (addr: string) =>
    w.add(addr, config([conn('lab', { localAddrs: [addr], remoteAddrs: ['192.0.2.2'], local: { auth: 'psk', id: `${addr}`, certs: [], cacerts: [] }, children: [child('net')] })], [s]));
  const i1 = mkInit('192.0.2.11');
  const i2 = mkInit('192.0.2.12');
  const i3 = mkInit('192.0.2.13');
  await Promise.all([i1.engine.initiate('lab'), i2.engine.initiate('lab'), w.run()]);
  assert.equal(resp.engine.table.size, 2);
  // A third peer: only live tunnels remain, so it is refused and counted.
  const p3 = i3.engine.initiate('lab');
  p3.catch(() => {});
  await w.run();
  assert.equal(resp.engine.stats.initRefusedFull, 1);
  assert.equal(resp.engine.table.size, 2);
  // Free one slot, then fill it with a half-open SA (its IKE_AUTH never arrives).
  const first = [...resp.engine.table.values()].find((x) => x.remote.addr === '192.0.2.11')!;
  resp.engine.destroy(first, 'test');
  const i4 = mkInit('192.0.2.14');
  w.filter = (p) => (p.local.addr === '192.0.2.14' && isExchange(p, ExchangeType.IKE_AUTH, false) ? 'drop' : 'deliver');
  i4.engine.initiate('lab').catch(() => {});
  await w.run();
  assert.equal(resp.engine.table.size, 2);
  assert.equal(resp.engine.table.halfOpenCount, 1);
  // A new peer at capacity evicts the half-open SA, never the live tunnel.
  w.filter = () => 'deliver';
  const live = [...resp.engine.table.values()].find((x) => x.state === 'ESTABLISHED')!;
  const i5 = mkInit('192.0.2.15');
  await Promise.all([i5.engine.initiate('lab'), w.run()]);
  assert.equal(resp.engine.stats.evicted, 1);
  assert.equal(resp.engine.table.size, 2);
  assert.equal(resp.engine.table.halfOpenCount, 0);
  assert.equal(live.dead, false);
  assert.equal(resp.dp.installed.size, 2);
});

test('IKE SA rekey (RFC 7296 §2.18): CHILD_SAs move to the new IKE SA, the old one is deleted; either side may start it', async () => {
  for (const side of ['a', 'b'] as const) {
    const { w, a, b, sa, sb } = await establish();
    const childIds = [sa.children[0]!.id, sb.children[0]!.id];
    const from = side === 'a' ? a : b;
    assert.ok(from.engine.rekeyIke(side === 'a' ? sa : sb));
    await w.run();
    assert.equal(sa.dead, true, `${side}: old SA gone on a`);
    assert.equal(sb.dead, true, `${side}: old SA gone on b`);
    const na = [...a.engine.table.values()];
    const nb = [...b.engine.table.values()];
    assert.equal(na.length, 1);
    assert.equal(nb.length, 1);
    assert.equal(na[0]!.state, 'ESTABLISHED');
    assert.deepEqual(na[0]!.spiI, nb[0]!.spiI);
    assert.deepEqual(na[0]!.spiR, nb[0]!.spiR);
    assert.notDeepEqual(na[0]!.spiI, sa.spiI);
    assert.deepEqual(na[0]!.children.map((c) => c.id), [childIds[0]]);
    assert.deepEqual(nb[0]!.children.map((c) => c.id), [childIds[1]]);
    assert.equal(a.dp.installed.size, 1, 'CHILD_SA untouched in the dataplane');
    // The new IKE SA works: a CHILD_SA delete goes through it.
    assert.ok(a.engine.deleteChild(childIds[0]!));
    await w.run();
    assert.equal(b.dp.installed.size, 0);
  }
});

test('CHILD_SAs are rekeyed at rekey_time (minus rand_time jitter) and expire at life_time', async () => {
  const env = pair({
    a: { children: [child('net', { localTs: ['10.1.0.0/16'], remoteTs: ['10.2.0.0/16'], rekeyTime: 600, randTime: 60, lifeTime: 900 })] },
  });
  const p = env.a.engine.initiate('lab');
  await env.w.run();
  const sa = await p;
  const first = sa.children[0]!;
  await env.w.advance(539_000, 10_000);
  assert.equal(sa.children[0], first, 'not before rekey_time - rand_time');
  await env.w.advance(62_000, 1000);
  assert.notEqual(sa.children[0]!.id, first.id, 'rekeyed by rekey_time');
  assert.equal(sa.children.length, 1);
  assert.equal(env.b.dp.installed.size, 1);
});

test('gauges follow IKE SA states and CHILD SA counts without scanning; a dataplane replay triggers CHILD_SA rekeys', async () => {
  const { w, a, b, sa } = await establish();
  assert.equal(a.engine.gauges.ikeByState.ESTABLISHED, 1);
  assert.equal(a.engine.gauges.childSas, 1);
  assert.equal(b.engine.gauges.ikeByState.ESTABLISHED, 1);
  const old = sa.children[0]!.id;
  b.dp.simulateRestart();
  await w.run();
  assert.notEqual(sa.children[0]!.id, old, 'replayed CHILD_SA was replaced');
  assert.equal(b.engine.stats.childRekeyed, 1);
  a.engine.deleteIke(sa);
  await w.run();
  for (const n of [a, b]) {
    assert.equal(n.engine.gauges.childSas, 0);
    assert.deepEqual(Object.values(n.engine.gauges.ikeByState).reduce((x, y) => x + y, 0), 0);
  }
});

test('at capacity an SA whose peer stopped answering is evicted before a new peer is refused', async () => {
  const w = new Wire();
  const s = psk([], 'shared-secret-0123456789abcdef');
  const resp = w.add('192.0.2.2', config([conn('any', { dpdDelay: 10, local: { auth: 'psk', id: 'b.lab', certs: [], cacerts: [] }, children: [child('net')] })], [s], 1));
  const mkInit = (addr: string) =>
    w.add(addr, config([conn('lab', { localAddrs: [addr], remoteAddrs: ['192.0.2.2'], local: { auth: 'psk', id: addr, certs: [], cacerts: [] }, children: [child('net')] })], [s]));
  const i1 = mkInit('192.0.2.11');
  await Promise.all([i1.engine.initiate('lab'), w.run()]);
  const old = [...resp.engine.table.values()][0]!;
  // The first peer goes silent: the responder's DPD request is retransmitted.
  w.filter = (p) => (p.remote.addr === '192.0.2.11' ? 'drop' : 'deliver');
  await w.advance(10_000 + 4_500, 500);
  const i2 = mkInit('192.0.2.12');
  await Promise.all([i2.engine.initiate('lab'), w.run()]);
  assert.equal(old.dead, true, 'the unresponsive SA made room');
  assert.equal(resp.engine.stats.evicted, 1);
  assert.equal(resp.engine.table.size, 1);
  assert.equal([...resp.engine.table.values()][0]!.remote.addr, '192.0.2.12');
});

test('a CHILD_SA rekey the peer refuses is retried later; the child is never lost', async () => {
  const { w, a, b, sa, sb } = await establish();
  const first = sa.children[0]!;
  b.dp.failNextInstall('VPP said no');
  a.engine.rekeyChild(sa, first);
  await w.run();
  assert.equal(sa.children.length, 1);
  assert.equal(sa.children[0], first, 'old child kept');
  assert.equal(first.state, 'INSTALLED');
  assert.equal(sb.children.length, 1);
  assert.equal(a.dp.pendingSpis, 0, 'SPI of the failed attempt released');
  await w.advance(50_000, 1000);
  assert.notEqual(sa.children[0]!.id, first.id, 'rekeyed on retry');
  assert.equal(sa.children.length, 1);
  assert.equal(sb.children.length, 1);
});

test('PFS: an offer with a group and NONE is answered without KE when the responder has no PFS, keys match', async () => {
  const { w, a, b, sa, sb } = await establish();
  a.engine.config.get('lab')!.children.push(child('opt', { localTs: ['10.1.7.0/24'], remoteTs: ['10.2.7.0/24'], espProposals: [{ ...parseProposals('aes256gcm16-x25519', 'esp')[0]!, ke: [31, 0] }] }));
  b.engine.config.get('lab')!.children.push(child('opt', { localTs: ['10.2.7.0/24'], remoteTs: ['10.1.7.0/24'], espProposals: parseProposals('aes256gcm16', 'esp') }));
  await a.engine.initiate('lab', 'opt');
  await w.run();
  const ca = sa.children.find((c) => c.name === 'opt')!;
  const cb = sb.children.find((c) => c.name === 'opt')!;
  assert.ok(ca && cb, 'CHILD_SA up on both sides');
  assert.equal(ca.proposal!.ke, 0);
  assert.deepEqual(a.dp.installed.get(ca.id)!.outbound.encKey, b.dp.installed.get(cb.id)!.inbound.encKey);
  assert.equal(b.dp.installed.size, 2);
});

test('start_action = start keeps a connection up: after the peer was unreachable it is retried with backoff', async () => {
  const { w, a, b } = pair({
    a: { children: [child('net', { localTs: ['10.1.0.0/16'], remoteTs: ['10.2.0.0/16'], startAction: 'start' })] },
  });
  w.filter = () => 'drop';
  a.engine.startConnections();
  await w.run();
  // Initial send + 5 retransmissions, then the first retry after ~1 s.
  await w.advance(170_000, 1000);
  assert.equal(b.engine.table.size, 0);
  w.filter = () => 'deliver';
  await w.advance(200_000, 1000);
  const sas = [...a.engine.table.values()];
  assert.equal(sas.length, 1, 'exactly one IKE SA, no duplicates');
  assert.equal(sas[0]!.state, 'ESTABLISHED');
  assert.equal(sas[0]!.children.length, 1);
  assert.equal(b.engine.table.size, 1);
});
