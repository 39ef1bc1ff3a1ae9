/**
 * Traffic selector strings as swanctl.conf writes them (`local_ts`, `remote_ts`), and the IP address
 * helpers the config loader shares with identity parsing.
 *
 * Accepted forms (as strongSwan's vici parse_ts):
 *   "10.0.0.0/24"             subnet (host bits are masked off, as strongSwan does)
 *   "10.0.0.1"                one host (/32 or /128)
 *   "10.1.0.1-10.1.0.9"       inclusive range, both ends of the same family
 *   "2001:db8::/64"           IPv6 likewise
 *   "0.0.0.0/0[tcp/80]"       protocol (name or number 0..255, "any") and port, port range
 *   "10.0.0.0/8[udp/1000-2000]", "[tcp]" (all ports), "[any/53]", "[17/any]"
 *   "dynamic"                 the IKE address of that side, decided when the SA is negotiated
 * Not supported: "dynamic" with a protocol/port suffix, "%opaque" ports, IPv6 zone ids.
 */

/** One traffic selector range (same shape as the dataplane's TsRange); all bounds inclusive. */
export interface TsSpec {
  family: 4 | 6;
  start: string;
  end: string;
  /** IP protocol number, 0 = any. */
  protocol: number;
  startPort: number;
  endPort: number;
}

/** A traffic selector or address string that cannot be parsed; the message says why. */
export class TsError extends Error {
  override readonly name = 'TsError';
}

/** A parsed IP address: family and network-order bytes (4 or 16). */
export interface IpAddress {
  family: 4 | 6;
  bytes: Buffer;
}

/**
 * Whether s[from, to) is a dotted-quad IPv4 address without leading zeros (so it is also the
 * canonical text of that address); writes the four bytes to `out` when given.
 */
export function isIPv4(s: string, from = 0, to = s.length, out?: Uint8Array): boolean {
  const n = to - from;
  if (n < 7 || n > 15) return false;
  let part = 0;
  let v = 0;
  let digits = 0;
  for (let i = from; i <= to; i++) {
    const c = i < to ? s.charCodeAt(i) : 46;
    if (c === 46) {
      if (digits === 0 || part > 3) return false;
      if (out) out[part] = v;
      part++;
      v = 0;
      digits = 0;
    } else if (c >= 48 && c <= 57) {
      if (digits > 0 && v === 0) return false; // leading zero
      v = v * 10 + (c - 48);
      if (v > 255) return false;
      digits++;
    } else {
      return false;
    }
  }
  return part === 4;
}

/** Parses dotted-quad IPv4 ("192.0.2.1", no leading zeros); undefined when it is not exactly that. */
export function parseIPv4(s: string): Buffer | undefined {
  const out = Buffer.allocUnsafe(4); // every byte is written when it is valid
  return isIPv4(s, 0, s.length, out) ? out : undefined;
}

/** Whether s is "a.b.c.d" or "a.b.c.d/len" (len 0..32): the common traffic selector, checked without allocating. */
export function isIPv4Block(s: string): boolean {
  const slash = s.indexOf('/');
  if (slash === -1) return isIPv4(s);
  if (!isIPv4(s, 0, slash)) return false;
  const len = s.length - slash - 1;
  if (len < 1 || len > 2) return false;
  const a = s.charCodeAt(slash + 1) - 48;
  if (a < 0 || a > 9) return false;
  if (len === 1) return true;
  const b = s.charCodeAt(slash + 2) - 48;
  return a > 0 && b >= 0 && b <= 9 && a * 10 + b <= 32;
}

const HEX_GROUP = /^[0-9a-fA-F]{1,4}$/;

/** Parses IPv6 text (RFC 4291 §2.2, including "::" and an embedded dotted quad); no zone ids. */
export function parseIPv6(s: string): Buffer | undefined {
  if (s.length < 2 || s.length > 45) return undefined;
  const dbl = s.indexOf('::');
  if (dbl !== -1 && s.indexOf('::', dbl + 1) !== -1) return undefined;
  const parseGroups = (part: string, allowV4: boolean): number[] | undefined => {
    if (part === '') return [];
    const groups = part.split(':');
    const words: number[] = [];
    for (let i = 0; i < groups.length; i++) {
      const g = groups[i]!;
      if (allowV4 && i === groups.length - 1 && g.includes('.')) {
        const v4 = parseIPv4(g);
        if (!v4) return undefined;
        words.push((v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!);
        continue;
      }
      if (!HEX_GROUP.test(g)) return undefined;
      words.push(parseInt(g, 16));
    }
    return words;
  };
  let words: number[];
  if (dbl === -1) {
    const w = parseGroups(s, true);
    if (!w || w.length !== 8) return undefined;
    words = w;
  } else {
    const head = parseGroups(s.slice(0, dbl), false);
    const tail = parseGroups(s.slice(dbl + 2), true);
    if (!head || !tail || head.length + tail.length > 7) return undefined;
    words = [...head, ...new Array<number>(8 - head.length - tail.length).fill(0), ...tail];
  }
  const out = Buffer.allocUnsafe(16); // every byte is written below
  for (let i = 0; i < 8; i++) out.writeUInt16BE(words[i]!, i * 2);
  return out;
}

/** Parses an IPv4 or IPv6 address. */
export function parseIp(s: string): IpAddress | undefined {
  if (s.includes(':')) {
    const b = parseIPv6(s);
    return b ? { family: 6, bytes: b } : undefined;
  }
  const b = parseIPv4(s);
  return b ? { family: 4, bytes: b } : undefined;
}

/** Formats 4 or 16 address bytes: dotted quad, or RFC 5952 canonical IPv6 text. */
export function formatIp(bytes: Uint8Array): string {
  if (bytes.length === 4) return `${bytes[0]}.${bytes[1]}.${bytes[2]}.${bytes[3]}`;
  if (bytes.length !== 16) throw new TsError(`an IP address has 4 or 16 bytes, not ${bytes.length}`);
  // RFC 5952 §5: IPv4-mapped addresses (::ffff:0:0/96) keep the dotted quad.
  let mapped = bytes[10] === 0xff && bytes[11] === 0xff;
  for (let i = 0; i < 10 && mapped; i++) mapped = bytes[i] === 0;
  if (mapped) return `::ffff:${bytes[12]}.${bytes[13]}.${bytes[14]}.${bytes[15]}`;
  const words: number[] = [];
  for (let i = 0; i < 16; i += 2) words.push((bytes[i]! << 8) | bytes[i + 1]!);
  // RFC 5952 §4.2: compress the longest run (length >= 2) of zero words, the first one on a tie.
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (words[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && words[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (from: number, to: number): string =>
    words
      .slice(from, to)
      .map((w) => w.toString(16))
      .join(':');
  if (bestStart === -1) return hex(0, 8);
  return `${hex(0, bestStart)}::${hex(bestStart + bestLen, 8)}`;
}

/** Canonical text of an IP address string, or undefined if it is not one. */
export function canonicalIp(s: string): string | undefined {
  const a = parseIp(s);
  return a ? formatIp(a.bytes) : undefined;
}

/** Compares two equal-length address byte strings. */
function cmpBytes(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < a.length; i++) {
    if (a[i] !== b[i]) return a[i]! - b[i]!;
  }
  return 0;
}

/** Network bytes for a prefix: host bits cleared (low = true) or set (low = false). */
function applyPrefix(bytes: Buffer, prefix: number, low: boolean): Buffer {
  const out = Buffer.from(bytes);
  for (let i = 0; i < out.length; i++) {
    const bitsHere = Math.max(0, Math.min(8, prefix - i * 8));
    const mask = bitsHere === 0 ? 0 : (0xff << (8 - bitsHere)) & 0xff;
    out[i] = low ? out[i]! & mask : (out[i]! & mask) | (~mask & 0xff);
  }
  return out;
}

/**
 * An address block: "a.b.c.d", "a.b.c.d/len", "a-b" (range) → inclusive start/end bytes.
 * Used by traffic selectors and by local_addrs/remote_addrs validation.
 */
export function parseAddressBlock(s: string): { family: 4 | 6; start: Buffer; end: Buffer } {
  if (s.includes('%')) throw new TsError(`'${s}': zone ids and %-keywords are not accepted here`);
  const dash = s.indexOf('-');
  if (dash !== -1) {
    const a = parseIp(s.slice(0, dash).trim());
    const b = parseIp(s.slice(dash + 1).trim());
    if (!a) throw new TsError(`'${s.slice(0, dash).trim()}' is not an IP address`);
    if (!b) throw new TsError(`'${s.slice(dash + 1).trim()}' is not an IP address`);
    if (a.family !== b.family) throw new TsError(`range '${s}' mixes IPv4 and IPv6`);
    if (cmpBytes(a.bytes, b.bytes) > 0) throw new TsError(`range '${s}' ends before it starts`);
    return { family: a.family, start: a.bytes, end: b.bytes };
  }
  const slash = s.indexOf('/');
  const addrText = slash === -1 ? s : s.slice(0, slash);
  const a = parseIp(addrText);
  if (!a) throw new TsError(`'${addrText}' is not an IP address`);
  const max = a.family === 4 ? 32 : 128;
  let prefix = max;
  if (slash !== -1) {
    const p = s.slice(slash + 1);
    if (!/^[0-9]{1,3}$/.test(p) || Number(p) > max) {
      throw new TsError(`'${p}' is not a prefix length (0..${max})`);
    }
    prefix = Number(p);
  }
  return { family: a.family, start: applyPrefix(a.bytes, prefix, true), end: applyPrefix(a.bytes, prefix, false) };
}

/** IANA protocol numbers accepted by name (as /etc/protocols spells them). */
const PROTOCOLS: Record<string, number> = {
  icmp: 1,
  igmp: 2,
  ipencap: 4,
  tcp: 6,
  udp: 17,
  ipv6: 41,
  gre: 47,
  esp: 50,
  ah: 51,
  'ipv6-icmp': 58,
  icmpv6: 58,
  ospf: 89,
  sctp: 132,
  udplite: 136,
};
const PROTOCOL_NAMES: Record<number, string> = {
  1: 'icmp',
  2: 'igmp',
  4: 'ipencap',
  6: 'tcp',
  17: 'udp',
  41: 'ipv6',
  47: 'gre',
  50: 'esp',
  51: 'ah',
  58: 'ipv6-icmp',
  89: 'ospf',
  132: 'sctp',
  136: 'udplite',
};
/** Well-known service names accepted as ports (a subset of /etc/services). */
const SERVICES: Record<string, number> = {
  ssh: 22,
  smtp: 25,
  domain: 53,
  http: 80,
  ntp: 123,
  snmp: 161,
  bgp: 179,
  https: 443,
  isakmp: 500,
  syslog: 514,
  l2tp: 1701,
  'ipsec-nat-t': 4500,
};

function parsePort(p: string, whole: string): number {
  if (/^[0-9]{1,5}$/.test(p)) {
    const v = Number(p);
    if (v <= 0xffff) return v;
    throw new TsError(`port ${p} in '${whole}' is out of range (0..65535)`);
  }
  const svc = SERVICES[p.toLowerCase()];
  if (svc !== undefined) return svc;
  throw new TsError(`'${p}' in '${whole}' is not a port number or known service name`);
}

/**
 * Parses one traffic selector string (see the module comment for the forms). Throws TsError with a
 * message naming the offending part.
 */
export function parseTrafficSelector(s: string): TsSpec | 'dynamic' {
  const text = s.trim();
  if (text === '') throw new TsError('empty traffic selector');
  let addr = text;
  let protocol = 0;
  let startPort = 0;
  let endPort = 0xffff;
  const open = text.indexOf('[');
  if (open !== -1) {
    if (!text.endsWith(']') || text.indexOf(']') !== text.length - 1) {
      throw new TsError(`'${text}': protocol/port must be one "[...]" at the end`);
    }
    addr = text.slice(0, open).trim();
    const inner = text.slice(open + 1, -1).trim();
    const sep = inner.indexOf('/');
    const protoText = (sep === -1 ? inner : inner.slice(0, sep)).trim();
    const portText = sep === -1 ? '' : inner.slice(sep + 1).trim();
    if (protoText === '' || protoText.toLowerCase() === 'any') {
      protocol = 0;
    } else if (/^[0-9]{1,3}$/.test(protoText)) {
      protocol = Number(protoText);
      if (protocol > 255) throw new TsError(`protocol ${protoText} in '${text}' is out of range (0..255)`);
    } else {
      const p = PROTOCOLS[protoText.toLowerCase()];
      if (p === undefined) throw new TsError(`unknown protocol '${protoText}' in '${text}'`);
      protocol = p;
    }
    if (portText === 'opaque' || portText === '%opaque') {
      throw new TsError(`OPAQUE ports in '${text}' are not supported`);
    }
    if (portText !== '' && portText.toLowerCase() !== 'any' && portText !== '%any') {
      const dash = portText.indexOf('-');
      if (dash === -1) {
        startPort = endPort = parsePort(portText, text);
      } else {
        startPort = parsePort(portText.slice(0, dash).trim(), text);
        endPort = parsePort(portText.slice(dash + 1).trim(), text);
        if (startPort > endPort) throw new TsError(`port range in '${text}' ends before it starts`);
      }
    }
  }
  if (addr === 'dynamic') {
    if (open !== -1) throw new TsError(`'${text}': protocol/port on 'dynamic' is not supported`);
    return 'dynamic';
  }
  if (addr === '') throw new TsError(`'${text}' has no address part`);
  const block = parseAddressBlock(addr);
  return {
    family: block.family,
    start: formatIp(block.start),
    end: formatIp(block.end),
    protocol,
    startPort,
    endPort,
  };
}

/** Prefix length when [start, end] is exactly one CIDR block, else -1. */
function prefixOf(start: Buffer, end: Buffer): number {
  const bits = start.length * 8;
  let prefix = 0;
  // common leading bits
  while (prefix < bits) {
    const byte = prefix >> 3;
    const bit = 7 - (prefix & 7);
    if (((start[byte]! >> bit) & 1) !== ((end[byte]! >> bit) & 1)) break;
    prefix++;
  }
  for (let i = prefix; i < bits; i++) {
    const byte = i >> 3;
    const bit = 7 - (i & 7);
    if (((start[byte]! >> bit) & 1) !== 0 || ((end[byte]! >> bit) & 1) !== 1) return -1;
  }
  return prefix;
}

/**
 * strongSwan-style text: "10.0.0.0/24" when the range is a prefix, "10.1.0.1-10.1.0.9" otherwise,
 * followed by "[tcp/80]", "[udp/1000-2000]" or "[tcp]" when protocol or ports are restricted.
 */
export function tsToString(t: TsSpec): string {
  const s = t.family === 6 ? parseIPv6(t.start) : parseIPv4(t.start);
  const e = t.family === 6 ? parseIPv6(t.end) : parseIPv4(t.end);
  let out: string;
  if (!s || !e) {
    out = `${t.start}-${t.end}`;
  } else {
    const p = prefixOf(s, e);
    out = p >= 0 ? `${formatIp(s)}/${p}` : `${formatIp(s)}-${formatIp(e)}`;
  }
  const allPorts = t.startPort === 0 && t.endPort === 0xffff;
  if (t.protocol === 0 && allPorts) return out;
  const proto = t.protocol === 0 ? 'any' : (PROTOCOL_NAMES[t.protocol] ?? String(t.protocol));
  if (allPorts) return `${out}[${proto}]`;
  const ports = t.startPort === t.endPort ? `${t.startPort}` : `${t.startPort}-${t.endPort}`;
  return `${out}[${proto}/${ports}]`;
}
