/**
 * Index over the loaded connections and secrets, so that finding the connection for an incoming
 * IKE_SA_INIT (by addresses) and IKE_AUTH (by identity) and the PSK for a pair of identities are map
 * lookups, not scans over thousands of connections. Wildcards (%any, CIDR, "*.example.net") fall back
 * to short lists that are scanned.
 */
import type { ConnectionConfig, SecretConfig } from '../../config/types.ts';
import { bigIntToBytes, bytesToBigInt, bytesToIp, ipToBytes, normalizeIp } from '../../common/addr.ts';
import { parseAddressBlock } from '../../config/ts.ts';
import { identityMatches, parseIdentity, type Identity } from '../../config/identity.ts';

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
  return out;
}

function inSpec(spec: AddrSpec, addr: string): boolean {
  if (spec === 'any') return true;
  const b = ipToBytes(addr);
  if (!b) return false;
  const v = bytesToBigInt(b);
  const fam = b.length === 4 ? 4 : 6;
  return spec.some((r) => r.family === fam && r.start <= v && v <= r.end);
}

/** Connections by remote address: exact addresses in a map, blocks and %any in short lists. */
class AddrIndex {
  private readonly exact = new Map<string, ConnectionConfig[]>();
  private readonly ranges: { conn: ConnectionConfig; range: Range }[] = [];
  private readonly any: ConnectionConfig[] = [];

  add(conn: ConnectionConfig, spec: AddrSpec): void {
    if (spec === 'any') {
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

  /** Connections matching addr, most specific first (exact, then ranges, then any). */
  match(addr: string): ConnectionConfig[] {
    const out: ConnectionConfig[] = [...(this.exact.get(normalizeIp(addr)) ?? [])];
    if (this.ranges.length) {
      for (const r of this.ranges) if (inSpec([r.range], addr)) out.push(r.conn);
    }
    for (const c of this.any) out.push(c);
    return out;
  }
}

function isWildcardId(id: string): boolean {
  return id === '' || id === '%any' || id.includes('*');
}

export class ConfigIndex {
  readonly connections: ConnectionConfig[];
  private readonly byName = new Map<string, ConnectionConfig>();
  private readonly remoteAddr = new AddrIndex();
  private readonly byRemoteId = new Map<string, ConnectionConfig[]>();
  private readonly wildcardRemoteId: ConnectionConfig[] = [];
  private readonly secretsById = new Map<string, SecretConfig[]>();
  private readonly anySecrets: SecretConfig[] = [];
  private readonly order = new Map<ConnectionConfig, number>();
  private readonly addrs = new Map<ConnectionConfig, { local: AddrSpec; remote: AddrSpec }>();
  /** Canonical identities of each secret, computed once. */
  private readonly secretIds = new Map<SecretConfig, string[]>();

  constructor(connections: ConnectionConfig[], secrets: SecretConfig[]) {
    this.connections = connections;
    connections.forEach((c, i) => {
      this.order.set(c, i);
      this.byName.set(c.name, c);
      const a = { local: addrSpec(c.localAddrs), remote: addrSpec(c.remoteAddrs) };
      this.addrs.set(c, a);
      this.remoteAddr.add(c, a.remote);
      const rid = c.remote.id;
      if (isWildcardId(rid)) this.wildcardRemoteId.push(c);
      else {
        const key = canonicalId(rid);
        const l = this.byRemoteId.get(key);
        if (l) l.push(c);
        else this.byRemoteId.set(key, [c]);
      }
    });
    for (const s of secrets) {
      if (s.kind !== 'ike') continue;
      const ids = s.ids.map(canonicalId);
      this.secretIds.set(s, ids);
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

  /** Connections that may answer an IKE_SA_INIT from `remote` to `local`, most specific first. */
  forInit(local: string, remote: string): ConnectionConfig[] {
    return this.remoteAddr.match(remote).filter((c) => inSpec(this.addrs.get(c)!.local, local));
  }

  /**
   * The connection for an IKE_AUTH from a peer that claims `peerId` (and optionally asks for our
   * identity `wantedLocal`), among those whose addresses match.
   */
  forAuth(local: string, remote: string, peerId: Identity, wantedLocal?: Identity): ConnectionConfig | undefined {
    const exact = this.byRemoteId.get(canonicalIdOf(peerId)) ?? [];
    const candidates = [...exact, ...this.wildcardRemoteId.filter((c) => matchesPattern(c.remote.id, peerId))];
    let best: ConnectionConfig | undefined;
    let bestScore = -1;
    for (const c of candidates) {
      const a = this.addrs.get(c)!;
      if (!inSpec(a.remote, remote) || !inSpec(a.local, local)) continue;
      let score = exact.includes(c) ? 4 : 1;
      if (wantedLocal) {
        if (matchesPattern(c.local.id, wantedLocal)) score += 2;
        else continue;
      }
      if (c.remoteAddrs.length) score += 1;
      if (score > bestScore || (score === bestScore && this.order.get(c)! < this.order.get(best!)!)) {
        best = c;
        bestScore = score;
      }
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

  /** The PSK for a pair of identities: a secret naming both wins over one naming one, over one naming none. */
  psk(localId: string, remoteId: string): Buffer | undefined {
    const l = this.canonical(localId);
    const r = this.canonical(remoteId);
    let best: SecretConfig | undefined;
    let bestScore = -1;
    const consider = (s: SecretConfig): void => {
      if (!s.secretBytes) return;
      let score = 0;
      if (s.ids.length) {
        const ids = this.secretIds.get(s)!;
        const hasL = ids.includes(l);
        const hasR = ids.includes(r);
        if (!hasL && !hasR) return;
        score = (hasL ? 1 : 0) + (hasR ? 2 : 0);
      }
      if (score > bestScore) {
        best = s;
        bestScore = score;
      }
    };
    for (const s of this.secretsById.get(r) ?? []) consider(s);
    for (const s of this.secretsById.get(l) ?? []) consider(s);
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

function canonicalIdOf(id: Identity): string {
  return `${id.type}:${id.data.toString('hex')}`;
}

function matchesPattern(pattern: string, id: Identity): boolean {
  if (pattern === '' || pattern === '%any') return true;
  return identityMatches(pattern, id);
}

