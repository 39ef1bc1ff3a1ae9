/**
 * What every part of the engine shares: the injected clock, random source, packet sink and dataplane,
 * the session table, the loaded configuration, counters and the few engine-wide maps. The exchange
 * modules are plain functions over this context and the SA records; nothing here is per SA.
 */
import type { Logger } from 'pino';
import type { IkeSa, ChildSa, Task } from '../sa/ike-sa.ts';
import { newGauges } from '../sa/ike-sa.ts';
import { SaTable } from '../sa/table.ts';
import { ConfigIndex } from '../sa/config-index.ts';
import type { Sel } from '../sa/ts.ts';
import type { Scheduler, RandomSource } from '../../common/clock.ts';
import { pooledRandom } from '../crypto/random.ts';
import type { InitCryptoPool } from '../crypto/pool.ts';
import type { Dataplane } from '../../dataplane/types.ts';
import type { ChildConfig } from '../../config/types.ts';
import { NO_CREDENTIALS, type Credentials } from '../../config/credentials.ts';
import { DEFAULTS } from '../../config/schema.ts';
import type { EncrAlg, IntegAlg } from '../crypto/suites.ts';
import { CookieJar } from './cookies.ts';
import { KeepaliveWheel } from './keepalive.ts';
import { TrafficWatch } from './traffic.ts';
import { DEFAULT_FRAGMENT_LIMITS, DEFAULT_FRAGMENT_SIZE, fragmentSizeFor, type FragmentDrop, type FragmentLimits } from './fragments.ts';

export interface Endpoint {
  addr: string;
  port: number;
}

export interface OutPacket {
  local: Endpoint;
  remote: Endpoint;
  /** The IKE message; the transport adds the non-ESP marker where the ports call for it. */
  data: Buffer;
  /** A NAT-T keepalive (RFC 3948 §2.3): `data` is the one byte 0xFF, sent as it is (no marker). */
  keepalive?: boolean;
}

export type EngineEvent =
  | { type: 'ike-up'; sa: IkeSa }
  | { type: 'ike-down'; sa: IkeSa; reason: string }
  | { type: 'child-up'; sa: IkeSa; child: ChildSa }
  | { type: 'child-down'; sa: IkeSa; child: ChildSa; reason: string }
  | { type: 'child-rekeyed'; sa: IkeSa; old: ChildSa; child: ChildSa }
  | { type: 'ike-rekeyed'; sa: IkeSa; old: IkeSa };

export interface EngineOptions {
  scheduler: Scheduler;
  random: RandomSource;
  send: (p: OutPacket) => void;
  dataplane: Dataplane;
  log: Logger;
  /** Ports this daemon listens on (IKE and NAT-T). */
  port: number;
  portNatT: number;
  ikeSaLimit: number;
  /** Retransmission: timeout (s), base, tries (strongSwan defaults 4, 1.8, 5). */
  retransmitTimeout?: number;
  retransmitBase?: number;
  retransmitTries?: number;
  /** Seconds a half-open IKE SA may wait for IKE_AUTH. */
  halfOpenTimeout?: number;
  /** Half-open IKE SAs (peers' ones) from which on IKE_SA_INIT requests must return a cookie; 0 = never. */
  cookieThreshold?: number;
  /** Half-open IKE SAs from one address from which on its IKE_SA_INIT requests are dropped; 0 = no limit. */
  blockThreshold?: number;
  /** Half-open IKE SAs from which on every IKE_SA_INIT request is dropped; 0 = no limit. */
  initLimitHalfOpen?: number;
  /**
   * IKE SAs started from the start queue (start_action = start) that may wait for their peer's
   * answers at once; 0 = no limit (keep-up.ts).
   */
  startLimitHalfOpen?: number;
  /** Seconds between NAT-T keepalives from the side behind a NAT; 0 = none. */
  keepAlive?: number;
  /** Seconds between reads of the SA counters of CHILD_SAs with volume lifetimes (default 10). */
  trafficPoll?: number;
  onEvent?: (e: EngineEvent) => void;
  /** Our source address towards a peer, when the connection names none (the transport knows). */
  localAddressFor?: (remote: string) => string | undefined;
  /** Wall-clock time in ms (certificate validity); default Date.now. */
  wallClock?: () => number;
  /**
   * Worker threads for the key exchange and key derivation of IKE_SA_INIT requests we answer
   * (`daemon.workers`); 0 or absent: they run on the event loop, synchronously.
   */
  workers?: number;
  /**
   * Start those threads only when load appears: after this many IKE_SA_INIT requests within one
   * second (until a thread has loaded, requests are computed on the event loop). 0 or absent: the
   * threads start with the engine.
   */
  workersStartAt?: number;
  /** With workersStartAt: stop the threads after this long (ms) without a job (see PoolOptions.stopAfterMs). */
  workersStopAfterMs?: number;
  /**
   * IKE fragmentation (RFC 7383): the IP datagram size of our fragments (strongSwan's
   * `charon.fragment_size`, default 1280; 0 = 576 for IPv4 and 1280 for IPv6) and per family
   * (`fragment_size_v4`/`_v6`, 0 or unset = fragmentSize).
   */
  fragmentSize?: number;
  fragmentSizeV4?: number;
  fragmentSizeV6?: number;
  /** Largest IP datagram the transport can send (the punt socket: 2048); fragments stay within it. */
  maxDatagram?: number;
  /** Limits on the reassembly of received fragments. */
  fragmentLimits?: Partial<FragmentLimits>;
}

/** Counters exported by `vpp-ikectl stats` and the metrics endpoint. */
export interface EngineStats {
  rxPackets: number;
  txPackets: number;
  rxInvalid: number;
  rxBadIcv: number;
  rxUnknownSpi: number;
  rxUnmatchedResponse: number;
  rxDroppedBusy: number;
  retransmitsSent: number;
  retransmitsAnswered: number;
  initRefusedFull: number;
  /** IKE_SA_INIT requests answered with a COOKIE notification. */
  cookiesSent: number;
  /** IKE_SA_INIT requests that returned a valid cookie. */
  cookiesVerified: number;
  /** IKE_SA_INIT requests with a cookie we did not make, or from an expired secret (answered with a new cookie). */
  cookiesInvalid: number;
  /** IKE_SA_INIT requests dropped: block_threshold half-open IKE SAs from the same address. */
  initDroppedBlocked: number;
  /** IKE_SA_INIT requests dropped: init_limit_half_open reached. */
  initDroppedHalfOpen: number;
  /** NAT-T keepalives sent. */
  keepalivesSent: number;
  /** The peer's address or port changed (NAT mapping change, MOBIKE): the IKE SA and its CHILD_SAs moved. */
  peerMoved: number;
  /** MOBIKE UPDATE_SA_ADDRESSES requests processed. */
  mobikeUpdates: number;
  /** MOBIKE return routability checks that failed (COOKIE2 not echoed, or no answer). */
  mobikeCheckFailed: number;
  evicted: number;
  ikeEstablished: number;
  ikeFailed: number;
  ikeDeleted: number;
  childEstablished: number;
  childFailed: number;
  childDeleted: number;
  childRekeyed: number;
  ikeRekeyed: number;
  /** Rekeys of a CHILD_SA / an IKE SA that the peer started while ours of the same SA was in flight (RFC 7296 §2.8). */
  childRekeyCollisions: number;
  ikeRekeyCollisions: number;
  authFailed: number;
  noProposal: number;
  invalidKe: number;
  tsUnacceptable: number;
  dataplaneErrors: number;
  /** IKE fragmentation (RFC 7383): SKF datagrams sent (retransmissions included) and received. */
  fragmentsSent: number;
  fragmentsReceived: number;
  /** Messages of ours sent as fragments, and the peer's messages reassembled from fragments. */
  messagesFragmented: number;
  messagesReassembled: number;
}

/** Received IKE fragments dropped, by reason (`vpp_iked_ike_fragments_dropped_total{reason}`). */
export type FragmentDrops = Record<FragmentDrop, number>;

export function newFragmentDrops(): FragmentDrops {
  return { unknown_sa: 0, not_negotiated: 0, unexpected: 0, invalid: 0, duplicate: 0, stale_total: 0, too_many: 0, too_big: 0, superseded: 0, timeout: 0, memory: 0, busy: 0 };
}

function newStats(): EngineStats {
  return {
    rxPackets: 0,
    txPackets: 0,
    rxInvalid: 0,
    rxBadIcv: 0,
    rxUnknownSpi: 0,
    rxUnmatchedResponse: 0,
    rxDroppedBusy: 0,
    retransmitsSent: 0,
    retransmitsAnswered: 0,
    initRefusedFull: 0,
    cookiesSent: 0,
    cookiesVerified: 0,
    cookiesInvalid: 0,
    initDroppedBlocked: 0,
    initDroppedHalfOpen: 0,
    keepalivesSent: 0,
    peerMoved: 0,
    mobikeUpdates: 0,
    mobikeCheckFailed: 0,
    evicted: 0,
    ikeEstablished: 0,
    ikeFailed: 0,
    ikeDeleted: 0,
    childEstablished: 0,
    childFailed: 0,
    childDeleted: 0,
    childRekeyed: 0,
    ikeRekeyed: 0,
    childRekeyCollisions: 0,
    ikeRekeyCollisions: 0,
    authFailed: 0,
    noProposal: 0,
    invalidKe: 0,
    tsUnacceptable: 0,
    dataplaneErrors: 0,
    fragmentsSent: 0,
    fragmentsReceived: 0,
    messagesFragmented: 0,
    messagesReassembled: 0,
  };
}

/** A connection the engine keeps up (start_action = start, dpd/close action restart). */
export interface KeepUp {
  id: number;
  tries: number;
  retryAt: number;
}

/** One IKE SA started from the start queue while it holds a slot of the window (keep-up.ts). */
export interface StartSlot {
  /** When it stops holding its slot even without an answer: its first retransmission (scheduler ms). */
  due: number;
  open: boolean;
}

/**
 * Connections waiting to be started (start_action = start, at start-up and reload) and the window
 * of IKE SAs started from them that wait for their peer's answers (EngineOptions.startLimitHalfOpen).
 */
export interface StartQueue {
  /** Names in the order they joined; those no longer in `queued` are skipped. */
  todo: string[];
  next: number;
  /** Connections waiting (each once). */
  queued: Set<string>;
  /** Slots in start order; the ones that are no longer open go once they reach the front. */
  slots: StartSlot[];
  head: number;
  /** Open slots. */
  open: number;
  /** A turn of startSome is scheduled (setImmediate). */
  scheduled: boolean;
  /** Due time of the timer entry armed for the oldest open slot (0: none). */
  armedAt: number;
}

interface Waiter<T> {
  resolve: (v: T) => void;
  reject: (e: Error) => void;
}

/** Someone waiting for a CHILD_SA of a given config to be installed on an IKE SA. */
export interface ChildWaiter extends Waiter<ChildSa> {
  name: string;
}

type OptionalOptions = 'trafficPoll' | 'onEvent' | 'localAddressFor' | 'fragmentSize' | 'fragmentSizeV4' | 'fragmentSizeV6' | 'maxDatagram' | 'fragmentLimits' | 'workers' | 'workersStartAt' | 'workersStopAfterMs';
export type ResolvedOptions = Required<Omit<EngineOptions, OptionalOptions>> & Pick<EngineOptions, OptionalOptions>;

export const NONCE_LEN = 32;
/** Seconds a half-open IKE SA may wait for IKE_AUTH (strongSwan's half_open_timeout). */
export const HALF_OPEN_TIMEOUT_S = 30;
/** Received messages that may wait for a busy IKE SA. */
export const MAX_PENDING = 8;
export const ZERO_SPI = Buffer.alloc(8);

export class EngineContext {
  readonly opts: ResolvedOptions;
  readonly sched: Scheduler;
  readonly log: Logger;
  readonly dp: Dataplane;
  readonly table: SaTable;
  /** IKE SAs by state and the number of CHILD SAs, kept current (for metrics). */
  readonly gauges = newGauges();
  readonly stats: EngineStats = newStats();
  readonly fragmentDrops: FragmentDrops = newFragmentDrops();
  index = new ConfigIndex([], []);
  /** Certificates, keys and trust of the loaded configuration. */
  creds: Credentials = NO_CREDENTIALS;
  /** Some connection authenticates with certificates (we announce RFC 7427 signature hashes). */
  pubkeyInUse = false;
  /** CERTREQ data naming every CA of every `remote.auth = pubkey` connection (responder, IKE_SA_INIT). */
  certreqAll: Buffer = Buffer.alloc(0);
  nextSaId = 1;
  nextChildId = 1;
  /** The IKE SA of each CHILD_SA (by CHILD_SA id); the CHILD_SA is in its `children` (childEntry()). */
  readonly childrenById = new Map<number, IkeSa>();
  /** Waiters of `initiate()` calls, per IKE SA id. */
  readonly waiters = new Map<number, Waiter<IkeSa>[]>();
  /** Waiters for a CHILD_SA by config name, per IKE SA id. */
  readonly childWaiters = new Map<number, ChildWaiter[]>();
  /** Connections with start_action=start that we keep up, and their retry state. */
  readonly keepUp = new Map<string, KeepUp>();
  /** Retry timers are keyed by a negative number per connection kept up. */
  readonly keepUpById = new Map<number, string>();
  nextKeepUpId = 1;
  /** Connections waiting to be started and the window of those started (keep-up.ts). */
  readonly starts: StartQueue = { todo: [], next: 0, queued: new Set(), slots: [], head: 0, open: 0, scheduled: false, armedAt: 0 };
  /**
   * Shut down: no connection is started, no IKE_SA_INIT answered, no exchange of ours started; IKE
   * SAs left wait only for the exchange in flight before their Delete (teardown.ts).
   */
  stopped = false;
  /** Called once every IKE SA is gone after a shutdown. */
  drained: (() => void) | undefined;
  /** Parsed traffic selectors per child config (configs are immutable; a reload brings new objects). */
  readonly tsCache = new WeakMap<ChildConfig, { local: (Sel | 'dynamic')[]; remote: (Sel | 'dynamic')[] }>();
  readonly espSupported: (encr: EncrAlg, integ: IntegAlg | null) => boolean;
  /** Secrets of our responder cookies. */
  readonly cookies: CookieJar;
  /** Cookies are required until this time (ms) even below the threshold (see COOKIE_CALMDOWN_MS). */
  cookiesUntil = 0;
  /** IKE SAs behind a NAT that send keepalives: a timing wheel of one-second slots (keepalive.ts). */
  readonly keepalive: KeepaliveWheel;
  /** CHILD_SAs with volume lifetimes and the one poll of their counters (traffic.ts). */
  readonly traffic: TrafficWatch;
  /** Worker threads for IKE_SA_INIT's crypto (EngineOptions.workers), set up by the Engine. */
  pool: InitCryptoPool<IkeSa> | undefined;
  /** IP datagram size of our IKE fragments, by address family. */
  readonly fragmentSize: { readonly 4: number; readonly 6: number };
  readonly fragmentLimits: FragmentLimits;
  /** Decrypted fragment bytes held for reassembly over all IKE SAs. */
  defragBytes = 0;

  constructor(opts: EngineOptions) {
    this.opts = {
      retransmitTimeout: DEFAULTS.daemon.retransmitTimeout,
      retransmitBase: DEFAULTS.daemon.retransmitBase,
      retransmitTries: DEFAULTS.daemon.retransmitTries,
      halfOpenTimeout: HALF_OPEN_TIMEOUT_S,
      wallClock: Date.now,
      cookieThreshold: DEFAULTS.daemon.cookieThreshold,
      blockThreshold: DEFAULTS.daemon.blockThreshold,
      initLimitHalfOpen: DEFAULTS.daemon.initLimitHalfOpen,
      startLimitHalfOpen: DEFAULTS.daemon.startLimitHalfOpen,
      keepAlive: DEFAULTS.daemon.keepAlive,
      ...opts,
      random: pooledRandom(opts.random),
    };
    this.sched = opts.scheduler;
    this.log = opts.log;
    this.dp = opts.dataplane;
    this.table = new SaTable(opts.ikeSaLimit);
    const size = opts.fragmentSize ?? DEFAULT_FRAGMENT_SIZE;
    this.fragmentSize = {
      4: fragmentSizeFor(4, size, opts.fragmentSizeV4, opts.maxDatagram),
      6: fragmentSizeFor(6, size, opts.fragmentSizeV6, opts.maxDatagram),
    };
    this.fragmentLimits = { ...DEFAULT_FRAGMENT_LIMITS, ...opts.fragmentLimits };
    const f = opts.dataplane.features();
    this.espSupported = (encr, integ) => f.encr.has(`${encr.id}:${encr.keyBits}`) && (integ === null || f.integ.has(integ.id));
    this.cookies = new CookieJar(this.sched, this.opts.random);
    this.keepalive = new KeepaliveWheel(this.opts.keepAlive);
    this.traffic = new TrafficWatch(opts.trafficPoll ?? DEFAULTS.daemon.trafficPoll);
  }

  /** Whether debug lines are wanted now (the level can change at run time). */
  get debug(): boolean {
    return this.log.isLevelEnabled('debug');
  }
}

/** Arm one of the SA's timers (the due time is the SA's; stale heap entries are ignored when they fire). */
export function setTimer(ctx: EngineContext, sa: IkeSa, kind: number, at: number): void {
  sa.timers[kind] = at;
  ctx.sched.schedule(at, sa.id, kind);
}

export function clearTimer(sa: IkeSa, kind: number): void {
  sa.timers[kind] = 0;
}

/**
 * A random part of `maxS` seconds (rand_time, retry windows) in milliseconds: uniform in
 * [0, maxS × 1000) from the injected source, so SAs made in the same second spread their rekeys
 * over the whole window rather than in steps of whole seconds.
 */
export function jitter(ctx: EngineContext, maxS: number): number {
  return randomMs(ctx, Math.floor(maxS * 1000));
}

/** 2^48: the range of the 6 random bytes randomMs draws (exact in a double). */
const RANGE48 = 2 ** 48;

/** Uniform integer in [0, n) from the injected source (n < 2^48; rejection sampling, no modulo bias). */
export function randomMs(ctx: EngineContext, n: number): number {
  n = Math.floor(n);
  if (n <= 1) return 0;
  const limit = RANGE48 - (RANGE48 % n);
  for (;;) {
    const r = ctx.opts.random(6).readUIntBE(0, 6);
    if (r < limit) return r % n;
  }
}

export function nonce(ctx: EngineContext): Buffer {
  return ctx.opts.random(NONCE_LEN);
}

/**
 * A fresh IKE SPI of ours, unused in the table: a copy of its own (not a view of the random pool).
 * An IkeSa copies it into its own SPI block; tasks hold it only during an exchange.
 */
export function newSpi(ctx: EngineContext): Buffer {
  for (;;) {
    const spi = ctx.opts.random(8);
    if (!spi.equals(ZERO_SPI) && !ctx.table.bySpiBuf(spi)) return Buffer.from(spi);
  }
}

/** A CHILD_SA by id, with its IKE SA. */
export function childEntry(ctx: EngineContext, childId: number): { sa: IkeSa; child: ChildSa } | undefined {
  const sa = ctx.childrenById.get(childId);
  if (sa === undefined) return undefined;
  for (const child of sa.children) if (child.id === childId) return { sa, child };
  return undefined;
}

/** Events go to the daemon (monitor, metrics); a failing listener must not disturb the SA. */
export function emit(ctx: EngineContext, e: EngineEvent): void {
  try {
    ctx.opts.onEvent?.(e);
  } catch (err) {
    ctx.log.error({ ike: e.sa.id, event: e.type, err: err instanceof Error ? err.stack : String(err) }, 'event listener failed');
  }
}

export function resolveWaiters(ctx: EngineContext, sa: IkeSa): void {
  for (const w of ctx.waiters.get(sa.id) ?? []) w.resolve(sa);
  ctx.waiters.delete(sa.id);
}

/** A CHILD_SA is installed: whoever waits for its config on this IKE SA hears of it. */
export function childReady(ctx: EngineContext, sa: IkeSa, child: ChildSa): void {
  const list = ctx.childWaiters.get(sa.id);
  if (!list) return;
  const rest = list.filter((w) => {
    if (w.name !== child.name) return true;
    w.resolve(child);
    return false;
  });
  if (rest.length) ctx.childWaiters.set(sa.id, rest);
  else ctx.childWaiters.delete(sa.id);
}

/** Creating a CHILD_SA of config `name` failed on this IKE SA. */
export function childFailed(ctx: EngineContext, sa: IkeSa, name: string, reason: string): void {
  const list = ctx.childWaiters.get(sa.id);
  if (!list) return;
  const rest = list.filter((w) => {
    if (w.name !== name) return true;
    w.reject(new Error(`CHILD_SA '${name}' could not be established: ${reason}`));
    return false;
  });
  if (rest.length) ctx.childWaiters.set(sa.id, rest);
  else ctx.childWaiters.delete(sa.id);
}

export type { Task };
