/**
 * vpp-iked against strongSwan's charon under a load of new IKE SAs, measured side by side in one run.
 *
 *   node_modules/.bin/node bench/vs-strongswan.ts [--n 1000,10000] [--proposals x25519,ecp256]
 *       [--responders charon,vpp-iked] [--initiator] [--initiator-n 10000] [--repeat 1]
 *       [--json FILE] [--cpu-prof DIR] [--heap-snapshot DIR] [--base DIR] [--workers 0,1] [--log-level info] [--recv-buffer BYTES]
 *       [--cookies] [--block-threshold N]
 *       [--node-flags FLAGS] [--malloc-arena-max N] [--daemon-env K=V] [--settle S] [--no-floor] [--timeout SECONDS] [--plugin PATH] [--keep]
 *
 * Needs root, iproute2 and strongSwan 5.9 (`bash .ci/setup-interop.sh` installs it) plus strongSwan's
 * load-tester plugin, which Debian does not package: `--plugin PATH`, else $LOAD_TESTER_SO, else
 * ../shared/interop/libstrongswan-load-tester.so next to the repository, else
 * /usr/lib/ipsec/plugins/libstrongswan-load-tester.so (how to build it: shared/interop/STRONGSWAN.md
 * §5c). The plugin is bind-mounted into the charons' own mount namespaces; the host's plugin folder
 * is left alone.
 *
 * What it does. Two network namespaces joined by a veth pair (test/interop/harness.ts):
 *   A 192.0.2.1: charon with the load-tester plugin (fake kernel) initiating N PSK IKE SAs, one
 *                CHILD_SA each, as fast as it can (`N` written to its control socket);
 *   B 192.0.2.2: the responder: first charon (load-tester fake kernel, no DoS protection, cookie and
 *                block thresholds raised, ikesa_table_size 65536), then vpp-iked (`dataplane = memory`,
 *                UDP transport, `log_level` as given, info by default; cookies and half-open limits
 *                off unless `--cookies` / `--block-threshold`), each started fresh.
 * For each N and proposal (aes256gcm16-prfsha256-x25519 / -ecp256), per responder: wall time until the
 * responder reports all N IKE SAs established (polled every 100 ms: swanctl --stats / vpp-ikectl
 * stats), IKE SAs/s, CPU ms per IKE SA (utime+stime of the responder from /proc/PID/stat, before and
 * after; and of its main thread alone, /proc/PID/task/PID/stat), RSS before/after and its slope per SA (again `--settle` seconds, default 10, after the last SA: "settled", the crypto threads stopped by then), UDP
 * receive-buffer drops in each namespace (/proc/net/snmp `Udp: RcvbufErrors`, before/after), the
 * initiator's retransmits and failures (its control stream: `*` per retransmit, `-` per failure),
 * and the ratios vpp-iked / charon of the same run. charon logs at level 0 (the load-tester recipe),
 * vpp-iked at `--log-level`. vpp-iked's RSS includes the memory dataplane's own records of every SA;
 * the CPU of a short run includes node's JIT warm-up (V8 compiles on its own threads).
 *
 * `--initiator`: vpp-iked initiates `--initiator-n` (default 10,000) tunnels to a charon responder,
 * one `start_action = start` connection each; reported: time from the daemon's start until all are
 * established (and from when its control socket first answered), CPU and RSS of vpp-iked.
 *
 * `--base DIR`: the vpp-iked of another checkout (e.g. main before a change) runs as a third
 * responder, `vpp-iked-base`, in the same run; the ratios vpp-iked / vpp-iked-base are printed too.
 *
 * `--cpu-prof DIR`: vpp-iked runs with `--cpu-prof` and writes one .cpuprofile per run into DIR
 * (bench/cpuprofile-top.ts summarises one); `--heap-snapshot DIR`: one heap snapshot per vpp-iked
 * responder run, taken once all its SAs are up. `--repeat K` runs every measurement K times, the
 * responders in reverse order on every other repeat, and adds each ratio's median and range; the
 * machine is shared, so compare the ratios of one run rather than absolute numbers across runs.
 *
 * After each charon run (x25519, ecp256) two floors are measured: the crypto floor of
 * bench/handshake-floor.ts in this process (the CPU time of the node:crypto calls one responder
 * handshake needs) and the datagram floor of bench/datagram-floor.ts in the lab (node:dgram's CPU for
 * the handshake's two datagrams in and two out, at charon's pace of that run), each and both as a ratio
 * to charon's CPU per IKE SA in the same run: how far a node:crypto + node:dgram daemon can go below
 * charon before any of its own code runs.
 *
 * vpp-iked runs as installed, from its compiled build (`npm run build`; made first when missing or
 * older than src/); the per-thread CPU line says which code ran.
 *
 * Output: a table on stdout and the JSON (`--json`, default bench/results/vs-strongswan-<time>.json).
 * Time: about 30 s for N = 1,000 (both proposals, both responders), about 3 min for the default
 * 1,000 and 10,000 with `--initiator`. Everything started is killed, and the namespaces deleted, on
 * exit, Ctrl-C or failure.
 */
import { parseArgs } from 'node:util';
import { spawnSync } from 'node:child_process';
import { pathToFileURL } from 'node:url';
import { existsSync, mkdirSync, readdirSync, statSync, writeFileSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { CHARON_BIN, createLab, LAB_ADDR, SWANCTL_BIN } from '../test/interop/harness.ts';
import type { Lab, LabProcess } from '../test/interop/harness.ts';
import { daemonCode, daemonStats, spawnDaemon, type DaemonProc } from './lab-daemon.ts';
import { CharonProc, findPlugin, pluginFolder, PSK, startLoad, type LoadStream } from '../test/helpers/load-tester.ts';
import { mainThreadCpuMs, procStat, rssByKind, threadCpuMs } from '../test/helpers/proc.ts';
import { sleep } from '../test/helpers/wait.ts';
import { runHandshakeFloorBench } from './handshake-floor.ts';
import { runDatagramFloor } from './datagram-floor.ts';

const ROOT = resolve(import.meta.dirname, '..');
const PROPOSALS: Record<string, string> = {
  x25519: 'aes256gcm16-prfsha256-x25519',
  ecp256: 'aes256gcm16-prfsha256-ecp256',
  modp2048: 'aes256gcm16-prfsha256-modp2048',
};
/** How long after the last IKE SA the responder's RSS is read again (idle: its garbage collected, its crypto threads stopped); `--settle`. */
let SETTLE_MS = 10_000;

const USAGE = `Usage: node_modules/.bin/node bench/vs-strongswan.ts [options]   (as root)
  --n LIST              IKE SAs per run, comma-separated (default 1000,10000)
  --proposals LIST      ${Object.keys(PROPOSALS).join(', ')} (default x25519,ecp256)
  --responders LIST     charon, vpp-iked (default both)
  --initiator           also vpp-iked initiating --initiator-n tunnels to charon
  --initiator-n N       default 10000
  --only-initiator      skip the responder runs
  --per-peer            vpp-iked's responder config has one connection per peer (its identity,
                        N of them in included files) before the shared one, as a hub configured
                        peer by peer; charon keeps the shared one
  --repeat K            run each measurement K times (default 1; responders in reverse order on every
                        other repeat; the ratios get their median and range)
  --log-level LEVEL     vpp-iked's log level (default info)
  --recv-buffer BYTES   vpp-iked's daemon.recv_buffer_size (default: the daemon's default; 0: the kernel's)
  --cookies             vpp-iked sends cookies as by default (cookie_threshold = 30); without it
                        cookies are off, as charon's DoS protection is in this bench
  --block-threshold N   vpp-iked's block_threshold (default 0, off: the load-tester's peers share
                        one address)
  --node-flags FLAGS    node options for vpp-iked (default "--max-semi-space-size=4", as in the systemd unit)
  --malloc-arena-max N  MALLOC_ARENA_MAX for vpp-iked (default 2, as in the systemd unit; 0: glibc's default)
  --daemon-env K=V      more environment for vpp-iked (repeatable), e.g. GLIBC_TUNABLES=...
  --settle SECONDS      when the "settled" RSS is read after the last IKE SA (default 10)
  --timeout SECONDS     per run (default 60 + N/100)
  --cpu-prof DIR        run vpp-iked with --cpu-prof, profiles into DIR
  --heap-snapshot DIR   a heap snapshot of vpp-iked (as responder) into DIR once all its IKE SAs are up
  --workers LIST        daemon.workers for vpp-iked, comma-separated: one run per value (e.g. 0,1
                        for the scaling from one core to two); default: the daemon's (auto)
  --base DIR            also measure the vpp-iked of another checkout in DIR (responder vpp-iked-base;
                        e.g. \`git archive main | tar -x -C DIR\` with node_modules linked), for before/after
  --no-floor            skip the floors measured after each charon run: crypto (bench/handshake-floor.ts:
                        the node:crypto calls of one responder handshake, CPU µs) and datagrams
                        (bench/datagram-floor.ts: node:dgram's CPU for a handshake's 4 datagrams at
                        charon's pace), as ratios to charon's CPU per IKE SA of that run
  --json FILE           where the JSON goes (default bench/results/vs-strongswan-<time>.json)
  --plugin PATH         libstrongswan-load-tester.so
  --keep                keep the lab folder (logs, configs)`;

// ---- small helpers ------------------------------------------------------------------------------

interface UdpCounters {
  rcvbufErrors: number;
  inErrors: number;
  inDatagrams: number;
}

async function udpCounters(lab: Lab, side: 'a' | 'b'): Promise<UdpCounters> {
  const r = await lab.exec(side, 'cat', ['/proc/net/snmp']);
  const lines = r.stdout.split('\n').filter((l) => l.startsWith('Udp:'));
  const names = (lines[0] ?? '').split(/\s+/).slice(1);
  const values = (lines[1] ?? '').split(/\s+/).slice(1).map(Number);
  const get = (n: string): number => values[names.indexOf(n)] ?? 0;
  return { rcvbufErrors: get('RcvbufErrors'), inErrors: get('InErrors'), inDatagrams: get('InDatagrams') };
}

// ---- vpp-iked -----------------------------------------------------------------------------------

interface DaemonOptions {
  logLevel: string;
  cpuProf: string | undefined;
  recvBuffer: number | undefined;
  /** `daemon` keys for vpp-iked (by default cookies and half-open limits off, as for charon) */
  dos: string;
  nodeFlags: string[];
  /** MALLOC_ARENA_MAX for vpp-iked (0: unset, glibc's default). */
  mallocArenaMax: number;
  /** More environment for vpp-iked (`--daemon-env K=V`, repeatable), e.g. GLIBC_TUNABLES. */
  env: Record<string, string>;
  heapSnapshot: string | undefined;
  /** Another checkout of vpp-iked (`--base DIR`), measured as the responder `vpp-iked-base`. */
  baseRoot: string | undefined;
  /** `daemon.workers` for this run (unset: the daemon's default). */
  workers?: string;
}

async function startDaemon(lab: Lab, dir: string, conf: string, o: DaemonOptions, limit: number, root = ROOT): Promise<DaemonProc> {
  const ctl = join(dir, 'ctl.sock');
  const config = `daemon {
  listen = ${LAB_ADDR.b.v4}
  control_socket = ${ctl}
  log_level = ${o.logLevel}
  dataplane = memory
  ike_sa_limit = ${limit}
  stop_action = keep${o.recvBuffer !== undefined ? `\n  recv_buffer_size = ${o.recvBuffer}` : ''}${o.workers !== undefined ? `\n  workers = ${o.workers}` : ''}
${o.dos}}
${conf}`;
  const flags = [
    ...o.nodeFlags,
    ...(o.cpuProf ? ['--cpu-prof', '--cpu-prof-dir', o.cpuProf] : []),
    ...(o.heapSnapshot ? ['--heapsnapshot-signal=SIGUSR2', `--diagnostic-dir=${o.heapSnapshot}`] : []),
  ];
  return spawnDaemon(lab, 'b', dir, ctl, config, flags, root, undefined, { ...(o.mallocArenaMax > 0 ? { MALLOC_ARENA_MAX: String(o.mallocArenaMax) } : {}), ...o.env });
}

/** `npm run build` in the checkout `root` unless its dist/ is current (checkouts without a build step run their sources). */
async function ensureBuilt(root: string): Promise<void> {
  if (!existsSync(join(root, 'bin/entry.js')) || !existsSync(join(root, 'tools/build.ts'))) return;
  const { entry } = (await import(pathToFileURL(join(root, 'bin/entry.js')).href)) as { entry(p: string): string };
  if (entry('main').endsWith('.js')) return;
  console.error(`vs-strongswan: building ${root} (npm run build)`);
  const r = spawnSync(process.execPath, [join(root, 'tools/build.ts')], { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) throw new Error(`npm run build failed in ${root}`);
}

/** Each checkout's build manifest (dist/BUILT) as the bench found it at its start. */
const builtAtStart = new Map<string, string>();

function manifestOf(root: string): string | undefined {
  const f = join(root, 'dist/BUILT');
  return existsSync(f) ? readFileSync(f, 'utf8') : undefined;
}

/**
 * Refuses to start a checkout's daemon whose code is not the one the bench started with (its src/
 * changed, or it was built again, during the bench): one table would mix two codes.
 */
async function assertStillBuilt(root: string): Promise<void> {
  if (!existsSync(join(root, 'bin/entry.js')) || !existsSync(join(root, 'tools/build.ts'))) return;
  const { entry } = (await import(pathToFileURL(join(root, 'bin/entry.js')).href)) as { entry(p: string): string };
  const stale = !entry('main').endsWith('.js');
  if (stale || manifestOf(root) !== builtAtStart.get(root)) {
    throw new Error(`${root}: ${stale ? 'src/ changed during the bench, so its build is stale' : 'it was built again during the bench'}; run it again without touching the checkout`);
  }
}

/** SIGUSR2 (--heapsnapshot-signal) and wait until the snapshot file stops growing. */
async function heapSnapshot(d: DaemonProc, dir: string): Promise<void> {
  const before = new Set(readdirSync(dir));
  process.kill(d.proc.pid, 'SIGUSR2');
  let size = -1;
  for (let i = 0; i < 600; i++) {
    await sleep(500);
    const f = readdirSync(dir).find((x) => !before.has(x) && x.endsWith('.heapsnapshot'));
    if (f === undefined) continue;
    const now = statSync(join(dir, f)).size;
    if (now === size && now > 0) return;
    size = now;
  }
}

/** IKE SAs established so far (the daemon's counter; none are deleted during a run). */
async function daemonEstablished(d: DaemonProc): Promise<number> {
  const s = await daemonStats(d);
  return Number(s.ike_established);
}

/**
 * vpp-iked's responder config: one connection for all the load-tester's peers (`*.strongswan.org`)
 * or, with `perPeer`, one per peer (its identity `c<N>-r1.strongswan.org`, N = 1..n, in included
 * files under `dir`) and the shared one after them for any other identity.
 */
function responderConf(proposal: string, perPeer?: { n: number; dir: string }): string {
  // a connection of the responder for peers with identity `remoteId`
  const peerConn = (name: string, remoteId: string, child: string): string => `${name} {
  local_addrs = ${LAB_ADDR.b.v4}
  proposals = ${proposal}
  unique = never
  local {
    auth = psk
    id = srv.strongswan.org
  }
  remote {
    auth = psk
    id = ${remoteId}
  }
  children {
    ${child} {
      esp_proposals = aes256gcm16
    }
  }
}`;
  let peers = '';
  if (perPeer) {
    mkdirSync(join(perPeer.dir, 'conns'), { recursive: true });
    for (let first = 1, f = 0; first <= perPeer.n; first += CONNS_PER_FILE, f++) {
      const out: string[] = [];
      for (let i = first; i < first + CONNS_PER_FILE && i <= perPeer.n; i++) out.push(peerConn(`peer${i}`, `c${i}-r1.strongswan.org`, 'net'));
      writeFileSync(join(perPeer.dir, 'conns', `${String(f).padStart(3, '0')}.conf`), out.join('\n') + '\n');
    }
    peers = 'include conns/*.conf\n';
  }
  return `connections {
${peers}${peerConn('load-test', '*.strongswan.org', 'load-test')}
}
secrets {
  ike-load-test {
    secret = ${PSK}
  }
}
`;
}

/**
 * The initiating daemon's connections and secret: one connection per tunnel, in included files of
 * CONNS_PER_FILE connections each (a config file may hold at most 4 MiB) written under `dir`.
 */
function initiatorConf(n: number, proposal: string, dir: string): string {
  mkdirSync(join(dir, 'conns'), { recursive: true });
  for (let first = 1, f = 0; first <= n; first += CONNS_PER_FILE, f++) {
    const out: string[] = [];
    for (let i = first; i < first + CONNS_PER_FILE && i <= n; i++) {
      out.push(`c${i} {
  local_addrs = ${LAB_ADDR.b.v4}
  remote_addrs = ${LAB_ADDR.a.v4}
  proposals = ${proposal}
  local {
    auth = psk
    id = c${i}-r1.strongswan.org
  }
  remote {
    auth = psk
    id = srv.strongswan.org
  }
  children {
    c${i} {
      esp_proposals = aes256gcm16
      start_action = start
    }
  }
}`);
    }
    writeFileSync(join(dir, 'conns', `${String(f).padStart(3, '0')}.conf`), out.join('\n') + '\n');
  }
  return ['connections {', '  include conns/*.conf', '}', 'secrets {', '  ike-load-test {', `    secret = ${PSK}`, '  }', '}', ''].join('\n');
}
const CONNS_PER_FILE = 5000;

// ---- one measurement ------------------------------------------------------------------------------

type Responder = 'charon' | 'vpp-iked' | 'vpp-iked-base';

interface RunResult {
  /** The responder, with `/w=N` when run with `--workers`. */
  responder: string;
  n: number;
  proposal: string;
  repeat: number;
  ok: boolean;
  error?: string;
  established: number;
  wallMs: number;
  saPerSec: number;
  cpuMs: number;
  cpuMsPerSa: number;
  /** of which on the main thread (vpp-iked: the event loop; the rest is worker and V8 helper threads) */
  mainCpuMsPerSa: number;
  /** CPU µs per IKE SA of the responder's threads, by thread name (`main`, worker threads, V8's and libuv's helpers). */
  threadCpuUsPerSa?: Record<string, number>;
  /** of which in the kernel (stime) */
  sysMsPerSa: number;
  rssBeforeKb: number;
  rssAfterKb: number;
  rssPerSaBytes: number;
  /** RSS after SETTLE_MS without new SAs (garbage collected by then), and its slope per SA */
  rssSettledKb: number;
  rssSettledPerSaBytes: number;
  rcvbufErrorsResponder: number;
  rcvbufErrorsInitiator: number;
  initiatorCpuMs: number;
  initiator: LoadStream;
  responderStats?: Record<string, unknown>;
  /** Settled RSS by kind of mapping (kB): file, heap (glibc's main arena), stack, anon (V8's pages, other arenas). */
  rssSettledByKind?: Record<string, number>;
  /** vpp-iked: the code it ran, `compiled` (dist/ of `npm run build`) or `typescript` (the sources). */
  code?: string;
  /**
   * CPU ms per IKE SA of the responder (all threads) over each quarter of the run's SAs, in order:
   * how much of the cost is warm-up (the first quarter) rather than the steady state (the last).
   * The CPU falls in the quarter in which it was spent and the SAs count in the one in which they
   * were established: with hundreds of IKE SAs half-open at a time (`peakHalfOpen`), the last
   * quarter of a small N looks cheap (its IKE_SA_INITs were answered in the quarter before).
   */
  cpuMsPerSaByQuarter?: number[];
  /** vpp-iked: the most half-open IKE SAs seen at once (the 100 ms polls) */
  peakHalfOpen?: number;
}

interface Ctx {
  lab: Lab;
  plugins: string;
  daemon: DaemonOptions;
  timeoutS: number | undefined;
  seq: number;
  /** vpp-iked's config has a connection per peer (--per-peer) */
  perPeer: boolean;
}

/**
 * CPU per SA over each quarter of `n` SAs from samples of (SAs established, CPU ms so far): each
 * quarter runs from the first sample at or past its start count to the first at or past its end.
 */
export function byQuarter(series: readonly { count: number; cpuMs: number }[], n: number): number[] {
  const at = (c: number) => series.find((s) => s.count >= c) ?? series[series.length - 1]!;
  const out: number[] = [];
  for (let q = 0; q < 4; q++) {
    const a = q === 0 ? series[0]! : at((n * q) / 4);
    const b = at((n * (q + 1)) / 4);
    // NaN (null in the JSON): no poll fell inside the quarter
    out.push(b.count > a.count ? Math.round(((b.cpuMs - a.cpuMs) / (b.count - a.count)) * 1000) / 1000 : NaN);
  }
  return out;
}

async function measureResponder(ctx: Ctx, responder: Responder, n: number, proposalName: string, repeat: number, workers?: string): Promise<RunResult> {
  const { lab } = ctx;
  const label = workers !== undefined ? `${responder}/w=${workers}` : responder;
  const proposal = PROPOSALS[proposalName]!;
  const base = join(lab.dir, `${String(++ctx.seq).padStart(2, '0')}-${responder}-${proposalName}-${n}`);
  const timeoutMs = (ctx.timeoutS ?? 60 + n / 100) * 1000;
  let rcharon: CharonProc | undefined;
  let daemon: DaemonProc | undefined;
  let init: CharonProc | undefined;
  let load: ReturnType<typeof startLoad> | undefined;
  const r: RunResult = {
    responder: label, n, proposal: proposalName, repeat, ok: false, established: 0, wallMs: 0, saPerSec: 0, cpuMs: 0, cpuMsPerSa: 0, mainCpuMsPerSa: 0, sysMsPerSa: 0,
    rssBeforeKb: 0, rssAfterKb: 0, rssPerSaBytes: 0, rssSettledKb: 0, rssSettledPerSaBytes: 0, rcvbufErrorsResponder: 0, rcvbufErrorsInitiator: 0, initiatorCpuMs: 0,
    initiator: { initiated: 0, established: 0, failed: 0, retransmits: 0 },
  };
  try {
    let pid: number;
    let established: () => Promise<number>;
    if (responder === 'charon') {
      rcharon = await CharonProc.start(lab, 'b', { role: 'responder', proposal, dir: join(base, 'responder') }, ctx.plugins);
      pid = rcharon.proc.pid;
      const c = rcharon;
      established = () => c.established(lab);
    } else {
      const root = responder === 'vpp-iked-base' ? ctx.daemon.baseRoot : ROOT;
      await assertStillBuilt(root ?? ROOT);
      const dir = join(base, 'responder');
      daemon = await startDaemon(lab, dir, responderConf(proposal, ctx.perPeer ? { n, dir } : undefined), { ...ctx.daemon, workers }, Math.max(60_000, n * 2), root);
      pid = daemon.proc.pid;
      const d = daemon;
      established = async () => {
        const s = await daemonStats(d);
        r.peakHalfOpen = Math.max(r.peakHalfOpen ?? 0, Number(s.half_open));
        return Number(s.ike_established);
      };
    }
    init = await CharonProc.start(lab, 'a', { role: 'initiator', proposal, dir: join(base, 'initiator') }, ctx.plugins);
    await sleep(500); // let both settle after start-up
    const [snmpB0, snmpA0] = await Promise.all([udpCounters(lab, 'b'), udpCounters(lab, 'a')]);
    const p0 = procStat(pid);
    const m0 = mainThreadCpuMs(pid);
    const th0 = threadCpuMs(pid);
    const i0 = procStat(init.proc.pid);
    const t0 = performance.now();
    load = startLoad(init.ldt, n, t0);
    let count = 0;
    let tDone: number | undefined;
    const series: { count: number; cpuMs: number }[] = [{ count: 0, cpuMs: p0.cpuMs }];
    while (performance.now() - t0 < timeoutMs) {
      count = await established();
      series.push({ count, cpuMs: procStat(pid).cpuMs });
      if (count >= n) {
        tDone = performance.now();
        break;
      }
      // the initiator gave up on some: no more will come
      if (load.stats.closedMs !== undefined && load.stats.failed > 0 && count + load.stats.failed >= n) break;
      await sleep(100);
    }
    const p1 = procStat(pid);
    const m1 = mainThreadCpuMs(pid);
    const th1 = threadCpuMs(pid);
    const i1 = procStat(init.proc.pid);
    // the initiator reports its last IKE SAs (and closes the stream) shortly after the responder has them
    await Promise.race([load.done, sleep(SETTLE_MS)]);
    await sleep(Math.max(0, SETTLE_MS - (performance.now() - (tDone ?? performance.now()))));
    const settled = procStat(pid);
    r.rssSettledByKind = rssByKind(pid);
    if (daemon && ctx.daemon.heapSnapshot) await heapSnapshot(daemon, ctx.daemon.heapSnapshot);
    const [snmpB1, snmpA1] = await Promise.all([udpCounters(lab, 'b'), udpCounters(lab, 'a')]);
    if (daemon) r.responderStats = await daemonStats(daemon);
    if (daemon) r.code = daemonCode(daemon);
    r.established = count;
    r.wallMs = (tDone ?? performance.now()) - t0;
    r.saPerSec = count / (r.wallMs / 1000);
    r.cpuMs = p1.cpuMs - p0.cpuMs;
    r.cpuMsPerSa = count > 0 ? r.cpuMs / count : 0;
    r.mainCpuMsPerSa = count > 0 ? (m1 - m0) / count : 0;
    if (count > 0) {
      r.threadCpuUsPerSa = {};
      for (const [name, ms] of th1) r.threadCpuUsPerSa[name] = Math.round(((ms - (th0.get(name) ?? 0)) * 1000) / count);
    }
    r.sysMsPerSa = count > 0 ? (p1.sysMs - p0.sysMs) / count : 0;
    if (tDone !== undefined) r.cpuMsPerSaByQuarter = byQuarter(series, n);
    r.rssBeforeKb = p0.rssKb;
    r.rssAfterKb = p1.rssKb;
    r.rssPerSaBytes = count > 0 ? ((p1.rssKb - p0.rssKb) * 1024) / count : 0;
    r.rssSettledKb = settled.rssKb;
    r.rssSettledPerSaBytes = count > 0 ? ((settled.rssKb - p0.rssKb) * 1024) / count : 0;
    r.rcvbufErrorsResponder = snmpB1.rcvbufErrors - snmpB0.rcvbufErrors;
    r.rcvbufErrorsInitiator = snmpA1.rcvbufErrors - snmpA0.rcvbufErrors;
    r.initiatorCpuMs = i1.cpuMs - i0.cpuMs;
    r.initiator = { ...load.stats };
    r.ok = tDone !== undefined;
    if (!r.ok) r.error = `${count} of ${n} established within ${timeoutMs / 1000} s`;
  } catch (e) {
    r.error = e instanceof Error ? e.message : String(e);
  } finally {
    load?.abort();
    await init?.stop();
    await rcharon?.stop();
    // SIGTERM: with stop_action = keep the daemon exits at once (and writes its CPU profile)
    await daemon?.proc.kill('SIGTERM', 20_000);
  }
  return r;
}

interface InitiatorResult {
  n: number;
  proposal: string;
  ok: boolean;
  error?: string;
  established: number;
  /** from the daemon's spawn until all established */
  wallMs: number;
  /** from when the control socket first answered (configuration loaded) until all established */
  wallFromReadyMs: number;
  readyMs: number;
  cpuMs: number;
  cpuMsPerSa: number;
  /** when the configuration was loaded (the control socket first answered) */
  rssReadyKb: number;
  rssAfterKb: number;
  /** `--settle` seconds after the last tunnel came up */
  rssSettledKb: number;
  rssSettledByKind?: Record<string, number>;
  rcvbufErrorsDaemon: number;
  rcvbufErrorsCharon: number;
  charonCpuMs: number;
  daemonStats?: Record<string, unknown>;
}

async function measureInitiator(ctx: Ctx, n: number, proposalName: string): Promise<InitiatorResult> {
  const { lab } = ctx;
  const proposal = PROPOSALS[proposalName]!;
  const base = join(lab.dir, `${String(++ctx.seq).padStart(2, '0')}-initiator-${proposalName}-${n}`);
  const timeoutMs = (ctx.timeoutS ?? 60 + n / 100) * 1000;
  let responder: CharonProc | undefined;
  let daemon: DaemonProc | undefined;
  const r: InitiatorResult = {
    n, proposal: proposalName, ok: false, established: 0, wallMs: 0, wallFromReadyMs: 0, readyMs: 0, cpuMs: 0, cpuMsPerSa: 0,
    rssReadyKb: 0, rssAfterKb: 0, rssSettledKb: 0, rcvbufErrorsDaemon: 0, rcvbufErrorsCharon: 0, charonCpuMs: 0,
  };
  try {
    // charon answers as the load-tester's responder (its own peer config and PSK, fake kernel)
    responder = await CharonProc.start(
      lab,
      'a',
      { role: 'responder', proposal, dir: join(base, 'charon'), initiatorAddr: LAB_ADDR.b.v4, responderAddr: LAB_ADDR.a.v4 },
      ctx.plugins,
    );
    const [snmpB0, snmpA0] = await Promise.all([udpCounters(lab, 'b'), udpCounters(lab, 'a')]);
    const c0 = procStat(responder.proc.pid);
    daemon = await startDaemon(lab, join(base, 'vpp-iked'), initiatorConf(n, proposal, join(base, 'vpp-iked')), ctx.daemon, Math.max(60_000, n * 2));
    const tReady = performance.now();
    r.readyMs = tReady - daemon.startedAt;
    r.rssReadyKb = procStat(daemon.proc.pid).rssKb;
    let count = 0;
    let tDone: number | undefined;
    while (performance.now() - daemon.startedAt < timeoutMs) {
      count = await daemonEstablished(daemon);
      if (count >= n) {
        tDone = performance.now();
        break;
      }
      await sleep(100);
    }
    const p1 = procStat(daemon.proc.pid);
    const c1 = procStat(responder.proc.pid);
    const [snmpB1, snmpA1] = await Promise.all([udpCounters(lab, 'b'), udpCounters(lab, 'a')]);
    r.daemonStats = await daemonStats(daemon);
    r.established = count;
    const end = tDone ?? performance.now();
    r.wallMs = end - daemon.startedAt;
    r.wallFromReadyMs = end - tReady;
    r.cpuMs = p1.cpuMs;
    r.cpuMsPerSa = count > 0 ? p1.cpuMs / count : 0;
    r.rssAfterKb = p1.rssKb;
    if (tDone !== undefined) {
      await sleep(SETTLE_MS);
      r.rssSettledKb = procStat(daemon.proc.pid).rssKb;
      r.rssSettledByKind = rssByKind(daemon.proc.pid);
    }
    r.rcvbufErrorsDaemon = snmpB1.rcvbufErrors - snmpB0.rcvbufErrors;
    r.rcvbufErrorsCharon = snmpA1.rcvbufErrors - snmpA0.rcvbufErrors;
    r.charonCpuMs = c1.cpuMs - c0.cpuMs;
    r.ok = tDone !== undefined;
    if (!r.ok) r.error = `${count} of ${n} established within ${timeoutMs / 1000} s`;
  } catch (e) {
    r.error = e instanceof Error ? e.message : String(e);
  } finally {
    await daemon?.proc.kill('SIGTERM', 20_000);
    await responder?.stop();
  }
  return r;
}

// ---- report -----------------------------------------------------------------------------------

function fmt(v: number, digits = 2): string {
  return Number.isFinite(v) ? v.toFixed(digits) : '-';
}

function table(rows: string[][]): string {
  const w = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r, ri) => {
    const line = r.map((c, i) => (i < 3 ? c.padEnd(w[i]!) : c.padStart(w[i]!))).join('  ');
    return ri === 0 ? `${line}\n${w.map((x) => '-'.repeat(x)).join('  ')}` : line;
  }).join('\n');
}

/** The crypto floor (bench/handshake-floor.ts) measured right after a charon run, as a ratio to its CPU per IKE SA. */
interface FloorResult {
  proposal: string;
  n: number;
  repeat: number;
  /** CPU µs of the node:crypto calls of one responder handshake (this process's thread). */
  floorCpuUs: number;
  floorWallUs: number;
  charonCpuMsPerSa: number;
  floorVsCharon: number;
  /** bench/datagram-floor.ts: handshakes run, at this many per second (charon's pace in that run) */
  dgramHandshakes: number;
  dgramRate: number;
  /** node:dgram's CPU µs for a handshake's 2 datagrams in and 2 out (NaN when the run failed) */
  dgramCpuUs: number;
  dgramSysUs: number;
  /** requests the driver sent again (each adds datagrams to the server's CPU: the figure is high then) */
  dgramRetransmits: number;
  dgramError?: string;
  /** (crypto floor + datagram floor) / charon's CPU per IKE SA */
  nodeFloorVsCharon: number;
}

function report(results: RunResult[], inits: InitiatorResult[], floors: FloorResult[] = []): string {
  const out: string[] = [];
  const head = ['responder', 'proposal', 'N', 'ok', 'wall s', 'SAs/s', 'CPU ms/SA', 'main thread', 'of it sys', 'RSS MB before', 'RSS MB after', 'B/SA', 'settled B/SA', 'rcvbuf drops', 'init rexmit', 'init fail'];
  const rows = [head];
  for (const r of results) {
    rows.push([
      r.responder, r.proposal, String(r.n), r.ok ? 'yes' : 'NO', fmt(r.wallMs / 1000), fmt(r.saPerSec, 0), fmt(r.cpuMsPerSa, 3), fmt(r.mainCpuMsPerSa, 3), fmt(r.sysMsPerSa, 3),
      fmt(r.rssBeforeKb / 1024, 1), fmt(r.rssAfterKb / 1024, 1), fmt(r.rssPerSaBytes, 0), fmt(r.rssSettledPerSaBytes, 0), String(r.rcvbufErrorsResponder),
      String(r.initiator.retransmits), String(r.initiator.failed),
    ]);
  }
  out.push(table(rows));
  const threads = results.filter((r) => r.threadCpuUsPerSa);
  if (threads.length > 0) {
    out.push('', 'CPU µs per IKE SA by thread (threads of the same name summed):');
    for (const r of threads) {
      const parts = Object.entries(r.threadCpuUsPerSa ?? {}).filter(([, us]) => us > 0).sort((a, b) => b[1] - a[1]).map(([name, us]) => `${name} ${us}`);
      out.push(`  ${r.responder} ${r.proposal} N=${r.n}#${r.repeat}${r.code ? ` (${r.code})` : ''}: ${parts.join(', ')}`);
    }
    out.push('', 'settled RSS MB by mapping (file: binary and libraries; heap: glibc main arena; anon: V8 pages, other arenas):');
    for (const r of threads) {
      const k = r.rssSettledByKind ?? {};
      out.push(`  ${r.responder} ${r.proposal} N=${r.n}#${r.repeat}: ${Object.entries(k).map(([name, kb]) => `${name} ${(kb / 1024).toFixed(1)}`).join(', ')}`);
    }
  }
  const quarters = results.filter((r) => r.cpuMsPerSaByQuarter);
  if (quarters.length > 0) {
    out.push('', 'CPU ms per IKE SA over each quarter of the SAs, in order (warm-up first):');
    for (const r of quarters) {
      const ho = r.peakHalfOpen !== undefined ? ` (half-open IKE SAs at most ${r.peakHalfOpen})` : '';
      out.push(`  ${r.responder} ${r.proposal} N=${r.n}#${r.repeat}: ${r.cpuMsPerSaByQuarter!.map((x) => fmt(x, 3)).join(' ')}${ho}`);
    }
  }
  // ratios vpp-iked / charon for each (proposal, N, repeat) measured in this run
  const ratioRows = [['proposal', 'N', 'rep', 'wall', 'SAs/s', 'CPU/SA', 'RSS/SA', 'settled RSS/SA']];
  const ratios = (num: string, den: string): void => {
    const rows = ratioRows.slice(0, 1);
    for (const v of results.filter((x) => x.responder === num)) {
      const c = results.find((x) => x.responder === den && x.n === v.n && x.proposal === v.proposal && x.repeat === v.repeat);
      if (!c) continue;
      rows.push([v.proposal, String(v.n), String(v.repeat), fmt(v.wallMs / c.wallMs), fmt(v.saPerSec / c.saPerSec), fmt(v.cpuMsPerSa / c.cpuMsPerSa), fmt(v.rssPerSaBytes / c.rssPerSaBytes), fmt(v.rssSettledPerSaBytes / c.rssSettledPerSaBytes)]);
    }
    // with repeats: the median of each (proposal, N) and its range
    const groups = new Map<string, string[][]>();
    for (const r of rows.slice(1)) {
      const key = `${r[0]}|${r[1]}`;
      const g = groups.get(key);
      if (g) g.push(r);
      else groups.set(key, [r]);
    }
    for (const g of groups.values()) {
      if (g.length < 2) continue;
      const col = (i: number): string => {
        const v = g.map((r) => Number(r[i])).filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
        if (v.length === 0) return '-';
        const med = v.length % 2 ? v[(v.length - 1) / 2]! : (v[v.length / 2 - 1]! + v[v.length / 2]!) / 2;
        return `${fmt(med)} (${fmt(v[0]!)}-${fmt(v[v.length - 1]!)})`;
      };
      rows.push([g[0]![0]!, g[0]![1]!, `median of ${g.length}`, col(3), col(4), col(5), col(6), col(7)]);
    }
    if (rows.length > 1) out.push('', `ratios ${num} / ${den} (same run):`, table(rows));
  };
  const labels = [...new Set(results.map((x) => x.responder))];
  for (const l of labels) if (l !== 'charon') ratios(l, 'charon');
  if (labels.includes('vpp-iked-base')) for (const l of labels) if (l.startsWith('vpp-iked') && l !== 'vpp-iked-base') ratios(l, 'vpp-iked-base');
  const w0 = labels.find((l) => l === 'vpp-iked/w=0');
  if (w0) for (const l of labels) if (l.startsWith('vpp-iked/w=') && l !== w0) ratios(l, w0);
  for (const r of inits) {
    out.push(
      '',
      `vpp-iked initiating ${r.n} tunnels (${r.proposal}) to charon: ${r.ok ? 'all up' : `NOT all up (${r.error ?? ''})`}, ` +
        `${fmt(r.wallMs / 1000)} s from start (${fmt(r.readyMs / 1000)} s to load the config, ${fmt(r.wallFromReadyMs / 1000)} s after), ` +
        `${fmt(r.cpuMsPerSa, 3)} CPU ms/SA (start-up included), RSS ${fmt(r.rssReadyKb / 1024, 1)} MB with the config loaded, ` +
        `${fmt(r.rssAfterKb / 1024, 1)} MB when all were up, ${fmt(r.rssSettledKb / 1024, 1)} MB ${SETTLE_MS / 1000} s later ` +
        `(${Object.entries(r.rssSettledByKind ?? {}).map(([k, v]) => `${k} ${fmt(v / 1024, 1)}`).join(', ')}), ` +
        `rcvbuf drops ${r.rcvbufErrorsDaemon} (daemon) / ${r.rcvbufErrorsCharon} (charon), charon ${fmt(r.charonCpuMs / Math.max(1, r.established), 3)} CPU ms/SA`,
    );
  }
  if (floors.length > 0) {
    const rows = [['proposal', 'N', 'rep', 'crypto µs', 'datagrams µs (sys)', 'charon CPU µs/SA', 'crypto / charon', 'crypto + datagrams / charon']];
    for (const f of floors) {
      const dgram = f.dgramError ? 'failed' : `${fmt(f.dgramCpuUs, 0)} (${fmt(f.dgramSysUs, 0)})${f.dgramRetransmits > 0 ? ` ${f.dgramRetransmits} resent` : ''}`;
      rows.push([f.proposal, String(f.n), String(f.repeat), fmt(f.floorCpuUs, 0), dgram, fmt(f.charonCpuMsPerSa * 1000, 0), fmt(f.floorVsCharon), f.dgramError ? '-' : fmt(f.nodeFloorVsCharon)]);
    }
    out.push(
      '',
      'floors of one responder handshake in node, after each charon run: crypto (bench/handshake-floor.ts, the node:crypto calls, CPU) and',
      "datagrams (bench/datagram-floor.ts: node:dgram receiving 2 and sending 2 datagrams of a handshake's sizes in the lab, at charon's pace):",
      table(rows),
    );
  }
  for (const f of floors) if (f.dgramError) out.push(`error: datagram floor after charon ${f.proposal} N=${f.n}: ${f.dgramError}`);
  for (const r of [...results, ...inits]) if (r.error) out.push(`error: ${'responder' in r ? `${r.responder} ` : 'initiator '}${r.proposal} N=${r.n}: ${r.error.split('\n')[0]}`);
  return out.join('\n');
}

// ---- main -------------------------------------------------------------------------------------

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      n: { type: 'string', default: '1000,10000' },
      proposals: { type: 'string', default: 'x25519,ecp256' },
      responders: { type: 'string', default: 'charon,vpp-iked' },
      initiator: { type: 'boolean', default: false },
      'initiator-n': { type: 'string', default: '10000' },
      'only-initiator': { type: 'boolean', default: false },
      'per-peer': { type: 'boolean', default: false },
      repeat: { type: 'string', default: '1' },
      'log-level': { type: 'string', default: 'info' },
      'recv-buffer': { type: 'string' },
      cookies: { type: 'boolean', default: false },
      'block-threshold': { type: 'string', default: '0' },
      // as the systemd unit runs the daemon (its NODE_OPTIONS)
      'node-flags': { type: 'string', default: '--max-semi-space-size=4' },
      'malloc-arena-max': { type: 'string', default: '2' },
      'daemon-env': { type: 'string', multiple: true, default: [] },
      settle: { type: 'string', default: '10' },
      timeout: { type: 'string' },
      'cpu-prof': { type: 'string' },
      'heap-snapshot': { type: 'string' },
      base: { type: 'string' },
      workers: { type: 'string' },
      json: { type: 'string' },
      plugin: { type: 'string' },
      keep: { type: 'boolean', default: false },
      'no-floor': { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) {
    console.error('vs-strongswan: needs root (network namespaces, charon on port 500)');
    return 2;
  }
  for (const bin of [CHARON_BIN, SWANCTL_BIN]) {
    if (!existsSync(bin)) {
      console.error(`vs-strongswan: ${bin} is missing; install strongSwan with: bash .ci/setup-interop.sh`);
      return 2;
    }
  }
  const ns = values.n.split(',').map((x) => Number(x.trim()));
  const proposals = values.proposals.split(',').map((x) => x.trim());
  const responders = values.responders.split(',').map((x) => x.trim());
  const repeat = Number(values.repeat);
  for (const p of proposals) if (!(p in PROPOSALS)) throw new Error(`unknown proposal ${p} (one of ${Object.keys(PROPOSALS).join(', ')})`);
  const baseRoot = values.base !== undefined ? resolve(values.base) : undefined;
  if (baseRoot !== undefined) {
    if (!existsSync(join(baseRoot, 'bin/vpp-iked.js'))) throw new Error(`--base: no bin/vpp-iked.js in ${baseRoot}`);
    if (!responders.includes('vpp-iked-base')) responders.push('vpp-iked-base');
  }
  for (const r of responders) {
    if (r !== 'charon' && r !== 'vpp-iked' && r !== 'vpp-iked-base') throw new Error(`unknown responder ${r}`);
    if (r === 'vpp-iked-base' && baseRoot === undefined) throw new Error('responder vpp-iked-base needs --base DIR');
  }
  if (ns.some((x) => !Number.isInteger(x) || x < 1)) throw new Error(`--n: positive integers, not ${values.n}`);
  SETTLE_MS = Number(values.settle) * 1000;
  if (!Number.isFinite(SETTLE_MS) || SETTLE_MS < 0) throw new Error(`--settle: seconds, not ${values.settle}`);
  // vpp-iked runs as installed: the compiled build, made here when missing or older than src/
  for (const root of baseRoot !== undefined ? [ROOT, baseRoot] : [ROOT]) {
    await ensureBuilt(root);
    const m = manifestOf(root);
    if (m !== undefined) builtAtStart.set(root, m);
  }
  const loadTester = findPlugin(values.plugin);
  const cpuProf = values['cpu-prof'] !== undefined ? resolve(values['cpu-prof']) : undefined;
  if (cpuProf) mkdirSync(cpuProf, { recursive: true });
  if (values['heap-snapshot'] !== undefined) mkdirSync(resolve(values['heap-snapshot']), { recursive: true });
  if (values.keep) process.env.KEEP_LAB = '1';

  // with --workers, vpp-iked runs once per value (the base checkout with its default)
  const workersList = values.workers !== undefined ? values.workers.split(',').map((x) => x.trim()) : undefined;
  const runs: [Responder, string | undefined][] = [];
  for (const r of responders as Responder[]) {
    if (r === 'vpp-iked' && workersList) for (const w of workersList) runs.push([r, w]);
    else runs.push([r, undefined]);
  }
  const lab = await createLab({ tag: 'vs-strongswan' });
  // Ctrl-C / SIGTERM: the harness's exit hook kills the lab's processes and deletes the namespaces
  const onSignal = (): void => process.exit(130);
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('SIGHUP', onSignal);
  const results: RunResult[] = [];
  const inits: InitiatorResult[] = [];
  const floors: FloorResult[] = [];
  const started = new Date();
  try {
    const ctx: Ctx = {
      lab,
      plugins: pluginFolder(lab.dir, loadTester),
      daemon: {
        logLevel: values['log-level'],
        cpuProf,
        recvBuffer: values['recv-buffer'] !== undefined ? Number(values['recv-buffer']) : undefined,
        dos: `  cookie_threshold = ${values.cookies ? 30 : 0}\n  block_threshold = ${Number(values['block-threshold'])}\n`,
        nodeFlags: values['node-flags'].split(/\s+/).filter((x) => x !== ''),
        mallocArenaMax: Number(values['malloc-arena-max']),
        env: Object.fromEntries(values['daemon-env'].map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)])),
        heapSnapshot: values['heap-snapshot'] !== undefined ? resolve(values['heap-snapshot']) : undefined,
        baseRoot,
      },
      timeoutS: values.timeout !== undefined ? Number(values.timeout) : undefined,
      seq: 0,
      perPeer: values['per-peer'],
    };
    if (!values['only-initiator']) {
      for (const n of ns) {
        for (const p of proposals) {
          for (let k = 1; k <= repeat; k++) {
            // every other repeat in reverse order, so that no responder always runs first
            for (const [resp, w] of k % 2 === 1 ? runs : [...runs].reverse()) {
              const r = await measureResponder(ctx, resp, n, p, k, w);
              results.push(r);
              console.error(`${r.responder} ${p} N=${n}#${k}: ${r.ok ? 'ok' : 'FAILED'} ${fmt(r.wallMs / 1000)} s, ${fmt(r.cpuMsPerSa, 3)} CPU ms/SA, ` +
                `${r.rcvbufErrorsResponder} drops, ${r.initiator.retransmits} retransmits${r.error ? `: ${r.error.split('\n')[0]}` : ''}`);
              if (resp === 'charon' && r.ok && !values['no-floor'] && (p === 'x25519' || p === 'ecp256')) {
                const f = await runHandshakeFloorBench(1000);
                const cpuUs = f[`${p}_handshake_cpu_us`]!;
                const floor: FloorResult = {
                  proposal: p, n, repeat: k, floorCpuUs: cpuUs, floorWallUs: f[`${p}_handshake_us`]!, charonCpuMsPerSa: r.cpuMsPerSa, floorVsCharon: cpuUs / 1000 / r.cpuMsPerSa,
                  dgramHandshakes: Math.min(n, 5000), dgramRate: Math.max(100, Math.round(r.saPerSec) || 0), dgramCpuUs: NaN, dgramSysUs: NaN, dgramRetransmits: 0, nodeFloorVsCharon: NaN,
                };
                try {
                  const d = await runDatagramFloor(lab, floor.dgramHandshakes, 64, floor.dgramRate, p === 'ecp256' ? 64 : 32);
                  Object.assign(floor, { dgramCpuUs: d.cpuUs, dgramSysUs: d.sysUs, dgramRetransmits: d.retransmits, nodeFloorVsCharon: (cpuUs + d.cpuUs) / 1000 / r.cpuMsPerSa });
                } catch (e) {
                  floor.dgramError = e instanceof Error ? e.message.split('\n')[0] : String(e);
                }
                floors.push(floor);
                console.error(`crypto floor ${p}: ${fmt(cpuUs, 0)} CPU µs per handshake = ${fmt(cpuUs / 1000 / r.cpuMsPerSa)} × charon's CPU/SA in this run; ` +
                  (floor.dgramError ? `datagram floor FAILED: ${floor.dgramError}` : `datagram floor ${fmt(floor.dgramCpuUs, 0)} µs (${floor.dgramRetransmits} datagrams sent again); both ${fmt(floor.nodeFloorVsCharon)} ×`));
              }
            }
          }
        }
      }
    }
    if (values.initiator || values['only-initiator']) {
      const r = await measureInitiator(ctx, Number(values['initiator-n']), proposals[0]!);
      inits.push(r);
      console.error(`vpp-iked initiator N=${r.n}: ${r.ok ? 'ok' : 'FAILED'} ${fmt(r.wallMs / 1000)} s${r.error ? `: ${r.error.split('\n')[0]}` : ''}`);
    }
  } finally {
    await lab.destroy();
  }
  console.log(report(results, inits, floors));
  const jsonPath = resolve(values.json ?? join(ROOT, 'bench/results', `vs-strongswan-${started.toISOString().replace(/[:.]/g, '-')}.json`));
  mkdirSync(dirname(jsonPath), { recursive: true });
  writeFileSync(jsonPath, JSON.stringify({ started: started.toISOString(), args: values, loadTester, results, initiator: inits, floor: floors }, null, 2) + '\n');
  console.log(`\nJSON: ${jsonPath}`);
  return [...results, ...inits].every((r) => r.ok) ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    console.error(e instanceof Error ? e.stack : String(e));
    process.exit(1);
  },
);
