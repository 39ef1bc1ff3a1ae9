/**
 * Volume lifetimes with real traffic counted by the real VPP: daemon B (127.0.0.2, `dataplane =
 * vpp` against a real VPP 26.10, `traffic_poll = 1s`) answers daemon A (127.0.0.1, memory
 * dataplane); B's CHILD_SA has `rekey_packets = 20`. VPP pings A's network through the CHILD_SA's
 * p2p ipsec interface, so VPP encrypts them on B's outbound SA and counts them in its stats segment:
 * - 10 pings: B's `list-sas` shows 10 packets and their bytes out, and nothing happens;
 * - 15 more: B rekeys the CHILD_SA within the next poll, both daemons agree on the new SPIs, VPP
 *   holds only the new SAs once the old CHILD_SA is deleted, and the new one counts from zero.
 * Needs root and the real VPP (skipped with the reason, or failing when REQUIRE_VPP=1).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDaemon, type ChildSaJson, type DaemonHandle, type IkeSaJson } from '../helpers/daemon.ts';
import { requireVpp, startVppLab } from '../helpers/real-vpp.ts';
import { waitFor } from '../helpers/wait.ts';

const PSK = 'volume-vpp-psk-0123456789abcdef';
const PORT = 7520;
const NAT_PORT = 7521;

function conf(me: string, peer: string, net: string, peerNet: string, child: string, head = ''): string {
  return `${head}
connections {
  vol {
    local_addrs = ${me}
    remote_addrs = ${peer}
    local_port = ${PORT}
    remote_port = ${PORT}
    proposals = aes256gcm16-prfsha256-x25519
    local {
      auth = psk
    }
    remote {
      auth = psk
    }
    children {
      net {
        local_ts = ${net}
        remote_ts = ${peerNet}
        esp_proposals = aes256gcm16
${child}
      }
    }
  }
}
secrets {
  ike-all {
    secret = "${PSK}"
  }
}
`;
}

function installed(sas: IkeSaJson[]): ChildSaJson | undefined {
  const c = sas.filter((s) => s.state === 'ESTABLISHED').flatMap((s) => s.child_sas.filter((x) => x.state === 'INSTALLED'));
  return c.length === 1 ? c[0] : undefined;
}

test('rekey_packets: pings VPP encrypts on the CHILD_SA make the daemon rekey it at the next poll', { timeout: 60_000 }, async (t) => {
  if (!requireVpp(t)) return;
  const lab = await startVppLab(t);
  const dir = mkdtempSync(join(tmpdir(), 'viked-it-volume-'));
  let a: DaemonHandle | undefined;
  let b: DaemonHandle | undefined;
  t.after(async () => {
    await Promise.all([a?.kill(), b?.kill()]);
    if (process.env.KEEP_LAB !== '1') rmSync(dir, { recursive: true, force: true });
  });
  const vppSide = `daemon {\n  dataplane = vpp\n  traffic_poll = 1s\n}\nvpp {\n  socket = ${lab.apiSocket}\n  unnumbered_interface = loop0\n}\n`;
  [a, b] = await Promise.all([
    startDaemon({ name: 'a', parentDir: dir, listen: ['127.0.0.1'], port: PORT, portNatT: NAT_PORT, conf: conf('127.0.0.1', '127.0.0.2', '10.1.0.0/24', '10.2.0.0/24', '') }),
    startDaemon({
      name: 'b',
      parentDir: dir,
      listen: ['127.0.0.2'],
      port: PORT,
      portNatT: NAT_PORT,
      conf: conf('127.0.0.2', '127.0.0.1', '10.2.0.0/24', '10.1.0.0/24', '        rekey_packets = 20\n        life_packets = 100000\n        rand_packets = 0', vppSide),
    }),
  ]);
  const da = a;
  const db = b;
  await da.json(['initiate', '--ike', 'vol', '--child', 'net']);
  const first = await waitFor('B: CHILD_SA installed', async () => installed(await db.listSas()), 5000, 50);
  assert.equal(first.packets_out, 0);

  await lab.ctl('ping', '10.1.0.5', 'repeat', '10', 'interval', '0.01');
  await new Promise((r) => setTimeout(r, 2500)); // two polls
  const counted = installed(await db.listSas())!;
  assert.equal(counted.id, first.id, 'not rekeyed below rekey_packets');
  assert.equal(counted.packets_out, 10, JSON.stringify(counted));
  assert.equal(counted.bytes_out, 10 * 116, '96-byte pings as VPP counts their ESP payload');
  assert.equal(counted.packets_in, 0);

  const t0 = Date.now();
  await lab.ctl('ping', '10.1.0.5', 'repeat', '15', 'interval', '0.01');
  const second = await waitFor('B: a new CHILD_SA replaced the first', async () => {
    const c = installed(await db.listSas());
    return c && c.id !== first.id && c;
  }, 10_000, 50);
  const took = Date.now() - t0;
  assert.ok(db.logs().includes('CHILD SA reached its rekey bytes/packets, rekeying'));
  assert.notEqual(second.spi_in, first.spi_in);
  const aChild = await waitFor('A: the new CHILD_SA', async () => {
    const c = installed(await da.listSas());
    return c && c.spi_out === second.spi_in && c;
  }, 5000, 50);
  assert.equal(aChild.spi_in, second.spi_out, 'both daemons agree on the new SPIs');
  // VPP holds the new SAs only, and they count from zero
  const dump = await waitFor('VPP: only the new SAs', async () => {
    const d = await db.json<{ sas: { spi: string; ours: boolean }[] }>(['vpp-sas']);
    const ours = d.sas.filter((s) => s.ours).map((s) => s.spi).sort();
    return ours.length === 2 && ours.join() === [second.spi_in, second.spi_out].sort().join() && d;
  }, 10_000, 100);
  assert.ok(dump);
  // it counts from zero: at most the pings after the 20th (the poll that saw 20 may come, and the
  // rekey end, before the last of the 15 have left)
  const fresh = installed(await db.listSas())!;
  const out = fresh.packets_out;
  assert.ok(out !== null && out <= 5, `the new CHILD_SA counted ${out} packets out`);
  process.stdout.write(`rekeyed ${took} ms after the 15 pings began (traffic_poll = 1 s)\n`);
});
