/**
 * Bodies of the IKEv2 payloads (RFC 7296 §3.3–§3.16, RFC 7383 §2.5): one decoder and one encoder
 * per payload type. A body is everything after the 4-byte generic payload header:
 *
 *                      1                   2                   3
 *  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * | Next Payload  |C|  RESERVED   |         Payload Length        |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *
 * Decoders get a Reader windowed on exactly the body, read absolute offsets (so ParseError
 * offsets point into the whole message), must consume the whole window and throw ParseError
 * for anything malformed. Reserved fields are ignored on receipt and written as zero.
 * Encoders write the body only and throw RangeError for values that cannot be represented.
 */
import { ParseError, Reader, Writer } from '../../common/bytes.ts';
import { Limits, NotifyType, PayloadType, ProtocolId, TransformAttr, TsType } from '../constants.ts';
import type {
  AuthPayload,
  CertPayload,
  CertReqPayload,
  CfgAttribute,
  CpPayload,
  DeletePayload,
  EapPayload,
  IdPayload,
  KePayload,
  NoncePayload,
  NotifyPayload,
  Payload,
  Proposal,
  SaPayload,
  SkfPayload,
  SkPayload,
  TrafficSelector,
  Transform,
  TransformAttribute,
  TsPayload,
  VendorPayload,
} from './types.ts';

export const GENERIC_HEADER_LEN = 4;
/** Critical bit in the second byte of the generic payload header. */
export const CRITICAL_BIT = 0x80;

/** Payload types this codec decodes; every other type is "unknown" (RFC 7296 §2.5). */
export function isKnownPayloadType(type: number): boolean {
  return (type >= PayloadType.SA && type <= PayloadType.EAP) || type === PayloadType.SKF;
}

function fail(message: string, offset: number): never {
  throw new ParseError(message, offset);
}

/** Shared zero-length value for empty fields (it has no bytes that could be changed). */
export const EMPTY = Buffer.alloc(0);

/**
 * A copy of the next n bytes of `r` (decoded values never pin the receive buffer). One pooled
 * allocation and a native copy: cheaper than Reader.bytes, which also creates a view first.
 */
export function take(r: Reader, n: number, what = 'bytes'): Buffer {
  r.need(n, what);
  if (n === 0) return EMPTY;
  const out = Buffer.allocUnsafe(n);
  r.buf.copy(out, 0, r.pos, r.pos + n);
  r.pos += n;
  return out;
}

/** The rest of the reader's window, copied. */
function rest(r: Reader): Buffer {
  return take(r, r.remaining);
}

// ---------------------------------------------------------------------------------------------
// SA (§3.3): Proposal substructures, each with Transform substructures and their attributes.
//
// Proposal:  Last Substruc (0 last / 2 more) | RESERVED | Proposal Length (2)
//            Proposal Num | Protocol ID | SPI Size | Num Transforms | SPI | Transforms
// Transform: Last Substruc (0 last / 3 more) | RESERVED | Transform Length (2)
//            Transform Type | RESERVED | Transform ID (2) | Transform Attributes
// Attribute: A(F) bit + Attribute Type (15 bits) | Attribute Length (TLV) or Value (TV) | Value
// ---------------------------------------------------------------------------------------------

const PROPOSAL_HEADER_LEN = 8;
const TRANSFORM_HEADER_LEN = 8;
const LAST = 0;
const MORE_PROPOSALS = 2;
const MORE_TRANSFORMS = 3;
const ATTR_TV = 0x8000;

/** SPI sizes allowed per protocol in a proposal (§3.3.1); other protocols are not checked. */
function proposalSpiSizeOk(protocol: number, spiSize: number): boolean {
  switch (protocol) {
    case ProtocolId.IKE:
      return spiSize === 0 || spiSize === 8; // 0 in IKE_SA_INIT, 8 when rekeying the IKE SA
    case ProtocolId.AH:
    case ProtocolId.ESP:
      return spiSize === 4;
    default:
      return true;
  }
}

function decodeAttributes(r: Reader): TransformAttribute[] {
  const attributes: TransformAttribute[] = [];
  while (r.remaining > 0) {
    const at = r.pos;
    const word = r.u16('attribute type');
    const type = word & 0x7fff;
    if (word & ATTR_TV) {
      attributes.push({ type, value: r.u16('TV attribute value') });
    } else {
      if (type === TransformAttr.KEY_LENGTH) fail('Key Length attribute must use the TV format', at);
      const len = r.u16('TLV attribute length');
      if (len > r.remaining) fail(`TLV attribute length ${len} exceeds its transform (${r.remaining} left)`, at + 2);
      attributes.push({ type, value: take(r, len, 'TLV attribute value') });
    }
  }
  return attributes;
}

function decodeTransform(r: Reader, isLast: boolean, index: number): Transform {
  const at = r.pos;
  r.need(TRANSFORM_HEADER_LEN, 'transform header');
  const marker = r.u8();
  if (marker !== (isLast ? LAST : MORE_TRANSFORMS)) {
    fail(`transform ${index + 1}: Last Substruc ${marker}, expected ${isLast ? LAST : MORE_TRANSFORMS}`, at);
  }
  r.skip(1);
  const len = r.u16();
  if (len < TRANSFORM_HEADER_LEN) fail(`transform length ${len} < ${TRANSFORM_HEADER_LEN}`, at + 2);
  if (len - 4 > r.remaining) fail(`transform length ${len} exceeds its proposal`, at + 2);
  const type = r.u8();
  r.skip(1);
  const id = r.u16();
  const attributes = decodeAttributes(r.sub(len - TRANSFORM_HEADER_LEN, 'transform attributes'));
  return { type, id, attributes };
}

function decodeProposal(r: Reader, prevNum: number): { proposal: Proposal; more: boolean } {
  const at = r.pos;
  r.need(PROPOSAL_HEADER_LEN, 'proposal header');
  const marker = r.u8();
  if (marker !== LAST && marker !== MORE_PROPOSALS) {
    fail(`proposal Last Substruc ${marker}, expected ${LAST} or ${MORE_PROPOSALS}`, at);
  }
  r.skip(1);
  const len = r.u16();
  if (len < PROPOSAL_HEADER_LEN) fail(`proposal length ${len} < ${PROPOSAL_HEADER_LEN}`, at + 2);
  if (len - 4 > r.remaining) fail(`proposal length ${len} exceeds the SA payload`, at + 2);
  const pr = new Reader(r.buf, at + 4, at + len);
  r.pos = at + len;

  const num = pr.u8();
  if (prevNum === 0 ? num === 0 : num !== prevNum + 1) {
    fail(prevNum === 0 ? 'proposal number 0' : `proposal number ${num} after ${prevNum}`, at + 4);
  }
  const protocol = pr.u8();
  const spiSize = pr.u8();
  if (!proposalSpiSizeOk(protocol, spiSize)) fail(`SPI size ${spiSize} invalid for protocol ${protocol}`, at + 6);
  const count = pr.u8();
  const spi = take(pr, spiSize, 'proposal SPI');
  const transforms: Transform[] = [];
  for (let i = 0; i < count; i++) {
    if (pr.remaining === 0) fail(`proposal declares ${count} transforms, contains ${i}`, pr.pos);
    transforms.push(decodeTransform(pr, i === count - 1, i));
  }
  if (pr.remaining > 0) fail(`${pr.remaining} bytes after the last transform of proposal ${num}`, pr.pos);
  return { proposal: { num, protocol, spi, transforms }, more: marker === MORE_PROPOSALS };
}

function decodeSa(r: Reader, critical: boolean): SaPayload {
  if (r.remaining === 0) fail('SA payload without proposals', r.pos);
  const proposals: Proposal[] = [];
  let prevNum = 0;
  for (;;) {
    if (proposals.length === Limits.MAX_PROPOSALS) fail(`more than ${Limits.MAX_PROPOSALS} proposals`, r.pos);
    const { proposal, more } = decodeProposal(r, prevNum);
    proposals.push(proposal);
    prevNum = proposal.num;
    if (!more) {
      if (r.remaining > 0) fail('data after the proposal marked last', r.pos);
      break;
    }
    if (r.remaining === 0) fail('SA payload ends after a proposal marked "more"', r.pos);
  }
  return { type: PayloadType.SA, critical, proposals };
}

function checkU8(v: number, what: string): number {
  if (!Number.isInteger(v) || v < 0 || v > 0xff) throw new RangeError(`${what} ${v} is not an 8-bit value`);
  return v;
}

function checkU16(v: number, what: string): number {
  if (!Number.isInteger(v) || v < 0 || v > 0xffff) throw new RangeError(`${what} ${v} is not a 16-bit value`);
  return v;
}

function encodeAttributes(attributes: TransformAttribute[], w: Writer): void {
  for (const a of attributes) {
    const type = a.type & 0x7fff;
    if (typeof a.value === 'number') {
      w.u16(ATTR_TV | type).u16(checkU16(a.value, 'TV attribute value'));
    } else {
      w.u16(type).u16(checkU16(a.value.length, 'TLV attribute length')).bytes(a.value);
    }
  }
}

function encodeSa(p: SaPayload, w: Writer): void {
  const nProps = p.proposals.length;
  if (nProps === 0) throw new RangeError('SA payload without proposals');
  for (let pi = 0; pi < nProps; pi++) {
    const prop = p.proposals[pi]!;
    const pStart = w.length;
    w.u8(pi === nProps - 1 ? LAST : MORE_PROPOSALS).u8(0).u16(0);
    w.u8(checkU8(prop.num, 'proposal number'));
    w.u8(checkU8(prop.protocol, 'protocol'));
    w.u8(checkU8(prop.spi.length, 'SPI size'));
    const nTrans = checkU8(prop.transforms.length, 'transform count');
    w.u8(nTrans);
    w.bytes(prop.spi);
    for (let ti = 0; ti < nTrans; ti++) {
      const t = prop.transforms[ti]!;
      const tStart = w.length;
      w.u8(ti === nTrans - 1 ? LAST : MORE_TRANSFORMS).u8(0).u16(0);
      w.u8(checkU8(t.type, 'transform type')).u8(0).u16(checkU16(t.id, 'transform ID'));
      encodeAttributes(t.attributes, w);
      w.patchU16(tStart + 2, checkU16(w.length - tStart, 'transform length'));
    }
    w.patchU16(pStart + 2, checkU16(w.length - pStart, 'proposal length'));
  }
}

// ---------------------------------------------------------------------------------------------
// KE (§3.4): Diffie-Hellman Group Num (2) | RESERVED (2) | Key Exchange Data
// ---------------------------------------------------------------------------------------------

function decodeKe(r: Reader, critical: boolean): KePayload {
  const at = r.pos;
  r.need(4, 'KE header');
  const group = r.u16();
  if (group === 0) fail('KE payload with group 0', at);
  r.skip(2);
  // Empty key exchange data parses: some peers send it when the proposal they chose has no key
  // exchange (libreswan with pfs=no). The engine refuses it where a key exchange is needed.
  return { type: PayloadType.KE, critical, group, data: rest(r) };
}

function encodeKe(p: KePayload, w: Writer): void {
  w.u16(checkU16(p.group, 'KE group')).u16(0).bytes(p.data);
}

// ---------------------------------------------------------------------------------------------
// IDi/IDr (§3.5): ID Type | RESERVED (3) | Identification Data
// AUTH (§3.8):    Auth Method | RESERVED (3) | Authentication Data
// CP (§3.15):     CFG Type | RESERVED (3) | Configuration Attributes
// CERT (§3.6), CERTREQ (§3.7): Cert Encoding | data
// ---------------------------------------------------------------------------------------------

function decodeId(r: Reader, type: typeof PayloadType.IDi | typeof PayloadType.IDr, critical: boolean): IdPayload {
  r.need(4, 'ID header');
  const idType = r.u8();
  r.skip(3);
  return { type, critical, idType, data: rest(r) };
}

function decodeCert(r: Reader, critical: boolean): CertPayload {
  const encoding = r.u8('certificate encoding');
  return { type: PayloadType.CERT, critical, encoding, data: rest(r) };
}

function decodeCertReq(r: Reader, critical: boolean): CertReqPayload {
  const encoding = r.u8('certificate encoding');
  return { type: PayloadType.CERTREQ, critical, encoding, data: rest(r) };
}

function decodeAuth(r: Reader, critical: boolean): AuthPayload {
  r.need(4, 'AUTH header');
  const method = r.u8();
  r.skip(3);
  return { type: PayloadType.AUTH, critical, method, data: rest(r) };
}

// ---------------------------------------------------------------------------------------------
// Nonce (§3.9): Nonce Data, 16..256 bytes (§2.10)
// Vendor ID (§3.12): opaque
// ---------------------------------------------------------------------------------------------

function decodeNonce(r: Reader, critical: boolean): NoncePayload {
  const n = r.remaining;
  if (n < Limits.NONCE_MIN || n > Limits.NONCE_MAX) {
    fail(`nonce length ${n} outside ${Limits.NONCE_MIN}..${Limits.NONCE_MAX}`, r.pos);
  }
  return { type: PayloadType.NONCE, critical, data: take(r, n) };
}

// ---------------------------------------------------------------------------------------------
// Notify (§3.10): Protocol ID | SPI Size | Notify Message Type (2) | SPI | Notification Data
// ---------------------------------------------------------------------------------------------

/** Fixed or bounded data lengths of notifications whose format is fully specified. */
function notifyDataLengthOk(notifyType: number, len: number): boolean {
  switch (notifyType) {
    case NotifyType.NAT_DETECTION_SOURCE_IP:
    case NotifyType.NAT_DETECTION_DESTINATION_IP:
      return len === 20; // SHA-1 digest (RFC 7296 §2.23)
    case NotifyType.COOKIE:
      return len >= 1 && len <= 64; // RFC 7296 §2.6
    case NotifyType.INVALID_KE_PAYLOAD:
      return len === 2; // accepted group (RFC 7296 §3.10.1)
    case NotifyType.ADDITIONAL_IP4_ADDRESS:
      return len === 4; // RFC 4555 §4.2
    case NotifyType.ADDITIONAL_IP6_ADDRESS:
      return len === 16;
    case NotifyType.AUTH_LIFETIME:
      return len === 4; // RFC 4478 §3
    case NotifyType.SIGNATURE_HASH_ALGORITHMS:
      return len % 2 === 0; // list of 16-bit identifiers (RFC 7427 §4)
    default:
      return true;
  }
}

function decodeNotify(r: Reader, critical: boolean): NotifyPayload {
  const at = r.pos;
  r.need(4, 'Notify header');
  const protocol = r.u8();
  const spiSize = r.u8();
  const notifyType = r.u16();
  // An empty SPI is the IKE SA (protocol then ignored); a Child SA SPI is 4 bytes (AH/ESP).
  if (spiSize !== 0 && !((protocol === ProtocolId.AH || protocol === ProtocolId.ESP) && spiSize === 4)) {
    fail(`notify SPI size ${spiSize} invalid for protocol ${protocol}`, at + 1);
  }
  const spi = take(r, spiSize, 'notify SPI');
  if (!notifyDataLengthOk(notifyType, r.remaining)) {
    fail(`notify type ${notifyType}: invalid data length ${r.remaining}`, r.pos);
  }
  return { type: PayloadType.NOTIFY, critical, protocol, spi, notifyType, data: rest(r) };
}

function encodeNotify(p: NotifyPayload, w: Writer): void {
  w.u8(checkU8(p.protocol, 'protocol')).u8(checkU8(p.spi.length, 'SPI size'));
  w.u16(checkU16(p.notifyType, 'notify type')).bytes(p.spi).bytes(p.data);
}

// ---------------------------------------------------------------------------------------------
// Delete (§3.11): Protocol ID | SPI Size | Num of SPIs (2) | SPIs
// ---------------------------------------------------------------------------------------------

function decodeDelete(r: Reader, critical: boolean): DeletePayload {
  const at = r.pos;
  r.need(4, 'Delete header');
  const protocol = r.u8();
  const spiSize = r.u8();
  const count = r.u16();
  if (protocol === ProtocolId.IKE) {
    if (spiSize !== 0) fail(`IKE SA delete with SPI size ${spiSize}`, at + 1);
    if (count !== 0) fail(`IKE SA delete with ${count} SPIs`, at + 2);
  } else if (protocol === ProtocolId.AH || protocol === ProtocolId.ESP) {
    if (spiSize !== 4) fail(`delete SPI size ${spiSize} for protocol ${protocol}`, at + 1);
  } else {
    fail(`delete for unknown protocol ${protocol}`, at);
  }
  if (spiSize * count !== r.remaining) {
    fail(`delete: ${count} SPIs of ${spiSize} bytes but ${r.remaining} bytes of data`, at + 2);
  }
  const spis: Buffer[] = [];
  for (let i = 0; i < count; i++) spis.push(take(r, spiSize));
  return { type: PayloadType.DELETE, critical, protocol, spiSize, spis };
}

function encodeDelete(p: DeletePayload, w: Writer): void {
  w.u8(checkU8(p.protocol, 'protocol')).u8(checkU8(p.spiSize, 'SPI size')).u16(checkU16(p.spis.length, 'SPI count'));
  for (const spi of p.spis) {
    if (spi.length !== p.spiSize) throw new RangeError(`delete SPI of ${spi.length} bytes, SPI size ${p.spiSize}`);
    w.bytes(spi);
  }
}

// ---------------------------------------------------------------------------------------------
// TSi/TSr (§3.13): Number of TSs | RESERVED (3) | Traffic Selectors
// Traffic Selector (§3.13.1): TS Type | IP Protocol ID | Selector Length (2)
//                             Start Port (2) | End Port (2) | Starting Address | Ending Address
// IPv4 range: 16 bytes, IPv6 range: 40 bytes. Other TS types are kept raw: `start` holds the
// bytes after the 4-byte selector header, `end` is empty and the ports are 0.
// ---------------------------------------------------------------------------------------------

const TS_HEADER_LEN = 4;
const TS_IPV4_LEN = 16;
const TS_IPV6_LEN = 40;

function decodeTrafficSelector(r: Reader): TrafficSelector {
  const at = r.pos;
  r.need(TS_HEADER_LEN, 'traffic selector header');
  const tsType = r.u8();
  const ipProto = r.u8();
  const len = r.u16();
  if (len < TS_HEADER_LEN) fail(`selector length ${len} < ${TS_HEADER_LEN}`, at + 2);
  if (len - TS_HEADER_LEN > r.remaining) fail(`selector length ${len} exceeds the TS payload`, at + 2);
  let addrLen: number;
  if (tsType === TsType.TS_IPV4_ADDR_RANGE) addrLen = 4;
  else if (tsType === TsType.TS_IPV6_ADDR_RANGE) addrLen = 16;
  else return { tsType, ipProto, startPort: 0, endPort: 0, start: take(r, len - TS_HEADER_LEN), end: EMPTY };
  const expected = addrLen === 4 ? TS_IPV4_LEN : TS_IPV6_LEN;
  if (len !== expected) fail(`selector length ${len} for TS type ${tsType}, expected ${expected}`, at + 2);
  const startPort = r.u16();
  const endPort = r.u16();
  return { tsType, ipProto, startPort, endPort, start: take(r, addrLen), end: take(r, addrLen) };
}

function decodeTs(r: Reader, type: typeof PayloadType.TSi | typeof PayloadType.TSr, critical: boolean): TsPayload {
  const at = r.pos;
  r.need(4, 'TS header');
  const count = r.u8();
  if (count > Limits.MAX_TS) fail(`${count} traffic selectors (max ${Limits.MAX_TS})`, at);
  r.skip(3);
  const selectors: TrafficSelector[] = [];
  for (let i = 0; i < count; i++) {
    if (r.remaining === 0) fail(`TS payload declares ${count} selectors, contains ${i}`, r.pos);
    selectors.push(decodeTrafficSelector(r));
  }
  if (r.remaining > 0) fail(`${r.remaining} bytes after the last traffic selector`, r.pos);
  return { type, critical, selectors };
}

function encodeTs(p: TsPayload, w: Writer): void {
  w.u8(checkU8(p.selectors.length, 'TS count')).u8(0).u16(0);
  for (const ts of p.selectors) {
    w.u8(checkU8(ts.tsType, 'TS type')).u8(checkU8(ts.ipProto, 'IP protocol'));
    if (ts.tsType === TsType.TS_IPV4_ADDR_RANGE || ts.tsType === TsType.TS_IPV6_ADDR_RANGE) {
      const addrLen = ts.tsType === TsType.TS_IPV4_ADDR_RANGE ? 4 : 16;
      if (ts.start.length !== addrLen || ts.end.length !== addrLen) {
        throw new RangeError(`TS type ${ts.tsType} needs ${addrLen}-byte addresses`);
      }
      w.u16(TS_HEADER_LEN + 4 + 2 * addrLen);
      w.u16(checkU16(ts.startPort, 'start port')).u16(checkU16(ts.endPort, 'end port'));
      w.bytes(ts.start).bytes(ts.end);
    } else {
      w.u16(checkU16(TS_HEADER_LEN + ts.start.length + ts.end.length, 'selector length'));
      w.bytes(ts.start).bytes(ts.end);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// SK (§3.14): IV | Encrypted IKE payloads | Padding | Pad Length | ICV — kept opaque here.
// SKF (RFC 7383 §2.5): Fragment Number (2) | Total Fragments (2) | IV | ciphertext | ICV
// ---------------------------------------------------------------------------------------------

function decodeSk(r: Reader, critical: boolean, innerType: number, offset: number): SkPayload {
  return { type: PayloadType.SK, critical, innerType, body: rest(r), offset };
}

function decodeSkf(r: Reader, critical: boolean, innerType: number, offset: number): SkfPayload {
  const at = r.pos;
  r.need(4, 'SKF header');
  const fragmentNumber = r.u16();
  const totalFragments = r.u16();
  if (fragmentNumber === 0) fail('fragment number 0', at);
  if (fragmentNumber > totalFragments) fail(`fragment ${fragmentNumber} of ${totalFragments}`, at);
  return {
    type: PayloadType.SKF,
    critical,
    innerType,
    fragmentNumber,
    totalFragments,
    body: rest(r),
    offset,
  };
}

// ---------------------------------------------------------------------------------------------
// CP attributes (§3.15.1): R bit + Attribute Type (15 bits) | Length (2) | Value
// EAP (§3.16): the EAP message; its own Length field (bytes 2..3) must equal the payload data.
// ---------------------------------------------------------------------------------------------

function decodeCp(r: Reader, critical: boolean): CpPayload {
  r.need(4, 'CP header');
  const cfgType = r.u8();
  r.skip(3);
  const attributes: CfgAttribute[] = [];
  while (r.remaining > 0) {
    const at = r.pos;
    r.need(4, 'configuration attribute header');
    const type = r.u16() & 0x7fff;
    const len = r.u16();
    if (len > r.remaining) fail(`configuration attribute length ${len} exceeds the CP payload`, at + 2);
    attributes.push({ type, value: take(r, len) });
  }
  return { type: PayloadType.CP, critical, cfgType, attributes };
}

function encodeCp(p: CpPayload, w: Writer): void {
  w.u8(checkU8(p.cfgType, 'CFG type')).u8(0).u16(0);
  for (const a of p.attributes) {
    w.u16(a.type & 0x7fff).u16(checkU16(a.value.length, 'attribute length')).bytes(a.value);
  }
}

function decodeEap(r: Reader, critical: boolean): EapPayload {
  const at = r.pos;
  if (r.remaining < 4) fail(`EAP message of ${r.remaining} bytes (minimum 4)`, at);
  const eapLen = r.buf.readUInt16BE(at + 2);
  if (eapLen !== r.remaining) fail(`EAP length ${eapLen} but payload carries ${r.remaining} bytes`, at + 2);
  return { type: PayloadType.EAP, critical, data: rest(r) };
}

// ---------------------------------------------------------------------------------------------
// Dispatch
// ---------------------------------------------------------------------------------------------

/**
 * Decodes the body of a known payload type. `r` covers exactly the body; `next` is the Next
 * Payload field of this payload's generic header and `offset` the header's position.
 * Returns undefined for a type this codec does not know.
 */
export function decodePayloadBody(
  type: number,
  critical: boolean,
  next: number,
  offset: number,
  r: Reader,
): Payload | undefined {
  let p: Payload;
  switch (type) {
    case PayloadType.SA:
      p = decodeSa(r, critical);
      break;
    case PayloadType.KE:
      p = decodeKe(r, critical);
      break;
    case PayloadType.IDi:
    case PayloadType.IDr:
      p = decodeId(r, type, critical);
      break;
    case PayloadType.CERT:
      p = decodeCert(r, critical);
      break;
    case PayloadType.CERTREQ:
      p = decodeCertReq(r, critical);
      break;
    case PayloadType.AUTH:
      p = decodeAuth(r, critical);
      break;
    case PayloadType.NONCE:
      p = decodeNonce(r, critical);
      break;
    case PayloadType.NOTIFY:
      p = decodeNotify(r, critical);
      break;
    case PayloadType.DELETE:
      p = decodeDelete(r, critical);
      break;
    case PayloadType.VENDOR:
      p = { type: PayloadType.VENDOR, critical, data: rest(r) } satisfies VendorPayload;
      break;
    case PayloadType.TSi:
    case PayloadType.TSr:
      p = decodeTs(r, type, critical);
      break;
    case PayloadType.SK:
      p = decodeSk(r, critical, next, offset);
      break;
    case PayloadType.SKF:
      p = decodeSkf(r, critical, next, offset);
      break;
    case PayloadType.CP:
      p = decodeCp(r, critical);
      break;
    case PayloadType.EAP:
      p = decodeEap(r, critical);
      break;
    default:
      return undefined;
  }
  if (r.remaining !== 0) fail(`${r.remaining} unexpected bytes at the end of payload ${type}`, r.pos);
  return p;
}

/** Writes the body of `p` (everything after the generic payload header). */
export function encodePayloadBody(p: Payload, w: Writer): void {
  switch (p.type) {
    case PayloadType.SA:
      return encodeSa(p, w);
    case PayloadType.KE:
      return encodeKe(p, w);
    case PayloadType.IDi:
    case PayloadType.IDr:
      w.u8(checkU8(p.idType, 'ID type')).u8(0).u16(0).bytes(p.data);
      return;
    case PayloadType.CERT:
    case PayloadType.CERTREQ:
      w.u8(checkU8(p.encoding, 'certificate encoding')).bytes(p.data);
      return;
    case PayloadType.AUTH:
      w.u8(checkU8(p.method, 'auth method')).u8(0).u16(0).bytes(p.data);
      return;
    case PayloadType.NONCE:
    case PayloadType.VENDOR:
    case PayloadType.EAP:
      w.bytes(p.data);
      return;
    case PayloadType.NOTIFY:
      return encodeNotify(p, w);
    case PayloadType.DELETE:
      return encodeDelete(p, w);
    case PayloadType.TSi:
    case PayloadType.TSr:
      return encodeTs(p, w);
    case PayloadType.SK:
      w.bytes(p.body);
      return;
    case PayloadType.SKF:
      w.u16(checkU16(p.fragmentNumber, 'fragment number')).u16(checkU16(p.totalFragments, 'total fragments'));
      w.bytes(p.body);
      return;
    case PayloadType.CP:
      return encodeCp(p, w);
    default: {
      const never: never = p;
      throw new RangeError(`cannot encode payload ${JSON.stringify(never)}`);
    }
  }
}
