/**
 * The fixed 28-byte IKE header (RFC 7296 §3.1).
 *
 *                      1                   2                   3
 *  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |                       IKE SA Initiator's SPI                  |
 * |                                                               |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |                       IKE SA Responder's SPI                  |
 * |                                                               |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |  Next Payload | MjVer | MnVer | Exchange Type |     Flags     |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |                          Message ID                           |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |                            Length                             |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *
 * Flags: bit 3 (0x08) Initiator, bit 4 (0x10) Version, bit 5 (0x20) Response; the other bits are
 * reserved: cleared when sending and ignored (dropped) on receipt.
 */
import { Reader, Writer } from '../../common/bytes.ts';
import { HeaderFlag } from '../constants.ts';
import { take } from './payloads.ts';
import type { IkeHeader } from './types.ts';

export const IKE_HEADER_LEN = 28;

/** Byte offset of the Length field inside the header. */
export const IKE_HEADER_LENGTH_OFFSET = 24;

/** Flag bits defined by RFC 7296; everything else is reserved. */
export const HEADER_FLAG_MASK = HeaderFlag.INITIATOR | HeaderFlag.VERSION | HeaderFlag.RESPONSE;

const SPI_LEN = 8;

/**
 * Reads the IKE header at the start of `buf`. Checks only that 28 bytes are present; the
 * caller compares `length` with the datagram and looks at the version. Reserved flag bits are
 * dropped. Throws ParseError.
 */
export function decodeHeader(buf: Buffer): IkeHeader {
  const r = new Reader(buf, 0, buf.length);
  r.need(IKE_HEADER_LEN, 'IKE header');
  return {
    spiI: take(r, SPI_LEN),
    spiR: take(r, SPI_LEN),
    nextPayload: r.u8(),
    version: r.u8(),
    exchange: r.u8(),
    flags: r.u8() & HEADER_FLAG_MASK,
    messageId: r.u32(),
    length: r.u32(),
  };
}

/** Writes the 28 header bytes, taking `length` and `nextPayload` from `h` as they are. */
export function encodeHeader(h: IkeHeader, w: Writer): void {
  writeHeaderFields(w, h, h.nextPayload, h.length);
}

/** Shared by encodeHeader and the message encoder (which patches the length afterwards). */
export function writeHeaderFields(
  w: Writer,
  h: Omit<IkeHeader, 'length' | 'nextPayload'>,
  nextPayload: number,
  length: number,
): void {
  if (h.spiI.length !== SPI_LEN || h.spiR.length !== SPI_LEN) {
    throw new RangeError(`IKE SPIs must be ${SPI_LEN} bytes (got ${h.spiI.length} and ${h.spiR.length})`);
  }
  w.bytes(h.spiI);
  w.bytes(h.spiR);
  w.u8(nextPayload);
  w.u8(h.version);
  w.u8(h.exchange);
  w.u8(h.flags & HEADER_FLAG_MASK);
  w.u32(h.messageId);
  w.u32(length);
}
