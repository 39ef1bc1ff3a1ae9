/**
 * Scale of the VPP back end against the real VPP: N CHILD_SAs (default 50,000) programmed through
 * VppDataplane.install() into FD.io VPP 26.10 in p2mp mode and in policy mode, then VPP killed and
 * started again and the back end's resync timed until all N are back in VPP. The same N programmed
 * into the VPP emulator (a separate process, as in bench/vpp-program.ts) is the baseline: the
 * figures are given as ratios real / emulator.
 *
 * Per mode, each in a fresh lab (test/helpers/real-vpp.ts: VPP in a network namespace, its host
 * interface on a veth, loop0):
 * - program: N tunnels, 256 installs at a time, client window 512 (the back end pipelines the API
 *   calls of one install too); tunnels/s and API messages/s;
 * - VPP memory: `show memory main-heap` (bytes used of the main heap) and VPP's RSS (/proc) before
 *   and after, per tunnel; this process's RSS and JS heap (after a GC) before and after, per tunnel;
 * - replay: VPP killed (SIGKILL), started again, its interfaces re-created (as a gateway's startup
 *   config does); timed from VPP answering again (its API accepting our client or its CLI,
 *   whichever is first) until (a) the back end's resync has
 *   programmed every CHILD_SA again (the first replayed() call comes after the whole replay),
 *   (b) the last replayed() batch has arrived, (c) a dump of VPP's SAD holds all 2 × N SAs; also
 *   when the client reconnected and when the replay started programming (after the snapshot of
 *   what VPP holds, the stray removal and the wait for the interfaces it needs).
 *   The bench runs the back end with replayIntervalMs 1 and replayBatch 1000 (the defaults, 1000 ms
 *   and 200, pace the engine's rekeys and would dominate (b)), reconnect backoff 20–200 ms.
 *
 * Tunnel i: 192.0.2.2 ↔ 100.(64 + i / 65536).x.y (distinct peers), SPIs 0x10000000 + i (in) and
 * 0x20000000 + i (out), AES-GCM-16/256 with random keys, 172.16.0.0/16 ↔ (10 + i / 65536).x.y.0/24.
 * p2mp: all on the multipoint interface ipsec100, one protection and one route per peer. policy:
 * one SPD on the host interface, PROTECT entries in both directions per tunnel.
 *
 * Needs: root, iproute2, VPP (../shared/vpp/run-vpp.sh or VPP_PREFIX, see test/helpers/real-vpp.ts),
 * libunwind8. VPP's main heap is raised to VPP_HEAP (default 4G here; 256M does not hold 50,000), its
 * stats segment by VPP_EXTRA_CONF (default `statseg { size 512M }`: the lab's 32M aborts VPP below
 * 10,000 p2p interfaces).
 * Takes about 4 minutes at 50,000 on 2 cores (4.5 with --p2p 10000): per mode ~20–35 s programming
 * and ~35–45 s replay in the real VPP, ~10 + 15 s in the emulator, plus the SAD dumps that verify the
 * replay (the emulator's takes ~35 s in p2mp mode). Memory: VPP ~0.9 GB RSS, the emulator ~0.5 GB,
 * this process ~1.3 GB.
 *
 * Run: node bench/vpp-scale.ts [--n 50000] [--modes p2mp,policy] [--p2p 10000] [--no-emulator] [--concurrency 256]
 *   --concurrency: installs under way at once while programming (the replay after a restart starts
 *   all of them at once, bounded only by the client's window).
 *   --p2p N also runs p2p mode with N tunnels (VPP allows at most 15,384 p2p interfaces from instance 1000).
 * Prints a table, then the JSON of all figures on the last line. Every lab (VPP, namespaces, folder)
 * and emulator process is removed on exit, also on an error or Ctrl-C.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { VppDataplane, isOurId } from '../src/dataplane/vpp/index.ts';
import type { ChildInstall, SaParams, VppMode } from '../src/dataplane/types.ts';
import { VppClient } from '../src/vpp/client.ts';
import type { VppLogger } from '../src/vpp/client-types.ts';
import { saParams } from '../test/helpers/builders.ts';
import { startVppLab, vppAvailable, type VppLab } from '../test/helpers/real-vpp.ts';

const U32_MAX = 0xffffffff;
const EMULATOR = fileURLToPath(new URL('../src/vpp/emulator/main.ts', import.meta.url));
let CONCURRENCY = 256;
const WINDOW = 512;
const P2MP_IFACE = 'ipsec100';
const EMU_UPLINK = 'uplink0';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

// ------------------------------------------------------------------------------------ tunnels

function sa(i: number, inbound: boolean): SaParams {
  return saParams(inbound ? 0x10000000 + i : 0x20000000 + i, inbound, {
    local: '192.0.2.2',
    remote: `100.${64 + (i >> 16)}.${(i >> 8) & 0xff}.${i & 0xff}`,
    encKey: randomBytes(36),
  });
}

function tunnel(i: number, mode: VppMode): ChildInstall {
  const net = `${10 + (i >> 16)}.${(i >> 8) & 0xff}.${i & 0xff}`;
  return {
    childId: i + 1,
    ikeSaId: i + 1,
    connection: `peer${i}`,
    child: 'net',
    inbound: sa(i, true),
    outbound: sa(i, false),
    localTs: [{ family: 4, start: '172.16.0.0', end: '172.16.255.255', protocol: 0, startPort: 0, endPort: 65535 }],
    remoteTs: [{ family: 4, start: `${net}.0`, end: `${net}.255`, protocol: 0, startPort: 0, endPort: 65535 }],
    vppMode: mode,
    vppTable: 0,
    vppRoutes: mode !== 'policy',
    ...(mode === 'p2mp' ? { vppInterface: P2MP_IFACE } : {}),
  };
}

// ------------------------------------------------------------------------------------ measuring

interface Mem {
  rss: number;
  heapUsed: number;
}

function ourMem(): Mem {
  gc();
  gc();
  const m = process.memoryUsage();
  return { rss: m.rss, heapUsed: m.heapUsed };
}

function rssOf(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : NaN;
}

const UNITS: Record<string, number> = { '': 1, k: 1024, K: 1024, m: 1024 ** 2, M: 1024 ** 2, g: 1024 ** 3, G: 1024 ** 3 };

/** Bytes used of VPP's main heap, from `show memory main-heap` ("used: 123.45M" or similar). */
async function vppHeapUsed(lab: VppLab): Promise<number> {
  const out = await lab.ctl('show', 'memory', 'main-heap');
  const m = /used:?\s+([\d.]+)\s*([kKmMgG]?)/i.exec(out);
  return m ? Number(m[1]) * UNITS[m[2] ?? '']! : NaN;
}

/** Installs tunnels 0..n-1, CONCURRENCY at a time. */
async function programAll(dp: VppDataplane, n: number, mode: VppMode): Promise<{ ms: number; messages: number }> {
  const sent0 = dp.client.stats.sent;
  const t0 = performance.now();
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < n) {
      const i = next++;
      await dp.install(tunnel(i, mode));
    }
  };
  await Promise.all(Array.from({ length: Math.min(CONCURRENCY, n) }, worker));
  return { ms: performance.now() - t0, messages: dp.client.stats.sent - sent0 };
}

/** Our SAs in VPP's SAD (sad_ids with vpp-iked's prefix). */
async function countOurSas(socket: string): Promise<number> {
  const c = new VppClient({ socket, healthCheckMs: 0, reconnect: false, requestTimeoutMs: 120_000 });
  try {
    await c.connect();
    const sas = await c.dump('ipsec_sa_v5_dump', { sa_id: U32_MAX });
    return sas.filter((s) => isOurId(s.entry.sad_id)).length;
  } finally {
    await c.close();
  }
}

interface ReplayWatch {
  /** Resolves with the times (performance.now()) of the first replayed() call and of the last id. */
  done: Promise<{ firstAt: number; lastAt: number }>;
  failed: string[];
}

function watchReplay(dp: VppDataplane, n: number): ReplayWatch {
  const failed: string[] = [];
  let got = 0;
  let first: number | undefined;
  const done = new Promise<{ firstAt: number; lastAt: number }>((resolve, reject) => {
    dp.setListener({
      replayed: (ids) => {
        const now = performance.now();
        first ??= now;
        got += ids.length;
        if (got + failed.length >= n) resolve({ firstAt: first, lastAt: now });
      },
      failed: (id, reason) => {
        failed.push(`${id}: ${reason}`);
        if (failed.length >= n) reject(new Error(`every replay failed, e.g. ${reason}`));
        else if (got + failed.length >= n) resolve({ firstAt: first ?? NaN, lastAt: performance.now() });
      },
    });
  });
  return { done, failed };
}

/**
 * A logger for the back end that notes when the resync reaches its steps: the client reconnected,
 * the replay starts programming (after the snapshot, stray removal and the wait for interfaces).
 * Errors are counted and the first few printed.
 */
class PhaseLog implements VppLogger {
  reconnectedAt: number | undefined;
  replayStartAt: number | undefined;
  errors = 0;
  debug(): void {}
  info(obj: object, msg?: string): void {
    if (msg === 'connected to VPP' && (obj as { reconnect?: boolean }).reconnect === true) this.reconnectedAt ??= performance.now();
  }
  warn(_obj: object, msg?: string): void {
    if (msg === 'VPP lost CHILD_SAs; programming them again') this.replayStartAt ??= performance.now();
  }
  error(obj: object, msg?: string): void {
    if (this.errors++ < 5) process.stderr.write(`back end: ${msg ?? ''} ${JSON.stringify(obj)}\n`);
  }
}

function dataplaneOptions(socket: string, mode: VppMode, policyInterface: string, log: VppLogger): ConstructorParameters<typeof VppDataplane>[0] {
  return {
    socket,
    log,
    clientOptions: { healthCheckMs: 0, maxInFlight: WINDOW, requestTimeoutMs: 120_000, reconnectMinMs: 20, reconnectMaxMs: 200 },
    replayIntervalMs: 1,
    replayBatch: 1000,
    interfaceWaitStepMs: 20,
    ...(mode === 'policy' ? { policyInterface } : {}),
  };
}

// ------------------------------------------------------------------------------------ runs

export interface ScaleRun {
  target: 'real VPP' | 'emulator';
  mode: VppMode;
  tunnels: number;
  programMs: number;
  tunnelsPerSec: number;
  messages: number;
  messagesPerSec: number;
  /** VPP's main heap used / RSS (real VPP) or the emulator's RSS, before and after programming. */
  vppHeapBefore?: number;
  vppHeapAfter?: number;
  vppRssBefore: number;
  vppRssAfter: number;
  vppBytesPerTunnel: number;
  ourRssPerTunnel: number;
  ourHeapPerTunnel: number;
  /** From VPP (or the emulator) answering again: the client reconnected, the replay started programming, ... */
  replayReconnectMs: number;
  replayStartMs: number;
  replayProgrammedMs: number;
  replayLastBatchMs: number;
  replayVerifiedMs: number;
  replayFailed: number;
  sasAfterReplay: number;
}

const cleanups: (() => Promise<void>)[] = [];

async function cleanupAll(): Promise<void> {
  for (const c of cleanups.splice(0).reverse()) await c().catch((e: unknown) => process.stderr.write(`clean-up: ${(e as Error).message}\n`));
}

function log(s: string): void {
  process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${s}\n`);
}

async function runReal(n: number, mode: VppMode): Promise<ScaleRun> {
  const own: (() => Promise<void>)[] = [];
  const lab = await startVppLab({ after: (fn) => own.push(fn) });
  const cleanLab = async (): Promise<void> => {
    for (const c of own.splice(0).reverse()) await c();
  };
  cleanups.push(cleanLab);
  const phases = new PhaseLog();
  const dp = new VppDataplane(dataplaneOptions(lab.apiSocket, mode, lab.hostIf, phases));
  try {
    await dp.start();
    const heapBefore = await vppHeapUsed(lab);
    const rssBefore = rssOf(lab.vppPid);
    const ours0 = ourMem();
    log(`real VPP ${mode}: programming ${n}`);
    const p = await programAll(dp, n, mode);
    const ours1 = ourMem();
    const heapAfter = await vppHeapUsed(lab);
    const rssAfter = rssOf(lab.vppPid);
    log(`real VPP ${mode}: ${n} in ${(p.ms / 1000).toFixed(1)} s; restarting VPP`);

    let answered = 0;
    const watch = watchReplay(dp, n);
    await lab.kill('SIGKILL');
    await lab.startVpp();
    answered = performance.now();
    await lab.configure();
    const r = await watch.done;
    const sas = await countOurSas(lab.apiSocket);
    const verifiedAt = performance.now();
    // VPP answers: its API (our client reconnects) or its CLI, whichever came first.
    const t0 = Math.min(answered, phases.reconnectedAt ?? Infinity);
    log(`real VPP ${mode}: replayed in ${((r.firstAt - t0) / 1000).toFixed(1)} s, ${sas} SAs in VPP`);
    const heap = heapAfter - heapBefore;
    return {
      target: 'real VPP',
      mode,
      tunnels: n,
      programMs: p.ms,
      tunnelsPerSec: (n / p.ms) * 1000,
      messages: p.messages,
      messagesPerSec: (p.messages / p.ms) * 1000,
      vppHeapBefore: heapBefore,
      vppHeapAfter: heapAfter,
      vppRssBefore: rssBefore,
      vppRssAfter: rssAfter,
      vppBytesPerTunnel: (Number.isFinite(heap) ? heap : rssAfter - rssBefore) / n,
      ourRssPerTunnel: (ours1.rss - ours0.rss) / n,
      ourHeapPerTunnel: (ours1.heapUsed - ours0.heapUsed) / n,
      replayReconnectMs: (phases.reconnectedAt ?? NaN) - t0,
      replayStartMs: (phases.replayStartAt ?? NaN) - t0,
      replayProgrammedMs: r.firstAt - t0,
      replayLastBatchMs: r.lastAt - t0,
      replayVerifiedMs: verifiedAt - t0,
      replayFailed: watch.failed.length,
      sasAfterReplay: sas,
    };
  } catch (e) {
    process.stderr.write(lab.logTail(20) + '\n');
    throw e;
  } finally {
    await dp.close();
    await cleanLab();
  }
}

async function spawnEmulator(socket: string): Promise<ChildProcess> {
  const p = spawn(process.execPath, ['--max-old-space-size=8192', EMULATOR, '--socket', socket, '--interfaces', `${EMU_UPLINK},loop0`, '--quiet'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  await once(p.stdout!, 'data');
  return p;
}

async function stopEmulator(p: ChildProcess): Promise<void> {
  if (p.exitCode !== null || p.signalCode !== null) return;
  p.kill('SIGKILL');
  await once(p, 'exit');
}

async function runEmulator(n: number, mode: VppMode): Promise<ScaleRun> {
  const socket = join(tmpdir(), `vpp-scale-${process.pid}-${mode}.sock`);
  let emu = await spawnEmulator(socket);
  const stop = async (): Promise<void> => {
    await stopEmulator(emu);
    rmSync(socket, { force: true });
  };
  cleanups.push(stop);
  const phases = new PhaseLog();
  const dp = new VppDataplane(dataplaneOptions(socket, mode, EMU_UPLINK, phases));
  try {
    await dp.start();
    const rssBefore = rssOf(emu.pid!);
    const ours0 = ourMem();
    log(`emulator ${mode}: programming ${n}`);
    const p = await programAll(dp, n, mode);
    const ours1 = ourMem();
    const rssAfter = rssOf(emu.pid!);
    log(`emulator ${mode}: ${n} in ${(p.ms / 1000).toFixed(1)} s; restarting the emulator`);

    let answered = 0;
    const watch = watchReplay(dp, n);
    await stopEmulator(emu);
    rmSync(socket, { force: true });
    emu = await spawnEmulator(socket);
    answered = performance.now();
    const r = await watch.done;
    const sas = await countOurSas(socket);
    const verifiedAt = performance.now();
    // VPP answers: its API (our client reconnects) or its CLI, whichever came first.
    const t0 = Math.min(answered, phases.reconnectedAt ?? Infinity);
    return {
      target: 'emulator',
      mode,
      tunnels: n,
      programMs: p.ms,
      tunnelsPerSec: (n / p.ms) * 1000,
      messages: p.messages,
      messagesPerSec: (p.messages / p.ms) * 1000,
      vppRssBefore: rssBefore,
      vppRssAfter: rssAfter,
      vppBytesPerTunnel: (rssAfter - rssBefore) / n,
      ourRssPerTunnel: (ours1.rss - ours0.rss) / n,
      ourHeapPerTunnel: (ours1.heapUsed - ours0.heapUsed) / n,
      replayReconnectMs: (phases.reconnectedAt ?? NaN) - t0,
      replayStartMs: (phases.replayStartAt ?? NaN) - t0,
      replayProgrammedMs: r.firstAt - t0,
      replayLastBatchMs: r.lastAt - t0,
      replayVerifiedMs: verifiedAt - t0,
      replayFailed: watch.failed.length,
      sasAfterReplay: sas,
    };
  } finally {
    await dp.close();
    await stop();
  }
}

// ------------------------------------------------------------------------------------ output

const mb = (b: number | undefined): string => (b === undefined || !Number.isFinite(b) ? '-' : (b / 1024 ** 2).toFixed(0));
const s = (ms: number): string => (Number.isFinite(ms) ? (ms / 1000).toFixed(2) : '-');

function table(runs: ScaleRun[]): string {
  const head = ['target', 'mode', 'N', 'program s', 'tunnels/s', 'msgs/s', 'VPP heap MB', 'VPP RSS MB', 'VPP B/tun', 'our RSS B/tun', 'our heap B/tun', 'reconn s', 'replay start s', 'replayed s', 'last batch s', 'verified s', 'SAs', 'failed'];
  const rows = runs.map((r) => [
    r.target,
    r.mode,
    String(r.tunnels),
    s(r.programMs),
    r.tunnelsPerSec.toFixed(0),
    r.messagesPerSec.toFixed(0),
    r.vppHeapBefore === undefined ? '-' : `${mb(r.vppHeapBefore)}→${mb(r.vppHeapAfter)}`,
    `${mb(r.vppRssBefore)}→${mb(r.vppRssAfter)}`,
    r.vppBytesPerTunnel.toFixed(0),
    r.ourRssPerTunnel.toFixed(0),
    r.ourHeapPerTunnel.toFixed(0),
    s(r.replayReconnectMs),
    s(r.replayStartMs),
    s(r.replayProgrammedMs),
    s(r.replayLastBatchMs),
    s(r.replayVerifiedMs),
    String(r.sasAfterReplay),
    String(r.replayFailed),
  ]);
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]): string => cells.map((c, i) => c.padStart(w[i]!)).join('  ');
  const out = [line(head), ...rows.map(line)];
  // Ratios real / emulator per mode.
  for (const real of runs.filter((r) => r.target === 'real VPP')) {
    const emu = runs.find((r) => r.target === 'emulator' && r.mode === real.mode && r.tunnels === real.tunnels);
    if (!emu) continue;
    out.push(
      `${real.mode}: real/emulator programming rate ${(real.tunnelsPerSec / emu.tunnelsPerSec).toFixed(2)}, ` +
        `replay time ${(real.replayProgrammedMs / emu.replayProgrammedMs).toFixed(2)}, our heap per tunnel ${(real.ourHeapPerTunnel / emu.ourHeapPerTunnel).toFixed(2)}`,
    );
  }
  return out.join('\n');
}

// ------------------------------------------------------------------------------------ main

function parseArgs(argv: string[]): { n: number; modes: VppMode[]; p2p: number; emulator: boolean } {
  let n = 50_000;
  let modes: VppMode[] = ['p2mp', 'policy'];
  let p2p = 0;
  let emulator = true;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--n') n = Number(argv[++i]);
    else if (a === '--modes') modes = (argv[++i] ?? '').split(',').filter((m): m is VppMode => m === 'p2mp' || m === 'policy');
    else if (a === '--p2p') p2p = Number(argv[++i]);
    else if (a === '--no-emulator') emulator = false;
    else if (a === '--concurrency') {
      CONCURRENCY = Number(argv[++i]);
      if (!Number.isInteger(CONCURRENCY) || CONCURRENCY < 1) throw new RangeError('--concurrency must be a positive integer');
    }
    else throw new Error(`unknown argument ${a}`);
  }
  if (!Number.isInteger(n) || n < 1 || n > 16 * 65536) throw new RangeError('--n must be 1..1048576');
  if (!Number.isInteger(p2p) || p2p < 0 || p2p > 15_384) throw new RangeError('--p2p must be 0..15384');
  return { n, modes, p2p, emulator };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  let args: ReturnType<typeof parseArgs>;
  try {
    args = parseArgs(process.argv.slice(2));
  } catch (e) {
    process.stderr.write(`${(e as Error).message}\nusage: node bench/vpp-scale.ts [--n 50000] [--modes p2mp,policy] [--p2p N] [--no-emulator] [--concurrency N]\n`);
    process.exit(2);
  }
  const a = vppAvailable();
  if (!a.ok) {
    process.stderr.write(`real VPP not available: ${a.reason}\n`);
    process.exit(1);
  }
  process.env.VPP_HEAP ??= '4G';
  // The lab's stats segment (32M) runs out near a few thousand p2p interfaces (VPP aborts in
  // ipsec_itf_create → vlib_stats_add_symlink); a second statseg stanza raises it.
  process.env.VPP_EXTRA_CONF ??= 'statseg { size 512M }';
  let stopping = false;
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.on(sig, () => {
      if (stopping) return;
      stopping = true;
      void cleanupAll().finally(() => process.exit(130));
    });
  }
  const runs: ScaleRun[] = [];
  const plan: [VppMode, number][] = [...args.modes.map((m): [VppMode, number] => [m, args.n]), ...(args.p2p > 0 ? [['p2p', args.p2p] as [VppMode, number]] : [])];
  let code = 0;
  try {
    for (const [mode, n] of plan) {
      runs.push(await runReal(n, mode));
      if (args.emulator) runs.push(await runEmulator(n, mode));
    }
  } catch (e) {
    process.stderr.write(`${(e as Error).stack ?? String(e)}\n`);
    code = 1;
  } finally {
    await cleanupAll();
  }
  process.stdout.write(`${table(runs)}\n`);
  process.stdout.write(`${JSON.stringify({ vppHeap: process.env.VPP_HEAP, vppExtraConf: process.env.VPP_EXTRA_CONF, replayIntervalMs: 1, replayBatch: 1000, concurrency: CONCURRENCY, window: WINDOW, runs })}\n`);
  process.exit(code);
}
