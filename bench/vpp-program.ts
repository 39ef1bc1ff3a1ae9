/**
 * Programming tunnels into VPP over the binary API: N p2p CHILD_SAs (default 10,000; each is
 * ipsec_itf_create, sw_interface_set_flags, 2 × ipsec_sad_entry_add_v2, ipsec_tunnel_protect_update
 * and one ip_route_add_del) through VppDataplane into the VPP emulator running as a separate process.
 * Two runs in the same invocation, each against a fresh emulator:
 * - without pipelining: one request on the wire at a time (client window 1, one tunnel after the other);
 * - with pipelining: client window 512 and 256 tunnels being programmed at once.
 * Prints tunnels/s and API messages/s (requests sent by the client) for both.
 * Run: node bench/vpp-program.ts [tunnels]
 * Knobs (environment): VPP_BENCH_CONC tunnels programmed at once (pipelined run, default 256),
 * VPP_BENCH_WIN client window (default 512), EMU_PROF=DIR writes the emulator's CPU profile there.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { VppDataplane } from '../src/dataplane/vpp/index.ts';
import type { ChildInstall, SaParams } from '../src/dataplane/types.ts';
import { saParams } from '../test/helpers/builders.ts';

export interface VppBenchRun {
  pipelined: boolean;
  tunnels: number;
  messages: number;
  ms: number;
  tunnelsPerSec: number;
  messagesPerSec: number;
}

export interface VppBenchResult {
  sequential: VppBenchRun;
  pipelined: VppBenchRun;
  /** pipelined.tunnelsPerSec / sequential.tunnelsPerSec */
  speedup: number;
}

const EMULATOR = fileURLToPath(new URL('../src/vpp/emulator/main.ts', import.meta.url));

async function spawnEmulator(socket: string): Promise<ChildProcess> {
  const p = spawn(process.execPath, [...(process.env.EMU_PROF ? ['--cpu-prof', '--cpu-prof-dir=' + process.env.EMU_PROF] : []), EMULATOR, '--socket', socket, '--quiet'], { stdio: ['ignore', 'pipe', 'inherit'] });
  await once(p.stdout!, 'data');
  return p;
}

const KEY = Buffer.alloc(36, 0x5a);

/** One direction of tunnel i: 192.0.2.1 ↔ 10.(100 + i / 65536).x.y, AES-GCM-16/256 without ESN, one key for all. */
function sa(i: number, inbound: boolean): SaParams {
  return saParams(inbound ? 0x10000000 + i : 0x20000000 + i, inbound, { remote: `10.${100 + (i >> 16)}.${(i >> 8) & 0xff}.${i & 0xff}`, encKey: KEY });
}

function tunnel(i: number): ChildInstall {
  return {
    childId: i + 1,
    ikeSaId: i + 1,
    connection: `peer${i}`,
    child: 'net',
    inbound: sa(i, true),
    outbound: sa(i, false),
    localTs: [{ family: 4, start: '172.16.0.0', end: '172.16.255.255', protocol: 0, startPort: 0, endPort: 65535 }],
    remoteTs: [{ family: 4, start: `10.${(i >> 8) & 0xff}.${i & 0xff}.0`, end: `10.${(i >> 8) & 0xff}.${i & 0xff}.255`, protocol: 0, startPort: 0, endPort: 65535 }],
    vppMode: 'p2p',
    vppTable: 0,
    vppRoutes: true,
  };
}

/** One measured run against a fresh emulator process. */
export async function runOne(tunnels: number, pipelined: boolean): Promise<VppBenchRun> {
  const socket = join(tmpdir(), `vpp-bench-${process.pid}-${pipelined ? 'p' : 's'}.sock`);
  const emu = await spawnEmulator(socket);
  const dp = new VppDataplane({
    socket,
    clientOptions: { healthCheckMs: 0, maxInFlight: pipelined ? Number(process.env.VPP_BENCH_WIN ?? 512) : 1, requestTimeoutMs: 60_000 },
  });
  try {
    await dp.start();
    const sent0 = dp.client.stats.sent;
    const t0 = performance.now();
    if (pipelined) {
      const concurrency = Number(process.env.VPP_BENCH_CONC ?? 256);
      let next = 0;
      const worker = async (): Promise<void> => {
        while (next < tunnels) {
          const i = next++;
          await dp.install(tunnel(i));
        }
      };
      await Promise.all(Array.from({ length: Math.min(concurrency, tunnels) }, worker));
    } else {
      for (let i = 0; i < tunnels; i++) await dp.install(tunnel(i));
    }
    const ms = performance.now() - t0;
    const messages = dp.client.stats.sent - sent0;
    return {
      pipelined,
      tunnels,
      messages,
      ms,
      tunnelsPerSec: (tunnels / ms) * 1000,
      messagesPerSec: (messages / ms) * 1000,
    };
  } finally {
    await dp.close();
    emu.kill('SIGTERM');
    await once(emu, 'exit');
  }
}

/** Programs `tunnels` p2p tunnels without and with pipelining and returns both measurements. */
export async function runVppBench(tunnels = 10_000): Promise<VppBenchResult> {
  if (tunnels > 15_000) throw new RangeError('p2p tunnels are limited by VPP to 16384 ipsec interfaces (15384 from instance 1000)');
  const sequential = await runOne(tunnels, false);
  const pipelined = await runOne(tunnels, true);
  return { sequential, pipelined, speedup: pipelined.tunnelsPerSec / sequential.tunnelsPerSec };
}

function fmt(r: VppBenchRun): string {
  return (
    `${r.pipelined ? 'pipelined  ' : 'sequential '} ${r.tunnels} tunnels in ${(r.ms / 1000).toFixed(2)} s: ` +
    `${r.tunnelsPerSec.toFixed(0)} tunnels/s, ${r.messagesPerSec.toFixed(0)} messages/s (${r.messages} messages)`
  );
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const n = process.argv[2] ? Number(process.argv[2]) : 10_000;
  if (!Number.isInteger(n) || n < 1) {
    process.stderr.write('usage: node bench/vpp-program.ts [tunnels]\n');
    process.exit(2);
  }
  const r = await runVppBench(n);
  process.stdout.write(`${fmt(r.sequential)}\n${fmt(r.pipelined)}\nspeedup ${r.speedup.toFixed(1)}x\n`);
}
