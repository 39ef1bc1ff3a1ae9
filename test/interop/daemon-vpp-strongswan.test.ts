/**
 * End to end with a real peer and "VPP": strongSwan (kernel-libipsec, netns a) negotiates with
 * vpp-iked (netns b) whose dataplane is the VPP back end talking to the VPP emulator over the
 * binary API. `vpp-ikectl vpp-sas --json` must show what VPP holds: both SAs of each CHILD_SA with
 * the SPIs strongSwan negotiated, UDP encapsulation (strongSwan's libipsec always uses it), the
 * tunnel endpoints (IPv4 and IPv6), the ipsec interface and its protection (p2p); after the peer
 * deletes the IKE SA, VPP holds none of it.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { createLab, requireInterop, waitFor, LAB_ADDR, type Lab } from './harness.ts';
import { startDaemon } from '../helpers/daemon.ts';
import { startEmulatorProcess } from '../helpers/vpp-emulator.ts';

const PSK = 'interop-vpp-preshared-key-0123456789';
const NETS = {
  4: { a: LAB_ADDR.a.v4, b: LAB_ADDR.b.v4, tsA: '198.51.100.0/25', tsB: '198.51.100.128/25' },
  6: { a: LAB_ADDR.a.v6, b: LAB_ADDR.b.v6, tsA: '2001:db8:a::/64', tsB: '2001:db8:b::/64' },
} as const;

function conf(me: 'a' | 'b', swan: boolean): string {
  const peer = me === 'a' ? 'b' : 'a';
  const out = ['connections {'];
  for (const f of [4, 6] as const) {
    const n = NETS[f];
    out.push(
      `  vpp${f} {`,
      ...(swan ? ['    version = 2'] : []),
      `    local_addrs = ${n[me]}`,
      `    remote_addrs = ${n[peer]}`,
      '    proposals = aes256gcm16-prfsha256-x25519',
      `    local {\n      auth = psk\n      id = ${me}-vpp${f}.lab\n    }`,
      `    remote {\n      auth = psk\n      id = ${peer}-vpp${f}.lab\n    }`,
      '    children {',
      '      net {',
      `        local_ts = ${me === 'a' ? n.tsA : n.tsB}`,
      `        remote_ts = ${me === 'a' ? n.tsB : n.tsA}`,
      '        esp_proposals = aes256gcm16',
      '      }',
      '    }',
      '  }',
    );
  }
  out.push('}', 'secrets {', '  ike-lab {', `    secret = "${PSK}"`, '  }', '}', '');
  return out.join('\n');
}

interface VppSa {
  ours: boolean;
  child_id: number | null;
  spi: string;
  direction: 'in' | 'out';
  crypto: string;
  flag_names: string[];
  tunnel_src: string | null;
  tunnel_dst: string | null;
}
interface VppDump {
  connected: boolean;
  sas: VppSa[];
  tunnel_protections: { interface: string; spi_out: string | null; spi_in: (string | null)[] }[];
  interfaces: { name: string; mode: string; admin_up: boolean }[];
}

test('strongSwan <-> vpp-iked installing into the VPP emulator (IPv4 and IPv6, NAT-T)', { timeout: 120_000 }, async (t: TestContext) => {
  if (!requireInterop(t)) return;
  const lab: Lab = await createLab({ tag: 'vpp' });
  t.after(() => lab.destroy());
  const socket = join(lab.dir, 'vpp-api.sock');
  const emu = await startEmulatorProcess(socket);
  t.after(() => emu.stop());
  const ours = await startDaemon({
    name: 'vpp-ours',
    parentDir: lab.dir,
    lab,
    side: 'b',
    listen: [LAB_ADDR.b.v4, LAB_ADDR.b.v6],
    conf: `daemon {\n  dataplane = vpp\n}\nvpp {\n  socket = ${socket}\n}\n${conf('b', false)}`,
  });
  t.after(() => ours.stop());
  const swan = await lab.startCharon('a', { swanctlConf: conf('a', true), libipsec: true });

  for (const f of [4, 6] as const) {
    const name = `vpp${f}`;
    await swan.initiate('net', { ike: name });
    const [s] = (await swan.listSas(name)).filter((x) => x.name === name);
    assert.ok(s, `strongSwan has ${name}`);
    const sc = s.children.find((c) => c.state === 'INSTALLED')!;
    assert.ok(sc, 'strongSwan CHILD_SA installed');
    const dump = await ours.json<VppDump>(['vpp-sas']);
    assert.equal(dump.connected, true);
    const mine = dump.sas.filter((x) => x.ours);
    const inbound = mine.find((x) => x.spi === sc.spiOut);
    const outbound = mine.find((x) => x.spi === sc.spiIn);
    assert.ok(inbound && outbound, `VPP holds both SAs of ${name}: ${JSON.stringify(mine.map((x) => x.spi))}`);
    assert.equal(inbound.direction, 'in');
    assert.equal(outbound.direction, 'out');
    assert.match(inbound.crypto, /AES_GCM_256/i);
    for (const x of [inbound, outbound]) {
      assert.ok(x.flag_names.some((n) => /UDP_ENCAP/i.test(n)), `UDP encapsulation on ${x.spi}: ${x.flag_names.join(',')}`);
      assert.ok(x.flag_names.some((n) => /IS_TUNNEL/i.test(n)), 'tunnel mode');
      if (f === 6) assert.ok(x.flag_names.some((n) => /TUNNEL_V6/i.test(n)), 'IPv6 outer header');
    }
    assert.equal(outbound.tunnel_src, NETS[f].b);
    assert.equal(outbound.tunnel_dst, NETS[f].a);
    assert.equal(inbound.tunnel_src, NETS[f].a);
    assert.equal(inbound.tunnel_dst, NETS[f].b);
    const prot = dump.tunnel_protections.find((p) => p.spi_out === sc.spiIn);
    assert.ok(prot, 'a tunnel protection uses the outbound SA');
    assert.deepEqual(prot.spi_in, [sc.spiOut]);
    const itf = dump.interfaces.find((i) => i.name === prot.interface);
    assert.ok(itf && itf.admin_up, 'its ipsec interface is up');
    // Our list-sas agrees and names the same VPP objects.
    const [o] = await ours.listSas(name);
    assert.equal(o!.child_sas[0]!.spi_in, sc.spiOut);
    assert.equal(o!.child_sas[0]!.vpp.interface, prot.interface);
  }

  // The peer deletes: VPP ends up holding none of our SAs, protections or interfaces.
  for (const f of [4, 6] as const) await swan.terminateIke(`vpp${f}`);
  await waitFor('VPP to hold none of our SAs', async () => {
    const d = await ours.json<VppDump>(['vpp-sas']);
    return d.sas.filter((x) => x.ours).length === 0 && d.tunnel_protections.length === 0 && d;
  }, 10_000, 200);
});
