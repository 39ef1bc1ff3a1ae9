/**
 * What a UDP datagram received on an IKE socket is (RFC 3948 §2.2, RFC 7296 §2.23).
 *
 * On the NAT-T port (4500, and whenever neither side uses port 500) IKE messages carry a
 * four-byte zero "non-ESP marker" in front, so that they can share the port with UDP-encapsulated
 * ESP, whose first four bytes are a non-zero SPI. A single 0xFF byte is a NAT-keepalive.
 * On port 500 datagrams are plain IKE messages.
 */
import { NON_ESP_MARKER } from '../ikev2/constants.ts';
import { IKE_HEADER_LEN } from '../ikev2/codec/header.ts';

export type Datagram =
  | { kind: 'ike'; ike: Buffer }
  | { kind: 'keepalive' }
  | { kind: 'esp' }
  | { kind: 'invalid'; reason: string };

const MARKER_LEN = 4;
const KEEPALIVE_BYTE = 0xff;

/**
 * Classifies `data`. `markerExpected` is true on the NAT-T port. For IKE, `ike` is a view of
 * `data` without the marker (no copy); it is at least as long as an IKE header.
 */
export function classifyDatagram(data: Buffer, markerExpected: boolean): Datagram {
  if (!markerExpected) {
    if (data.length < IKE_HEADER_LEN) {
      return { kind: 'invalid', reason: `${data.length} bytes, shorter than an IKE header` };
    }
    return { kind: 'ike', ike: data };
  }
  if (data.length === 1 && data[0] === KEEPALIVE_BYTE) return { kind: 'keepalive' };
  if (data.length < MARKER_LEN) {
    return { kind: 'invalid', reason: `${data.length} bytes, shorter than a non-ESP marker or SPI` };
  }
  if (data[0] !== 0 || data[1] !== 0 || data[2] !== 0 || data[3] !== 0) return { kind: 'esp' };
  if (data.length - MARKER_LEN < IKE_HEADER_LEN) {
    return { kind: 'invalid', reason: `${data.length - MARKER_LEN} bytes after the marker, shorter than an IKE header` };
  }
  return { kind: 'ike', ike: data.subarray(MARKER_LEN) };
}

/** `ike` with the four-byte non-ESP marker in front, for sending on the NAT-T port. */
export function addNonEspMarker(ike: Buffer): Buffer {
  const out = Buffer.allocUnsafe(MARKER_LEN + ike.length);
  NON_ESP_MARKER.copy(out, 0);
  ike.copy(out, MARKER_LEN);
  return out;
}
