/**
 * The VPP back end (src/dataplane/vpp/) as a contract: each contract() test runs the same body with
 * the same assertions against the VPP emulator and against a real VPP 26.10 (test/helpers/vpp-target.ts),
 * reading what VPP holds through its API. Tests marked "[emulator only]" need fault injection only
 * the emulator can do (a request answered with an error); the reason is given with each.
 */
import { test } from 'node:test';
import { randomBytes } from 'node:crypto';
import assert from 'node:assert/strict';
import { isOurId } from '../../src/dataplane/vpp/index.ts';
import { VppApiError } from '../../src/vpp/client.ts';
import { toApiAddress } from '../../src/vpp/address.ts';
import { vppCryptoFor, vppIntegFor } from '../../src/vpp/ike-algorithms.ts';
import { sadEntry } from '../helpers/builders.ts';
import { child, failWith, resynced, setup, ts4, ts6 } from '../helpers/vpp-dataplane.ts';
import { boundSpd, contract, ipsecItfs, itfNamed, recordRequests, viewText, type Sent, type VppView } from '../helpers/vpp-target.ts';

function bswap32(v: number): number {
  return (((v & 0xff) << 24) | ((v & 0xff00) << 8) | ((v >>> 8) & 0xff00) | (v >>> 24)) >>> 0;
}

/** The protections as [sw_if_index, next hop, sa_out, sa_in]. */
function protections(v: VppView): [number, string, number, number[]][] {
  return v.protections.map((p) => [p.swIfIndex, p.nh, p.saOut, [...p.saIn]]);
}

function protectUpdates(log: Sent[]): [number, number[]][] {
  return log
    .filter((l) => l.name === 'ipsec_tunnel_protect_update')
    .map((l) => {
      const t = l.msg.tunnel as { sa_out: number; sa_in: number[] };
      return [t.sa_out, [...t.sa_in]];
    });
}

function sadIds(v: VppView): number[] {
  return [...v.sas.keys()].sort((a, b) => a - b);
}

function sorted(ids: (number | undefined)[]): number[] {
  return ids.map((x) => x!).sort((a, b) => a - b);
}

contract('p2p: interface, unnumbered, SAs (algorithms, salt, flags, window), protection, routes', async (_t, vpp) => {
  // VPP makes an interface unnumbered only to a lender in the same VRF: loop1 goes into VRF 7.
  const raw = await vpp.raw();
  const loop1 = await vpp.swIfIndex('loop1');
  for (const isIp6 of [false, true]) {
    await raw.request('ip_table_add_del', { is_add: true, table: { table_id: 7, is_ip6: isIp6, name: '' } });
    await raw.request('sw_interface_set_table', { sw_if_index: loop1, is_ipv6: isIp6, vrf_id: 7 });
  }
  const { dp, done } = await vpp.dataplane({ unnumbered: 'loop1' });
  try {
    const spi = await dp.allocateSpi();
    const c = child(1, spi, 0xabc00001, { table: 7, remoteTs: [ts4('10.1.0.0', '10.1.0.255'), ts4('10.2.0.1', '10.2.0.2')] });
    const r = await dp.install(c);
    assert.ok(isOurId(r.saIn!) && isOurId(r.saOut!));
    assert.equal(r.interface, 'ipsec1000');
    const s = await vpp.view();
    const itf = itfNamed(s, 'ipsec1000')!;
    assert.equal(itf.adminUp, true);
    assert.equal(itf.ipsec?.mode, 0);
    const cfg = await vpp.interfaceConfig('ipsec1000');
    assert.equal(cfg.unnumberedTo, 'loop1');
    assert.deepEqual([cfg.table4, cfg.table6], [7, 7]);
    const inSa = s.sas.get(r.saIn!)!;
    const outSa = s.sas.get(r.saOut!)!;
    assert.equal(inSa.spi, spi);
    assert.equal(outSa.spi, 0xabc00001);
    assert.equal(inSa.crypto, 9); // AES_GCM_256
    assert.deepEqual(inSa.cryptoKey, c.inbound.encKey.subarray(0, 32));
    // README "Salt": the 4 KEYMAT bytes after the key, read big-endian; ipsec_sa_v5_dump reports it byte-reversed.
    assert.equal(bswap32(inSa.salt), c.inbound.encKey.readUInt32BE(32));
    assert.equal(inSa.flags, 4 | 64 | 1 | 2); // tunnel, inbound, ESN, anti-replay
    assert.equal(outSa.flags, 4 | 1);
    assert.equal(inSa.window, 128);
    // An SA protected on an ipsec interface is not marked IS_PROTECT: the dump names no interface.
    assert.deepEqual([inSa.swIfIndex, outSa.swIfIndex], [0xffffffff, 0xffffffff]);
    assert.deepEqual(
      s.protections.map((p) => [p.swIfIndex, p.saOut, p.saIn]),
      [[itf.swIfIndex, r.saOut, [r.saIn]]],
    );
    const routes = s.routes.map((x) => `${x.tableId}:${x.prefix}/${x.len}`).sort();
    assert.deepEqual(routes, ['7:10.1.0.0/24', '7:10.2.0.1/32', '7:10.2.0.2/32']);
    const dump = JSON.stringify(await dp.dump());
    assert.ok(!dump.includes(c.inbound.encKey.subarray(0, 8).toString('hex')), 'no key material');
    assert.ok(dump.includes(spi.toString(16).padStart(8, '0')));
    await dp.remove(1);
    const e = await vpp.view();
    assert.equal(e.sas.size, 0);
    assert.equal(e.protections.length, 0);
    assert.equal(e.routes.length, 0);
    assert.equal(itfNamed(e, 'ipsec1000'), undefined);
  } finally {
    await done();
  }
});

contract('every ESP algorithm the back end offers is taken by VPP, with and without ESN: algorithm, key, salt, flags as programmed', async (_t, vpp) => {
  const { dp, done } = await vpp.dataplane();
  try {
    // [ENCR id, key bits, INTEG id]; the key lengths come from src/vpp/ike-algorithms.ts.
    const algs: [number, number, number][] = [
      [20, 128, 0],
      [20, 192, 0],
      [20, 256, 0],
      [28, 256, 0],
      [21, 128, 0],
      [21, 256, 0],
      [12, 128, 2],
      [12, 192, 12],
      [12, 256, 12],
      [12, 256, 13],
      [12, 256, 14],
      [12, 128, 1],
      [13, 128, 12],
      [13, 256, 14],
      [3, 192, 2],
      [11, 0, 12],
    ];
    let id = 1;
    for (const [encrId, encrKeyBits, integId] of algs) {
      for (const esn of [false, true]) {
        const crypto = vppCryptoFor(encrId, encrKeyBits)!;
        const integ = vppIntegFor(integId)!;
        const alg = { encrId, encrKeyBits, integId, esn };
        const c = child(id, 0x1000 + id, 0x2000 + id, { alg, remoteTs: [ts4(`10.${id}.0.0`, `10.${id}.0.255`)] });
        for (const sa of [c.inbound, c.outbound]) {
          sa.encKey = randomBytes(crypto.keyBytes + crypto.saltBytes);
          sa.integKey = randomBytes(integ.keyBytes);
        }
        const what = `ENCR ${encrId}/${encrKeyBits} INTEG ${integId}${esn ? ' ESN' : ''}`;
        const r = await dp.install(c);
        const s = await vpp.view();
        for (const [sadId, sa] of [
          [r.saIn!, c.inbound],
          [r.saOut!, c.outbound],
        ] as const) {
          const got = s.sas.get(sadId)!;
          assert.deepEqual(
            [got.crypto, got.integ, got.cryptoKey, got.integKey],
            [crypto.alg, integ.alg, sa.encKey.subarray(0, crypto.keyBytes), sa.integKey],
            what,
          );
          assert.equal(got.salt, crypto.saltBytes === 4 ? bswap32(sa.encKey.readUInt32BE(crypto.keyBytes)) : 0, `${what}: salt`);
          assert.equal(got.flags & 1, esn ? 1 : 0, `${what}: ESN`);
        }
        id++;
      }
    }
    assert.equal((await vpp.view()).sas.size, algs.length * 4);
  } finally {
    await done();
  }
});

contract('p2p: an unnumbered lender in another VRF is refused by VPP; the install is rolled back', async (_t, vpp) => {
  const { dp, done } = await vpp.dataplane({ unnumbered: 'loop0' });
  try {
    const before = viewText(await vpp.view());
    await assert.rejects(
      dp.install(child(1, 0x1001, 0x2001, { table: 7 })),
      (e: unknown) => e instanceof VppApiError && e.msg === 'sw_interface_set_unnumbered' && e.errorName === 'UNEXPECTED_INTF_STATE',
    );
    assert.equal(viewText(await vpp.view()), before, 'VPP is back where it was');
    assert.equal(dp.childState(1), undefined);
    // In loop0's VRF it goes through.
    assert.equal((await dp.install(child(1, 0x1001, 0x2001))).interface, 'ipsec1000');
    assert.equal((await vpp.interfaceConfig('ipsec1000')).unnumberedTo, 'loop0');
  } finally {
    await done();
  }
});

contract('NAT-T and IPv6: UDP ports, IS_TUNNEL_V6; update() moves endpoints; an encap change rebuilds and asks for a rekey', async (_t, vpp) => {
  const { dp, done } = await vpp.dataplane();
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
    let s = await vpp.view();
    const inSa = s.sas.get(r.saIn!)!;
    assert.equal(inSa.flags & (8 | 16), 8 | 16);
    assert.deepEqual([inSa.udpSrc, inSa.udpDst], [4501, 4500]);
    assert.equal(s.sas.get(r.saOut!)!.udpDst, 4501);
    assert.deepEqual(
      s.routes.map((x) => `${x.prefix}/${x.len}`),
      ['2001:db8:b::/64'],
    );
    const log = recordRequests(dp.client);
    await dp.update(5, { addr: '2001:db8::1', port: 4500 }, { addr: '2001:db8::99', port: 6000 }, true);
    assert.deepEqual(
      log.map((l) => l.name),
      ['ipsec_sad_entry_update', 'ipsec_sad_entry_update'],
    );
    s = await vpp.view();
    assert.equal(s.sas.get(r.saOut!)!.udpDst, 6000);
    assert.equal(s.sas.get(r.saIn!)!.udpSrc, 6000);
    assert.equal(s.sas.get(r.saOut!)!.tunnelDst, '2001:db8::99');
    assert.deepEqual(replayed, []);
    // Turning UDP encapsulation off cannot be done by ipsec_sad_entry_update: new SAs, same SPIs.
    await dp.update(5, { addr: '2001:db8::1', port: 500 }, { addr: '2001:db8::99', port: 500 }, false);
    const st = dp.childState(5)!;
    assert.notEqual(st.saIn, r.saIn);
    s = await vpp.view();
    assert.equal(s.sas.size, 2);
    assert.equal(s.sas.get(st.saIn)!.spi, 0x5001);
    assert.equal(s.sas.get(st.saIn)!.flags & 16, 0);
    assert.deepEqual(replayed, [[5]]);
    assert.deepEqual(
      s.protections.map((p) => [p.saOut, p.saIn]),
      [[st.saOut, [st.saIn]]],
    );
  } finally {
    await done();
  }
});

contract('p2mp: shared interface created once, one protection per peer next hop, routes via the next hop', async (_t, vpp) => {
  const { dp, done } = await vpp.dataplane();
  try {
    const a = await dp.install(child(1, 0x1001, 0x2001, { mode: 'p2mp', iface: 'ipsec100', remote: '198.51.100.10', remoteTs: [ts4('10.10.0.0', '10.10.0.255')] }));
    const b = await dp.install(child(2, 0x1002, 0x2002, { mode: 'p2mp', iface: 'ipsec100', remote: '198.51.100.20', remoteTs: [ts4('10.20.0.0', '10.20.0.255')] }));
    assert.equal(a.interface, 'ipsec100');
    let s = await vpp.view();
    const itfs = ipsecItfs(s);
    assert.equal(itfs.length, 1);
    assert.equal(itfs[0]!.ipsec!.mode, 1);
    assert.equal(itfs[0]!.name, 'ipsec100');
    const prot = s.protections.map((p) => [p.swIfIndex, p.nh, p.saOut, p.saIn]);
    assert.deepEqual(prot.sort(), [
      [itfs[0]!.swIfIndex, '198.51.100.10', a.saOut, [a.saIn]],
      [itfs[0]!.swIfIndex, '198.51.100.20', b.saOut, [b.saIn]],
    ]);
    const routes = s.routes.map((r) => [`${r.prefix}/${r.len}`, r.paths[0]!.nh]);
    assert.deepEqual(routes.sort(), [
      ['10.10.0.0/24', '198.51.100.10'],
      ['10.20.0.0/24', '198.51.100.20'],
    ]);
    await dp.remove(1);
    s = await vpp.view();
    assert.equal(s.protections.length, 1);
    assert.equal(s.sas.size, 2);
    await dp.remove(2);
    s = await vpp.view();
    assert.equal(s.protections.length, 0);
    assert.equal(s.sas.size, 0);
    assert.ok(itfNamed(s, 'ipsec100'), 'the shared interface stays');
  } finally {
    await done();
  }
});

contract('p2mp IPv6: a peer with an IPv6 outer address next to an IPv4 one; protection and routes keyed by the IPv6 next hop', async (_t, vpp) => {
  const { dp, done } = await vpp.dataplane();
  try {
    const v4 = await dp.install(child(1, 0x1001, 0x2001, { mode: 'p2mp', iface: 'ipsec100', remote: '198.51.100.10', remoteTs: [ts4('10.10.0.0', '10.10.0.255')] }));
    const v6 = await dp.install(
      child(2, 0x1002, 0x2002, { mode: 'p2mp', iface: 'ipsec100', local: '2001:db8::1', remote: '2001:db8::10', localTs: [ts6('2001:db8:a::', '2001:db8:a::ffff')], remoteTs: [ts6('2001:db8:10::', '2001:db8:10::ffff')] }),
    );
    let s = await vpp.view();
    const sw = itfNamed(s, 'ipsec100')!.swIfIndex;
    assert.deepEqual(
      protections(s).sort(),
      [
        [sw, '198.51.100.10', v4.saOut, [v4.saIn]],
        [sw, '2001:db8::10', v6.saOut, [v6.saIn]],
      ].sort(),
    );
    assert.equal(s.sas.get(v6.saOut!)!.flags & 8, 8, 'IS_TUNNEL_V6');
    assert.equal(s.sas.get(v6.saOut!)!.tunnelDst, '2001:db8::10');
    assert.deepEqual(
      s.routes.map((r) => [r.isIp6, `${r.prefix}/${r.len}`, r.paths.map((p) => [p.swIfIndex, p.nh])]).sort(),
      [
        [false, '10.10.0.0/24', [[sw, '198.51.100.10']]],
        [true, '2001:db8:10::/112', [[sw, '2001:db8::10']]],
      ],
    );
    // A rekey towards the IPv6 peer: one protection, both inbound SAs.
    const nu = await dp.install(
      child(3, 0x1003, 0x2003, { mode: 'p2mp', iface: 'ipsec100', local: '2001:db8::1', remote: '2001:db8::10', replaces: 2, localTs: [ts6('2001:db8:a::', '2001:db8:a::ffff')], remoteTs: [ts6('2001:db8:10::', '2001:db8:10::ffff')] }),
    );
    s = await vpp.view();
    assert.deepEqual(
      protections(s).find(([, nh]) => nh === '2001:db8::10'),
      [sw, '2001:db8::10', nu.saOut, [v6.saIn, nu.saIn]],
    );
    await dp.remove(2);
    await dp.remove(3);
    s = await vpp.view();
    assert.deepEqual(
      protections(s),
      [[sw, '198.51.100.10', v4.saOut, [v4.saIn]]],
    );
    assert.deepEqual(
      s.routes.map((r) => `${r.prefix}/${r.len}`),
      ['10.10.0.0/24'],
    );
    await dp.remove(1);
    s = await vpp.view();
    assert.deepEqual([s.sas.size, s.protections.length, s.routes.length], [0, 0, 0]);
  } finally {
    await done();
  }
});

contract('policy: SPD per table bound to the interface, PROTECT both ways, BYPASS for IKE', async (_t, vpp) => {
  const { dp, done } = await vpp.dataplane({ policyIface: vpp.uplink });
  try {
    const r1 = await dp.install(child(1, 0x1001, 0x2001, { mode: 'policy', table: 3 }));
    await dp.install(child(2, 0x1002, 0x2002, { mode: 'policy', table: 3, remoteTs: [ts4('10.9.0.0', '10.9.0.255')] }));
    assert.equal(r1.interface, vpp.uplink);
    let s = await vpp.view();
    assert.equal(s.spds.size, 1);
    const [spdId, list] = [...s.spds][0]!;
    assert.ok(isOurId(spdId));
    const eth = await vpp.swIfIndex(vpp.uplink);
    assert.equal(boundSpd(s, eth), spdId);
    const protect = list.filter((p) => p.policy === 3);
    assert.equal(protect.length, 4);
    const c1 = protect.filter((p) => p.saId === r1.saIn || p.saId === r1.saOut);
    assert.deepEqual(c1.map((p) => [p.isOutbound, p.saId === r1.saOut, p.raddrStart, p.laddrStart]).sort(), [
      [false, false, '10.1.0.0', '10.0.0.0'],
      [true, true, '10.1.0.0', '10.0.0.0'],
    ]);
    const ike = list.filter((p) => p.policy === 0 && p.protocol === 17).map((p) => `${p.isOutbound ? 'out' : 'in'}${p.isIpv6 ? 6 : 4}:${p.lportStart}`);
    assert.deepEqual(ike.sort(), ['in4:4500', 'in4:500', 'in6:4500', 'in6:500', 'out4:4500', 'out4:500', 'out6:4500', 'out6:500']);
    // ipsec_spd_dump reports an IPv6 address within ::/96 as IPv4 (ip_address_encode with
    // IP46_TYPE_ANY): the IPv6 bypass entries ("any", from ::) start at 0.0.0.0.
    const raw = await vpp.raw();
    const v6 = (await raw.dump('ipsec_spd_dump', { spd_id: spdId, sa_id: 0xffffffff })).filter((d) => d.entry.remote_address_stop.af === 1);
    assert.equal(v6.length, 5);
    assert.ok(v6.every((d) => d.entry.remote_address_start.af === 0 && d.entry.local_address_start.af === 0));
    await dp.remove(1);
    s = await vpp.view();
    assert.equal(s.spds.get(spdId)!.filter((p) => p.policy === 3).length, 2);
    await dp.remove(2);
    s = await vpp.view();
    assert.equal(s.spds.size, 0, 'SPD removed with its last CHILD_SA');
    assert.equal(s.spdBindings.size, 0);
    assert.equal(s.sas.size, 0);
  } finally {
    await done();
  }
});

interface InspectDump {
  connected: boolean;
  sas: { sad_id: number; ours: boolean; child_id: number | null; spi: string; direction: string; interface: string | number | null; tunnel_src: string | null; udp_encap: unknown }[];
  tunnel_protections: { interface: string | number; nh: string | null; sa_out: number; sa_in: number[]; spi_out: string | null; spi_in: (string | null)[] }[];
  interfaces: { name: string; instance: number; mode: string; admin_up: boolean }[];
  spds: { spd_id: number; ours: boolean; policies: number; entries?: { direction: string; action: string | number; sa_id: number | null; local: string; remote: string; local_ports: string }[] }[];
  children: { child_id: number; mode: string; interface: string | null; spi_in: string; spi_out: string }[];
}

contract('dump() (vpp-sas): SAs with their interface, protections, interfaces, our SPDs with IPv6 entries as IPv6, tracked CHILD_SAs; no key material', async (_t, vpp) => {
  const { dp, done } = await vpp.dataplane({ policyIface: vpp.uplink });
  try {
    const anyV6 = ts6('::', 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff');
    const a = child(1, 0x1001, 0x2001);
    const b = child(2, 0x1002, 0x2002, { mode: 'p2mp', iface: 'ipsec100', remote: '198.51.100.10', remoteTs: [ts4('10.10.0.0', '10.10.0.255')], encap: true, lport: 4500, rport: 4500 });
    const c = child(3, 0x1003, 0x2003, { mode: 'policy', local: '2001:db8::1', remote: '2001:db8::7', localTs: [anyV6], remoteTs: [anyV6] });
    const ra = await dp.install(a);
    const rb = await dp.install(b);
    const rc = await dp.install(c);
    const d = (await dp.dump()) as InspectDump;
    assert.equal(d.connected, true);
    const sa = (id: number | undefined) => d.sas.find((x) => x.sad_id === id)!;
    assert.deepEqual(
      [ra.saIn, ra.saOut, rb.saIn, rb.saOut, rc.saIn, rc.saOut].map((id) => [sa(id).child_id, sa(id).direction, sa(id).interface, sa(id).spi]),
      [
        [1, 'in', 'ipsec1000', '00001001'],
        [1, 'out', 'ipsec1000', '00002001'],
        [2, 'in', 'ipsec100', '00001002'],
        [2, 'out', 'ipsec100', '00002002'],
        [3, 'in', null, '00001003'],
        [3, 'out', null, '00002003'],
      ],
    );
    assert.deepEqual(sa(rb.saOut).udp_encap, { src_port: 4500, dst_port: 4500 });
    assert.equal(sa(rc.saOut).tunnel_src, '2001:db8::1');
    assert.ok(d.sas.every((x) => x.ours));
    assert.deepEqual(
      d.tunnel_protections.map((p) => [p.interface, p.nh, p.spi_out, p.spi_in]).sort(),
      [
        ['ipsec100', '198.51.100.10', '00002002', ['00001002']],
        ['ipsec1000', '0.0.0.0', '00002001', ['00001001']],
      ],
    );
    assert.deepEqual(
      d.interfaces.map((i) => [i.name, i.instance, i.mode, i.admin_up]).sort(),
      [
        ['ipsec100', 100, 'p2mp', true],
        ['ipsec1000', 1000, 'p2p', true],
      ],
    );
    assert.equal(d.spds.length, 1);
    const spd = d.spds[0]!;
    assert.equal(spd.ours, true);
    assert.equal(spd.entries!.length, spd.policies);
    const any6 = '::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff';
    assert.deepEqual(
      spd.entries!.filter((e) => e.action === 'protect').map((e) => [e.direction, e.sa_id, e.local, e.remote]).sort(),
      [
        ['in', rc.saIn, any6, any6],
        ['out', rc.saOut, any6, any6],
      ].sort(),
    );
    assert.deepEqual(
      spd.entries!.filter((e) => e.action === 'bypass' && e.local_ports === '500-500').map((e) => `${e.direction} ${e.local}`).sort(),
      ['in 0.0.0.0-255.255.255.255', `in ${any6}`, 'out 0.0.0.0-255.255.255.255', `out ${any6}`],
    );
    assert.deepEqual(
      d.children.map((x) => [x.child_id, x.mode, x.interface, x.spi_in, x.spi_out]),
      [
        [1, 'p2p', 'ipsec1000', '00001001', '00002001'],
        [2, 'p2mp', 'ipsec100', '00001002', '00002002'],
        [3, 'policy', vpp.uplink, '00001003', '00002003'],
      ],
    );
    const text = JSON.stringify(d);
    for (const x of [a, b, c]) for (const k of [x.inbound.encKey, x.outbound.encKey]) assert.ok(!text.includes(k.subarray(0, 8).toString('hex')), 'no key material');
  } finally {
    await done();
  }
});

contract('make-before-break p2p: one protection update (new sa_out, both sa_in); the old SAs stay until remove(old)', async (_t, vpp) => {
  const { dp, done } = await vpp.dataplane();
  try {
    const old = await dp.install(child(1, 0x1001, 0x2001));
    const routesBefore = JSON.stringify((await vpp.view()).routes);
    let log = recordRequests(dp.client);
    const nu = await dp.install(child(2, 0x1002, 0x2002, { replaces: 1 }));
    assert.equal(nu.interface, old.interface);
    const sw = dp.childState(1)!.swIfIndex!;
    assert.deepEqual(protectUpdates(log), [[nu.saOut, [old.saIn, nu.saIn]]], 'one switch: new outbound, both inbound');
    assert.deepEqual(
      log.map((l) => l.name).filter((n) => n !== 'ipsec_sad_entry_add_v2' && n !== 'ipsec_tunnel_protect_update'),
      [],
      'nothing else changes',
    );
    let s = await vpp.view();
    assert.deepEqual(protections(s), [[sw, '0.0.0.0', nu.saOut, [old.saIn, nu.saIn]]]);
    assert.deepEqual(sadIds(s), sorted([old.saIn, old.saOut, nu.saIn, nu.saOut]), 'the old SAs are still in the SAD');
    assert.equal(s.sas.get(old.saIn!)!.spi, 0x1001);
    assert.ok(dp.childState(1), 'the replaced child is still installed');
    assert.equal(JSON.stringify(s.routes), routesBefore, 'routes untouched');
    // The old inbound SPI is still taken until remove(old).
    await assert.rejects(dp.install(child(3, 0x1001, 0x3001)), /used by child 1/);

    log = recordRequests(dp.client);
    await dp.remove(1);
    const names = log.map((l) => l.name);
    assert.deepEqual(protectUpdates(log), [[nu.saOut, [nu.saIn]]]);
    assert.ok(names.indexOf('ipsec_sad_entry_del') > names.indexOf('ipsec_tunnel_protect_update'), 'SAs deleted after the protection let go of them');
    assert.deepEqual(
      log
        .filter((l) => l.name === 'ipsec_sad_entry_del')
        .map((l) => l.msg.id as number)
        .sort((a, b) => a - b),
      sorted([old.saIn, old.saOut]),
    );
    s = await vpp.view();
    assert.deepEqual(protections(s), [[sw, '0.0.0.0', nu.saOut, [nu.saIn]]]);
    assert.deepEqual(sadIds(s), sorted([nu.saIn, nu.saOut]), 'the old SAs are gone from the SAD');
    assert.ok(!names.includes('ipsec_itf_delete') && !names.includes('ip_route_add_del'), 'interface and routes stay');
    assert.equal(dp.childState(1), undefined);
    await dp.remove(1); // already removed: ignored
    await dp.remove(2);
    s = await vpp.view();
    assert.equal(s.sas.size, 0);
    assert.equal(s.protections.length, 0);
    assert.equal(s.routes.length, 0);
    assert.equal(ipsecItfs(s).length, 0, 'the interface goes with its last CHILD_SA');
    // Its instance is free again.
    assert.equal((await dp.install(child(4, 0x1004, 0x2004))).interface, old.interface);
  } finally {
    await done();
  }
});

contract('make-before-break, rekey answered (outboundAfterReplaced): new inbound at once, outbound stays on the old SA until remove(old)', async (_t, vpp) => {
  const { dp, done } = await vpp.dataplane();
  try {
    const old = await dp.install(child(1, 0x1001, 0x2001));
    const sw = dp.childState(1)!.swIfIndex!;
    const nu = await dp.install(child(2, 0x1002, 0x2002, { replaces: 1, outboundAfterReplaced: true }));
    let s = await vpp.view();
    assert.deepEqual(protections(s), [[sw, '0.0.0.0', old.saOut, [old.saIn, nu.saIn]]], 'both inbound SAs, the old outbound one');
    await dp.remove(1);
    s = await vpp.view();
    assert.deepEqual(protections(s), [[sw, '0.0.0.0', nu.saOut, [nu.saIn]]], 'the peer deleted the old CHILD_SA: outbound moves to the new SA');
  } finally {
    await done();
  }
});

contract('rekey collision (RFC 7296 §2.8.1): both new CHILD_SAs join the old one; sa_out is always one of them, whichever of the two goes', async (_t, vpp) => {
  for (const redundant of ['ours', 'peers'] as const) {
    const { dp, done } = await vpp.dataplane();
    try {
      const old = await dp.install(child(1, 0x1001, 0x2001));
      const sw = dp.childState(1)!.swIfIndex!;
      // The peer's rekey, answered (waits for the old CHILD_SA), then our own (sent on at once).
      const peers = await dp.install(child(2, 0x1002, 0x2002, { replaces: 1, outboundAfterReplaced: true }));
      assert.deepEqual(protections(await vpp.view()), [[sw, '0.0.0.0', old.saOut, [old.saIn, peers.saIn]]]);
      const ours = await dp.install(child(3, 0x1003, 0x2003, { replaces: 1 }));
      assert.deepEqual(protections(await vpp.view()), [[sw, '0.0.0.0', ours.saOut, [old.saIn, peers.saIn, ours.saIn]]]);
      if (redundant === 'ours') {
        // We lost: we delete ours, the peer deletes the old one.
        await dp.remove(3);
        assert.deepEqual(protections(await vpp.view()), [[sw, '0.0.0.0', old.saOut, [old.saIn, peers.saIn]]], `${redundant}: back on the old SA`);
        await dp.remove(1);
        assert.deepEqual(protections(await vpp.view()), [[sw, '0.0.0.0', peers.saOut, [peers.saIn]]], `${redundant}: the peer's SA survives`);
      } else {
        // We won: we delete the old one, the peer deletes its own.
        await dp.remove(1);
        assert.deepEqual(protections(await vpp.view()), [[sw, '0.0.0.0', ours.saOut, [peers.saIn, ours.saIn]]], `${redundant}: still ours`);
        await dp.remove(2);
        assert.deepEqual(protections(await vpp.view()), [[sw, '0.0.0.0', ours.saOut, [ours.saIn]]], `${redundant}: ours survives`);
      }
    } finally {
      await done();
    }
  }
});

contract('make-before-break p2p: removing the new child first falls back to the old SAs; the last removal deletes the interface', async (_t, vpp) => {
  const { dp, done } = await vpp.dataplane();
  try {
    const old = await dp.install(child(1, 0x1001, 0x2001));
    const nu = await dp.install(child(2, 0x1002, 0x2002, { replaces: 1 }));
    const sw = dp.childState(1)!.swIfIndex!;
    await dp.remove(2);
    let s = await vpp.view();
    assert.deepEqual(protections(s), [[sw, '0.0.0.0', old.saOut, [old.saIn]]]);
    assert.deepEqual(sadIds(s), sorted([old.saIn, old.saOut]));
    assert.ok(!s.sas.has(nu.saIn!));
    assert.equal(s.routes.length, 1);
    await dp.remove(1);
    s = await vpp.view();
    assert.equal(s.sas.size, 0);
    assert.equal(s.routes.length, 0);
    assert.equal(ipsecItfs(s).length, 0);
  } finally {
    await done();
  }
});

contract('make-before-break p2p: the old and the new child removed at once (IKE SA deleted) leave nothing behind', async (_t, vpp) => {
  const { dp, done } = await vpp.dataplane();
  try {
    await dp.install(child(1, 0x1001, 0x2001));
    await dp.install(child(2, 0x1002, 0x2002, { replaces: 1 }));
    await dp.install(child(3, 0x1003, 0x2003, { mode: 'p2mp', iface: 'ipsec100' }));
    await dp.install(child(4, 0x1004, 0x2004, { mode: 'p2mp', iface: 'ipsec100', replaces: 3 }));
    await Promise.all([dp.remove(2), dp.remove(1), dp.remove(4), dp.remove(3)]);
    const s = await vpp.view();
    assert.equal(s.sas.size, 0);
    assert.equal(s.protections.length, 0);
    assert.equal(s.routes.length, 0);
    assert.deepEqual(
      ipsecItfs(s).map((i) => i.name),
      ['ipsec100'],
    );
    assert.deepEqual(((await dp.dump()) as { children: unknown[] }).children, []);
  } finally {
    await done();
  }
});

contract("make-before-break p2mp: the peer's protection gets the new sa_out and both sa_in; other peers untouched", async (_t, vpp) => {
  const { dp, done } = await vpp.dataplane();
  try {
    const p2mp = (id: number, spi: number, remote: string, replaces?: number) =>
      child(id, spi, spi + 0x1000, { mode: 'p2mp', iface: 'ipsec100', remote, remoteTs: [ts4(`10.${id}.0.0`, `10.${id}.0.255`)], ...(replaces !== undefined ? { replaces } : {}) });
    const other = await dp.install(p2mp(9, 0x9001, '198.51.100.20'));
    const old = await dp.install(p2mp(1, 0x1001, '198.51.100.10'));
    const log = recordRequests(dp.client);
    const nu = await dp.install({ ...p2mp(2, 0x1002, '198.51.100.10', 1), remoteTs: [ts4('10.1.0.0', '10.1.0.255')] });
    assert.deepEqual(protectUpdates(log), [[nu.saOut, [old.saIn, nu.saIn]]]);
    assert.ok(!log.some((l) => l.name === 'ip_route_add_del'), 'the route via the peer is shared');
    let s = await vpp.view();
    const sw = itfNamed(s, 'ipsec100')!.swIfIndex;
    const byPeer = (v: VppView): Map<string, [number, number[]]> => new Map(protections(v).map(([, nh, o, i]) => [nh, [o, i]]));
    assert.deepEqual(byPeer(s).get('198.51.100.10'), [nu.saOut, [old.saIn, nu.saIn]]);
    assert.deepEqual(byPeer(s).get('198.51.100.20'), [other.saOut, [other.saIn]]);
    assert.equal(s.sas.size, 6);
    await dp.remove(1);
    s = await vpp.view();
    assert.deepEqual(byPeer(s).get('198.51.100.10'), [nu.saOut, [nu.saIn]]);
    assert.deepEqual(byPeer(s).get('198.51.100.20'), [other.saOut, [other.saIn]]);
    assert.ok(!s.sas.has(old.saIn!) && !s.sas.has(old.saOut!), 'the old SAs are gone');
    assert.equal(s.sas.size, 4);
    const routes = s.routes.map((r) => `${r.prefix}/${r.len} via ${r.paths[0]!.nh}`).sort();
    assert.deepEqual(routes, ['10.1.0.0/24 via 198.51.100.10', '10.9.0.0/24 via 198.51.100.20']);
    assert.equal(protections(s)[0]![0], sw);
  } finally {
    await done();
  }
});

contract('make-before-break policy: new outbound entries outrank the old ones, old inbound entries and SAs stay until remove(old)', async (_t, vpp) => {
  const { dp, done } = await vpp.dataplane({ policyIface: vpp.uplink });
  try {
    const old = await dp.install(child(1, 0x1001, 0x2001, { mode: 'policy' }));
    const list = async (): Promise<{ out: boolean; prio: number; sa: number }[]> =>
      [...(await vpp.view()).spds.values()][0]!.filter((p) => p.policy === 3).map((p) => ({ out: p.isOutbound, prio: p.priority, sa: p.saId }));
    assert.deepEqual(await list(), [
      { out: true, prio: 100, sa: old.saOut },
      { out: false, prio: 100, sa: old.saIn },
    ]);
    const nu = await dp.install(child(2, 0x1002, 0x2002, { mode: 'policy', replaces: 1 }));
    const after = await list();
    assert.deepEqual(
      after.filter((p) => p.out),
      [{ out: true, prio: 101, sa: nu.saOut }],
      'outbound: only the new SA, above the old priority',
    );
    assert.deepEqual(
      after
        .filter((p) => !p.out)
        .map((p) => p.sa)
        .sort((a, b) => a - b),
      sorted([old.saIn, nu.saIn]),
      'inbound: both SAs',
    );
    assert.equal((await vpp.view()).sas.size, 4);
    await dp.remove(1);
    assert.deepEqual(
      (await list()).map((p) => [p.out, p.sa]).sort(),
      [
        [false, nu.saIn],
        [true, nu.saOut],
      ].sort(),
    );
    let s = await vpp.view();
    assert.deepEqual(sadIds(s), sorted([nu.saIn, nu.saOut]));
    assert.equal(s.spds.size, 1, 'the SPD stays for the new child');
    // Priorities stay between the PROTECT base and the IKE bypass (200): they wrap.
    let prev = 2;
    const seen = new Set<number>();
    for (let id = 3; id < 3 + 100; id++) {
      await dp.install(child(id, 0x1000 + id, 0x2000 + id, { mode: 'policy', replaces: prev }));
      const out = (await list()).filter((p) => p.out);
      assert.equal(out.length, 1);
      seen.add(out[0]!.prio);
      await dp.remove(prev);
      prev = id;
    }
    assert.equal(Math.max(...seen), 199);
    assert.equal(Math.min(...seen), 100);
    assert.equal((await list()).length, 2);
    s = await vpp.view();
    assert.equal(s.sas.size, 2);
  } finally {
    await done();
  }
});

contract('make-before-break across modes: the replaced p2p child stays until remove(old), then its interface goes', async (_t, vpp) => {
  const { dp, done } = await vpp.dataplane();
  try {
    const old = await dp.install(child(1, 0x1001, 0x2001));
    const nu = await dp.install(child(2, 0x1002, 0x2002, { mode: 'p2mp', iface: 'ipsec100', replaces: 1 }));
    const names = (v: VppView): string[] =>
      ipsecItfs(v)
        .map((i) => i.name)
        .sort();
    let s = await vpp.view();
    assert.deepEqual(names(s), ['ipsec100', old.interface!]);
    assert.equal(s.sas.size, 4);
    assert.equal(s.protections.length, 2);
    await dp.remove(1);
    s = await vpp.view();
    assert.deepEqual(names(s), ['ipsec100']);
    assert.deepEqual(sadIds(s), sorted([nu.saIn, nu.saOut]));
    assert.equal(s.protections.length, 1);
  } finally {
    await done();
  }
});

contract('rollback of a make-before-break: new SAs VPP refuses (same tunnel source and destination) leave the old CHILD_SA as it was', async (_t, vpp) => {
  const { dp, done } = await vpp.dataplane({ policyIface: vpp.uplink });
  try {
    const old = await dp.install(child(1, 0x1001, 0x2001));
    await dp.install(child(5, 0x5001, 0x6001, { mode: 'policy' }));
    await dp.install(child(7, 0x7001, 0x8001, { mode: 'p2mp', iface: 'ipsec100', remote: '198.51.100.10' }));
    const snap = viewText(await vpp.view());
    const refused = (e: unknown): boolean => e instanceof VppApiError && e.msg === 'ipsec_sad_entry_add_v2' && e.errorName === 'SAME_SRC_DST';
    const bad = { local: '198.51.100.2', remote: '198.51.100.2' };
    await assert.rejects(dp.install(child(2, 0x1002, 0x2002, { replaces: 1, ...bad })), refused);
    assert.equal(viewText(await vpp.view()), snap);
    assert.equal(dp.childState(2), undefined);
    await assert.rejects(dp.install(child(6, 0x5002, 0x6002, { mode: 'policy', replaces: 5, ...bad })), refused);
    assert.equal(viewText(await vpp.view()), snap);
    await assert.rejects(dp.install(child(8, 0x7002, 0x8002, { mode: 'p2mp', iface: 'ipsec100', replaces: 7, local: '198.51.100.10', remote: '198.51.100.10' })), refused);
    assert.equal(viewText(await vpp.view()), snap);
    // Then they go through.
    const nu = await dp.install(child(2, 0x1002, 0x2002, { replaces: 1 }));
    await dp.install(child(6, 0x5002, 0x6002, { mode: 'policy', replaces: 5 }));
    const s = await vpp.view();
    assert.deepEqual(
      protections(s).find(([, , o]) => o === nu.saOut)!.slice(2),
      [nu.saOut, [old.saIn, nu.saIn]],
    );
  } finally {
    await done();
  }
});

test('rollback of a make-before-break: a failing protection update or policy add leaves the old CHILD_SA as it was [emulator only: VPP answers a request with an error]', async () => {
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
    const prots = [...emu.state.protections.values()].map((p) => [p.saOut, [...p.saIn]]);
    assert.deepEqual(prots[0], [nu.saOut, [old.saIn, nu.saIn]]);
  } finally {
    await done();
  }
});

contract('VPP restart with a rekey in progress: the replaced and the new CHILD_SA both come back, sharing the protection', async (_t, vpp) => {
  const { dp, done } = await vpp.dataplane({ policyIface: vpp.uplink });
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
    await vpp.restart({ idBase: 300 });
    await replayed;
    assert.deepEqual(got.sort(), [1, 2, 3, 4, 5, 6]);
    let s = await vpp.view();
    const p2p = ipsecItfs(s).filter((i) => i.ipsec?.mode === 0);
    assert.equal(p2p.length, 1, 'one interface for the replaced and the new p2p child');
    const byOut = (v: VppView): Map<number, number[]> => new Map(protections(v).map(([, , o, i]) => [o, i]));
    assert.deepEqual(byOut(s).get(a2.saOut!), [a1.saIn, a2.saIn]);
    assert.deepEqual(byOut(s).get(m2.saOut!), [m1.saIn, m2.saIn]);
    assert.equal(s.protections.length, 2);
    const policies = [...s.spds.values()][0]!.filter((p) => p.policy === 3).map((p) => [p.isOutbound, p.priority, p.saId]);
    assert.deepEqual(
      policies.sort(),
      [
        [false, 100, p1.saIn],
        [false, 100, p2.saIn],
        [true, 101, p2.saOut],
      ].sort(),
    );
    assert.equal(s.sas.size, 12);
    // Completing the rekeys works as before the restart.
    await dp.remove(1);
    await dp.remove(3);
    await dp.remove(5);
    s = await vpp.view();
    assert.deepEqual(byOut(s).get(a2.saOut!), [a2.saIn]);
    assert.deepEqual(byOut(s).get(m2.saOut!), [m2.saIn]);
    assert.deepEqual(sadIds(s), sorted([a2.saIn, a2.saOut, m2.saIn, m2.saOut, p2.saIn, p2.saOut]));
  } finally {
    await done();
  }
});

test("rollback: a failing step removes what the install added and rejects with VPP's answer [emulator only: VPP answers a request with an error]", async () => {
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

contract('VPP restart: every CHILD_SA is programmed again with the same SPIs, keys and ids, then replayed() is called', async (_t, vpp) => {
  const { dp, done } = await vpp.dataplane({ policyIface: vpp.uplink });
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
    const keyOf = (v: VppView, id: number): string => v.sas.get(id)!.cryptoKey.toString('hex');
    const k1 = keyOf(await vpp.view(), r1.saIn!);
    await vpp.restart({ idBase: 400 });
    await replayed;
    assert.deepEqual(got.sort(), [1, 2, 3]);
    let s = await vpp.view();
    assert.deepEqual(sadIds(s), sorted([r1.saIn, r1.saOut, r2.saIn, r2.saOut, r3.saIn, r3.saOut]));
    assert.equal(s.sas.get(r1.saIn!)!.spi, 0x1001);
    assert.equal(keyOf(s, r1.saIn!), k1);
    assert.equal(s.sas.get(r1.saIn!)!.udpDst, 4500);
    assert.ok(itfNamed(s, 'ipsec1000'));
    assert.ok(itfNamed(s, 'ipsec100'));
    assert.equal(s.protections.length, 2);
    assert.equal(s.spds.size, 1);
    // And it keeps working.
    await dp.remove(1);
    s = await vpp.view();
    assert.equal(s.sas.size, 4);
  } finally {
    await done();
  }
});

contract('reconcile at start: objects that look like ours are removed, others kept', async (_t, vpp) => {
  const raw = await vpp.raw();
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
  const { done } = await vpp.dataplane();
  try {
    const s = await vpp.view();
    assert.deepEqual([...s.sas.keys()], [5]);
    assert.deepEqual(
      ipsecItfs(s).map((i) => i.name),
      ['ipsec3'],
    );
    assert.deepEqual([...s.spds.keys()], [9]);
    assert.equal(s.protections.length, 0);
  } finally {
    await done();
  }
});

contract('VPP restart in the middle of installs: failed installs leave nothing behind, installed ones are replayed', async (_t, vpp) => {
  const { dp, done } = await vpp.dataplane();
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
    // Enough installs that a loaded machine cannot finish them all while VPP is being killed.
    const installs = Array.from({ length: 600 }, (_, i) =>
      dp.install(child(i + 1, 0x100000 + i, 0x200000 + i)).then(
        () => note(i + 1, true),
        () => note(i + 1, false),
      ),
    );
    await sixty; // restart while the rest are on the wire
    await vpp.restart();
    await Promise.all(installs);
    await resynced(dp); // the replay is done
    const ok = [...results]
      .filter(([, v]) => v)
      .map(([k]) => k)
      .sort((a, b) => a - b);
    let s = await vpp.view();
    assert.equal(s.sas.size, ok.length * 2, 'exactly the installed CHILD_SAs are in VPP');
    assert.equal(s.protections.length, ok.length);
    assert.equal(ipsecItfs(s).length, ok.length);
    for (const id of ok) assert.ok(dp.childState(id));
    assert.ok(ok.length >= 60 && ok.length < 600, `some installs done before the restart, some cut off (${ok.length})`);
    assert.deepEqual(
      [...new Set(replayed)].sort((a, b) => a - b),
      ok.filter((id) => replayed.includes(id)),
    );
    assert.ok(replayed.length >= 60, 'the CHILD_SAs installed before the restart were replayed');
    // New work after the restart goes through.
    await dp.install(child(1000, 0x300000, 0x400000));
    s = await vpp.view();
    assert.equal(s.sas.size, ok.length * 2 + 2);
  } finally {
    await done();
  }
});
