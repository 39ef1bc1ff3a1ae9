/**
 * Traffic selectors (RFC 7296 §2.9): conversion between the wire form, the config form and the
 * dataplane form, and narrowing (intersection) of what the peer proposes with what we allow.
 */
import { TsType } from '../constants.ts';
import type { TrafficSelector } from '../codec/types.ts';
import type { TsRange } from '../../dataplane/types.ts';
import { bigIntToBytes, bytesToBigInt, bytesToIp, formatIPv4Number, ipToBytes, ipv4Number } from '../../common/addr.ts';
import type { TsSpec } from '../../config/ts.ts';

/** A selector with numeric bounds, for set operations. */
export interface Sel {
  family: 4 | 6;
  start: bigint;
  end: bigint;
  protocol: number; // 0 = any
  startPort: number;
  endPort: number;
}

export function selFromSpec(t: TsSpec): Sel {
  return {
    family: t.family,
    start: bytesToBigInt(ipToBytes(t.start)!),
    end: bytesToBigInt(ipToBytes(t.end)!),
    protocol: t.protocol,
    startPort: t.startPort,
    endPort: t.endPort,
  };
}

/** A host selector for one address (what `dynamic` means). */
export function selForHost(addr: string): Sel {
  const n4 = ipv4Number(addr);
  if (n4 >= 0) {
    const v4 = BigInt(n4);
    return { family: 4, start: v4, end: v4, protocol: 0, startPort: 0, endPort: 65535 };
  }
  const b = ipToBytes(addr)!;
  const v = bytesToBigInt(b);
  return { family: b.length === 4 ? 4 : 6, start: v, end: v, protocol: 0, startPort: 0, endPort: 65535 };
}

/** Wire → Sel; selectors of other types (FC, security labels) are not supported and are dropped. */
export function selFromWire(ts: TrafficSelector): Sel | undefined {
  if (ts.tsType === TsType.TS_IPV4_ADDR_RANGE && ts.start.length === 4 && ts.end.length === 4) {
    return {
      family: 4,
      start: bytesToBigInt(ts.start),
      end: bytesToBigInt(ts.end),
      protocol: ts.ipProto,
      startPort: ts.startPort,
      endPort: ts.endPort,
    };
  }
  if (ts.tsType === TsType.TS_IPV6_ADDR_RANGE && ts.start.length === 16 && ts.end.length === 16) {
    return {
      family: 6,
      start: bytesToBigInt(ts.start),
      end: bytesToBigInt(ts.end),
      protocol: ts.ipProto,
      startPort: ts.startPort,
      endPort: ts.endPort,
    };
  }
  return undefined;
}

export function selToWire(s: Sel): TrafficSelector {
  const len = s.family === 4 ? 4 : 16;
  return {
    tsType: s.family === 4 ? TsType.TS_IPV4_ADDR_RANGE : TsType.TS_IPV6_ADDR_RANGE,
    ipProto: s.protocol,
    startPort: s.startPort,
    endPort: s.endPort,
    start: bigIntToBytes(s.start, len),
    end: bigIntToBytes(s.end, len),
  };
}

/**
 * Ranges handed to the dataplane recently, by content: every CHILD_SA of a connection with the same
 * local subnet shares one record instead of holding a copy (the dataplane keeps a record per
 * CHILD_SA for its life; the records are never changed, and are frozen). Bounded: emptied when full.
 */
const rangeCache = new Map<string, Readonly<TsRange>>();
const RANGE_CACHE_MAX = 256;

/**
 * A selector of one address. On the peer's side (`dynamic`: the peer's own address) it is that
 * peer's alone: nothing to share, and thousands of them would only push shared records out of caches.
 */
export function isHostSel(s: Sel): boolean {
  return s.start === s.end;
}

/** The text of one end of a selector (IPv4 straight from the number). */
function endText(family: 4 | 6, v: bigint): string {
  return family === 4 ? formatIPv4Number(Number(v)) : bytesToIp(bigIntToBytes(v, 16));
}

export function selToRange(s: Sel, peerSide = false): TsRange {
  const host = isHostSel(s);
  const own = host && peerSide;
  const v4 = s.family === 4;
  const key = own ? '' : `${s.family} ${v4 ? Number(s.start) : s.start} ${v4 ? Number(s.end) : s.end} ${s.protocol} ${s.startPort} ${s.endPort}`;
  const had = own ? undefined : rangeCache.get(key);
  if (had) return had;
  const start = endText(s.family, s.start);
  const r: TsRange = Object.freeze({
    family: s.family,
    start,
    // a host selector's two ends are one string
    end: host ? start : endText(s.family, s.end),
    protocol: s.protocol,
    startPort: s.startPort,
    endPort: s.endPort,
  });
  if (own) return r;
  if (rangeCache.size >= RANGE_CACHE_MAX) rangeCache.clear();
  rangeCache.set(key, r);
  return r;
}

/** Intersection of two selectors, or undefined when they do not overlap. */
export function intersect(a: Sel, b: Sel): Sel | undefined {
  if (a.family !== b.family) return undefined;
  if (a.protocol !== 0 && b.protocol !== 0 && a.protocol !== b.protocol) return undefined;
  const start = a.start > b.start ? a.start : b.start;
  const end = a.end < b.end ? a.end : b.end;
  if (start > end) return undefined;
  // OPAQUE ports (start 65535, end 0) only match each other or "any".
  const aOpaque = a.startPort > a.endPort;
  const bOpaque = b.startPort > b.endPort;
  let startPort: number;
  let endPort: number;
  if (aOpaque || bOpaque) {
    const aAny = a.startPort === 0 && a.endPort === 65535;
    const bAny = b.startPort === 0 && b.endPort === 65535;
    if (aOpaque && (bOpaque || bAny)) [startPort, endPort] = [a.startPort, a.endPort];
    else if (bOpaque && aAny) [startPort, endPort] = [b.startPort, b.endPort];
    else return undefined;
  } else {
    startPort = Math.max(a.startPort, b.startPort);
    endPort = Math.min(a.endPort, b.endPort);
    if (startPort > endPort) return undefined;
  }
  return { family: a.family, start, end, protocol: a.protocol || b.protocol, startPort, endPort };
}

function sameSel(a: Sel, b: Sel): boolean {
  return (
    a.family === b.family &&
    a.start === b.start &&
    a.end === b.end &&
    a.protocol === b.protocol &&
    a.startPort === b.startPort &&
    a.endPort === b.endPort
  );
}

/**
 * Narrow the peer's proposed selectors to what our config allows (RFC 7296 §2.9). The result is every
 * non-empty intersection, in the peer's order, without duplicates. As responder, the first selector of
 * each list may be the packet that triggered the request; like strongSwan we narrow over all of them.
 */
export function narrow(proposed: Sel[], allowed: Sel[]): Sel[] {
  const out: Sel[] = [];
  for (const p of proposed) {
    for (const a of allowed) {
      const i = intersect(p, a);
      if (i && !out.some((o) => sameSel(o, i))) out.push(i);
    }
  }
  return out;
}

/** Whether a selector has OPAQUE ports (start 65535, end 0: the ports are not available, RFC 7296 §3.13.1). */
export function isOpaque(s: Sel): boolean {
  return s.startPort > s.endPort;
}

/**
 * `narrow` for a CHILD_SA we are to install: selectors with OPAQUE ports are left out, because the
 * dataplane cannot match on "ports not available"; when nothing else remains the proposal is
 * unacceptable (TS_UNACCEPTABLE) rather than accepted and then failed at the install.
 */
export function narrowInstallable(proposed: Sel[], allowed: Sel[]): Sel[] {
  return narrow(proposed, allowed).filter((s) => !isOpaque(s));
}

/** True when every selector in `inner` lies within some selector of `outer` (initiator checks the responder's narrowing). */
export function isSubset(inner: Sel[], outer: Sel[]): boolean {
  return inner.every((i) => outer.some((o) => {
    const x = intersect(i, o);
    return x !== undefined && sameSel(x, i);
  }));
}

/** strongSwan-style text: "10.0.0.0/24", "10.0.0.1-10.0.0.9", with "[proto/port]" when restricted. */
export function selToString(s: Sel): string {
  // formatted here rather than through selToRange's shared records: log lines and views name
  // peers' own host selectors too, which would only push shared records out
  let text: string;
  if (s.family === 4) {
    const a = Number(s.start);
    const b = Number(s.end);
    const size = b - a + 1;
    // a power-of-two block aligned on its size is a prefix (size 2^32: 0.0.0.0/0)
    const bits = Math.log2(size);
    text = Number.isInteger(bits) && a % size === 0 ? `${formatIPv4Number(a)}/${32 - bits}` : `${formatIPv4Number(a)}-${formatIPv4Number(b)}`;
  } else {
    const start = endText(6, s.start);
    text = `${start}-${endText(6, s.end)}`;
    const size = s.end - s.start + 1n;
    if ((size & (size - 1n)) === 0n && s.start % size === 0n) text = `${start}/${128 - (size.toString(2).length - 1)}`;
  }
  const anyPort = s.startPort === 0 && s.endPort === 65535;
  if (s.protocol === 0 && anyPort) return text;
  const port = anyPort ? '' : s.startPort === s.endPort ? `${s.startPort}` : s.startPort > s.endPort ? 'opaque' : `${s.startPort}-${s.endPort}`;
  const proto = s.protocol === 6 ? 'tcp' : s.protocol === 17 ? 'udp' : s.protocol === 1 ? 'icmp' : s.protocol === 58 ? 'ipv6-icmp' : `${s.protocol}`;
  return `${text}[${proto}${port ? `/${port}` : ''}]`;
}
