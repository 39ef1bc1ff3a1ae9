/**
 * Text ↔ VPP `address` conversion for the client, the emulator and the VPP back end. VPP's
 * `vl_api_address_t` is a u8 family (0 = IPv4, 1 = IPv6) and a 16-byte union; an IPv4 address uses
 * the first 4 bytes. This directory is meant to be usable on its own, so it has its own IP text
 * code; the text it produces is the same as src/common/addr.ts produces (RFC 5952, IPv4-mapped
 * addresses as ::ffff:a.b.c.d).
 */

import type { Address } from './defs.generated.ts';

export const AF_IP4 = 0;
export const AF_IP6 = 1;

/** Parses dotted-quad IPv4 text into 4 bytes, or returns undefined. */
export function parseIp4(text: string): Buffer | undefined {
  const parts = text.split('.');
  if (parts.length !== 4) return undefined;
  const out = Buffer.alloc(4);
  for (let i = 0; i < 4; i++) {
    const p = parts[i]!;
    if (!/^\d{1,3}$/.test(p) || (p.length > 1 && p[0] === '0')) return undefined;
    const n = Number(p);
    if (n > 255) return undefined;
    out[i] = n;
  }
  return out;
}

/** Parses IPv6 text (RFC 4291 §2.2, including "::" and a trailing dotted quad) into 16 bytes. */
export function parseIp6(text: string): Buffer | undefined {
  if (text.length === 0 || text.length > 45 || text.includes('%')) return undefined;
  const dbl = text.indexOf('::');
  if (dbl >= 0 && text.indexOf('::', dbl + 1) >= 0) return undefined;
  const groups: number[] = [];
  const parseSide = (side: string, allowV4: boolean): number[] | undefined => {
    if (side === '') return [];
    const out: number[] = [];
    const items = side.split(':');
    for (let i = 0; i < items.length; i++) {
      const it = items[i]!;
      if (allowV4 && i === items.length - 1 && it.includes('.')) {
        const v4 = parseIp4(it);
        if (!v4) return undefined;
        out.push((v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!);
      } else {
        if (!/^[0-9a-fA-F]{1,4}$/.test(it)) return undefined;
        out.push(parseInt(it, 16));
      }
    }
    return out;
  };
  if (dbl >= 0) {
    const head = parseSide(text.slice(0, dbl), false);
    const tail = parseSide(text.slice(dbl + 2), true);
    if (!head || !tail || head.length + tail.length > 7) return undefined;
    groups.push(...head, ...new Array<number>(8 - head.length - tail.length).fill(0), ...tail);
  } else {
    const all = parseSide(text, true);
    if (!all || all.length !== 8) return undefined;
    groups.push(...all);
  }
  const out = Buffer.alloc(16);
  for (let i = 0; i < 8; i++) out.writeUInt16BE(groups[i]!, i * 2);
  return out;
}

/** RFC 5952 text form of a 16-byte IPv6 address (§5: IPv4-mapped addresses end in a dotted quad). */
export function formatIp6(b: Uint8Array): string {
  let mapped = b[10] === 0xff && b[11] === 0xff;
  for (let i = 0; i < 10 && mapped; i++) mapped = b[i] === 0;
  if (mapped) return `::ffff:${b[12]}.${b[13]}.${b[14]}.${b[15]}`;
  const g: number[] = [];
  for (let i = 0; i < 8; i++) g.push((b[i * 2]! << 8) | b[i * 2 + 1]!);
  let bestAt = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) {
      bestAt = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = g.map((x) => x.toString(16));
  if (bestAt < 0) return hex.join(':');
  return `${hex.slice(0, bestAt).join(':')}::${hex.slice(bestAt + bestLen).join(':')}`;
}

export function formatIp4(b: Uint8Array): string {
  return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`;
}

/** Raw bytes and family of an address in text form; throws on anything that is not an IP address. */
export function parseIp(text: string): { af: 0 | 1; bytes: Buffer } {
  const v4 = parseIp4(text);
  if (v4) return { af: AF_IP4, bytes: v4 };
  const v6 = parseIp6(text);
  if (v6) return { af: AF_IP6, bytes: v6 };
  throw new TypeError(`not an IP address: ${JSON.stringify(text)}`);
}

export function toApiAddress(text: string): Address {
  const { af, bytes } = parseIp(text);
  return af === AF_IP4 ? { af, un: { ip4: bytes } } : { af, un: { ip6: bytes } };
}

/** Text form of a decoded (or built) VPP address; throws on an unknown family or missing bytes. */
export function fromApiAddress(a: Address): string {
  if (a.af === AF_IP4) {
    const b = a.un.ip4 ?? a.un.ip6?.subarray(0, 4);
    if (!b || b.length < 4) throw new TypeError('IPv4 address without bytes');
    return formatIp4(b);
  }
  if (a.af !== AF_IP6) throw new TypeError(`unknown address family ${a.af}`);
  const b = a.un.ip6;
  if (!b || b.length < 16) throw new TypeError('IPv6 address without bytes');
  return formatIp6(b);
}

/** The all-zero address of a family (e.g. the next hop of a p2p protection). */
export function zeroApiAddress(isIp6: boolean): Address {
  return isIp6 ? { af: AF_IP6, un: { ip6: Buffer.alloc(16) } } : { af: AF_IP4, un: { ip4: Buffer.alloc(4) } };
}

/**
 * Text of an address VPP reported, or `fallback` when it does not decode (an unknown family or
 * missing bytes), so that one malformed field does not fail a whole dump.
 */
export function apiAddressText<F>(a: Address, fallback: F): string | F {
  try {
    return fromApiAddress(a);
  } catch {
    return fallback;
  }
}

/**
 * The smallest set of prefixes that exactly covers the inclusive range [start, end] (both in the
 * same family). Used to turn IKE traffic-selector ranges into routes.
 */
export function rangeToPrefixes(start: string, end: string): { addr: string; len: number }[] {
  const a = parseIp(start);
  const b = parseIp(end);
  if (a.af !== b.af) throw new TypeError('range ends are in different families');
  const bits = a.af === AF_IP4 ? 32 : 128;
  let lo = BigInt('0x' + a.bytes.toString('hex'));
  const hi = BigInt('0x' + b.bytes.toString('hex'));
  if (lo > hi) throw new TypeError('range start is after its end');
  const out: { addr: string; len: number }[] = [];
  const width = a.af === AF_IP4 ? 8 : 32;
  while (lo <= hi) {
    // Largest block aligned at lo that does not pass hi.
    let size = 0;
    while (size < bits) {
      const next = size + 1;
      const mask = (1n << BigInt(next)) - 1n;
      if ((lo & mask) !== 0n || lo + mask > hi) break;
      size = next;
    }
    const hex = lo.toString(16).padStart(width, '0');
    const buf = Buffer.from(hex, 'hex');
    out.push({ addr: a.af === AF_IP4 ? formatIp4(buf) : formatIp6(buf), len: bits - size });
    lo += 1n << BigInt(size);
    if (out.length > 256) throw new TypeError('range needs more than 256 prefixes');
  }
  return out;
}
