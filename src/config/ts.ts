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

// The IP address helpers live in src/common/addr.ts; re-exported here for the config's users.
export { isIPv4, parseIPv4, isIPv4Block, parseIPv6, parseIp, formatIp, canonicalIp, type IpAddress } from '../common/addr.ts';
import { parseIPv4, parseIPv6, parseIp, formatIp } from '../common/addr.ts';

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
