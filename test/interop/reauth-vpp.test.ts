/**
 * IKE SA reauthentication through the real path: strongSwan 5.9 (kernel-libipsec,
 * `charon.make_before_break = yes`) in the peer namespace, the real VPP owning the other end of the
 * veth (test/helpers/real-vpp.ts), vpp-iked getting IKE through VPP's punt socket and programming
 * VPP's IPsec. Two tunnels at once: `rp` (vpp_mode p2p, IPv4 outer and inner) and `rm` (vpp_mode
 * p2mp on ipsec100, IPv6 outer and inner).
 *
 * strongSwan reauthenticates both IKE SAs make-before-break (`swanctl --rekey --reauth`), then
 * vpp-iked reauthenticates the new ones (`reauth_time`). Throughout:
 * - a ping at 20 per second from the peer's inner address to VPP's, through each tunnel's ESP: the
 *   replies lost during each reauthentication are counted and printed. None may be lost while
 *   strongSwan reauthenticates. While vpp-iked does, at most one per tunnel: strongSwan (libipsec
 *   looks an outbound SA up by reqid and finds the newest) sends on a CHILD_SA it answered at once,
 *   a few milliseconds before vpp-iked has the IKE_AUTH response and VPP the inbound SA; a request
 *   sent in that window is dropped by VPP (`ipsec4-tun-input: no matching tunnel`);
 * - VPP is asked through its API every few tens of milliseconds: each tunnel has its protection
 *   with an outbound SA VPP holds, and its route, at every look; the outbound SAs it goes through
 *   are exactly the three CHILD_SAs' in turn.
 * Afterwards each side holds one IKE SA per tunnel (a new one), and VPP holds exactly the SAs of
 * their CHILD_SAs (SPIs as `vpp-ikectl list-sas --json` and `swanctl --list-sas` show them, nothing
 * else), each protection only the current SAs, and the same ipsec interfaces and routes as before.
 *
 * Skipped without root, strongSwan or VPP (the reason is printed); fails instead when
 * REQUIRE_INTEROP=1 or REQUIRE_VPP=1.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createLab, interopAvailable, waitFor, type Charon, type SwanSa } from './harness.ts';
import { gatewayDaemonConf, startVppLab, vppAvailable, VPP_LAB_ADDR, type VppLab } from '../helpers/real-vpp.ts';
import { startDaemon, type DaemonHandle, type IkeSaJson } from '../helpers/daemon.ts';
import { sleep } from '../helpers/wait.ts';
import { VppClient } from '../../src/vpp/client.ts';
import { apiAddressText } from '../../src/vpp/address.ts';
import { IpsecSadFlags } from '../../src/vpp/defs.generated.ts';
import { isOurId } from '../../src/dataplane/vpp/ids.ts';
import { hex8 } from '../../src/common/text.ts';

const PSK = 'reauth-vpp-preshared-key-0123456789';
/** vpp-iked's reauthentication time (no random part): counted from each IKE SA's establishment. */
const REAUTH_S = 10;
const PING_INTERVAL_MS = 50;
const U32_MAX = 0xffffffff;

interface Tunnel {
  /** connection and CHILD_SA name on both sides */
  name: string;
  mode: 'p2p' | 'p2mp';
  /** outer addresses */
  peerOuter: string;
  vppOuter: string;
  /** inner addresses: the peer's (on its lo) and VPP's (on loop0) */
  peer: string;
  vpp: string;
}

const TUNNELS: readonly Tunnel[] = [
  { name: 'rp', mode: 'p2p', peerOuter: VPP_LAB_ADDR.peer.v4, vppOuter: VPP_LAB_ADDR.vpp.v4, peer: VPP_LAB_ADDR.peer.inner4, vpp: VPP_LAB_ADDR.vpp.inner4 },
  { name: 'rm', mode: 'p2mp', peerOuter: VPP_LAB_ADDR.peer.v6, vppOuter: VPP_LAB_ADDR.vpp.v6, peer: VPP_LAB_ADDR.peer.inner6, vpp: VPP_LAB_ADDR.vpp.inner6 },
];
const P2MP_INTERFACE = 'ipsec100';

const isV6 = (a: string): boolean => a.includes(':');
const hostPrefix = (a: string): string => `${a}/${isV6(a) ? 128 : 32}`;

/** swanctl.conf (strongSwan) or the connections of vpp-iked.conf. */
function connections(swan: boolean): string {
  const side = swan ? 'peer' : 'vpp';
  const other = swan ? 'vpp' : 'peer';
  const out = ['connections {'];
  for (const x of TUNNELS) {
    const [mine, theirs] = swan ? [x.peerOuter, x.vppOuter] : [x.vppOuter, x.peerOuter];
    const [lts, rts] = swan ? [x.peer, x.vpp] : [x.vpp, x.peer];
    out.push(
      `  ${x.name} {`,
      ...(swan ? ['    version = 2', '    mobike = no'] : [`    reauth_time = ${REAUTH_S}s`, '    rand_time = 0s', '    over_time = 60s']),
      `    local_addrs = ${mine}`,
      `    remote_addrs = ${theirs}`,
      '    proposals = aes256gcm16-prfsha256-x25519',
      `    local {\n      auth = psk\n      id = ${side}-${x.name}.lab\n    }`,
      `    remote {\n      auth = psk\n      id = ${other}-${x.name}.lab\n    }`,
      '    children {',
      `      ${x.name} {`,
      `        local_ts = ${hostPrefix(lts)}`,
      `        remote_ts = ${hostPrefix(rts)}`,
      '        esp_proposals = aes256gcm16',
      ...(swan ? [] : [`        vpp_mode = ${x.mode}`]),
      ...(!swan && x.mode === 'p2mp' ? [`        vpp_interface = ${P2MP_INTERFACE}`] : []),
      '      }',
      '    }',
      '  }',
    );
  }
  out.push('}', 'secrets {', '  ike-lab {', `    secret = "${PSK}"`, '  }', '}', '');
  return out.join('\n');
}

interface Gateway {
  vpp: VppLab;
  swan: Charon;
  iked: DaemonHandle;
}

async function startGateway(t: TestContext): Promise<Gateway> {
  const vpp = await startVppLab(t);
  const lab = await createLab({ tag: 'reauth-vpp', namespaces: { a: vpp.peerNs, b: vpp.vppNs } });
  t.after(() => lab.destroy());
  const iked = await startDaemon({
    name: 'reauth-vpp',
    parentDir: vpp.dir,
    listen: [VPP_LAB_ADDR.vpp.v4, VPP_LAB_ADDR.vpp.v6],
    logLevel: 'info',
    conf: [
      gatewayDaemonConf(vpp),
      connections(false),
    ].join('\n'),
  });
  t.after(() => iked.stop());
  const swan = await lab.startCharon('a', {
    swanctlConf: connections(true),
    libipsec: true,
    // strongSwan 5.9's default is break-before-make; 6.0 made make-before-break the default.
    extraStrongswanConf: 'charon {\n  make_before_break = yes\n}\n',
  });
  return { vpp, swan, iked };
}

// ------------------------------------------------------------------------------------- SA state

/** One generation of a tunnel: its IKE SA and CHILD_SA as both sides list them (they agree). */
interface Generation {
  ikeSpis: string;
  /** vpp-iked's CHILD_SA SPIs */
  spiIn: string;
  spiOut: string;
  initiatorIsIked: boolean;
  reauthAt: string | null;
}

/** Each tunnel with exactly one established IKE SA and one installed CHILD_SA, the same SPIs on both sides. */
function generations(ours: IkeSaJson[], theirs: SwanSa[]): Map<string, Generation> | undefined {
  const m = new Map<string, Generation>();
  for (const x of TUNNELS) {
    const os = ours.filter((s) => s.name === x.name);
    const ss = theirs.filter((s) => s.name === x.name);
    if (os.length !== 1 || ss.length !== 1 || os[0]!.state !== 'ESTABLISHED' || ss[0]!.state !== 'ESTABLISHED') return undefined;
    const o = os[0]!;
    const s = ss[0]!;
    if (o.spi_i !== s.spiI || o.spi_r !== s.spiR) return undefined;
    if (o.child_sas.length !== 1 || s.children.length !== 1) return undefined;
    const c = o.child_sas[0]!;
    const sc = s.children[0]!;
    if (c.state !== 'INSTALLED' || sc.state !== 'INSTALLED' || sc.spiIn !== c.spi_out || sc.spiOut !== c.spi_in) return undefined;
    m.set(x.name, { ikeSpis: `${o.spi_i}_${o.spi_r}`, spiIn: c.spi_in, spiOut: c.spi_out, initiatorIsIked: o.initiator, reauthAt: o.reauth_at });
  }
  return m;
}

/** What VPP holds, through its API. */
interface VppLook {
  at: number;
  /** SAs (both dumps: before and after the protections) by SAD id */
  sas: Map<number, { spi: string; out: boolean; ours: boolean }>;
  /** the SAD entries as one dump (the second) lists them */
  saList: { id: number; spi: string; out: boolean; ours: boolean }[];
  prots: { sw: number; nh: string; saOut: number; saIn: number[] }[];
  itfs: { sw: number; instance: number | undefined; mode: number }[];
  /** routes through ipsec interfaces: "prefix/len sw nh" */
  routes: string[];
}

const { IPSEC_API_SAD_FLAG_IS_INBOUND: IS_INBOUND } = IpsecSadFlags;

async function lookAtVpp(c: VppClient): Promise<VppLook> {
  const saDump = async () => (await c.dump('ipsec_sa_v5_dump', { sa_id: U32_MAX })).map((d) => ({
    id: d.entry.sad_id,
    spi: hex8(d.entry.spi),
    out: (d.entry.flags & IS_INBOUND) === 0,
    ours: isOurId(d.entry.sad_id),
  }));
  // Protections between two SA dumps: an outbound SA replaced meanwhile is in the first, a new one
  // in the second (VPP does not delete an SA a protection uses).
  const before = await saDump();
  const [prots, itfs, r4, r6] = await Promise.all([
    c.dump('ipsec_tunnel_protect_dump', { sw_if_index: U32_MAX }),
    c.dump('ipsec_itf_dump', { sw_if_index: U32_MAX }),
    c.dump('ip_route_dump', { table: { table_id: 0, is_ip6: false, name: '' } }),
    c.dump('ip_route_dump', { table: { table_id: 0, is_ip6: true, name: '' } }),
  ]);
  const after = await saDump();
  const sas = new Map<number, { spi: string; out: boolean; ours: boolean }>();
  for (const s of [...before, ...after]) sas.set(s.id, s);
  const ipsecSw = new Set(itfs.map((i) => i.itf.sw_if_index));
  const routes: string[] = [];
  for (const [isIp6, ds] of [[false, r4], [true, r6]] as const) {
    for (const d of ds) {
      const r = d.route;
      for (const p of r.paths) {
        if (!ipsecSw.has(p.sw_if_index)) continue;
        const nh = apiAddressText({ af: isIp6 ? 1 : 0, un: p.nh.address }, '?');
        routes.push(`${apiAddressText(r.prefix.address, '?')}/${r.prefix.len} sw ${p.sw_if_index} nh ${nh}`);
      }
    }
  }
  return {
    at: Date.now(),
    sas,
    saList: after,
    prots: prots.map((d) => ({ sw: d.tun.sw_if_index, nh: apiAddressText(d.tun.nh, '?'), saOut: d.tun.sa_out, saIn: [...d.tun.sa_in] })),
    itfs: itfs.map((i) => ({ sw: i.itf.sw_if_index, instance: i.itf.user_instance, mode: i.itf.mode })),
    routes: routes.sort(),
  };
}

/** Where a tunnel lives in VPP: its interface, the next hop of its protection, its route. */
interface Place {
  sw: number;
  nh: string;
  route: string;
}

/** The protection of the tunnel and the SPI of its outbound SA (undefined: no protection, or its sa_out is not an outbound SA VPP holds). */
function outboundOf(look: VppLook, p: Place): string | undefined {
  const prot = look.prots.find((q) => q.sw === p.sw && q.nh === p.nh);
  const sa = prot && look.sas.get(prot.saOut);
  return sa && sa.out && sa.ours ? sa.spi : undefined;
}

interface Watch {
  /** polls so far */
  polls: number;
  /** looks at which a tunnel had no outbound SA or no route */
  gaps: string[];
  /** per tunnel: the outbound SPIs of its protection, in the order they were seen */
  outbound: Map<string, string[]>;
  stop(): Promise<void>;
}

/** Looks at VPP until stopped: each tunnel must have its protection with an outbound SA and its route at every look. */
function watchVpp(c: VppClient, places: Map<string, Place>): Watch {
  let running = true;
  const w: Watch = {
    polls: 0,
    gaps: [],
    outbound: new Map(TUNNELS.map((x) => [x.name, []])),
    stop: async () => {
      running = false;
      await loop;
    },
  };
  const loop = (async () => {
    while (running) {
      const look = await lookAtVpp(c);
      w.polls++;
      for (const x of TUNNELS) {
        const p = places.get(x.name)!;
        const spi = outboundOf(look, p);
        const seen = w.outbound.get(x.name)!;
        if (spi === undefined) w.gaps.push(`${new Date(look.at).toISOString()} ${x.name}: no outbound SA: ${JSON.stringify(look.prots)}`);
        else if (seen[seen.length - 1] !== spi) seen.push(spi);
        if (!look.routes.includes(p.route)) w.gaps.push(`${new Date(look.at).toISOString()} ${x.name}: no route ${p.route}: ${JSON.stringify(look.routes)}`);
      }
      await sleep(20);
    }
  })();
  return w;
}

// ----------------------------------------------------------------------------------------- ping

interface PingResult {
  sent: number;
  received: number;
  /** icmp_seq of the requests that got no reply */
  missing: number[];
  /** the wall-clock time (HH:MM:SS.mmm) of each reply, by icmp_seq */
  replyAt: Map<number, string>;
  output: string;
}

/**
 * `count` pings at 20 per second from the peer's inner address to VPP's, through the tunnel; ping
 * ends when every reply is in, or 3 s after the last request.
 */
function ping(vpp: VppLab, x: Tunnel, count: number): Promise<PingResult> {
  const deadline = Math.ceil((count * PING_INTERVAL_MS) / 1000) + 3;
  const args = ['netns', 'exec', vpp.peerNs, 'ping', isV6(x.peer) ? '-6' : '-4', '-n', '-D', '-i', String(PING_INTERVAL_MS / 1000), '-W', '1',
    '-c', String(count), '-w', String(deadline), '-I', x.peer, x.vpp];
  return new Promise((resolve, reject) => {
    const child = spawn('ip', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => void (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => void (out += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), (deadline + 10) * 1000);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', () => {
      clearTimeout(timer);
      const m = /(\d+) packets transmitted, (\d+) received/.exec(out);
      if (!m) return reject(new Error(`ping printed no summary:\n${out}`));
      const replyAt = new Map([...out.matchAll(/^\[(\d+\.\d+)\] .*icmp_seq=(\d+)/gm)].map((mm) => [Number(mm[2]), new Date(Number(mm[1]) * 1000).toISOString().slice(11, 23)]));
      const got = new Set(replyAt.keys());
      const sent = Number(m[1]);
      const missing: number[] = [];
      for (let i = 1; i <= sent; i++) if (!got.has(i)) missing.push(i);
      resolve({ sent, received: Number(m[2]), missing, replyAt, output: out });
    });
  });
}

// ------------------------------------------------------------------------------------------ test

/** strongSwan and VPP: true when the lab can run; otherwise skipped, or failed under REQUIRE_INTEROP=1 / REQUIRE_VPP=1. */
function requireLab(t: TestContext): boolean {
  const swan = interopAvailable();
  const vpp = vppAvailable();
  if (swan.available && vpp.ok) return true;
  const why = [swan.available ? '' : `strongSwan: ${swan.reason}`, vpp.ok ? '' : `VPP: ${vpp.reason}`].filter(Boolean).join('; ');
  if (process.env.REQUIRE_INTEROP === '1' || process.env.REQUIRE_VPP === '1') {
    throw new Error(`the real-VPP reauthentication test is required (REQUIRE_INTEROP=1 or REQUIRE_VPP=1) but cannot run: ${why}`);
  }
  t.skip(`real-VPP lab not available: ${why}`);
  return false;
}

const sortedSet = (xs: Iterable<string>): string[] => [...new Set(xs)].sort();

test('reauthentication through the real VPP: strongSwan, then vpp-iked, make-before-break on p2p and p2mp tunnels under ping, VPP always sending, exactly the current SAs left', { timeout: 120_000 }, async (t) => {
  if (!requireLab(t)) return;
  const g = await startGateway(t);
  const states = async (): Promise<Map<string, Generation> | undefined> => {
    const [ours, theirs] = await Promise.all([g.iked.listSas(), g.swan.listSas()]);
    return generations(ours, theirs);
  };
  for (const x of TUNNELS) await g.swan.initiate(x.name, { ike: x.name });
  const gen0 = await waitFor('both tunnels up on both sides', states, 10_000, 100);

  const client = new VppClient({ socket: g.vpp.apiSocket, reconnect: false, healthCheckMs: 0, requestTimeoutMs: 5000 });
  await client.connect();
  t.after(() => client.close());
  // Where each tunnel is in VPP, once VPP holds both: the p2p interface, and ipsec100 with the peer's address.
  const start = await waitFor('VPP to hold both tunnels', async () => {
    const look = await lookAtVpp(client);
    return TUNNELS.every((x) => look.prots.some((p) => look.sas.get(p.saOut)?.spi === gen0.get(x.name)!.spiOut)) && look;
  }, 5000, 50);
  const places = new Map<string, Place>();
  for (const x of TUNNELS) {
    const prot = start.prots.find((p) => start.sas.get(p.saOut)?.spi === gen0.get(x.name)!.spiOut)!;
    const route = start.routes.find((r) => r.startsWith(`${hostPrefix(x.peer)} sw ${prot.sw} `));
    assert.ok(route, `${x.name}: a route to ${hostPrefix(x.peer)} through sw_if_index ${prot.sw}: ${JSON.stringify(start.routes)}`);
    if (x.mode === 'p2mp') assert.equal(prot.nh, x.peerOuter, `${x.name}: the p2mp protection is keyed by the peer's address`);
    places.set(x.name, { sw: prot.sw, nh: prot.nh, route });
  }
  assert.notEqual(places.get('rp')!.sw, places.get('rm')!.sw, 'a p2p interface of its own, and the p2mp interface');

  const watch = watchVpp(client, places);
  t.after(() => watch.stop());
  const logs = (re: RegExp): number => g.iked.logs().split('\n').filter((l) => re.test(l)).length;
  const lost: string[] = [];
  const phase = async (what: string, count: number, act: () => Promise<Map<string, Generation>>): Promise<{ gen: Map<string, Generation>; doneMs: number; pings: PingResult[] }> => {
    const t0 = Date.now();
    const pings = Promise.all(TUNNELS.map((x) => ping(g.vpp, x, count)));
    pings.catch(() => {}); // awaited below; a failure must not go unhandled meanwhile
    const gen = await act();
    const doneMs = Date.now() - t0;
    const results = await pings;
    for (const [i, x] of TUNNELS.entries()) {
      const p = results[i]!;
      const when = p.missing.slice(0, 20).map((n) => `${n} between replies at ${p.replyAt.get(n - 1) ?? '?'} and ${p.replyAt.get(n + 1) ?? '?'}`);
      lost.push(`${what}, ${x.name}: ${p.sent - p.received} of ${p.sent} lost${when.length ? ` (icmp_seq ${when.join(', ')})` : ''}`);
    }
    // The reauthentication was over (both sides and VPP on the new SAs) well before the ping ended.
    assert.ok(doneMs + 1000 <= count * PING_INTERVAL_MS, `${what} done ${doneMs} ms after the ping started, which ran ${count * PING_INTERVAL_MS} ms`);
    return { gen, doneMs, pings: results };
  };
  /** Both sides with a new IKE SA per tunnel (other SPIs than `prev`), and VPP sending on its CHILD_SA. */
  const replacedOn = (prev: Map<string, Generation>) => async (): Promise<Map<string, Generation> | false> => {
    const now = await states();
    if (!now || !TUNNELS.every((x) => now.get(x.name)!.ikeSpis !== prev.get(x.name)!.ikeSpis)) return false;
    const look = await lookAtVpp(client);
    return TUNNELS.every((x) => outboundOf(look, places.get(x.name)!) === now.get(x.name)!.spiOut) && now;
  };

  // 1. strongSwan reauthenticates both IKE SAs (vpp-iked answers).
  const p1 = await phase('strongSwan reauthenticates', 120, async () => {
    await sleep(500);
    const rs = await Promise.all(TUNNELS.map((x) => g.swan.swanctl(['--rekey', '--ike', x.name, '--reauth'])));
    for (const r of rs) assert.equal(r.code, 0, r.stdout + r.stderr);
    return waitFor('strongSwan\'s reauthentication to replace both IKE SAs on both sides and in VPP', replacedOn(gen0), 5000, 50);
  });
  const gen1 = p1.gen;
  assert.equal(logs(/"msg":"reauthenticating IKE SA"/), 0, 'vpp-iked did not reauthenticate yet');
  assert.ok(TUNNELS.every((x) => !gen1.get(x.name)!.initiatorIsIked), 'strongSwan initiated the new IKE SAs');

  // 2. vpp-iked reauthenticates the IKE SAs strongSwan made, at their reauth_time.
  const due = Math.max(...TUNNELS.map((x) => Date.parse(gen1.get(x.name)!.reauthAt ?? '')));
  assert.ok(Number.isFinite(due), `list-sas shows when vpp-iked reauthenticates: ${JSON.stringify([...gen1.values()].map((v) => v.reauthAt))}`);
  const count2 = Math.ceil((due - Date.now() + 4000) / PING_INTERVAL_MS);
  const p2 = await phase('vpp-iked reauthenticates', count2, () =>
    waitFor('vpp-iked\'s reauthentication to replace both IKE SAs on both sides and in VPP', replacedOn(gen1), due - Date.now() + 4000, 50));
  const gen2 = p2.gen;
  assert.ok(TUNNELS.every((x) => gen2.get(x.name)!.initiatorIsIked), 'vpp-iked initiated the new IKE SAs');
  assert.equal(logs(/"msg":"IKE SA reauthenticated, deleting the old IKE SA"/), TUNNELS.length, 'vpp-iked reauthenticated each IKE SA once');
  await watch.stop();
  t.diagnostic(`pings at 20/s: ${lost.join('; ')}`);
  t.diagnostic(`strongSwan's reauthentication done ${p1.doneMs} ms after its ping started (reauth at 500 ms); ` +
    `vpp-iked's ${p2.doneMs} ms after its ping started (${count2 * PING_INTERVAL_MS} ms); ${watch.polls} looks at VPP, no gap`);

  // 3. Both sides and VPP agree exactly; the interfaces and routes are the ones from the start.
  const [ours, theirs] = await Promise.all([g.iked.listSas(), g.swan.listSas()]);
  const same = (m: Map<string, Generation> | undefined) => m && [...m].map(([k, v]) => [k, v.ikeSpis, v.spiIn, v.spiOut]);
  assert.deepEqual(same(generations(ours, theirs)), same(gen2), 'both sides still on the IKE SAs and CHILD_SAs of vpp-iked\'s reauthentication');
  const end = await lookAtVpp(client);
  const vppSpis = sortedSet(end.saList.map((s) => `${s.out ? 'out' : 'in'}:${s.spi}`));
  const ikedSpis = sortedSet(ours.flatMap((s) => s.child_sas.flatMap((c) => [`in:${c.spi_in}`, `out:${c.spi_out}`])));
  const swanSpis = sortedSet(theirs.flatMap((s) => s.children.flatMap((c) => [`in:${c.spiOut}`, `out:${c.spiIn}`])));
  assert.deepEqual(ikedSpis, swanSpis, 'vpp-ikectl list-sas and swanctl --list-sas show the same CHILD_SAs');
  assert.deepEqual(vppSpis, ikedSpis, 'VPP holds exactly the SAs of the current CHILD_SAs');
  assert.equal(end.saList.length, 2 * TUNNELS.length, `no other SA in VPP: ${JSON.stringify(end.saList)}`);
  assert.ok(end.saList.every((s) => s.ours), 'every SA in VPP is one of vpp-iked\'s');
  assert.equal(end.prots.length, TUNNELS.length, `one protection per tunnel: ${JSON.stringify(end.prots)}`);
  for (const x of TUNNELS) {
    const p = places.get(x.name)!;
    const prot = end.prots.find((q) => q.sw === p.sw && q.nh === p.nh);
    assert.ok(prot, `${x.name}: its protection is still on sw_if_index ${p.sw} (${p.nh})`);
    const spiOf = (id: number): string | undefined => end.sas.get(id)?.spi;
    assert.equal(spiOf(prot.saOut), gen2.get(x.name)!.spiOut, `${x.name}: VPP sends on the current CHILD_SA`);
    assert.deepEqual(prot.saIn.map(spiOf), [gen2.get(x.name)!.spiIn], `${x.name}: VPP receives on the current CHILD_SA only`);
    assert.deepEqual(watch.outbound.get(x.name), [gen0, gen1, gen2].map((gen) => gen.get(x.name)!.spiOut),
      `${x.name}: VPP sent on the three CHILD_SAs in turn, and on nothing else`);
  }
  assert.deepEqual(end.itfs, start.itfs, 'the same ipsec interfaces');
  assert.deepEqual(end.routes, start.routes, 'the same routes through them');
  assert.deepEqual(watch.gaps, [], `each tunnel had an outbound SA and its route at each of ${watch.polls} looks at VPP`);

  if ([...p1.pings, ...p2.pings].some((r) => r.received !== r.sent)) {
    // What VPP dropped (a lost request shows as ipsec4/6-tun-input: no matching tunnel), and when vpp-iked did what.
    const errors = (await g.vpp.ctl('show', 'errors')).split('\n').filter((l) => !/ESP pkts received|arp|icmp6-|ip6-icmp|nd|neighbor|ethernet/i.test(l)).join('\n');
    const events = g.iked.logs().split('\n').filter((l) => /reauthenticat|takes over|IKE SA (deleted|established)|peer deleted/.test(l))
      .map((l) => { try { const j = JSON.parse(l) as { time: string | number; msg: string; ike?: number }; return `${new Date(j.time).toISOString().slice(11, 23)} ike ${j.ike} ${j.msg}`; } catch { return l; } });
    t.diagnostic(`VPP errors:\n${errors}\nvpp-iked:\n${events.join('\n')}`);
  }
  // One lost ping per tunnel is the window README's "Reauthentication" describes for each direction:
  // the responder's old outbound SA until the initiator's Delete, the initiator's new one before the
  // responder has installed it.
  for (const [what, p] of [['strongSwan', p1], ['vpp-iked', p2]] as const) {
    for (const [i, x] of TUNNELS.entries()) {
      const r = p.pings[i]!;
      assert.ok(r.sent > 0 && r.sent - r.received <= 1,
        `${x.name}: at most one ping lost while ${what} reauthenticates: ${r.received} of ${r.sent} replies\n${r.output.split('\n').slice(-4).join('\n')}`);
    }
  }
});
