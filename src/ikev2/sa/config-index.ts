/**
 * Index over the loaded connections and secrets, so that finding the connection for an incoming
 * IKE_SA_INIT (by addresses) and IKE_AUTH (by identity) and the PSK for a pair of identities are map
 * lookups, not scans over thousands of connections. Wildcards (%any, CIDR, "*.example.net") fall back
 * to short lists that are scanned.
 */
import type { ConnectionConfig, SecretConfig } from '../../config/types.ts';
import { ipFamily, ipToBytes, bytesToBigInt, normalizeIp } from '../../common/addr.ts';
import { identityMatches, parseIdentity, type Identity } from '../../config/identity.ts';

interface AddrPattern {
  conn: ConnectionConfig;
  family: 4 | 6;
  start: bigint;
  end: bigint;
}

/** Parses an address spec from local_addrs / remote_addrs: address, CIDR, range, %any. */
function addrRange(spec: string): { family: 4 | 6; start: bigint; end: bigint } | 'any' | undefined {
  const s = spec.trim();
  if (s === '%any' || s === '%any4' || s === '%any6' || s === '0.0.0.0/0' || s === '::/0') return 'any';
  const slash = s.indexOf('/');
  if (slash > 0) {
    const b = ipToBytes(s.slice(0, slash));
    const bits = Number(s.slice(slash + 1));
    if (!b || !Number.isInteger(bits)) return undefined;
    const total = b.length * 8;
    const v = bytesToBigInt(b);
    const hostBits = BigInt(total - bits);
    const start = (v >> hostBits) << hostBits;
    return { family: b.length === 4 ? 4 : 6, start, end: start + (1n << hostBits) - 1n };
  }
  const dash = s.indexOf('-');
  if (dash > 0) {
    const a = ipToBytes(s.slice(0, dash));
    const z = ipToBytes(s.slice(dash + 1));
    if (!a || !z || a.length !== z.length) return undefined;
    return { family: a.length === 4 ? 4 : 6, start: bytesToBigInt(a), end: bytesToBigInt(z) };
  }
  const b = ipToBytes(s);
  if (!b) return undefined; // a DNS name: resolved by the transport layer, not matched here
  const v = bytesToBigInt(b);
  return { family: b.length === 4 ? 4 : 6, start: v, end: v };
}

class AddrIndex {
  private readonly exact = new Map<string, ConnectionConfig[]>();
  private readonly ranges: AddrPattern[] = [];
  private readonly any: ConnectionConfig[] = [];

  add(conn: ConnectionConfig, specs: string[]): void {
    if (specs.length === 0) {
      this.any.push(conn);
      return;
    }
    for (const spec of specs) {
      const r = addrRange(spec);
      if (r === 'any') this.any.push(conn);
      else if (r === undefined) continue;
      else if (r.start === r.end) {
        const key = normalizeIp(spec.trim());
        const l = this.exact.get(key);
        if (l) l.push(conn);
        else this.exact.set(key, [conn]);
      } else this.ranges.push({ conn, ...r });
    }
  }

  /** Connections matching addr, most specific first (exact, then ranges, then any). */
  match(addr: string): ConnectionConfig[] {
    const out: ConnectionConfig[] = [...(this.exact.get(normalizeIp(addr)) ?? [])];
    if (this.ranges.length) {
      const b = ipToBytes(addr);
      if (b) {
        const v = bytesToBigInt(b);
        const fam = b.length === 4 ? 4 : 6;
        for (const r of this.ranges) if (r.family === fam && r.start <= v && v <= r.end) out.push(r.conn);
      }
    }
    for (const c of this.any) out.push(c);
    return out;
  }

  matches(conn: ConnectionConfig, specs: string[], addr: string): boolean {
    if (specs.length === 0) return true;
    const b = ipToBytes(addr);
    for (const spec of specs) {
      const r = addrRange(spec);
      if (r === 'any') return true;
      if (!r || !b) continue;
      const v = bytesToBigInt(b);
      if (r.family === (b.length === 4 ? 4 : 6) && r.start <= v && v <= r.end) return true;
    }
    void conn;
    return false;
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

  constructor(connections: ConnectionConfig[], secrets: SecretConfig[]) {
    this.connections = connections;
    connections.forEach((c, i) => {
      this.order.set(c, i);
      this.byName.set(c.name, c);
      this.remoteAddr.add(c, c.remoteAddrs);
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
      if (s.ids.length === 0) this.anySecrets.push(s);
      for (const id of s.ids) {
        const key = canonicalId(id);
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
    return this.remoteAddr
      .match(remote)
      .filter((c) => this.remoteAddr.matches(c, c.localAddrs, local));
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
      if (!this.remoteAddr.matches(c, c.remoteAddrs, remote)) continue;
      if (!this.remoteAddr.matches(c, c.localAddrs, local)) continue;
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

  /** The PSK for a pair of identities: a secret naming both wins over one naming one, over one naming none. */
  psk(localId: string, remoteId: string): Buffer | undefined {
    const l = canonicalId(localId);
    const r = canonicalId(remoteId);
    let best: SecretConfig | undefined;
    let bestScore = -1;
    const consider = (s: SecretConfig): void => {
      if (!s.secretBytes) return;
      let score = 0;
      if (s.ids.length) {
        const ids = s.ids.map(canonicalId);
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

export { ipFamily };
