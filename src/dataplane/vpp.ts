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
 * never below 256, unique among live SAs and SPIs VPP already holds. sad_ids and SPD ids are
 * 0x7e000001–0x7effffff (top byte 0x7e marks them as vpp-iked's); p2p interfaces use ipsec
 * instances from `p2pInstanceBase` (default 1000) up. Objects that look like ours but belong to no
 * known CHILD_SA are removed at start and after VPP reconnects.
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
 * because re-added outbound SAs start their sequence numbers at 1 again and need a rekey.
 */

import { randomBytes } from 'node:crypto';
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
import { vppDataplaneFeatures } from './memory.ts';
import { VppClient, VppApiError, type VppClientOptions, type VppConnectedInfo, type VppLogger } from '../vpp/client.ts';
import type { VppReplyOf, VppRequestBody, VppRequestName, VppDumpName, VppDetailsOf } from '../vpp/api.ts';
import { checkEspKeys, vppCryptoFor, vppIntegFor } from '../vpp/ike-algorithms.ts';
import { fromApiAddress, parseIp, rangeToPrefixes, toApiAddress, AF_IP6 } from '../vpp/address.ts';
import { VppErr } from '../vpp/errors.ts';
import type { Address, FibPath, IpsecSadEntryV4, IpsecSpdEntryV2, Tunnel } from '../vpp/defs.generated.ts';
import { IpsecCryptoAlg, IpsecIntegAlg, IpsecSadFlags, IpsecSpdAction } from '../vpp/defs.generated.ts';

/** Top byte of every sad_id and SPD id this back end creates. */
export const OUR_ID_PREFIX = 0x7e000000;
const OUR_ID_MASK = 0xff000000;
const OUR_ID_SPAN = 0x00ffffff;
const U32_MAX = 0xffffffff;

export function isOurId(id: number): boolean {
  return ((id & OUR_ID_MASK) >>> 0) === OUR_ID_PREFIX;
}

const SAD_FLAG = { USE_ESN: 1, USE_ANTI_REPLAY: 2, IS_TUNNEL: 4, IS_TUNNEL_V6: 8, UDP_ENCAP: 16, IS_INBOUND: 64 } as const;
const SPD_ACTION = { BYPASS: 0, PROTECT: 3 } as const;
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
  /** First ipsec instance number for p2p interfaces (VPP allows 0–16383). Default 1000. */
  p2pInstanceBase?: number;
  /** replayed() is called with at most this many ids at a time. Default 200. */
  replayBatch?: number;
  /** Pause between replayed() batches (ms). Default 1000. */
  replayIntervalMs?: number;
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

function tsFamilyOk(ts: TsRange): boolean {
  return ts.family === 4 || ts.family === 6;
}

function hex8(n: number): string {
  return (n >>> 0).toString(16).padStart(8, '0');
}

function zeroAddress(isIp6: boolean): Address {
  return isIp6 ? { af: AF_IP6, un: { ip6: Buffer.alloc(16) } } : { af: 0, un: { ip4: Buffer.alloc(4) } };
}

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
  };
  private listener: DataplaneListener = {};
  private readonly children = new Map<number, ChildState>();
  private readonly allocatedSpis = new Set<number>();
  private readonly liveSpis = new Map<number, number>();
  /** SPIs of inbound SAs VPP holds that are not ours (never handed out). */
  private readonly foreignSpis = new Set<number>();
  private readonly liveSadIds = new Set<number>();
  private readonly foreignSadIds = new Set<number>();
  private nextSad = 1;
  private readonly usedInstances = new Set<number>();
  private instanceHint = 0;
  private readonly foreignInstances = new Set<number>();
  /** Protection groups: key → member child ids. */
  private readonly groups = new Map<string, Set<number>>();
  /** Routes by key, with the children that use them. */
  private readonly routeUsers = new Map<string, { route: RouteSpec; users: Set<number> }>();
  private seqCounter = 0;
  private readonly spds = new Map<number, SpdState>();
  /** Per-connection caches. */
  private ifIndex = new Map<string, number>();
  private tablesReady = new Set<string>();
  private readonly queue = new KeyedQueue();
  /** Resolves when no replay is running; operations wait on it. */
  private gate: Promise<void> = Promise.resolve();
  private started = false;
  private closed = false;
  private rnd = Buffer.alloc(0);
  private rndPos = 0;
  private replayTimer: NodeJS.Timeout | undefined;
  private readonly counters = { calls: 0, failures: 0, installs: 0, removes: 0, updates: 0, replays: 0 };

  constructor(options: VppDataplaneOptions = {}) {
    this.log = options.log ?? NOOP_LOG;
    this.ownsClient = options.client === undefined;
    this.client =
      options.client ??
      new VppClient({ ...(options.clientOptions ?? {}), ...(options.socket !== undefined ? { socket: options.socket } : {}), logger: this.log });
    this.opts = {
      unnumberedInterface: options.unnumberedInterface,
      policyInterface: options.policyInterface,
      p2pInstanceBase: options.p2pInstanceBase ?? 1000,
      replayBatch: Math.max(1, options.replayBatch ?? 200),
      replayIntervalMs: options.replayIntervalMs ?? 1000,
    };
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
   * objects that look like ours (left by an earlier run).
   */
  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    if (!this.client.connected) await this.client.start();
    await this.runGated(() => this.reconcile(false));
  }

  // ------------------------------------------------------------------ SPIs and ids

  private random32(): number {
    if (this.rndPos + 4 > this.rnd.length) {
      this.rnd = randomBytes(4096);
      this.rndPos = 0;
    }
    const v = this.rnd.readUInt32BE(this.rndPos);
    this.rndPos += 4;
    return v;
  }

  async allocateSpi(): Promise<number> {
    if (this.closed) throw new Error('VPP dataplane is closed');
    for (;;) {
      const spi = this.random32();
      if (spi < 256 || this.allocatedSpis.has(spi) || this.liveSpis.has(spi) || this.foreignSpis.has(spi)) continue;
      this.allocatedSpis.add(spi);
      return spi;
    }
  }

  releaseSpi(spi: number): void {
    this.allocatedSpis.delete(spi);
  }

  private allocSadId(): number {
    for (let i = 0; i < OUR_ID_SPAN; i++) {
      const id = (OUR_ID_PREFIX | this.nextSad) >>> 0;
      this.nextSad = this.nextSad >= OUR_ID_SPAN ? 1 : this.nextSad + 1;
      if (!this.liveSadIds.has(id) && !this.foreignSadIds.has(id)) {
        this.liveSadIds.add(id);
        return id;
      }
    }
    throw new Error('no free SA ids');
  }

  /** Lowest free p2p instance; `instanceHint` is a lower bound of the free ones. */
  private allocInstance(): number {
    for (let i = Math.max(this.instanceHint, this.opts.p2pInstanceBase); i < 16 * 1024; i++) {
      if (!this.usedInstances.has(i) && !this.foreignInstances.has(i)) {
        this.usedInstances.add(i);
        this.instanceHint = i + 1;
        return i;
      }
    }
    throw new Error('no free ipsec interface instance (VPP allows 16384 ipsec interfaces)');
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
    if (sa.mode === 'tunnel') flags |= SAD_FLAG.IS_TUNNEL | (v6 ? SAD_FLAG.IS_TUNNEL_V6 : 0);
    if (sa.udpEncap) flags |= SAD_FLAG.UDP_ENCAP;
    if (sa.inbound) flags |= SAD_FLAG.IS_INBOUND;
    if (sa.alg.esn) flags |= SAD_FLAG.USE_ESN;
    if (sa.inbound && sa.replayWindow > 0) flags |= SAD_FLAG.USE_ANTI_REPLAY;
    // GCM/CTR/ChaCha20/GMAC: KEYMAT = key || 4-byte salt; VPP wants the salt bytes in KEYMAT order
    // read as a big-endian u32 (README, "Salt").
    const salt = crypto.saltBytes === 4 ? sa.encKey.readUInt32BE(crypto.keyBytes) : 0;
    return {
      sad_id: id,
      spi: sa.spi,
      protocol: 50,
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
      mode: 0,
      flags: 0,
      dscp: 0,
      hop_limit: 0,
    };
  }

  private async addSa(id: number, sa: SaParams): Promise<() => Promise<unknown>> {
    await this.req('ipsec_sad_entry_add_v2', { entry: this.saEntry(id, sa) });
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
      if (!tsFamilyOk(ts)) continue;
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
    const nh = r.nh === '' ? zeroAddress(r.isIp6) : toApiAddress(r.nh);
    return {
      sw_if_index: r.swIfIndex,
      table_id: 0,
      rpf_id: 0,
      weight: 1,
      preference: 0,
      type: 0,
      flags: 0,
      proto: r.isIp6 ? 1 : 0,
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
          if (!isGone(e)) throw e;
        }),
      ),
    );
  }

  // ------------------------------------------------------------------ install

  async install(child: ChildInstall): Promise<InstallResult> {
    await this.ready();
    const old = child.replaces !== undefined ? this.children.get(child.replaces) : undefined;
    if (child.replaces !== undefined && !old) throw new Error(`child ${child.replaces} to replace is not installed`);
    if (this.children.has(child.childId)) throw new Error(`child ${child.childId} is already installed`);
    this.validate(child);
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

  private validate(c: ChildInstall): void {
    if (!c.inbound.inbound || c.outbound.inbound) throw new Error('inbound/outbound SAs swapped');
    for (const sa of [c.inbound, c.outbound]) {
      const bad = checkEspKeys(sa.alg, sa.encKey.length, sa.integKey.length);
      if (bad) throw new Error(bad);
      if (familyOf(sa.src.addr) !== familyOf(sa.dst.addr)) throw new Error('tunnel endpoints are in different address families');
    }
    const owner = this.liveSpis.get(c.inbound.spi);
    if (owner !== undefined && owner !== c.replaces) throw new Error(`inbound SPI ${hex8(c.inbound.spi)} is used by child ${owner}`);
    if (c.vppMode === 'p2mp') {
      if (!c.vppInterface) throw new Error('p2mp needs vpp_interface (the shared ipsec interface)');
      if (!/^ipsec\d+$/.test(c.vppInterface)) throw new Error(`p2mp interface must be named ipsecN, not ${c.vppInterface}`);
      const fam = familyOf(c.outbound.dst.addr);
      if (c.vppRoutes && c.remoteTs.some((t) => t.family !== fam)) {
        throw new Error('p2mp routes need the remote traffic selectors in the family of the peer address');
      }
    }
    if (c.vppMode === 'policy' && !(c.vppInterface ?? this.opts.policyInterface)) {
      throw new Error('policy mode needs vpp_interface (the interface the SPD is bound to)');
    }
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
      // New tunnel: two round trips. VPP handles one connection's messages in order, so the
      // protection can follow the SA adds without waiting for their replies, and everything
      // that needs the sw_if_index goes out together once the interface exists.
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
      const nh = zeroAddress(false);
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
    const r = await this.req('ipsec_itf_create', { itf: { user_instance: instance, mode: 0, sw_if_index: 0 } });
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
    const calls: Promise<unknown>[] = [this.req('sw_interface_set_flags', { sw_if_index: sw, flags: 1 })];
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
      const r = await this.req('ipsec_itf_create', { itf: { user_instance: instance, mode: 1, sw_if_index: 0 } });
      this.ifIndex.set(name, r.sw_if_index);
      await this.configureInterface(r.sw_if_index, table);
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
        out.push(this.spdEntry(spdId, PRIORITY.IKE_BYPASS, false, SPD_ACTION.BYPASS, 0, local, any, 17));
        out.push(this.spdEntry(spdId, PRIORITY.IKE_BYPASS, true, SPD_ACTION.BYPASS, 0, local, any, 17));
      }
      out.push(this.spdEntry(spdId, PRIORITY.DEFAULT_BYPASS, true, SPD_ACTION.BYPASS, 0, any, any, 0));
    }
    return out;
  }

  /** The SPD of `table`, created, bound and given its BYPASS entries on first use. */
  private async acquireSpd(table: number, iface: string, childId: number): Promise<SpdState> {
    return this.queue.run(`spd:${table}`, async () => {
      let s = this.spds.get(table);
      if (s && s.ready) {
        if (s.iface !== iface) throw new Error(`the SPD of table ${table} is bound to ${s.iface}, not ${iface}`);
        s.users.add(childId);
        return s;
      }
      const swIfIndex = await this.requireInterface(iface);
      await this.ensureTable(table);
      const spdId = (OUR_ID_PREFIX | (table & OUR_ID_SPAN)) >>> 0;
      s = { spdId, table, iface, swIfIndex, users: new Set([childId]), ready: false };
      const undo: Undo = [];
      try {
        await this.req('ipsec_spd_add_del', { is_add: true, spd_id: spdId });
        undo.push(() => this.req('ipsec_spd_add_del', { is_add: false, spd_id: spdId }));
        await this.req('ipsec_interface_add_del_spd', { is_add: true, sw_if_index: swIfIndex, spd_id: spdId });
        await Promise.all(this.bypassEntries(spdId).map((entry) => this.req('ipsec_spd_entry_add_del_v2', { is_add: true, entry })));
      } catch (e) {
        await this.rollback(undo, `SPD ${spdId}`);
        throw e;
      }
      s.ready = true;
      this.spds.set(table, s);
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
      // Deleting the SPD unbinds it and drops its entries (ipsec_add_del_spd).
      try {
        await this.req('ipsec_spd_add_del', { is_add: false, spd_id: s.spdId });
      } catch (e) {
        if (!isGone(e)) throw e;
      }
    });
  }

  private policyEntries(c: ChildInstall, spdId: number, saIn: number, saOut: number, outPriority: number): IpsecSpdEntryV2[] {
    const out: IpsecSpdEntryV2[] = [];
    for (const l of c.localTs) {
      for (const r of c.remoteTs) {
        if (l.family !== r.family) continue;
        if (l.protocol !== 0 && r.protocol !== 0 && l.protocol !== r.protocol) continue;
        const proto = l.protocol || r.protocol;
        out.push(this.spdEntry(spdId, outPriority, true, SPD_ACTION.PROTECT, saOut, l, r, proto));
        // Inbound ESP is matched by SPI (and tunnel endpoints): old and new entries coexist.
        out.push(this.spdEntry(spdId, PRIORITY.PROTECT, false, SPD_ACTION.PROTECT, saIn, l, r, proto));
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
        this.acquireSpd(c.vppTable, iface, c.childId).then((s) => {
          spd = s;
          return wasUser ? undefined : () => this.releaseSpd(c.vppTable, c.childId);
        }),
        this.addSa(st.saIn, c.inbound),
        this.addSa(st.saOut, c.outbound),
      ],
      undo,
    );
    st.spdTable = c.vppTable;
    st.itfName = iface;
    // Outbound traffic switches to the new SA the moment its entries are in: they outrank the old ones.
    const sameSpd = old !== undefined && old.spdTable === c.vppTable;
    st.outPriority = o.preset?.outPriority ?? (sameSpd ? nextPriority(old.outPriority ?? PRIORITY.PROTECT) : PRIORITY.PROTECT);
    // A replay restores exactly the entries the child had (a replaced child has no outbound ones left).
    const entries = o.preset ? o.preset.policies : this.policyEntries(c, spd!.spdId, st.saIn, st.saOut, st.outPriority);
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
    await this.track(this.queue.run(`child:${childId}`, async () => {
      const st = this.children.get(childId);
      if (!st) throw new Error(`child ${childId} is not installed`);
      const c = st.child;
      const inbound: SaParams = { ...c.inbound, src: { ...remote }, dst: { ...local }, udpEncap };
      const outbound: SaParams = { ...c.outbound, src: { ...local }, dst: { ...remote }, udpEncap };
      if (familyOf(local.addr) !== familyOf(remote.addr)) throw new Error('endpoints are in different address families');
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
      const upd = (id: number, sa: SaParams): Promise<unknown> =>
        this.req('ipsec_sad_entry_update', {
          sad_id: id,
          is_tun: sa.mode === 'tunnel',
          tunnel: this.tunnel(sa.src.addr, sa.dst.addr),
          udp_src_port: udpEncap ? sa.src.port : 0xffff,
          udp_dst_port: udpEncap ? sa.dst.port : 0xffff,
        });
      await Promise.all([upd(st.saIn, inbound), upd(st.saOut, outbound)]);
      st.child = next;
      this.counters.updates++;
    }));
  }

  async remove(childId: number): Promise<void> {
    if (!this.children.has(childId)) return;
    await this.ready();
    await this.track(this.queue.run(`child:${childId}`, async () => {
      const st = this.children.get(childId);
      if (!st) return;
      await this.teardown(st);
      this.children.delete(childId);
      this.liveSadIds.delete(st.saIn);
      this.liveSadIds.delete(st.saOut);
      if (this.liveSpis.get(st.child.inbound.spi) === childId) this.liveSpis.delete(st.child.inbound.spi);
      this.counters.removes++;
    }));
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
          await this.req('ipsec_tunnel_protect_del', { sw_if_index: sw, nh: zeroAddress(false) });
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

  private onDisconnected(): void {
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
    if (!info.reconnect || this.closed || !this.started) return;
    const release = this.pendingRelease;
    this.pendingRelease = undefined;
    // Operations that were running when the connection dropped finish (failing) first.
    void Promise.allSettled([...this.ops])
      .then(() => this.resync())
      .catch((e: unknown) => this.log.error({ err: (e as Error).message }, 'replay after VPP reconnect failed'))
      .finally(() => release?.());
  }

  /** What VPP holds, for reconcile and replay decisions. */
  private async snapshot(): Promise<{
    sas: Map<number, { spi: number; swIfIndex: number }>;
    itfs: { instance: number; mode: number; swIfIndex: number }[];
    prots: { swIfIndex: number; nh: string; saOut: number; saIn: number[] }[];
    spds: number[];
  }> {
    const [sas, itfs, prots, spds] = await Promise.all([
      this.dumpAll('ipsec_sa_v5_dump', { sa_id: U32_MAX }),
      this.dumpAll('ipsec_itf_dump', { sw_if_index: U32_MAX }),
      this.dumpAll('ipsec_tunnel_protect_dump', { sw_if_index: U32_MAX }),
      this.dumpAll('ipsec_spds_dump', {}),
    ]);
    return {
      sas: new Map(sas.map((d) => [d.entry.sad_id, { spi: d.entry.spi, swIfIndex: d.sw_if_index }])),
      itfs: itfs.map((d) => ({ instance: d.itf.user_instance ?? U32_MAX, mode: d.itf.mode, swIfIndex: d.itf.sw_if_index })),
      prots: prots.map((d) => ({ swIfIndex: d.tun.sw_if_index, nh: fromApiAddress(d.tun.nh), saOut: d.tun.sa_out, saIn: d.tun.sa_in })),
      spds: spds.map((d) => d.spd_id),
    };
  }

  private p2mpInstances(): Set<number> {
    const out = new Set<number>();
    for (const st of this.children.values()) if (st.child.vppMode === 'p2mp' && st.itfInstance !== undefined) out.add(st.itfInstance);
    return out;
  }

  /**
   * Removes objects that look like ours and belong to no known CHILD_SA: protections and p2p
   * interfaces with our instance numbers, our SPDs, our SAs. With `known`, what the installed
   * children use is kept.
   */
  private async reconcile(known: boolean): Promise<number> {
    const snap = await this.snapshot();
    const keepSa = new Set<number>();
    const keepItf = new Set<number>();
    const keepSpd = new Set<number>();
    if (known) {
      for (const st of this.children.values()) {
        keepSa.add(st.saIn);
        keepSa.add(st.saOut);
        if (st.child.vppMode === 'p2p' && st.itfInstance !== undefined) keepItf.add(st.itfInstance);
      }
      for (const s of this.spds.values()) keepSpd.add(s.spdId);
    }
    let removed = 0;
    this.foreignSpis.clear();
    this.foreignSadIds.clear();
    this.foreignInstances.clear();
    this.instanceHint = 0;
    for (const [id, sa] of snap.sas) {
      if (!isOurId(id)) {
        this.foreignSadIds.add(id);
        this.foreignSpis.add(sa.spi);
      }
    }
    const ourItf = snap.itfs.filter((i) => i.instance >= this.opts.p2pInstanceBase && i.mode === 0);
    for (const i of snap.itfs) if (!(i.instance >= this.opts.p2pInstanceBase && i.mode === 0)) this.foreignInstances.add(i.instance);
    const strayItf = ourItf.filter((i) => !keepItf.has(i.instance));
    const straySw = new Set(strayItf.map((i) => i.swIfIndex));
    // Protections that use our SAs but are not ours to keep (p2mp groups are rebuilt by replay).
    for (const p of snap.prots) {
      const usesOurs = isOurId(p.saOut) || p.saIn.some(isOurId);
      const kept = [p.saOut, ...p.saIn].every((id) => keepSa.has(id));
      if ((usesOurs && !kept) || straySw.has(p.swIfIndex)) {
        try {
          await this.req('ipsec_tunnel_protect_del', { sw_if_index: p.swIfIndex, nh: toApiAddress(p.nh) });
          removed++;
        } catch (e) {
          if (!isGone(e)) throw e;
        }
      }
    }
    for (const i of strayItf) {
      try {
        await this.req('ipsec_itf_delete', { sw_if_index: i.swIfIndex });
        removed++;
      } catch (e) {
        if (!isGone(e)) throw e;
      }
    }
    for (const id of snap.spds) {
      if (isOurId(id) && !keepSpd.has(id)) {
        try {
          await this.req('ipsec_spd_add_del', { is_add: false, spd_id: id });
          removed++;
        } catch (e) {
          if (!isGone(e)) throw e;
        }
      }
    }
    await Promise.all(
      [...snap.sas.keys()]
        .filter((id) => isOurId(id) && !keepSa.has(id))
        .map(async (id) => {
          await this.delSa(id);
          removed++;
        }),
    );
    if (removed > 0) this.log.info({ removed }, 'removed stale vpp-iked objects from VPP');
    return removed;
  }

  /** After a reconnect: re-program every CHILD_SA VPP lost, drop strays, tell the engine. */
  private async resync(): Promise<void> {
    const snap = await this.snapshot();
    const lost: ChildState[] = [];
    for (const st of this.children.values()) {
      const ok =
        snap.sas.get(st.saIn)?.spi === st.child.inbound.spi &&
        snap.sas.get(st.saOut)?.spi === st.child.outbound.spi &&
        (st.child.vppMode !== 'p2p' || snap.itfs.some((i) => i.instance === st.itfInstance && i.swIfIndex === st.swIfIndex)) &&
        (st.child.vppMode === 'policy' || snap.prots.some((p) => p.swIfIndex === st.swIfIndex && (p.saOut === st.saOut || p.saIn.includes(st.saIn))));
      if (!ok) lost.push(st);
    }
    if (lost.length === 0) {
      await this.reconcile(true);
      return;
    }
    this.log.warn({ children: lost.length }, 'VPP lost CHILD_SAs; programming them again');
    // Remnants of the lost children would collide with the replay: remove them first.
    for (const st of lost) {
      const id = st.child.childId;
      this.children.delete(id);
      this.forgetRoutes(id, st.routes);
      if (st.group) {
        const members = this.groups.get(st.group);
        members?.delete(id);
        if (members && members.size === 0) this.groups.delete(st.group);
      }
      if (st.spdTable !== undefined) this.spds.get(st.spdTable)?.users.delete(id);
    }
    for (const [t, s] of [...this.spds]) if (s.users.size === 0 || !snap.spds.includes(s.spdId)) this.spds.delete(t);
    await this.reconcile(true);
    const replayed: number[] = [];
    const failed: [ChildState, string][] = [];
    // Members of one protection group go one after the other, oldest first (the first one creates a
    // p2p interface, the others join it); everything else is pipelined, bounded by the client's window.
    const runs = new Map<string | number, ChildState[]>();
    for (const st of lost) {
      const k = st.group ?? st.child.childId;
      const run = runs.get(k);
      if (run) run.push(st);
      else runs.set(k, [st]);
    }
    await Promise.all(
      [...runs.values()].map(async (run) => {
        run.sort((a, b) => a.seq - b.seq);
        for (const st of run) {
          try {
            await this.installInternal(st.child, undefined, { replay: true, preset: st });
            replayed.push(st.child.childId);
          } catch (e) {
            failed.push([st, (e as Error).message]);
          }
        }
      }),
    );
    for (const [st] of failed) {
      this.liveSadIds.delete(st.saIn);
      this.liveSadIds.delete(st.saOut);
      if (this.liveSpis.get(st.child.inbound.spi) === st.child.childId) this.liveSpis.delete(st.child.inbound.spi);
      if (st.child.vppMode === 'p2p' && st.itfInstance !== undefined && this.liveMember(st.group, st.child.childId) === undefined) {
        this.freeInstance(st.itfInstance);
      }
    }
    this.counters.replays += replayed.length;
    for (const [st, why] of failed) this.listener.failed?.(st.child.childId, `could not program again after VPP restart: ${why}`);
    this.log.info({ replayed: replayed.length, failed: failed.length }, 'CHILD_SAs programmed again after VPP restart');
    this.announceReplayed(replayed.sort((a, b) => a - b));
  }

  /** replayed() in batches, spaced so the engine's rekeys are paced. */
  private announceReplayed(ids: number[]): void {
    if (ids.length === 0) return;
    const batch = this.opts.replayBatch;
    let i = 0;
    const next = (): void => {
      this.replayTimer = undefined;
      if (this.closed) return;
      const part = ids.slice(i, i + batch).filter((id) => this.children.has(id));
      i += batch;
      if (part.length > 0) this.listener.replayed?.(part);
      if (i < ids.length) this.replayTimer = setTimeout(next, this.opts.replayIntervalMs);
    };
    next();
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
        const tun = (e.flags & SAD_FLAG.IS_TUNNEL) !== 0;
        return {
          sad_id: e.sad_id,
          ours: isOurId(e.sad_id),
          child_id: bySad.get(e.sad_id) ?? null,
          spi: hex8(e.spi),
          direction: e.flags & SAD_FLAG.IS_INBOUND ? 'in' : 'out',
          protocol: e.protocol === 50 ? 'esp' : e.protocol === 51 ? 'ah' : e.protocol,
          crypto: enumName(IpsecCryptoAlg, e.crypto_algorithm, 'IPSEC_API_CRYPTO_ALG_'),
          crypto_algorithm: e.crypto_algorithm,
          crypto_key_bytes: e.crypto_key.length,
          integrity: enumName(IpsecIntegAlg, e.integrity_algorithm, 'IPSEC_API_INTEG_ALG_'),
          integrity_algorithm: e.integrity_algorithm,
          integrity_key_bytes: e.integrity_key.length,
          flags: e.flags,
          flag_names: flagNames(e.flags),
          tunnel_src: tun ? addressText(e.tunnel.src) : null,
          tunnel_dst: tun ? addressText(e.tunnel.dst) : null,
          tunnel_table: tun ? e.tunnel.table_id : null,
          udp_encap: e.flags & SAD_FLAG.UDP_ENCAP ? { src_port: e.udp_src_port, dst_port: e.udp_dst_port } : null,
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
        nh: addressText(d.tun.nh),
        sa_out: d.tun.sa_out,
        sa_in: d.tun.sa_in,
        spi_out: spiOf.get(d.tun.sa_out) ?? null,
        spi_in: d.tun.sa_in.map((id) => spiOf.get(id) ?? null),
      })),
      interfaces: itfs.map((d) => ({
        name: ifName.get(d.itf.sw_if_index) ?? `ipsec${d.itf.user_instance}`,
        sw_if_index: d.itf.sw_if_index,
        instance: d.itf.user_instance,
        mode: d.itf.mode === 0 ? 'p2p' : 'p2mp',
        admin_up: ((ifFlags.get(d.itf.sw_if_index) ?? 0) & 1) !== 0,
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
                sa_id: p.policy === SPD_ACTION.PROTECT ? p.sa_id : null,
                protocol: p.protocol,
                local: `${addressText(p.local_address_start)}-${addressText(p.local_address_stop)}`,
                remote: `${addressText(p.remote_address_start)}-${addressText(p.remote_address_stop)}`,
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

/** Text of an address VPP reported; malformed ones are shown as null instead of failing the dump. */
function addressText(a: Address): string | null {
  try {
    return fromApiAddress(a);
  } catch {
    return null;
  }
}

/** Canonical text of an address (so equal addresses compare equal as strings). */
function parseIpText(addr: string): string {
  return fromApiAddress(toApiAddress(addr));
}
