/**
 * Rekey soak into the real VPP: N tunnels (default 1,000) whose CHILD_SAs rekey every 10 s and IKE
 * SAs every 30 s, for M minutes (default 10), with the IKE traffic and the SAs going through FD.io
 * VPP as on a gateway.
 *
 *   node_modules/.bin/node bench/soak.ts [--tunnels 1000] [--minutes 10] [--child-rekey 10] [--ike-rekey 30]
 *       [--sample 30] [--json FILE] [--plugin PATH] [--log-level info] [--peer-log 0] [--keep]
 *
 * The lab (test/helpers/real-vpp.ts): VPP 26.10 in its own network namespace owning its end of a
 * veth pair (192.0.2.2), `net.unix.max_dgram_qlen` raised to --qlen (256) there; vpp-iked in VPP's namespace
 * with `transport = punt` (IKE reaches it only through VPP's punt socket, its answers go back the
 * same way) and `dataplane = vpp`, one `p2mp` interface (ipsec100) carrying every CHILD_SA, no
 * routes (`vpp_routes = no`: the load-tester's traffic selectors are its outer addresses, and no
 * traffic is sent). The peer: strongSwan's load-tester (test/helpers/load-tester.ts, fake kernel) in
 * the other namespace, initiating one IKE SA with one CHILD_SA from each of N addresses of its own
 * (100.64.0.1 and up on its veth; VPP routes them via 192.0.2.1), paced at --pace ms per initiation
 * (2 by default; 0: as fast as the load-tester goes, a hub restart's burst). The bring-up line gives
 * the time to all tunnels up and vpp-iked's CPU and RSS growth per tunnel over it (IKE through VPP's
 * punt socket, every CHILD_SA programmed into VPP).
 *
 * Rekeys. vpp-iked's connection: CHILD_SA `rekey_time` = --child-rekey (`rand_time` a fifth of it,
 * at least 2 s: whole seconds are taken off; `life_time` twice it), IKE SA `rekey_time` = --ike-rekey
 * (`rand_time` a tenth, at least 2 s; `over_time` as long). The load-tester rekeys its IKE SAs every --ike-rekey seconds too (`ike_rekey`, no jitter),
 * so IKE SA rekeys are started by both sides and some collide (RFC 7296 §2.8.2). Its CHILD_SAs get
 * the same lifetimes (`child_rekey`), but charon starts a CHILD_SA rekey only on an expiry event
 * from its kernel interface, which the fake kernel never sends: the CHILD_SA rekeys are all ours.
 *
 * Every --sample seconds (and at the end) a sample: tunnels up as vpp-iked lists them (peers with an
 * established IKE SA and an installed CHILD_SA) and as the load-tester does (swanctl --list-sas),
 * rekeys per second (CHILD_SA, IKE SA: vpp-iked's counters), retransmits (ours: `stats`; the
 * load-tester's: "retransmit" lines in charon's log), rekey collisions (ours: `stats`; charon's:
 * "detected ... collision" lines), RSS and CPU of vpp-iked (/proc), our SAs in VPP's SAD (a dump
 * through VPP's API) against the SAs vpp-iked lists as installed in VPP.
 *
 * Checks (exit code 1 when one fails):
 * - no tunnel lost: at the end all N tunnels up on both sides, and no IKE SA was negotiated anew
 *   (vpp-iked established exactly N);
 * - VPP holds exactly the current SAs: the load-tester is stopped (SIGSTOP) so that no exchange
 *   completes, and once vpp-iked's work in flight is done, its `list-sas` (every CHILD_SA whose SAs
 *   are in VPP, by direction and SPI), a dump of VPP's SAD (our SAs) and `list-sas` again: the two
 *   lists equal, and equal to the dump (none leaked, none missing); then the load-tester continues;
 * - memory flat: vpp-iked's RSS at the end at most 10% (and at least 8 MB) above the RSS after the
 *   first third of the soak (the least-squares slope per minute from there is reported too);
 * - the soak soaked: at least 80% of the CHILD_SA and IKE SA rekeys the lifetimes call for.
 * - vpp-iked stops (SIGTERM, `stop_action = delete`) with exit code 0 and leaves none of its SAs in
 *   VPP.
 *
 * Needs root, iproute2, strongSwan 5.9 (`bash .ci/setup-interop.sh`), the load-tester plugin (see
 * test/helpers/load-tester.ts: `--plugin PATH`, $LOAD_TESTER_SO, ../shared/interop/...) and VPP
 * (test/helpers/real-vpp.ts: ../shared/vpp/run-vpp.sh or VPP_PREFIX). Run it alone on the machine:
 * `flock /tmp/viked-heavy.lock node_modules/.bin/node bench/soak.ts`. Output: a table on stdout and
 * the JSON (`--json`, default bench/results/soak-<time>.json). Everything started (VPP, charon,
 * vpp-iked, namespaces) is removed on exit, Ctrl-C or failure; `--keep` keeps the lab folders.
 */
import { parseArgs } from 'node:util';
import { existsSync, mkdirSync, openSync, readSync, closeSync, fstatSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { controlRequest } from '../src/control/server.ts';
import type { IkeView } from '../src/control/views.ts';
import { hex8 } from '../src/common/text.ts';
import { isOurId } from '../src/dataplane/vpp/ids.ts';
import { VppClient } from '../src/vpp/client.ts';
import { IpsecSadFlags } from '../src/vpp/defs.generated.ts';
import { createLab, interopAvailable, SWANCTL_BIN, type SwanSa } from '../test/interop/harness.ts';
import { startVppLab, vppAvailable, VPP_LAB_ADDR } from '../test/helpers/real-vpp.ts';
import { CharonProc, findPlugin, pluginFolder, PSK, startLoad } from '../test/helpers/load-tester.ts';
import { procStat } from '../test/helpers/proc.ts';
import { sleep } from '../test/helpers/wait.ts';
import { daemonStats, spawnDaemon, type DaemonProc } from './lab-daemon.ts';

const ROOT = resolve(import.meta.dirname, '..');
const U32_MAX = 0xffffffff;
const IS_INBOUND = IpsecSadFlags.IPSEC_API_SAD_FLAG_IS_INBOUND;
const PROPOSAL = 'aes256gcm16-prfsha256-x25519';
const P2MP_IFACE = 'ipsec100';
/** The load-tester's source addresses: POOL_BASE + 1 .. + N. */
const POOL_BASE = (100 << 24) | (64 << 16);
const POOL_PREFIX = '100.64.0.0/16';
/** ms between two initiations of the load-tester. */

const USAGE = `Usage: node_modules/.bin/node bench/soak.ts [options]   (as root, alone: flock /tmp/viked-heavy.lock ...)
  --tunnels N        tunnels (default 1000, at most 65000)
  --minutes M        soak time after all tunnels are up (default 10; fractions allowed)
  --child-rekey S    CHILD_SA rekey_time in seconds (default 10)
  --ike-rekey S      IKE SA rekey_time in seconds, both sides (default 30)
  --sample S         seconds between samples (default 30)
  --pace MS          ms between the load-tester's initiations (default 2; 0: as fast as it goes)
  --cpu-prof DIR     run vpp-iked with --cpu-prof, profiles into DIR (bench/cpuprofile-top.ts reads them)
  --punt-reader R   vpp-iked's vpp.punt_reader: thread (default) or event_loop
  --qlen N           net.unix.max_dgram_qlen in VPP's namespace: datagrams VPP's punt socket may queue for vpp-iked (default 256)
  --log-level LEVEL  vpp-iked's log level (default info)
  --peer-log N       charon's file log level for every subsystem (default 0; its IKE subsystem logs at 1 at least)
  --json FILE        where the JSON goes (default bench/results/soak-<time>.json)
  --plugin PATH      libstrongswan-load-tester.so
  --keep             keep the lab folders (configs, logs)`;

// ------------------------------------------------------------------------------------------ types

interface Sample {
  /** seconds since the soak started (all tunnels up) */
  t: number;
  oursUp: number;
  theirsUp: number;
  oursIkeSas: number;
  oursChildSas: number;
  theirsIkeSas: number;
  theirsChildSas: number;
  /** vpp-iked's counters so far (since its start) */
  childRekeyed: number;
  ikeRekeyed: number;
  /** per second since the previous sample */
  childRekeysPerS: number;
  ikeRekeysPerS: number;
  retransmits: number;
  theirRetransmits: number;
  childCollisions: number;
  ikeCollisions: number;
  theirCollisions: number;
  ikeEstablished: number;
  ikeFailed: number;
  childFailed: number;
  dataplaneErrors: number;
  /** vpp-iked's punt transport: messages not sent (sendto VPP's punt socket failed) and datagrams it dropped */
  sendErrors: number;
  transportDrops: Record<string, number>;
  /** UDP datagrams the peer's kernel dropped for a full receive buffer (its /proc/net/snmp RcvbufErrors) */
  peerRcvbufErrors: number;
  rssKb: number;
  cpuS: number;
  /** our SAs in VPP's SAD, and the SAs vpp-iked lists as installed in VPP (taken moments apart) */
  vppSas: number;
  listedSas: number;
  vppRssKb: number;
}

interface Check {
  name: string;
  ok: boolean;
  detail: string;
}

interface SaSetCheck {
  attempts: number;
  /** list-sas unchanged across the dump */
  stable: boolean;
  listed: number;
  inVpp: number;
  leaked: string[];
  missing: string[];
}

// ------------------------------------------------------------------------------------------ helpers

const ipv4 = (n: number): string => [n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff].join('.');

function log(s: string): void {
  process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${s}\n`);
}

async function listSas(d: DaemonProc): Promise<IkeView[]> {
  const items: IkeView[] = [];
  await controlRequest(d.ctl, 'list-sas', {}, (x) => items.push(x as IkeView), undefined, 60_000);
  return items;
}

/** Peers (remote identities) with an IKE SA that is up and a CHILD_SA that is installed. */
function oursUp(sas: readonly IkeView[]): number {
  const up = new Set<string>();
  for (const sa of sas) {
    if (sa.state !== 'ESTABLISHED' && sa.state !== 'REKEYING') continue;
    if (sa.child_sas.some((c) => c.state === 'INSTALLED' || c.state === 'REKEYING')) up.add(sa.remote.id ?? sa.remote.addr);
  }
  return up.size;
}

/** The load-tester's clients (local identities) with an IKE SA that is up and a CHILD_SA that is installed. */
function theirsUp(sas: readonly SwanSa[]): number {
  const up = new Set<string>();
  for (const sa of sas) {
    if (sa.state !== 'ESTABLISHED' && sa.state !== 'REKEYING') continue;
    if (sa.children.some((c) => c.state === 'INSTALLED' || c.state === 'REKEYING')) up.add(sa.localId);
  }
  return up.size;
}

/** The SAs vpp-iked lists as programmed into VPP, as `in:SPI` / `out:SPI`. */
function listedSet(sas: readonly IkeView[]): Set<string> {
  const out = new Set<string>();
  for (const sa of sas) {
    for (const c of sa.child_sas) {
      if (c.vpp.sa_in !== null) out.add(`in:${c.spi_in}`);
      if (c.vpp.sa_out !== null) out.add(`out:${c.spi_out}`);
    }
  }
  return out;
}

async function vppSet(client: VppClient): Promise<Set<string>> {
  const sas = await client.dump('ipsec_sa_v5_dump', { sa_id: U32_MAX });
  const out = new Set<string>();
  for (const s of sas) {
    if (!isOurId(s.entry.sad_id)) continue;
    out.add(`${s.entry.flags & IS_INBOUND ? 'in' : 'out'}:${hex8(s.entry.spi)}`);
  }
  return out;
}

/** RcvbufErrors of the `Udp:` lines of /proc/net/snmp. */
function udpRcvbufErrors(snmp: string): number {
  const lines = snmp.split('\n').filter((l) => l.startsWith('Udp:'));
  const names = (lines[0] ?? '').split(/\s+/);
  const values = (lines[1] ?? '').split(/\s+/);
  const i = names.indexOf('RcvbufErrors');
  return i < 0 ? NaN : Number(values[i]);
}

const minus = (a: ReadonlySet<string>, b: ReadonlySet<string>): string[] => [...a].filter((x) => !b.has(x));
const sameSet = (a: ReadonlySet<string>, b: ReadonlySet<string>): boolean => a.size === b.size && minus(a, b).length === 0;

/** Counts lines of a growing log file matching each pattern, reading only what was added since the last call. */
class LogCounter {
  private offset = 0;
  private rest = '';
  readonly counts: number[];
  private readonly path: string;
  private readonly patterns: readonly RegExp[];
  constructor(path: string, patterns: readonly RegExp[]) {
    this.path = path;
    this.patterns = patterns;
    this.counts = patterns.map(() => 0);
  }

  update(): void {
    if (!existsSync(this.path)) return;
    const fd = openSync(this.path, 'r');
    try {
      const size = fstatSync(fd).size;
      const buf = Buffer.alloc(1 << 20);
      while (this.offset < size) {
        const n = readSync(fd, buf, 0, Math.min(buf.length, size - this.offset), this.offset);
        if (n <= 0) break;
        this.offset += n;
        const text = this.rest + buf.subarray(0, n).toString('latin1');
        const lines = text.split('\n');
        this.rest = lines.pop() ?? '';
        for (const l of lines) this.patterns.forEach((re, i) => { if (re.test(l)) this.counts[i]!++; });
      }
    } finally {
      closeSync(fd);
    }
  }
}

/** Least-squares slope of y over x. */
function slope(xs: readonly number[], ys: readonly number[]): number {
  const n = xs.length;
  if (n < 2) return NaN;
  const mx = xs.reduce((a, b) => a + b, 0) / n;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  let num = 0;
  let den = 0;
  for (let i = 0; i < n; i++) {
    num += (xs[i]! - mx) * (ys[i]! - my);
    den += (xs[i]! - mx) ** 2;
  }
  return den === 0 ? NaN : num / den;
}

// ------------------------------------------------------------------------------------------ configs

function daemonConf(o: { ctl: string; puntSocket: string; apiSocket: string; logLevel: string; tunnels: number; childRekey: number; ikeRekey: number; puntReader: string }): string {
  // rand_time counts whole seconds (a random 0 .. rand_time - 1 s is taken off rekey_time): at least 2
  const rand = (s: number, part: number): number => Math.max(2, Math.round(s / part));
  return `daemon {
  transport = punt
  dataplane = vpp
  listen = ${VPP_LAB_ADDR.vpp.v4}
  port = 500
  port_nat_t = 4500
  control_socket = ${o.ctl}
  log_level = ${o.logLevel}
  ike_sa_limit = ${Math.max(1000, o.tunnels * 4)}
  cookie_threshold = 0
  block_threshold = 0
}
vpp {
  socket = ${o.apiSocket}
  punt_socket = ${o.puntSocket}
  punt_reader = ${o.puntReader}
  unnumbered_interface = loop0
}
connections {
  load-test {
    local_addrs = ${VPP_LAB_ADDR.vpp.v4}
    proposals = ${PROPOSAL}
    unique = never
    rekey_time = ${o.ikeRekey}s
    rand_time = ${rand(o.ikeRekey, 10)}s
    over_time = ${o.ikeRekey}s
    local {
      auth = psk
      id = srv.strongswan.org
    }
    remote {
      auth = psk
      id = *.strongswan.org
    }
    children {
      load-test {
        esp_proposals = aes256gcm16
        rekey_time = ${o.childRekey}s
        rand_time = ${rand(o.childRekey, 5)}s
        life_time = ${o.childRekey * 2}s
        vpp_mode = p2mp
        vpp_interface = ${P2MP_IFACE}
        vpp_routes = no
      }
    }
  }
}
secrets {
  ike-load-test {
    secret = ${PSK}
  }
}
`;
}

// ------------------------------------------------------------------------------------------ the run

interface Result {
  started: string;
  args: Record<string, unknown>;
  tunnels: number;
  minutes: number;
  childRekey: number;
  ikeRekey: number;
  pace: number;
  bringUp: { seconds: number; oursUp: number; theirsUp: number; initiatorFailed: number; initiatorRetransmits: number; cpuMsPerTunnel: number; rssPerTunnelBytes: number };
  rssStartKb: number;
  rssUpKb: number;
  samples: Sample[];
  saSet?: SaSetCheck;
  rss: { startKb: number; upKb: number; warmKb: number; endKb: number; slopeMbPerMin: number; slopeMbPerMinAll: number };
  rekeys: { child: number; ike: number; childPerS: number; ikePerS: number; expectedChild: number; expectedIke: number };
  vppSasAfterStop?: number;
  /** The load-tester's IKE SAs still up a few seconds after vpp-iked's stop (each peer should have taken our Delete). */
  peerSasAfterStop?: number;
  /** VPP's error counters about punt, UDP and drops at the end of the soak (`show errors`) */
  vppErrors?: string[];
  daemonExit?: { code: number | null; signal: NodeJS.Signals | null };
  checks: Check[];
  ok: boolean;
  error?: string;
}

const cleanups: (() => Promise<void>)[] = [];

async function cleanupAll(): Promise<void> {
  for (const c of cleanups.splice(0).reverse()) await c().catch((e: unknown) => process.stderr.write(`clean-up: ${(e as Error).message}\n`));
}

async function run(o: { tunnels: number; minutes: number; childRekey: number; ikeRekey: number; sampleS: number; pace: number; qlen: number; puntReader: string; cpuProf?: string; logLevel: string; peerLog: number; plugin: string }, r: Result): Promise<void> {
  const vpp = await startVppLab({ after: (fn) => void cleanups.push(fn) }, { unixDgramQlen: o.qlen });
  // the load-tester's addresses are reached through the peer's veth address
  await vpp.ctl('ip', 'route', 'add', POOL_PREFIX, 'via', VPP_LAB_ADDR.peer.v4, vpp.hostIf);
  const lab = await createLab({ tag: 'soak', namespaces: { a: vpp.peerNs, b: vpp.vppNs } });
  cleanups.push(() => lab.destroy());
  const plugins = pluginFolder(lab.dir, o.plugin);
  // the load-tester's source addresses, one per tunnel, on the peer's veth
  const batch = Array.from({ length: o.tunnels }, (_, i) => `address add ${ipv4(POOL_BASE + 1 + i)}/32 dev ${vpp.peerIf}`).join('\n') + '\n';
  const added = await lab.exec('a', 'ip', ['-batch', '-'], { input: batch, timeoutMs: 120_000 });
  if (added.code !== 0) throw new Error(`adding the load-tester's addresses failed: ${added.stderr}`);

  const dir = join(lab.dir, 'vpp-iked');
  const ctl = join(dir, 'ctl.sock');
  const conf = daemonConf({ ctl, puntSocket: join(vpp.dir, 'iked-punt.sock'), apiSocket: vpp.apiSocket, logLevel: o.logLevel, tunnels: o.tunnels, childRekey: o.childRekey, ikeRekey: o.ikeRekey, puntReader: o.puntReader });
  const daemon = await spawnDaemon(lab, 'b', dir, ctl, conf, ['--max-semi-space-size=4', ...(o.cpuProf ? ['--cpu-prof', `--cpu-prof-dir=${o.cpuProf}`] : [])]);
  const dpid = daemon.proc.pid;
  r.rssStartKb = procStat(dpid).rssKb;
  log(`vpp-iked up (pid ${dpid}, RSS ${(r.rssStartKb / 1024).toFixed(0)} MB); VPP pid ${vpp.vppPid}`);

  const init = await CharonProc.start(lab, 'a', {
    role: 'initiator',
    proposal: PROPOSAL,
    dir: join(lab.dir, 'load-tester'),
    initiatorAddr: VPP_LAB_ADDR.peer.v4,
    responderAddr: VPP_LAB_ADDR.vpp.v4,
    addrs: { iface: vpp.peerIf, range: `${ipv4(POOL_BASE + 1)}-${ipv4(POOL_BASE + o.tunnels)}` },
    ikeRekey: o.ikeRekey,
    childRekey: o.childRekey,
    logLevel: o.peerLog,
    ikeLogLevel: Math.max(1, o.peerLog),
  }, plugins);
  const charonLog = new LogCounter(join(lab.dir, 'load-tester', 'charon.log'), [/retransmit \d+ of request/, /detected \S+ collision with \S+/]);

  const vc = new VppClient({ socket: vpp.apiSocket, healthCheckMs: 0, reconnect: false, requestTimeoutMs: 60_000 });
  await vc.connect();
  cleanups.push(() => vc.close());

  // ---- bring-up
  const cpu0 = procStat(dpid).cpuMs;
  const t0 = performance.now();
  const load = startLoad(init.ldt, o.tunnels, t0, o.pace);
  let cpuUp: number | undefined;
  cleanups.push(async () => load.abort());
  const upTimeoutMs = (60 + o.tunnels / 20) * 1000;
  let ours: IkeView[] = [];
  let theirs: SwanSa[] = [];
  for (;;) {
    const st = await daemonStats(daemon);
    if (Number(st.ike_established) >= o.tunnels) {
      // vpp-iked's CPU up to its last IKE SA (before the listings below)
      cpuUp ??= procStat(dpid).cpuMs;
      ours = await listSas(daemon);
      theirs = await init.listSas(lab);
      if (oursUp(ours) >= o.tunnels && theirsUp(theirs) >= o.tunnels) break;
    }
    if (load.stats.closedMs !== undefined && load.stats.failed > 0) throw new Error(`the load-tester failed ${load.stats.failed} of ${o.tunnels} initiations`);
    if (performance.now() - t0 > upTimeoutMs) {
      throw new Error(`not all tunnels up within ${upTimeoutMs / 1000} s: vpp-iked established ${String(st.ike_established)}, load-tester ${load.stats.established} (${load.stats.failed} failed)`);
    }
    await sleep(250);
  }
  const upS = (performance.now() - t0) / 1000;
  r.rssUpKb = procStat(dpid).rssKb;
  r.bringUp = {
    seconds: upS, oursUp: oursUp(ours), theirsUp: theirsUp(theirs), initiatorFailed: load.stats.failed, initiatorRetransmits: load.stats.retransmits,
    cpuMsPerTunnel: ((cpuUp ?? procStat(dpid).cpuMs) - cpu0) / o.tunnels,
    rssPerTunnelBytes: ((r.rssUpKb - r.rssStartKb) * 1024) / o.tunnels,
  };
  log(`${o.tunnels} tunnels up in ${upS.toFixed(1)} s; soaking for ${o.minutes} min`);

  // ---- soak
  const soakStart = performance.now();
  const soakMs = o.minutes * 60_000;
  let prev: { t: number; child: number; ike: number } | undefined;
  const sample = async (): Promise<Sample> => {
    const t = (performance.now() - soakStart) / 1000;
    const [st, list, swan, inVpp, snmp] = await Promise.all([daemonStats(daemon), listSas(daemon), init.listSas(lab), vppSet(vc), lab.exec('a', 'cat', ['/proc/net/snmp'])]);
    const tr = (st.transport ?? {}) as Record<string, number>;
    charonLog.update();
    const ps = procStat(dpid);
    const child = Number(st.child_rekeyed);
    const ike = Number(st.ike_rekeyed);
    const dt = prev ? t - prev.t : NaN;
    const s: Sample = {
      t,
      oursUp: oursUp(list),
      theirsUp: theirsUp(swan),
      oursIkeSas: list.length,
      oursChildSas: list.reduce((a, x) => a + x.child_sas.length, 0),
      theirsIkeSas: swan.length,
      theirsChildSas: swan.reduce((a, x) => a + x.children.length, 0),
      childRekeyed: child,
      ikeRekeyed: ike,
      childRekeysPerS: prev ? (child - prev.child) / dt : NaN,
      ikeRekeysPerS: prev ? (ike - prev.ike) / dt : NaN,
      retransmits: Number(st.retransmits_sent),
      theirRetransmits: charonLog.counts[0]!,
      childCollisions: Number(st.child_rekey_collisions),
      ikeCollisions: Number(st.ike_rekey_collisions),
      theirCollisions: charonLog.counts[1]!,
      ikeEstablished: Number(st.ike_established),
      ikeFailed: Number(st.ike_failed),
      childFailed: Number(st.child_failed),
      dataplaneErrors: Object.values((st.dataplane_errors_by_op ?? {}) as Record<string, number>).reduce((a, b) => a + b, 0),
      sendErrors: Number(tr.send_errors ?? 0),
      transportDrops: { shed: tr.shed ?? 0, duplicates: tr.duplicates ?? 0, invalid: tr.invalid ?? 0, not_ours: tr.not_ours ?? 0, no_interface: tr.no_interface ?? 0 },
      peerRcvbufErrors: udpRcvbufErrors(snmp.stdout),
      rssKb: ps.rssKb,
      cpuS: ps.cpuMs / 1000,
      vppSas: inVpp.size,
      listedSas: listedSet(list).size,
      vppRssKb: procStat(vpp.vppPid).rssKb,
    };
    prev = { t, child, ike };
    log(`t=${t.toFixed(0)} s: up ${s.oursUp}/${s.theirsUp}, ${fmt(s.childRekeysPerS, 1)} CHILD + ${fmt(s.ikeRekeysPerS, 1)} IKE rekeys/s, ` +
      `retransmits ${s.retransmits}/${s.theirRetransmits}, collisions ${s.childCollisions}+${s.ikeCollisions}/${s.theirCollisions}, ` +
      `RSS ${(s.rssKb / 1024).toFixed(1)} MB, VPP SAs ${s.vppSas} (listed ${s.listedSas})`);
    return s;
  };
  r.samples.push(await sample());
  for (;;) {
    const next = soakStart + r.samples.length * o.sampleS * 1000;
    const end = soakStart + soakMs;
    if (next >= end - 1000) {
      await sleep(Math.max(0, end - performance.now()));
      break;
    }
    await sleep(Math.max(0, next - performance.now()));
    r.samples.push(await sample());
  }
  r.samples.push(await sample());
  const last = r.samples[r.samples.length - 1]!;
  const first = r.samples[0]!;

  r.vppErrors = (await vpp.ctl('show', 'errors')).split('\n').filter((l) => /punt|udp|drop|ip4-local/i.test(l)).map((l) => l.trim());

  // ---- VPP holds exactly the current SAs: the peer frozen, vpp-iked's work in flight done
  process.kill(init.proc.pid, 'SIGSTOP');
  try {
    await sleep(2000);
    const set: SaSetCheck = { attempts: 0, stable: false, listed: 0, inVpp: 0, leaked: [], missing: [] };
    for (let i = 0; i < 10; i++) {
      set.attempts++;
      const l1 = listedSet(await listSas(daemon));
      const v = await vppSet(vc);
      const l2 = listedSet(await listSas(daemon));
      set.listed = l1.size;
      set.inVpp = v.size;
      set.leaked = minus(v, l1).sort();
      set.missing = minus(l1, v).sort();
      if (sameSet(l1, l2)) {
        set.stable = true;
        break;
      }
      await sleep(300);
    }
    r.saSet = set;
  } finally {
    process.kill(init.proc.pid, 'SIGCONT');
  }

  // ---- figures and checks
  const soakS = last.t;
  const warmT = soakS / 3;
  const warm = r.samples.find((s) => s.t >= warmT) ?? last;
  const after = r.samples.filter((s) => s.t >= warm.t);
  const toMin = (s: Sample): number => s.t / 60;
  const mbOf = (s: Sample): number => s.rssKb / 1024;
  r.rss = {
    startKb: r.rssStartKb,
    upKb: r.rssUpKb,
    warmKb: warm.rssKb,
    endKb: last.rssKb,
    slopeMbPerMin: slope(after.map(toMin), after.map(mbOf)),
    slopeMbPerMinAll: slope(r.samples.map(toMin), r.samples.map(mbOf)),
  };
  const child = last.childRekeyed - first.childRekeyed;
  const ike = last.ikeRekeyed - first.ikeRekeyed;
  r.rekeys = {
    child,
    ike,
    childPerS: child / soakS,
    ikePerS: ike / soakS,
    expectedChild: (o.tunnels * soakS) / o.childRekey,
    expectedIke: (o.tunnels * soakS) / o.ikeRekey,
  };
  const growthKb = last.rssKb - warm.rssKb;
  const allowedKb = Math.max(8 * 1024, warm.rssKb * 0.1);
  const set = r.saSet!;
  r.checks.push(
    { name: 'all tunnels up at the end (vpp-iked)', ok: last.oursUp === o.tunnels, detail: `${last.oursUp} of ${o.tunnels}; fewest in a sample ${Math.min(...r.samples.map((s) => s.oursUp))}` },
    { name: 'all tunnels up at the end (load-tester)', ok: last.theirsUp === o.tunnels, detail: `${last.theirsUp} of ${o.tunnels}; fewest in a sample ${Math.min(...r.samples.map((s) => s.theirsUp))}` },
    { name: 'no IKE SA negotiated anew', ok: last.ikeEstablished === o.tunnels && last.ikeFailed === 0, detail: `${last.ikeEstablished} IKE SAs established for ${o.tunnels} tunnels, ${last.ikeFailed} failed` },
    {
      name: 'VPP holds exactly the current SAs',
      ok: set.stable && set.leaked.length === 0 && set.missing.length === 0 && set.listed >= 2 * o.tunnels,
      detail: `${set.listed} SAs listed by vpp-iked, ${set.inVpp} of ours in VPP; leaked ${set.leaked.length}${set.leaked.length ? ` (${set.leaked.slice(0, 8).join(' ')})` : ''}, ` +
        `missing ${set.missing.length}${set.missing.length ? ` (${set.missing.slice(0, 8).join(' ')})` : ''}; ${set.stable ? 'list-sas unchanged across the dump' : 'list-sas never stable'} (${set.attempts} attempt${set.attempts === 1 ? '' : 's'})`,
    },
    {
      name: 'memory flat',
      ok: growthKb <= allowedKb,
      detail: `RSS ${(warm.rssKb / 1024).toFixed(1)} MB at ${warm.t.toFixed(0)} s, ${(last.rssKb / 1024).toFixed(1)} MB at the end (${growthKb >= 0 ? '+' : ''}${(growthKb / 1024).toFixed(1)} MB, at most +${(allowedKb / 1024).toFixed(1)}); ` +
        `slope ${fmt(r.rss.slopeMbPerMin, 2)} MB/min from there`,
    },
  );
  // A soak shorter than two rekey intervals (a bring-up measurement) cannot show the rate: no check then.
  if (o.minutes * 60 >= 2 * o.childRekey) {
    r.checks.push({ name: 'CHILD_SA rekeys at the configured rate', ok: child >= 0.8 * r.rekeys.expectedChild, detail: `${child} rekeys, ${fmt(r.rekeys.childPerS, 1)}/s; the lifetimes call for about ${r.rekeys.expectedChild.toFixed(0)}` });
  }
  if (o.minutes * 60 >= 2 * o.ikeRekey) {
    r.checks.push({ name: 'IKE SA rekeys at the configured rate', ok: ike >= 0.8 * r.rekeys.expectedIke, detail: `${ike} rekeys, ${fmt(r.rekeys.ikePerS, 1)}/s; the lifetimes call for about ${r.rekeys.expectedIke.toFixed(0)}` });
  }

  // ---- stop: vpp-iked deletes its SAs (stop_action = delete)
  await sleep(500);
  const peerDrops0 = udpRcvbufErrors((await lab.exec('a', 'cat', ['/proc/net/snmp'])).stdout);
  process.kill(dpid, 'SIGTERM');
  r.daemonExit = await Promise.race([daemon.proc.exited, sleep(30_000).then(() => undefined)]);
  r.vppSasAfterStop = (await vppSet(vc)).size;
  log(`vpp-iked stopped (${JSON.stringify(r.daemonExit)}); ${r.vppSasAfterStop} of our SAs left in VPP`);
  r.checks.push({
    name: 'vpp-iked stopped cleanly and removed its SAs from VPP (stop_action = delete)',
    ok: r.daemonExit?.code === 0 && r.vppSasAfterStop === 0,
    detail: `exit ${r.daemonExit ? (r.daemonExit.code ?? r.daemonExit.signal) : 'none within 30 s'}, ${r.vppSasAfterStop} of its SAs left in VPP`,
  });
  // Every peer took the Delete (also those with an exchange of ours in flight at the stop).
  const upAtPeer = async (): Promise<number> => (await init.listSas(lab)).filter((sa) => sa.state === 'ESTABLISHED' || sa.state === 'REKEYING').length;
  const peerDeadline = performance.now() + 10_000;
  let peerLeft = await upAtPeer();
  while (peerLeft > 0 && performance.now() < peerDeadline) {
    await sleep(500);
    peerLeft = await upAtPeer();
  }
  r.peerSasAfterStop = peerLeft;
  // the load-tester's peers share one socket: its kernel drops what a burst of Deletes overflows
  const peerStopDrops = udpRcvbufErrors((await lab.exec('a', 'cat', ['/proc/net/snmp'])).stdout) - peerDrops0;
  log(`${peerLeft} IKE SAs still up at the load-tester after vpp-iked's stop; its kernel dropped ${peerStopDrops} UDP datagrams meanwhile`);
  r.checks.push({
    name: "the peers deleted their IKE SAs on vpp-iked's stop",
    // a Delete the load-tester's own kernel dropped (its receive buffer, counted) was sent: that peer
    // alone would have had it
    ok: peerLeft === 0 || peerLeft <= peerStopDrops,
    detail: `${peerLeft} of ${o.tunnels} still up at the load-tester 10 s after the stop; its kernel dropped ${peerStopDrops} UDP datagrams (receive buffer full) during the stop`,
  });
}

// ------------------------------------------------------------------------------------------ report

function fmt(v: number, digits = 2): string {
  return Number.isFinite(v) ? v.toFixed(digits) : '-';
}

function table(rows: string[][]): string {
  const w = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r, ri) => {
    const line = r.map((c, i) => c.padStart(w[i]!)).join('  ');
    return ri === 0 ? `${line}\n${w.map((x) => '-'.repeat(x)).join('  ')}` : line;
  }).join('\n');
}

function report(r: Result): string {
  const out: string[] = [];
  out.push(`soak: ${r.tunnels} tunnels, ${r.minutes} min, CHILD_SA rekey ${r.childRekey} s, IKE SA rekey ${r.ikeRekey} s (both sides), real VPP, punt transport (punt_reader = ${String(r.args['punt-reader'] ?? 'thread')}), p2mp`);
  if (r.bringUp) {
    out.push(`bring-up (${r.pace > 0 ? `initiations ${r.pace} ms apart` : 'initiations as fast as the load-tester goes'}): ${fmt(r.bringUp.seconds, 1)} s, ` +
      `vpp-iked ${fmt(r.bringUp.cpuMsPerTunnel, 3)} CPU ms and ${fmt(r.bringUp.rssPerTunnelBytes / 1024, 1)} KB RSS per tunnel, ` +
      `load-tester retransmits ${r.bringUp.initiatorRetransmits}, failures ${r.bringUp.initiatorFailed}`);
  }
  const rows = [['t s', 'up ours', 'up theirs', 'CHILD rk/s', 'IKE rk/s', 'rexmit ours', 'rexmit theirs', 'coll CHILD', 'coll IKE', 'coll theirs', 'send err', 'peer drops', 'RSS MB', 'CPU s', 'VPP SAs', 'listed SAs', 'VPP RSS MB']];
  for (const s of r.samples) {
    rows.push([
      s.t.toFixed(0), String(s.oursUp), String(s.theirsUp), fmt(s.childRekeysPerS, 1), fmt(s.ikeRekeysPerS, 1), String(s.retransmits), String(s.theirRetransmits),
      String(s.childCollisions), String(s.ikeCollisions), String(s.theirCollisions), String(s.sendErrors), String(s.peerRcvbufErrors), fmt(s.rssKb / 1024, 1), fmt(s.cpuS, 1), String(s.vppSas), String(s.listedSas), fmt(s.vppRssKb / 1024, 0),
    ]);
  }
  if (r.samples.length > 0) out.push(table(rows));
  const last = r.samples[r.samples.length - 1];
  if (last) {
    out.push(`at the end: ${last.childFailed} CHILD_SA exchanges failed (retried), ${last.ikeFailed} IKE SAs failed, ${last.dataplaneErrors} dataplane errors, ` +
      `${last.sendErrors} IKE messages not sent to VPP, transport drops ${JSON.stringify(last.transportDrops)}, ${last.peerRcvbufErrors} UDP datagrams dropped by the peer's kernel`);
  }
  if (r.vppErrors && r.vppErrors.length > 0) out.push(`VPP's error counters (punt, UDP, drops):\n  ${r.vppErrors.join('\n  ')}`);
  if (r.rekeys) {
    out.push(`rekeys over the soak: ${r.rekeys.child} CHILD_SA (${fmt(r.rekeys.childPerS, 1)}/s), ${r.rekeys.ike} IKE SA (${fmt(r.rekeys.ikePerS, 1)}/s)`);
  }
  if (r.rss) {
    out.push(`vpp-iked RSS: ${fmt(r.rss.startKb / 1024, 1)} MB at start, ${fmt(r.rss.upKb / 1024, 1)} MB with all tunnels up, ${fmt(r.rss.warmKb / 1024, 1)} MB after a third of the soak, ` +
      `${fmt(r.rss.endKb / 1024, 1)} MB at the end; slope ${fmt(r.rss.slopeMbPerMin, 2)} MB/min over the last two thirds (${fmt(r.rss.slopeMbPerMinAll, 2)} over the whole soak)`);
  }
  for (const c of r.checks) out.push(`${c.ok ? 'ok  ' : 'FAIL'}  ${c.name}: ${c.detail}`);
  if (r.error) out.push(`error: ${r.error}`);
  return out.join('\n');
}

// ------------------------------------------------------------------------------------------ main

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      tunnels: { type: 'string', default: '1000' },
      minutes: { type: 'string', default: '10' },
      'child-rekey': { type: 'string', default: '10' },
      'ike-rekey': { type: 'string', default: '30' },
      sample: { type: 'string', default: '30' },
      pace: { type: 'string', default: '2' },
      qlen: { type: 'string', default: '256' },
      'punt-reader': { type: 'string', default: 'thread' },
      'cpu-prof': { type: 'string' },
      'log-level': { type: 'string', default: 'info' },
      'peer-log': { type: 'string', default: '0' },
      json: { type: 'string' },
      plugin: { type: 'string' },
      keep: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const num = (name: string, v: string, min: number, max: number, integer = true): number => {
    const n = Number(v);
    if (!Number.isFinite(n) || n < min || n > max || (integer && !Number.isInteger(n))) {
      console.error(`soak: --${name} must be ${integer ? 'an integer' : 'a number'} from ${min} to ${max}, not ${v}\n${USAGE}`);
      process.exit(2);
    }
    return n;
  };
  const tunnels = num('tunnels', values.tunnels, 1, 65000);
  const minutes = num('minutes', values.minutes, 0.25, 24 * 60, false);
  const childRekey = num('child-rekey', values['child-rekey'], 2, 86400);
  const ikeRekey = num('ike-rekey', values['ike-rekey'], 2, 86400);
  const sampleS = num('sample', values.sample, 1, 3600);
  const pace = num('pace', values.pace, 0, 1000);
  const qlen = num('qlen', values.qlen, 10, 1_000_000);
  if (values['punt-reader'] !== 'thread' && values['punt-reader'] !== 'event_loop') {
    console.error(`soak: --punt-reader must be thread or event_loop, not ${values['punt-reader']}\n${USAGE}`);
    process.exit(2);
  }
  const peerLog = num('peer-log', values['peer-log'], 0, 4);
  const inter = interopAvailable();
  if (!inter.available) {
    console.error(`soak: ${inter.reason}`);
    return 2;
  }
  const v = vppAvailable();
  if (!v.ok) {
    console.error(`soak: real VPP not available: ${v.reason}`);
    return 2;
  }
  if (!existsSync(SWANCTL_BIN)) {
    console.error(`soak: ${SWANCTL_BIN} is missing`);
    return 2;
  }
  let plugin: string;
  try {
    plugin = findPlugin(values.plugin);
  } catch (e) {
    console.error(`soak: ${(e as Error).message}`);
    return 2;
  }
  if (values.keep) process.env.KEEP_LAB = '1';
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(sig, () => {
      process.stderr.write(`soak: ${sig}, cleaning up\n`);
      void cleanupAll().finally(() => process.exit(130));
    });
  }
  const started = new Date();
  const r: Result = {
    started: started.toISOString(), args: values, tunnels, minutes, childRekey, ikeRekey, pace,
    bringUp: { seconds: NaN, oursUp: 0, theirsUp: 0, initiatorFailed: 0, initiatorRetransmits: 0, cpuMsPerTunnel: NaN, rssPerTunnelBytes: NaN },
    rssStartKb: 0, rssUpKb: 0, samples: [],
    rss: { startKb: 0, upKb: 0, warmKb: 0, endKb: 0, slopeMbPerMin: NaN, slopeMbPerMinAll: NaN },
    rekeys: { child: 0, ike: 0, childPerS: 0, ikePerS: 0, expectedChild: 0, expectedIke: 0 },
    checks: [], ok: false,
  };
  try {
    await run({ tunnels, minutes, childRekey, ikeRekey, sampleS, pace, qlen, puntReader: values['punt-reader'], ...(values['cpu-prof'] ? { cpuProf: values['cpu-prof'] } : {}), logLevel: values['log-level'], peerLog, plugin }, r);
  } catch (e) {
    r.error = e instanceof Error ? e.message : String(e);
  } finally {
    await cleanupAll();
  }
  r.ok = r.error === undefined && r.checks.length > 0 && r.checks.every((c) => c.ok);
  console.log(report(r));
  const jsonPath = resolve(values.json ?? join(ROOT, 'bench/results', `soak-${started.toISOString().replace(/[:.]/g, '-')}.json`));
  mkdirSync(dirname(jsonPath), { recursive: true });
  writeFileSync(jsonPath, JSON.stringify(r, null, 2) + '\n');
  console.log(`\nJSON: ${jsonPath}`);
  return r.ok ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    console.error(e instanceof Error ? e.stack : String(e));
    process.exit(1);
  },
);
