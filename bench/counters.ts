/**
 * The cost of one poll of SA counters for volume lifetimes, against the real VPP: N CHILD_SAs'
 * worth of SAs (2 × N `ipsec_sad_entry_add_v2`, default N = 50,000) are added over the API, then
 * their counters (inbound and outbound, by the stat_index each add reply carried) are read from
 * VPP's stats segment (found through /proc/<vpe_pid>/fd) as the VPP back end reads them: one
 * consistent read of `/net/ipsec/sa` for all of them. Printed: the median and worst time of a read
 * of all N, of 1,000, and as the baseline one pread of the same number of bytes from the segment.
 * First, without VPP, the engine's side of a poll of N CHILD_SAs (the ids, the dataplane's result
 * map, the checks against each CHILD_SA's limits) with a dataplane that answers at once.
 *
 *   node_modules/.bin/node bench/counters.ts [--n 50000] [--reads 20]      (root, the real VPP; ~1 min)
 *   node_modules/.bin/node bench/counters.ts --engine-only                  (the engine's side only)
 */
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { VppClient } from '../src/vpp/client.ts';
import { fileSource, findStatsSegment, IPSEC_SA_COUNTERS, StatsSegment } from '../src/vpp/stats-segment.ts';
import { IpsecCryptoAlg, IpsecIntegAlg, IpsecProto, IpsecSadFlags } from '../src/vpp/defs.generated.ts';
import { saTunnel } from '../src/dataplane/vpp/sa.ts';
import { startVppLab, vppAvailable } from '../test/helpers/real-vpp.ts';
import pino from 'pino';
import { randomBytes } from 'node:crypto';
import { FakeScheduler } from '../src/common/clock.ts';
import { MemoryDataplane } from '../src/dataplane/memory.ts';
import type { ChildCounters } from '../src/dataplane/types.ts';
import { EngineContext } from '../src/ikev2/engine/context.ts';
import { trafficTick } from '../src/ikev2/engine/traffic.ts';
import { ChildSa, IkeSa } from '../src/ikev2/sa/ike-sa.ts';
import { child } from '../test/helpers/engine-pair.ts';

const { values } = parseArgs({
  options: { n: { type: 'string', default: '50000' }, reads: { type: 'string', default: '20' }, 'engine-only': { type: 'boolean', default: false } },
});
const N = Number(values.n);
const READS = Number(values.reads);

function log(s: string): void {
  process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${s}\n`);
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

/** The engine's side of one poll of N watched CHILD_SAs, none of them at a limit; ms per poll. */
async function engineSide(): Promise<number[]> {
  const sched = new FakeScheduler(0);
  sched.setHandler(() => undefined);
  const dp = new MemoryDataplane();
  dp.counters = async (ids) => {
    const m = new Map<number, ChildCounters>();
    for (const id of ids) m.set(id, { packetsIn: 5, bytesIn: 500, packetsOut: 5, bytesOut: 500 });
    return m;
  };
  const ctx = new EngineContext({ scheduler: sched, random: (n) => randomBytes(n), send: () => undefined, dataplane: dp, log: pino({ level: 'silent' }), port: 500, portNatT: 4500, ikeSaLimit: N + 10 });
  const cfg = child('net', { rekeyBytes: 1e12, randBytes: 1e9, lifeBytes: 2e12 });
  for (let i = 1; i <= N; i++) {
    const sa = new IkeSa(i, true, Buffer.alloc(8), { addr: '192.0.2.1', port: 500 }, { addr: '192.0.2.2', port: 500 }, 0);
    const c = new ChildSa(i, cfg);
    c.state = 'INSTALLED';
    sa.children.push(c);
    ctx.childrenById.set(i, sa);
    ctx.traffic.children.add(i);
  }
  const times: number[] = [];
  for (let r = 0; r < READS; r++) {
    ctx.traffic.armedAt = 1;
    const t0 = performance.now();
    trafficTick(ctx, 1);
    while (ctx.traffic.reading) await new Promise((res) => setImmediate(res));
    times.push(performance.now() - t0);
  }
  return times;
}

async function main(): Promise<void> {
  const eng = await engineSide();
  log(`engine side of a poll of ${N} CHILD_SAs: median ${median(eng).toFixed(2)} ms, worst ${Math.max(...eng).toFixed(2)} ms`);
  if (values['engine-only']) {
    process.stdout.write(`${JSON.stringify({ child_sas: N, engine_poll_median_ms: +median(eng).toFixed(3), engine_poll_max_ms: +Math.max(...eng).toFixed(3) })}\n`);
    return;
  }
  const avail = vppAvailable();
  if (!avail.ok) throw new Error(`no real VPP: ${avail.reason}`);
  process.env.VPP_HEAP ??= '2G';
  const own: (() => Promise<void>)[] = [];
  const lab = await startVppLab({ after: (fn) => own.push(fn) });
  const client = new VppClient({ socket: lab.apiSocket, reconnect: false, healthCheckMs: 0, requestTimeoutMs: 30_000 });
  try {
    await client.connect();
    log(`adding ${2 * N} SAs`);
    const key = { length: 32, data: Buffer.alloc(32, 7) };
    const t0 = performance.now();
    const statIndexes: number[] = [];
    const BATCH = 2000;
    for (let i = 0; i < 2 * N; i += BATCH) {
      const replies = await Promise.all(
        Array.from({ length: Math.min(BATCH, 2 * N - i) }, (_, k) =>
          client.request('ipsec_sad_entry_add_v2', {
            entry: {
              sad_id: 0x7e000001 + i + k,
              spi: 0x1000 + i + k,
              protocol: IpsecProto.IPSEC_API_PROTO_ESP,
              crypto_algorithm: IpsecCryptoAlg.IPSEC_API_CRYPTO_ALG_AES_GCM_256,
              crypto_key: key,
              integrity_algorithm: IpsecIntegAlg.IPSEC_API_INTEG_ALG_NONE,
              integrity_key: { length: 0, data: Buffer.alloc(0) },
              flags: IpsecSadFlags.IPSEC_API_SAD_FLAG_IS_TUNNEL | ((i + k) % 2 === 0 ? IpsecSadFlags.IPSEC_API_SAD_FLAG_IS_INBOUND : 0),
              tunnel: saTunnel('192.0.2.2', `10.${((i + k) >> 16) & 255}.${((i + k) >> 8) & 255}.${(i + k) & 255}`),
              salt: 0,
              udp_src_port: 4500,
              udp_dst_port: 4500,
              anti_replay_window_size: 64,
            },
          }),
        ),
      );
      for (const r of replies) statIndexes.push(r.stat_index);
    }
    log(`added in ${((performance.now() - t0) / 1000).toFixed(1)} s; stat indexes ${Math.min(...statIndexes)}..${Math.max(...statIndexes)}`);
    const ping = await client.request('control_ping', {});
    const found = findStatsSegment(ping.vpe_pid);
    if (!('path' in found)) throw new Error(found.error);
    const seg = new StatsSegment(fileSource(found.path));
    const time = (indexes: number[]): number[] => {
      const out: number[] = [];
      for (let r = 0; r < READS; r++) {
        const s = performance.now();
        seg.readCombined(IPSEC_SA_COUNTERS, indexes);
        out.push(performance.now() - s);
      }
      return out;
    };
    const all = time(statIndexes);
    const some = time(statIndexes.slice(0, 2000));
    // baseline: one pread of as many bytes as the counters of all SAs take
    const src = fileSource(found.path);
    const buf = Buffer.alloc(statIndexes.length * 16);
    const base: number[] = [];
    for (let r = 0; r < READS; r++) {
      const s = performance.now();
      src.read(buf, buf.length, 4096);
      base.push(performance.now() - s);
    }
    src.close();
    seg.close();
    const f = (x: number): string => `${x.toFixed(2)} ms`;
    const result = {
      child_sas: N,
      engine_poll_median_ms: +median(eng).toFixed(3),
      sas: statIndexes.length,
      read_all_median_ms: +median(all).toFixed(3),
      read_all_max_ms: +Math.max(...all).toFixed(3),
      read_1000_child_sas_median_ms: +median(some).toFixed(3),
      one_pread_same_bytes_median_ms: +median(base).toFixed(3),
      segment_retries: seg.retries,
    };
    log(`read of ${N} CHILD_SAs (${statIndexes.length} SAs): median ${f(median(all))}, worst ${f(Math.max(...all))}; 1,000 CHILD_SAs ${f(median(some))}; one pread of the same bytes ${f(median(base))}`);
    process.stdout.write(`${JSON.stringify(result)}\n`);
  } finally {
    await client.close().catch(() => undefined);
    for (const c of own.reverse()) await c().catch(() => undefined);
  }
}

await main();
