/**
 * The VPP back end's state: one `Backend` record that every module of the back end works on (what
 * is installed, what is allocated, the per-connection caches and how operations are coordinated),
 * plus the calls into VPP that count them and the error tests the modules share.
 */

import type { ChildInstall, DataplaneListener } from '../types.ts';
import type { InstallCheckContext } from '../vpp-rules.ts';
import { VppApiError, type VppClient, type VppLogger } from '../../vpp/client.ts';
import type { VppDetailsOf, VppDumpName, VppReplyOf, VppRequestBody, VppRequestName } from '../../vpp/api.ts';
import { fromApiAddress, parseIp, toApiAddress, AF_IP6 } from '../../vpp/address.ts';
import { VppErr } from '../../vpp/errors.ts';
import type { IpsecSpdEntryV2 } from '../../vpp/defs.generated.ts';
import { newIds, type Ids } from './ids.ts';

export const U32_MAX = 0xffffffff;

/** Where the back end's timers come from (resync backoff pauses, replayed() pacing). */
export interface TimerSource {
  /** Calls `fn` once after `ms`; the function returned cancels that. */
  after(ms: number, fn: () => void): () => void;
}

/** The process's timers. */
export const REAL_TIMERS: TimerSource = {
  after(ms, fn) {
    const t = setTimeout(fn, ms);
    return () => clearTimeout(t);
  },
};

export interface Settings {
  unnumberedInterface: string | undefined;
  policyInterface: string | undefined;
  p2pInstanceBase: number;
  replayBatch: number;
  replayIntervalMs: number;
  resyncRetryMinMs: number;
  resyncRetryMaxMs: number;
  /** How long a replay after a VPP restart waits for the interfaces its CHILD_SAs need (ms). */
  interfaceWaitMs: number;
  /** How often it looks for them meanwhile (ms). */
  interfaceWaitStepMs: number;
}

export interface RouteSpec {
  table: number;
  prefix: string;
  len: number;
  isIp6: boolean;
  swIfIndex: number;
  /** Next-hop address (text), or '' for an attached path through a p2p interface. */
  nh: string;
}

/** A CHILD_SA as this back end programmed it into VPP. */
export interface InstalledChild {
  child: ChildInstall;
  /** Install order (kept across a replay): the newest member of a group provides the outbound SA. */
  seq: number;
  saIn: number;
  saOut: number;
  /** p2p: the interface; p2mp: the shared interface; policy: the SPD's interface. */
  itfName?: string;
  /** p2p: the interface's instance. */
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

export interface SpdState {
  spdId: number;
  table: number;
  iface: string;
  swIfIndex: number;
  users: Set<number>;
  ready: boolean;
}

/** What VPP holds, for reconcile and replay decisions (ids, SPIs and indexes only). */
export interface Snapshot {
  sas: Map<number, { spi: number; swIfIndex: number }>;
  itfs: { instance: number; mode: number; swIfIndex: number }[];
  prots: { swIfIndex: number; nh: string; saOut: number; saIn: number[] }[];
  spds: Set<number>;
  /** Interfaces that have an SPD bound (ipsec_spd_interface_dump). */
  spdBound: Set<number>;
}

export interface Counters {
  calls: number;
  failures: number;
  installs: number;
  removes: number;
  updates: number;
  replays: number;
  resync_failures: number;
}

export interface Backend {
  readonly client: VppClient;
  readonly log: VppLogger;
  readonly opts: Settings;
  readonly timers: TimerSource;
  listener: DataplaneListener;
  readonly counters: Counters;
  readonly checkContext: InstallCheckContext;

  // What is installed.
  readonly children: Map<number, InstalledChild>;
  /** sad_id → the SA's stat index (its counters in the stats segment), from the add reply. */
  readonly statIndex: Map<number, number>;
  /** Protection groups: key → member child ids. */
  readonly groups: Map<string, Set<number>>;
  /** Routes by key, with the children that use them. */
  readonly routeUsers: Map<string, { route: RouteSpec; users: Set<number> }>;
  /** policy mode: the SPD of each table (table → SPD state, which holds the allocated SPD id). */
  readonly spds: Map<number, SpdState>;
  /** Last install order handed out. */
  seq: number;
  readonly ids: Ids;

  // Per-connection caches.
  ifIndex: Map<string, number>;
  tablesReady: Set<string>;

  // Coordination.
  /** Serialises work per resource (`child:`, `grp:`, `spd:`, `itf:`, `table:` keys). */
  readonly queue: KeyedQueue;
  /** Resolves when no start-up reconcile or resync is running; operations wait on it. */
  gate: Promise<void>;
  /** Operations running against the current connection; a reconnect's replay waits for them. */
  readonly ops: Set<Promise<unknown>>;
  started: boolean;
  closed: boolean;
  /** Bumped on every connect and disconnect: a resync stops when its connection is gone. */
  connGen: number;
  /** The running start-up reconcile and resync (they run one after the other). */
  startup: Promise<unknown>;
  resyncing: Promise<void>;
  /** Set while VPP is unreachable: opens the gate the disconnect closed (after the resync). */
  pendingRelease: (() => void) | undefined;
  /** Runs after VPP came back and before the resync replays anything (e.g. punt registration). */
  beforeResync: (() => Promise<void>) | undefined;
  /** The backoff pause of a resync retry (cut short by a connection change or close()). */
  pause: { cancel: () => void; done: () => void } | undefined;
  /** Lost CHILD_SAs being programmed again (out of `children` until they are back). */
  readonly replaying: Map<number, InstalledChild>;
  /** remove() calls waiting for a replay to end: those CHILD_SAs are not replayed. */
  readonly removing: Set<number>;
  /** remove() calls made while VPP was unreachable: the next resync carries them out. */
  readonly deferredRemoves: Set<number>;
  /** replayed() ids not announced yet, and the timer of the next batch. */
  readonly announceQueue: number[];
  announceCancel: (() => void) | undefined;
}

export function newBackend(client: VppClient, log: VppLogger, opts: Settings, timers: TimerSource): Backend {
  const b: Backend = {
    client,
    log,
    opts,
    timers,
    listener: {},
    counters: { calls: 0, failures: 0, installs: 0, removes: 0, updates: 0, replays: 0, resync_failures: 0 },
    checkContext: {
      isInstalled: (id) => b.children.has(id),
      spiOwner: (spi) => b.ids.liveSpis.get(spi),
      policyInterface: opts.policyInterface,
    },
    children: new Map(),
    statIndex: new Map(),
    groups: new Map(),
    routeUsers: new Map(),
    spds: new Map(),
    seq: 0,
    ids: newIds(opts.p2pInstanceBase),
    ifIndex: new Map(),
    tablesReady: new Set(),
    queue: new KeyedQueue(),
    gate: Promise.resolve(),
    ops: new Set(),
    started: false,
    closed: false,
    connGen: 0,
    startup: Promise.resolve(),
    resyncing: Promise.resolve(),
    pendingRelease: undefined,
    pause: undefined,
    beforeResync: undefined,
    replaying: new Map(),
    removing: new Set(),
    deferredRemoves: new Set(),
    announceQueue: [],
    announceCancel: undefined,
  };
  return b;
}

// ------------------------------------------------------------------ VPP calls

export async function req<N extends VppRequestName>(b: Backend, name: N, body: VppRequestBody<N>): Promise<VppReplyOf<N>> {
  b.counters.calls++;
  return b.client.request(name, body);
}

export async function dumpAll<N extends VppDumpName>(b: Backend, name: N, body: VppRequestBody<N>): Promise<VppDetailsOf<N>[]> {
  b.counters.calls++;
  return b.client.dump(name, body);
}

/** A dump read as it arrives (for scans that keep only a little of each record). */
export function streamAll<N extends VppDumpName>(b: Backend, name: N, body: VppRequestBody<N>): AsyncIterableIterator<VppDetailsOf<N>> {
  b.counters.calls++;
  return b.client.stream(name, body);
}

// ------------------------------------------------------------------ coordination

/** Serialises async work per key (a per-resource queue). */
export class KeyedQueue {
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

/** Runs `fn` with the gate closed (operations wait), after whatever held it before. */
export async function runGated<T>(b: Backend, fn: () => Promise<T>): Promise<T> {
  const prev = b.gate;
  let release!: () => void;
  b.gate = new Promise<void>((r) => (release = r));
  try {
    await prev;
    return await fn();
  } finally {
    release();
  }
}

/** Waits until an operation may run: open, connected, no reconcile or resync running. */
export async function ready(b: Backend): Promise<void> {
  if (b.closed) throw new Error('VPP dataplane is closed');
  if (!b.client.connected) throw new Error('not connected to VPP');
  await b.gate;
  if (!b.client.connected) throw new Error('not connected to VPP');
}

/** Registers an operation on the current connection (see Backend.ops). */
export function track<T>(b: Backend, p: Promise<T>): Promise<T> {
  b.ops.add(p);
  const done = (): void => {
    b.ops.delete(p);
  };
  p.then(done, done);
  return p;
}

// ------------------------------------------------------------------ shared helpers

export const NOOP_LOG: VppLogger = { debug() {}, info() {}, warn() {}, error() {} };

export function familyOf(addr: string): 4 | 6 {
  return parseIp(addr).af === AF_IP6 ? 6 : 4;
}

/** Canonical text of an address (so equal addresses compare equal as strings). */
export function parseIpText(addr: string): string {
  return fromApiAddress(toApiAddress(addr));
}

/** Errors VPP answers when what we remove is already gone. */
export function isGone(e: unknown): boolean {
  return (
    e instanceof VppApiError &&
    (e.retval === VppErr.NO_SUCH_ENTRY || e.retval === VppErr.INVALID_SW_IF_INDEX || e.retval === VppErr.INVALID_VALUE)
  );
}

/**
 * Also gone, for a route delete: the path's interface no longer exists (fib_api_path_decode:
 * NO_MATCHING_INTERFACE) or its table does not (fib_api_table_id_decode: NO_SUCH_FIB).
 */
export function isRouteGone(e: unknown): boolean {
  return isGone(e) || (e instanceof VppApiError && (e.retval === VppErr.NO_MATCHING_INTERFACE || e.retval === VppErr.NO_SUCH_FIB));
}

export function isVppError(e: unknown, retval: number): boolean {
  return e instanceof VppApiError && e.retval === retval;
}

/** Runs a removal; VPP answering that the object is already gone counts as done. */
export async function removeGone(fn: () => Promise<unknown>): Promise<void> {
  try {
    await fn();
  } catch (e) {
    if (!isGone(e)) throw e;
  }
}
