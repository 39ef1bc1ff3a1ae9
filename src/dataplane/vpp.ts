/**
 * The VPP dataplane: programs CHILD_SAs into FD.io VPP 26.10 over its binary API.
 *
 * Per CHILD_SA, by `vppMode`:
 * - p2p: an ipsec interface of its own (ipsec_itf_create, P2P, instance from `p2pInstanceBase` up),
 *   admin up, unnumbered to `unnumberedInterface` when configured, bound to `vppTable`; two SAs
 *   (ipsec_sad_entry_add_v2); ipsec_tunnel_protect_update; routes to the remote traffic selectors
 *   through the interface when `vppRoutes`.
 * - p2mp: one shared multipoint interface (`vppInterface`, e.g. "ipsec100", created when absent);
 *   one tunnel protection per peer, keyed by the next hop = the peer's outer address; routes to the
 *   remote selectors via that next hop. CHILD_SAs to the same peer share the protection (newest
 *   outbound SA, up to 4 inbound SAs).
 * - policy: one SPD per `vppTable` bound to `vppInterface`; PROTECT entries in both directions per
 *   selector pair; the SPD also gets BYPASS entries for IKE (UDP 500 and 4500, both directions) and
 *   a lowest-priority outbound BYPASS for everything else (VPP drops outbound packets that match no
 *   policy).
 *
 * Identifiers: VPP does not allocate SPIs or SA ids, so this back end does. Inbound SPIs are random,
 * never below 256, unique among live SAs and SPIs VPP already holds.
 *
 * Reserved ranges (operators must not use them for objects of their own in the same VPP):
 * - sad_ids 0x7e000001–0x7effffff: the top byte 0x7e (OUR_ID_PREFIX) marks an SA as vpp-iked's.
 * - SPD ids from the same range: one SPD per VRF table in policy mode, its id allocated from
 *   0x7e000001 up through a table → id map (any u32 table id gets its own SPD).
 * - p2p ipsec interfaces ipsec<p2pInstanceBase>..ipsec16383 (constructor option, default 1000).
 * At start and after VPP reconnects, objects in these ranges that belong to no known CHILD_SA are
 * removed: SAs and SPDs with the 0x7e prefix (an SPD's entries first: deleting an SPD in VPP does
 * not release the SAs its entries lock), tunnel protections that use such SAs, and p2p ipsec
 * interfaces in the instance range that have no tunnel protection or one that uses only 0x7e SAs.
 * An interface in the range protected with other SAs is an operator's: it is left alone and its
 * instance is not used. sad_ids of ours that VPP still holds after that (locked by something we
 * could not remove) are not handed out again.
 *
 * Protection groups: the CHILD_SAs that share one tunnel protection (p2p: the ones on the same
 * interface; p2mp: the ones to the same peer on the same interface). The protection's sa_out is the
 * outbound SA of the newest member, its sa_in the inbound SAs of the (up to 4) newest members. A
 * p2p interface lives as long as its group has members. Routes are shared by reference: a path is
 * added for its first user and deleted with its last.
 *
 * Make-before-break (ChildInstall.replaces): the new SAs are added and the new CHILD_SA joins the
 * replaced one's group (p2p: same interface; p2mp: same peer), so one protection update switches
 * the outbound direction to the new SA while both inbound SAs accept. The replaced CHILD_SA keeps its
 * inbound SA (and its now unused outbound SA) until remove(old): that updates the protection to the
 * remaining inbound SAs and then deletes the old SAs. In policy mode the new outbound PROTECT
 * entries get a higher priority than the old ones (100..199, wrapping), the old outbound entries are
 * deleted once the new ones are in, and the old inbound entries and SAs stay until remove(old). A
 * replaced CHILD_SA of another mode is left as it is until remove(old).
 * Any failure rolls back what the operation added and rejects with VPP's answer (VppApiError).
 *
 * VPP restart: when the API connection comes back, every installed CHILD_SA is checked and, when VPP
 * lost it, programmed again with the same SPIs, keys and ids (the members of one protection group
 * oldest first, so a replaced CHILD_SA that is not yet removed comes back next to its successor);
 * strays are removed; the listener's replayed() then gets the replayed ids (in paced batches),
 * because re-added outbound SAs start their sequence numbers at 1 again and need a rekey. An SPD
 * that VPP still has, with all its CHILD_SAs, is used again (bound to its interface again if it lost
 * the binding); one that VPP lost, or one of whose CHILD_SAs VPP lost, is rebuilt as a whole with
 * the same id. A CHILD_SA that cannot be programmed again is reported through failed(). A resync that fails as a whole (a
 * dump or a delete VPP refuses) is retried with backoff while the connection lasts; operations wait
 * until it is done. remove() while VPP is unreachable returns at once and is carried out (or, when
 * VPP lost the CHILD_SA, simply not replayed) when the connection is back; remove() during a replay
 * waits for it, and a CHILD_SA removed meanwhile is neither replayed nor reported.
 */

import type {
  ChildInstall,
  Dataplane,
  DataplaneFeatures,
  DataplaneListener,
  InstallResult,
  SaEndpoint,
  SaParams,
  TsRange,
  VppMode,
} from './types.ts';
import { validateChildInstall, validateEndpoints, vppDataplaneFeatures, type InstallCheckContext } from './vpp-rules.ts';
import { SpiAllocator } from './spi.ts';
import { hex8 } from '../common/text.ts';
import { VppClient, VppApiError, type VppClientOptions, type VppConnectedInfo, type VppLogger } from '../vpp/client.ts';
import type { VppReplyOf, VppRequestBody, VppRequestName, VppDumpName, VppDetailsOf } from '../vpp/api.ts';
import { vppCryptoFor, vppIntegFor } from '../vpp/ike-algorithms.ts';
import { apiAddressText, fromApiAddress, parseIp, rangeToPrefixes, toApiAddress, zeroApiAddress, AF_IP6 } from '../vpp/address.ts';
import { VppErr } from '../vpp/errors.ts';
import type { FibPath, IpsecSadEntryV4, IpsecSpdEntry, IpsecSpdEntryV2, Tunnel } from '../vpp/defs.generated.ts';
import { FibPathNhProto, IfStatusFlags, IpsecCryptoAlg, IpsecIntegAlg, IpsecProto, IpsecSadFlags, IpsecSpdAction, TunnelMode } from '../vpp/defs.generated.ts';

/** Top byte of every sad_id and SPD id this back end creates. */
export const OUR_ID_PREFIX = 0x7e000000;
const OUR_ID_MASK = 0xff000000;
const OUR_ID_SPAN = 0x00ffffff;
const U32_MAX = 0xffffffff;
/** VPP's ipsec interface instances are 0..16383 (ipsec_itf_instance_alloc). */
const MAX_INSTANCES = 16 * 1024;

export function isOurId(id: number): boolean {
  return ((id & OUR_ID_MASK) >>> 0) === OUR_ID_PREFIX;
}

const {
  IPSEC_API_SAD_FLAG_USE_ESN: USE_ESN,
  IPSEC_API_SAD_FLAG_USE_ANTI_REPLAY: USE_ANTI_REPLAY,
  IPSEC_API_SAD_FLAG_IS_TUNNEL: IS_TUNNEL,
  IPSEC_API_SAD_FLAG_IS_TUNNEL_V6: IS_TUNNEL_V6,
  IPSEC_API_SAD_FLAG_UDP_ENCAP: UDP_ENCAP,
  IPSEC_API_SAD_FLAG_IS_INBOUND: IS_INBOUND,
} = IpsecSadFlags;
const { IPSEC_API_SPD_ACTION_BYPASS: BYPASS, IPSEC_API_SPD_ACTION_PROTECT: PROTECT } = IpsecSpdAction;
const { TUNNEL_API_MODE_P2P: MODE_P2P, TUNNEL_API_MODE_MP: MODE_MP } = TunnelMode;
const { IPSEC_API_PROTO_ESP: PROTO_ESP, IPSEC_API_PROTO_AH: PROTO_AH } = IpsecProto;
const ADMIN_UP = IfStatusFlags.IF_STATUS_API_FLAG_ADMIN_UP;
/** SPD priorities (higher matches first). PROTECT entries use PROTECT..PROTECT_MAX, below the IKE bypass. */
const PRIORITY = { IKE_BYPASS: 200, PROTECT: 100, PROTECT_MAX: 199, DEFAULT_BYPASS: 0 } as const;

/** The outbound PROTECT priority of a CHILD_SA that replaces one with priority `p`. */
function nextPriority(p: number): number {
  return p >= PRIORITY.PROTECT_MAX || p < PRIORITY.PROTECT ? PRIORITY.PROTECT : p + 1;
}

export interface VppDataplaneOptions {
  /** VPP API socket. Default /run/vpp/api.sock. */
  socket?: string;
  /** pino-compatible logger. */
  log?: VppLogger;
  /** Use this client instead of creating one (its lifetime is then the caller's). */
  client?: VppClient;
  /** Options for the client this back end creates. */
  clientOptions?: Omit<VppClientOptions, 'socket' | 'logger'>;
  /** Interface whose address p2p/p2mp ipsec interfaces borrow (sw_interface_set_unnumbered). Unset: none. */
  unnumberedInterface?: string;
  /** policy mode: interface the SPD is bound to when the CHILD_SA names no vpp_interface. */
  policyInterface?: string;
  /**
   * First ipsec instance number for p2p interfaces (VPP allows 0–16383). Default 1000. Instances
   * from here up are reserved for vpp-iked (see the file header).
   */
  p2pInstanceBase?: number;
  /** replayed() is called with at most this many ids at a time. Default 200. */
  replayBatch?: number;
  /** Pause between replayed() batches (ms). Default 1000. */
  replayIntervalMs?: number;
  /** First and largest pause before a failed resync after a reconnect is tried again (ms). Defaults 500 and 10000. */
  resyncRetryMinMs?: number;
  resyncRetryMaxMs?: number;
}

interface RouteSpec {
  table: number;
  prefix: string;
  len: number;
  isIp6: boolean;
  swIfIndex: number;
  /** Next-hop address (text), or '' for an attached path through a p2p interface. */
  nh: string;
}

interface ChildState {
  child: ChildInstall;
  /** Install order (kept across a replay): the newest member of a group provides the outbound SA. */
  seq: number;
  saIn: number;
  saOut: number;
  /** p2p: the interface; p2mp: the shared interface; policy: the SPD's interface. */
  itfName?: string;
  itfInstance?: number;
  swIfIndex?: number;
  /** The protection group: `p2p|${instance}` or `${iface}|${nh}` (p2mp). */
  group?: string;
  /** The protection's next hop: the peer address (p2mp) or 0.0.0.0 (p2p). */
  nh?: string;
  routes: RouteSpec[];
  policies: IpsecSpdEntryV2[];
  /** policy: priority of the outbound PROTECT entries. */
  outPriority?: number;
  spdTable?: number;
  /** policy: the id of the SPD the entries are in. */
  spdId?: number;
}

interface SpdState {
  spdId: number;
  table: number;
  iface: string;
  swIfIndex: number;
  users: Set<number>;
  ready: boolean;
}

type Undo = (() => Promise<unknown>)[];

/** Serialises async work per key (a per-resource queue). */
class KeyedQueue {
  private readonly tails = new Map<string, Promise<unknown>>();
  run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.tails.get(key) ?? Promise.resolve();
    const next = prev.then(fn, fn);
    const tail = next.catch(() => {});
    this.tails.set(key, tail);
    void tail.then(() => {
      if (this.tails.get(key) === tail) this.tails.delete(key);
    });
    return next;
  }
}

const NOOP_LOG: VppLogger = { debug() {}, info() {}, warn() {}, error() {} };

function familyOf(addr: string): 4 | 6 {
  return parseIp(addr).af === AF_IP6 ? 6 : 4;
}

/** Errors VPP answers when what we remove is already gone. */
function isGone(e: unknown): boolean {
  return (
    e instanceof VppApiError &&
    (e.retval === VppErr.NO_SUCH_ENTRY || e.retval === VppErr.INVALID_SW_IF_INDEX || e.retval === VppErr.INVALID_VALUE)
  );
}

/**
 * Also gone, for a route delete: the path's interface no longer exists (fib_api_path_decode:
 * NO_MATCHING_INTERFACE) or its table does not (fib_api_table_id_decode: NO_SUCH_FIB).
 */
function isRouteGone(e: unknown): boolean {
  return isGone(e) || (e instanceof VppApiError && (e.retval === VppErr.NO_MATCHING_INTERFACE || e.retval === VppErr.NO_SUCH_FIB));
}

function isVppError(e: unknown, retval: number): boolean {
  return e instanceof VppApiError && e.retval === retval;
}

/** What VPP holds, for reconcile and replay decisions. */
interface Snapshot {
  sas: Map<number, { spi: number; swIfIndex: number }>;
  itfs: { instance: number; mode: number; swIfIndex: number }[];
  prots: { swIfIndex: number; nh: string; saOut: number; saIn: number[] }[];
  spds: Set<number>;
  /** Interfaces that have an SPD bound (ipsec_spd_interface_dump). */
  spdBound: Set<number>;
}

/** What reconcile keeps although it looks like ours. */
interface Keep {
  sas: Set<number>;
  instances: Set<number>;
  spds: Set<number>;
}

export class VppDataplane implements Dataplane {
  readonly name = 'vpp';
  readonly client: VppClient;
  private readonly ownsClient: boolean;
  private readonly log: VppLogger;
  private readonly opts: {
    unnumberedInterface: string | undefined;
    policyInterface: string | undefined;
    p2pInstanceBase: number;
    replayBatch: number;
    replayIntervalMs: number;
    resyncRetryMinMs: number;
    resyncRetryMaxMs: number;
  };
  private listener: DataplaneListener = {};
  private readonly children = new Map<number, ChildState>();
  private readonly allocatedSpis = new Set<number>();
  private readonly liveSpis = new Map<number, number>();
  /** SPIs of inbound SAs VPP holds that are not ours (never handed out). */
  private readonly foreignSpis = new Set<number>();
  private readonly spis = new SpiAllocator((spi) => this.allocatedSpis.has(spi) || this.liveSpis.has(spi) || this.foreignSpis.has(spi));
  private readonly liveSadIds = new Set<number>();
  /** sad_ids with our prefix that VPP holds although no CHILD_SA owns them (never handed out). */
  private readonly avoidSadIds = new Set<number>();
  private nextSad = 1;
  /** SPD ids with our prefix that VPP holds although no SPD state owns them (never handed out). */
  private readonly avoidSpdIds = new Set<number>();
  private nextSpd = 1;
  private readonly usedInstances = new Set<number>();
  private instanceHint = 0;
  private readonly foreignInstances = new Set<number>();
  /** Protection groups: key → member child ids. */
  private readonly groups = new Map<string, Set<number>>();
  /** Routes by key, with the children that use them. */
  private readonly routeUsers = new Map<string, { route: RouteSpec; users: Set<number> }>();
  private seqCounter = 0;
  /** policy mode: the SPD of each table (table → SPD state, which holds the allocated SPD id). */
  private readonly spds = new Map<number, SpdState>();
  /** Per-connection caches. */
  private ifIndex = new Map<string, number>();
  private tablesReady = new Set<string>();
  private readonly queue = new KeyedQueue();
  /** Resolves when no replay is running; operations wait on it. */
  private gate: Promise<void> = Promise.resolve();
  private started = false;
  private closed = false;
  private replayTimer: NodeJS.Timeout | undefined;
  private readonly counters = { calls: 0, failures: 0, installs: 0, removes: 0, updates: 0, replays: 0, resync_failures: 0 };
  /** Bumped on every connect and disconnect: a resync stops when its connection is gone. */
  private connGen = 0;
  /** The running start-up reconcile and resync (they run one after the other). */
  private startup: Promise<unknown> = Promise.resolve();
  private resyncing: Promise<void> = Promise.resolve();
  /** Lost CHILD_SAs being programmed again (out of `children` until they are back). */
  private readonly replaying = new Map<number, ChildState>();
  /** remove() calls waiting for a replay to end: those CHILD_SAs are not replayed. */
  private readonly removing = new Set<number>();
  /** remove() calls made while VPP was unreachable: the next resync carries them out. */
  private readonly deferredRemoves = new Set<number>();
  /** The backoff pause of a resync retry (cut short by close()). */
  private pause: { timer: NodeJS.Timeout; done: () => void } | undefined;

  constructor(options: VppDataplaneOptions = {}) {
    this.log = options.log ?? NOOP_LOG;
    this.ownsClient = options.client === undefined;
    this.client =
      options.client ??
      new VppClient({ ...(options.clientOptions ?? {}), ...(options.socket !== undefined ? { socket: options.socket } : {}), logger: this.log });
    const base = options.p2pInstanceBase ?? 1000;
    if (!Number.isInteger(base) || base < 0 || base >= MAX_INSTANCES) throw new RangeError(`p2pInstanceBase must be 0..${MAX_INSTANCES - 1}, not ${base}`);
    this.opts = {
      unnumberedInterface: options.unnumberedInterface,
      policyInterface: options.policyInterface,
      p2pInstanceBase: base,
      replayBatch: Math.max(1, options.replayBatch ?? 200),
      replayIntervalMs: options.replayIntervalMs ?? 1000,
      resyncRetryMinMs: Math.max(1, options.resyncRetryMinMs ?? 500),
      resyncRetryMaxMs: Math.max(1, options.resyncRetryMaxMs ?? 10_000),
    };
    this.checkContext.policyInterface = this.opts.policyInterface;
    this.client.on('disconnected', () => this.onDisconnected());
    this.client.on('connected', (info: VppConnectedInfo) => this.onConnected(info));
  }

  features(): DataplaneFeatures {
    return vppDataplaneFeatures();
  }

  setListener(l: DataplaneListener): void {
    this.listener = l;
  }

  /** Counters for `vpp-ikectl stats`. */
  stats(): Record<string, number> {
    return { ...this.counters, children: this.children.size, in_flight: this.client.stats.inFlight };
  }

  /**
   * Connects to VPP (retrying until it answers; an incompatible API fails at once) and removes
   * objects that look like ours (left by an earlier run). A dump or delete that fails is retried
   * with backoff while the connection lasts.
   */
  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    if (!this.client.connected) await this.client.start();
    const gen = this.connGen;
    const run = this.runGated(async () => {
      const done = await this.retrying(gen, 'start-up reconcile', async () => {
        await this.reconcile(await this.snapshot(), { sas: new Set(), instances: new Set(), spds: new Set() });
      });
      if (!done) throw new Error(this.closed ? 'VPP dataplane is closed' : 'connection to VPP lost during start-up');
    });
    this.startup = run.catch(() => {});
    await run;
  }

  // ------------------------------------------------------------------ SPIs and ids

  async allocateSpi(): Promise<number> {
    if (this.closed) throw new Error('VPP dataplane is closed');
    const spi = this.spis.next();
    this.allocatedSpis.add(spi);
    return spi;
  }

  releaseSpi(spi: number): void {
    this.allocatedSpis.delete(spi);
  }

  private allocSadId(): number {
    for (let i = 0; i < OUR_ID_SPAN; i++) {
      const id = (OUR_ID_PREFIX | this.nextSad) >>> 0;
      this.nextSad = this.nextSad >= OUR_ID_SPAN ? 1 : this.nextSad + 1;
      if (!this.liveSadIds.has(id) && !this.avoidSadIds.has(id)) {
        this.liveSadIds.add(id);
        return id;
      }
    }
    throw new Error('no free SA ids');
  }

  /** An SPD id with our prefix that no SPD state uses (`prefer` when it is free: a replay keeps ids). */
  private allocSpdId(prefer?: number): number {
    const used = new Set<number>();
    for (const s of this.spds.values()) used.add(s.spdId);
    const free = (id: number): boolean => isOurId(id) && (id & OUR_ID_SPAN) !== 0 && !used.has(id) && !this.avoidSpdIds.has(id);
    if (prefer !== undefined && free(prefer)) return prefer;
    for (let i = 0; i < OUR_ID_SPAN; i++) {
      const id = (OUR_ID_PREFIX | this.nextSpd) >>> 0;
      this.nextSpd = this.nextSpd >= OUR_ID_SPAN ? 1 : this.nextSpd + 1;
      if (free(id)) return id;
    }
    throw new Error('no free SPD ids');
  }

  /** Lowest free p2p instance; `instanceHint` is a lower bound of the free ones. */
  private allocInstance(): number {
    for (let i = Math.max(this.instanceHint, this.opts.p2pInstanceBase); i < MAX_INSTANCES; i++) {
      if (!this.usedInstances.has(i) && !this.foreignInstances.has(i)) {
        this.usedInstances.add(i);
        this.instanceHint = i + 1;
        return i;
      }
    }
    throw new Error(`no free ipsec interface instance from ${this.opts.p2pInstanceBase} up (VPP allows ipsec0..ipsec${MAX_INSTANCES - 1})`);
  }

  private freeInstance(i: number): void {
    this.usedInstances.delete(i);
    if (i < this.instanceHint) this.instanceHint = i;
  }

  // ------------------------------------------------------------------ VPP calls

  private async req<N extends VppRequestName>(name: N, body: VppRequestBody<N>): Promise<VppReplyOf<N>> {
    this.counters.calls++;
    return this.client.request(name, body);
  }

  private async dumpAll<N extends VppDumpName>(name: N, body: VppRequestBody<N>): Promise<VppDetailsOf<N>[]> {
    this.counters.calls++;
    return this.client.dump(name, body);
  }

  /** Runs undo steps newest first; failures are logged, not thrown. */
  private async rollback(undo: Undo, what: string): Promise<void> {
    for (let i = undo.length - 1; i >= 0; i--) {
      try {
        await undo[i]!();
      } catch (e) {
        if (!isGone(e)) this.log.warn({ err: (e as Error).message, what }, 'rollback step failed');
      }
    }
  }

  /** Runs independent steps at once; every success is registered for undo before the first failure is thrown. */
  private async parallel(steps: Promise<(() => Promise<unknown>) | undefined>[], undo: Undo): Promise<void> {
    const res = await Promise.allSettled(steps);
    let err: unknown;
    for (const r of res) {
      if (r.status === 'fulfilled') {
        if (r.value) undo.push(r.value);
      } else if (err === undefined) err = r.reason;
    }
    if (err !== undefined) throw err;
  }

  private async runGated<T>(fn: () => Promise<T>): Promise<T> {
    const prev = this.gate;
    let release!: () => void;
    this.gate = new Promise<void>((r) => (release = r));
    try {
      await prev;
      return await fn();
    } finally {
      release();
    }
  }

  private async ready(): Promise<void> {
    if (this.closed) throw new Error('VPP dataplane is closed');
    if (!this.client.connected) throw new Error('not connected to VPP');
    await this.gate;
    if (!this.client.connected) throw new Error('not connected to VPP');
  }

  /**
   * Runs `fn` until it succeeds, pausing with backoff after each failure, as long as the
   * connection `gen` lasts. False when it gave up because the connection went or close() was called.
   */
  private async retrying(gen: number, what: string, fn: () => Promise<void>): Promise<boolean> {
    let delay = this.opts.resyncRetryMinMs;
    for (;;) {
      if (this.closed || gen !== this.connGen || !this.client.connected) return false;
      try {
        await fn();
        return true;
      } catch (e) {
        this.counters.resync_failures++;
        if (this.closed || gen !== this.connGen || !this.client.connected) return false;
        this.log.error({ err: (e as Error).message, retry_ms: delay }, `${what} failed; retrying`);
        await new Promise<void>((resolve) => {
          const done = (): void => {
            this.pause = undefined;
            resolve();
          };
          this.pause = { timer: setTimeout(done, delay), done };
        });
        delay = Math.min(this.opts.resyncRetryMaxMs, delay * 2);
      }
    }
  }

  private async interfaceIndex(name: string): Promise<number | undefined> {
    const cached = this.ifIndex.get(name);
    if (cached !== undefined) return cached;
    const found = await this.dumpAll('sw_interface_dump', { sw_if_index: U32_MAX, name_filter_valid: true, name_filter: name });
    const hit = found.find((d) => d.interface_name === name);
    if (hit) this.ifIndex.set(name, hit.sw_if_index);
    return hit?.sw_if_index;
  }

  private async requireInterface(name: string): Promise<number> {
    const i = await this.interfaceIndex(name);
    if (i === undefined) throw new Error(`VPP has no interface named ${name}`);
    return i;
  }

  /** Creates VRF `table` (both families) once per connection; table 0 always exists. */
  private async ensureTable(table: number): Promise<void> {
    if (table === 0) return;
    await this.queue.run(`table:${table}`, async () => {
      for (const isIp6 of [false, true]) {
        const key = `${isIp6 ? 6 : 4}:${table}`;
        if (this.tablesReady.has(key)) continue;
        await this.req('ip_table_add_del', { is_add: true, table: { table_id: table, is_ip6: isIp6, name: '' } });
        this.tablesReady.add(key);
      }
    });
  }

  // ------------------------------------------------------------------ SA encoding

  private saEntry(id: number, sa: SaParams): IpsecSadEntryV4 {
    const crypto = vppCryptoFor(sa.alg.encrId, sa.alg.encrKeyBits)!;
    const integ = vppIntegFor(sa.alg.integId)!;
    const v6 = familyOf(sa.src.addr) === 6;
    let flags = 0;
    if (sa.mode === 'tunnel') flags |= IS_TUNNEL | (v6 ? IS_TUNNEL_V6 : 0);
    if (sa.udpEncap) flags |= UDP_ENCAP;
    if (sa.inbound) flags |= IS_INBOUND;
    if (sa.alg.esn) flags |= USE_ESN;
    if (sa.inbound && sa.replayWindow > 0) flags |= USE_ANTI_REPLAY;
    // GCM/CTR/ChaCha20/GMAC: KEYMAT = key || 4-byte salt; VPP wants the salt bytes in KEYMAT order
    // read as a big-endian u32 (README, "Salt").
    const salt = crypto.saltBytes === 4 ? sa.encKey.readUInt32BE(crypto.keyBytes) : 0;
    return {
      sad_id: id,
      spi: sa.spi,
      protocol: PROTO_ESP,
      crypto_algorithm: crypto.alg,
      crypto_key: { length: crypto.keyBytes, data: sa.encKey.subarray(0, crypto.keyBytes) },
      integrity_algorithm: integ.alg,
      integrity_key: { length: sa.integKey.length, data: sa.integKey },
      flags,
      tunnel: this.tunnel(sa.src.addr, sa.dst.addr),
      salt,
      udp_src_port: sa.udpEncap ? sa.src.port : 4500,
      udp_dst_port: sa.udpEncap ? sa.dst.port : 4500,
      anti_replay_window_size: sa.replayWindow > 0 ? sa.replayWindow : 64,
    };
  }

  private tunnel(src: string, dst: string): Tunnel {
    return {
      instance: U32_MAX,
      src: toApiAddress(src),
      dst: toApiAddress(dst),
      sw_if_index: U32_MAX,
      table_id: 0,
      encap_decap_flags: 0,
      mode: MODE_P2P,
      flags: 0,
      dscp: 0,
      hop_limit: 0,
    };
  }

  private async addSa(id: number, sa: SaParams): Promise<() => Promise<unknown>> {
    try {
      await this.req('ipsec_sad_entry_add_v2', { entry: this.saEntry(id, sa) });
    } catch (e) {
      // Someone else holds this id: never hand it out again.
      if (isVppError(e, VppErr.ENTRY_ALREADY_EXISTS)) this.avoidSadIds.add(id);
      throw e;
    }
    return () => this.req('ipsec_sad_entry_del', { id });
  }

  private async delSa(id: number): Promise<void> {
    try {
      await this.req('ipsec_sad_entry_del', { id });
    } catch (e) {
      if (!isGone(e)) throw e;
    }
  }

  // ------------------------------------------------------------------ routes

  private routeSpecs(c: ChildInstall, swIfIndex: number, nh: string): RouteSpec[] {
    if (!c.vppRoutes) return [];
    const out: RouteSpec[] = [];
    const seen = new Set<string>();
    for (const ts of c.remoteTs) {
      for (const p of rangeToPrefixes(ts.start, ts.end)) {
        const isIp6 = ts.family === 6;
        const key = `${isIp6}|${p.addr}/${p.len}`;
        if (seen.has(key)) continue;
        seen.add(key);
        out.push({ table: c.vppTable, prefix: p.addr, len: p.len, isIp6, swIfIndex, nh });
      }
    }
    return out;
  }

  private routeKey(r: RouteSpec): string {
    return `${r.table}|${r.isIp6 ? 6 : 4}|${r.prefix}/${r.len}|${r.swIfIndex}|${r.nh}`;
  }

  private fibPath(r: RouteSpec): FibPath {
    const nh = r.nh === '' ? zeroApiAddress(r.isIp6) : toApiAddress(r.nh);
    return {
      sw_if_index: r.swIfIndex,
      table_id: 0,
      rpf_id: 0,
      weight: 1,
      preference: 0,
      type: 0,
      flags: 0,
      proto: r.isIp6 ? FibPathNhProto.FIB_API_PATH_NH_PROTO_IP6 : FibPathNhProto.FIB_API_PATH_NH_PROTO_IP4,
      nh: { address: nh.un, via_label: 0, obj_id: 0, classify_table_index: U32_MAX },
      n_labels: 0,
      label_stack: [],
    };
  }

  /** Adds our path to a route (multipath, so routes of other tunnels to the same prefix stay). */
  private async routeAdd(r: RouteSpec, isAdd: boolean): Promise<void> {
    await this.req('ip_route_add_del', {
      is_add: isAdd,
      is_multipath: true,
      route: {
        table_id: r.table,
        stats_index: 0,
        prefix: { address: toApiAddress(r.prefix), len: r.len },
        paths: [this.fibPath(r)],
      },
    });
  }

  /**
   * Makes `childId` a user of each route; a route's first user adds the path to VPP. Each new use
   * is registered for undo.
   */
  private async acquireRoutes(childId: number, routes: RouteSpec[], undo: Undo): Promise<void> {
    await this.parallel(
      routes.map(async (r) => {
        const k = this.routeKey(r);
        const e = this.routeUsers.get(k);
        if (e) {
          if (e.users.has(childId)) return undefined;
          e.users.add(childId);
          return () => this.releaseRoutes(childId, [r]);
        }
        this.routeUsers.set(k, { route: r, users: new Set([childId]) });
        try {
          await this.routeAdd(r, true);
        } catch (err) {
          const cur = this.routeUsers.get(k);
          cur?.users.delete(childId);
          if (cur && cur.users.size === 0) this.routeUsers.delete(k);
          throw err;
        }
        return () => this.releaseRoutes(childId, [r]);
      }),
      undo,
    );
  }

  /** Ends `childId`'s use of the routes; paths nobody uses any more are deleted from VPP. */
  private async releaseRoutes(childId: number, routes: RouteSpec[]): Promise<void> {
    const unused: RouteSpec[] = [];
    for (const r of routes) {
      const k = this.routeKey(r);
      const e = this.routeUsers.get(k);
      if (!e || !e.users.delete(childId)) continue;
      if (e.users.size === 0) {
        this.routeUsers.delete(k);
        unused.push(r);
      }
    }
    await this.delRoutes(unused);
  }

  /** Forgets `childId`'s route uses without touching VPP (it lost them). */
  private forgetRoutes(childId: number, routes: RouteSpec[]): void {
    for (const r of routes) {
      const k = this.routeKey(r);
      const e = this.routeUsers.get(k);
      if (e?.users.delete(childId) && e.users.size === 0) this.routeUsers.delete(k);
    }
  }

  private async delRoutes(routes: RouteSpec[]): Promise<void> {
    await Promise.all(
      routes.map((r) =>
        this.routeAdd(r, false).catch((e: unknown) => {
          if (!isRouteGone(e)) throw e;
        }),
      ),
    );
  }

  // ------------------------------------------------------------------ install

  async install(child: ChildInstall): Promise<InstallResult> {
    await this.ready();
    this.validate(child);
    const old = child.replaces !== undefined ? this.children.get(child.replaces) : undefined;
    const lockKey = old ? `child:${old.child.childId}` : `child:${child.childId}`;
    return this.track(this.queue.run(lockKey, async () => {
      const st = await this.installInternal(child, old, { replay: false });
      this.counters.installs++;
      return this.result(st);
    }));
  }

  /** Operations running against the current connection; a reconnect's replay waits for them. */
  private readonly ops = new Set<Promise<unknown>>();

  private track<T>(p: Promise<T>): Promise<T> {
    this.ops.add(p);
    const done = (): void => {
      this.ops.delete(p);
    };
    p.then(done, done);
    return p;
  }

  private readonly checkContext: InstallCheckContext = {
    isInstalled: (id) => this.children.has(id),
    spiOwner: (spi) => this.liveSpis.get(spi),
    policyInterface: undefined,
  };

  /** The checks the memory dataplane makes too (vpp-rules.ts). */
  private validate(c: ChildInstall): void {
    const why = validateChildInstall(c, this.checkContext);
    if (why !== undefined) throw new Error(why);
  }

  private result(st: ChildState): InstallResult {
    const r: InstallResult = { saIn: st.saIn, saOut: st.saOut };
    if (st.itfName !== undefined) r.interface = st.itfName;
    return r;
  }

  /**
   * Programs a CHILD_SA. `old` is the state it replaces: another child (make-before-break; `old`
   * stays installed until remove(old)) or the same child when its SAs are rebuilt (update()). With
   * `preset` (replay after a VPP restart), ids and the install order are reused instead of allocated.
   */
  private async installInternal(
    c: ChildInstall,
    old: ChildState | undefined,
    o: { replay: boolean; preset?: ChildState; sameSpi?: boolean },
  ): Promise<ChildState> {
    const undo: Undo = [];
    const rebuilt = old !== undefined && old.child.childId === c.childId ? old : undefined;
    const st: ChildState = {
      child: c,
      seq: o.preset?.seq ?? rebuilt?.seq ?? ++this.seqCounter,
      saIn: o.preset?.saIn ?? this.allocSadId(),
      saOut: o.preset?.saOut ?? this.allocSadId(),
      routes: [],
      policies: [],
    };
    // A replaced child in another mode is left alone until remove(old) tears it down.
    const same = old && old.child.vppMode === c.vppMode ? old : undefined;
    try {
      if (c.vppMode === 'p2p') await this.installP2p(c, st, same, undo, o);
      else if (c.vppMode === 'p2mp') await this.installP2mp(c, st, undo);
      else await this.installPolicy(c, st, same, undo, o);
    } catch (e) {
      this.counters.failures++;
      await this.rollback(undo, `install child ${c.childId}`);
      if (!o.preset) {
        this.liveSadIds.delete(st.saIn);
        this.liveSadIds.delete(st.saOut);
      }
      if (st.itfInstance !== undefined && st.itfInstance !== old?.itfInstance && !o.preset) this.freeInstance(st.itfInstance);
      this.log.warn({ child_id: c.childId, err: (e as Error).message }, 'CHILD_SA install failed; rolled back');
      throw e;
    }
    // Committed: bookkeeping.
    this.allocatedSpis.delete(c.inbound.spi);
    this.liveSpis.set(c.inbound.spi, c.childId);
    this.children.set(c.childId, st);
    if (rebuilt) {
      // The new SAs are in use; what only the previous SAs of this child used goes now (best effort:
      // a failure leaves garbage that the next reconcile removes, not a broken CHILD_SA).
      try {
        await this.retireRebuilt(rebuilt, st);
      } catch (e) {
        this.log.warn({ child_id: c.childId, err: (e as Error).message }, 'could not remove the previous SAs of a rebuilt CHILD_SA');
      }
      for (const id of [rebuilt.saIn, rebuilt.saOut]) if (id !== st.saIn && id !== st.saOut) this.liveSadIds.delete(id);
    }
    return st;
  }

  /** A member of group `key` that is installed (not the one being replayed), if any. */
  private liveMember(key: string | undefined, except: number): ChildState | undefined {
    if (key === undefined) return undefined;
    for (const id of this.groups.get(key) ?? []) {
      const s = id === except ? undefined : this.children.get(id);
      if (s) return s;
    }
    return undefined;
  }

  private async installP2p(
    c: ChildInstall,
    st: ChildState,
    old: ChildState | undefined,
    undo: Undo,
    o: { replay: boolean; preset?: ChildState; sameSpi?: boolean },
  ): Promise<void> {
    // Join the interface of the replaced child, or (replay) of a group member already back in VPP.
    const join = old?.group !== undefined && old.swIfIndex !== undefined ? old : this.liveMember(o.preset?.group, c.childId);
    if (!join) {
      // New tunnel: two round trips. The SA adds, the interface and the table go out together
      // and are awaited; then everything that needs the sw_if_index and the SAs (admin up, VRF,
      // unnumbered, protection, routes) goes out together.
      const instance = o.preset?.itfInstance ?? this.allocInstance();
      this.usedInstances.add(instance);
      st.itfInstance = instance;
      st.itfName = `ipsec${instance}`;
      st.nh = '0.0.0.0';
      await this.parallel(
        [
          this.addSa(st.saIn, c.inbound),
          this.addSa(st.saOut, c.outbound),
          this.createP2pInterface(st, instance),
          this.ensureTable(c.vppTable).then(() => undefined),
        ],
        undo,
      );
      const sw = st.swIfIndex!;
      const nh = zeroApiAddress(false);
      const routes = this.routeSpecs(c, sw, '');
      st.routes = routes;
      await this.parallel(
        [
          this.configureInterface(sw, c.vppTable).then(() => undefined),
          this.req('ipsec_tunnel_protect_update', { tunnel: { sw_if_index: sw, nh, sa_out: st.saOut, sa_in: [st.saIn] } }).then(
            () => () => this.req('ipsec_tunnel_protect_del', { sw_if_index: sw, nh }),
          ),
          this.acquireRoutes(c.childId, routes, undo).then(() => undefined),
        ],
        undo,
      );
      // Nothing can fail after this point: the group starts here.
      st.group = `p2p|${instance}`;
      this.groups.set(st.group, new Set([c.childId]));
      return;
    }
    // Make-before-break on the same interface: one protection update with the new outbound SA and
    // the inbound SAs of every member.
    st.itfName = join.itfName!;
    st.itfInstance = join.itfInstance!;
    st.swIfIndex = join.swIfIndex!;
    st.group = join.group!;
    st.nh = join.nh ?? '0.0.0.0';
    await this.parallel([this.addSa(st.saIn, c.inbound), this.addSa(st.saOut, c.outbound)], undo);
    await this.joinGroup(c, st, undo);
    const routes = this.routeSpecs(c, st.swIfIndex, '');
    await this.acquireRoutes(c.childId, routes, undo);
    st.routes = routes;
  }

  private async createP2pInterface(st: ChildState, instance: number): Promise<() => Promise<unknown>> {
    const r = await this.req('ipsec_itf_create', { itf: { user_instance: instance, mode: MODE_P2P, sw_if_index: 0 } });
    const sw = r.sw_if_index;
    st.swIfIndex = sw;
    this.ifIndex.set(st.itfName!, sw);
    return async (): Promise<unknown> => {
      this.ifIndex.delete(st.itfName!);
      return this.req('ipsec_itf_delete', { sw_if_index: sw });
    };
  }

  /** Admin up, VRF, unnumbered: independent calls, sent together. */
  private async configureInterface(sw: number, table: number): Promise<void> {
    const calls: Promise<unknown>[] = [this.req('sw_interface_set_flags', { sw_if_index: sw, flags: ADMIN_UP })];
    if (table !== 0) {
      await this.ensureTable(table);
      calls.push(this.req('sw_interface_set_table', { sw_if_index: sw, is_ipv6: false, vrf_id: table }));
      calls.push(this.req('sw_interface_set_table', { sw_if_index: sw, is_ipv6: true, vrf_id: table }));
    }
    if (this.opts.unnumberedInterface) {
      const lender = await this.requireInterface(this.opts.unnumberedInterface);
      calls.push(this.req('sw_interface_set_unnumbered', { sw_if_index: lender, unnumbered_sw_if_index: sw, is_add: true }));
    }
    const res = await Promise.allSettled(calls);
    for (const r of res) if (r.status === 'rejected') throw r.reason;
  }

  // ------------------------------------------------------------------ p2mp

  /** The shared interface: looked up, or created (ipsecN, multipoint) and configured. */
  private async sharedInterface(name: string, table: number): Promise<number> {
    return this.queue.run(`itf:${name}`, async () => {
      const known = await this.interfaceIndex(name);
      if (known !== undefined) return known;
      const instance = Number(name.slice('ipsec'.length));
      const r = await this.req('ipsec_itf_create', { itf: { user_instance: instance, mode: MODE_MP, sw_if_index: 0 } });
      try {
        await this.configureInterface(r.sw_if_index, table);
      } catch (e) {
        // Not half-configured: the interface goes again, so the next install starts over.
        try {
          await this.req('ipsec_itf_delete', { sw_if_index: r.sw_if_index });
        } catch (e2) {
          if (!isGone(e2)) this.log.warn({ interface: name, err: (e2 as Error).message }, 'could not delete a shared interface that failed to configure');
        }
        throw e;
      }
      this.ifIndex.set(name, r.sw_if_index);
      this.log.info({ interface: name, sw_if_index: r.sw_if_index }, 'created shared p2mp ipsec interface');
      return r.sw_if_index;
    });
  }

  /** The protection of a group: the newest member's outbound SA, the newest 4 members' inbound SAs. */
  private groupProtection(key: string, override?: Map<number, ChildState>): { sa_out: number; sa_in: number[] } | undefined {
    const ids = this.groups.get(key);
    if (!ids || ids.size === 0) return undefined;
    const states: ChildState[] = [];
    for (const id of ids) {
      const s = override?.get(id) ?? this.children.get(id);
      if (s) states.push(s);
    }
    if (states.length === 0) return undefined;
    states.sort((a, b) => a.seq - b.seq);
    return { sa_out: states[states.length - 1]!.saOut, sa_in: states.slice(-4).map((s) => s.saIn) };
  }

  /** Programs a group's protection from its members (deleted when it has none). Run in the group's queue. */
  private async applyGroup(key: string, sw: number, nh: string, pending?: Map<number, ChildState>): Promise<void> {
    const p = this.groupProtection(key, pending);
    if (p) {
      await this.req('ipsec_tunnel_protect_update', { tunnel: { sw_if_index: sw, nh: toApiAddress(nh), ...p } });
    } else {
      try {
        await this.req('ipsec_tunnel_protect_del', { sw_if_index: sw, nh: toApiAddress(nh) });
      } catch (e) {
        if (!isGone(e)) throw e;
      }
    }
  }

  /** Adds `st` to its group (st.group) and updates the protection; undo takes it out again. */
  private async joinGroup(c: ChildInstall, st: ChildState, undo: Undo): Promise<void> {
    const key = st.group!;
    const sw = st.swIfIndex!;
    const nh = st.nh!;
    await this.queue.run(`grp:${key}`, async () => {
      let members = this.groups.get(key);
      if (!members) {
        members = new Set();
        this.groups.set(key, members);
      }
      const added = !members.has(c.childId);
      members.add(c.childId);
      const m = members;
      undo.push(() =>
        this.queue.run(`grp:${key}`, async () => {
          if (added) m.delete(c.childId);
          if (m.size === 0 && this.groups.get(key) === m) this.groups.delete(key);
          await this.applyGroup(key, sw, nh);
        }),
      );
      await this.applyGroup(key, sw, nh, new Map([[c.childId, st]]));
    });
  }

  private async installP2mp(c: ChildInstall, st: ChildState, undo: Undo): Promise<void> {
    const iface = c.vppInterface!;
    const nh = c.outbound.dst.addr;
    st.itfName = iface;
    st.group = `${iface}|${parseIpText(nh)}`;
    st.nh = nh;
    await this.parallel(
      [
        this.sharedInterface(iface, c.vppTable).then((sw) => {
          st.swIfIndex = sw;
          return undefined;
        }),
        this.addSa(st.saIn, c.inbound),
        this.addSa(st.saOut, c.outbound),
        this.ensureTable(c.vppTable).then(() => undefined),
      ],
      undo,
    );
    // A replaced child to the same peer is a member of this group: its inbound SA stays in the protection.
    await this.joinGroup(c, st, undo);
    const routes = this.routeSpecs(c, st.swIfIndex!, nh);
    await this.acquireRoutes(c.childId, routes, undo);
    st.routes = routes;
  }

  /** After a child's SAs were rebuilt (update()): removes what only its previous SAs used. */
  private async retireRebuilt(prev: ChildState, st: ChildState): Promise<void> {
    const id = st.child.childId;
    const keep = new Set(st.routes.map((r) => this.routeKey(r)));
    await this.releaseRoutes(id, prev.routes.filter((r) => !keep.has(this.routeKey(r))));
    if (prev.group !== undefined && prev.group !== st.group) {
      const g = prev.group;
      await this.queue.run(`grp:${g}`, async () => {
        const members = this.groups.get(g);
        members?.delete(id);
        if (members && members.size === 0) this.groups.delete(g);
        await this.applyGroup(g, prev.swIfIndex!, prev.nh!);
      });
    }
    if (st.child.vppMode === 'policy') await this.delPolicies(prev);
    const ids = [prev.saIn, prev.saOut].filter((x) => x !== st.saIn && x !== st.saOut);
    await Promise.all(ids.map((x) => this.delSa(x)));
  }

  // ------------------------------------------------------------------ policy

  private spdEntry(spdId: number, priority: number, outbound: boolean, action: number, saId: number, local: TsRange, remote: TsRange, protocol: number): IpsecSpdEntryV2 {
    return {
      spd_id: spdId,
      priority,
      is_outbound: outbound,
      sa_id: saId,
      policy: action,
      protocol,
      remote_address_start: toApiAddress(remote.start),
      remote_address_stop: toApiAddress(remote.end),
      local_address_start: toApiAddress(local.start),
      local_address_stop: toApiAddress(local.end),
      remote_port_start: remote.startPort,
      remote_port_stop: remote.endPort,
      local_port_start: local.startPort,
      local_port_stop: local.endPort,
    };
  }

  private bypassEntries(spdId: number): IpsecSpdEntryV2[] {
    const out: IpsecSpdEntryV2[] = [];
    for (const fam of [4, 6] as const) {
      const any: TsRange =
        fam === 4
          ? { family: 4, start: '0.0.0.0', end: '255.255.255.255', protocol: 0, startPort: 0, endPort: 65535 }
          : { family: 6, start: '::', end: 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', protocol: 0, startPort: 0, endPort: 65535 };
      for (const port of [500, 4500]) {
        const local: TsRange = { ...any, startPort: port, endPort: port };
        out.push(this.spdEntry(spdId, PRIORITY.IKE_BYPASS, false, BYPASS, 0, local, any, 17));
        out.push(this.spdEntry(spdId, PRIORITY.IKE_BYPASS, true, BYPASS, 0, local, any, 17));
      }
      out.push(this.spdEntry(spdId, PRIORITY.DEFAULT_BYPASS, true, BYPASS, 0, any, any, 0));
    }
    return out;
  }

  /**
   * The SPD of `table`, created, bound and given its BYPASS entries on first use; its id comes
   * from allocSpdId (`prefer`: the id a replayed CHILD_SA's entries name). A state that exists
   * keeps its users and its id: a state that is not ready (VPP lost the SPD, or its creation
   * was cut off) is programmed again, accepting what VPP already has.
   */
  private async acquireSpd(table: number, iface: string, childId: number, prefer?: number): Promise<SpdState> {
    return this.queue.run(`spd:${table}`, async () => {
      const existing = this.spds.get(table);
      if (existing && existing.iface !== iface) throw new Error(`the SPD of table ${table} is bound to ${existing.iface}, not ${iface}`);
      if (existing?.ready) {
        existing.users.add(childId);
        return existing;
      }
      const swIfIndex = await this.requireInterface(iface);
      await this.ensureTable(table);
      const s: SpdState = existing ?? { spdId: this.allocSpdId(prefer), table, iface, swIfIndex, users: new Set(), ready: false };
      s.swIfIndex = swIfIndex;
      this.spds.set(table, s);
      const spdId = s.spdId;
      const undo: Undo = [];
      try {
        let created = true;
        try {
          await this.req('ipsec_spd_add_del', { is_add: true, spd_id: spdId });
        } catch (e) {
          // A state that exists already had its SPD in VPP (with its BYPASS entries).
          if (!existing || !isVppError(e, VppErr.ENTRY_ALREADY_EXISTS)) throw e;
          created = false;
        }
        if (created) undo.push(() => this.deleteSpd(spdId));
        try {
          await this.req('ipsec_interface_add_del_spd', { is_add: true, sw_if_index: swIfIndex, spd_id: spdId });
        } catch (e) {
          // ipsec_set_interface_spd: SYSCALL_ERROR_2 = the interface has an SPD already.
          if (created || !isVppError(e, VppErr.SYSCALL_ERROR_2)) throw e;
        }
        if (created) await Promise.all(this.bypassEntries(spdId).map((entry) => this.req('ipsec_spd_entry_add_del_v2', { is_add: true, entry })));
      } catch (e) {
        await this.rollback(undo, `SPD ${spdId}`);
        if (s.users.size === 0 && this.spds.get(table) === s) this.spds.delete(table);
        throw e;
      }
      s.ready = true;
      s.users.add(childId);
      return s;
    });
  }

  private async releaseSpd(table: number, childId: number): Promise<void> {
    await this.queue.run(`spd:${table}`, async () => {
      const s = this.spds.get(table);
      if (!s) return;
      s.users.delete(childId);
      if (s.users.size > 0) return;
      this.spds.delete(table);
      await this.deleteSpd(s.spdId);
    });
  }

  /**
   * Deletes an SPD and its entries. The entries go first: VPP's ipsec_add_del_spd only frees the
   * SPD's index vectors, so entries still in it would keep their SAs locked (and their sad_ids
   * taken) for good. Deleting the SPD also unbinds it.
   */
  private async deleteSpd(spdId: number): Promise<void> {
    const entries = await this.dumpAll('ipsec_spd_dump', { spd_id: spdId, sa_id: U32_MAX });
    await Promise.all(
      entries.map((d) =>
        this.req('ipsec_spd_entry_add_del_v2', { is_add: false, entry: spdEntryV2(d.entry) }).catch((e: unknown) => {
          if (!isGone(e)) throw e;
        }),
      ),
    );
    try {
      await this.req('ipsec_spd_add_del', { is_add: false, spd_id: spdId });
    } catch (e) {
      if (!isGone(e)) throw e;
    }
  }

  private policyEntries(c: ChildInstall, spdId: number, saIn: number, saOut: number, outPriority: number): IpsecSpdEntryV2[] {
    const out: IpsecSpdEntryV2[] = [];
    for (const l of c.localTs) {
      for (const r of c.remoteTs) {
        if (l.family !== r.family) continue;
        if (l.protocol !== 0 && r.protocol !== 0 && l.protocol !== r.protocol) continue;
        const proto = l.protocol || r.protocol;
        out.push(this.spdEntry(spdId, outPriority, true, PROTECT, saOut, l, r, proto));
        // Inbound ESP is matched by SPI (and tunnel endpoints): old and new entries coexist.
        out.push(this.spdEntry(spdId, PRIORITY.PROTECT, false, PROTECT, saIn, l, r, proto));
      }
    }
    return out;
  }

  private async addPolicies(entries: IpsecSpdEntryV2[], undo: Undo): Promise<void> {
    await this.parallel(
      entries.map(async (entry) => {
        await this.req('ipsec_spd_entry_add_del_v2', { is_add: true, entry });
        return () => this.req('ipsec_spd_entry_add_del_v2', { is_add: false, entry });
      }),
      undo,
    );
  }

  private async installPolicy(
    c: ChildInstall,
    st: ChildState,
    old: ChildState | undefined,
    undo: Undo,
    o: { replay: boolean; preset?: ChildState },
  ): Promise<void> {
    const iface = c.vppInterface ?? this.opts.policyInterface!;
    const wasUser = this.spds.get(c.vppTable)?.users.has(c.childId) === true;
    let spd: SpdState | undefined;
    await this.parallel(
      [
        this.acquireSpd(c.vppTable, iface, c.childId, o.preset?.spdId).then((s) => {
          spd = s;
          return wasUser ? undefined : () => this.releaseSpd(c.vppTable, c.childId);
        }),
        this.addSa(st.saIn, c.inbound),
        this.addSa(st.saOut, c.outbound),
      ],
      undo,
    );
    st.spdTable = c.vppTable;
    st.spdId = spd!.spdId;
    st.itfName = iface;
    // Outbound traffic switches to the new SA the moment its entries are in: they outrank the old ones.
    const sameSpd = old !== undefined && old.spdTable === c.vppTable;
    st.outPriority = o.preset?.outPriority ?? (sameSpd ? nextPriority(old.outPriority ?? PRIORITY.PROTECT) : PRIORITY.PROTECT);
    // A replay restores exactly the entries the child had (a replaced child has no outbound ones
    // left), in the SPD it has now.
    const entries = o.preset
      ? o.preset.policies.map((e) => ({ ...e, spd_id: spd!.spdId }))
      : this.policyEntries(c, spd!.spdId, st.saIn, st.saOut, st.outPriority);
    await this.addPolicies(entries, undo);
    st.policies = entries;
    if (old && sameSpd && old.child.childId !== c.childId) {
      // The replaced child's outbound entries are no longer needed; its inbound entries and SAs stay
      // until remove(old).
      const outbound = old.policies.filter((e) => e.is_outbound);
      await this.parallel(
        outbound.map(async (entry) => {
          await this.req('ipsec_spd_entry_add_del_v2', { is_add: false, entry });
          return () => this.req('ipsec_spd_entry_add_del_v2', { is_add: true, entry });
        }),
        undo,
      );
      old.policies = old.policies.filter((e) => !e.is_outbound);
    }
  }

  private async delPolicies(st: ChildState): Promise<void> {
    await Promise.all(st.policies.map((entry) => this.req('ipsec_spd_entry_add_del_v2', { is_add: false, entry }).catch((e: unknown) => {
      if (!isGone(e)) throw e;
    })));
  }

  // ------------------------------------------------------------------ update / remove

  async update(childId: number, local: SaEndpoint, remote: SaEndpoint, udpEncap: boolean): Promise<void> {
    await this.ready();
    const bad = validateEndpoints(local, remote);
    if (bad !== undefined) throw new Error(bad);
    await this.track(this.queue.run(`child:${childId}`, async () => {
      const st = this.children.get(childId);
      if (!st) throw new Error(`child ${childId} is not installed`);
      const c = st.child;
      const inbound: SaParams = { ...c.inbound, src: { ...remote }, dst: { ...local }, udpEncap };
      const outbound: SaParams = { ...c.outbound, src: { ...local }, dst: { ...remote }, udpEncap };
      const next: ChildInstall = { ...c, inbound, outbound };
      delete next.replaces;
      const nhMoves = c.vppMode === 'p2mp' && parseIpText(remote.addr) !== parseIpText(c.outbound.dst.addr);
      if (udpEncap !== c.outbound.udpEncap || nhMoves) {
        // VPP cannot switch UDP encapsulation on an SA (ipsec_sa_update changes ports only) and a
        // p2mp protection is keyed by the peer address: program new SAs (same SPIs and keys) and
        // ask the engine to rekey, as the outbound sequence numbers restart.
        await this.installInternal(next, st, { replay: false, sameSpi: true });
        this.counters.updates++;
        this.listener.replayed?.([childId]);
        return;
      }
      // One SA after the other: when the second update fails, the first is set back, so the
      // CHILD_SA keeps working with the endpoints it had.
      await this.updateSa(st.saIn, inbound);
      try {
        await this.updateSa(st.saOut, outbound);
      } catch (e) {
        try {
          await this.updateSa(st.saIn, c.inbound);
        } catch (e2) {
          this.log.warn({ child_id: childId, err: (e2 as Error).message }, 'could not set the inbound SA back to its previous endpoints');
        }
        throw e;
      }
      st.child = next;
      this.counters.updates++;
    }));
  }

  /** ipsec_sad_entry_update: the SA's tunnel endpoints and (with UDP encapsulation) its ports. */
  private updateSa(id: number, sa: SaParams): Promise<unknown> {
    return this.req('ipsec_sad_entry_update', {
      sad_id: id,
      is_tun: sa.mode === 'tunnel',
      tunnel: this.tunnel(sa.src.addr, sa.dst.addr),
      udp_src_port: sa.udpEncap ? sa.src.port : 0xffff,
      udp_dst_port: sa.udpEncap ? sa.dst.port : 0xffff,
    });
  }

  /**
   * Removes a CHILD_SA. While VPP is unreachable the removal is recorded and carried out by the
   * resync after the reconnect (a CHILD_SA VPP lost meanwhile is then simply not programmed
   * again); during a replay it waits for the replay, which leaves this CHILD_SA out.
   */
  async remove(childId: number): Promise<void> {
    if (!this.children.has(childId) && !this.replaying.has(childId)) return;
    if (this.closed) throw new Error('VPP dataplane is closed');
    this.removing.add(childId);
    try {
      for (;;) {
        if (this.closed) throw new Error('VPP dataplane is closed');
        if (!this.client.connected) {
          if (this.pendingRelease === undefined) throw new Error('not connected to VPP');
          this.deferRemove(childId);
          return;
        }
        await this.gate;
        if (this.client.connected) break;
      }
      try {
        await this.track(this.queue.run(`child:${childId}`, async () => {
          const st = this.children.get(childId);
          if (!st) return;
          await this.teardown(st);
          this.forget(st);
          this.counters.removes++;
        }));
      } catch (e) {
        // The connection went in the middle: the resync after the reconnect finishes the job.
        if (!this.client.connected && this.pendingRelease !== undefined && this.children.has(childId)) {
          this.deferRemove(childId);
          return;
        }
        throw e;
      }
    } finally {
      this.removing.delete(childId);
    }
  }

  private deferRemove(childId: number): void {
    this.deferredRemoves.add(childId);
    this.log.info({ child_id: childId }, 'VPP is unreachable: the CHILD_SA is removed once it is back');
  }

  /** Drops a CHILD_SA from the bookkeeping (after its teardown, or when VPP no longer has it). */
  private forget(st: ChildState): void {
    const id = st.child.childId;
    if (this.children.get(id) === st) this.children.delete(id);
    this.liveSadIds.delete(st.saIn);
    this.liveSadIds.delete(st.saOut);
    if (this.liveSpis.get(st.child.inbound.spi) === id) this.liveSpis.delete(st.child.inbound.spi);
  }

  private async teardown(st: ChildState): Promise<void> {
    const id = st.child.childId;
    const mode = st.child.vppMode;
    if (mode !== 'policy' && st.group !== undefined && st.swIfIndex !== undefined) {
      const g = st.group;
      const sw = st.swIfIndex;
      await this.queue.run(`grp:${g}`, async () => {
        const members = this.groups.get(g);
        members?.delete(id);
        const last = !members || members.size === 0;
        if (last) this.groups.delete(g);
        if (mode === 'p2mp' || !last) {
          // The protection of the remaining members (after a rekey: the new SAs alone), or none.
          await this.applyGroup(g, sw, st.nh!);
          await this.releaseRoutes(id, st.routes);
          return;
        }
        // The last CHILD_SA of a p2p interface: the interface goes. Deleting it would also remove
        // its protection (ipsec_tun_interface_add_del); removing the protection first releases the SAs.
        await this.releaseRoutes(id, st.routes);
        try {
          await this.req('ipsec_tunnel_protect_del', { sw_if_index: sw, nh: zeroApiAddress(false) });
        } catch (e) {
          if (!isGone(e)) throw e;
        }
        try {
          await this.req('ipsec_itf_delete', { sw_if_index: sw });
        } catch (e) {
          if (!isGone(e)) throw e;
        }
        if (st.itfName) this.ifIndex.delete(st.itfName);
        if (st.itfInstance !== undefined) this.freeInstance(st.itfInstance);
      });
    } else if (mode === 'policy') {
      await this.delPolicies(st);
      if (st.spdTable !== undefined) await this.releaseSpd(st.spdTable, id);
    }
    await Promise.all([this.delSa(st.saIn), this.delSa(st.saOut)]);
  }

  // ------------------------------------------------------------------ restart, reconcile

  /** Ends a resync's backoff pause early (the connection changed, or close()). */
  private endPause(): void {
    if (!this.pause) return;
    clearTimeout(this.pause.timer);
    this.pause.done();
  }

  private onDisconnected(): void {
    this.connGen++;
    this.endPause();
    this.ifIndex = new Map();
    this.tablesReady = new Set();
    for (const s of this.spds.values()) s.ready = false;
    if (this.closed || this.pendingRelease) return;
    // Operations wait until the reconnect's replay is done.
    let release!: () => void;
    const hold = new Promise<void>((r) => (release = r));
    const prev = this.gate;
    this.gate = Promise.all([prev, hold]).then(() => undefined);
    this.pendingRelease = release;
  }

  private pendingRelease: (() => void) | undefined;

  private onConnected(info: VppConnectedInfo): void {
    this.connGen++;
    this.endPause();
    if (!info.reconnect || this.closed || !this.started) return;
    const gen = this.connGen;
    const release = this.pendingRelease;
    this.pendingRelease = undefined;
    const prev = this.resyncing;
    this.resyncing = (async (): Promise<void> => {
      // The start-up reconcile and the resync of an earlier connection end first, then the
      // operations that were running when the connection dropped (they fail).
      await this.startup;
      await prev;
      await Promise.allSettled([...this.ops]);
      await this.retrying(gen, 'resync after VPP reconnect', () => this.resync(gen));
    })()
      .catch((e: unknown) => this.log.error({ err: (e as Error).message }, 'resync after VPP reconnect failed'))
      .finally(() => release?.());
  }

  /** What VPP holds, for reconcile and replay decisions. */
  private async snapshot(): Promise<Snapshot> {
    const [sas, itfs, prots, spds, bound] = await Promise.all([
      this.dumpAll('ipsec_sa_v5_dump', { sa_id: U32_MAX }),
      this.dumpAll('ipsec_itf_dump', { sw_if_index: U32_MAX }),
      this.dumpAll('ipsec_tunnel_protect_dump', { sw_if_index: U32_MAX }),
      this.dumpAll('ipsec_spds_dump', {}),
      this.dumpAll('ipsec_spd_interface_dump', { spd_index: 0, spd_index_valid: 0 }),
    ]);
    return {
      sas: new Map(sas.map((d) => [d.entry.sad_id, { spi: d.entry.spi, swIfIndex: d.sw_if_index }])),
      itfs: itfs.map((d) => ({ instance: d.itf.user_instance ?? U32_MAX, mode: d.itf.mode, swIfIndex: d.itf.sw_if_index })),
      prots: prots.map((d) => ({ swIfIndex: d.tun.sw_if_index, nh: apiAddressText(d.tun.nh, ''), saOut: d.tun.sa_out, saIn: d.tun.sa_in })),
      spds: new Set(spds.map((d) => d.spd_id)),
      spdBound: new Set(bound.map((d) => d.sw_if_index)),
    };
  }

  /** VPP has both SAs of the CHILD_SA, with its SPIs. */
  private sasIntact(st: ChildState, snap: Snapshot): boolean {
    return snap.sas.get(st.saIn)?.spi === st.child.inbound.spi && snap.sas.get(st.saOut)?.spi === st.child.outbound.spi;
  }

  /** p2p/p2mp: VPP has the interface (p2p) and a protection that uses the CHILD_SA's SAs. */
  private tunnelIntact(st: ChildState, snap: Snapshot): boolean {
    if (st.child.vppMode === 'p2p' && !snap.itfs.some((i) => i.instance === st.itfInstance && i.swIfIndex === st.swIfIndex)) return false;
    return snap.prots.some((p) => p.swIfIndex === st.swIfIndex && (p.saOut === st.saOut || p.saIn.includes(st.saIn)));
  }

  /**
   * Removes what looks like ours (see the file header) and is not in `keep`: tunnel protections
   * that use our SAs, p2p interfaces in our instance range without foreign protection, our SPDs
   * (entries first) and our SAs. Then records what VPP still holds in our ranges, so those ids
   * are not handed out.
   */
  private async reconcile(snap: Snapshot, keep: Keep): Promise<number> {
    let removed = 0;
    this.foreignSpis.clear();
    this.foreignInstances.clear();
    this.instanceHint = 0;
    for (const [id, sa] of snap.sas) if (!isOurId(id)) this.foreignSpis.add(sa.spi);
    const protsOn = new Map<number, Snapshot['prots']>();
    for (const p of snap.prots) {
      const list = protsOn.get(p.swIfIndex);
      if (list) list.push(p);
      else protsOn.set(p.swIfIndex, [p]);
    }
    const base = this.opts.p2pInstanceBase;
    const strayItf: Snapshot['itfs'] = [];
    for (const i of snap.itfs) {
      const inRange = i.mode === MODE_P2P && i.instance >= base && i.instance < MAX_INSTANCES;
      if (!inRange) {
        this.foreignInstances.add(i.instance);
        continue;
      }
      if (keep.instances.has(i.instance)) continue;
      const prots = protsOn.get(i.swIfIndex) ?? [];
      if (prots.every((p) => isOurId(p.saOut) && p.saIn.every(isOurId))) {
        strayItf.push(i);
      } else {
        // Protected with SAs that are not ours: an operator's tunnel in our range.
        this.foreignInstances.add(i.instance);
        this.log.warn({ interface: `ipsec${i.instance}`, sw_if_index: i.swIfIndex }, 'p2p ipsec interface in the range reserved for vpp-iked uses foreign SAs; left alone');
      }
    }
    const straySw = new Set(strayItf.map((i) => i.swIfIndex));
    // Protections that use our SAs but are not ours to keep (p2mp groups are rebuilt by replay).
    for (const p of snap.prots) {
      const usesOurs = isOurId(p.saOut) || p.saIn.some(isOurId);
      const kept = [p.saOut, ...p.saIn].every((id) => keep.sas.has(id));
      if ((usesOurs && !kept) || straySw.has(p.swIfIndex)) {
        const nh = toApiAddress(p.nh === '' ? '0.0.0.0' : p.nh);
        if (await this.bestEffort('tunnel protection', () => this.req('ipsec_tunnel_protect_del', { sw_if_index: p.swIfIndex, nh }))) removed++;
      }
    }
    for (const i of strayItf) {
      if (await this.bestEffort(`ipsec${i.instance}`, () => this.req('ipsec_itf_delete', { sw_if_index: i.swIfIndex }))) removed++;
      else this.foreignInstances.add(i.instance); // still there: not ours to use
    }
    let deleted = false;
    for (const id of snap.spds) {
      if (isOurId(id) && !keep.spds.has(id)) {
        deleted = true;
        if (await this.bestEffort(`SPD ${hex8(id)}`, () => this.deleteSpd(id))) removed++;
      }
    }
    const straySas = [...snap.sas.keys()].filter((id) => isOurId(id) && !keep.sas.has(id));
    const done = await Promise.all(straySas.map((id) => this.bestEffort(`SA ${hex8(id)}`, () => this.delSa(id))));
    removed += done.filter(Boolean).length;
    deleted ||= straySas.length > 0;
    // An SA that something else still locks stays in VPP (ipsec_sad_entry_del returns 0): its id
    // must not be handed out. Same for SPD ids.
    const [sasNow, spdsNow] = deleted
      ? await Promise.all([
          this.dumpAll('ipsec_sa_v5_dump', { sa_id: U32_MAX }).then((l) => l.map((d) => d.entry.sad_id)),
          this.dumpAll('ipsec_spds_dump', {}).then((l) => l.map((d) => d.spd_id)),
        ])
      : [[...snap.sas.keys()], [...snap.spds]];
    this.avoidSadIds.clear();
    this.avoidSpdIds.clear();
    for (const id of sasNow) if (isOurId(id) && !keep.sas.has(id)) this.avoidSadIds.add(id);
    for (const id of spdsNow) if (isOurId(id) && !keep.spds.has(id)) this.avoidSpdIds.add(id);
    if (this.avoidSadIds.size > 0) {
      this.log.warn({ sad_ids: [...this.avoidSadIds].slice(0, 20).map(hex8), count: this.avoidSadIds.size }, 'VPP keeps SAs of ours that could not be deleted (still in use); their ids are not used again');
    }
    if (removed > 0) this.log.info({ removed }, 'removed stale vpp-iked objects from VPP');
    return removed;
  }

  /**
   * A stray removal: true when done (or already gone). VPP refusing it is logged and leaves the
   * object (its ids are then avoided); a lost connection or a timeout is thrown, so the whole
   * reconcile is tried again.
   */
  private async bestEffort(what: string, fn: () => Promise<unknown>): Promise<boolean> {
    try {
      await fn();
      return true;
    } catch (e) {
      if (isGone(e)) return true;
      if (!(e instanceof VppApiError) || !this.client.connected) throw e;
      this.log.warn({ object: what, err: e.message }, 'could not remove a stale vpp-iked object from VPP; left in place');
      return false;
    }
  }

  /** After a reconnect: removals that waited, re-program every CHILD_SA VPP lost, drop strays, tell the engine. */
  private async resync(gen: number): Promise<void> {
    let snap = await this.snapshot();
    // 1. Removals asked for while VPP was unreachable. Only a CHILD_SA VPP still has is torn down
    // (after a restart its sw_if_index and ids may mean other objects); the rest is forgotten and
    // its remnants are strays.
    const deferred = [...this.deferredRemoves];
    let toreDown = false;
    for (const id of deferred) {
      const st = this.children.get(id);
      if (st) {
        const intact = this.sasIntact(st, snap) && (st.child.vppMode === 'policy' ? snap.spds.has(st.spdId ?? -1) : this.tunnelIntact(st, snap));
        if (intact) {
          toreDown = true;
          try {
            await this.queue.run(`child:${id}`, () => this.teardown(st));
            this.counters.removes++;
          } catch (e) {
            if (gen !== this.connGen) throw e;
            this.log.warn({ child_id: id, err: (e as Error).message }, 'removal after the reconnect failed; its objects are removed as strays');
          }
        } else {
          this.unlink(st);
        }
        this.forget(st);
      }
      this.deferredRemoves.delete(id);
    }
    if (toreDown) snap = await this.snapshot();

    // 2. What VPP lost. A policy CHILD_SA needs its SPD; an SPD one of whose users is lost is
    // rebuilt as a whole (it is deleted with its entries and programmed again by the replay).
    const lost = new Map<number, ChildState>();
    const policyUsers = new Map<number, ChildState[]>();
    for (const st of this.children.values()) {
      const id = st.child.childId;
      if (!this.sasIntact(st, snap)) lost.set(id, st);
      else if (st.child.vppMode !== 'policy') {
        if (!this.tunnelIntact(st, snap)) lost.set(id, st);
      } else {
        const t = st.spdTable ?? -1;
        const list = policyUsers.get(t);
        if (list) list.push(st);
        else policyUsers.set(t, [st]);
      }
    }
    const dropped = new Set<number>();
    for (const [t, users] of policyUsers) if (!this.spds.has(t)) for (const st of users) lost.set(st.child.childId, st);
    for (const [t, s] of this.spds) {
      let ok = s.users.size > 0 && snap.spds.has(s.spdId) && [...s.users].every((id) => this.children.has(id) && !lost.has(id));
      if (ok) {
        // The SPD is there: bound to its interface again if it lost the binding.
        const sw = await this.interfaceIndex(s.iface);
        if (sw === undefined) ok = false;
        else {
          s.swIfIndex = sw;
          if (!snap.spdBound.has(sw)) {
            // Refused (another SPD took the interface): the SPD is rebuilt, which then fails visibly.
            ok = await this.bestEffort(`binding of SPD ${hex8(s.spdId)}`, () =>
              this.req('ipsec_interface_add_del_spd', { is_add: true, sw_if_index: sw, spd_id: s.spdId }),
            );
            if (ok) this.log.warn({ spd_id: s.spdId, interface: s.iface }, 'SPD was no longer bound to its interface; bound again');
          }
        }
      }
      if (ok) s.ready = true;
      else {
        dropped.add(t);
        for (const st of policyUsers.get(t) ?? []) lost.set(st.child.childId, st);
      }
    }

    // 3. Strays (including the remnants of what was lost, which would collide with the replay).
    const keep: Keep = { sas: new Set(), instances: new Set(), spds: new Set() };
    for (const st of this.children.values()) {
      if (lost.has(st.child.childId)) continue;
      keep.sas.add(st.saIn);
      keep.sas.add(st.saOut);
      if (st.child.vppMode === 'p2p' && st.itfInstance !== undefined) keep.instances.add(st.itfInstance);
    }
    for (const [t, s] of this.spds) if (!dropped.has(t)) keep.spds.add(s.spdId);
    await this.reconcile(snap, keep);
    // Nothing above changed our bookkeeping (bar SPDs marked ready), so a failure up to here is
    // simply retried.
    for (const t of dropped) this.spds.delete(t);
    if (lost.size === 0) return;

    // 4. Programmed again, with the same ids.
    this.log.warn({ children: lost.size }, 'VPP lost CHILD_SAs; programming them again');
    for (const st of lost.values()) {
      this.children.delete(st.child.childId);
      this.replaying.set(st.child.childId, st);
      this.unlink(st);
    }
    const replayed: number[] = [];
    const failed: [ChildState, string][] = [];
    const dropIds: ChildState[] = [];
    try {
      // Members of one protection group go one after the other, oldest first (the first one creates a
      // p2p interface, the others join it); everything else is pipelined, bounded by the client's window.
      const runs = new Map<string | number, ChildState[]>();
      for (const st of lost.values()) {
        const k = st.group ?? st.child.childId;
        const run = runs.get(k);
        if (run) run.push(st);
        else runs.set(k, [st]);
      }
      await Promise.all(
        [...runs.values()].map(async (run) => {
          run.sort((a, b) => a.seq - b.seq);
          for (const st of run) {
            const id = st.child.childId;
            if (this.removeRequested(id)) {
              // Removed while the replay ran: not programmed again, not reported.
              this.replaying.delete(id);
              dropIds.push(st);
              continue;
            }
            if (gen !== this.connGen) continue; // connection gone: left for the next resync
            try {
              await this.installInternal(st.child, undefined, { replay: true, preset: st });
              this.replaying.delete(id);
              replayed.push(id);
            } catch (e) {
              if (gen !== this.connGen || !this.client.connected) continue;
              this.replaying.delete(id);
              failed.push([st, (e as Error).message]);
            }
          }
        }),
      );
    } finally {
      // Not replayed because the connection went: still lost, replayed by the next resync.
      for (const [id, st] of this.replaying) this.children.set(id, st);
      this.replaying.clear();
    }
    for (const st of [...dropIds, ...failed.map(([st]) => st)]) {
      this.forget(st);
      if (st.child.vppMode === 'p2p' && st.itfInstance !== undefined && this.liveMember(st.group, st.child.childId) === undefined) {
        this.freeInstance(st.itfInstance);
      }
      this.deferredRemoves.delete(st.child.childId);
    }
    this.counters.replays += replayed.length;
    for (const [st, why] of failed) this.listener.failed?.(st.child.childId, `could not program again after VPP restart: ${why}`);
    this.log.info({ replayed: replayed.length, failed: failed.length, removed: dropIds.length }, 'CHILD_SAs programmed again after VPP restart');
    this.announceReplayed(replayed.filter((id) => !this.removeRequested(id)).sort((a, b) => a - b));
  }

  /** remove() was called for this CHILD_SA and has not finished. */
  private removeRequested(id: number): boolean {
    return this.removing.has(id) || this.deferredRemoves.has(id);
  }

  /** Takes a CHILD_SA VPP no longer has out of its routes, protection group and SPD (without touching VPP). */
  private unlink(st: ChildState): void {
    const id = st.child.childId;
    this.forgetRoutes(id, st.routes);
    if (st.group) {
      const members = this.groups.get(st.group);
      members?.delete(id);
      if (members && members.size === 0) this.groups.delete(st.group);
    }
    if (st.spdTable !== undefined) this.spds.get(st.spdTable)?.users.delete(id);
  }

  /** replayed() in batches, spaced so the engine's rekeys are paced. */
  private announceReplayed(ids: number[]): void {
    if (ids.length === 0) return;
    this.announceQueue.push(...ids);
    if (this.replayTimer === undefined) this.announceNext();
  }

  private readonly announceQueue: number[] = [];

  private announceNext(): void {
    this.replayTimer = undefined;
    if (this.closed) return;
    const part = this.announceQueue.splice(0, this.opts.replayBatch).filter((id) => this.children.has(id) && !this.removeRequested(id));
    if (part.length > 0) this.listener.replayed?.(part);
    if (this.announceQueue.length > 0) this.replayTimer = setTimeout(() => this.announceNext(), this.opts.replayIntervalMs);
  }

  // ------------------------------------------------------------------ dump / close

  /** The CHILD_SAs this back end tracks (what it expects VPP to hold). */
  private trackedView(): Record<string, unknown>[] {
    const out: Record<string, unknown>[] = [];
    for (const st of this.children.values()) {
      out.push({
        child_id: st.child.childId,
        ike_sa_id: st.child.ikeSaId,
        connection: st.child.connection,
        child: st.child.child,
        mode: st.child.vppMode,
        interface: st.itfName ?? null,
        sa_in: st.saIn,
        sa_out: st.saOut,
        spi_in: hex8(st.child.inbound.spi),
        spi_out: hex8(st.child.outbound.spi),
        replaces: st.child.replaces ?? null,
      });
    }
    return out.sort((a, b) => (a.child_id as number) - (b.child_id as number));
  }

  /**
   * What VPP holds, as VPP reports it (SAD from ipsec_sa_v5_dump without key material, tunnel
   * protections, ipsec interfaces, SPDs and the entries of ours), plus the CHILD_SAs we track.
   */
  async dump(): Promise<unknown> {
    if (!this.client.connected) {
      return { dataplane: this.name, connected: false, socket: this.client.socketPath, children: this.trackedView() };
    }
    await this.gate;
    const [sas, prots, itfs, ifs, spds] = await Promise.all([
      this.dumpAll('ipsec_sa_v5_dump', { sa_id: U32_MAX }),
      this.dumpAll('ipsec_tunnel_protect_dump', { sw_if_index: U32_MAX }),
      this.dumpAll('ipsec_itf_dump', { sw_if_index: U32_MAX }),
      this.dumpAll('sw_interface_dump', { sw_if_index: U32_MAX, name_filter_valid: false, name_filter: '' }),
      this.dumpAll('ipsec_spds_dump', {}),
    ]);
    const ourSpds = spds.filter((d) => isOurId(d.spd_id));
    const spdEntries = await Promise.all(ourSpds.map((d) => this.dumpAll('ipsec_spd_dump', { spd_id: d.spd_id, sa_id: U32_MAX })));
    const entriesOf = new Map(ourSpds.map((d, i) => [d.spd_id, spdEntries[i]!]));
    const ifName = new Map(ifs.map((i) => [i.sw_if_index, i.interface_name]));
    const ifFlags = new Map(ifs.map((i) => [i.sw_if_index, i.flags]));
    const nameOf = (sw: number): string | number => ifName.get(sw) ?? sw;
    const spiOf = new Map(sas.map((d) => [d.entry.sad_id, hex8(d.entry.spi)]));
    const bySad = new Map<number, number>();
    for (const st of this.children.values()) {
      bySad.set(st.saIn, st.child.childId);
      bySad.set(st.saOut, st.child.childId);
    }
    return {
      dataplane: this.name,
      socket: this.client.socketPath,
      connected: true,
      vpp_version: this.client.vppVersion ?? null,
      sas: sas.map((d) => {
        const e = d.entry;
        const tun = (e.flags & IS_TUNNEL) !== 0;
        return {
          sad_id: e.sad_id,
          ours: isOurId(e.sad_id),
          child_id: bySad.get(e.sad_id) ?? null,
          spi: hex8(e.spi),
          direction: e.flags & IS_INBOUND ? 'in' : 'out',
          protocol: e.protocol === PROTO_ESP ? 'esp' : e.protocol === PROTO_AH ? 'ah' : e.protocol,
          crypto: enumName(IpsecCryptoAlg, e.crypto_algorithm, 'IPSEC_API_CRYPTO_ALG_'),
          crypto_algorithm: e.crypto_algorithm,
          crypto_key_bytes: e.crypto_key.length,
          integrity: enumName(IpsecIntegAlg, e.integrity_algorithm, 'IPSEC_API_INTEG_ALG_'),
          integrity_algorithm: e.integrity_algorithm,
          integrity_key_bytes: e.integrity_key.length,
          flags: e.flags,
          flag_names: flagNames(e.flags),
          tunnel_src: tun ? apiAddressText(e.tunnel.src, null) : null,
          tunnel_dst: tun ? apiAddressText(e.tunnel.dst, null) : null,
          tunnel_table: tun ? e.tunnel.table_id : null,
          udp_encap: e.flags & UDP_ENCAP ? { src_port: e.udp_src_port, dst_port: e.udp_dst_port } : null,
          replay_window: e.anti_replay_window_size,
          interface: d.sw_if_index === U32_MAX ? null : nameOf(d.sw_if_index),
          stat_index: d.stat_index,
          thread_index: d.thread_index,
          seq_outbound: d.seq_outbound.toString(),
          last_seq_inbound: d.last_seq_inbound.toString(),
        };
      }),
      tunnel_protections: prots.map((d) => ({
        interface: nameOf(d.tun.sw_if_index),
        sw_if_index: d.tun.sw_if_index,
        nh: apiAddressText(d.tun.nh, null),
        sa_out: d.tun.sa_out,
        sa_in: d.tun.sa_in,
        spi_out: spiOf.get(d.tun.sa_out) ?? null,
        spi_in: d.tun.sa_in.map((id) => spiOf.get(id) ?? null),
      })),
      interfaces: itfs.map((d) => ({
        name: ifName.get(d.itf.sw_if_index) ?? `ipsec${d.itf.user_instance}`,
        sw_if_index: d.itf.sw_if_index,
        instance: d.itf.user_instance,
        mode: d.itf.mode === MODE_P2P ? 'p2p' : 'p2mp',
        admin_up: ((ifFlags.get(d.itf.sw_if_index) ?? 0) & ADMIN_UP) !== 0,
      })),
      spds: spds.map((d) => ({
        spd_id: d.spd_id,
        ours: isOurId(d.spd_id),
        policies: d.npolicies,
        ...(entriesOf.has(d.spd_id)
          ? {
              entries: entriesOf.get(d.spd_id)!.map(({ entry: p }) => ({
                priority: p.priority,
                direction: p.is_outbound ? 'out' : 'in',
                action: enumName(IpsecSpdAction, p.policy, 'IPSEC_API_SPD_ACTION_'),
                sa_id: p.policy === PROTECT ? p.sa_id : null,
                protocol: p.protocol,
                local: `${apiAddressText(p.local_address_start, null)}-${apiAddressText(p.local_address_stop, null)}`,
                remote: `${apiAddressText(p.remote_address_start, null)}-${apiAddressText(p.remote_address_stop, null)}`,
                local_ports: `${p.local_port_start}-${p.local_port_stop}`,
                remote_ports: `${p.remote_port_start}-${p.remote_port_stop}`,
              })),
            }
          : {}),
      })),
      children: this.trackedView(),
      calls: this.counters.calls,
    };
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.replayTimer);
    this.endPause();
    this.pendingRelease?.();
    if (this.ownsClient) await this.client.close();
  }

  /** The state tracked for a child (tests and diagnostics). */
  childState(childId: number): Readonly<{ saIn: number; saOut: number; interface?: string; swIfIndex?: number; mode: VppMode }> | undefined {
    const st = this.children.get(childId);
    if (!st) return undefined;
    return {
      saIn: st.saIn,
      saOut: st.saOut,
      mode: st.child.vppMode,
      ...(st.itfName !== undefined ? { interface: st.itfName } : {}),
      ...(st.swIfIndex !== undefined ? { swIfIndex: st.swIfIndex } : {}),
    };
  }
}

/** An SPD entry as ipsec_spd_dump reports it, in the form ipsec_spd_entry_add_del_v2 takes (same fields). */
function spdEntryV2(e: IpsecSpdEntry): IpsecSpdEntryV2 {
  return {
    spd_id: e.spd_id,
    priority: e.priority,
    is_outbound: e.is_outbound,
    sa_id: e.sa_id,
    policy: e.policy,
    protocol: e.protocol,
    remote_address_start: e.remote_address_start,
    remote_address_stop: e.remote_address_stop,
    local_address_start: e.local_address_start,
    local_address_stop: e.local_address_stop,
    remote_port_start: e.remote_port_start,
    remote_port_stop: e.remote_port_stop,
    local_port_start: e.local_port_start,
    local_port_stop: e.local_port_stop,
  };
}

/** An enum value's name without its prefix, lower-case (e.g. "aes_gcm_256"); the number when unknown. */
function enumName(values: Readonly<Record<string, number>>, v: number, prefix: string): string | number {
  for (const [k, x] of Object.entries(values)) if (x === v) return k.startsWith(prefix) ? k.slice(prefix.length).toLowerCase() : k;
  return v;
}

/** The names of the SA flags that are set (unknown bits as numbers). */
function flagNames(flags: number): (string | number)[] {
  const out: (string | number)[] = [];
  let rest = flags >>> 0;
  for (const [k, bit] of Object.entries(IpsecSadFlags)) {
    if (bit !== 0 && (rest & bit) === bit) {
      out.push(k.slice('IPSEC_API_SAD_FLAG_'.length).toLowerCase());
      rest = (rest & ~bit) >>> 0;
    }
  }
  if (rest !== 0) out.push(rest);
  return out;
}

/** Canonical text of an address (so equal addresses compare equal as strings). */
function parseIpText(addr: string): string {
  return fromApiAddress(toApiAddress(addr));
}
