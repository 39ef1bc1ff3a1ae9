/**
 * vpp-iked against a real strongSwan 5.9, and in part 6.0 (charon with kernel-libipsec, so its CHILD_SAs are really
 * installed; libipsec forces UDP encapsulation, so IKE floats to 4500 and ESP is UDP-encapsulated).
 *
 *   netns a: charon            192.0.2.1 / 2001:db8::1
 *   netns b: vpp-iked (memory) 192.0.2.2 / 2001:db8::2
 *
 * One lab for the whole file. Matrix: PSK; four IKE/ESP suites; IPv4 and IPv6; strongSwan as
 * initiator and as responder; the IKE SA is deleted by the side that did not initiate. Then an
 * extra CHILD_SA with PFS created and deleted from either side, and DPD in both directions.
 * Every check compares both sides: states, IKE SPIs, CHILD SPIs crosswise, algorithms, TS, ports.
 *
 * INTEROP_SAMPLE_FILE=path writes `swanctl --list-sas` and `vpp-ikectl list-sas` of one tunnel there.
 */
import { test } from 'node:test';
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { createLab, LAB_ADDR, requireInterop, requireInterop6, waitFor } from './harness.ts';
import type { Charon, Lab, SwanChildSa, SwanSa } from './harness.ts';
import { startDaemon } from '../helpers/daemon.ts';
import type { ChildSaJson, DaemonHandle, IkeSaJson } from '../helpers/daemon.ts';

const PSK = 'interop-preshared-key-0123456789';

interface Suite {
  tag: string;
  ike: string;
  esp: string;
  /** what both sides must show, in our list-sas notation */
  ikeName: string;
  espName: string;
}

const SUITES: Suite[] = [
  { tag: 'gcm256', ike: 'aes256gcm16-prfsha256-x25519', esp: 'aes256gcm16', ikeName: 'AES_GCM_16_256/PRF_HMAC_SHA2_256/CURVE_25519', espName: 'AES_GCM_16_256' },
  { tag: 'gcm128', ike: 'aes128gcm16-prfsha256-ecp256', esp: 'aes128gcm16', ikeName: 'AES_GCM_16_128/PRF_HMAC_SHA2_256/ECP_256', espName: 'AES_GCM_16_128' },
  { tag: 'cbc', ike: 'aes256-sha256-modp3072', esp: 'aes256-sha256', ikeName: 'AES_CBC_256/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/MODP_3072', espName: 'AES_CBC_256/HMAC_SHA2_256_128' },
  { tag: 'chacha', ike: 'chacha20poly1305-prfsha256-curve25519', esp: 'chacha20poly1305', ikeName: 'CHACHA20_POLY1305/PRF_HMAC_SHA2_256/CURVE_25519', espName: 'CHACHA20_POLY1305' },
];

type Family = 4 | 6;
const TS = {
  4: { a: '198.51.100.0/25', b: '198.51.100.128/25', a2: '203.0.113.0/25', b2: '203.0.113.128/25' },
  6: { a: '2001:db8:a::/64', b: '2001:db8:b::/64', a2: '2001:db8:a2::/64', b2: '2001:db8:b2::/64' },
} as const;
const ADDR = {
  4: { a: LAB_ADDR.a.v4, b: LAB_ADDR.b.v4 },
  6: { a: LAB_ADDR.a.v6, b: LAB_ADDR.b.v6 },
} as const;

interface ConnSpec {
  name: string;
  family: Family;
  suite: Suite;
  /** strongSwan side: dpd_delay */
  swanDpd?: string;
  /** our side: dpd_delay */
  ourDpd?: string;
  /** a second child with PFS (esp_proposals with a group) */
  pfsChild?: boolean;
  /** the child's esp_proposals carry a group: no PFS in IKE_AUTH, PFS when rekeyed */
  rekeyPfs?: boolean;
}

const CONNS: ConnSpec[] = [
  ...SUITES.flatMap((s) => ([4, 6] as const).map((f) => ({ name: `${s.tag}v${f}`, family: f, suite: s }))),
  { name: 'pfs', family: 4, suite: SUITES[0], pfsChild: true },
  { name: 'rekey', family: 4, suite: SUITES[0], rekeyPfs: true },
  { name: 'dpdswan', family: 4, suite: SUITES[0], swanDpd: '2s' },
  { name: 'dpdours', family: 6, suite: SUITES[1], ourDpd: '2s' },
];

/** One side's connections; `me` is a (strongSwan) or b (vpp-iked). Identities are per connection. */
function connections(me: 'a' | 'b', swan: boolean): string {
  const peer = me === 'a' ? 'b' : 'a';
  const out: string[] = ['connections {'];
  for (const c of CONNS) {
    const dpd = swan ? c.swanDpd : c.ourDpd;
    const ts = TS[c.family];
    out.push(`  ${c.name} {`);
    if (swan) out.push('    version = 2');
    out.push(
      `    local_addrs = ${ADDR[c.family][me]}`,
      `    remote_addrs = ${ADDR[c.family][peer]}`,
      `    proposals = ${c.suite.ike}`,
      ...(dpd ? [`    dpd_delay = ${dpd}`] : []),
      `    local {`,
      `      auth = psk`,
      `      id = ${me}-${c.name}.lab`,
      `    }`,
      `    remote {`,
      `      auth = psk`,
      `      id = ${peer}-${c.name}.lab`,
      `    }`,
      `    children {`,
      `      net {`,
      `        local_ts = ${ts[me]}`,
      `        remote_ts = ${ts[peer]}`,
      `        esp_proposals = ${c.rekeyPfs ? `${c.suite.esp}-x25519` : c.suite.esp}`,
      `      }`,
    );
    if (c.pfsChild) {
      out.push(
        `      net2 {`,
        `        local_ts = ${ts[`${me}2`]}`,
        `        remote_ts = ${ts[`${peer}2`]}`,
        `        esp_proposals = aes256gcm16-x25519`,
        `      }`,
      );
    }
    out.push('    }', '  }');
  }
  out.push('}', 'secrets {', '  ike-lab {', `    secret = "${PSK}"`, '  }', '}', '');
  return out.join('\n');
}

// ---------------------------------------------------------------------------------------------
// strongSwan names → our notation

function swanEncr(alg: string | undefined, keysize: number | undefined): string | undefined {
  if (alg === undefined) return undefined;
  // our names carry the key size except for ChaCha20-Poly1305, whose key size is fixed
  return alg === 'CHACHA20_POLY1305' || keysize === undefined ? alg : `${alg}_${keysize}`;
}

/** strongSwan's IKE_SA algorithms as our proposal string, e.g. AES_GCM_16 / 256 → "AES_GCM_16_256/...". */
function swanIkeProposal(s: SwanSa): string {
  return [swanEncr(s.encrAlg, s.encrKeysize), s.integAlg, s.prfAlg, s.dhGroup].filter((x) => x !== undefined).join('/');
}

function swanEspProposal(c: SwanChildSa): string {
  const esn = c.raw.esn === '1' ? 'ESN' : undefined;
  return [swanEncr(c.encrAlg, c.encrKeysize), c.integAlg, c.dhGroup, esn].filter((x) => x !== undefined).join('/');
}

// ---------------------------------------------------------------------------------------------
// comparisons

function onlySwan(sas: SwanSa[], name: string): SwanSa {
  const f = sas.filter((s) => s.name === name);
  assert.equal(f.length, 1, `strongSwan: expected one IKE_SA ${name}, got ${JSON.stringify(sas.map((s) => `${s.name}:${s.state}`))}`);
  return f[0];
}

function onlyOurs(sas: IkeSaJson[], name: string): IkeSaJson {
  const f = sas.filter((s) => s.name === name);
  assert.equal(f.length, 1, `vpp-iked: expected one IKE SA ${name}, got ${JSON.stringify(sas.map((s) => `${s.name}:${s.state}`))}`);
  return f[0];
}

/** Both sides' view of the IKE SA `conn` agree; returns both. */
async function assertIke(swan: Charon, ours: DaemonHandle, c: ConnSpec, swanInitiated: boolean): Promise<{ s: SwanSa; o: IkeSaJson }> {
  const s = onlySwan(await swan.listSas(c.name), c.name);
  const o = onlyOurs(await ours.listSas(c.name), c.name);
  assert.equal(s.state, 'ESTABLISHED', 'strongSwan IKE_SA state');
  assert.equal(o.state, 'ESTABLISHED', 'vpp-iked IKE SA state');
  assert.equal(s.version, '2');
  assert.equal(s.initiator, swanInitiated, 'strongSwan initiator flag');
  assert.equal(o.initiator, !swanInitiated, 'vpp-iked initiator flag');
  assert.equal(o.spi_i, s.spiI, 'same initiator SPI');
  assert.equal(o.spi_r, s.spiR, 'same responder SPI');
  assert.equal(swanIkeProposal(s), c.suite.ikeName, 'strongSwan IKE algorithms');
  assert.equal(o.proposal, c.suite.ikeName, 'vpp-iked IKE algorithms');
  const addr = ADDR[c.family];
  assert.equal(s.localHost, addr.a);
  assert.equal(s.remoteHost, addr.b);
  assert.deepEqual(o.local, { addr: addr.b, port: 4500, id: `b-${c.name}.lab` });
  assert.deepEqual(o.remote, { addr: addr.a, port: 4500, id: `a-${c.name}.lab` });
  // kernel-libipsec makes strongSwan fake a NAT, so both sides use UDP encapsulation on 4500
  assert.equal(s.localPort, 4500);
  assert.equal(s.remotePort, 4500);
  assert.equal(o.encap, true, 'vpp-iked encap');
  assert.equal(s.localId, `a-${c.name}.lab`);
  assert.equal(s.remoteId, `b-${c.name}.lab`);
  return { s, o };
}

/** strongSwan's and our CHILD_SA `name` agree: INSTALLED, SPIs crosswise, algorithms, TS, encap. */
function assertChild(s: SwanSa, o: IkeSaJson, name: string, espName: string, ts: { a: string; b: string }): { sc: SwanChildSa; oc: ChildSaJson } {
  const scs = s.children.filter((x) => x.name === name);
  const ocs = o.child_sas.filter((x) => x.name === name);
  assert.equal(scs.length, 1, `strongSwan: one CHILD_SA ${name}: ${JSON.stringify(s.children.map((x) => `${x.name}:${x.state}`))}`);
  assert.equal(ocs.length, 1, `vpp-iked: one CHILD SA ${name}: ${JSON.stringify(o.child_sas.map((x) => `${x.name}:${x.state}`))}`);
  const sc = scs[0];
  const oc = ocs[0];
  assert.equal(sc.state, 'INSTALLED', 'strongSwan CHILD_SA state');
  assert.equal(oc.state, 'INSTALLED', 'vpp-iked CHILD SA state');
  assert.equal(sc.mode, 'TUNNEL');
  assert.equal(oc.mode, 'TUNNEL');
  assert.equal(sc.protocol, 'ESP');
  assert.equal(sc.encap, true, 'strongSwan ESP in UDP');
  assert.equal(oc.encap, true, 'vpp-iked ESP in UDP');
  assert.equal(sc.spiIn, oc.spi_out, 'strongSwan inbound SPI = our outbound SPI');
  assert.equal(sc.spiOut, oc.spi_in, 'strongSwan outbound SPI = our inbound SPI');
  assert.equal(swanEspProposal(sc), espName, 'strongSwan ESP algorithms');
  assert.equal(oc.proposal, espName, 'vpp-iked ESP algorithms');
  assert.deepEqual(sc.localTs, [ts.a]);
  assert.deepEqual(sc.remoteTs, [ts.b]);
  assert.deepEqual(oc.local_ts, [ts.b]);
  assert.deepEqual(oc.remote_ts, [ts.a]);
  return { sc, oc };
}

interface VppDump {
  sas: { child_id: number; inbound: { spi: string; udp_encap: boolean }; outbound: { spi: string; udp_encap: boolean } }[];
}

/** Our memory dataplane holds exactly these CHILD SAs with these SPIs. */
async function assertDataplane(ours: DaemonHandle, children: ChildSaJson[]): Promise<void> {
  const d = await ours.json<VppDump>(['vpp-sas']);
  assert.deepEqual(d.sas.map((x) => x.child_id).sort(), children.map((c) => c.id).sort(), 'dataplane holds the CHILD SAs');
  for (const c of children) {
    const x = d.sas.find((y) => y.child_id === c.id)!;
    assert.equal(x.inbound.spi, c.spi_in);
    assert.equal(x.outbound.spi, c.spi_out);
    assert.equal(x.inbound.udp_encap, true);
  }
}

async function assertGone(swan: Charon, ours: DaemonHandle, name: string): Promise<void> {
  await waitFor(`strongSwan to drop IKE_SA ${name}`, async () => (await swan.listSas(name)).length === 0, 8000, 100);
  await waitFor(`vpp-iked to drop IKE SA ${name}`, async () => (await ours.listSas(name)).length === 0, 8000, 100);
  assert.deepEqual((await ours.json<VppDump>(['vpp-sas'])).sas, [], 'our dataplane is empty');
}

/** Terminates whatever an earlier (failed) subtest left, so each subtest starts clean. */
async function cleanSlate(swan: Charon, ours: DaemonHandle): Promise<void> {
  for (const s of await swan.listSas()) await swan.terminateIke(s.name, { allowFailure: true, timeoutMs: 5000 });
  for (const s of await ours.listSas()) await ours.ctl(['terminate', '--ike-id', String(s.id)]);
  await waitFor('both sides without SAs', async () => (await swan.listSas()).length === 0 && (await ours.listSas()).length === 0, 8000, 100);
}

/** strongSwan keeps rekeyed CHILD_SAs listed for a few seconds; only the INSTALLED ones count. */
function installedOnly(s: SwanSa): SwanSa {
  return { ...s, children: s.children.filter((x) => x.state === 'INSTALLED') };
}

function conn(name: string): ConnSpec {
  const c = CONNS.find((x) => x.name === name);
  if (!c) throw new Error(`no test connection ${name}`);
  return c;
}

interface Stats {
  retransmits_sent: number;
  ike_established: number;
}

/** Our side retransmits quickly in these tests, so a dead peer is detected in seconds. */
const SHORT_RETRANSMITS = 'daemon {\n  retransmit_timeout = 1s\n  retransmit_base = 1.4\n  retransmit_tries = 3\n}\n';

/** Against strongSwan 6 a subset runs (both roles over IPv4 and IPv6, rekeys, DPD both ways). */
const SS6_CONNS = ['gcm256v4', 'chachav6'];

test('vpp-iked <-> strongSwan 5.9 (kernel-libipsec)', { timeout: 240_000 }, (t: TestContext) => suite(t, 5));
test('vpp-iked <-> strongSwan 6.0.6 (kernel-libipsec)', { timeout: 180_000 }, (t: TestContext) => suite(t, 6));

async function suite(t: TestContext, version: 5 | 6): Promise<void> {
  if (!(version === 6 ? requireInterop6(t) : requireInterop(t))) return;
  const full = version === 5;
  const started = Date.now();
  const lab: Lab = await createLab({ tag: `daemon${version}` });
  t.after(() => lab.destroy());
  const startOurs = (): Promise<DaemonHandle> =>
    startDaemon({ name: `ours-${Date.now()}`, parentDir: lab.dir, lab, side: 'b', listen: [LAB_ADDR.b.v4, LAB_ADDR.b.v6], conf: SHORT_RETRANSMITS + connections('b', false) });
  // kernel-libipsec routes a CHILD_SA's remote TS from an address inside its local TS: give netns a
  // one for the second child's network
  for (const [side, a] of [['a', '203.0.113.1/32'], ['b', '203.0.113.129/32']] as const) {
    const r = await lab.exec(side, 'ip', ['addr', 'add', a, 'dev', 'lo']);
    assert.equal(r.code, 0, r.stderr);
  }
  let swan: Charon;
  let ours: DaemonHandle;
  [swan, ours] = await Promise.all([lab.startCharon('a', { swanctlConf: connections('a', true), libipsec: true, version }), startOurs()]);
  let sampleWritten = false;

  for (const c of CONNS.filter((x) => !x.pfsChild && !x.rekeyPfs && !x.swanDpd && !x.ourDpd && (full || SS6_CONNS.includes(x.name)))) {
    const ts = TS[c.family];
    await t.test(`${c.suite.ike} IPv${c.family}: strongSwan initiates, vpp-iked deletes the IKE SA`, async () => {
      await cleanSlate(swan, ours);
      await swan.initiate('net', { ike: c.name });
      const { s, o } = await assertIke(swan, ours, c, true);
      const { oc } = assertChild(s, o, 'net', c.suite.espName, ts);
      await assertDataplane(ours, [oc]);
      const sample = process.env.INTEROP_SAMPLE_FILE;
      if (sample && !sampleWritten && full) {
        sampleWritten = true;
        const sw = await swan.swanctl(['--list-sas']);
        const us = await ours.ctl(['list-sas']);
        writeFileSync(sample, `# ${c.suite.ike} over IPv${c.family}, strongSwan ${version === 5 ? '5.9.8' : '6.0.6'} (netns a) initiated, vpp-iked (netns b) responded\n\n` +
          `## strongSwan: swanctl --list-sas\n${sw.stdout}\n## vpp-iked: vpp-ikectl list-sas\n${us.stdout}`);
      }
      await ours.json(['terminate', '--ike', c.name]);
      await assertGone(swan, ours, c.name);
      assert.match(swan.log(), new RegExp(`received DELETE for IKE_SA ${c.name}\\[`));
    });
    await t.test(`${c.suite.ike} IPv${c.family}: vpp-iked initiates, strongSwan deletes the IKE SA`, async () => {
      await cleanSlate(swan, ours);
      const r = await ours.json<IkeSaJson>(['initiate', '--ike', c.name, '--child', 'net']);
      assert.equal(r.state, 'ESTABLISHED');
      const { s, o } = await assertIke(swan, ours, c, false);
      const { oc } = assertChild(s, o, 'net', c.suite.espName, ts);
      await assertDataplane(ours, [oc]);
      await swan.terminateIke(c.name);
      await assertGone(swan, ours, c.name);
    });
  }

  // strongSwan 5.9 only: what they check is our side's behaviour, the same against either version
  if (full) await t.test('extra CHILD_SA with PFS (aes256gcm16-x25519), created and deleted from either side', async () => {
    const c = conn('pfs');
    const ts = TS[4];
    const ts2 = { a: ts.a2, b: ts.b2 };
    await cleanSlate(swan, ours);
    await swan.initiate('net', { ike: c.name });
    // strongSwan creates the second CHILD_SA on the same IKE_SA (CREATE_CHILD_SA with KE)
    await swan.initiate('net2', { ike: c.name });
    let { s, o } = await assertIke(swan, ours, c, true);
    assert.equal(s.children.length, 2);
    assert.equal(o.child_sas.length, 2);
    assertChild(s, o, 'net', c.suite.espName, ts);
    const first = assertChild(s, o, 'net2', 'AES_GCM_16_256/CURVE_25519', ts2);
    await assertDataplane(ours, o.child_sas);
    const ikeSpis = [o.spi_i, o.spi_r];

    // we delete the PFS child: strongSwan keeps the IKE_SA and the first child
    await ours.json(['terminate', '--child-id', String(first.oc.id)]);
    ({ s, o } = await waitFor('both sides to drop net2', async () => {
      const r = await assertIke(swan, ours, c, true);
      return r.s.children.length === 1 && r.o.child_sas.length === 1 && r;
    }, 8000));
    assertChild(s, o, 'net', c.suite.espName, ts);
    assert.match(swan.log(), /received DELETE for ESP CHILD_SA with SPI/);

    // we create it again (we initiate CREATE_CHILD_SA with our KE), strongSwan deletes it
    await ours.json(['initiate', '--ike', c.name, '--child', 'net2']);
    ({ s, o } = await waitFor('both sides to show net2 again', async () => {
      const r = await assertIke(swan, ours, c, true);
      return r.s.children.length === 2 && r.o.child_sas.length === 2 && r;
    }, 8000));
    const second = assertChild(s, o, 'net2', 'AES_GCM_16_256/CURVE_25519', ts2);
    assert.notEqual(second.oc.spi_in, first.oc.spi_in, 'a new CHILD SA, not the old one');
    assert.deepEqual([o.spi_i, o.spi_r], ikeSpis, 'same IKE SA throughout');
    await assertDataplane(ours, o.child_sas);
    await swan.terminateChild('net2');
    ({ s, o } = await waitFor('both sides to drop net2 again', async () => {
      const r = await assertIke(swan, ours, c, true);
      return r.s.children.length === 1 && r.o.child_sas.length === 1 && r;
    }, 8000));
    const last = assertChild(s, o, 'net', c.suite.espName, ts);
    await assertDataplane(ours, [last.oc]);
    await swan.terminateIke(c.name);
    await assertGone(swan, ours, c.name);
  });

  await t.test('CHILD_SA rekey from either side (with PFS), IKE_SA rekey from strongSwan', async () => {
    const c = conn('rekey');
    const ts = TS[4];
    const pfsName = `${c.suite.espName}/CURVE_25519`;
    await cleanSlate(swan, ours);
    await swan.initiate('net', { ike: c.name });
    let { s, o } = await assertIke(swan, ours, c, true);
    const first = assertChild(s, o, 'net', c.suite.espName, ts);
    const ikeSpis = [o.spi_i, o.spi_r];

    // strongSwan rekeys the CHILD_SA (CREATE_CHILD_SA with REKEY_SA and KE), then deletes the old one
    const r1 = await swan.swanctl(['--rekey', '--child', 'net']);
    assert.equal(r1.code, 0, r1.stdout + r1.stderr);
    ({ s, o } = await waitFor('one new CHILD SA on both sides', async () => {
      const x = await assertIke(swan, ours, c, true);
      return x.o.child_sas.length === 1 && x.o.child_sas[0].spi_in !== first.oc.spi_in && x;
    }, 8000));
    const second = assertChild(installedOnly(s), o, 'net', pfsName, ts);
    assert.notEqual(second.sc.spiIn, first.sc.spiIn);
    await assertDataplane(ours, o.child_sas);

    // we rekey it
    await ours.json(['rekey', '--child-id', String(second.oc.id)]);
    ({ s, o } = await waitFor('our rekeyed CHILD SA on both sides', async () => {
      const x = await assertIke(swan, ours, c, true);
      return x.o.child_sas.length === 1 && x.o.child_sas[0].spi_in !== second.oc.spi_in && x;
    }, 8000));
    const third = assertChild(installedOnly(s), o, 'net', pfsName, ts);
    await assertDataplane(ours, o.child_sas);
    assert.deepEqual([o.spi_i, o.spi_r], ikeSpis, 'CHILD rekeys keep the IKE SA');

    // strongSwan rekeys the IKE SA: new SPIs on both sides, the CHILD SA moves over unchanged;
    // `vpp-ikectl monitor` reports it
    const mon = await ours.monitor();
    t.after(() => mon.stop());
    const r2 = await swan.swanctl(['--rekey', '--ike', c.name]);
    assert.equal(r2.code, 0, r2.stdout + r2.stderr);
    ({ s, o } = await waitFor('the new IKE SA on both sides', async () => {
      const sw = await swan.listSas(c.name);
      const us = await ours.listSas(c.name);
      return sw.length === 1 && us.length === 1 && us[0].spi_i !== ikeSpis[0] && (await assertIke(swan, ours, c, true));
    }, 8000));
    assert.notEqual(o.spi_r, ikeSpis[1]);
    const moved = assertChild(installedOnly(s), o, 'net', pfsName, ts);
    assert.equal(moved.oc.spi_in, third.oc.spi_in, 'same CHILD SA after the IKE rekey');
    const ev = await waitFor('the ike-rekeyed event', () => mon.events().find((x) => x.type === 'ike-rekeyed'), 3000);
    assert.equal(ev.ike_id, o.id);
    assert.equal(ev.name, c.name);
    await mon.stop();
    await ours.json(['terminate', '--ike', c.name]);
    await assertGone(swan, ours, c.name);
  });

  if (full) await t.test('reload with live tunnels: unchanged connections keep their SAs, a changed one is replaced, a broken config is refused', async () => {
    const keep = conn('gcm256v4');
    const change = conn('gcm128v4');
    await cleanSlate(swan, ours);
    await swan.initiate('net', { ike: keep.name });
    await swan.initiate('net', { ike: change.name });
    const before = await assertIke(swan, ours, keep, true);
    await assertIke(swan, ours, change, true);
    const base = SHORT_RETRANSMITS + connections('b', false);
    // One effective change to `change` (a liveness check interval), nothing else.
    const edited = base.replace(`  ${change.name} {\n`, `  ${change.name} {\n    dpd_delay = 30s\n`);
    assert.notEqual(edited, base);
    ours.rewrite(edited);
    const r = await ours.json<{ added: string[]; removed: string[]; changed: string[]; unchanged: string[] }>(['reload']);
    assert.deepEqual(r.changed, [change.name]);
    assert.deepEqual(r.added, []);
    assert.deepEqual(r.removed, []);
    assert.ok(r.unchanged.includes(keep.name));
    // The changed connection's SAs are deleted on both sides (the peer was told).
    await waitFor(`strongSwan to lose ${change.name}`, async () => (await swan.listSas(change.name)).length === 0, 8000, 100);
    await waitFor(`vpp-iked to lose ${change.name}`, async () => (await ours.listSas(change.name)).length === 0, 8000, 100);
    // The unchanged one is untouched: same IKE and ESP SPIs on both sides, not rekeyed.
    const after = await assertIke(swan, ours, keep, true);
    assert.equal(after.o.spi_i, before.o.spi_i);
    assert.equal(after.o.spi_r, before.o.spi_r);
    assert.equal(after.o.child_sas[0]!.spi_in, before.o.child_sas[0]!.spi_in);
    assert.equal(after.s.children[0]!.spiIn, before.s.children[0]!.spiIn);
    // A config with an error is refused with FILE:LINE:COL and the running one stays.
    ours.rewrite(edited.replace('    dpd_delay = 30s\n', '    dpd_delay = soon\n'));
    const bad = await ours.ctl(['reload']);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /:\d+:\d+: .*dpd_delay/);
    const still = await assertIke(swan, ours, keep, true);
    assert.equal(still.o.spi_i, before.o.spi_i);
    // Back to the original config for the subtests that follow.
    ours.rewrite(base);
    await ours.json(['reload']);
    await cleanSlate(swan, ours);
  });

  await t.test('DPD from strongSwan (dpd_delay=2s) is answered; after SIGKILL of vpp-iked strongSwan drops the SA', async () => {
    const c = conn('dpdswan');
    await cleanSlate(swan, ours);
    await swan.initiate('net', { ike: c.name });
    const mark = swan.log().length;
    // an empty INFORMATIONAL request from strongSwan, answered by us
    await waitFor('a DPD exchange', () => /parsed INFORMATIONAL response \d+ \[ \]/.test(swan.log().slice(mark)), 8000, 200);
    const { s, o } = await assertIke(swan, ours, c, true);
    assertChild(s, o, 'net', c.suite.espName, TS[4]);
    assert.doesNotMatch(swan.log().slice(mark), /retransmit/, 'no retransmits needed');
    await ours.kill();
    try {
      // strongSwan: DPD request after 2 s, then retransmits (harness: 1 s, base 1.4, 4 tries)
      await waitFor('strongSwan to give up on the dead peer', async () => (await swan.listSas(c.name)).length === 0, 25_000, 250);
      assert.match(swan.log(), /giving up after \d+ retransmits/);
    } finally {
      ours = await startOurs();
    }
  });

  await t.test('DPD from vpp-iked (dpd_delay=2s) is answered; after SIGKILL of strongSwan vpp-iked retransmits, then clears the SA', async () => {
    const c = conn('dpdours');
    await cleanSlate(swan, ours);
    await ours.json(['initiate', '--ike', c.name, '--child', 'net']);
    const { s, o } = await assertIke(swan, ours, c, false);
    assertChild(s, o, 'net', c.suite.espName, TS[6]);
    const mark = swan.log().length;
    await waitFor('a DPD request from vpp-iked', () => /parsed INFORMATIONAL request \d+ \[ \]/.test(swan.log().slice(mark)), 8000, 200);
    await waitFor('strongSwan to answer it', () => /generating INFORMATIONAL response \d+ \[ \]/.test(swan.log().slice(mark)), 2000, 100);
    const before = await ours.json<Stats>(['stats']);
    assert.equal(before.retransmits_sent, 0, 'DPD answered without retransmits');
    process.kill(swan.pid, 'SIGKILL');
    await swan.stop();
    // The next DPD request goes unanswered and is retransmitted (retransmit_timeout = 1s,
    // base 1.4, 3 tries: about 7 s), then the IKE SA and its CHILD_SA are cleared (dpd_action = clear).
    const st = await waitFor('vpp-iked to retransmit its DPD request', async () => {
      const x = await ours.json<Stats>(['stats']);
      return x.retransmits_sent > 0 && x;
    }, 15_000, 250);
    assert.ok(st.retransmits_sent >= 1);
    await waitFor('vpp-iked to clear the IKE SA of the dead peer', async () => (await ours.listSas(c.name)).length === 0, 20_000, 250);
    const after = await ours.json<Stats>(['stats']);
    assert.equal(after.retransmits_sent - before.retransmits_sent, 3, 'exactly retransmit_tries retransmissions');
    const dump = await ours.json<{ children?: unknown[] }>(['vpp-sas']);
    assert.ok(!JSON.stringify(dump).includes(o.child_sas[0]!.spi_in), 'CHILD_SA removed from the dataplane');
    await ours.stop();
  });

  t.diagnostic(`interop suite (strongSwan ${version}) took ${((Date.now() - started) / 1000).toFixed(1)} s`);
}
