/**
 * Rekey collisions with a real peer: strongSwan 5.9 (kernel-libipsec, netns a) and vpp-iked (netns b,
 * VPP back end against the VPP emulator) use the same short lifetimes without jitter, so both start
 * their CHILD_SA and IKE SA rekeys at the same moment, cycle after cycle (RFC 7296 §2.8.1, §2.8.2).
 * Meanwhile VPP must always have an outbound SA for the tunnel; afterwards both sides agree on the
 * current SPIs and VPP holds exactly those SAs.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { createLab, requireInterop, waitFor, LAB_ADDR, type Lab } from './harness.ts';
import { startDaemon } from '../helpers/daemon.ts';
import { startEmulatorProcess } from '../helpers/vpp-emulator.ts';

const PSK = 'interop-collide-preshared-key-0123456789';
/** How long both sides rekey into each other (several CHILD_SA and IKE SA cycles). */
const RUN_MS = 45_000;
/**
 * Whether two timers that fire together make a collision depends on which message crosses the wire
 * first, so on a loaded machine a run may see none in RUN_MS: it goes on, up to this long, until one.
 */
const MAX_RUN_MS = 120_000;

function conf(me: 'a' | 'b', swan: boolean): string {
  const peer = me === 'a' ? 'b' : 'a';
  return [
    'connections {',
    '  collide {',
    ...(swan ? ['    version = 2'] : []),
    `    local_addrs = ${LAB_ADDR[me].v4}`,
    `    remote_addrs = ${LAB_ADDR[peer].v4}`,
    '    proposals = aes256gcm16-prfsha256-x25519',
    '    rekey_time = 20s',
    '    rand_time = 0s',
    `    local {\n      auth = psk\n      id = ${me}-collide.lab\n    }`,
    `    remote {\n      auth = psk\n      id = ${peer}-collide.lab\n    }`,
    '    children {',
    '      net {',
    `        local_ts = ${me === 'a' ? '198.51.100.0/25' : '198.51.100.128/25'}`,
    `        remote_ts = ${me === 'a' ? '198.51.100.128/25' : '198.51.100.0/25'}`,
    '        esp_proposals = aes256gcm16',
    '        rekey_time = 8s',
    '        life_time = 40s',
    '        rand_time = 0s',
    '      }',
    '    }',
    '  }',
    '}',
    'secrets {',
    '  ike-lab {',
    `    secret = "${PSK}"`,
    '  }',
    '}',
    '',
  ].join('\n');
}

interface VppDump {
  sas: { ours: boolean; spi: string; direction: 'in' | 'out' }[];
  tunnel_protections: { interface: string; spi_out: string | null; spi_in: (string | null)[] }[];
}

test('simultaneous CHILD_SA and IKE SA rekeys with strongSwan over several cycles: SPIs agree, VPP holds exactly them', { timeout: 200_000 }, async (t: TestContext) => {
  if (!requireInterop(t)) return;
  const lab: Lab = await createLab({ tag: 'collide' });
  t.after(() => lab.destroy());
  const socket = join(lab.dir, 'vpp-api.sock');
  const emu = await startEmulatorProcess(socket);
  t.after(() => emu.stop());
  const ours = await startDaemon({
    name: 'collide-ours',
    parentDir: lab.dir,
    lab,
    side: 'b',
    listen: [LAB_ADDR.b.v4],
    conf: `daemon {\n  dataplane = vpp\n}\nvpp {\n  socket = ${socket}\n}\n${conf('b', false)}`,
  });
  t.after(() => ours.stop());
  const swan = await lab.startCharon('a', { swanctlConf: conf('a', true), libipsec: true });
  await swan.initiate('net', { ike: 'collide' });

  // While both sides rekey, VPP always has a protection with an outbound SA for the tunnel.
  const gaps: string[] = [];
  let polls = 0;
  const start = Date.now();
  const collided = (): boolean => /rekey collision: the peer rekeys it too/.test(ours.logs());
  while (Date.now() - start < RUN_MS || (!collided() && Date.now() - start < MAX_RUN_MS)) {
    const d = await ours.json<VppDump>(['vpp-sas']);
    polls++;
    if (!d.tunnel_protections.some((p) => p.spi_out !== null && d.sas.some((s) => s.ours && s.direction === 'out' && s.spi === p.spi_out))) {
      gaps.push(`${new Date().toISOString()} ${JSON.stringify(d.tunnel_protections)}`);
    }
    await sleep(250);
  }
  assert.deepEqual(gaps, [], `an outbound SA in VPP at each of ${polls} looks`);

  // Both sides agree on the current SPIs and VPP holds exactly those SAs (between two rekeys).
  const agreed = await waitFor(
    'both sides to agree on one CHILD_SA and VPP to hold exactly it',
    async () => {
      const sw = (await swan.listSas('collide')).filter((s) => s.state === 'ESTABLISHED');
      const mine = (await ours.listSas('collide')).filter((s) => s.state === 'ESTABLISHED');
      if (sw.length !== 1 || mine.length !== 1) return false;
      const sc = sw[0]!.children.filter((c) => c.state === 'INSTALLED');
      const oc = mine[0]!.child_sas;
      if (sc.length !== 1 || oc.length !== 1 || oc[0]!.state !== 'INSTALLED') return false;
      if (sw[0]!.spiI !== mine[0]!.spi_i || sw[0]!.spiR !== mine[0]!.spi_r) return false;
      if (sc[0]!.spiIn !== oc[0]!.spi_out || sc[0]!.spiOut !== oc[0]!.spi_in) return false;
      const d = await ours.json<VppDump>(['vpp-sas']);
      const held = d.sas.filter((s) => s.ours).map((s) => `${s.direction}:${s.spi}`).sort();
      if (JSON.stringify(held) !== JSON.stringify([`in:${oc[0]!.spi_in}`, `out:${oc[0]!.spi_out}`].sort())) return false;
      if (d.tunnel_protections.length !== 1 || d.tunnel_protections[0]!.spi_out !== oc[0]!.spi_out) return false;
      return { sw: sw[0]!, mine: mine[0]! };
    },
    20_000,
    200,
  );
  assert.ok(agreed);

  // The rekeys did collide and were settled, not refused and left to expire.
  const logs = ours.logs();
  const count = (re: RegExp): number => logs.split('\n').filter((l) => re.test(l)).length;
  const childRekeys = count(/"msg":"CHILD SA installed"/) - 1;
  t.diagnostic(
    `CHILD_SA rekeys ${childRekeys}, collisions ${count(/CHILD SA rekey collision: the peer/)} (won ${count(/CHILD SA rekey collision won/)}, lost ${count(/CHILD SA rekey collision lost/)}), ` +
      `IKE SA rekeys ${count(/"msg":"IKE SA rekeyed"/)}, IKE collisions ${count(/IKE SA rekey collision: the peer/)}, failed rekeys ${count(/rekey failed/)}, VPP looks ${polls}`,
  );
  assert.ok(childRekeys >= 4, `several CHILD_SA rekey cycles (${childRekeys})`);
  // Both sides' timers fire together at least on the first cycles (the SAs were made at the same moment).
  assert.ok(count(/rekey collision: the peer rekeys it too/) >= 1, 'CHILD_SA or IKE SA rekeys collided');
  assert.equal(count(/CHILD SA reached its life time/), 0, 'no CHILD_SA expired unreplaced');
  assert.ok(count(/"msg":"IKE SA rekeyed"/) >= 1, 'the IKE SA was rekeyed');
});
