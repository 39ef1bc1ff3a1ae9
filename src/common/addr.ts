/**
 * IP address helpers shared by the config loader, the engine and the transport: strict parsing of
 * IPv4 and IPv6 text, RFC 5952 canonical text, and conversions to bytes and bigints.
 */

/** A parsed IP address: family and network-order bytes (4 or 16). */
export interface IpAddress {
  family: 4 | 6;
  bytes: Buffer;
}

/**
 * Whether s[from, to) is a dotted-quad IPv4 address without leading zeros (so it is also the
 * canonical text of that address); writes the four bytes to `out` at `outOff` when given.
 */
export function isIPv4(s: string, from = 0, to = s.length, out?: Uint8Array, outOff = 0): boolean {
  const n = to - from;
  if (n < 7 || n > 15) return false;
  let part = 0;
  let v = 0;
  let digits = 0;
  for (let i = from; i <= to; i++) {
    const c = i < to ? s.charCodeAt(i) : 46;
    if (c === 46) {
      if (digits === 0 || part > 3) return false;
      if (out) out[outOff + part] = v;
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

/** A dotted-quad IPv4 address (as isIPv4 accepts it) as an unsigned 32-bit number; -1 when it is not one. */
export function ipv4Number(s: string): number {
  const b = V4_SCRATCH;
  return isIPv4(s, 0, s.length, b) ? b[0]! * 0x1000000 + b[1]! * 0x10000 + b[2]! * 0x100 + b[3]! : -1;
}
const V4_SCRATCH = new Uint8Array(4);

/** An unsigned 32-bit number as a dotted quad. */
export function formatIPv4Number(n: number): string {
  return `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}

/**
 * Writes the bytes of address text `s` (4 or 16) into `out` at `off`; returns how many were
 * written, 0 when `s` is not an address. IPv4 is written without allocating.
 */
export function writeIp(s: string, out: Uint8Array, off: number): number {
  if (!s.includes(':')) return out.length - off >= 4 && isIPv4(s, 0, s.length, out, off) ? 4 : 0;
  const b = parseIPv6(s);
  if (!b || out.length - off < 16) return 0;
  out.set(b, off);
  return 16;
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
  if (bytes.length !== 16) throw new RangeError(`an IP address has 4 or 16 bytes, not ${bytes.length}`);
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

export function ipFamily(s: string): 4 | 6 | 0 {
  // without a parse result for IPv4 (per datagram, per CHILD_SA install)
  if (!s.includes(':')) return isIPv4(s) ? 4 : 0;
  return parseIPv6(s) ? 6 : 0;
}

/** Address text → 4 or 16 bytes; undefined when not an address. */
export function ipToBytes(s: string): Buffer | undefined {
  return parseIp(s)?.bytes;
}

export function bytesToIp(b: Uint8Array): string {
  return formatIp(b);
}

/** Big-endian bytes as an unsigned integer (4 and 16 bytes, the address sizes, without a BigInt per byte). */
export function bytesToBigInt(b: Buffer): bigint {
  if (b.length === 4) return BigInt(b.readUInt32BE(0));
  if (b.length === 16) return (b.readBigUInt64BE(0) << 64n) | b.readBigUInt64BE(8);
  let v = 0n;
  for (const x of b) v = (v << 8n) | BigInt(x);
  return v;
}

/** The low `len` bytes of v, big-endian (the inverse of bytesToBigInt). */
export function bigIntToBytes(v: bigint, len: number): Buffer {
  const out = Buffer.alloc(len);
  if (len === 4) {
    out.writeUInt32BE(Number(BigInt.asUintN(32, v)), 0);
    return out;
  }
  if (len === 16) {
    out.writeBigUInt64BE(BigInt.asUintN(64, v >> 64n), 0);
    out.writeBigUInt64BE(BigInt.asUintN(64, v), 8);
    return out;
  }
  for (let i = len - 1; i >= 0; i--) {
    out[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  return out;
}

/** Canonical text (so "::0001" and "::1" compare equal); other strings are returned as they are. */
export function normalizeIp(s: string): string {
  // a valid dotted quad is its own canonical text (the common case: each received datagram's source)
  if (isIPv4(s)) return s;
  const a = parseIp(s);
  return a ? formatIp(a.bytes) : s;
}
