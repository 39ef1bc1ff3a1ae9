/**
 * What post-quantum key exchange costs: full PSK handshakes (IKE_SA_INIT, IKE_INTERMEDIATE where
 * negotiated, IKE_AUTH with one CHILD_SA into the memory dataplane) between two engines in one
 * process, for
 *
 *   classic  aes256gcm16-prfsha256-x25519                      (the baseline)
 *   hybrid   aes256gcm16-prfsha256-x25519-ke1_mlkem768         (RFC 9370, one IKE_INTERMEDIATE)
 *   mlkem    aes256gcm16-prfsha256-mlkem768                    (ML-KEM-768 alone in IKE_SA_INIT)
 *
 * The suites run in alternating batches in the same process, so the ratios to `classic` hold on a
 * noisy machine. Reported per handshake: wall time of both sides, the responder's own processing
 * (the time spent inside its receive calls, dataplane awaits included) and bytes on the wire.
 *
 *   node bench/pq.ts [--handshakes 600] [--rounds 6]
 */
import { parseArgs } from 'node:util';
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import pino from 'pino';
import { Engine, type OutPacket } from '../src/ikev2/engine/engine.ts';
import { FakeScheduler } from '../src/common/clock.ts';
import { MemoryDataplane } from '../src/dataplane/memory.ts';
import { conn, child, config, psk } from '../test/helpers/engine-pair.ts';
import { parseProposals } from '../src/ikev2/crypto/proposals.ts';

const { values } = parseArgs({ options: { handshakes: { type: 'string', default: '600' }, rounds: { type: 'string', default: '6' } } });
const HANDSHAKES = Number(values.handshakes);
const ROUNDS = Number(values.rounds);

const silent = pino({ level: 'silent' });
const SECRET = psk([], 'bench-preshared-key-0123456789');
const SUITES = {
  classic: 'aes256gcm16-prfsha256-x25519',
  hybrid: 'aes256gcm16-prfsha256-x25519-ke1_mlkem768',
  mlkem: 'aes256gcm16-prfsha256-mlkem768',
} as const;
type SuiteName = keyof typeof SUITES;

function engine(addr: string, out: OutPacket[]): Engine {
  const dp = new MemoryDataplane();
  dp.maxEvents = 0;
  return new Engine({
    scheduler: new FakeScheduler(0),
    random: randomBytes,
    send: (p) => out.push(p),
    dataplane: dp,
    log: silent,
    port: 500,
    portNatT: 4500,
    ikeSaLimit: HANDSHAKES * 2 + 16,
    localAddressFor: () => addr,
  });
}

const settle = (): Promise<void> => new Promise((res) => setImmediate(res));

interface Result {
  wallUs: number;
  responderUs: number;
  bytes: number;
}

/** `n` handshakes of one suite against one responder; per-handshake means. */
async function batch(name: SuiteName, n: number): Promise<Result> {
  const proposals = parseProposals(SUITES[name], 'ike');
  const toI: OutPacket[] = [];
  const r = engine('192.0.2.2', toI);
  r.setConfig(config([conn('any', { proposals, local: { auth: 'psk', id: 'gw.lab', certs: [], cacerts: [] }, children: [child('net', { localTs: ['10.0.0.0/8'], remoteTs: ['dynamic'] })] })], [SECRET], HANDSHAKES * 2 + 16));
  let responderMs = 0;
  let bytes = 0;
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    const toR: OutPacket[] = [];
    const peer = `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
    const init = engine(peer, toR);
    init.setConfig(config([conn('gw', { proposals, remoteAddrs: ['192.0.2.2'], local: { auth: 'psk', id: `c${i}.lab`, certs: [], cacerts: [] }, children: [child('net', { remoteTs: ['10.0.0.0/8'] })] })], [SECRET]));
    const p = init.initiate('gw');
    for (let round = 0; round < 12 && (toR.length > 0 || toI.length > 0); round++) {
      const rs = toR.splice(0);
      const s = performance.now();
      for (const x of rs) {
        bytes += x.data.length;
        r.receive(x.remote, x.local, x.data);
      }
      await settle();
      responderMs += performance.now() - s;
      for (const x of toI.splice(0)) {
        bytes += x.data.length;
        init.receive(x.remote, x.local, x.data);
      }
      await settle();
    }
    const sa = await p;
    if (sa.state !== 'ESTABLISHED') throw new Error(`${name}: handshake ${i} did not establish`);
  }
  const wall = performance.now() - t0;
  return { wallUs: (wall * 1000) / n, responderUs: (responderMs * 1000) / n, bytes: bytes / n };
}

async function main(): Promise<void> {
  const names = Object.keys(SUITES) as SuiteName[];
  const per = Math.max(1, Math.floor(HANDSHAKES / ROUNDS));
  for (const n of names) await batch(n, Math.min(50, per)); // warm-up
  const acc = Object.fromEntries(names.map((n) => [n, [] as Result[]])) as Record<SuiteName, Result[]>;
  for (let round = 0; round < ROUNDS; round++) {
    for (const n of round % 2 ? [...names].reverse() : names) acc[n].push(await batch(n, per));
  }
  const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const base = { wall: median(acc.classic.map((r) => r.wallUs)), resp: median(acc.classic.map((r) => r.responderUs)) };
  console.log(`${per} handshakes per batch, ${ROUNDS} alternating batches per suite, medians per handshake (node ${process.version})`);
  console.log('suite     wall both sides     responder           bytes   proposal');
  for (const n of names) {
    const wall = median(acc[n].map((r) => r.wallUs));
    const resp = median(acc[n].map((r) => r.responderUs));
    const bytes = Math.round(median(acc[n].map((r) => r.bytes)));
    console.log(
      `${n.padEnd(9)} ${(wall / 1000).toFixed(2).padStart(6)} ms ${`(${(wall / base.wall).toFixed(2)}x)`.padStart(8)}  ` +
        `${(resp / 1000).toFixed(2).padStart(6)} ms ${`(${(resp / base.resp).toFixed(2)}x)`.padStart(8)}  ${String(bytes).padStart(6)}   ${SUITES[n]}`,
    );
  }
}

await main();
