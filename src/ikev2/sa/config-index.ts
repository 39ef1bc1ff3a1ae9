/**
 * Index over the loaded connections and secrets, so that finding the connection for an incoming
 * IKE_SA_INIT (by addresses) and IKE_AUTH (by identity) and the PSK for a pair of identities are map
 * lookups, not scans over thousands of connections. Wildcards (%any, CIDR, "*.example.net") fall back
 * to short lists that are scanned.
 */
import type { ConnectionConfig, SecretConfig } from '../../config/types.ts';
import { bigIntToBytes, bytesToBigInt, bytesToIp, ipToBytes, normalizeIp } from '../../common/addr.ts';
import { parseAddressBlock } from '../../config/ts.ts';
import { asciiLower, dnKey, identityHasWildcards, identityMatchesParsed, parseIdentity, parseIdPattern, type Identity } from '../../config/identity.ts';
import { IdType } from '../constants.ts';

interface Range {
  family: 4 | 6;
  start: bigint;
  end: bigint;
}

/** An address list from local_addrs / remote_addrs: 'any' (empty or %any) or ranges. */
type AddrSpec = 'any' | Range[];

/** Parses an address list once (addresses, CIDR blocks, ranges; the loader has validated them). */
function addrSpec(specs: string[]): AddrSpec {
  if (specs.length === 0) return 'any';
  const out: Range[] = [];
  for (const raw of specs) {
    const s = raw.trim();
    if (s === '%any' || s === '%any4' || s === '%any6') return 'any';
    try {
      const b = parseAddressBlock(s);
      out.push({ family: b.family, start: bytesToBigInt(b.start), end: bytesToBigInt(b.end) });
    } catch {
      // not an address (the loader rejects these): never matches
    }
  }
  return out.slice(); // exact size: kept per connection
}

function inSpec(spec: AddrSpec, addr: string): boolean {
  if (spec === 'any') return true;
  const a = addrValue(addr);
  return a !== undefined && spec.some((r) => inRange(r, a));
}

/** An address as its family and number, for range checks; undefined when it is not one. */
function addrValue(addr: string): { fam: 4 | 6; v: bigint } | undefined {
  const b = ipToBytes(addr);
  return b ? { fam: b.length === 4 ? 4 : 6, v: bytesToBigInt(b) } : undefined;
}

function inRange(r: Range, a: { fam: 4 | 6; v: bigint }): boolean {
  return r.family === a.fam && r.start <= a.v && a.v <= r.end;
}

/**
 * Connections by remote address for IKE_SA_INIT: exact addresses in a map, blocks and %any in lists.
 * What an IKE_SA_INIT takes from a connection is its proposals, checked in order among those whose
 * local addresses match: of the connections for any remote address (a hub's peers, configured one
 * by one, usually are) only the first of each combination of proposals and local addresses is kept,
 * which is the one that order would choose. 50,000 such connections are then one entry, not 50,000
 * to go through for every IKE_SA_INIT.
 */
class AddrIndex {
  private readonly exact = new Map<string, ConnectionConfig[]>();
  private readonly ranges: { conn: ConnectionConfig; range: Range }[] = [];
  private readonly any: ConnectionConfig[] = [];
  /** Local address lists already in `any`, by proposal list (the loader shares equal lists). */
  private readonly anySeen = new Map<readonly unknown[], Set<string>>();

  add(conn: ConnectionConfig, spec: AddrSpec): void {
    if (spec === 'any') {
      const local = conn.localAddrs.join(',');
      let seen = this.anySeen.get(conn.proposals);
      if (!seen) this.anySeen.set(conn.proposals, (seen = new Set()));
      if (seen.has(local)) return;
      seen.add(local);
      this.any.push(conn);
      return;
    }
    for (const r of spec) {
      if (r.start === r.end) {
        const key = bytesToIp(bigIntToBytes(r.start, r.family === 4 ? 4 : 16));
        const l = this.exact.get(key);
        if (l) l.push(conn);
        else this.exact.set(key, [conn]);
      } else this.ranges.push({ conn, range: r });
    }
  }

  /** Connections for an IKE_SA_INIT from addr, most specific first (exact, then ranges, then any). */
  match(addr: string): ConnectionConfig[] {
    const exact = this.exact.get(normalizeIp(addr));
    const out: ConnectionConfig[] = exact ? exact.slice() : [];
    // the peer's address parsed once for the whole list
    const a = this.ranges.length ? addrValue(addr) : undefined;
    if (a) for (const { conn, range } of this.ranges) if (inRange(range, a)) out.push(conn);
    for (const c of this.any) out.push(c);
    return out;
  }
}

export class ConfigIndex {
  readonly connections: ConnectionConfig[];
  private readonly byName = new Map<string, ConnectionConfig>();
  private readonly remoteAddr = new AddrIndex();
  private readonly byRemoteId = new Map<string, ConnectionConfig[]>();
  /** Connections whose remote id is matched, not looked up: %any and patterns. */
  private readonly patternRemoteId: ConnectionConfig[] = [];
  private readonly secretsById = new Map<string, SecretConfig[]>();
  private readonly anySecrets: SecretConfig[] = [];
  private readonly order = new Map<ConnectionConfig, number>();
  private readonly secretOrder = new Map<SecretConfig, number>();
  private readonly addrs = new Map<ConnectionConfig, { local: AddrSpec; remote: AddrSpec }>();
  /** Canonical identities of each secret, computed once. */
  private readonly secretIds = new Map<SecretConfig, string[]>();
  /** Secrets with patterns among their ids, those ids parsed. */
  private readonly patternSecrets = new Map<SecretConfig, Identity[]>();
  /** Secrets with a %any id: they apply to every pair of identities, as weakly as secrets without ids. */
  private readonly anyIdSecrets = new Set<SecretConfig>();
  /** Each connection's identities as patterns, parsed once (null: matches anything; false: unparsable, matches nothing). */
  private readonly patterns = new Map<ConnectionConfig, { local: Identity | null | false; remote: Identity | null | false }>();

  constructor(connections: ConnectionConfig[], secrets: SecretConfig[]) {
    this.connections = connections;
    // Address lists and our own identity are often the same in thousands of connections (a hub's
    // peers): parsed once each and shared, as they are never changed.
    const specs = new Map<string, AddrSpec>();
    const spec = (list: readonly string[]): AddrSpec => {
      const key = list.join(',');
      let v = specs.get(key);
      if (v === undefined) specs.set(key, (v = addrSpec([...list])));
      return v;
    };
    const localIds = new Map<string, Identity | null | false>();
    connections.forEach((c, i) => {
      this.order.set(c, i);
      this.byName.set(c.name, c);
      const a = { local: spec(c.localAddrs), remote: spec(c.remoteAddrs) };
      this.addrs.set(c, a);
      this.remoteAddr.add(c, a.remote);
      const remote = parseIdPattern(c.remote.id);
      let local = localIds.get(c.local.id);
      if (local === undefined) localIds.set(c.local.id, (local = parseIdPattern(c.local.id)));
      this.patterns.set(c, { local, remote });
      if (remote === false) return; // matches no identity
      if (remote === null || identityHasWildcards(remote)) this.patternRemoteId.push(c);
      else {
        const key = canonicalIdOf(remote);
        const l = this.byRemoteId.get(key);
        if (l) l.push(c);
        else this.byRemoteId.set(key, [c]);
      }
    });
    for (const s of secrets) {
      if (s.kind !== 'ike') continue;
      this.secretOrder.set(s, this.secretOrder.size);
      const ids: string[] = [];
      const matched: Identity[] = [];
      for (const text of s.ids) {
        const p = parseIdPattern(text);
        if (p === false) continue;
        if (p === null) this.anyIdSecrets.add(s);
        else if (identityHasWildcards(p)) matched.push(p);
        else ids.push(canonicalIdOf(p));
      }
      this.secretIds.set(s, ids);
      if (matched.length > 0) this.patternSecrets.set(s, matched);
      if (s.ids.length === 0) this.anySecrets.push(s);
      for (const key of ids) {
        const l = this.secretsById.get(key);
        if (l) l.push(s);
        else this.secretsById.set(key, [s]);
      }
    }
  }

  get(name: string): ConnectionConfig | undefined {
    return this.byName.get(name);
  }

  /**
   * Connections that may answer an IKE_SA_INIT from `remote` to `local`, most specific first; of
   * those for any remote address with the same proposals and local addresses, only the first.
   */
  forInit(local: string, remote: string): ConnectionConfig[] {
    return this.remoteAddr.match(remote).filter((c) => inSpec(this.addrs.get(c)!.local, local));
  }

  /**
   * The connection for an IKE_AUTH from a peer that claims `peerId` (and optionally asks for our
   * identity `wantedLocal`), among those whose addresses match. As strongSwan ranks them: the
   * better the peer's identity matches (exactly, then by a wildcard pattern, then `%any`), then the
   * better `wantedLocal` matches our identity (exactly or by pattern, then `%any`), then a
   * connection with remote addresses over one without; on a tie the first in the configuration.
   */
  forAuth(local: string, remote: string, peerId: Identity, wantedLocal?: Identity): ConnectionConfig | undefined {
    const exact = this.byRemoteId.get(canonicalIdOf(peerId));
    let best: ConnectionConfig | undefined;
    let bestScore = -1;
    const consider = (c: ConnectionConfig, remoteScore: number): void => {
      const a = this.addrs.get(c)!;
      if (!inSpec(a.remote, remote) || !inSpec(a.local, local)) return;
      let score = remoteScore * 16;
      if (wantedLocal) {
        const p = this.patterns.get(c)!.local;
        if (p === null) score += 4;
        else if (matches(p, wantedLocal)) score += 8;
        else return;
      }
      if (c.remoteAddrs.length) score += 1;
      if (score > bestScore || (score === bestScore && this.order.get(c)! < this.order.get(best!)!)) {
        best = c;
        bestScore = score;
      }
    };
    if (exact) for (const c of exact) consider(c, 3);
    for (const c of this.patternRemoteId) {
      const p = this.patterns.get(c)!.remote;
      if (p === null) consider(c, 1);
      else if (p !== false && identityMatchesParsed(p, peerId)) consider(c, 2);
    }
    return best;
  }

  private readonly canonicalCache = new Map<string, string>();

  /** canonicalId() with a bounded cache (emptied when full): our own identities recur in every lookup. */
  private canonical(id: string): string {
    let c = this.canonicalCache.get(id);
    if (c === undefined) {
      c = canonicalId(id);
      if (this.canonicalCache.size >= CANONICAL_CACHE_MAX) this.canonicalCache.clear();
      this.canonicalCache.set(id, c);
    }
    return c;
  }

  /**
   * The PSK for a pair of identities. A secret counts when one of its ids matches ours or the
   * peer's (or it has none); the peer's identity weighs more than ours, an exact id more than a
   * wildcard one (`*.example.net`, `10.0.0.0/8`): peer exact 8, peer by pattern 4, ours exact 2,
   * ours by pattern 1, no ids 0. The highest wins, on a tie the first in the configuration.
   */
  psk(localId: string, remoteId: string): Buffer | undefined {
    // a handshake asks twice in a row (the peer's AUTH, then ours): the second time from here
    const last = this.lastPsk;
    if (last !== undefined && last.localId === localId && last.remoteId === remoteId) return last.psk;
    const psk = this.findPsk(localId, remoteId);
    this.lastPsk = { localId, remoteId, psk };
    return psk;
  }

  private lastPsk: { localId: string; remoteId: string; psk: Buffer | undefined } | undefined;

  private findPsk(localId: string, remoteId: string): Buffer | undefined {
    const l = this.canonical(localId);
    const r = this.canonical(remoteId);
    let parsed: { l: Identity | false; r: Identity | false } | undefined;
    let best: SecretConfig | undefined;
    let bestScore = -1;
    const consider = (s: SecretConfig): void => {
      if (!s.secretBytes) return;
      let score = 0;
      if (s.ids.length) {
        const ids = this.secretIds.get(s)!;
        let ls = ids.includes(l) ? 2 : 0;
        let rs = ids.includes(r) ? 8 : 0;
        const matched = this.patternSecrets.get(s);
        if (matched && (ls < 2 || rs < 8)) {
          parsed ??= { l: parsedOrFalse(localId), r: parsedOrFalse(remoteId) };
          const { l: lp, r: rp } = parsed;
          for (const p of matched) {
            if (ls === 0 && lp !== false && identityMatchesParsed(p, lp)) ls = 1;
            if (rs === 0 && rp !== false && identityMatchesParsed(p, rp)) rs = 4;
          }
        }
        if (ls === 0 && rs === 0 && !this.anyIdSecrets.has(s)) return;
        score = ls + rs;
      }
      if (score > bestScore || (score === bestScore && best !== undefined && this.secretOrder.get(s)! < this.secretOrder.get(best)!)) {
        best = s;
        bestScore = score;
      }
    };
    for (const s of this.secretsById.get(r) ?? []) consider(s);
    for (const s of this.secretsById.get(l) ?? []) consider(s);
    for (const s of this.patternSecrets.keys()) consider(s);
    for (const s of this.anyIdSecrets) consider(s);
    for (const s of this.anySecrets) consider(s);
    return best?.secretBytes;
  }
}

/** Identity strings whose canonical form was computed lately (a handshake looks the PSK up twice). */
const CANONICAL_CACHE_MAX = 4096;

function canonicalId(s: string): string {
  try {
    const id = parseIdentity(s);
    return canonicalIdOf(id);
  } catch {
    return s;
  }
}

/**
 * An identity as a map key, equal where strongSwan's comparison finds them equal: FQDN and RFC 822
 * names case-insensitively, DNs attribute by attribute (dnKey).
 */
function canonicalIdOf(id: Identity): string {
  if (id.type === IdType.ID_FQDN || id.type === IdType.ID_RFC822_ADDR) return `${id.type}:${asciiLower(id.data)}`;
  if (id.type === IdType.ID_DER_ASN1_DN) {
    const k = dnKey(id.data);
    if (k !== undefined) return `${id.type}:${k}`;
  }
  return `${id.type}:${id.data.toString('hex')}`;
}

function parsedOrFalse(text: string): Identity | false {
  try {
    return parseIdentity(text);
  } catch {
    return false;
  }
}

function matches(p: Identity | null | false, id: Identity): boolean {
  return p === null || (p !== false && identityMatchesParsed(p, id));
}

