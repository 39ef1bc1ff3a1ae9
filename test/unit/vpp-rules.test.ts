/**
 * The install checks shared by the memory and VPP back ends (src/dataplane/vpp-rules.ts): what
 * each rule accepts, what it refuses and the reason it gives; the endpoint check of update(); the
 * features VPP runs.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { validateChildInstall, validateEndpoints, vppDataplaneFeatures, type InstallCheckContext } from '../../src/dataplane/vpp-rules.ts';
import type { ChildInstall, SaParams, TsRange, VppMode } from '../../src/dataplane/types.ts';
import { saParams } from '../helpers/builders.ts';
import { childInstall } from '../helpers/child-install.ts';

const U32_MAX = 0xffffffff;

/** A dataplane state: the installed children and the inbound SPIs they own. */
function ctx(o: { installed?: number[]; spis?: Record<number, number>; policyInterface?: string } = {}): InstallCheckContext {
  const installed = new Set(o.installed ?? []);
  const spis = new Map(Object.entries(o.spis ?? {}).map(([spi, child]) => [Number(spi), child]));
  return { isInstalled: (id) => installed.has(id), spiOwner: (spi) => spis.get(spi), policyInterface: o.policyInterface };
}

const EMPTY = ctx();

/** The child 1 of childInstall() with fields replaced. */
function c(extra: Partial<ChildInstall> = {}): ChildInstall {
  return childInstall(1, 0x1000, 0x2000, extra);
}

function inbound(o: Partial<SaParams>): Partial<ChildInstall> {
  return { inbound: { ...saParams(0x1000, true), ...o } };
}

function outbound(o: Partial<SaParams>): Partial<ChildInstall> {
  return { outbound: { ...saParams(0x2000, false), ...o } };
}

function ts(start: string, end: string, o: Partial<TsRange> = {}): TsRange {
  return { family: start.includes(':') ? 6 : 4, start, end, protocol: 0, startPort: 0, endPort: 65535, ...o };
}

/** A well-formed IPv6 tunnel between 2001:db8::1 and 2001:db8::2. */
function v6Tunnel(extra: Partial<ChildInstall> = {}): ChildInstall {
  const a = { addr: '2001:db8::1', port: 500 };
  const b = { addr: '2001:db8::2', port: 500 };
  return c({
    inbound: { ...saParams(0x1000, true), src: b, dst: a },
    outbound: { ...saParams(0x2000, false), src: a, dst: b },
    localTs: [ts('2001:db8:a::', '2001:db8:a::ffff')],
    remoteTs: [ts('2001:db8:b::', '2001:db8:b::ffff')],
    ...extra,
  });
}

function refuses(child: ChildInstall, why: string | RegExp, context: InstallCheckContext = EMPTY): void {
  const got = validateChildInstall(child, context);
  if (typeof why === 'string') assert.equal(got, why);
  else assert.match(got ?? '(accepted)', why);
}

function accepts(child: ChildInstall, context: InstallCheckContext = EMPTY): void {
  assert.equal(validateChildInstall(child, context), undefined);
}

test('VPP features: the ESP transforms VPP runs, ESN, all three modes', () => {
  const f = vppDataplaneFeatures();
  for (const e of ['3:192', '11:0', '12:128', '12:192', '12:256', '13:128', '13:256', '20:128', '20:192', '20:256', '21:256', '28:256']) {
    assert.ok(f.encr.has(e), `ENCR ${e}`);
  }
  // AES-GCM with 8- or 12-byte ICV, AES-CCM, DES and odd key sizes are not run by VPP
  for (const e of ['18:256', '19:256', '16:128', '2:64', '12:64', '28:128']) assert.ok(!f.encr.has(e), `no ENCR ${e}`);
  assert.deepEqual([...f.integ].sort((a, b) => a - b), [0, 1, 2, 12, 13, 14]);
  assert.equal(f.esn, true);
  assert.deepEqual([...f.modes].sort(), ['p2mp', 'p2p', 'policy']);
  // every call hands out its own sets
  f.encr.clear();
  f.modes.delete('p2p');
  assert.ok(vppDataplaneFeatures().encr.has('20:256'));
  assert.ok(vppDataplaneFeatures().modes.has('p2p'));
});

test('update() endpoints: two addresses of one family, ports 0..65535', () => {
  assert.equal(validateEndpoints({ addr: '192.0.2.1', port: 4500 }, { addr: '198.51.100.7', port: 4500 }), undefined);
  assert.equal(validateEndpoints({ addr: '2001:db8::1', port: 0 }, { addr: '2001:db8::2', port: 65535 }), undefined);
  assert.equal(validateEndpoints({ addr: 'gw.example', port: 500 }, { addr: '198.51.100.7', port: 500 }), 'endpoint "gw.example" is not an IP address');
  assert.equal(validateEndpoints({ addr: '192.0.2.1', port: 500 }, { addr: '10.0.0.256', port: 500 }), 'endpoint "10.0.0.256" is not an IP address');
  assert.equal(validateEndpoints({ addr: '192.0.2.1', port: 65536 }, { addr: '198.51.100.7', port: 500 }), 'invalid port 65536');
  assert.equal(validateEndpoints({ addr: '192.0.2.1', port: 500 }, { addr: '198.51.100.7', port: -1 }), 'invalid port -1');
  assert.equal(validateEndpoints({ addr: '192.0.2.1', port: 4500.5 }, { addr: '198.51.100.7', port: 500 }), 'invalid port 4500.5');
  assert.equal(validateEndpoints({ addr: '192.0.2.1', port: 500 }, { addr: '2001:db8::2', port: 500 }), 'endpoints are in different address families');
  assert.equal(validateEndpoints({ addr: '::ffff:192.0.2.1', port: 500 }, { addr: '198.51.100.7', port: 500 }), 'endpoints are in different address families');
});

test('a well-formed CHILD_SA is accepted: IPv4, IPv6, NAT-T ports, transport mode, SPI and table bounds', () => {
  accepts(c());
  accepts(v6Tunnel());
  // an IPv6 tunnel may carry IPv4 traffic (p2p)
  accepts(v6Tunnel({ localTs: [ts('10.0.0.0', '10.0.0.255')], remoteTs: [ts('10.1.0.0', '10.1.0.255')] }));
  accepts(c({ ...inbound({ udpEncap: true, src: { addr: '198.51.100.7', port: 61000 }, dst: { addr: '192.0.2.1', port: 4500 } }) }));
  accepts(c({ ...inbound({ mode: 'transport' }), ...outbound({ mode: 'transport' }) }));
  accepts(c({ ...inbound({ spi: 256 }), ...outbound({ spi: U32_MAX }) }));
  accepts(c({ vppTable: U32_MAX }));
  accepts(c({ ...inbound({ replayWindow: 0 }), ...outbound({ replayWindow: U32_MAX }) }));
  // several selectors, single addresses, protocol and port ranges, the whole space
  accepts(c({ localTs: [ts('10.0.0.1', '10.0.0.1', { protocol: 6, startPort: 80, endPort: 80 }), ts('0.0.0.0', '255.255.255.255', { protocol: 255 })] }));
  // AES-CBC with HMAC-SHA1-96, ChaCha20-Poly1305, ENCR_NULL with integrity
  const cbc = { alg: { encrId: 12, encrKeyBits: 128, integId: 2, esn: true }, encKey: Buffer.alloc(16), integKey: Buffer.alloc(20) };
  accepts(c({ ...inbound(cbc), ...outbound(cbc) }));
  const chacha = { alg: { encrId: 28, encrKeyBits: 256, integId: 0, esn: false }, encKey: Buffer.alloc(36), integKey: Buffer.alloc(0) };
  accepts(c({ ...inbound(chacha), ...outbound(chacha) }));
  const nul = { alg: { encrId: 11, encrKeyBits: 0, integId: 12, esn: false }, encKey: Buffer.alloc(0), integKey: Buffer.alloc(32) };
  accepts(c({ ...inbound(nul), ...outbound(nul) }));
});

test('installed state: a child is installed once; a rekey replaces an installed child; SPIs are not shared', () => {
  refuses(c(), 'child 1 is already installed', ctx({ installed: [1] }));
  refuses(c({ replaces: 9 }), 'child 9 to replace is not installed');
  accepts(c({ replaces: 9 }), ctx({ installed: [9] }));
  refuses(c(), 'inbound SPI 00001000 is used by child 3', ctx({ installed: [3], spis: { 0x1000: 3 } }));
  refuses(c({ replaces: 4 }), 'inbound SPI 00001000 is used by child 3', ctx({ installed: [3, 4], spis: { 0x1000: 3 } }));
  refuses(c({ ...inbound({ spi: 0xdeadbeef }) }), 'inbound SPI deadbeef is used by child 7', ctx({ installed: [7], spis: { 0xdeadbeef: 7 } }));
  // make-before-break keeping the SPI: the owner is the child being replaced
  accepts(c({ replaces: 3 }), ctx({ installed: [3], spis: { 0x1000: 3 } }));
  // only the inbound SPI is ours to keep unique
  accepts(c(), ctx({ installed: [3], spis: { 0x2000: 3 } }));
});

test('mode and table', () => {
  const bogus: string = 'tunnel';
  refuses(c({ vppMode: bogus as VppMode }), 'unknown vpp_mode tunnel');
  refuses(c({ vppTable: -1 }), 'invalid vpp_table -1');
  refuses(c({ vppTable: U32_MAX + 1 }), 'invalid vpp_table 4294967296');
  refuses(c({ vppTable: 1.5 }), 'invalid vpp_table 1.5');
  refuses(c({ vppTable: Number.NaN }), 'invalid vpp_table NaN');
});

test('the inbound and outbound SAs are in their places', () => {
  refuses(c({ ...inbound({ inbound: false }) }), 'inbound/outbound SAs swapped');
  refuses(c({ ...outbound({ inbound: true }) }), 'inbound/outbound SAs swapped');
  refuses(c({ inbound: saParams(0x2000, false), outbound: saParams(0x1000, true) }), 'inbound/outbound SAs swapped');
});

test('SA parameters: SPI, keys, replay window, mode, endpoints', () => {
  refuses(c({ ...inbound({ spi: 255 }) }), 'invalid inbound SPI 255');
  refuses(c({ ...inbound({ spi: 0 }) }), 'invalid inbound SPI 0');
  refuses(c({ ...outbound({ spi: U32_MAX + 1 }) }), 'invalid outbound SPI 4294967296');
  refuses(c({ ...outbound({ spi: 4096.5 }) }), 'invalid outbound SPI 4096.5');
  // key material and transforms (the checks of ike-algorithms.ts, reported as they are)
  refuses(c({ ...inbound({ encKey: Buffer.alloc(32) }) }), 'encryption key is 32 bytes, ENCR 20/256 needs 36');
  refuses(c({ ...outbound({ integKey: Buffer.alloc(20) }) }), 'integrity key is 20 bytes, INTEG 0 needs 0');
  refuses(c({ ...inbound({ alg: { encrId: 19, encrKeyBits: 256, integId: 0, esn: false } }) }), 'ENCR 19 with 256-bit key is not supported by VPP');
  refuses(c({ ...inbound({ alg: { encrId: 12, encrKeyBits: 128, integId: 5, esn: false } }) }), 'INTEG 5 is not supported by VPP');
  refuses(c({ ...inbound({ alg: { encrId: 20, encrKeyBits: 256, integId: 12, esn: false } }) }), 'ENCR 20 is combined-mode and takes no INTEG transform');
  refuses(c({ ...inbound({ alg: { encrId: 11, encrKeyBits: 0, integId: 0, esn: false } }) }), 'ENCR_NULL needs an integrity transform');
  refuses(c({ ...inbound({ alg: { encrId: 13, encrKeyBits: 128, integId: 1, esn: false } }) }), 'VPP does not run AES-CTR with HMAC-MD5-96');
  refuses(c({ ...inbound({ replayWindow: -1 }) }), 'invalid replay window -1');
  refuses(c({ ...outbound({ replayWindow: U32_MAX + 1 }) }), 'invalid replay window 4294967296');
  refuses(c({ ...inbound({ replayWindow: 64.5 }) }), 'invalid replay window 64.5');
  const beet: string = 'beet';
  refuses(c({ ...inbound({ mode: beet as SaParams['mode'] }) }), 'invalid SA mode beet');
  refuses(c({ ...inbound({ src: { addr: 'peer.example', port: 500 } }) }), 'inbound SA endpoint "peer.example" is not an IP address');
  refuses(c({ ...outbound({ dst: { addr: '', port: 500 } }) }), 'outbound SA endpoint "" is not an IP address');
  refuses(c({ ...outbound({ src: { addr: '192.0.2.1', port: 70000 } }) }), 'invalid outbound SA port 70000');
  refuses(c({ ...inbound({ dst: { addr: '192.0.2.1', port: -1 } }) }), 'invalid inbound SA port -1');
});

test('tunnel endpoints share one address family', () => {
  const v6 = { addr: '2001:db8::2', port: 500 };
  refuses(c({ ...outbound({ dst: v6 }) }), 'tunnel endpoints are in different address families');
  refuses(c({ ...outbound({ src: v6 }) }), 'tunnel endpoints are in different address families');
  refuses(c({ ...inbound({ src: v6 }) }), 'tunnel endpoints are in different address families');
  refuses(c({ ...inbound({ dst: v6 }) }), 'tunnel endpoints are in different address families');
});

test('traffic selectors: family, address range, port range, protocol; local and remote alike', () => {
  for (const side of ['localTs', 'remoteTs'] as const) {
    const with1 = (t: TsRange): ChildInstall => c({ [side]: [ts('10.9.0.0', '10.9.0.255'), t] });
    const five: number = 5;
    refuses(with1({ ...ts('10.0.0.0', '10.0.0.255'), family: five as 4 }), 'traffic selector family 5 is neither 4 nor 6');
    refuses(with1({ ...ts('2001:db8::', '2001:db8::ff'), family: 4 }), 'traffic selector 2001:db8::-2001:db8::ff is not a range of IPv4 addresses');
    refuses(with1({ ...ts('10.0.0.0', '10.0.0.255'), family: 6 }), 'traffic selector 10.0.0.0-10.0.0.255 is not a range of IPv6 addresses');
    refuses(with1(ts('10.0.0.0', '2001:db8::ff')), 'traffic selector 10.0.0.0-2001:db8::ff is not a range of IPv4 addresses');
    refuses(with1(ts('10.0.0.0', 'any')), 'traffic selector 10.0.0.0-any is not a range of IPv4 addresses');
    refuses(with1(ts('10.0.0.9', '10.0.0.1')), 'traffic selector 10.0.0.9-10.0.0.1 starts after its end');
    refuses(with1(ts('2001:db8::1:0', '2001:db8::ffff')), 'traffic selector 2001:db8::1:0-2001:db8::ffff starts after its end');
    refuses(with1(ts('10.0.0.0', '10.0.0.255', { startPort: 80, endPort: 79 })), 'traffic selector ports 80-79 are not a port range');
    // OPAQUE ports (RFC 7296 §3.13.1) cannot be programmed
    refuses(with1(ts('10.0.0.0', '10.0.0.255', { startPort: 65535, endPort: 0 })), 'traffic selector ports 65535-0 are not a port range');
    refuses(with1(ts('10.0.0.0', '10.0.0.255', { startPort: 0, endPort: 65536 })), 'traffic selector ports 0-65536 are not a port range');
    refuses(with1(ts('10.0.0.0', '10.0.0.255', { startPort: -1, endPort: 10 })), 'traffic selector ports -1-10 are not a port range');
    refuses(with1(ts('10.0.0.0', '10.0.0.255', { protocol: 256 })), 'invalid traffic selector protocol 256');
    refuses(with1(ts('10.0.0.0', '10.0.0.255', { protocol: -1 })), 'invalid traffic selector protocol -1');
    refuses(with1(ts('10.0.0.0', '10.0.0.255', { protocol: 6.5 })), 'invalid traffic selector protocol 6.5');
    // the edges of what is valid
    accepts(with1(ts('10.0.0.7', '10.0.0.7', { protocol: 255, startPort: 65535, endPort: 65535 })));
    accepts(with1(ts('::', 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', { protocol: 0, startPort: 0, endPort: 0 })));
  }
});

test('p2mp: the shared interface is ipsec0..ipsec16383; routes need remote selectors of the tunnel family', () => {
  refuses(c({ vppMode: 'p2mp' }), 'p2mp needs vpp_interface (the shared ipsec interface)');
  refuses(c({ vppMode: 'p2mp', vppInterface: '' }), 'p2mp needs vpp_interface (the shared ipsec interface)');
  for (const name of ['ipsec0', 'ipsec7', 'ipsec16383']) accepts(c({ vppMode: 'p2mp', vppInterface: name }));
  for (const name of ['ipsec16384', 'ipsec99999', 'ipsec100000', 'ipsec01', 'ipsec', 'ipsec-1', 'host-eth0', 'IPSEC1', 'ipsec1 ', 'xipsec1']) {
    refuses(c({ vppMode: 'p2mp', vppInterface: name }), `p2mp interface must be named ipsecN (N 0..16383), not ${name}`);
  }
  // an IPv4 peer with IPv6 remote selectors: no route can point them at the peer
  const v6Remote = { remoteTs: [ts('10.1.0.0', '10.1.0.255'), ts('2001:db8:b::', '2001:db8:b::ff')] };
  refuses(c({ vppMode: 'p2mp', vppInterface: 'ipsec1', ...v6Remote }), 'p2mp routes need the remote traffic selectors in the family of the peer address');
  accepts(c({ vppMode: 'p2mp', vppInterface: 'ipsec1', vppRoutes: false, ...v6Remote }));
  // local selectors of the other family do not matter for routes
  accepts(c({ vppMode: 'p2mp', vppInterface: 'ipsec1', localTs: [ts('2001:db8:a::', '2001:db8:a::ff')] }));
  accepts(v6Tunnel({ vppMode: 'p2mp', vppInterface: 'ipsec1' }));
  refuses(v6Tunnel({ vppMode: 'p2mp', vppInterface: 'ipsec1', remoteTs: [ts('10.1.0.0', '10.1.0.255')] }), 'p2mp routes need the remote traffic selectors in the family of the peer address');
  // p2p and policy have no such rule
  accepts(c({ ...v6Remote }));
  accepts(c({ vppMode: 'policy', vppInterface: 'host-eth0', ...v6Remote }));
});

test('policy: the CHILD_SA names the SPD interface, or the dataplane has a default one', () => {
  refuses(c({ vppMode: 'policy' }), 'policy mode needs vpp_interface (the interface the SPD is bound to)');
  refuses(c({ vppMode: 'policy', vppInterface: '' }), 'policy mode needs vpp_interface (the interface the SPD is bound to)');
  accepts(c({ vppMode: 'policy', vppInterface: 'host-eth0' }));
  accepts(c({ vppMode: 'policy' }), ctx({ policyInterface: 'host-eth1' }));
  refuses(c({ vppMode: 'policy' }), 'policy mode needs vpp_interface (the interface the SPD is bound to)', ctx({ policyInterface: '' }));
  // the interface names of p2mp do not apply
  accepts(c({ vppMode: 'policy', vppInterface: 'ipsec99999' }));
});

test('the first failing rule is the one reported', () => {
  // already installed wins over everything else
  refuses(c({ vppMode: 'p2mp', ...inbound({ spi: 1 }) }), 'child 1 is already installed', ctx({ installed: [1] }));
  // SA parameters before traffic selectors, traffic selectors before the SPI owner, that before p2mp
  refuses(c({ ...inbound({ spi: 1 }), localTs: [ts('10.0.0.9', '10.0.0.1')] }), 'invalid inbound SPI 1');
  refuses(c({ localTs: [ts('10.0.0.9', '10.0.0.1')] }), /starts after its end/, ctx({ installed: [3], spis: { 0x1000: 3 } }));
  refuses(c({ vppMode: 'p2mp' }), 'inbound SPI 00001000 is used by child 3', ctx({ installed: [3], spis: { 0x1000: 3 } }));
  // inbound before outbound
  refuses(c({ ...inbound({ spi: 1 }), ...outbound({ spi: 2 }) }), 'invalid inbound SPI 1');
});
