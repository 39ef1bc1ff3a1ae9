/**
 * IKE SA reauthentication with a real peer, make-before-break both ways: strongSwan 5.9
 * (kernel-libipsec, netns a, `charon.make_before_break = yes`) reauthenticates against vpp-iked,
 * and vpp-iked reauthenticates against strongSwan, every 8 s, with two CHILD_SAs (one recreated
 * in IKE_AUTH, one with CREATE_CHILD_SA). vpp-iked (netns b) programs the VPP emulator; VPP must
 * have an outbound SA for both tunnels at every look. Afterwards both sides hold exactly one IKE SA
 * (not the first one) with the two CHILD_SAs and the same traffic selectors, and VPP exactly their SAs.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { createLab, requireInterop, waitFor, LAB_ADDR, type Charon, type Lab } from './harness.ts';
import { startDaemon, type DaemonHandle } from '../helpers/daemon.ts';
import { startEmulatorProcess } from '../helpers/vpp-emulator.ts';

const PSK = 'interop-reauth-preshared-key-0123456789';
/** How long the tunnels are watched: two reauthentications of the side that reauthenticates. */
const RUN_MS = 19_000;

const NETS = {
  a: ['198.51.100.0/26', '198.51.100.64/26'],
  b: ['198.51.100.128/26', '198.51.100.192/26'],
};

function conf(me: 'a' | 'b', swan: boolean, reauth: boolean): string {
  const peer = me === 'a' ? 'b' : 'a';
  const child = (name: string, i: number) => [
    `      ${name} {`,
    `        local_ts = ${NETS[me][i]}`,
    `        remote_ts = ${NETS[peer][i]}`,
    '        esp_proposals = aes256gcm16',
    ...(!swan && reauth ? ['        start_action = start'] : []),
    '      }',
  ];
  return [
    'connections {',
    '  reauth {',
    ...(swan ? ['    version = 2'] : []),
    `    local_addrs = ${LAB_ADDR[me].v4}`,
    `    remote_addrs = ${LAB_ADDR[peer].v4}`,
    '    proposals = aes256gcm16-prfsha256-x25519',
    ...(reauth ? ['    reauth_time = 8s', '    rand_time = 0s', '    over_time = 60s'] : ['    rekey_time = 0s']),
    `    local {\n      auth = psk\n      id = ${me}-reauth.lab\n    }`,
    `    remote {\n      auth = psk\n      id = ${peer}-reauth.lab\n    }`,
    '    children {',
    ...child('net1', 0),
    ...child('net2', 1),
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

async function setUp(t: TestContext, reauthBy: 'strongswan' | 'vpp-iked'): Promise<{ lab: Lab; ours: DaemonHandle; swan: Charon }> {
  const lab = await createLab({ tag: 'reauth' });
  t.after(() => lab.destroy());
  const socket = join(lab.dir, 'vpp-api.sock');
  const emu = await startEmulatorProcess(socket);
  t.after(() => emu.stop());
  const ours = await startDaemon({
    name: `reauth-${reauthBy}`,
    parentDir: lab.dir,
    lab,
    side: 'b',
    listen: [LAB_ADDR.b.v4],
    conf: `daemon {\n  dataplane = vpp\n}\nvpp {\n  socket = ${socket}\n}\n${conf('b', false, reauthBy === 'vpp-iked')}`,
  });
  t.after(() => ours.stop());
  // kernel-libipsec routes a CHILD_SA's remote TS from an address inside its local TS: one for net2's
  for (const [side, a] of [['a', '198.51.100.65/32'], ['b', '198.51.100.193/32']] as const) {
    const r = await lab.exec(side, 'ip', ['addr', 'add', a, 'dev', 'lo']);
    assert.equal(r.code, 0, r.stderr);
  }
  const swan = await lab.startCharon('a', {
    swanctlConf: conf('a', true, reauthBy === 'strongswan'),
    libipsec: true,
    // strongSwan 5.9's default is break-before-make; 6.0 made make-before-break the default.
    extraStrongswanConf: 'charon {\n  make_before_break = yes\n}\n',
  });
  if (reauthBy === 'strongswan') {
    await swan.initiate('net1', { ike: 'reauth' });
    await swan.initiate('net2', { ike: 'reauth' });
  }
  return { lab, ours, swan };
}

/** Both sides with one IKE SA and both CHILD_SAs, SPIs agreeing, VPP holding exactly their SAs. */
async function agreed(ours: DaemonHandle, swan: Charon) {
  return waitFor(
    'both sides to agree on one IKE SA with both CHILD_SAs and VPP to hold exactly them',
    async () => {
      const sw = await swan.listSas('reauth');
      const mine = await ours.listSas('reauth');
      if (sw.length !== 1 || mine.length !== 1 || sw[0]!.state !== 'ESTABLISHED' || mine[0]!.state !== 'ESTABLISHED') return false;
      if (sw[0]!.spiI !== mine[0]!.spi_i || sw[0]!.spiR !== mine[0]!.spi_r) return false;
      const sc = sw[0]!.children;
      const oc = mine[0]!.child_sas;
      if (sc.length !== 2 || oc.length !== 2 || sc.some((c) => c.state !== 'INSTALLED') || oc.some((c) => c.state !== 'INSTALLED')) return false;
      for (const c of oc) if (!sc.some((s) => s.name === c.name && s.spiIn === c.spi_out && s.spiOut === c.spi_in)) return false;
      const d = await ours.json<VppDump>(['vpp-sas']);
      const held = d.sas.filter((s) => s.ours).map((s) => `${s.direction}:${s.spi}`).sort();
      const want = oc.flatMap((c) => [`in:${c.spi_in}`, `out:${c.spi_out}`]).sort();
      if (JSON.stringify(held) !== JSON.stringify(want)) return false;
      if (d.tunnel_protections.length !== 2) return false;
      if (!oc.every((c) => d.tunnel_protections.some((p) => p.spi_out === c.spi_out))) return false;
      return { sw: sw[0]!, mine: mine[0]! };
    },
    20_000,
    200,
  );
}

/** Watch VPP for RUN_MS: both tunnels have a protection whose outbound SA is installed, at every look. */
async function watch(ours: DaemonHandle): Promise<{ gaps: string[]; polls: number }> {
  const gaps: string[] = [];
  let polls = 0;
  const start = Date.now();
  while (Date.now() - start < RUN_MS) {
    const d = await ours.json<VppDump>(['vpp-sas']);
    polls++;
    const good = d.tunnel_protections.filter((p) => p.spi_out !== null && d.sas.some((s) => s.ours && s.direction === 'out' && s.spi === p.spi_out));
    if (good.length !== 2 || d.tunnel_protections.length !== 2) gaps.push(`${new Date().toISOString()} ${JSON.stringify(d.tunnel_protections)}`);
    await sleep(200);
  }
  return { gaps, polls };
}

const tsOf = (cs: { name: string; local_ts: string[]; remote_ts: string[] }[]) => cs.map((c) => `${c.name} ${c.local_ts} ${c.remote_ts}`).sort();

for (const by of ['strongswan', 'vpp-iked'] as const) {
  test(`${by === 'strongswan' ? 'strongSwan' : 'vpp-iked'} reauthenticates (make-before-break) twice: VPP keeps an outbound SA for both tunnels, both sides end with one IKE SA and the same CHILD_SAs`, { timeout: 120_000 }, async (t: TestContext) => {
    if (!requireInterop(t)) return;
    const { ours, swan } = await setUp(t, by);
    const first = await agreed(ours, swan);
    const { gaps, polls } = await watch(ours);
    const now = await agreed(ours, swan);
    assert.deepEqual(gaps, [], `an outbound SA in VPP for both tunnels at each of ${polls} looks`);
    assert.notEqual(now.mine.spi_i, first.mine.spi_i, 'a new IKE SA');
    assert.deepEqual(tsOf(now.mine.child_sas), tsOf(first.mine.child_sas), 'the same CHILD_SAs and traffic selectors');
    assert.deepEqual(now.mine.child_sas.map((c) => c.name).sort(), ['net1', 'net2']);
    const logs = ours.logs();
    const count = (re: RegExp): number => logs.split('\n').filter((l) => re.test(l)).length;
    t.diagnostic(`reauthenticated ${count(/IKE SA reauthenticated/)}, taken over ${count(/takes over the tunnel/)}, peer deletes ${count(/peer deleted IKE SA/)}, VPP looks ${polls}`);
    if (by === 'strongswan') {
      assert.ok(count(/"msg":"peer deleted IKE SA"/) >= 2, 'strongSwan deleted the old IKE SA after each reauthentication');
      assert.ok(count(/CHILD SA takes over the tunnel of the CHILD SA of the older IKE SA/) >= 4, 'each new CHILD_SA took over its tunnel');
      assert.equal(now.sw.initiator, true);
    } else {
      assert.ok(count(/"msg":"IKE SA reauthenticated, deleting the old IKE SA"/) >= 2, 'vpp-iked reauthenticated twice');
      assert.equal(count(/reauthentication failed/), 0);
      assert.equal(now.mine.initiator, true);
      assert.ok(now.mine.reauth_at !== null, 'list-sas shows the next reauthentication');
    }
    assert.equal(count(/INITIAL_CONTACT/), 0);
  });
}
