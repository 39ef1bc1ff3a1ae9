/**
 * IKE identities (RFC 7296 §3.5) written as strongSwan writes them in swanctl.conf, their wire
 * encoding, their display form, and strongSwan's matching rules (wildcards, %any).
 *
 * String forms (as strongSwan's identification_create_from_string):
 *   "192.0.2.1"                  ID_IPV4_ADDR          "2001:db8::1"       ID_IPV6_ADDR
 *   "host.example", "@host"      ID_FQDN               "user@host", "@@x"  ID_RFC822_ADDR
 *   "C=CH, O=Org, CN=gw"         ID_DER_ASN1_DN (DER encoded; "/C=CH/O=Org" also accepted)
 *   "@#0a1b2c"                   ID_KEY_ID (hex)       "%any", "*"         wildcard (type ID_ANY = 0)
 *   "fqdn:", "dns:", "email:", "rfc822:", "userfqdn:", "ipv4:", "ipv6:", "keyid:", "asn1dn:",
 *   "asn1gn:" prefixes force a type ("keyid:#0a1b" = hex data), "{N}:value" a numeric type.
 * Rejected (strongSwan would silently fall back to a key id): DNs with unknown attributes, text
 * with ':' that is not an IPv6 address, dotted quads that are not IPv4 addresses, bad hex.
 */
import { IdType } from '../ikev2/constants.ts';
import { formatIp, parseAddressBlock, parseIPv4, parseIPv6, TsError } from './ts.ts';
import { enc, encOid } from '../pki/der.ts';

/** Wildcard marker type: matches any identity (strongSwan's ID_ANY). Never sent on the wire. */
export const ID_ANY = 0;
/**
 * Address block identities, for matching only (IKEv1 ID type numbers, which strongSwan also uses
 * internally): "10.0.0.0/8" → subnet (address + mask), "10.0.0.1-10.0.0.9" → range (start + end).
 * They match ID_IPV4_ADDR / ID_IPV6_ADDR identities inside the block.
 */
export const ID_IPV4_ADDR_SUBNET = 4;
export const ID_IPV6_ADDR_SUBNET = 6;
export const ID_IPV4_ADDR_RANGE = 7;
export const ID_IPV6_ADDR_RANGE = 8;

export interface Identity {
  /** An IdType value, or ID_ANY for the wildcard. */
  type: number;
  /** The ID payload's identification data (empty for ID_ANY). */
  data: Buffer;
}

/** An identity string that cannot be parsed; the message says why. */
export class IdentityError extends Error {
  override readonly name = 'IdentityError';
}

// ASN.1 universal tags used in DNs
const TAG_SEQUENCE = 0x30;
const TAG_SET = 0x31;
const TAG_OID = 0x06;
const TAG_UTF8 = 0x0c;
const TAG_PRINTABLE = 0x13;
const TAG_IA5 = 0x16;

interface RdnAttr {
  names: string[];
  oid: string;
  tag: number;
}

/** RDN attribute names as strongSwan's x501rdns table (the first name is used for display). */
const RDN_ATTRS: RdnAttr[] = [
  { names: ['C'], oid: '2.5.4.6', tag: TAG_PRINTABLE },
  { names: ['ST'], oid: '2.5.4.8', tag: TAG_PRINTABLE },
  { names: ['L'], oid: '2.5.4.7', tag: TAG_PRINTABLE },
  { names: ['O'], oid: '2.5.4.10', tag: TAG_PRINTABLE },
  { names: ['OU'], oid: '2.5.4.11', tag: TAG_PRINTABLE },
  { names: ['CN'], oid: '2.5.4.3', tag: TAG_PRINTABLE },
  { names: ['S'], oid: '2.5.4.4', tag: TAG_PRINTABLE },
  { names: ['SN', 'serialNumber'], oid: '2.5.4.5', tag: TAG_PRINTABLE },
  { names: ['T'], oid: '2.5.4.12', tag: TAG_PRINTABLE },
  { names: ['D'], oid: '2.5.4.13', tag: TAG_PRINTABLE },
  { names: ['N'], oid: '2.5.4.41', tag: TAG_PRINTABLE },
  { names: ['G'], oid: '2.5.4.42', tag: TAG_PRINTABLE },
  { names: ['I'], oid: '2.5.4.43', tag: TAG_PRINTABLE },
  { names: ['ID'], oid: '2.5.4.45', tag: TAG_PRINTABLE },
  { names: ['dnQualifier'], oid: '2.5.4.46', tag: TAG_PRINTABLE },
  { names: ['UID'], oid: '0.9.2342.19200300.100.1.1', tag: TAG_PRINTABLE },
  { names: ['DC'], oid: '0.9.2342.19200300.100.1.25', tag: TAG_PRINTABLE },
  { names: ['ND'], oid: '0.2.262.1.10.7.20', tag: TAG_PRINTABLE },
  { names: ['EN', 'employeeNumber'], oid: '2.16.840.1.113730.3.1.3', tag: TAG_PRINTABLE },
  { names: ['E', 'Email', 'emailAddress'], oid: '1.2.840.113549.1.9.1', tag: TAG_IA5 },
  { names: ['UN', 'unstructuredName'], oid: '1.2.840.113549.1.9.2', tag: TAG_IA5 },
  { names: ['UA', 'unstructuredAddress'], oid: '1.2.840.113549.1.9.8', tag: TAG_PRINTABLE },
];
const RDN_BY_NAME = new Map<string, RdnAttr>();
const RDN_BY_OID = new Map<string, RdnAttr>();
for (const a of RDN_ATTRS) {
  for (const n of a.names) RDN_BY_NAME.set(n.toLowerCase(), a);
  RDN_BY_OID.set(a.oid, a);
}
const EMAIL_OID = '1.2.840.113549.1.9.1';
const MAX_RDNS = 32;
const MAX_ID_LENGTH = 4096;

function decodeOid(b: Buffer): string {
  if (b.length === 0) return '';
  const first = b[0]!;
  const arcs: number[] = first < 80 ? [Math.floor(first / 40), first % 40] : [2, first - 80];
  let v = 0;
  for (let i = 1; i < b.length; i++) {
    v = v * 128 + (b[i]! & 0x7f);
    if ((b[i]! & 0x80) === 0) {
      arcs.push(v);
      v = 0;
    }
  }
  return arcs.join('.');
}

const PRINTABLE_RE = /^[A-Za-z0-9 '()+,\-./:=?]*$/;

/** Encodes an LDAP/openssl-style DN string ("C=CH, O=Org, CN=x" or "/C=CH/O=Org") as DER. */
function encodeDn(src: string): Buffer {
  let sep = ',';
  let s = src;
  if (s.startsWith('/')) {
    sep = '/';
    s = s.slice(1);
  }
  const rdns: Buffer[] = [];
  const parts = s.split(sep);
  for (let pi = 0; pi < parts.length; pi++) {
    const part = parts[pi]!;
    if (part.trim() === '') {
      if (pi === parts.length - 1 && pi > 0) continue; // a trailing separator is tolerated
      throw new IdentityError(`empty RDN in distinguished name '${src}'`);
    }
    const eq = part.indexOf('=');
    if (eq === -1) throw new IdentityError(`RDN '${part.trim()}' in '${src}' has no '='`);
    const name = part.slice(0, eq).trim();
    const attr = RDN_BY_NAME.get(name.toLowerCase());
    if (!attr) throw new IdentityError(`unknown attribute '${name}' in distinguished name '${src}'`);
    // strongSwan skips further '=' and blanks before the value and trims trailing blanks
    const value = part.slice(eq + 1).replace(/^[ =]+/, '').replace(/ +$/, '');
    const bytes = Buffer.from(value, 'utf8');
    const tag = attr.tag === TAG_PRINTABLE && !PRINTABLE_RE.test(value) ? TAG_UTF8 : attr.tag;
    if (tag === TAG_IA5 && /[^\x00-\x7f]/.test(value)) {
      throw new IdentityError(`attribute '${name}' in '${src}' must be ASCII`);
    }
    rdns.push(enc(TAG_SET, enc(TAG_SEQUENCE, Buffer.concat([encOid(attr.oid), enc(tag, bytes)]))));
    if (rdns.length > MAX_RDNS) throw new IdentityError(`distinguished name '${src}' has more than ${MAX_RDNS} RDNs`);
  }
  if (rdns.length === 0) throw new IdentityError(`empty distinguished name '${src}'`);
  return enc(TAG_SEQUENCE, Buffer.concat(rdns));
}

interface Rdn {
  oid: Buffer;
  tag: number;
  value: Buffer;
}

/** Reads one DER TLV at pos within [pos, end); undefined when malformed. */
function readTlv(b: Buffer, pos: number, end: number): { tag: number; start: number; end: number } | undefined {
  if (pos + 2 > end) return undefined;
  const tag = b[pos]!;
  let len = b[pos + 1]!;
  let p = pos + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0 || n > 3 || p + n > end) return undefined;
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + b[p + i]!;
    p += n;
  }
  if (p + len > end) return undefined;
  return { tag, start: p, end: p + len };
}

/** Decodes a DER DN into its RDN attributes in order; undefined if the encoding is malformed. */
function decodeDn(b: Buffer): Rdn[] | undefined {
  const seq = readTlv(b, 0, b.length);
  if (!seq || seq.tag !== TAG_SEQUENCE || seq.end !== b.length) return undefined;
  const out: Rdn[] = [];
  let pos = seq.start;
  while (pos < seq.end) {
    const set = readTlv(b, pos, seq.end);
    if (!set || set.tag !== TAG_SET) return undefined;
    let p = set.start;
    while (p < set.end) {
      const atv = readTlv(b, p, set.end);
      if (!atv || atv.tag !== TAG_SEQUENCE) return undefined;
      const oid = readTlv(b, atv.start, atv.end);
      if (!oid || oid.tag !== TAG_OID) return undefined;
      const val = readTlv(b, oid.end, atv.end);
      if (!val || val.end !== atv.end) return undefined;
      out.push({ oid: b.subarray(oid.start, oid.end), tag: val.tag, value: b.subarray(val.start, val.end) });
      if (out.length > 256) return undefined;
      p = atv.end;
    }
    pos = set.end;
  }
  return out;
}

/** Hex data; an odd number of digits gets a leading zero (as strongSwan's chunk_from_hex). */
function fromHex(hex: string, what: string): Buffer {
  if (hex.length === 0 || !/^[0-9a-fA-F]+$/.test(hex)) {
    throw new IdentityError(`${what}: '${hex}' is not hex data`);
  }
  return Buffer.from(hex.length % 2 ? `0${hex}` : hex, 'hex');
}

const PREFIXES: [string, number][] = [
  ['ipv4:', IdType.ID_IPV4_ADDR],
  ['ipv6:', IdType.ID_IPV6_ADDR],
  ['rfc822:', IdType.ID_RFC822_ADDR],
  ['email:', IdType.ID_RFC822_ADDR],
  ['userfqdn:', IdType.ID_RFC822_ADDR],
  ['fqdn:', IdType.ID_FQDN],
  ['dns:', IdType.ID_FQDN],
  ['asn1dn:', IdType.ID_DER_ASN1_DN],
  ['asn1gn:', IdType.ID_DER_ASN1_GN],
  ['keyid:', IdType.ID_KEY_ID],
];

function checkText(s: string, what: string): void {
  if (/[\s\x00-\x1f\x7f]/.test(s)) throw new IdentityError(`${what} '${s}' contains blanks or control characters`);
}

/** Data for an explicitly typed identity ("fqdn:x", "ipv4:192.0.2.1", "keyid:#0a0b", "{9}:#30..."). */
function typedData(type: number, rest: string, whole: string): Buffer {
  if (rest.startsWith('#')) return fromHex(rest.slice(1), whole);
  switch (type) {
    case IdType.ID_IPV4_ADDR: {
      const b = parseIPv4(rest);
      if (!b) throw new IdentityError(`'${rest}' is not an IPv4 address`);
      return b;
    }
    case IdType.ID_IPV6_ADDR: {
      const b = parseIPv6(rest);
      if (!b) throw new IdentityError(`'${rest}' is not an IPv6 address`);
      return b;
    }
    case IdType.ID_DER_ASN1_DN:
      return encodeDn(rest);
    case IdType.ID_FQDN:
    case IdType.ID_RFC822_ADDR:
      if (rest === '') throw new IdentityError(`identity '${whole}' is empty`);
      checkText(rest, 'identity');
      return Buffer.from(rest, 'utf8');
    default:
      if (rest === '') throw new IdentityError(`identity '${whole}' is empty`);
      return Buffer.from(rest, 'utf8');
  }
}

/** "a/len" or "a-b" with IP addresses → a subnet or range identity; undefined if it is not one. */
function addressBlockIdentity(s: string): Identity | undefined {
  const slash = s.indexOf('/');
  const dash = s.indexOf('-');
  if (slash === -1 && dash === -1) return undefined;
  const first = s.slice(0, slash !== -1 ? slash : dash);
  if (!parseIPv4(first) && !parseIPv6(first)) return undefined;
  if (dash !== -1 && !parseIPv4(s.slice(dash + 1)) && !parseIPv6(s.slice(dash + 1))) return undefined;
  let block;
  try {
    block = parseAddressBlock(s);
  } catch (e) {
    throw new IdentityError(e instanceof TsError ? e.message : String(e));
  }
  const v4 = block.family === 4;
  if (dash !== -1) {
    return { type: v4 ? ID_IPV4_ADDR_RANGE : ID_IPV6_ADDR_RANGE, data: Buffer.concat([block.start, block.end]) };
  }
  const mask = Buffer.alloc(block.start.length);
  for (let i = 0; i < mask.length; i++) mask[i] = ~(block.start[i]! ^ block.end[i]!) & 0xff;
  return { type: v4 ? ID_IPV4_ADDR_SUBNET : ID_IPV6_ADDR_SUBNET, data: Buffer.concat([block.start, mask]) };
}

/** Parses an identity string (see the module comment). Throws IdentityError. */
export function parseIdentity(input: string): Identity {
  const s = input.trim();
  if (s === '') throw new IdentityError('empty identity');
  if (s.length > MAX_ID_LENGTH) throw new IdentityError(`identity longer than ${MAX_ID_LENGTH} characters`);
  if (/[\x00-\x08\x0a-\x1f\x7f]/.test(s)) throw new IdentityError('identity contains control characters');
  const lower = s.toLowerCase();
  for (const [prefix, type] of PREFIXES) {
    if (lower.startsWith(prefix)) return { type, data: typedData(type, s.slice(prefix.length), s) };
  }
  const num = /^\{([0-9]{1,3})\}:/.exec(s);
  if (num) {
    const type = Number(num[1]);
    if (type < 1 || type > 255) throw new IdentityError(`identity type ${num[1]} is out of range (1..255)`);
    return { type, data: typedData(type, s.slice(num[0].length), s) };
  }
  if (s === '%any' || s === '%any6' || s === '*' || s === '0.0.0.0' || s === '::' || s === '0::0') {
    return { type: ID_ANY, data: Buffer.alloc(0) };
  }
  if (s.includes('=')) return { type: IdType.ID_DER_ASN1_DN, data: encodeDn(s) };
  if (!s.includes('@')) {
    const block = addressBlockIdentity(s);
    if (block) return block;
    if (s.includes(':')) {
      const b = parseIPv6(s);
      if (!b) throw new IdentityError(`'${s}' is not an IPv6 address (write keyid:${s} for a key id)`);
      return { type: IdType.ID_IPV6_ADDR, data: b };
    }
    const v4 = parseIPv4(s);
    if (v4) return { type: IdType.ID_IPV4_ADDR, data: v4 };
    if (/^[0-9.]+$/.test(s)) throw new IdentityError(`'${s}' is not an IPv4 address`);
    checkText(s, 'FQDN');
    return { type: IdType.ID_FQDN, data: Buffer.from(s, 'utf8') };
  }
  if (s.startsWith('@#')) return { type: IdType.ID_KEY_ID, data: fromHex(s.slice(2), 'key id') };
  if (s.startsWith('@@')) {
    const rest = s.slice(2);
    if (rest === '') throw new IdentityError(`identity '${s}' is empty`);
    checkText(rest, 'RFC822 address');
    return { type: IdType.ID_RFC822_ADDR, data: Buffer.from(rest, 'utf8') };
  }
  if (s.startsWith('@')) {
    const rest = s.slice(1);
    if (rest === '') throw new IdentityError(`identity '${s}' is empty`);
    checkText(rest, 'FQDN');
    return { type: IdType.ID_FQDN, data: Buffer.from(rest, 'utf8') };
  }
  checkText(s, 'RFC822 address');
  return { type: IdType.ID_RFC822_ADDR, data: Buffer.from(s, 'utf8') };
}

/** Printable ASCII text of identity data; other bytes shown as '?' (one flat string, not a chain of one per byte). */
function printable(b: Buffer): string {
  let copy: Buffer | undefined;
  for (let i = 0; i < b.length; i++) {
    const c = b[i]!;
    if (c < 0x20 || c >= 0x7f) (copy ??= Buffer.from(b))[i] = 0x3f;
  }
  return (copy ?? b).toString('latin1');
}

function dnToString(data: Buffer): string {
  const rdns = decodeDn(data);
  if (!rdns) return '(invalid ID_DER_ASN1_DN)';
  return rdns
    .map((r) => {
      const oid = decodeOid(r.oid);
      const name = RDN_BY_OID.get(oid)?.names[0] ?? oid;
      const text = r.tag === TAG_UTF8 ? r.value.toString('utf8').replace(/[\x00-\x1f\x7f]/g, '?') : printable(r.value);
      return `${name}=${text}`;
    })
    .join(', ');
}

/**
 * Display form, in the syntax parseIdentity accepts (so it round-trips): "%any", addresses, FQDN
 * and RFC822 text ("fqdn:"/"rfc822:" prefixed when the text alone would parse as another type),
 * "C=CH, O=Org, CN=x" for DNs, "@#hex" for key ids, "{N}:#hex" for other types.
 * Safe for identities received from peers: malformed data never throws.
 */
export function identityToString(id: Identity): string {
  const d = id.data;
  switch (id.type) {
    case ID_ANY:
      return '%any';
    case IdType.ID_IPV4_ADDR:
      return d.length === 4 ? formatIp(d) : `{1}:#${d.toString('hex')}`;
    case IdType.ID_IPV6_ADDR:
      return d.length === 16 ? formatIp(d) : `{5}:#${d.toString('hex')}`;
    case IdType.ID_FQDN: {
      const t = printable(d);
      let plain = t !== '' && !/[@=:\s]/.test(t) && !/^[0-9.]+$/.test(t) && t !== '*';
      if (plain && /^(ipv4|ipv6|rfc822|email|userfqdn|fqdn|dns|asn1dn|asn1gn|keyid):/i.test(t)) plain = false;
      return plain ? t : `fqdn:${t}`;
    }
    case IdType.ID_RFC822_ADDR: {
      const t = printable(d);
      const plain = t.includes('@') && !t.startsWith('@') && !/[=\s]/.test(t) && !/^\{/.test(t);
      return plain ? t : `rfc822:${t}`;
    }
    case IdType.ID_DER_ASN1_DN:
      return dnToString(d);
    case IdType.ID_KEY_ID:
      return d.length > 0 ? `@#${d.toString('hex')}` : 'keyid:';
    case ID_IPV4_ADDR_SUBNET:
    case ID_IPV6_ADDR_SUBNET: {
      const n = id.type === ID_IPV4_ADDR_SUBNET ? 4 : 16;
      if (d.length !== 2 * n) break;
      let prefix = 0;
      while (prefix < n * 8 && (d[n + (prefix >> 3)]! >> (7 - (prefix & 7))) & 1) prefix++;
      return `${formatIp(d.subarray(0, n))}/${prefix}`;
    }
    case ID_IPV4_ADDR_RANGE:
    case ID_IPV6_ADDR_RANGE: {
      const n = id.type === ID_IPV4_ADDR_RANGE ? 4 : 16;
      if (d.length !== 2 * n) break;
      return `${formatIp(d.subarray(0, n))}-${formatIp(d.subarray(n))}`;
    }
    default:
      break;
  }
  return `{${id.type}}:#${d.toString('hex')}`;
}

/** The bytes as a string with ASCII capitals lowered (what asciiEqualCi compares). */
export function asciiLower(b: Buffer): string {
  return b.toString('latin1').replace(/[A-Z]+/g, (m) => m.toLowerCase());
}

function asciiEqualCi(a: Buffer, b: Buffer): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    let x = a[i]!;
    let y = b[i]!;
    if (x >= 0x41 && x <= 0x5a) x += 32;
    if (y >= 0x41 && y <= 0x5a) y += 32;
    if (x !== y) return false;
  }
  return true;
}

/**
 * A DN as a lookup key that is equal for two DNs exactly when dnMatches() says they match without
 * wildcards (attribute by attribute; PrintableString values, and IA5 e-mail addresses, of the same
 * string type compare case-insensitively). Undefined for bytes that are no DN.
 */
export function dnKey(dn: Buffer): string | undefined {
  const rdns = decodeDn(dn);
  if (!rdns) return undefined;
  let key = '';
  for (const r of rdns) {
    const ci = r.tag === TAG_PRINTABLE || (r.tag === TAG_IA5 && decodeOid(r.oid) === EMAIL_OID);
    key += `${r.oid.toString('hex')}:${ci ? `${r.tag}:${asciiLower(r.value)}` : `b:${r.value.toString('hex')}`}/`;
  }
  return key;
}

/** strongSwan's compare_dn with wildcards: same attributes in the same order, '*' values match any. */
function dnMatches(pattern: Buffer, id: Buffer): boolean {
  if (pattern.equals(id)) return true;
  const p = decodeDn(pattern);
  const t = decodeDn(id);
  if (!p || !t || p.length !== t.length) return false;
  for (let i = 0; i < p.length; i++) {
    const pr = p[i]!;
    const tr = t[i]!;
    if (!pr.oid.equals(tr.oid)) return false;
    if (pr.value.length === 1 && pr.value[0] === 0x2a) continue; // '*'
    if (pr.value.length !== tr.value.length) return false;
    const ci = pr.tag === tr.tag && (pr.tag === TAG_PRINTABLE || (pr.tag === TAG_IA5 && decodeOid(pr.oid) === EMAIL_OID));
    if (ci ? !asciiEqualCi(pr.value, tr.value) : !pr.value.equals(tr.value)) return false;
  }
  return true;
}

/** Whether address bytes fall into a subnet or range identity. */
function addressInBlock(block: Identity, addr: Buffer): boolean {
  const n = addr.length;
  const d = block.data;
  if (d.length !== 2 * n) return false;
  if (block.type === ID_IPV4_ADDR_SUBNET || block.type === ID_IPV6_ADDR_SUBNET) {
    for (let i = 0; i < n; i++) if ((addr[i]! & d[n + i]!) !== (d[i]! & d[n + i]!)) return false;
    return true;
  }
  return Buffer.compare(d.subarray(0, n), addr) <= 0 && Buffer.compare(addr, d.subarray(n)) <= 0;
}

/** Whether a parsed pattern matches a parsed identity (strongSwan identification_t.matches). */
export function identityMatchesParsed(pattern: Identity, id: Identity): boolean {
  if (pattern.type === ID_ANY) return true;
  if (
    (id.type === IdType.ID_IPV4_ADDR && (pattern.type === ID_IPV4_ADDR_SUBNET || pattern.type === ID_IPV4_ADDR_RANGE)) ||
    (id.type === IdType.ID_IPV6_ADDR && (pattern.type === ID_IPV6_ADDR_SUBNET || pattern.type === ID_IPV6_ADDR_RANGE))
  ) {
    return addressInBlock(pattern, id.data);
  }
  if (pattern.type !== id.type) return false;
  switch (pattern.type) {
    case IdType.ID_FQDN:
    case IdType.ID_RFC822_ADDR: {
      const p = pattern.data;
      const d = id.data;
      if (asciiEqualCi(p, d)) return true;
      if (p.length === 0 || p[0] !== 0x2a || d.length < p.length) return false;
      if (p.length === 1) return true;
      return asciiEqualCi(d.subarray(d.length - (p.length - 1)), p.subarray(1));
    }
    case IdType.ID_DER_ASN1_DN:
      return dnMatches(pattern.data, id.data);
    default:
      return pattern.data.equals(id.data);
  }
}

/**
 * A configured identity (`remote.id`, a secret's id) as a pattern for identityMatchesParsed: null for
 * none or %any in any spelling (anything matches), false when it does not parse (nothing does).
 */
export function parseIdPattern(text: string): Identity | null | false {
  if (text === '' || text === '%any') return null;
  try {
    const p = parseIdentity(text);
    return p.type === ID_ANY ? null : p;
  } catch {
    return false;
  }
}

/**
 * Whether `id` matches the configured identity `pattern`: "%any" matches everything, "*.example.net"
 * matches any FQDN ending in ".example.net" (case-insensitive), "*@example.net" likewise for RFC822,
 * a DN with "CN=*" matches any value of that attribute; otherwise the identities must be equal
 * (FQDN/RFC822 case-insensitively). A pattern that does not parse matches nothing.
 */
export function identityMatches(pattern: string, id: Identity): boolean {
  let p: Identity;
  try {
    p = parseIdentity(pattern);
  } catch {
    return false;
  }
  return identityMatchesParsed(p, id);
}

/** Whether the identity contains wildcards (ID_ANY, a leading '*', or a '*' DN attribute). */
export function identityHasWildcards(id: Identity): boolean {
  if (id.type === ID_ANY) return true;
  if (id.type >= ID_IPV4_ADDR_SUBNET && id.type <= ID_IPV6_ADDR_RANGE && id.type !== IdType.ID_IPV6_ADDR) return true;
  if (id.type === IdType.ID_FQDN || id.type === IdType.ID_RFC822_ADDR) return id.data.includes(0x2a);
  if (id.type === IdType.ID_DER_ASN1_DN) {
    return (decodeDn(id.data) ?? []).some((r) => r.value.length === 1 && r.value[0] === 0x2a);
  }
  return false;
}
