/**
 * The datagram floor of one responder handshake with node:dgram: what a node daemon spends, at
 * the least, to receive the two requests of a PSK handshake (IKE_SA_INIT, IKE_AUTH) and to send the
 * two responses, without parsing, crypto or state. Measured in the bench lab's two namespaces (the
 * same veth pair as the load-tester runs), so the kernel's share (each send carries the veth delivery
 * to the peer) is counted as /proc counts it for a daemon.
 *
 *   server (side B, UDP 500)  a node:dgram socket with a 4 MiB receive buffer and a literal
 *                             address lookup (as the daemon's), sending without a completion
 *                             callback, that answers every datagram with one of the response's
 *                             size: 240 bytes for an IKE_SA_INIT, 220 for an IKE_AUTH
 *   driver (side A)           `--n` handshakes, `--window` under way at once (or `--rate` per
 *                             second): a 280-byte request, its answer, a 330-byte request, its
 *                             answer (sizes of the load-tester's x25519 handshake; `--ke-bytes`
 *                             sizes the KE value instead, 64 for ecp256)
 *
 * Reported: the server's CPU (user + system, /proc) per handshake. bench/vs-strongswan.ts runs it
 * after each charon run and adds the crypto floor (bench/handshake-floor.ts): the two together are
 * what any node:dgram + node:crypto responder spends per IKE SA before its own code runs.
 *
 * Run (root): node bench/datagram-floor.ts [--n 20000] [--window 64] [--rate HANDSHAKES_PER_S] [--ke-bytes 32]
 * (`--rate`: new handshakes started at that pace instead of `--window` at once)
 * The two roles run as child processes of this script (`serve`, `drive`).
 */
import dgram from 'node:dgram';
import { parseArgs } from 'node:util';
import { pathToFileURL } from 'node:url';
import { createLab, LAB_ADDR, type Lab, type LabProcess } from '../test/interop/harness.ts';
import { procStat } from '../test/helpers/proc.ts';

const PORT = 500;
/** Datagram sizes of a load-tester PSK handshake with a 32-byte KE value (x25519); `--ke-bytes` adds the difference to both IKE_SA_INIT messages. */
const INIT_REQ = 280;
const INIT_RESP = 240;
const AUTH_REQ = 330;
const AUTH_RESP = 220;
const X25519_KE = 32;

/** Answers every datagram with one of its response's size (byte 0: 1 IKE_SA_INIT, 2 IKE_AUTH; bytes 1-4 echoed). */
function serve(keBytes: number): void {
  const initResp = Buffer.alloc(INIT_RESP + keBytes - X25519_KE);
  const authResp = Buffer.alloc(AUTH_RESP);
  const sock = dgram.createSocket({
    type: 'udp4',
    lookup: (host, _opts, cb) => (cb as (e: null, a: string, f: number) => void)(null, host, 4),
  });
  sock.on('message', (msg, rinfo) => {
    // a fresh response each time, as a daemon builds one per request
    const out = Buffer.from(msg[0] === 1 ? initResp : authResp);
    out[0] = msg[0]!;
    msg.copy(out, 1, 1, 5);
    sock.send(out, rinfo.port, rinfo.address);
  });
  sock.bind({ address: LAB_ADDR.b.v4, port: PORT, exclusive: true }, () => {
    sock.setRecvBufferSize(4 * 1024 * 1024);
    console.log('ready');
  });
  process.on('SIGTERM', () => process.exit(0));
}

/** Runs `n` two-round-trip handshakes against the server, `window` at once; prints the wall time. */
function drive(n: number, window: number, rate: number, keBytes: number): void {
  const sock = dgram.createSocket({ type: 'udp4' });
  const initReq = Buffer.alloc(INIT_REQ + keBytes - X25519_KE);
  const authReq = Buffer.alloc(AUTH_REQ);
  let started = 0;
  let done = 0;
  const t0 = performance.now();
  const sent = new Map<number, number>(); // id -> time of the last request (retransmitted after 500 ms)
  let retransmits = 0;
  const request = (id: number, kind: 1 | 2): void => {
    const b = Buffer.from(kind === 1 ? initReq : authReq); // sent after the address lookup: not reused meanwhile
    b[0] = kind;
    b.writeUInt32BE(id, 1);
    sent.set(id, performance.now());
    sock.send(b, PORT, LAB_ADDR.b.v4);
  };
  const startNext = (): void => {
    if (started < n) request(started++, 1);
  };
  sock.on('message', (msg) => {
    const id = msg.readUInt32BE(1);
    if (!sent.has(id)) return;
    if (msg[0] === 1) request(id, 2);
    else {
      sent.delete(id);
      done++;
      if (done === n) {
        console.log(`done ${(performance.now() - t0).toFixed(0)} ms, ${retransmits} retransmits`);
        sock.close();
        clearInterval(timer);
      } else if (rate === 0) startNext();
    }
  });
  // a lost datagram is sent again (the kind is not known here: an IKE_SA_INIT again is answered too)
  const timer = setInterval(() => {
    const now = performance.now();
    for (const [id, t] of sent) {
      if (now - t > 500) {
        retransmits++;
        request(id, 1);
      }
    }
  }, 250);
  sock.bind(0, LAB_ADDR.a.v4, () => {
    sock.setRecvBufferSize(4 * 1024 * 1024);
    if (rate === 0) for (let i = 0; i < window; i++) startNext();
    else {
      // `rate` new handshakes per second, started in 1 ms ticks as they fall due
      const pacer = setInterval(() => {
        const due = Math.min(n, Math.floor(((performance.now() - t0) * rate) / 1000));
        while (started < due) startNext();
        if (started >= n) clearInterval(pacer);
      }, 1);
    }
  });
}

export interface DatagramFloor {
  handshakes: number;
  /** the server's CPU µs (user + system) per handshake: 2 datagrams in, 2 out */
  cpuUs: number;
  /** of it in the kernel */
  sysUs: number;
  wallMs: number;
  /** requests the driver sent again (a lost datagram) */
  retransmits: number;
}

/** Runs the server in side B and the driver in side A of `lab`; returns the server's CPU per handshake. */
export async function runDatagramFloor(lab: Lab, n = 20_000, window = 64, rate = 0, keBytes = X25519_KE): Promise<DatagramFloor> {
  if (!(Number.isInteger(n) && n > 0) || !(Number.isInteger(window) && window > 0) || !(Number.isFinite(rate) && rate >= 0) || !(Number.isInteger(keBytes) && keBytes > 0)) {
    throw new RangeError(`datagram floor: bad parameters n=${n} window=${window} rate=${rate} ke=${keBytes}`);
  }
  const self = import.meta.filename;
  const server = lab.spawn('b', process.execPath, [self, 'serve', '--ke-bytes', String(keBytes)], {}, { name: 'dgram-floor-server' });
  let driver: LabProcess | undefined;
  try {
    await server.waitForLine(/^ready/, 10_000);
    const s0 = procStat(server.pid);
    driver = lab.spawn('a', process.execPath, [self, 'drive', '--n', String(n), '--window', String(window), '--rate', String(rate), '--ke-bytes', String(keBytes)], {}, { name: 'dgram-floor-driver' });
    // paced: the last handshake starts n / rate seconds in
    const line = await driver.waitForLine(/^done \d+ ms/, 60_000 + (rate > 0 ? (n * 1000) / rate : 0));
    const s1 = procStat(server.pid);
    await driver.exited;
    return {
      handshakes: n,
      cpuUs: ((s1.cpuMs - s0.cpuMs) * 1000) / n,
      sysUs: ((s1.sysMs - s0.sysMs) * 1000) / n,
      wallMs: Number(/done (\d+)/.exec(line)![1]),
      retransmits: Number(/(\d+) retransmits/.exec(line)![1]),
    };
  } finally {
    await driver?.kill();
    await server.kill();
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      n: { type: 'string', default: '20000' },
      window: { type: 'string', default: '64' },
      rate: { type: 'string', default: '0' },
      'ke-bytes': { type: 'string', default: String(X25519_KE) },
    },
  });
  const role = positionals[0];
  const keBytes = Number(values['ke-bytes']);
  if (role === 'serve') serve(keBytes);
  else if (role === 'drive') drive(Number(values.n), Number(values.window), Number(values.rate), keBytes);
  else {
    const lab = await createLab({ tag: 'dgram-floor' });
    try {
      const f = await runDatagramFloor(lab, Number(values.n), Number(values.window), Number(values.rate), keBytes);
      console.log(`datagram floor: ${f.cpuUs.toFixed(0)} CPU µs per handshake (${f.sysUs.toFixed(0)} of it in the kernel), ` +
        `${f.handshakes} handshakes in ${f.wallMs} ms, ${f.retransmits} retransmits`);
    } finally {
      await lab.destroy();
    }
  }
}
