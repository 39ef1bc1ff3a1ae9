/**
 * vpp-iked programming VPP end to end: the VPP emulator runs as its own process on a temporary API
 * socket; daemon A (127.0.0.1, memory dataplane) initiates to daemon B (127.0.0.2, `dataplane = vpp`
 * against the emulator), both on UDP 7500/7501. Checked through `vpp-ikectl` only:
 * - p2p: `vpp-sas` on B shows the two SAs with the negotiated SPIs (inbound = list-sas spi_in), the
 *   ipsec interface and its protection; after `terminate` all of it is gone;
 * - p2mp (vpp_interface = ipsec0): the shared interface and one protection keyed by A's address;
 *   after `terminate` the SAs and the protection are gone, the shared interface stays;
 * - VPP crash: with both CHILD_SAs up the emulator is killed and started again empty; B notices,
 *   programs both CHILD_SAs again with the same inbound SPIs, then rekeys them: list-sas shows new
 *   SPIs and, after the DELETE of the old CHILD_SAs, vpp-sas holds only the new ones.
 * A is stopped (SIGSTOP) across the VPP restart so that the replayed state can be observed before
 * the rekey it triggers replaces it.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDaemon, type ChildSaJson, type DaemonHandle, type IkeSaJson } from '../helpers/daemon.ts';
import { startEmulatorProcess, type EmulatorProcess } from '../helpers/vpp-emulator.ts';
import { controlRequest } from '../../src/control/server.ts';
import { waitFor } from '../helpers/wait.ts';

const PSK = 'daemon-vpp-psk-0123456789abcdef';
const PORT = 7500;
const NAT_PORT = 7501;

interface Side {
  addr: string;
  tag: string;
  net: string;
  net2: string;
}

const A: Side = { addr: '127.0.0.1', tag: 'a', net: '10.1.0.0/24', net2: '10.1.1.0/24' };
const B: Side = { addr: '127.0.0.2', tag: 'b', net: '10.2.0.0/24', net2: '10.2.1.0/24' };

/** Two connections (one per VPP mode, told apart by their identities) and the secret. */
function conf(me: Side, peer: Side, vppSection: string): string {
  const conn = (name: string, net: string, peerNet: string, vpp: string): string => `
  ${name} {
    local_addrs = ${me.addr}
    remote_addrs = ${peer.addr}
    local_port = ${PORT}
    remote_port = ${PORT}
    proposals = aes256gcm16-prfsha256-x25519
    local {
      auth = psk
      id = ${me.tag}-${name}.test
    }
    remote {
      auth = psk
      id = ${peer.tag}-${name}.test
    }
    children {
      net {
        local_ts = ${net}
        remote_ts = ${peerNet}
        esp_proposals = aes256gcm16
${vpp}
      }
    }
  }`;
  return `${vppSection}
connections {${conn('p2p', me.net, peer.net, '        vpp_mode = p2p')}${conn('mp', me.net2, peer.net2, '        vpp_mode = p2mp\n        vpp_interface = ipsec0')}
}
secrets {
  ike-all {
    secret = "${PSK}"
  }
}
`;
}

/** What `vpp-ikectl vpp-sas --json` prints for the VPP dataplane (the parts checked here). */
interface VppSa {
  sad_id: number;
  ours: boolean;
  child_id: number | null;
  spi: string;
  direction: 'in' | 'out';
  protocol: string;
  crypto: string;
  crypto_key_bytes: number;
  flag_names: string[];
  tunnel_src: string | null;
  tunnel_dst: string | null;
  udp_encap: unknown;
  interface: string | number | null;
}
interface VppDump {
  dataplane: string;
  connected: boolean;
  sas: VppSa[];
  tunnel_protections: { interface: string; sw_if_index: number; nh: string; sa_out: number; sa_in: number[]; spi_out: string | null; spi_in: (string | null)[] }[];
  interfaces: { name: string; sw_if_index: number; mode: 'p2p' | 'p2mp'; admin_up: boolean; instance: number }[];
  children: { child_id: number; mode: string; interface: string | null; sa_in: number; sa_out: number; spi_in: string; spi_out: string }[];
}

/** vpp-sas straight over the control socket (for polling; assertions use vpp-ikectl). */
function dumpNow(d: DaemonHandle): Promise<VppDump> {
  return controlRequest(d.socket, 'vpp-sas', {}, undefined, undefined, 10_000) as Promise<VppDump>;
}

/** list-sas straight over the control socket. */
async function sasNow(d: DaemonHandle): Promise<IkeSaJson[]> {
  const items: IkeSaJson[] = [];
  await controlRequest(d.socket, 'list-sas', {}, (x) => items.push(x as IkeSaJson), undefined, 10_000);
  return items;
}

function childOf(sas: IkeSaJson[], conn: string): ChildSaJson | undefined {
  const installed = sas.filter((s) => s.name === conn && s.state === 'ESTABLISHED').flatMap((s) => s.child_sas.filter((c) => c.state === 'INSTALLED'));
  return installed.length === 1 ? installed[0] : undefined;
}

/** B's CHILD_SA of `conn` is in VPP exactly as negotiated; returns the protection. */
function assertProgrammed(dump: VppDump, c: ChildSaJson, o: { mode: 'p2p' | 'p2mp'; iface: string }): void {
  assert.equal(dump.dataplane, 'vpp');
  assert.equal(dump.connected, true);
  const inSa = dump.sas.filter((s) => s.spi === c.spi_in);
  const outSa = dump.sas.filter((s) => s.spi === c.spi_out);
  assert.equal(inSa.length, 1, `one SA with the inbound SPI ${c.spi_in}: ${JSON.stringify(dump.sas)}`);
  assert.equal(outSa.length, 1, `one SA with the outbound SPI ${c.spi_out}`);
  const i = inSa[0]!;
  const out = outSa[0]!;
  assert.equal(i.direction, 'in');
  assert.equal(out.direction, 'out');
  for (const s of [i, out]) {
    assert.equal(s.ours, true);
    assert.equal(s.child_id, c.id);
    assert.equal(s.protocol, 'esp');
    assert.equal(s.crypto, 'aes_gcm_256');
    assert.equal(s.crypto_key_bytes, 32);
    assert.ok(s.flag_names.includes('is_tunnel'));
    assert.equal(s.udp_encap, null);
    assert.equal(s.interface, o.iface, 'VPP reports the SA on the protected interface');
  }
  assert.ok(i.flag_names.includes('is_inbound') && i.flag_names.includes('use_anti_replay'));
  assert.ok(!out.flag_names.includes('is_inbound'));
  assert.deepEqual([i.tunnel_src, i.tunnel_dst], [A.addr, B.addr]);
  assert.deepEqual([out.tunnel_src, out.tunnel_dst], [B.addr, A.addr]);
  assert.deepEqual(c.vpp, { sa_in: i.sad_id, sa_out: out.sad_id, interface: o.iface }, 'list-sas names the same VPP objects');
  const itf = dump.interfaces.filter((x) => x.name === o.iface);
  assert.equal(itf.length, 1, `interface ${o.iface} in ${JSON.stringify(dump.interfaces)}`);
  assert.equal(itf[0]!.mode, o.mode);
  assert.equal(itf[0]!.admin_up, true);
  const prot = dump.tunnel_protections.filter((p) => p.interface === o.iface);
  assert.equal(prot.length, 1);
  assert.deepEqual(prot[0], {
    interface: o.iface,
    sw_if_index: itf[0]!.sw_if_index,
    nh: o.mode === 'p2p' ? '0.0.0.0' : A.addr,
    sa_out: out.sad_id,
    sa_in: [i.sad_id],
    spi_out: c.spi_out,
    spi_in: [c.spi_in],
  });
  const tracked = dump.children.filter((x) => x.child_id === c.id);
  assert.deepEqual(tracked.map((x) => [x.mode, x.interface, x.spi_in, x.spi_out]), [[o.mode, o.iface, c.spi_in, c.spi_out]]);
}

describe('vpp-iked with dataplane = vpp against the VPP emulator (a separate process)', { timeout: 60_000 }, () => {
  let dir: string;
  let emuSocket: string;
  let emu: EmulatorProcess;
  let a: DaemonHandle;
  let b: DaemonHandle;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'viked-it-vpp-'));
    emuSocket = join(dir, 'vpp-api.sock');
    emu = await startEmulatorProcess(emuSocket, { interfaces: ['loop0'] });
    const vppSide = `daemon {\n  dataplane = vpp\n}\nvpp {\n  socket = ${emuSocket}\n  unnumbered_interface = loop0\n}\n`;
    [a, b] = await Promise.all([
      startDaemon({ name: 'a', parentDir: dir, listen: [A.addr], port: PORT, portNatT: NAT_PORT, conf: conf(A, B, '') }),
      startDaemon({ name: 'b', parentDir: dir, listen: [B.addr], port: PORT, portNatT: NAT_PORT, conf: conf(B, A, vppSide) }),
    ]);
  });

  after(async () => {
    if (a) {
      try {
        process.kill(a.proc.pid, 'SIGCONT');
      } catch {
        // already gone
      }
    }
    await Promise.all([a?.kill(), b?.kill(), emu?.kill()]);
    if (process.env.KEEP_LAB !== '1') rmSync(dir, { recursive: true, force: true });
  });

  test('p2p: the CHILD_SA is in VPP with the negotiated SPIs, interface and protection; terminate removes it', async () => {
    const empty = await b.json<VppDump>(['vpp-sas']);
    assert.equal(empty.dataplane, 'vpp');
    assert.deepEqual([empty.sas, empty.tunnel_protections, empty.interfaces, empty.children], [[], [], [], []]);
    await a.json(['initiate', '--ike', 'p2p', '--child', 'net']);
    const c = await waitFor('B: p2p CHILD_SA installed', async () => childOf(await sasNow(b), 'p2p'), 5000, 50);
    assert.equal(childOf(await a.listSas(), 'p2p')!.spi_out, c.spi_in, "A's outbound SPI is B's inbound SPI");
    assertProgrammed(await b.json<VppDump>(['vpp-sas']), c, { mode: 'p2p', iface: 'ipsec1000' });

    await a.json(['terminate', '--ike', 'p2p']);
    await waitFor('B: p2p IKE SA gone', async () => (await sasNow(b)).length === 0, 5000, 50);
    const gone = await b.json<VppDump>(['vpp-sas']);
    assert.deepEqual([gone.sas, gone.tunnel_protections, gone.interfaces, gone.children], [[], [], [], []], 'nothing of it is left in VPP');
  });

  test('p2mp on ipsec0: the shared interface and a protection keyed by the peer; terminate removes SAs and protection', async () => {
    await a.json(['initiate', '--ike', 'mp', '--child', 'net']);
    const c = await waitFor('B: p2mp CHILD_SA installed', async () => childOf(await sasNow(b), 'mp'), 5000, 50);
    assertProgrammed(await b.json<VppDump>(['vpp-sas']), c, { mode: 'p2mp', iface: 'ipsec0' });

    await a.json(['terminate', '--ike', 'mp']);
    await waitFor('B: p2mp IKE SA gone', async () => (await sasNow(b)).length === 0, 5000, 50);
    const gone = await b.json<VppDump>(['vpp-sas']);
    assert.deepEqual([gone.sas, gone.tunnel_protections, gone.children], [[], [], []]);
    assert.deepEqual(gone.interfaces.map((i) => [i.name, i.mode]), [['ipsec0', 'p2mp']], 'the shared interface stays');
  });

  test('VPP restarts empty: B programs both CHILD_SAs again with the same SPIs, then rekeys them', async () => {
    await a.json(['initiate', '--ike', 'p2p', '--child', 'net']);
    await a.json(['initiate', '--ike', 'mp', '--child', 'net']);
    const before = await waitFor('B: both CHILD_SAs installed', async () => {
      const sas = await sasNow(b);
      const p = childOf(sas, 'p2p');
      const m = childOf(sas, 'mp');
      return p && m && { p, m };
    }, 5000, 50);
    const dump0 = await dumpNow(b);
    assert.equal(dump0.sas.length, 4);

    // A answers nothing until the replayed state has been looked at.
    process.kill(a.proc.pid, 'SIGSTOP');
    try {
      await emu.kill();
      const down = await waitFor('B: VPP connection lost', async () => {
        const d = await dumpNow(b);
        return !d.connected && d;
      }, 5000, 50);
      assert.equal(down.children.length, 2, 'B keeps tracking its CHILD_SAs while VPP is away');
      emu = await startEmulatorProcess(emuSocket, { interfaces: ['loop0'] });
      await waitFor('B: CHILD_SAs programmed again', async () => {
        const d = await dumpNow(b);
        return d.connected && d.sas.length === 4 && d.tunnel_protections.length === 2;
      }, 10_000, 50);
      const dump = await b.json<VppDump>(['vpp-sas']);
      const sasB = await b.listSas();
      // Same SPIs and the same objects as before the restart.
      const p = childOf(sasB, 'p2p') ?? sasB.flatMap((s) => s.child_sas).find((x) => x.id === before.p.id)!;
      const m = childOf(sasB, 'mp') ?? sasB.flatMap((s) => s.child_sas).find((x) => x.id === before.m.id)!;
      assert.deepEqual([p.id, p.spi_in, p.spi_out], [before.p.id, before.p.spi_in, before.p.spi_out]);
      assert.deepEqual([m.id, m.spi_in, m.spi_out], [before.m.id, before.m.spi_in, before.m.spi_out]);
      assertProgrammed(dump, { ...before.p, vpp: p.vpp }, { mode: 'p2p', iface: 'ipsec1000' });
      assertProgrammed(dump, { ...before.m, vpp: m.vpp }, { mode: 'p2mp', iface: 'ipsec0' });
      assert.deepEqual(
        dump.sas.map((s) => s.sad_id).sort(),
        dump0.sas.map((s) => s.sad_id).sort(),
        'the same SA ids as before the restart',
      );
    } finally {
      process.kill(a.proc.pid, 'SIGCONT');
    }

    // Re-added outbound SAs start at sequence number 1 again: B rekeys both CHILD_SAs.
    const rekeyed = await waitFor('B: both CHILD_SAs rekeyed, the old ones deleted', async () => {
      const sas = await sasNow(b);
      const all = sas.flatMap((s) => s.child_sas);
      const p = childOf(sas, 'p2p');
      const m = childOf(sas, 'mp');
      return all.length === 2 && p && m && p.spi_in !== before.p.spi_in && m.spi_in !== before.m.spi_in && { p, m };
    }, 15_000, 100);
    assert.ok(rekeyed.p.id > before.p.id && rekeyed.m.id > before.m.id, 'new CHILD_SAs');
    const aSas = await a.listSas();
    assert.equal(childOf(aSas, 'p2p')!.spi_out, rekeyed.p.spi_in);
    assert.equal(childOf(aSas, 'mp')!.spi_out, rekeyed.m.spi_in);
    const dump = await waitFor('B: VPP holds only the new SAs', async () => {
      const d = await dumpNow(b);
      return d.sas.length === 4 && d;
    }, 5000, 50);
    const spis = dump.sas.map((s) => s.spi);
    for (const old of [before.p.spi_in, before.p.spi_out, before.m.spi_in, before.m.spi_out]) {
      assert.ok(!spis.includes(old), `old SPI ${old} gone from VPP`);
    }
    const final = await b.json<VppDump>(['vpp-sas']);
    assertProgrammed(final, rekeyed.p, { mode: 'p2p', iface: 'ipsec1000' });
    assertProgrammed(final, rekeyed.m, { mode: 'p2mp', iface: 'ipsec0' });

    await Promise.all([a.json(['terminate', '--ike', 'p2p']), a.json(['terminate', '--ike', 'mp'])]);
    await waitFor('B: IKE SAs gone', async () => (await sasNow(b)).length === 0, 5000, 50);
    const gone = await b.json<VppDump>(['vpp-sas']);
    assert.deepEqual([gone.sas, gone.tunnel_protections, gone.children], [[], [], []]);
  });
});
