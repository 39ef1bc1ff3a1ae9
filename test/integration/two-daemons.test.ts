/**
 * Two vpp-iked processes talking IKEv2 over loopback with the memory dataplane, driven only through
 * vpp-ikectl: IPv4 (127.0.0.1 <-> 127.0.0.2, ports 500/4500 bound per address) and IPv6 (::1 <-> ::1
 * on ports 5500/5501 and 6500/6501, so every packet carries the non-ESP marker). Covers initiate,
 * list-sas on both sides, a second CHILD_SA with PFS, terminate from either side, forced UDP
 * encapsulation, `--check` errors and SIGTERM telling the peer.
 *
 * Needs root (ports 500/4500) unless run with other ports; it skips when not root.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkConfig, ROOT, startDaemon, tempFile, daemonSection } from '../helpers/daemon.ts';
import { waitFor } from '../helpers/wait.ts';
import type { ChildSaJson, DaemonHandle, IkeSaJson } from '../helpers/daemon.ts';

const PSK = 'integration-psk-0123456789abcdef';
const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;

interface Peer {
  addr: string;
  id: string;
  natId: string;
  port: number;
  natPort: number;
  net: string;
  net2: string;
  natNet: string;
}

/** connections/secrets for one side; `encap = yes` only on the side that initiates the NAT-T case. */
function conf(me: Peer, peer: Peer, prefix: string, forceEncap: boolean): string {
  const ports = me.port !== 500 || peer.port !== 500 ? `\n    local_port = ${me.port}\n    remote_port = ${peer.port}` : '';
  return `
connections {
  ${prefix} {
    local_addrs = ${me.addr}
    remote_addrs = ${peer.addr}${ports}
    proposals = aes256gcm16-prfsha256-x25519
    local {
      auth = psk
      id = ${me.id}
    }
    remote {
      auth = psk
      id = ${peer.id}
    }
    children {
      net {
        local_ts = ${me.net}
        remote_ts = ${peer.net}
        esp_proposals = aes256gcm16
      }
      net2 {
        local_ts = ${me.net2}
        remote_ts = ${peer.net2}
        esp_proposals = aes128gcm16-x25519
      }
    }
  }
  ${prefix}nat {
    local_addrs = ${me.addr}
    remote_addrs = ${peer.addr}${ports}
    proposals = aes128gcm16-prfsha256-ecp256
    encap = ${forceEncap ? 'yes' : 'no'}
    local {
      auth = psk
      id = ${me.natId}
    }
    remote {
      auth = psk
      id = ${peer.natId}
    }
    children {
      natnet {
        local_ts = ${me.natNet}
        remote_ts = ${peer.natNet}
        esp_proposals = aes256-sha256
      }
    }
  }
}
secrets {
  ike-${prefix} {
    id-1 = ${me.id}
    id-2 = ${peer.id}
    secret = "${PSK}"
  }
  ike-${prefix}nat {
    id-1 = ${me.natId}
    id-2 = ${peer.natId}
    secret = "${PSK}"
  }
}
`;
}

function one(sas: IkeSaJson[], name: string, who: string): IkeSaJson {
  const found = sas.filter((s) => s.name === name);
  assert.equal(found.length, 1, `${who}: expected one IKE SA '${name}', got ${JSON.stringify(sas.map((s) => `${s.name}:${s.state}`))}`);
  return found[0];
}

function childNamed(sa: IkeSaJson, name: string, who: string): ChildSaJson {
  const found = sa.child_sas.filter((c) => c.name === name);
  assert.equal(found.length, 1, `${who}: expected one CHILD SA '${name}', got ${JSON.stringify(sa.child_sas.map((c) => `${c.name}:${c.state}`))}`);
  return found[0];
}

/** Both daemons' views of one IKE SA agree: state, SPIs, roles, endpoints, identities, proposal. */
function assertIkePair(
  i: IkeSaJson,
  r: IkeSaJson,
  o: { proposal: string; iPeer: Peer; rPeer: Peer; ports: { i: number; r: number }; encap: boolean; natIds?: boolean },
): void {
  // the NAT-T connections use the peers' natId identities
  const nat = o.natIds ?? o.encap;
  const iId = nat ? o.iPeer.natId : o.iPeer.id;
  const rId = nat ? o.rPeer.natId : o.rPeer.id;
  for (const [who, s] of [['initiator', i], ['responder', r]] as const) {
    assert.equal(s.state, 'ESTABLISHED', `${who} state`);
    assert.match(s.spi_i, /^[0-9a-f]{16}$/);
    assert.match(s.spi_r, /^[0-9a-f]{16}$/);
    assert.equal(s.proposal, o.proposal, `${who} proposal`);
    assert.equal(s.encap, o.encap, `${who} encap`);
    assert.ok(s.established_at !== null, `${who} established_at`);
  }
  assert.equal(i.initiator, true);
  assert.equal(r.initiator, false);
  assert.equal(i.spi_i, r.spi_i, 'same initiator SPI');
  assert.equal(i.spi_r, r.spi_r, 'same responder SPI');
  assert.notEqual(i.spi_i, '0000000000000000');
  assert.notEqual(i.spi_r, '0000000000000000');
  assert.deepEqual(i.local, { addr: o.iPeer.addr, port: o.ports.i, id: iId });
  assert.deepEqual(i.remote, { addr: o.rPeer.addr, port: o.ports.r, id: rId });
  assert.deepEqual(r.local, { addr: o.rPeer.addr, port: o.ports.r, id: rId });
  assert.deepEqual(r.remote, { addr: o.iPeer.addr, port: o.ports.i, id: iId });
}

/** Both views of one CHILD SA agree: INSTALLED, SPIs crosswise, proposal, TS mirrored, encap. */
function assertChildPair(ci: ChildSaJson, cr: ChildSaJson, o: { proposal: string; tsI: string; tsR: string; encap: boolean }): void {
  for (const [who, c] of [['initiator', ci], ['responder', cr]] as const) {
    assert.equal(c.state, 'INSTALLED', `${who} CHILD state`);
    assert.equal(c.mode, 'TUNNEL');
    assert.match(c.spi_in, /^[0-9a-f]{8}$/);
    assert.match(c.spi_out, /^[0-9a-f]{8}$/);
    assert.equal(c.proposal, o.proposal, `${who} CHILD proposal`);
    assert.equal(c.encap, o.encap, `${who} CHILD encap`);
  }
  assert.equal(ci.spi_in, cr.spi_out, 'initiator inbound SPI = responder outbound SPI');
  assert.equal(ci.spi_out, cr.spi_in, 'initiator outbound SPI = responder inbound SPI');
  assert.notEqual(ci.spi_in, ci.spi_out);
  assert.deepEqual(ci.local_ts, [o.tsI]);
  assert.deepEqual(ci.remote_ts, [o.tsR]);
  assert.deepEqual(cr.local_ts, [o.tsR]);
  assert.deepEqual(cr.remote_ts, [o.tsI]);
}

interface VppDump {
  dataplane: string;
  sas: { child_id: number; connection: string; child: string; inbound: { spi: string; src: string; dst: string; udp_encap: boolean }; outbound: { spi: string; src: string; dst: string; udp_encap: boolean } }[];
}

/** The memory dataplane holds exactly the given CHILD SAs, with the SPIs list-sas shows. */
async function assertDataplane(d: DaemonHandle, children: ChildSaJson[], encap: boolean): Promise<void> {
  const dump = await d.json<VppDump>(['vpp-sas']);
  assert.equal(dump.dataplane, 'memory');
  assert.deepEqual(dump.sas.map((s) => s.child_id).sort(), children.map((c) => c.id).sort(), `${d.name}: dataplane SAs`);
  for (const c of children) {
    const s = dump.sas.find((x) => x.child_id === c.id)!;
    assert.equal(s.inbound.spi, c.spi_in);
    assert.equal(s.outbound.spi, c.spi_out);
    assert.equal(s.inbound.udp_encap, encap);
    assert.equal(s.outbound.udp_encap, encap);
    assert.equal(s.child, c.name);
  }
}

async function noSas(d: DaemonHandle, what: string): Promise<void> {
  await waitFor(`${d.name}: ${what}`, async () => (await d.listSas()).length === 0, 5000);
  const dump = await d.json<VppDump>(['vpp-sas']);
  assert.deepEqual(dump.sas, [], `${d.name}: dataplane empty after ${what}`);
}

const V4 = {
  a: { addr: '127.0.0.1', id: 'a.test', natId: 'a-nat.test', port: 500, natPort: 4500, net: '10.1.0.0/24', net2: '10.1.1.0/24', natNet: '10.1.2.0/24' },
  b: { addr: '127.0.0.2', id: 'b.test', natId: 'b-nat.test', port: 500, natPort: 4500, net: '10.2.0.0/24', net2: '10.2.1.0/24', natNet: '10.2.2.0/24' },
} satisfies Record<string, Peer>;

const V6 = {
  a: { addr: '::1', id: 'a6.test', natId: 'a6-nat.test', port: 5500, natPort: 5501, net: 'fd00:a::/64', net2: 'fd00:a:1::/64', natNet: 'fd00:a:2::/64' },
  b: { addr: '::1', id: 'b6.test', natId: 'b6-nat.test', port: 6500, natPort: 6501, net: 'fd00:b::/64', net2: 'fd00:b:1::/64', natNet: 'fd00:b:2::/64' },
} satisfies Record<string, Peer>;

describe('two vpp-iked daemons over IPv4 loopback (ports 500/4500)', { skip: isRoot ? false : 'needs root for UDP 500/4500', timeout: 120_000 }, () => {
  let dir: string;
  let a: DaemonHandle;
  let b: DaemonHandle;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'viked-it-v4-'));
    [a, b] = await Promise.all([
      startDaemon({ name: 'a', parentDir: dir, listen: [V4.a.addr], conf: conf(V4.a, V4.b, 'v4', true) }),
      // b runs as installed: bin/vpp-iked.js, i.e. the JavaScript `npm run build` compiled (npm test builds first)
      startDaemon({ name: 'b', parentDir: dir, listen: [V4.b.addr], conf: conf(V4.b, V4.a, 'v4', false), main: join(ROOT, 'bin/vpp-iked.js') }),
    ]);
  });

  test('b runs the compiled build (bin/vpp-iked.js with a current dist/), a the TypeScript sources', () => {
    const started = (d: DaemonHandle): Record<string, unknown> | undefined =>
      d.logs().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.msg === 'vpp-iked started');
    assert.equal(started(a)?.code, 'typescript');
    assert.equal(started(b)?.code, 'compiled', 'bin/vpp-iked.js ran the sources: is dist/ built and newer than src/ (npm run build)?');
  });
  after(async () => {
    await Promise.all([a?.kill(), b?.kill()]);
    if (process.env.KEEP_LAB !== '1') rmSync(dir, { recursive: true, force: true });
  });

  test('list-conns shows the loaded connections', async () => {
    const conns = await a.json<{ name: string; children: { name: string }[] }[]>(['list-conns']);
    assert.deepEqual(conns.map((c) => c.name), ['v4', 'v4nat']);
    assert.deepEqual(conns[0].children.map((c) => c.name), ['net', 'net2']);
    assert.deepEqual(await a.listSas(), []);
  });

  test('A initiates: both sides ESTABLISHED/INSTALLED with the same SPIs and proposal', async () => {
    const r = await a.json<IkeSaJson>(['initiate', '--ike', 'v4', '--child', 'net']);
    assert.equal(r.state, 'ESTABLISHED');
    const sa = one(await a.listSas(), 'v4', 'A');
    const sb = one(await b.listSas(), 'v4', 'B');
    assertIkePair(sa, sb, { proposal: 'AES_GCM_16_256/PRF_HMAC_SHA2_256/CURVE_25519', iPeer: V4.a, rPeer: V4.b, ports: { i: 500, r: 500 }, encap: false });
    assert.equal(sa.child_sas.length, 1);
    assert.equal(sb.child_sas.length, 1);
    assertChildPair(childNamed(sa, 'net', 'A'), childNamed(sb, 'net', 'B'), { proposal: 'AES_GCM_16_256', tsI: V4.a.net, tsR: V4.b.net, encap: false });
    await assertDataplane(a, sa.child_sas, false);
    await assertDataplane(b, sb.child_sas, false);
    // The text form names the SA and its child as well.
    const text = await a.ctl(['list-sas']);
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /^v4: #\d+, ESTABLISHED, IKEv2/m);
    assert.match(text.stdout, new RegExp(`net: #\\d+, INSTALLED, TUNNEL, ESP SPIs: ${sa.child_sas[0].spi_in}_i ${sa.child_sas[0].spi_out}_o`));
  });

  test('a second CHILD SA with PFS via initiate --child, then deleted from B', async () => {
    await a.json(['initiate', '--ike', 'v4', '--child', 'net2']);
    const sa = one(await a.listSas(), 'v4', 'A');
    const sb = await waitFor('B to list net2', async () => {
      const s = one(await b.listSas(), 'v4', 'B');
      return s.child_sas.length === 2 && s;
    }, 5000);
    assert.equal(sa.child_sas.length, 2, 'still one IKE SA, now two CHILD SAs');
    assertChildPair(childNamed(sa, 'net2', 'A'), childNamed(sb, 'net2', 'B'), { proposal: 'AES_GCM_16_128/CURVE_25519', tsI: V4.a.net2, tsR: V4.b.net2, encap: false });
    assertChildPair(childNamed(sa, 'net', 'A'), childNamed(sb, 'net', 'B'), { proposal: 'AES_GCM_16_256', tsI: V4.a.net, tsR: V4.b.net, encap: false });
    await assertDataplane(a, sa.child_sas, false);

    const victim = childNamed(sb, 'net2', 'B');
    const t = await b.json<{ terminated: { child_id: number } }>(['terminate', '--child-id', String(victim.id)]);
    assert.equal(t.terminated.child_id, victim.id);
    const after = await waitFor('A to drop net2', async () => {
      const s = one(await a.listSas(), 'v4', 'A');
      return s.child_sas.length === 1 && s;
    }, 5000);
    const bAfter = await waitFor('B to drop net2', async () => {
      const s = one(await b.listSas(), 'v4', 'B');
      return s.child_sas.length === 1 && s;
    }, 5000);
    assert.equal(after.child_sas[0].name, 'net');
    assert.equal(bAfter.child_sas[0].name, 'net');
    assert.equal(after.spi_i, sa.spi_i, 'the IKE SA stays');
    await assertDataplane(a, after.child_sas, false);
    await assertDataplane(b, bAfter.child_sas, false);
  });

  test('terminate --ike from the responder removes the SAs on both sides', async () => {
    const t = await b.json<{ terminated: { ike_ids: number[] } }>(['terminate', '--ike', 'v4']);
    assert.equal(t.terminated.ike_ids.length, 1);
    await noSas(b, 'terminate --ike');
    await noSas(a, 'the peer deleted the IKE SA');
  });

  test('B initiates the same connection, A (now responder) terminates by --ike-id', async () => {
    await b.json(['initiate', '--ike', 'v4', '--child', 'net']);
    const sb = one(await b.listSas(), 'v4', 'B');
    const sa = one(await a.listSas(), 'v4', 'A');
    assertIkePair(sb, sa, { proposal: 'AES_GCM_16_256/PRF_HMAC_SHA2_256/CURVE_25519', iPeer: V4.b, rPeer: V4.a, ports: { i: 500, r: 500 }, encap: false });
    assertChildPair(childNamed(sb, 'net', 'B'), childNamed(sa, 'net', 'A'), { proposal: 'AES_GCM_16_256', tsI: V4.b.net, tsR: V4.a.net, encap: false });
    await a.json(['terminate', '--ike-id', String(sa.id)]);
    await noSas(a, 'terminate --ike-id');
    await noSas(b, 'the peer deleted the IKE SA');
  });

  test('encap = yes: UDP encapsulation on both sides, IKE on port 4500', async () => {
    await a.json(['initiate', '--ike', 'v4nat']);
    const sa = one(await a.listSas(), 'v4nat', 'A');
    const sb = one(await b.listSas(), 'v4nat', 'B');
    assertIkePair(sa, sb, { proposal: 'AES_GCM_16_128/PRF_HMAC_SHA2_256/ECP_256', iPeer: V4.a, rPeer: V4.b, ports: { i: 4500, r: 4500 }, encap: true });
    assert.equal(sb.nat_remote, true, 'B believes A is behind a NAT (faked NATD hash)');
    assertChildPair(childNamed(sa, 'natnet', 'A'), childNamed(sb, 'natnet', 'B'), { proposal: 'AES_CBC_256/HMAC_SHA2_256_128', tsI: V4.a.natNet, tsR: V4.b.natNet, encap: true });
    await assertDataplane(a, sa.child_sas, true);
    await assertDataplane(b, sb.child_sas, true);
    const dump = await a.json<VppDump>(['vpp-sas']);
    assert.equal(dump.sas[0].outbound.src, '127.0.0.1:4500');
    assert.equal(dump.sas[0].outbound.dst, '127.0.0.2:4500');
  });

  test('SIGTERM: A exits 0 and B sees the IKE SA deleted', async () => {
    assert.equal((await b.listSas()).length, 1);
    await a.stop();
    await noSas(b, 'the stopped peer deleted its IKE SA');
    await b.stop();
  });
});

describe('two vpp-iked daemons over IPv6 ::1 on custom ports (non-ESP marker on every packet)', { timeout: 120_000 }, () => {
  let dir: string;
  let a: DaemonHandle;
  let b: DaemonHandle;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'viked-it-v6-'));
    [a, b] = await Promise.all([
      startDaemon({ name: 'a6', parentDir: dir, listen: ['::1'], port: V6.a.port, portNatT: V6.a.natPort, conf: conf(V6.a, V6.b, 'v6', true) }),
      startDaemon({ name: 'b6', parentDir: dir, listen: ['::1'], port: V6.b.port, portNatT: V6.b.natPort, conf: conf(V6.b, V6.a, 'v6', false) }),
    ]);
  });
  after(async () => {
    await Promise.all([a?.kill(), b?.kill()]);
    if (process.env.KEEP_LAB !== '1') rmSync(dir, { recursive: true, force: true });
  });

  test('A initiates over IPv6: both sides agree, on ports 5500 <-> 6500', async () => {
    await a.json(['initiate', '--ike', 'v6', '--child', 'net']);
    const sa = one(await a.listSas(), 'v6', 'A');
    const sb = one(await b.listSas(), 'v6', 'B');
    assertIkePair(sa, sb, { proposal: 'AES_GCM_16_256/PRF_HMAC_SHA2_256/CURVE_25519', iPeer: V6.a, rPeer: V6.b, ports: { i: 5500, r: 6500 }, encap: false });
    assertChildPair(childNamed(sa, 'net', 'A'), childNamed(sb, 'net', 'B'), { proposal: 'AES_GCM_16_256', tsI: V6.a.net, tsR: V6.b.net, encap: false });
    await assertDataplane(b, sb.child_sas, false);
    // Every IKE datagram carried the marker: nothing was taken for ESP or dropped as invalid.
    for (const d of [a, b]) {
      const st = await d.json<{ transport: { esp: number; invalid: number } }>(['stats']);
      assert.equal(st.transport.esp, 0, `${d.name}: no datagram classified as ESP`);
      assert.equal(st.transport.invalid, 0, `${d.name}: no invalid datagram`);
    }
  });

  test('second CHILD SA with PFS, then B terminates the IKE SA', async () => {
    await a.json(['initiate', '--ike', 'v6', '--child', 'net2']);
    const sa = one(await a.listSas(), 'v6', 'A');
    const sb = await waitFor('B to list net2', async () => {
      const s = one(await b.listSas(), 'v6', 'B');
      return s.child_sas.length === 2 && s;
    }, 5000);
    assertChildPair(childNamed(sa, 'net2', 'A'), childNamed(sb, 'net2', 'B'), { proposal: 'AES_GCM_16_128/CURVE_25519', tsI: V6.a.net2, tsR: V6.b.net2, encap: false });
    await b.json(['terminate', '--ike', 'v6']);
    await noSas(b, 'terminate --ike');
    await noSas(a, 'the peer deleted the IKE SA');
  });

  test('encap = yes on custom ports: A floats to its NAT-T port 5501, the remote port stays 6500', async () => {
    await a.json(['initiate', '--ike', 'v6nat']);
    const sa = one(await a.listSas(), 'v6nat', 'A');
    const sb = one(await b.listSas(), 'v6nat', 'B');
    assertIkePair(sa, sb, { proposal: 'AES_GCM_16_128/PRF_HMAC_SHA2_256/ECP_256', iPeer: V6.a, rPeer: V6.b, ports: { i: 5501, r: 6500 }, encap: true });
    assertChildPair(childNamed(sa, 'natnet', 'A'), childNamed(sb, 'natnet', 'B'), { proposal: 'AES_CBC_256/HMAC_SHA2_256_128', tsI: V6.a.natNet, tsR: V6.b.natNet, encap: true });
    await assertDataplane(a, sa.child_sas, true);
    await assertDataplane(b, sb.child_sas, true);
  });

  test('SIGTERM on the responder: B exits 0 and A sees the IKE SA deleted', async () => {
    await b.stop();
    await noSas(a, 'the stopped peer deleted its IKE SA');
    await a.stop();
  });
});

/** Two connections that must fail: `wrongpsk` (different PSKs) and `espmismatch` (no common ESP proposal). */
function failingConf(me: Peer, peer: Peer, psk: string, esp: string): string {
  const section = (name: string, id: string, peerId: string, lts: string, rts: string, espProposals: string): string => `
  ${name} {
    local_addrs = ${me.addr}
    remote_addrs = ${peer.addr}
    local_port = ${me.port}
    remote_port = ${peer.port}
    proposals = aes256gcm16-prfsha256-x25519
    local {
      auth = psk
      id = ${id}
    }
    remote {
      auth = psk
      id = ${peerId}
    }
    children {
      net {
        local_ts = ${lts}
        remote_ts = ${rts}
        esp_proposals = ${espProposals}
      }
    }
  }`;
  return `connections {${section('wrongpsk', me.id, peer.id, me.net, peer.net, 'aes256gcm16')}${section('espmismatch', me.natId, peer.natId, me.natNet, peer.natNet, esp)}
}
secrets {
  ike-wrong {
    id-1 = ${me.id}
    id-2 = ${peer.id}
    secret = "${psk}"
  }
  ike-right {
    id-1 = ${me.natId}
    id-2 = ${peer.natId}
    secret = "${PSK}"
  }
}
`;
}

describe('error paths between two daemons (IPv6 ::1, ports 7500/8500)', { timeout: 60_000 }, () => {
  const A = { ...V6.a, port: 7500, natPort: 7501 };
  const B = { ...V6.b, port: 8500, natPort: 8501 };
  let dir: string;
  let a: DaemonHandle;
  let b: DaemonHandle;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'viked-it-err-'));
    [a, b] = await Promise.all([
      startDaemon({ name: 'ea', parentDir: dir, listen: ['::1'], port: A.port, portNatT: A.natPort, conf: failingConf(A, B, 'first-psk-0123456789abcdef', 'aes128gcm16') }),
      startDaemon({ name: 'eb', parentDir: dir, listen: ['::1'], port: B.port, portNatT: B.natPort, conf: failingConf(B, A, 'other-psk-0123456789abcdef', 'aes256gcm16') }),
    ]);
  });
  after(async () => {
    await Promise.all([a?.stop(), b?.stop()]);
    if (process.env.KEEP_LAB !== '1') rmSync(dir, { recursive: true, force: true });
  });

  test('different PSKs: initiate exits 1 with AUTHENTICATION_FAILED, no SA left on either side', async () => {
    const r = await a.ctl(['initiate', '--ike', 'wrongpsk']);
    assert.equal(r.code, 1, r.stdout);
    assert.match(r.stderr, /AUTHENTICATION_FAILED/);
    assert.deepEqual(await a.listSas(), []);
    assert.deepEqual(await b.listSas(), []);
    const st = await b.json<{ auth_failed: number; ike_established: number }>(['stats']);
    assert.equal(st.auth_failed, 1);
    assert.equal(st.ike_established, 0);
  });

  test('no common ESP proposal: initiate --child exits 1, the IKE SA stays up without CHILD SAs', async () => {
    const r = await a.ctl(['initiate', '--ike', 'espmismatch', '--child', 'net']);
    assert.equal(r.code, 1, r.stdout);
    assert.match(r.stderr, /CHILD_SA 'net' failed: NO_PROPOSAL_CHOSEN/);
    const sa = one(await a.listSas(), 'espmismatch', 'A');
    const sb = one(await b.listSas(), 'espmismatch', 'B');
    assertIkePair(sa, sb, { proposal: 'AES_GCM_16_256/PRF_HMAC_SHA2_256/CURVE_25519', iPeer: A, rPeer: B, ports: { i: 7500, r: 8500 }, encap: false, natIds: true });
    assert.deepEqual(sa.child_sas, []);
    assert.deepEqual(sb.child_sas, []);
    assert.ok((await b.json<{ no_proposal: number }>(['stats'])).no_proposal >= 1);
    assert.deepEqual((await a.json<VppDump>(['vpp-sas'])).sas, []);
    await a.json(['terminate', '--ike', 'espmismatch']);
    await noSas(b, 'terminate from A');
  });

  test('vpp-ikectl: unknown connection exits 1, unknown command exits 2', async () => {
    const r1 = await a.ctl(['initiate', '--ike', 'nosuch']);
    assert.equal(r1.code, 1);
    assert.match(r1.stderr, /no connection named 'nosuch'/);
    const r2 = await a.ctl(['terminate', '--ike-id', '999']);
    assert.equal(r2.code, 1);
    const r3 = await a.ctl(['no-such-command']);
    assert.equal(r3.code, 2);
  });
});

describe('vpp-iked --check', () => {
  test('a bad config exits 1 with FILE:LINE:COL for each error', async () => {
    const text = `${daemonSection({ listen: ['127.0.0.1'], controlSocket: '/tmp/viked-check.sock' })}connections {
  c1 {
    remote_addrs = 192.0.2.9
    bogus_key = 1
    proposals = aes256gcm16-prfsha256-x25519
  }
}
`;
    const bad = tempFile('bad.conf', text);
    try {
      const r = await checkConfig(bad.path);
      assert.equal(r.code, 1, `exit code (stdout: ${r.stdout}, stderr: ${r.stderr})`);
      const lines = (r.stdout + r.stderr).split('\n').filter((l) => l.startsWith(`${bad.path}:`));
      assert.ok(lines.length >= 1, `expected FILE:LINE:COL errors, got:\n${r.stdout}${r.stderr}`);
      // bogus_key is on line 13 (the daemon section has 8 lines), column 5
      const line = text.split('\n').findIndex((l) => l.includes('bogus_key')) + 1;
      assert.ok(lines.some((l) => l.startsWith(`${bad.path}:${line}:5: `) && /bogus_key/.test(l)), `no error at ${line}:5 naming bogus_key:\n${lines.join('\n')}`);
      for (const l of lines) assert.match(l, /^.+:\d+:\d+: \S/);
    } finally {
      bad.cleanup();
    }
  });

  test('a bad proposal is reported at its value', async () => {
    const text = `${daemonSection({ listen: ['127.0.0.1'], controlSocket: '/tmp/viked-check.sock' })}connections {
  c1 {
    remote_addrs = 192.0.2.9
    proposals = aes256gcm16-prfsha256-nosuchgroup
  }
}
`;
    const bad = tempFile('bad-proposal.conf', text);
    try {
      const r = await checkConfig(bad.path);
      assert.equal(r.code, 1);
      const line = text.split('\n').findIndex((l) => l.includes('nosuchgroup')) + 1;
      assert.match(r.stdout + r.stderr, new RegExp(`^${bad.path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:${line}:\\d+: .*nosuchgroup`, 'm'));
    } finally {
      bad.cleanup();
    }
  });

  test('a good config exits 0', async () => {
    const good = tempFile('good.conf', daemonSection({ listen: ['127.0.0.1'], controlSocket: '/tmp/viked-check.sock' }) + conf(V4.a, V4.b, 'v4', false));
    try {
      const r = await checkConfig(good.path);
      assert.equal(r.code, 0, `${r.stdout}${r.stderr}`);
      assert.match(r.stdout, /OK \(2 connections, 2 secrets\)/);
    } finally {
      good.cleanup();
    }
  });
});
