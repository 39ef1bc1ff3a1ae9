import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startEmulator, type EmulatorHandle } from '../../src/vpp/emulator/server.ts';
import { VppDataplane, isOurId } from '../../src/dataplane/vpp/index.ts';
import { VppClient, VppApiError } from '../../src/vpp/client.ts';
import { toApiAddress } from '../../src/vpp/address.ts';
import { sadEntry } from '../helpers/builders.ts';
import { child, failWith, record, resynced, setup, sockPath, ts4, ts6 } from '../helpers/vpp-dataplane.ts';

test('p2p: interface, unnumbered, SAs (algorithms, salt, flags, window), protection, routes', async () => {
  const { emu, dp, done } = await setup({ unnumbered: 'loop0' });
  try {
    const spi = await dp.allocateSpi();
    const c = child(1, spi, 0xabc00001, { table: 7, remoteTs: [ts4('10.1.0.0', '10.1.0.255'), ts4('10.2.0.1', '10.2.0.2')] });
    const r = await dp.install(c);
    assert.ok(isOurId(r.saIn!) && isOurId(r.saOut!));
    assert.equal(r.interface, 'ipsec1000');
    const s = emu.state;
    const itf = [...s.interfaces.values()].find((i) => i.name === 'ipsec1000')!;
    assert.equal(itf.adminUp, true);
    assert.equal(itf.ipsec?.mode, 0);
    assert.equal(itf.unnumberedTo, [...s.interfaces.values()].find((i) => i.name === 'loop0')!.swIfIndex);
    assert.deepEqual([itf.table4, itf.table6], [7, 7]);
    const inSa = s.sas.get(r.saIn!)!;
    const outSa = s.sas.get(r.saOut!)!;
    assert.equal(inSa.spi, spi);
    assert.equal(outSa.spi, 0xabc00001);
    assert.equal(inSa.crypto, 9); // AES_GCM_256
    assert.deepEqual(inSa.cryptoKey, c.inbound.encKey.subarray(0, 32));
    // README "Salt": the 4 KEYMAT bytes after the key, read big-endian.
    assert.equal(inSa.saltWire, c.inbound.encKey.readUInt32BE(32));
    assert.equal(inSa.flags, 4 | 64 | 1 | 2); // tunnel, inbound, ESN, anti-replay
    assert.equal(outSa.flags, 4 | 1);
    assert.equal(inSa.window, 128);
    const prot = [...s.protections.values()];
    assert.deepEqual(prot.map((p) => [p.swIfIndex, p.saOut, p.saIn]), [[itf.swIfIndex, r.saOut, [r.saIn]]]);
    const routes = [...s.routes.values()].map((x) => `${x.tableId}:${x.prefix}/${x.len}`).sort();
    assert.deepEqual(routes, ['7:10.1.0.0/24', '7:10.2.0.1/32', '7:10.2.0.2/32']);
    const dump = JSON.stringify(await dp.dump());
    assert.ok(!dump.includes(c.inbound.encKey.subarray(0, 8).toString('hex')), 'no key material');
    assert.ok(dump.includes(spi.toString(16).padStart(8, '0')));
    await dp.remove(1);
    assert.equal(s.sas.size, 0);
    assert.equal(s.protections.size, 0);
    assert.equal(s.routes.size, 0);
    assert.ok(![...s.interfaces.values()].some((i) => i.name === 'ipsec1000'));
  } finally {
    await done();
  }
});

test('NAT-T and IPv6: UDP ports, IS_TUNNEL_V6; update() moves endpoints; an encap change rebuilds and asks for a rekey', async () => {
  const { emu, dp, done } = await setup();
  try {
    const replayed: number[][] = [];
    dp.setListener({ replayed: (ids) => replayed.push(ids) });
    const c = child(5, 0x5001, 0x5002, {
      local: '2001:db8::1',
      remote: '2001:db8::2',
      lport: 4500,
      rport: 4501,
      encap: true,
      localTs: [ts6('2001:db8:a::', '2001:db8:a::ffff')],
      remoteTs: [ts6('2001:db8:b::', '2001:db8:b:0:ffff:ffff:ffff:ffff')],
    });
    const r = await dp.install(c);
    const s = emu.state;
    const inSa = s.sas.get(r.saIn!)!;
    assert.equal(inSa.flags & (8 | 16), 8 | 16);
    assert.deepEqual([inSa.udpSrc, inSa.udpDst], [4501, 4500]);
    assert.equal(s.sas.get(r.saOut!)!.udpDst, 4501);
    assert.deepEqual([...s.routes.values()].map((x) => `${x.prefix}/${x.len}`), ['2001:db8:b::/64']);
    const log = record(emu);
    await dp.update(5, { addr: '2001:db8::1', port: 4500 }, { addr: '2001:db8::99', port: 6000 }, true);
    assert.deepEqual(log.map((l) => l.name), ['ipsec_sad_entry_update', 'ipsec_sad_entry_update']);
    assert.equal(s.sas.get(r.saOut!)!.udpDst, 6000);
    assert.equal(s.sas.get(r.saIn!)!.udpSrc, 6000);
    assert.equal(s.sas.get(r.saOut!)!.tunnel!.dst.un.ip6!.toString('hex'), '20010db8000000000000000000000099');
    assert.deepEqual(replayed, []);
    // Turning UDP encapsulation off cannot be done by ipsec_sad_entry_update: new SAs, same SPIs.
    await dp.update(5, { addr: '2001:db8::1', port: 500 }, { addr: '2001:db8::99', port: 500 }, false);
    const st = dp.childState(5)!;
    assert.notEqual(st.saIn, r.saIn);
    assert.equal(s.sas.size, 2);
    assert.equal(s.sas.get(st.saIn)!.spi, 0x5001);
    assert.equal(s.sas.get(st.saIn)!.flags & 16, 0);
    assert.deepEqual(replayed, [[5]]);
    assert.deepEqual([...s.protections.values()].map((p) => [p.saOut, p.saIn]), [[st.saOut, [st.saIn]]]);
  } finally {
    await done();
  }
});

test('p2mp: shared interface created once, one protection per peer next hop, routes via the next hop', async () => {
  const { emu, dp, done } = await setup();
  try {
    const a = await dp.install(child(1, 0x1001, 0x2001, { mode: 'p2mp', iface: 'ipsec100', remote: '198.51.100.10', remoteTs: [ts4('10.10.0.0', '10.10.0.255')] }));
    const b = await dp.install(child(2, 0x1002, 0x2002, { mode: 'p2mp', iface: 'ipsec100', remote: '198.51.100.20', remoteTs: [ts4('10.20.0.0', '10.20.0.255')] }));
    assert.equal(a.interface, 'ipsec100');
    const s = emu.state;
    const itfs = [...s.interfaces.values()].filter((i) => i.ipsec);
    assert.equal(itfs.length, 1);
    assert.equal(itfs[0]!.ipsec!.mode, 1);
    assert.equal(itfs[0]!.name, 'ipsec100');
    const prot = [...s.protections.values()].map((p) => [p.swIfIndex, p.nh.un.ip4!.join('.'), p.saOut, p.saIn]);
    assert.deepEqual(prot.sort(), [
      [itfs[0]!.swIfIndex, '198.51.100.10', a.saOut, [a.saIn]],
      [itfs[0]!.swIfIndex, '198.51.100.20', b.saOut, [b.saIn]],
    ]);
    const routes = [...s.routes.values()].map((r) => [`${r.prefix}/${r.len}`, r.paths[0]!.nh.address.ip4!.join('.')]);
    assert.deepEqual(routes.sort(), [
      ['10.10.0.0/24', '198.51.100.10'],
      ['10.20.0.0/24', '198.51.100.20'],
    ]);
    await dp.remove(1);
    assert.equal(s.protections.size, 1);
    assert.equal(s.sas.size, 2);
    await dp.remove(2);
    assert.equal(s.protections.size, 0);
    assert.equal(s.sas.size, 0);
    assert.ok([...s.interfaces.values()].some((i) => i.name === 'ipsec100'), 'the shared interface stays');
  } finally {
    await done();
  }
});

test('policy: SPD per table bound to the interface, PROTECT both ways, BYPASS for IKE', async () => {
  const { emu, dp, done } = await setup({ policyIface: 'host-eth0' });
  try {
    const r1 = await dp.install(child(1, 0x1001, 0x2001, { mode: 'policy', table: 3 }));
    await dp.install(child(2, 0x1002, 0x2002, { mode: 'policy', table: 3, remoteTs: [ts4('10.9.0.0', '10.9.0.255')] }));
    assert.equal(r1.interface, 'host-eth0');
    const s = emu.state;
    assert.equal(s.spds.size, 1);
    const [spdId, list] = [...s.spds][0]!;
    assert.ok(isOurId(spdId));
    const eth = [...s.interfaces.values()].find((i) => i.name === 'host-eth0')!;
    assert.equal(s.spdBindings.get(eth.swIfIndex), spdId);
    const protect = list.filter((p) => p.policy === 3);
    assert.equal(protect.length, 4);
    const c1 = protect.filter((p) => p.saId === r1.saIn || p.saId === r1.saOut);
    assert.deepEqual(c1.map((p) => [p.isOutbound, p.saId === r1.saOut, p.raddrStart, p.laddrStart]).sort(), [
      [false, false, '10.1.0.0', '10.0.0.0'],
      [true, true, '10.1.0.0', '10.0.0.0'],
    ]);
    const ike = list.filter((p) => p.policy === 0 && p.protocol === 17).map((p) => `${p.isOutbound ? 'out' : 'in'}${p.isIpv6 ? 6 : 4}:${p.lportStart}`);
    assert.deepEqual(ike.sort(), ['in4:4500', 'in4:500', 'in6:4500', 'in6:500', 'out4:4500', 'out4:500', 'out6:4500', 'out6:500']);
    await dp.remove(1);
    assert.equal(s.spds.get(spdId)!.filter((p) => p.policy === 3).length, 2);
    await dp.remove(2);
    assert.equal(s.spds.size, 0, 'SPD removed with its last CHILD_SA');
    assert.equal(s.spdBindings.size, 0);
    assert.equal(s.sas.size, 0);
  } finally {
    await done();
  }
});

/** The emulator's protections as [sw_if_index, next hop, sa_out, sa_in]. */
function protections(emu: EmulatorHandle): [number, string, number, number[]][] {
  return [...emu.state.protections.values()].map((p) => [p.swIfIndex, p.nh.un.ip4 ? p.nh.un.ip4.join('.') : 'v6', p.saOut, [...p.saIn]]);
}

function protectUpdates(log: { name: string; msg: Record<string, unknown> }[]): [number, number[]][] {
  return log
    .filter((l) => l.name === 'ipsec_tunnel_protect_update')
    .map((l) => {
      const t = l.msg.tunnel as { sa_out: number; sa_in: number[] };
      return [t.sa_out, [...t.sa_in]];
    });
}

test('make-before-break p2p: one protection update (new sa_out, both sa_in); the old SAs stay until remove(old)', async () => {
  const { emu, dp, done } = await setup();
  try {
    const old = await dp.install(child(1, 0x1001, 0x2001));
    const s = emu.state;
    const routesBefore = JSON.stringify([...s.routes.values()]);
    let log = record(emu);
    const nu = await dp.install(child(2, 0x1002, 0x2002, { replaces: 1 }));
    assert.equal(nu.interface, old.interface);
    const sw = dp.childState(1)!.swIfIndex!;
    assert.deepEqual(protectUpdates(log), [[nu.saOut, [old.saIn, nu.saIn]]], 'one switch: new outbound, both inbound');
    assert.deepEqual(log.map((l) => l.name).filter((n) => n !== 'ipsec_sad_entry_add_v2' && n !== 'ipsec_tunnel_protect_update'), [], 'nothing else changes');
    assert.deepEqual(protections(emu), [[sw, '0.0.0.0', nu.saOut, [old.saIn, nu.saIn]]]);
    assert.deepEqual([...s.sas.keys()].sort(), [old.saIn, old.saOut, nu.saIn, nu.saOut].sort(), 'the old SAs are still in the SAD');
    assert.equal(s.sas.get(old.saIn!)!.spi, 0x1001);
    assert.ok(dp.childState(1), 'the replaced child is still installed');
    assert.equal(JSON.stringify([...s.routes.values()]), routesBefore, 'routes untouched');
    // The old inbound SPI is still taken until remove(old).
    await assert.rejects(dp.install(child(3, 0x1001, 0x3001)), /used by child 1/);

    log = record(emu);
    await dp.remove(1);
    const names = log.map((l) => l.name);
    assert.deepEqual(protectUpdates(log), [[nu.saOut, [nu.saIn]]]);
    assert.ok(names.indexOf('ipsec_sad_entry_del') > names.indexOf('ipsec_tunnel_protect_update'), 'SAs deleted after the protection let go of them');
    assert.deepEqual(
      log.filter((l) => l.name === 'ipsec_sad_entry_del').map((l) => l.msg.id).sort(),
      [old.saIn, old.saOut].sort(),
    );
    assert.deepEqual(protections(emu), [[sw, '0.0.0.0', nu.saOut, [nu.saIn]]]);
    assert.deepEqual([...s.sas.keys()].sort(), [nu.saIn, nu.saOut].sort(), 'the old SAs are gone from the SAD');
    assert.ok(!names.includes('ipsec_itf_delete') && !names.includes('ip_route_add_del'), 'interface and routes stay');
    assert.equal(dp.childState(1), undefined);
    await dp.remove(1); // already removed: ignored
    await dp.remove(2);
    assert.equal(s.sas.size, 0);
    assert.equal(s.protections.size, 0);
    assert.equal(s.routes.size, 0);
    assert.ok(![...s.interfaces.values()].some((i) => i.ipsec), 'the interface goes with its last CHILD_SA');
    // Its instance is free again.
    assert.equal((await dp.install(child(4, 0x1004, 0x2004))).interface, old.interface);
  } finally {
    await done();
  }
});

test('make-before-break p2p: removing the new child first falls back to the old SAs; the last removal deletes the interface', async () => {
  const { emu, dp, done } = await setup();
  try {
    const old = await dp.install(child(1, 0x1001, 0x2001));
    const nu = await dp.install(child(2, 0x1002, 0x2002, { replaces: 1 }));
    const sw = dp.childState(1)!.swIfIndex!;
    await dp.remove(2);
    assert.deepEqual(protections(emu), [[sw, '0.0.0.0', old.saOut, [old.saIn]]]);
    assert.deepEqual([...emu.state.sas.keys()].sort(), [old.saIn, old.saOut].sort());
    assert.ok(!emu.state.sas.has(nu.saIn!));
    assert.equal(emu.state.routes.size, 1);
    await dp.remove(1);
    assert.equal(emu.state.sas.size, 0);
    assert.equal(emu.state.routes.size, 0);
    assert.ok(![...emu.state.interfaces.values()].some((i) => i.ipsec));
  } finally {
    await done();
  }
});

test('make-before-break p2p: the old and the new child removed at once (IKE SA deleted) leave nothing behind', async () => {
  const { emu, dp, done } = await setup();
  try {
    await dp.install(child(1, 0x1001, 0x2001));
    await dp.install(child(2, 0x1002, 0x2002, { replaces: 1 }));
    await dp.install(child(3, 0x1003, 0x2003, { mode: 'p2mp', iface: 'ipsec100' }));
    await dp.install(child(4, 0x1004, 0x2004, { mode: 'p2mp', iface: 'ipsec100', replaces: 3 }));
    await Promise.all([dp.remove(2), dp.remove(1), dp.remove(4), dp.remove(3)]);
    const s = emu.state;
    assert.equal(s.sas.size, 0);
    assert.equal(s.protections.size, 0);
    assert.equal(s.routes.size, 0);
    assert.deepEqual([...s.interfaces.values()].filter((i) => i.ipsec).map((i) => i.name), ['ipsec100']);
    assert.deepEqual((await dp.dump() as { children: unknown[] }).children, []);
  } finally {
    await done();
  }
});

test('make-before-break p2mp: the peer\'s protection gets the new sa_out and both sa_in; other peers untouched', async () => {
  const { emu, dp, done } = await setup();
  try {
    const p2mp = (id: number, spi: number, remote: string, replaces?: number) =>
      child(id, spi, spi + 0x1000, { mode: 'p2mp', iface: 'ipsec100', remote, remoteTs: [ts4(`10.${id}.0.0`, `10.${id}.0.255`)], ...(replaces !== undefined ? { replaces } : {}) });
    const other = await dp.install(p2mp(9, 0x9001, '198.51.100.20'));
    const old = await dp.install(p2mp(1, 0x1001, '198.51.100.10'));
    const log = record(emu);
    const nu = await dp.install({ ...p2mp(2, 0x1002, '198.51.100.10', 1), remoteTs: [ts4('10.1.0.0', '10.1.0.255')] });
    assert.deepEqual(protectUpdates(log), [[nu.saOut, [old.saIn, nu.saIn]]]);
    assert.ok(!log.some((l) => l.name === 'ip_route_add_del'), 'the route via the peer is shared');
    const sw = [...emu.state.interfaces.values()].find((i) => i.name === 'ipsec100')!.swIfIndex;
    const byPeer = (): Map<string, [number, number[]]> => new Map(protections(emu).map(([, nh, o, i]) => [nh, [o, i]]));
    assert.deepEqual(byPeer().get('198.51.100.10'), [nu.saOut, [old.saIn, nu.saIn]]);
    assert.deepEqual(byPeer().get('198.51.100.20'), [other.saOut, [other.saIn]]);
    assert.equal(emu.state.sas.size, 6);
    await dp.remove(1);
    assert.deepEqual(byPeer().get('198.51.100.10'), [nu.saOut, [nu.saIn]]);
    assert.deepEqual(byPeer().get('198.51.100.20'), [other.saOut, [other.saIn]]);
    assert.ok(!emu.state.sas.has(old.saIn!) && !emu.state.sas.has(old.saOut!), 'the old SAs are gone');
    assert.equal(emu.state.sas.size, 4);
    const routes = [...emu.state.routes.values()].map((r) => `${r.prefix}/${r.len} via ${r.paths[0]!.nh.address.ip4!.join('.')}`).sort();
    assert.deepEqual(routes, ['10.1.0.0/24 via 198.51.100.10', '10.9.0.0/24 via 198.51.100.20']);
    assert.equal(protections(emu)[0]![0], sw);
  } finally {
    await done();
  }
});

test('make-before-break policy: new outbound entries outrank the old ones, old inbound entries and SAs stay until remove(old)', async () => {
  const { emu, dp, done } = await setup({ policyIface: 'host-eth0' });
  try {
    const old = await dp.install(child(1, 0x1001, 0x2001, { mode: 'policy' }));
    const list = (): { out: boolean; prio: number; sa: number }[] =>
      [...emu.state.spds.values()][0]!.filter((p) => p.policy === 3).map((p) => ({ out: p.isOutbound, prio: p.priority, sa: p.saId }));
    assert.deepEqual(list(), [{ out: true, prio: 100, sa: old.saOut }, { out: false, prio: 100, sa: old.saIn }]);
    const nu = await dp.install(child(2, 0x1002, 0x2002, { mode: 'policy', replaces: 1 }));
    const after = list();
    assert.deepEqual(after.filter((p) => p.out), [{ out: true, prio: 101, sa: nu.saOut }], 'outbound: only the new SA, above the old priority');
    assert.deepEqual(after.filter((p) => !p.out).map((p) => p.sa).sort(), [old.saIn, nu.saIn].sort(), 'inbound: both SAs');
    assert.equal(emu.state.sas.size, 4);
    await dp.remove(1);
    assert.deepEqual(list().map((p) => [p.out, p.sa]).sort(), [[false, nu.saIn], [true, nu.saOut]].sort());
    assert.deepEqual([...emu.state.sas.keys()].sort(), [nu.saIn, nu.saOut].sort());
    assert.equal(emu.state.spds.size, 1, 'the SPD stays for the new child');
    // Priorities stay between the PROTECT base and the IKE bypass (200): they wrap.
    let prev = 2;
    const seen = new Set<number>();
    for (let id = 3; id < 3 + 100; id++) {
      await dp.install(child(id, 0x1000 + id, 0x2000 + id, { mode: 'policy', replaces: prev }));
      const out = list().filter((p) => p.out);
      assert.equal(out.length, 1);
      seen.add(out[0]!.prio);
      await dp.remove(prev);
      prev = id;
    }
    assert.equal(Math.max(...seen), 199);
    assert.equal(Math.min(...seen), 100);
    assert.equal(list().length, 2);
    assert.equal(emu.state.sas.size, 2);
  } finally {
    await done();
  }
});

test('make-before-break across modes: the replaced p2p child stays until remove(old), then its interface goes', async () => {
  const { emu, dp, done } = await setup();
  try {
    const old = await dp.install(child(1, 0x1001, 0x2001));
    const nu = await dp.install(child(2, 0x1002, 0x2002, { mode: 'p2mp', iface: 'ipsec100', replaces: 1 }));
    const names = (): string[] => [...emu.state.interfaces.values()].filter((i) => i.ipsec).map((i) => i.name).sort();
    assert.deepEqual(names(), ['ipsec100', old.interface!]);
    assert.equal(emu.state.sas.size, 4);
    assert.equal(emu.state.protections.size, 2);
    await dp.remove(1);
    assert.deepEqual(names(), ['ipsec100']);
    assert.deepEqual([...emu.state.sas.keys()].sort(), [nu.saIn, nu.saOut].sort());
    assert.equal(emu.state.protections.size, 1);
  } finally {
    await done();
  }
});

test('rollback of a make-before-break: a failing protection update or policy add leaves the old CHILD_SA as it was', async () => {
  const { emu, dp, done } = await setup({ policyIface: 'host-eth0' });
  try {
    const old = await dp.install(child(1, 0x1001, 0x2001));
    await dp.install(child(5, 0x5001, 0x6001, { mode: 'policy' }));
    const view = (): string => JSON.stringify([emu.state.snapshot(), [...emu.state.spds.values()]]);
    const snap = view();
    failWith(emu, 'ipsec_tunnel_protect_update', -7);
    await assert.rejects(dp.install(child(2, 0x1002, 0x2002, { replaces: 1 })), VppApiError);
    assert.equal(view(), snap);
    assert.equal(dp.childState(2), undefined);
    failWith(emu, 'ipsec_spd_entry_add_del_v2', -3);
    await assert.rejects(dp.install(child(6, 0x5002, 0x6002, { mode: 'policy', replaces: 5 })), VppApiError);
    assert.equal(view(), snap);
    // Both go through afterwards.
    const nu = await dp.install(child(2, 0x1002, 0x2002, { replaces: 1 }));
    await dp.install(child(6, 0x5002, 0x6002, { mode: 'policy', replaces: 5 }));
    assert.deepEqual(protections(emu)[0]!.slice(2), [nu.saOut, [old.saIn, nu.saIn]]);
  } finally {
    await done();
  }
});

test('VPP restart with a rekey in progress: the replaced and the new CHILD_SA both come back, sharing the protection', async () => {
  const { emu, dp, done } = await setup({ policyIface: 'host-eth0' });
  try {
    const got: number[] = [];
    const replayed = new Promise<void>((resolve) => {
      dp.setListener({
        replayed: (ids) => {
          got.push(...ids);
          if (got.length >= 6) resolve();
        },
      });
    });
    const a1 = await dp.install(child(1, 0x1001, 0x2001));
    const a2 = await dp.install(child(2, 0x1002, 0x2002, { replaces: 1 }));
    const m1 = await dp.install(child(3, 0x1003, 0x2003, { mode: 'p2mp', iface: 'ipsec100' }));
    const m2 = await dp.install(child(4, 0x1004, 0x2004, { mode: 'p2mp', iface: 'ipsec100', replaces: 3 }));
    const p1 = await dp.install(child(5, 0x1005, 0x2005, { mode: 'policy' }));
    const p2 = await dp.install(child(6, 0x1006, 0x2006, { mode: 'policy', replaces: 5 }));
    await emu.restart({ idBase: 300 });
    await replayed;
    assert.deepEqual(got.sort(), [1, 2, 3, 4, 5, 6]);
    const s = emu.state;
    const p2p = [...s.interfaces.values()].filter((i) => i.ipsec?.mode === 0);
    assert.equal(p2p.length, 1, 'one interface for the replaced and the new p2p child');
    const byOut = new Map(protections(emu).map(([, , o, i]) => [o, i]));
    assert.deepEqual(byOut.get(a2.saOut!), [a1.saIn, a2.saIn]);
    assert.deepEqual(byOut.get(m2.saOut!), [m1.saIn, m2.saIn]);
    assert.equal(s.protections.size, 2);
    const policies = [...s.spds.values()][0]!.filter((p) => p.policy === 3).map((p) => [p.isOutbound, p.priority, p.saId]);
    assert.deepEqual(policies.sort(), [[false, 100, p1.saIn], [false, 100, p2.saIn], [true, 101, p2.saOut]].sort());
    assert.equal(s.sas.size, 12);
    // Completing the rekeys works as before the restart.
    await dp.remove(1);
    await dp.remove(3);
    await dp.remove(5);
    assert.deepEqual(new Map(protections(emu).map(([, , o, i]) => [o, i])).get(a2.saOut!), [a2.saIn]);
    assert.deepEqual(new Map(protections(emu).map(([, , o, i]) => [o, i])).get(m2.saOut!), [m2.saIn]);
    assert.deepEqual([...s.sas.keys()].sort(), [a2.saIn, a2.saOut, m2.saIn, m2.saOut, p2.saIn, p2.saOut].sort());
  } finally {
    await done();
  }
});

test('rollback: a failing step removes what the install added and rejects with VPP\'s answer', async () => {
  const { emu, dp, done } = await setup({ unnumbered: 'loop0' });
  try {
    const before = JSON.stringify(emu.state.snapshot());
    failWith(emu, 'ip_route_add_del', -3);
    await assert.rejects(dp.install(child(1, 0x1001, 0x2001)), (e: unknown) => e instanceof VppApiError && e.retval === -3 && e.msg === 'ip_route_add_del');
    assert.equal(JSON.stringify(emu.state.snapshot()), before, 'VPP is back where it was');
    assert.equal(dp.childState(1), undefined);
    failWith(emu, 'ipsec_tunnel_protect_update', -7);
    await assert.rejects(dp.install(child(1, 0x1001, 0x2001)), /INVALID_VALUE/);
    assert.equal(JSON.stringify(emu.state.snapshot()), before);
    // A failed make-before-break leaves the old CHILD_SA as it was.
    const ok = await dp.install(child(1, 0x1001, 0x2001));
    const snap = JSON.stringify(emu.state.snapshot());
    failWith(emu, 'ip_route_add_del', -3);
    await assert.rejects(dp.install(child(2, 0x1002, 0x2002, { replaces: 1, remoteTs: [ts4('10.77.0.0', '10.77.0.255')] })), VppApiError);
    assert.equal(JSON.stringify(emu.state.snapshot()), snap);
    assert.equal(dp.childState(1)!.saIn, ok.saIn);
    // Then it works; the replaced child's SAs stay until it is removed.
    await dp.install(child(2, 0x1002, 0x2002, { replaces: 1 }));
    assert.equal(emu.state.sas.size, 4);
    await dp.remove(1);
    assert.equal(emu.state.sas.size, 2);
  } finally {
    await done();
  }
});

test('VPP restart: every CHILD_SA is programmed again with the same SPIs, keys and ids, then replayed() is called', async () => {
  const { emu, dp, done } = await setup({ policyIface: 'host-eth0' });
  try {
    const got: number[] = [];
    const replayed = new Promise<void>((resolve) => {
      dp.setListener({
        replayed: (ids) => {
          got.push(...ids);
          if (got.length >= 3) resolve();
        },
      });
    });
    const c1 = child(1, 0x1001, 0x2001, { encap: true, lport: 4500, rport: 4500 });
    const c2 = child(2, 0x1002, 0x2002, { mode: 'p2mp', iface: 'ipsec100' });
    const c3 = child(3, 0x1003, 0x2003, { mode: 'policy' });
    const r1 = await dp.install(c1);
    const r2 = await dp.install(c2);
    const r3 = await dp.install(c3);
    const keyOf = (id: number): string => emu.state.sas.get(id)!.cryptoKey.toString('hex');
    const k1 = keyOf(r1.saIn!);
    await emu.restart({ idBase: 400 });
    await replayed;
    assert.deepEqual(got.sort(), [1, 2, 3]);
    const s = emu.state;
    assert.deepEqual([...s.sas.keys()].sort(), [r1.saIn, r1.saOut, r2.saIn, r2.saOut, r3.saIn, r3.saOut].sort());
    assert.equal(s.sas.get(r1.saIn!)!.spi, 0x1001);
    assert.equal(keyOf(r1.saIn!), k1);
    assert.equal(s.sas.get(r1.saIn!)!.udpDst, 4500);
    assert.ok([...s.interfaces.values()].some((i) => i.name === 'ipsec1000'));
    assert.ok([...s.interfaces.values()].some((i) => i.name === 'ipsec100'));
    assert.equal(s.protections.size, 2);
    assert.equal(s.spds.size, 1);
    // And it keeps working.
    await dp.remove(1);
    assert.equal(s.sas.size, 4);
  } finally {
    await done();
  }
});

test('reconcile at start: objects that look like ours are removed, others kept', async () => {
  const socket = sockPath();
  const emu = await startEmulator({ socket });
  const raw = new VppClient({ socket, healthCheckMs: 0 });
  await raw.connect();
  const entry = (id: number, spi: number) => sadEntry(id, { spi });
  await raw.request('ipsec_sad_entry_add_v2', { entry: entry(0x7e000123, 0x999) });
  await raw.request('ipsec_sad_entry_add_v2', { entry: entry(0x7e000124, 0x998) });
  await raw.request('ipsec_sad_entry_add_v2', { entry: entry(5, 0x997) });
  const mine = await raw.request('ipsec_itf_create', { itf: { user_instance: 1003, mode: 0, sw_if_index: 0 } });
  await raw.request('ipsec_itf_create', { itf: { user_instance: 3, mode: 0, sw_if_index: 0 } });
  await raw.request('ipsec_tunnel_protect_update', { tunnel: { sw_if_index: mine.sw_if_index, nh: toApiAddress('0.0.0.0'), sa_out: 0x7e000123, sa_in: [0x7e000124] } });
  await raw.request('ipsec_spd_add_del', { is_add: true, spd_id: 0x7e000000 });
  await raw.request('ipsec_spd_add_del', { is_add: true, spd_id: 9 });
  await raw.close();
  const dp = new VppDataplane({ socket, clientOptions: { healthCheckMs: 0 } });
  try {
    await dp.start();
    const s = emu.state;
    assert.deepEqual([...s.sas.keys()], [5]);
    assert.deepEqual([...s.interfaces.values()].filter((i) => i.ipsec).map((i) => i.name), ['ipsec3']);
    assert.deepEqual([...s.spds.keys()], [9]);
    assert.equal(s.protections.size, 0);
  } finally {
    await dp.close();
    await emu.close();
  }
});

test('VPP restart in the middle of installs: failed installs leave nothing behind, installed ones are replayed', async () => {
  const { emu, dp, done } = await setup();
  try {
    const replayed: number[] = [];
    dp.setListener({ replayed: (ids) => replayed.push(...ids) });
    const results = new Map<number, boolean>();
    let someDone!: () => void;
    const sixty = new Promise<void>((r) => (someDone = r));
    const note = (id: number, ok: boolean): void => {
      results.set(id, ok);
      if (results.size === 60) someDone();
    };
    const installs = Array.from({ length: 200 }, (_, i) =>
      dp.install(child(i + 1, 0x100000 + i, 0x200000 + i)).then(
        () => note(i + 1, true),
        () => note(i + 1, false),
      ),
    );
    await sixty; // restart while the rest are on the wire
    await emu.restart();
    await Promise.all(installs);
    await resynced(dp); // the replay is done
    const ok = [...results].filter(([, v]) => v).map(([k]) => k).sort((a, b) => a - b);
    const s = emu.state;
    assert.equal(s.sas.size, ok.length * 2, 'exactly the installed CHILD_SAs are in VPP');
    assert.equal(s.protections.size, ok.length);
    assert.equal([...s.interfaces.values()].filter((i) => i.ipsec).length, ok.length);
    for (const id of ok) assert.ok(dp.childState(id));
    assert.ok(ok.length >= 60 && ok.length < 200, `some installs done before the restart, some cut off (${ok.length})`);
    assert.deepEqual([...new Set(replayed)].sort((a, b) => a - b), ok.filter((id) => replayed.includes(id)));
    assert.ok(replayed.length >= 60, 'the CHILD_SAs installed before the restart were replayed');
    // New work after the restart goes through.
    await dp.install(child(1000, 0x300000, 0x400000));
    assert.equal(s.sas.size, ok.length * 2 + 2);
  } finally {
    await done();
  }
});
