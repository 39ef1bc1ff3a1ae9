/**
 * Engine benchmark: full IKE_SA_INIT + IKE_AUTH handshakes (PSK, aes256gcm16-prfsha256-x25519, one
 * CHILD_SA into the memory dataplane) between engines in one process, and the session table at
 * scale (memory per IKE SA, SPI lookup time at 1,000 vs N SAs).
 *
 * Baselines measured in the same run: the raw crypto of one handshake for both sides (key exchange,
 * key derivation, AUTH, SK seal/open), so the engine's cost is reported as a ratio to that floor.
 *
 * Concurrent handshakes (64 under way at once) with the responder's IKE_SA_INIT key exchange and key
 * derivation on 0, 1 and 2 worker threads (`--workers`): handshakes/s and the event loop's CPU per
 * handshake. Both sides run in this process, so the initiators' crypto stays on the event loop.
 *
 *   node bench/engine.ts [--sas 50000] [--handshakes 2000] [--workers 0,1,2]
 */
import { parseArgs } from 'node:util';
import { randomBytes } from 'node:crypto';
import pino from 'pino';
import { Engine, type OutPacket } from '../src/ikev2/engine/engine.ts';
import { FakeScheduler } from '../src/common/clock.ts';
import { MemoryDataplane } from '../src/dataplane/memory.ts';
import { conn, child, config, psk } from '../test/helpers/engine-pair.ts';
import { createKeyExchange } from '../src/ikev2/crypto/ke.ts';
import { deriveChildKeys, deriveIkeKeys, Prf } from '../src/ikev2/crypto/prf.ts';
import { pskAuth, signedOctets } from '../src/ikev2/crypto/auth.ts';
import { IkeCipher } from '../src/ikev2/crypto/protect.ts';
import { parseProposals, selectIkeProposal, toWireProposals } from '../src/ikev2/crypto/proposals.ts';
import { encrAlg } from '../src/ikev2/crypto/suites.ts';

const silent = pino({ level: 'silent' });
const SECRET = psk([], 'bench-preshared-key-0123456789');

export function responder(limit: number, o: { workers?: number; send?: (p: OutPacket) => void } = {}) {
  const sched = new FakeScheduler(0);
  const dp = new MemoryDataplane();
  dp.maxEvents = 0;
  let out: OutPacket[] = [];
  const engine = new Engine({
    scheduler: sched,
    random: randomBytes,
    workers: o.workers,
    send: o.send ?? ((p) => out.push(p)),
    dataplane: dp,
    log: silent,
    port: 500,
    portNatT: 4500,
    ikeSaLimit: limit,
    localAddressFor: () => '192.0.2.2',
  });
  engine.setConfig(
    config(
      [conn('any', { local: { auth: 'psk', id: 'gw.lab', certs: [], cacerts: [] }, children: [child('net', { localTs: ['10.0.0.0/8'], remoteTs: ['dynamic'] })] })],
      [SECRET],
      limit,
    ),
  );
  return { engine, sched, take: () => ((x) => ((out = []), x))(out) };
}

/** One initiator engine per handshake (each a distinct peer identity), discarded afterwards. */
export async function handshake(r: ReturnType<typeof responder>, i: number): Promise<void> {
  const sched = new FakeScheduler(0);
  const dp = new MemoryDataplane();
  let out: OutPacket[] = [];
  const peerAddr = `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
  const init = new Engine({
    scheduler: sched,
    random: randomBytes,
    send: (p) => out.push(p),
    dataplane: dp,
    log: silent,
    port: 500,
    portNatT: 4500,
    ikeSaLimit: 4,
    localAddressFor: () => peerAddr,
  });
  init.setConfig(
    config(
      [conn('gw', { remoteAddrs: ['192.0.2.2'], local: { auth: 'psk', id: `c${i}.lab`, certs: [], cacerts: [] }, children: [child('net', { remoteTs: ['10.0.0.0/8'] })] })],
      [SECRET],
    ),
  );
  const p = init.initiate('gw');
  for (let round = 0; round < 10; round++) {
    const toR = out;
    out = [];
    for (const x of toR) r.engine.receive(x.remote, x.local, x.data);
    await settle();
    const back = r.take();
    for (const x of back) init.receive(x.remote, x.local, x.data);
    await settle();
    if (out.length === 0) break;
  }
  await p;
  function settle(): Promise<void> {
    return new Promise((res) => setImmediate(res));
  }
}

/**
 * `n` handshakes with up to `concurrency` under way at once, the responder with `workers` threads for
 * IKE_SA_INIT: packets are delivered as they are sent. Returns handshakes/s and the event loop's own
 * CPU per handshake (both sides' work that is not on a worker).
 */
export async function concurrentHandshakes(n: number, concurrency: number, workers: number): Promise<{ perSecond: number; mainCpuUsPerHandshake: number }> {
  const byAddr = new Map<string, Engine>();
  const r = responder(n + 10, {
    workers,
    send: (p) => {
      const to = byAddr.get(p.remote.addr);
      if (to) setImmediate(() => to.receive(p.remote, p.local, p.data));
    },
  });
  let next = 0;
  const one = async (): Promise<void> => {
    while (next < n) {
      const i = next++;
      const peerAddr = `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
      const init = new Engine({
        scheduler: new FakeScheduler(0),
        random: randomBytes,
        send: (p) => setImmediate(() => r.engine.receive(p.remote, p.local, p.data)),
        dataplane: new MemoryDataplane(),
        log: silent,
        port: 500,
        portNatT: 4500,
        ikeSaLimit: 4,
        localAddressFor: () => peerAddr,
      });
      init.setConfig(
        config(
          [conn('gw', { remoteAddrs: ['192.0.2.2'], local: { auth: 'psk', id: `c${i}.lab`, certs: [], cacerts: [] }, children: [child('net', { remoteTs: ['10.0.0.0/8'] })] })],
          [SECRET],
        ),
      );
      byAddr.set(peerAddr, init);
      await init.initiate('gw');
      byAddr.delete(peerAddr);
    }
  };
  const c0 = process.threadCpuUsage();
  const t0 = performance.now();
  await Promise.all(Array.from({ length: concurrency }, one));
  const ms = performance.now() - t0;
  const c = process.threadCpuUsage(c0);
  await r.engine.close();
  if (r.engine.table.size !== n) throw new Error(`expected ${n} SAs, have ${r.engine.table.size}`);
  return { perSecond: perSecond(n, ms), mainCpuUsPerHandshake: Math.round((c.user + c.system) / n) };
}

/** The unavoidable crypto of one handshake, both sides (what the engine cannot go below). */
function cryptoFloorPair(): void {
  const suite = selectIkeProposal(
    parseProposals('aes256gcm16-prfsha256-x25519', 'ike'),
    toWireProposals(parseProposals('aes256gcm16-prfsha256-x25519', 'ike'), Buffer.alloc(0)),
  )!.suite;
  const a = createKeyExchange(31);
  const b = createKeyExchange(31);
  const sA = a.computeSecret(b.publicValue);
  const sB = b.computeSecret(a.publicValue);
  const ni = randomBytes(32);
  const nr = randomBytes(32);
  const spiI = randomBytes(8);
  const spiR = randomBytes(8);
  const prf = new Prf(suite.prf);
  const gcm = encrAlg(20, 256)!;
  for (const [s, initiator] of [[sA, true], [sB, false]] as const) {
    const { keys } = deriveIkeKeys(suite, s, ni, nr, spiI, spiR);
    const psk = Buffer.from('bench-preshared-key-0123456789');
    const msg = randomBytes(300);
    pskAuth(prf, psk, signedOctets(prf, msg, nr, keys.skPi, msg.subarray(0, 12)));
    pskAuth(prf, psk, signedOctets(prf, msg, ni, keys.skPr, msg.subarray(0, 12)));
    deriveChildKeys(suite.prf, keys.skD, gcm, null, ni, nr);
    const c = new IkeCipher(suite, keys, initiator, randomBytes);
    const h = { spiI, spiR, nextPayload: 46, version: 0x20, exchange: 35, flags: 8, messageId: 1, length: 0 };
    c.seal(h, 35, randomBytes(200));
    c.seal(h, 35, randomBytes(200));
  }
}

function perSecond(n: number, ms: number): number {
  return Math.round((n / ms) * 1000);
}

export async function runEngineBench(o: { sas?: number; handshakes?: number; workers?: number[] } = {}): Promise<Record<string, number>> {
  const handshakes = o.handshakes ?? 2000;
  const nSas = o.sas ?? 50_000;
  const workerCounts = o.workers ?? [0, 1, 2];
  // Warm-up.
  const warm = responder(100);
  for (let i = 0; i < 50; i++) await handshake(warm, i);
  for (let i = 0; i < 50; i++) cryptoFloorPair();

  // Crypto floor, both sides.
  let t0 = performance.now();
  for (let i = 0; i < handshakes; i++) cryptoFloorPair();
  const floorMs = performance.now() - t0;

  // Full handshakes through the engines.
  const r = responder(handshakes + 10);
  t0 = performance.now();
  for (let i = 0; i < handshakes; i++) await handshake(r, i);
  const engineMs = performance.now() - t0;
  if (r.engine.table.size !== handshakes) throw new Error(`expected ${handshakes} SAs, have ${r.engine.table.size}`);

  // Concurrent handshakes (64 under way), the responder's IKE_SA_INIT crypto on 0, 1, 2 worker threads.
  const concurrent: Record<string, number> = {};
  for (const w of workerCounts) {
    const c = await concurrentHandshakes(handshakes, 64, w);
    concurrent[`concurrent_handshakes_per_s_workers_${w}`] = c.perSecond;
    concurrent[`concurrent_main_thread_cpu_us_per_handshake_workers_${w}`] = c.mainCpuUsPerHandshake;
  }
  const w0 = concurrent['concurrent_handshakes_per_s_workers_0'];
  if (w0) for (const w of workerCounts) if (w > 0) concurrent[`concurrent_speedup_workers_${w}_vs_0`] = +(concurrent[`concurrent_handshakes_per_s_workers_${w}`]! / w0).toFixed(2);

  // Scale: N established IKE SAs (each with a CHILD_SA) in one responder.
  global.gc?.();
  const big = responder(nSas + 10);
  const heap0 = process.memoryUsage().heapUsed;
  t0 = performance.now();
  for (let i = 0; i < nSas; i++) await handshake(big, i);
  const scaleMs = performance.now() - t0;
  global.gc?.();
  const heap1 = process.memoryUsage().heapUsed;
  const sas = [...big.engine.table.values()];
  const lookup = (list: typeof sas): number => {
    const spis = list.map((s) => s.spiR);
    const t = performance.now();
    let found = 0;
    for (let k = 0; k < 20; k++) for (const spi of spis) if (big.engine.table.bySpiBuf(spi)) found++;
    return ((performance.now() - t) / found) * 1e6; // ns per lookup
  };
  const nsSmall = lookup(sas.slice(0, 1000));
  const nsAll = lookup(sas);
  return {
    handshakes,
    crypto_floor_pair_per_s: perSecond(handshakes, floorMs),
    engine_pair_handshakes_per_s: perSecond(handshakes, engineMs),
    engine_cost_vs_crypto_floor: +(engineMs / floorMs).toFixed(2),
    ...concurrent,
    scale_sas: nSas,
    scale_handshakes_per_s: perSecond(nSas, scaleMs),
    heap_bytes_per_ike_sa_with_child: Math.round((heap1 - heap0) / nSas),
    spi_lookup_ns_at_1000: +nsSmall.toFixed(1),
    spi_lookup_ns_at_all: +nsAll.toFixed(1),
    spi_lookup_ratio_all_vs_1000: +(nsAll / nsSmall).toFixed(2),
    timer_entries: big.sched.pending,
  };
}

if (import.meta.main) {
  const { values } = parseArgs({ options: { sas: { type: 'string' }, handshakes: { type: 'string' }, workers: { type: 'string' } } });
  const res = await runEngineBench({
    sas: values.sas ? Number(values.sas) : undefined,
    handshakes: values.handshakes ? Number(values.handshakes) : undefined,
    workers: values.workers ? values.workers.split(',').map(Number) : undefined,
  });
  for (const [k, v] of Object.entries(res)) console.log(`${k.padEnd(40)} ${v}`);
}
