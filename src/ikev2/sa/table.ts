/**
 * The session table: every IKE SA, indexed for O(1) lookup by our SPI, by the initiator's SPI and
 * address while half-open, by peer identity (INITIAL_CONTACT, `unique`) and by connection name.
 * Bounded by `ike_sa_limit`. At capacity, the cheapest SA to lose is evicted first (the oldest
 * half-open one, then the one whose peer stopped answering longest ago); live tunnels are never
 * dropped to make room, whatever their recent activity: the new SA is refused instead. That is why
 * the table is not a recency (LRU) cache: a quiet tunnel is as valuable as a busy one.
 */
import type { IkeSa } from './ike-sa.ts';

export type EvictReason = 'half-open' | 'unresponsive';

export class SaTable {
  /** All SAs by id, in creation order. */
  private readonly byId = new Map<number, IkeSa>();
  private readonly bySpi = new Map<bigint, IkeSa>();
  private readonly halfOpenInit = new Map<string, IkeSa>();
  /** Half-open SAs in creation order (oldest first) – eviction candidates. */
  private readonly halfOpen = new Map<number, IkeSa>();
  /** Peer address of each half-open SA as it was admitted, and the number of half-open SAs per address. */
  private readonly halfOpenAddr = new Map<number, string>();
  private readonly halfOpenPerAddr = new Map<string, number>();
  /** SAs whose peer stopped answering (a request is being retransmitted), oldest first. */
  private readonly unresponsive = new Map<number, IkeSa>();
  /**
   * By our identity, then the peer's (no key string per SA: both identity strings are the SA's own).
   * Most peers have one IKE SA: it is held as-is, a Set only once there are more.
   */
  private readonly byPeer = new Map<string, Map<string, IkeSa | Set<IkeSa>>>();
  private readonly byConn = new Map<string, Set<IkeSa>>();
  limit: number;

  constructor(limit: number) {
    this.limit = limit;
  }

  get size(): number {
    return this.byId.size;
  }
  get halfOpenCount(): number {
    return this.halfOpen.size;
  }

  /**
   * Make room for one more SA. Returns the SA that must be evicted first (the caller removes it like a
   * delete), 'ok' when there is room, or 'full' when only live tunnels remain.
   */
  admission(): 'ok' | 'full' | { evict: IkeSa; reason: EvictReason } {
    if (this.byId.size < this.limit) return 'ok';
    for (const ho of this.halfOpen.values()) return { evict: ho, reason: 'half-open' };
    for (const sa of this.unresponsive.values()) return { evict: sa, reason: 'unresponsive' };
    return 'full';
  }

  add(sa: IkeSa, halfOpenKey?: string): void {
    this.byId.set(sa.id, sa);
    this.bySpi.set(spiKey(sa.ourSpi), sa);
    if (halfOpenKey) this.halfOpenInit.set(halfOpenKey, sa);
    // Only half-open SAs a peer asked for are cheap to lose; our own outgoing ones are not evicted,
    // and they count for their connection from the start (so it is not initiated twice).
    if (!sa.initiator) {
      this.halfOpen.set(sa.id, sa);
      const a = sa.remote.addr;
      this.halfOpenAddr.set(sa.id, a);
      this.halfOpenPerAddr.set(a, (this.halfOpenPerAddr.get(a) ?? 0) + 1);
    } else if (sa.conn) addTo(this.byConn, sa.conn.name, sa);
  }

  /** The engine's view of whether the SA's peer answers (kept here so admission() never scans). */
  setUnresponsive(sa: IkeSa, yes: boolean): void {
    if (yes) this.unresponsive.set(sa.id, sa);
    else this.unresponsive.delete(sa.id);
  }

  get(id: number): IkeSa | undefined {
    return this.byId.get(id);
  }

  bySpiBuf(spi: Buffer): IkeSa | undefined {
    return this.bySpi.get(spiKey(spi));
  }

  halfOpenByInit(key: string): IkeSa | undefined {
    return this.halfOpenInit.get(key);
  }

  /** The SA completed authentication: no longer half-open; index by identity and connection. */
  established(sa: IkeSa, halfOpenKey?: string): void {
    this.halfOpen.delete(sa.id);
    this.dropHalfOpenAddr(sa.id);
    if (halfOpenKey) this.halfOpenInit.delete(halfOpenKey);
    let ours = this.byPeer.get(sa.localId);
    if (ours === undefined) this.byPeer.set(sa.localId, (ours = new Map()));
    const had = ours.get(sa.remoteId);
    if (had === undefined) ours.set(sa.remoteId, sa);
    else if (had instanceof Set) had.add(sa);
    else if (had !== sa) ours.set(sa.remoteId, new Set([had, sa]));
    if (sa.conn) addTo(this.byConn, sa.conn.name, sa);
  }

  remove(sa: IkeSa, halfOpenKey?: string): void {
    this.byId.delete(sa.id);
    if (this.bySpi.get(spiKey(sa.ourSpi)) === sa) this.bySpi.delete(spiKey(sa.ourSpi));
    this.halfOpen.delete(sa.id);
    this.dropHalfOpenAddr(sa.id);
    this.unresponsive.delete(sa.id);
    if (halfOpenKey && this.halfOpenInit.get(halfOpenKey) === sa) this.halfOpenInit.delete(halfOpenKey);
    const ours = this.byPeer.get(sa.localId);
    const had = ours?.get(sa.remoteId);
    if (ours !== undefined && had === sa) {
      ours.delete(sa.remoteId);
      if (ours.size === 0) this.byPeer.delete(sa.localId);
    } else if (ours !== undefined && had instanceof Set) {
      had.delete(sa);
      if (had.size === 1) ours.set(sa.remoteId, had.values().next().value!);
    }
    if (sa.conn) removeFrom(this.byConn, sa.conn.name, sa);
  }

  /** Half-open SAs a peer at this address asked for. */
  halfOpenFrom(addr: string): number {
    return this.halfOpenPerAddr.get(addr) ?? 0;
  }

  private dropHalfOpenAddr(id: number): void {
    const a = this.halfOpenAddr.get(id);
    if (a === undefined) return;
    this.halfOpenAddr.delete(id);
    const n = (this.halfOpenPerAddr.get(a) ?? 1) - 1;
    if (n > 0) this.halfOpenPerAddr.set(a, n);
    else this.halfOpenPerAddr.delete(a);
  }

  peers(localId: string, remoteId: string): ReadonlySet<IkeSa> {
    const had = this.byPeer.get(localId)?.get(remoteId);
    if (had === undefined) return EMPTY;
    return had instanceof Set ? had : new Set([had]);
  }

  ofConnection(name: string): ReadonlySet<IkeSa> {
    return this.byConn.get(name) ?? EMPTY;
  }

  /** Every SA, oldest first (a rekeyed IKE SA's successor comes after it). */
  values(): IterableIterator<IkeSa> {
    return this.byId.values();
  }
}

const EMPTY: ReadonlySet<IkeSa> = new Set();

export function spiKey(spi: Buffer): bigint {
  return spi.readBigUInt64BE(0);
}

function addTo(m: Map<string, Set<IkeSa>>, k: string, sa: IkeSa): void {
  let s = m.get(k);
  if (!s) m.set(k, (s = new Set()));
  s.add(sa);
}

function removeFrom(m: Map<string, Set<IkeSa>>, k: string, sa: IkeSa): void {
  const s = m.get(k);
  if (!s) return;
  s.delete(sa);
  if (s.size === 0) m.delete(k);
}
