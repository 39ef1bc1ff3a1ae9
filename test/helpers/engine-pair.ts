/**
 * Two engines joined by an in-memory wire with a fake clock: the wire can drop, duplicate, delay
 * and reorder packets. Used by the component tests.
 */
import { randomBytes } from 'node:crypto';
import pino, { type Logger } from 'pino';
import { Engine, type EngineEvent, type EngineOptions, type OutPacket } from '../../src/ikev2/engine/engine.ts';
import { FakeScheduler, type RandomSource } from '../../src/common/clock.ts';
import { MemoryDataplane } from '../../src/dataplane/memory.ts';
import { EngineContext } from '../../src/ikev2/engine/context.ts';
import type { ChildConfig, Config, ConnectionConfig, SecretConfig } from '../../src/config/types.ts';
import { parseProposals } from '../../src/ikev2/crypto/proposals.ts';
import type { FragmentLimits } from '../../src/ikev2/engine/fragments.ts';
import type { IkeSa } from '../../src/ikev2/sa/ike-sa.ts';

/** Deterministic random bytes (xorshift128+), so SPIs and nonces repeat run to run. */
export function seededRandom(seed: number): RandomSource {
  let s0 = BigInt(seed) | 1n;
  let s1 = BigInt(seed * 7919 + 17) | 1n;
  const M = (1n << 64n) - 1n;
  return (n: number) => {
    const out = Buffer.alloc(n);
    for (let i = 0; i < n; i += 8) {
      let x = s0;
      const y = s1;
      s0 = y;
      x ^= (x << 23n) & M;
      s1 = x ^ y ^ (x >> 17n) ^ (y >> 26n);
      const v = (s1 + y) & M;
      const b = Buffer.alloc(8);
      b.writeBigUInt64BE(v);
      b.copy(out, i, 0, Math.min(8, n - i));
    }
    return out;
  };
}

export function child(name: string, o: Partial<ChildConfig> = {}): ChildConfig {
  return {
    name,
    localTs: ['dynamic'],
    remoteTs: ['dynamic'],
    espProposals: parseProposals('aes256gcm16', 'esp'),
    mode: 'tunnel',
    startAction: 'none',
    closeAction: 'none',
    dpdAction: 'clear',
    rekeyTime: 3600,
    lifeTime: 3960,
    randTime: 360,
    rekeyBytes: 0,
    lifeBytes: 0,
    randBytes: 0,
    rekeyPackets: 0,
    lifePackets: 0,
    randPackets: 0,
    replayWindow: 32,
    vppMode: 'p2p',
    vppTable: 0,
    vppRoutes: true,
    loc: { file: 'test', line: 1, col: 1 },
    ...o,
  };
}

export function conn(name: string, o: Partial<ConnectionConfig> = {}): ConnectionConfig {
  return {
    name,
    localAddrs: [],
    remoteAddrs: [],
    localPort: 500,
    remotePort: 500,
    proposals: parseProposals('aes256gcm16-prfsha256-x25519', 'ike'),
    encap: false,
    dpdDelay: 0,
    dpdTimeout: 0,
    rekeyTime: 14400,
    reauthTime: 0,
    overTime: 1440,
    randTime: 1440,
    fragmentation: 'yes',
    unique: 'no',
    sendCert: 'ifasked',
    sendCertreq: true,
    mobike: false,
    keyingtries: 1,
    local: { auth: 'psk', id: '', certs: [], cacerts: [] },
    remote: { auth: 'psk', id: '', certs: [], cacerts: [] },
    children: [child('net')],
    loc: { file: 'test', line: 1, col: 1 },
    ...o,
  };
}

export function psk(ids: string[], secret: string): SecretConfig {
  return { name: `ike-${ids.join('-')}`, kind: 'ike', ids, secret, secretBytes: Buffer.from(secret), loc: { file: 'test', line: 1, col: 1 } };
}

export function config(connections: ConnectionConfig[], secrets: SecretConfig[], limit = 1000): Config {
  return {
    daemon: {
      listen: [],
      port: 500,
      portNatT: 4500,
      controlSocket: '/nonexistent',
      logLevel: 'silent',
      ikeSaLimit: limit,
      dataplane: 'memory',
      transport: 'udp',
      stopTimeout: 10,
      stopAction: 'delete',
      recvBufferSize: 4194304,
      workers: 0,
      retransmitTimeout: 4,
      retransmitBase: 1.8,
      retransmitTries: 5,
      cookieThreshold: 30,
      blockThreshold: 5,
      initLimitHalfOpen: 0,
      startLimitHalfOpen: 1000,
      keepAlive: 20,
      trafficPoll: 10,
      fragmentSize: 1280,
    },
    vpp: { socket: '/nonexistent', puntSocket: '/nonexistent', puntReader: 'thread' },
    connections,
    secrets,
    files: [],
  };
}

export interface Node {
  addr: string;
  engine: Engine;
  dp: MemoryDataplane;
  events: EngineEvent[];
}

interface InFlight {
  p: OutPacket;
  deliverAt: number;
}

/** The in-memory network: every packet sent by any node is queued here until delivered. */
export class Wire {
  /** One clock per engine (each engine owns its scheduler's handler), all moved together. */
  private readonly clocks: FakeScheduler[] = [];
  private t = 1_000_000;
  readonly sched = {
    now: (): number => this.t,
    advance: (ms: number): void => {
      this.t += ms;
      for (const c of this.clocks) c.advance(this.t - c.now());
    },
  };
  readonly nodes = new Map<string, Node>();
  queue: InFlight[] = [];
  /** Returns what to do with a packet: deliver, drop or duplicate. */
  filter: (p: OutPacket) => 'deliver' | 'drop' | 'dup' = () => 'deliver';
  delayMs = 0;
  log: OutPacket[] = [];
  /** Rewrites packets on their way (a NAT between the nodes); the log keeps them as sent. */
  nat: ((p: OutPacket) => OutPacket) | undefined;
  /** Called after every delivered packet and whenever async work has settled (invariant checks). */
  afterDelivery: () => void = () => undefined;
  private seed = 1;

  add(addr: string, cfg: Config, o: { limit?: number; log?: Logger; fragmentLimits?: Partial<FragmentLimits>; maxDatagram?: number; engine?: Partial<EngineOptions> } = {}): Node {
    const dp = new MemoryDataplane();
    const events: EngineEvent[] = [];
    const clock = new FakeScheduler(this.t);
    this.clocks.push(clock);
    const engine = new Engine({
      scheduler: clock,
      random: seededRandom(this.seed++),
      send: (p) => this.send(p),
      dataplane: dp,
      log: o.log ?? pino({ level: process.env.TEST_LOG ?? 'silent', base: { node: addr } }),
      port: 500,
      portNatT: 4500,
      ikeSaLimit: o.limit ?? cfg.daemon.ikeSaLimit,
      onEvent: (e) => events.push(e),
      localAddressFor: () => addr,
      fragmentSize: cfg.daemon.fragmentSize,
      fragmentSizeV4: cfg.daemon.fragmentSizeV4,
      fragmentSizeV6: cfg.daemon.fragmentSizeV6,
      fragmentLimits: o.fragmentLimits,
      maxDatagram: o.maxDatagram,
      ...o.engine,
    });
    engine.setConfig(cfg);
    const n = { addr, engine, dp, events };
    this.nodes.set(addr, n);
    return n;
  }

  private send(p: OutPacket): void {
    this.log.push(p);
    const what = this.filter(p);
    if (what === 'drop') return;
    this.queue.push({ p, deliverAt: this.sched.now() + this.delayMs });
    if (what === 'dup') this.queue.push({ p, deliverAt: this.sched.now() + this.delayMs });
  }

  /** Deliver everything that is due, letting async work (dataplane calls) settle, until quiet. */
  async run(maxRounds = 200): Promise<void> {
    for (let round = 0; round < maxRounds; round++) {
      await settle();
      this.afterDelivery();
      const now = this.sched.now();
      const due = this.queue.filter((x) => x.deliverAt <= now);
      if (due.length === 0) return;
      this.queue = this.queue.filter((x) => x.deliverAt > now);
      for (const { p: sent } of due) {
        const p = this.nat ? this.nat(sent) : sent;
        // NAT-T keepalives end in the transport, as they do in the daemon.
        if (p.keepalive) continue;
        const dst = this.nodes.get(p.remote.addr);
        if (dst) dst.engine.receive({ ...p.remote }, { ...p.local }, p.data);
        this.afterDelivery();
      }
    }
    throw new Error('wire did not settle');
  }

  /** Advance the fake clock (firing timers), delivering packets on the way. */
  async advance(ms: number, step = 500): Promise<void> {
    for (let t = 0; t < ms; t += step) {
      this.sched.advance(Math.min(step, ms - t));
      await this.run();
    }
  }

  /** Reverse the order of queued packets (reordering). */
  reorder(): void {
    this.queue.reverse();
  }
}

export async function settle(): Promise<void> {
  for (let i = 0; i < 20; i++) await new Promise<void>((r) => setImmediate(r));
}

/** A standard pair: 192.0.2.1 (initiator "a") and 192.0.2.2 (responder "b") with a PSK. */
export function pair(
  o: {
    a?: Partial<ConnectionConfig>;
    b?: Partial<ConnectionConfig>;
    limit?: number;
    logA?: Logger;
    logB?: Logger;
    fragmentSize?: number;
    fragmentLimits?: Partial<FragmentLimits>;
    maxDatagram?: number;
    engineA?: Partial<EngineOptions>;
    engineB?: Partial<EngineOptions>;
  } = {},
) {
  const w = new Wire();
  const secret = psk(['a.lab', 'b.lab'], 'lab-preshared-key-0123456789');
  const sized = (c: Config): Config => (o.fragmentSize === undefined ? c : { ...c, daemon: { ...c.daemon, fragmentSize: o.fragmentSize } });
  const a = w.add(
    '192.0.2.1',
    sized(config(
      [
        conn('lab', {
          localAddrs: ['192.0.2.1'],
          remoteAddrs: ['192.0.2.2'],
          local: { auth: 'psk', id: 'a.lab', certs: [], cacerts: [] },
          remote: { auth: 'psk', id: 'b.lab', certs: [], cacerts: [] },
          children: [child('net', { localTs: ['10.1.0.0/16'], remoteTs: ['10.2.0.0/16'] })],
          ...o.a,
        }),
      ],
      [secret],
    )),
    { log: o.logA, fragmentLimits: o.fragmentLimits, maxDatagram: o.maxDatagram, engine: o.engineA },
  );
  const b = w.add(
    '192.0.2.2',
    sized(config(
      [
        conn('lab', {
          localAddrs: ['192.0.2.2'],
          remoteAddrs: ['192.0.2.1'],
          local: { auth: 'psk', id: 'b.lab', certs: [], cacerts: [] },
          remote: { auth: 'psk', id: 'a.lab', certs: [], cacerts: [] },
          children: [child('net', { localTs: ['10.2.0.0/16'], remoteTs: ['10.1.0.0/16'] })],
          ...o.b,
        }),
      ],
      [secret],
      o.limit,
    )),
    { log: o.logB, fragmentLimits: o.fragmentLimits, maxDatagram: o.maxDatagram, engine: o.engineB },
  );
  return { w, a, b };
}

/** A message for lossy() to lose or duplicate. */
export interface Loss {
  /** Which side sends it (a is 192.0.2.1 in pair()). */
  from: 'a' | 'b';
  exchange: number;
  response: boolean;
  /** The n-th such message after the losses were armed (1 = the first). */
  nth: number;
  what?: 'drop' | 'dup';
}

/** Who sent a packet of pair()'s wire, its exchange type and whether it is a response. */
export function messageKind(p: OutPacket): { from: 'a' | 'b'; exchange: number; response: boolean } {
  return { from: p.local.addr === '192.0.2.1' ? 'a' : 'b', exchange: p.data[18]!, response: (p.data[19]! & 0x20) !== 0 };
}

/** A wire filter that loses or duplicates the listed messages. */
export function lossy(w: Wire, losses: readonly Loss[]): void {
  const seen = new Map<string, number>();
  w.filter = (p) => {
    const k = messageKind(p);
    const key = `${k.from}/${k.exchange}/${k.response}`;
    const n = (seen.get(key) ?? 0) + 1;
    seen.set(key, n);
    const hit = losses.find((l) => l.from === k.from && l.exchange === k.exchange && l.response === k.response && l.nth === n);
    return hit ? (hit.what ?? 'drop') : 'deliver';
  };
}

/** The IKE SAs of a node that are not dead. */
export function live(n: Node): IkeSa[] {
  return [...n.engine.table.values()].filter((s) => !s.dead);
}

/** An engine context with no peer: enough to schedule rekeys and lifetimes on a fake clock. */
export function timerContext(sched: FakeScheduler, ikeSaLimit: number): EngineContext {
  return new EngineContext({
    scheduler: sched,
    random: (n) => randomBytes(n),
    send: () => undefined,
    dataplane: new MemoryDataplane(),
    log: pino({ level: 'silent' }),
    port: 500,
    portNatT: 4500,
    ikeSaLimit,
  });
}
