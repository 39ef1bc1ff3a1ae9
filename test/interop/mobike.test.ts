/**
 * Moving peers with a real strongSwan 5.9 (kernel-libipsec, so CHILD_SAs are installed and ESP is
 * UDP-encapsulated) in netns a and vpp-iked (memory dataplane) in netns b:
 *
 * - MOBIKE (RFC 4555): strongSwan gets a second address and loses the first; it sends
 *   UPDATE_SA_ADDRESSES from the new one, vpp-iked moves the IKE SA, checks the new path with a
 *   COOKIE2 and moves the CHILD_SA in the dataplane. Same IKE SA, same SPIs, no renegotiation.
 * - NAT mapping change (RFC 7296 §2.23), strongSwan with `mobike = no`: a stateless port-translating
 *   NAT made with nftables in strongSwan's namespace maps its port 4500 to 14500, then (the
 *   rebinding) to 24500; vpp-iked follows the new port with the IKE SA and the CHILD_SA. nftables
 *   rewrites the ports of every packet both ways (no conntrack), so changing the rule is a rebinding.
 */
import { test } from 'node:test';
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createLab, LAB_ADDR, requireInterop, waitFor } from './harness.ts';
import type { Lab } from './harness.ts';
import { startDaemon } from '../helpers/daemon.ts';

const PSK = 'interop-mobike-psk-0123456789';
const A2 = '192.0.2.11';
const DAEMON = 'daemon {\n  retransmit_timeout = 1s\n  retransmit_base = 1.4\n  retransmit_tries = 3\n}\n';

function conf(me: 'a' | 'b', o: { swan: boolean; mobike: boolean; dpd?: string }): string {
  const peer = me === 'a' ? 'b' : 'a';
  return `connections {
  mob {
${o.swan ? '    version = 2\n' : ''}${me === 'b' ? `    local_addrs = ${LAB_ADDR.b.v4}\n` : ''}    remote_addrs = ${me === 'a' ? LAB_ADDR.b.v4 : '%any'}
    proposals = aes256gcm16-prfsha256-x25519
    mobike = ${o.mobike ? 'yes' : 'no'}
${o.dpd ? `    dpd_delay = ${o.dpd}\n` : ''}    local {
      auth = psk
      id = ${me}.mobike.lab
    }
    remote {
      auth = psk
      id = ${peer}.mobike.lab
    }
    children {
      net {
        local_ts = ${me === 'a' ? '198.51.100.0/25' : '198.51.100.128/25'}
        remote_ts = ${me === 'a' ? '198.51.100.128/25' : '198.51.100.0/25'}
        esp_proposals = aes256gcm16
      }
    }
  }
}
secrets {
  ike-lab {
    secret = "${PSK}"
  }
}
`;
}

interface Dump {
  sas: { child_id: number; outbound: { dst: string; udp_encap: boolean }; inbound: { src: string } }[];
}

interface Stats {
  mobike_updates: number;
  peer_moved: number;
  mobike_check_failed: number;
}

async function nsRun(lab: Lab, cmd: string, args: string[]): Promise<void> {
  const r = await lab.exec('a', cmd, args);
  assert.equal(r.code, 0, `${cmd} ${args.join(' ')}: ${r.stderr}`);
}

test('MOBIKE: strongSwan changes its address; the IKE SA and the CHILD SA follow without renegotiation', { timeout: 90_000 }, async (t: TestContext) => {
  if (!requireInterop(t)) return;
  const lab = await createLab({ tag: 'mobike' });
  t.after(() => lab.destroy());
  const [swan, ours] = await Promise.all([
    lab.startCharon('a', { swanctlConf: conf('a', { swan: true, mobike: true }), libipsec: true }),
    startDaemon({ name: 'ours', parentDir: lab.dir, lab, side: 'b', listen: [LAB_ADDR.b.v4], logLevel: 'debug', conf: DAEMON + conf('b', { swan: false, mobike: true }) }),
  ]);
  await swan.initiate('net', { ike: 'mob' });
  const [before] = await swan.listSas('mob');
  assert.ok(before);
  assert.equal(before.localHost, LAB_ADDR.a.v4);
  const [o1] = await ours.listSas();
  assert.ok(o1);
  assert.equal(o1.remote.addr, LAB_ADDR.a.v4);
  assert.match(swan.log(), /peer supports MOBIKE/);

  // strongSwan's host gets a new address and loses the old one (kept as the primary address once
  // the old one goes, rather than removed with it).
  await nsRun(lab, 'sysctl', ['-qw', `net.ipv4.conf.${LAB_ADDR.a.ifname}.promote_secondaries=1`]);
  await nsRun(lab, 'ip', ['addr', 'add', `${A2}/24`, 'dev', LAB_ADDR.a.ifname]);
  await nsRun(lab, 'ip', ['addr', 'del', `${LAB_ADDR.a.v4}/24`, 'dev', LAB_ADDR.a.ifname]);

  const moved = await waitFor(
    'vpp-iked to move the CHILD SA to the new address',
    async () => {
      const d = await ours.json<Dump>(['vpp-sas']);
      return d.sas.length === 1 && d.sas[0]!.outbound.dst.startsWith(A2) ? d.sas[0] : undefined;
    },
    20_000,
    200,
  );
  assert.equal(moved.inbound.src.startsWith(A2), true);
  const [o2] = await ours.listSas();
  assert.ok(o2);
  assert.equal(o2.remote.addr, A2);
  assert.equal(o2.state, 'ESTABLISHED');
  assert.equal(o2.spi_i, o1.spi_i, 'the same IKE SA');
  // (strongSwan's kernel-libipsec cannot move an SA in place, so strongSwan rekeys its CHILD SA
  // after the move; on our side the CHILD SAs were moved in the dataplane.)
  assert.match(ours.logs(), /CHILD SAs follow the peer/);
  const st = await ours.json<Stats>(['stats']);
  assert.ok(st.mobike_updates >= 1);
  assert.equal(st.mobike_check_failed, 0);
  assert.match(ours.logs(), /peer updated its addresses \(MOBIKE\)/);
  const [after] = await swan.listSas('mob');
  assert.ok(after);
  assert.equal(after.state, 'ESTABLISHED');
  assert.equal(after.localHost, A2);
  assert.equal(after.spiI, before.spiI);
  // The IKE SA works at the new address: strongSwan rekeys its CHILD SA through it.
  await waitFor('one CHILD SA', async () => (await ours.listSas())[0]?.child_sas.length === 1, 10_000);
  const spiBefore = (await ours.listSas())[0]?.child_sas[0]?.spi_in;
  const r = await swan.swanctl(['--rekey', '--child', 'net']);
  assert.equal(r.code, 0, r.stderr);
  await waitFor('the rekeyed CHILD SA', async () => {
    const [s] = await ours.listSas();
    return s && s.child_sas.length === 1 && s.child_sas[0]!.spi_in !== spiBefore && s.child_sas[0]!.state === 'INSTALLED';
  }, 10_000);
  const d = await ours.json<Dump>(['vpp-sas']);
  assert.ok(d.sas.every((x) => x.outbound.dst.startsWith(A2)));
});

test('NAT mapping change: strongSwan behind a port-translating NAT is followed to its new port', { timeout: 90_000 }, async (t: TestContext) => {
  if (!requireInterop(t)) return;
  // nftables (.ci/setup-interop.sh installs it) makes the NAT.
  if (spawnSync('nft', ['--version']).status !== 0) {
    if (process.env.REQUIRE_INTEROP === '1') throw new Error('interop tests are required (REQUIRE_INTEROP=1) but nft (nftables) is missing');
    return t.skip('nft (nftables) is missing; .ci/setup-interop.sh installs it');
  }
  const lab = await createLab({ tag: 'rebind' });
  t.after(() => lab.destroy());
  const nat = async (port: number): Promise<void> => {
    const rules = `flush ruleset
table ip nat4500 {
  chain out {
    type filter hook output priority raw; policy accept;
    ip daddr ${LAB_ADDR.b.v4} udp sport 4500 udp sport set ${port}
  }
  chain in {
    type filter hook prerouting priority raw; policy accept;
    ip saddr ${LAB_ADDR.b.v4} udp dport ${port} udp dport set 4500
  }
}
`;
    const r = await lab.exec('a', 'nft', ['-f', '-'], { input: rules });
    assert.equal(r.code, 0, `nft: ${r.stderr}`);
  };
  await nat(14500);
  const [swan, ours] = await Promise.all([
    lab.startCharon('a', { swanctlConf: conf('a', { swan: true, mobike: false, dpd: '1s' }), libipsec: true }),
    startDaemon({ name: 'ours', parentDir: lab.dir, lab, side: 'b', listen: [LAB_ADDR.b.v4], logLevel: 'debug', conf: DAEMON + conf('b', { swan: false, mobike: true }) }),
  ]);
  await swan.initiate('net', { ike: 'mob' });
  const [o1] = await ours.listSas();
  assert.ok(o1);
  assert.deepEqual({ addr: o1.remote.addr, port: o1.remote.port }, { addr: LAB_ADDR.a.v4, port: 14500 });
  const d1 = await ours.json<Dump>(['vpp-sas']);
  assert.match(d1.sas[0]!.outbound.dst, /14500/);

  await nat(24500); // the NAT forgets the mapping and makes a new one
  const moved = await waitFor(
    'vpp-iked to follow the new mapping',
    async () => {
      const d = await ours.json<Dump>(['vpp-sas']);
      return d.sas.length === 1 && /24500/.test(d.sas[0]!.outbound.dst) ? d.sas[0] : undefined;
    },
    20_000,
    200,
  );
  assert.equal(moved.outbound.udp_encap, true);
  const [o2] = await ours.listSas();
  assert.ok(o2);
  assert.equal(o2.remote.port, 24500);
  assert.equal(o2.spi_i, o1.spi_i, 'the same IKE SA');
  assert.ok((await ours.json<Stats>(['stats'])).peer_moved >= 1);
  // strongSwan's liveness checks keep being answered through the new mapping.
  await new Promise((r) => setTimeout(r, 3000));
  const [s] = await swan.listSas('mob');
  assert.equal(s?.state, 'ESTABLISHED');
  assert.doesNotMatch(swan.log(), /giving up after/);
});
