/**
 * A strict, bounded DER reader (X.690) for the parts of certificates, CRLs and AlgorithmIdentifiers
 * that node:crypto does not expose, and the few encoders the signature code needs.
 *
 * Strict: definite lengths only, in their shortest form, at most 4 length octets; low tag numbers
 * only (no multi-octet tags); every element must fit in its parent; callers check that a structure
 * has nothing left over. The reader walks structures the caller names, one level at a time, so
 * hostile nesting costs nothing: there is no recursion over input.
 */

/** Malformed DER; the message says what and at which offset. */
export class DerError extends Error {
  override readonly name = 'DerError';
}

export const Tag = {
  BOOLEAN: 0x01,
  INTEGER: 0x02,
  BIT_STRING: 0x03,
  OCTET_STRING: 0x04,
  NULL: 0x05,
  OID: 0x06,
  ENUMERATED: 0x0a,
  UTF8_STRING: 0x0c,
  PRINTABLE_STRING: 0x13,
  T61_STRING: 0x14,
  IA5_STRING: 0x16,
  UTC_TIME: 0x17,
  GENERALIZED_TIME: 0x18,
  UNIVERSAL_STRING: 0x1c,
  BMP_STRING: 0x1e,
  SEQUENCE: 0x30,
  SET: 0x31,
} as const;

/** Context-specific tag [n], constructed or primitive. */
export function ctx(n: number, constructed: boolean): number {
  return 0x80 | (constructed ? 0x20 : 0) | n;
}

/** One element: its identifier octet and where its header and contents lie in `buf`. */
export interface Tlv {
  readonly tag: number;
  /** Offset of the identifier octet. */
  readonly start: number;
  /** Offset of the first content octet. */
  readonly valueStart: number;
  /** Offset after the last content octet. */
  readonly end: number;
}

/** The largest element the reader accepts (any bigger length is refused before allocation). */
export const MAX_ELEMENT = 64 * 1024 * 1024;

/** Reads the element at `pos`, which must end at or before `limit`. */
export function readTlv(buf: Buffer, pos: number, limit: number): Tlv {
  if (pos + 2 > limit) throw new DerError(`truncated element at offset ${pos}`);
  const tag = buf[pos]!;
  if ((tag & 0x1f) === 0x1f) throw new DerError(`multi-octet tag at offset ${pos}`);
  const first = buf[pos + 1]!;
  let len: number;
  let valueStart = pos + 2;
  if (first < 0x80) {
    len = first;
  } else {
    const n = first & 0x7f;
    if (n === 0) throw new DerError(`indefinite length at offset ${pos}`);
    if (n > 4) throw new DerError(`length of ${n} octets at offset ${pos}`);
    if (valueStart + n > limit) throw new DerError(`truncated length at offset ${pos}`);
    if (buf[valueStart] === 0) throw new DerError(`length not in shortest form at offset ${pos}`);
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + buf[valueStart + i]!;
    if (len < 0x80) throw new DerError(`length not in shortest form at offset ${pos}`);
    valueStart += n;
  }
  if (len > MAX_ELEMENT) throw new DerError(`element of ${len} bytes at offset ${pos}`);
  if (valueStart + len > limit) {
    throw new DerError(`element at offset ${pos} claims ${len} bytes, ${limit - valueStart} left`);
  }
  return { tag, start: pos, valueStart, end: valueStart + len };
}

function tagName(tag: number): string {
  for (const [k, v] of Object.entries(Tag)) if (v === tag) return k;
  if (tag & 0x80) return `[${tag & 0x1f}]`;
  return `tag 0x${tag.toString(16)}`;
}

/** Sequential reader over the contents of one constructed element (or a whole buffer). */
export class DerReader {
  readonly buf: Buffer;
  pos: number;
  readonly end: number;

  constructor(buf: Buffer, start = 0, end = buf.length) {
    this.buf = buf;
    this.pos = start;
    this.end = end;
  }

  /** A reader over the contents of `tlv` (which must be constructed). */
  static inside(buf: Buffer, tlv: Tlv, what: string): DerReader {
    if ((tlv.tag & 0x20) === 0) throw new DerError(`${what}: expected a constructed element`);
    return new DerReader(buf, tlv.valueStart, tlv.end);
  }

  get done(): boolean {
    return this.pos >= this.end;
  }

  /** The next element's tag, or undefined at the end. */
  peekTag(): number | undefined {
    return this.pos < this.end ? this.buf[this.pos] : undefined;
  }

  next(what: string): Tlv {
    if (this.pos >= this.end) throw new DerError(`${what}: missing`);
    const t = readTlv(this.buf, this.pos, this.end);
    this.pos = t.end;
    return t;
  }

  /** The next element, which must have `tag`. */
  expect(tag: number, what: string): Tlv {
    if (this.pos >= this.end) throw new DerError(`${what}: missing`);
    const got = this.buf[this.pos]!;
    if (got !== tag) throw new DerError(`${what}: expected ${tagName(tag)}, got ${tagName(got)} at offset ${this.pos}`);
    return this.next(what);
  }

  /** The next element if it has `tag`, else undefined (nothing consumed). */
  optional(tag: number, what: string): Tlv | undefined {
    return this.peekTag() === tag ? this.next(what) : undefined;
  }

  /** A reader over the next element, a SEQUENCE (or `tag`). */
  enter(what: string, tag: number = Tag.SEQUENCE): DerReader {
    const t = this.expect(tag, what);
    return DerReader.inside(this.buf, t, what);
  }

  /** Fails if anything is left. */
  finish(what: string): void {
    if (this.pos !== this.end) throw new DerError(`${what}: ${this.end - this.pos} unexpected bytes at offset ${this.pos}`);
  }

  /** The raw bytes (header included) of an element. */
  raw(t: Tlv): Buffer {
    return this.buf.subarray(t.start, t.end);
  }

  /** The contents of an element. */
  value(t: Tlv): Buffer {
    return this.buf.subarray(t.valueStart, t.end);
  }
}

/** Dotted-decimal OBJECT IDENTIFIER; arcs over 2^53 and non-minimal arcs are refused. */
export function decodeOid(v: Buffer, what: string): string {
  if (v.length === 0 || v.length > 64) throw new DerError(`${what}: OID of ${v.length} bytes`);
  if ((v[v.length - 1]! & 0x80) !== 0) throw new DerError(`${what}: truncated OID`);
  const arcs: number[] = [];
  let acc = 0;
  let started = false;
  for (let i = 0; i < v.length; i++) {
    const b = v[i]!;
    if (!started && b === 0x80) throw new DerError(`${what}: OID arc not in shortest form`);
    started = true;
    acc = acc * 128 + (b & 0x7f);
    if (acc > Number.MAX_SAFE_INTEGER / 128) throw new DerError(`${what}: OID arc too large`);
    if ((b & 0x80) === 0) {
      if (arcs.length === 0) {
        if (acc < 40) arcs.push(0, acc);
        else if (acc < 80) arcs.push(1, acc - 40);
        else arcs.push(2, acc - 80);
      } else arcs.push(acc);
      acc = 0;
      started = false;
    }
  }
  return arcs.join('.');
}

export function readOid(r: DerReader, what: string): string {
  return decodeOid(r.value(r.expect(Tag.OID, what)), what);
}

/**
 * An INTEGER's two's-complement contents, checked for minimal encoding. Returns the bytes as they
 * are (a leading 0x00 sign octet included).
 */
export function integerBytes(v: Buffer, what: string): Buffer {
  if (v.length === 0) throw new DerError(`${what}: empty INTEGER`);
  if (v.length > 1 && ((v[0] === 0 && (v[1]! & 0x80) === 0) || (v[0] === 0xff && (v[1]! & 0x80) !== 0))) {
    throw new DerError(`${what}: INTEGER not in shortest form`);
  }
  return v;
}

/** A non-negative INTEGER that fits in a JS number (at most 6 content bytes). */
export function readSmallUint(r: DerReader, what: string, tag: number = Tag.INTEGER): number {
  const v = integerBytes(r.value(r.expect(tag, what)), what);
  if ((v[0]! & 0x80) !== 0) throw new DerError(`${what}: negative`);
  if (v.length > 6) throw new DerError(`${what}: too large`);
  let n = 0;
  for (const b of v) n = n * 256 + b;
  return n;
}

export function readBoolean(r: DerReader, what: string): boolean {
  const v = r.value(r.expect(Tag.BOOLEAN, what));
  if (v.length !== 1 || (v[0] !== 0 && v[0] !== 0xff)) throw new DerError(`${what}: invalid BOOLEAN`);
  return v[0] === 0xff;
}

/** BIT STRING contents: the unused-bit count and the bytes. */
export function bitString(v: Buffer, what: string): { unused: number; bytes: Buffer } {
  if (v.length === 0) throw new DerError(`${what}: empty BIT STRING`);
  const unused = v[0]!;
  if (unused > 7 || (v.length === 1 && unused !== 0)) throw new DerError(`${what}: invalid BIT STRING`);
  return { unused, bytes: v.subarray(1) };
}

function digits(s: string, what: string): number {
  if (!/^[0-9]+$/.test(s)) throw new DerError(`${what}: invalid time`);
  return Number(s);
}

/** UTCTime (YYMMDDHHMMSSZ, 1950–2049) or GeneralizedTime (YYYYMMDDHHMMSSZ) as RFC 5280 requires. */
export function readTime(r: DerReader, what: string): Date {
  const tag = r.peekTag();
  if (tag !== Tag.UTC_TIME && tag !== Tag.GENERALIZED_TIME) throw new DerError(`${what}: expected a time`);
  const s = r.value(r.next(what)).toString('latin1');
  let year: number;
  let rest: string;
  if (tag === Tag.UTC_TIME) {
    if (s.length !== 13 || !s.endsWith('Z')) throw new DerError(`${what}: invalid UTCTime`);
    const yy = digits(s.slice(0, 2), what);
    year = yy < 50 ? 2000 + yy : 1900 + yy;
    rest = s.slice(2, 12);
  } else {
    if (s.length !== 15 || !s.endsWith('Z')) throw new DerError(`${what}: invalid GeneralizedTime`);
    year = digits(s.slice(0, 4), what);
    rest = s.slice(4, 14);
  }
  const mo = digits(rest.slice(0, 2), what);
  const d = digits(rest.slice(2, 4), what);
  const h = digits(rest.slice(4, 6), what);
  const mi = digits(rest.slice(6, 8), what);
  const se = digits(rest.slice(8, 10), what);
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 59) throw new DerError(`${what}: invalid time`);
  const t = Date.UTC(year, mo - 1, d, h, mi, se);
  const date = new Date(t);
  if (date.getUTCDate() !== d) throw new DerError(`${what}: invalid date`);
  return date;
}

// ---- encoders -------------------------------------------------------------------------------

function encLength(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  while (n > 0) {
    bytes.unshift(n & 0xff);
    n = Math.floor(n / 256);
  }
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

/** One element from its tag and contents. */
export function enc(tag: number, ...content: Buffer[]): Buffer {
  const body = Buffer.concat(content);
  return Buffer.concat([Buffer.from([tag]), encLength(body.length), body]);
}

export function encOid(oid: string): Buffer {
  const arcs = oid.split('.').map(Number);
  const out: number[] = [arcs[0]! * 40 + arcs[1]!];
  for (let i = 2; i < arcs.length; i++) {
    let v = arcs[i]!;
    const chunk: number[] = [v & 0x7f];
    v = Math.floor(v / 128);
    while (v > 0) {
      chunk.unshift((v & 0x7f) | 0x80);
      v = Math.floor(v / 128);
    }
    out.push(...chunk);
  }
  return enc(Tag.OID, Buffer.from(out));
}

/** A non-negative INTEGER from a number or magnitude bytes. */
export function encUint(v: number | Buffer): Buffer {
  let b: Buffer;
  if (typeof v === 'number') {
    const bytes: number[] = [];
    do {
      bytes.unshift(v & 0xff);
      v = Math.floor(v / 256);
    } while (v > 0);
    b = Buffer.from(bytes);
  } else {
    let i = 0;
    while (i < v.length - 1 && v[i] === 0) i++;
    b = v.subarray(i);
    if (b.length === 0) b = Buffer.from([0]);
  }
  if (b[0]! & 0x80) b = Buffer.concat([Buffer.from([0]), b]);
  return enc(Tag.INTEGER, b);
}

export const DER_NULL = Buffer.from([0x05, 0x00]);
