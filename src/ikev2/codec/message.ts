/**
 * Whole IKEv2 messages: the header followed by a chain of payloads linked by their Next Payload
 * fields (RFC 7296 §3.2). The SK/SKF payload, if present, is the last one and its Next Payload
 * names the first payload inside it (RFC 7296 §3.14, RFC 7383 §2.5); its body stays opaque here.
 *
 * Decoding throws ParseError (with the byte offset) for every malformed input and never any other
 * exception type. Unknown payload types are handled as RFC 7296 §2.5 says: skipped when the critical
 * bit is clear, reported in `unsupportedCritical` when it is set.
 */
import { ParseError, Reader, Writer } from '../../common/bytes.ts';
import { Limits, PayloadType, payloadName } from '../constants.ts';
import { decodeHeader, IKE_HEADER_LEN, IKE_HEADER_LENGTH_OFFSET, writeHeaderFields } from './header.ts';
import {
  CRITICAL_BIT,
  decodePayloadBody,
  encodePayloadBody,
  GENERIC_HEADER_LEN,
  isKnownPayloadType,
} from './payloads.ts';
import type { DecodedMessage, IkeHeader, Payload, UnknownPayload } from './types.ts';

export interface PayloadChain {
  payloads: Payload[];
  unknown: UnknownPayload[];
  unsupportedCritical: number[];
}

/** Major version this codec decodes (the high nibble of the header's version byte). */
export const IKE_MAJOR_VERSION = 2;

function decodeChain(buf: Buffer, firstType: number, start: number, end: number, outer: boolean): PayloadChain {
  const r = new Reader(buf, start, end);
  const payloads: Payload[] = [];
  const unknown: UnknownPayload[] = [];
  const unsupportedCritical: number[] = [];
  let type = firstType;
  let count = 0;
  while (type !== PayloadType.NONE) {
    const at = r.pos;
    if (at === end) throw new ParseError(`message ends where payload ${payloadName(type)} should start`, at);
    if (++count > Limits.MAX_PAYLOADS) throw new ParseError(`more than ${Limits.MAX_PAYLOADS} payloads`, at);
    if (end - at < GENERIC_HEADER_LEN) {
      throw new ParseError(`truncated ${payloadName(type)} payload header: ${end - at} bytes left`, at);
    }
    const next = r.u8();
    const critical = (r.u8() & CRITICAL_BIT) !== 0;
    const len = r.u16();
    if (len < GENERIC_HEADER_LEN) {
      throw new ParseError(`${payloadName(type)} payload length ${len} < ${GENERIC_HEADER_LEN}`, at + 2);
    }
    if (len > end - at) {
      throw new ParseError(`${payloadName(type)} payload length ${len} exceeds the ${end - at} bytes left`, at + 2);
    }
    const body = new Reader(buf, at + GENERIC_HEADER_LEN, at + len);
    r.pos = at + len;

    if (type === PayloadType.SK || type === PayloadType.SKF) {
      if (!outer) throw new ParseError(`${payloadName(type)} payload inside an encrypted payload`, at);
      payloads.push(decodePayloadBody(type, critical, next, at, body)!);
      // Its Next Payload is the first inner payload, so the outer chain ends here.
      if (r.pos !== end) throw new ParseError(`${payloadName(type)} payload is not the last payload`, r.pos);
      return { payloads, unknown, unsupportedCritical };
    }
    if (isKnownPayloadType(type)) {
      payloads.push(decodePayloadBody(type, critical, next, at, body)!);
    } else if (critical) {
      unsupportedCritical.push(type);
    } else {
      unknown.push({ type, critical, data: body.bytes(body.remaining) });
    }
    type = next;
  }
  if (r.pos !== end) throw new ParseError(`${end - r.pos} bytes after the last payload`, r.pos);
  return { payloads, unknown, unsupportedCritical };
}

/**
 * Decodes a payload chain that starts with a payload of type `firstType` at `start` and must
 * end exactly at `end` — the decrypted contents of an SK payload or of reassembled SKF
 * fragments. An SK or SKF payload inside is an error. Throws ParseError.
 */
export function decodePayloadChain(buf: Buffer, firstType: number, start: number, end: number): PayloadChain {
  return decodeChain(buf, firstType, start, end, false);
}

/**
 * Decodes one IKE message (a whole UDP payload without the non-ESP marker). The header's Length
 * must equal the buffer length. For a major version other than 2 only the header is decoded
 * (payloads empty), so the caller can answer INVALID_MAJOR_VERSION. Throws ParseError.
 */
export function decodeMessage(buf: Buffer): DecodedMessage {
  const header = decodeHeader(buf);
  if (header.length !== buf.length) {
    throw new ParseError(`header length ${header.length} but message has ${buf.length} bytes`, IKE_HEADER_LENGTH_OFFSET);
  }
  if (header.length > Limits.MAX_MESSAGE) {
    throw new ParseError(`message of ${header.length} bytes exceeds ${Limits.MAX_MESSAGE}`, IKE_HEADER_LENGTH_OFFSET);
  }
  if (header.version >> 4 !== IKE_MAJOR_VERSION) {
    return { header, payloads: [], unknown: [], unsupportedCritical: [] };
  }
  const chain = decodeChain(buf, header.nextPayload, IKE_HEADER_LEN, buf.length, true);
  return { header, payloads: chain.payloads, unknown: chain.unknown, unsupportedCritical: chain.unsupportedCritical };
}

function writeChain(payloads: Payload[], w: Writer): void {
  const n = payloads.length;
  for (let i = 0; i < n; i++) {
    const p = payloads[i]!;
    let next: number;
    if (p.type === PayloadType.SK || p.type === PayloadType.SKF) {
      if (i !== n - 1) throw new RangeError(`${payloadName(p.type)} payload must be the last payload`);
      next = p.innerType;
    } else {
      next = i === n - 1 ? PayloadType.NONE : payloads[i + 1]!.type;
    }
    const at = w.length;
    w.u8(next).u8(p.critical ? CRITICAL_BIT : 0).u16(0);
    encodePayloadBody(p, w);
    const len = w.length - at;
    if (len > 0xffff) throw new RangeError(`${payloadName(p.type)} payload of ${len} bytes exceeds 65535`);
    w.patchU16(at + 2, len);
  }
}

/**
 * Encodes a payload chain (for instance the plaintext of an SK payload). `firstType` is what the
 * enclosing header or SK payload puts in its Next Payload field (0 for an empty chain).
 */
export function encodePayloadChain(payloads: Payload[]): { firstType: number; bytes: Buffer } {
  const w = new Writer(1024);
  writeChain(payloads, w);
  return { firstType: payloads.length > 0 ? payloads[0]!.type : PayloadType.NONE, bytes: w.finish() };
}

/**
 * Encodes a whole message; Length and Next Payload of the header are computed. SK and SKF
 * payloads are written as generic header + body (IV || ciphertext || ICV), with Next Payload =
 * innerType. Throws RangeError for values that do not fit their fields.
 */
export function encodeMessage(header: Omit<IkeHeader, 'length' | 'nextPayload'>, payloads: Payload[]): Buffer {
  const w = new Writer(1024);
  writeHeaderFields(w, header, payloads.length > 0 ? payloads[0]!.type : PayloadType.NONE, 0);
  writeChain(payloads, w);
  if (w.length > Limits.MAX_MESSAGE) throw new RangeError(`message of ${w.length} bytes exceeds ${Limits.MAX_MESSAGE}`);
  w.patchU32(IKE_HEADER_LENGTH_OFFSET, w.length);
  return w.finish();
}
