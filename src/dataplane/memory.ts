/**
 * A dataplane that programs nothing: it records what the engine asks for, so tests, dry runs and
 * `dataplane = memory` can run the whole IKE engine without VPP. It accepts exactly what the VPP
 * back end accepts (same features, same key checks), hands out SPIs the same way, and can be told
 * to fail the next operation or to behave as if VPP had restarted.
 */

import type {
  ChildCounters,
  ChildInstall,
  Dataplane,
  DataplaneFeatures,
  DataplaneListener,
  InstallResult,
  SaEndpoint,
  SaParams,
} from './types.ts';
import { hex8 } from '../common/text.ts';
import { SpiAllocator } from './spi.ts';
import { validateChildInstall, validateEndpoints, vppDataplaneFeatures, type InstallCheckContext } from './vpp-rules.ts';

export type MemoryOp = 'allocate' | 'release' | 'install' | 'replace' | 'update' | 'remove' | 'fail' | 'restart';

/** One entry of the event log. */
export interface MemoryEvent {
  seq: number;
  op: MemoryOp;
  childId?: number;
  spi?: number;
  /** For 'replace': the child that was replaced. For 'fail': the failed operation. */
  replaced?: number;
  failedOp?: 'install' | 'update' | 'remove';
  reason?: string;
  /** For 'update': the new endpoints. */
  local?: SaEndpoint;
  remote?: SaEndpoint;
  udpEncap?: boolean;
}

/** The error a MemoryDataplane operation rejects with. */
export class MemoryDataplaneError extends Error {
  override readonly name = 'MemoryDataplaneError';
}

export interface MemoryDataplaneOptions {
  /** As VppDataplaneOptions.policyInterface: policy-mode CHILD_SAs without vpp_interface need it. */
  policyInterface?: string;
  /** How many of the latest events `events` keeps (default 100,000: tests read them; a daemon keeps few). */
  maxEvents?: number;
}

function saView(sa: SaParams): Record<string, unknown> {
  return {
    spi: hex8(sa.spi),
    src: `${sa.src.addr}:${sa.src.port}`,
    dst: `${sa.dst.addr}:${sa.dst.port}`,
    udp_encap: sa.udpEncap,
    encr: `${sa.alg.encrId}:${sa.alg.encrKeyBits}`,
    integ: sa.alg.integId,
    esn: sa.alg.esn,
    replay_window: sa.replayWindow,
    mode: sa.mode,
  };
}

interface Placement {
  readonly result: InstallResult;
  readonly group: string;
  readonly seq: number;
}

export class MemoryDataplane implements Dataplane {
  readonly name = 'memory';
  /** Installed CHILD_SAs by childId (the records as handed over). */
  readonly installed = new Map<number, ChildInstall>();
  /** Everything that happened, oldest first: the last `maxEvents` (older ones are dropped in batches). */
  readonly events: MemoryEvent[] = [];
  maxEvents: number;

  /**
   * Where each installed child went: the result handed to the engine (the same frozen object, not a
   * copy), its tunnel (shared protection) and its install order. One record per child.
   */
  private readonly placed = new Map<number, Placement>();
  /** SPIs handed out and not yet installed or released. */
  private readonly allocated = new Set<number>();
  /** Inbound SPI → childId, for installed SAs. */
  private readonly liveSpis = new Map<number, number>();
  /** Traffic accounted on installed CHILD_SAs (addTraffic), by childId. */
  private readonly traffic = new Map<number, ChildCounters>();
  private readonly pendingFailures = new Map<'install' | 'update' | 'remove', string>();
  private listener: DataplaneListener = {};
  private seq = 0;
  private nextSaIndex = 1;
  private nextInstance = 0;
  private closed = false;
  private readonly policyInterface: string | undefined;
  private readonly spis = new SpiAllocator((spi) => this.spiInUse(spi));

  private readonly checkContext: InstallCheckContext;

  constructor(options: MemoryDataplaneOptions = {}) {
    this.policyInterface = options.policyInterface;
    this.maxEvents = options.maxEvents ?? 100_000;
    this.checkContext = {
      isInstalled: (id) => this.installed.has(id),
      spiOwner: (spi) => this.liveSpis.get(spi),
      policyInterface: this.policyInterface,
    };
  }

  features(): DataplaneFeatures {
    return vppDataplaneFeatures();
  }

  setListener(l: DataplaneListener): void {
    this.listener = l;
  }

  /** The next install() rejects with `reason` (and installs nothing). */
  failNextInstall(reason: string): void {
    this.pendingFailures.set('install', reason);
  }

  /** The next update() rejects with `reason`. */
  failNextUpdate(reason: string): void {
    this.pendingFailures.set('update', reason);
  }

  /** The next remove() of an installed child rejects with `reason` (the child stays installed). */
  failNextRemove(reason: string): void {
    this.pendingFailures.set('remove', reason);
  }

  /** Number of SPIs allocated but neither installed nor released. */
  get pendingSpis(): number {
    return this.allocated.size;
  }

  /** Whether an SPI is in use (allocated or installed inbound). */
  spiInUse(spi: number): boolean {
    return this.allocated.has(spi) || this.liveSpis.has(spi);
  }

  private log(e: Omit<MemoryEvent, 'seq'>): void {
    this.events.push({ seq: ++this.seq, ...e });
    // trimmed once a quarter more has come, not at every event (each trim moves the whole array)
    if (this.events.length > this.maxEvents + (this.maxEvents >> 2)) this.events.splice(0, this.events.length - this.maxEvents);
  }

  private checkOpen(): void {
    if (this.closed) throw new MemoryDataplaneError('dataplane is closed');
  }

  async allocateSpi(): Promise<number> {
    this.checkOpen();
    const spi = this.spis.next();
    this.allocated.add(spi);
    this.log({ op: 'allocate', spi });
    return spi;
  }

  releaseSpi(spi: number): void {
    if (this.allocated.delete(spi)) this.log({ op: 'release', spi });
  }

  private takeFailure(op: 'install' | 'update' | 'remove', childId: number): void {
    const reason = this.pendingFailures.get(op);
    if (reason === undefined) return;
    this.pendingFailures.delete(op);
    this.log({ op: 'fail', failedOp: op, childId, reason });
    throw new MemoryDataplaneError(reason);
  }

  /** The checks of the VPP back end (vpp-rules.ts), with this dataplane's state. */
  private validate(c: ChildInstall): void {
    const why = validateChildInstall(c, this.checkContext);
    if (why !== undefined) throw new MemoryDataplaneError(why);
  }

  async install(child: ChildInstall): Promise<InstallResult> {
    this.checkOpen();
    this.takeFailure('install', child.childId);
    this.validate(child);
    let iface: string | undefined;
    if (child.vppMode === 'p2p') {
      const old = child.replaces !== undefined ? this.placed.get(child.replaces)?.result.interface : undefined;
      iface = old ?? `ipsec${this.nextInstance++}`;
    } else if (child.vppMode === 'p2mp') {
      iface = child.vppInterface ?? 'ipsec0';
    }
    const saIn = this.nextSaIndex++;
    const saOut = this.nextSaIndex++;
    // a literal in one of two shapes (every field inside the object; the engine keeps it per CHILD_SA)
    const result: InstallResult = Object.freeze(iface === undefined ? { saIn, saOut } : { saIn, saOut, interface: iface });
    this.allocated.delete(child.inbound.spi);
    const replacedGroup = child.replaces !== undefined ? this.placed.get(child.replaces)?.group : undefined;
    const group = replacedGroup ?? (child.vppMode === 'policy' ? `policy:${child.childId}` : child.vppMode === 'p2mp' ? `${iface}|${child.outbound.dst.addr}` : iface!);
    this.placed.set(child.childId, { result, group, seq: this.seq + 1 });
    this.installed.set(child.childId, child);
    this.liveSpis.set(child.inbound.spi, child.childId);
    this.log({ op: 'install', childId: child.childId, spi: child.inbound.spi });
    if (child.replaces !== undefined) {
      // Make-before-break: the new outbound SA takes over now; the old child's inbound SA keeps
      // accepting until the engine removes the old child (after the peer's or our DELETE).
      this.log({ op: 'replace', childId: child.childId, replaced: child.replaces });
    }
    return result;
  }

  private drop(childId: number): void {
    const c = this.installed.get(childId);
    if (!c) return;
    this.installed.delete(childId);
    this.traffic.delete(childId);
    this.placed.delete(childId);
    if (this.liveSpis.get(c.inbound.spi) === childId) this.liveSpis.delete(c.inbound.spi);
  }

  async update(childId: number, local: SaEndpoint, remote: SaEndpoint, udpEncap: boolean): Promise<void> {
    this.checkOpen();
    this.takeFailure('update', childId);
    const c = this.installed.get(childId);
    if (!c) throw new MemoryDataplaneError(`child ${childId} is not installed`);
    const bad = validateEndpoints(local, remote);
    if (bad !== undefined) throw new MemoryDataplaneError(bad);
    const inbound: SaParams = { ...c.inbound, src: { ...remote }, dst: { ...local }, udpEncap };
    const outbound: SaParams = { ...c.outbound, src: { ...local }, dst: { ...remote }, udpEncap };
    this.installed.set(childId, { ...c, inbound, outbound });
    this.log({ op: 'update', childId, local: { ...local }, remote: { ...remote }, udpEncap });
  }

  async remove(childId: number): Promise<void> {
    this.checkOpen();
    if (!this.installed.has(childId)) return;
    this.takeFailure('remove', childId);
    this.drop(childId);
    this.log({ op: 'remove', childId });
  }

  /**
   * Accounts traffic on an installed CHILD_SA as VPP's SA counters would: packets and bytes
   * decrypted by its inbound SA and encrypted by its outbound SA. Returns false for a CHILD_SA that
   * is not installed (nothing is counted).
   */
  addTraffic(childId: number, t: Partial<ChildCounters>): boolean {
    if (!this.installed.has(childId)) return false;
    let c = this.traffic.get(childId);
    if (!c) this.traffic.set(childId, (c = { packetsIn: 0, bytesIn: 0, packetsOut: 0, bytesOut: 0 }));
    c.packetsIn += t.packetsIn ?? 0;
    c.bytesIn += t.bytesIn ?? 0;
    c.packetsOut += t.packetsOut ?? 0;
    c.bytesOut += t.bytesOut ?? 0;
    return true;
  }

  /** Number of counter reads (counters() calls) so far. */
  counterReads = 0;

  async counters(childIds: readonly number[]): Promise<Map<number, ChildCounters>> {
    this.checkOpen();
    this.counterReads++;
    const out = new Map<number, ChildCounters>();
    for (const id of childIds) {
      if (!this.installed.has(id)) continue;
      const c = this.traffic.get(id);
      out.set(id, c ? { ...c } : { packetsIn: 0, bytesIn: 0, packetsOut: 0, bytesOut: 0 });
    }
    return out;
  }

  /** The tunnels (shared protections: a p2p interface, a p2mp peer) that have CHILD_SAs installed. */
  tunnels(): string[] {
    return [...new Set([...this.placed.values()].map((p) => p.group))];
  }

  /** The tunnel an installed CHILD_SA belongs to (a rekey's new CHILD_SA joins the old one's). */
  tunnelOf(childId: number): string | undefined {
    return this.placed.get(childId)?.group;
  }

  /**
   * The CHILD_SA whose outbound SA a tunnel sends on, chosen as the VPP back end chooses its
   * protection's sa_out: the newest member, skipping a rekey we answered while the CHILD_SA it
   * replaces is still installed (ChildInstall.outboundAfterReplaced; policy mode switches at once).
   */
  outboundOf(tunnel: string): ChildInstall | undefined {
    const members = [...this.placed].filter(([, p]) => p.group === tunnel).map(([id]) => id);
    members.sort((x, y) => this.placed.get(x)!.seq - this.placed.get(y)!.seq);
    const ids = new Set(members);
    for (let i = members.length - 1; i >= 0; i--) {
      const c = this.installed.get(members[i]!)!;
      const waits = c.vppMode !== 'policy' && c.outboundAfterReplaced === true && c.replaces !== undefined && ids.has(c.replaces);
      if (!waits) return c;
    }
    return members.length ? this.installed.get(members[members.length - 1]!) : undefined;
  }

  /**
   * Behaves as the VPP back end does after VPP restarted: every installed CHILD_SA is kept (as if
   * replayed) and the listener is told which ones, so the engine rekeys them. Returns the ids.
   */
  simulateRestart(): number[] {
    const ids = [...this.installed.keys()];
    this.log({ op: 'restart' });
    if (ids.length > 0) this.listener.replayed?.(ids);
    return ids;
  }

  /** Behaves as if a CHILD_SA could not be kept: removes it and tells the listener. */
  simulateFailure(childId: number, reason: string): void {
    if (!this.installed.has(childId)) return;
    this.drop(childId);
    this.log({ op: 'fail', childId, reason });
    this.listener.failed?.(childId, reason);
  }

  /** The installed state without key material; JSON-serialisable. */
  async dump(): Promise<unknown> {
    const sas: unknown[] = [];
    for (const [id, c] of this.installed) {
      const r = this.placed.get(id)?.result;
      sas.push({
        child_id: id,
        ike_sa_id: c.ikeSaId,
        connection: c.connection,
        child: c.child,
        vpp_mode: c.vppMode,
        vpp_table: c.vppTable,
        interface: r?.interface ?? null,
        sa_in: r?.saIn ?? null,
        sa_out: r?.saOut ?? null,
        inbound: saView(c.inbound),
        outbound: saView(c.outbound),
        local_ts: c.localTs.map((t) => ({ ...t })),
        remote_ts: c.remoteTs.map((t) => ({ ...t })),
      });
    }
    return { dataplane: this.name, sas, allocated_spis: this.allocated.size, events: this.events.length };
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}
