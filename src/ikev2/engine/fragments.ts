/**
 * IKE fragmentation (RFC 7383): how large our fragments may be, and the reassembly of the peer's.
 *
 * Sending: a message protected by SK whose IP datagram would exceed the fragment size is split into
 * SKF fragments, each encrypted on its own (IkeCipher.sealFragments). The fragment size is the
 * whole IP datagram, as strongSwan's `charon.fragment_size`: the IP and UDP headers and, on the
 * NAT-T port, the non-ESP marker come off it.
 *
 * Receiving: each fragment is decrypted and its ICV checked before it is kept. One message is
 * reassembled per IKE SA and direction (the peer's request, the response to ours), the one with the
 * message ID the SA expects; its state exists only while fragments arrive and is bounded in fragments,
 * bytes, time and, over all SAs, memory. Every fragment dropped is counted with its reason.
 */
import { IKE_PORT } from '../constants.ts';

/** RFC 7383 limits on received fragment sets. */
export interface FragmentLimits {
  /** Most fragments one message may have (strongSwan: 255). */
  maxFragments: number;
  /** Most decrypted bytes one reassembled message may have. */
  maxBytes: number;
  /** An incomplete set is dropped this long after its first fragment arrived (ms). */
  timeoutMs: number;
  /** Decrypted fragment bytes held over all IKE SAs; fragments beyond are dropped. */
  memoryBytes: number;
}

export const DEFAULT_FRAGMENT_LIMITS: FragmentLimits = Object.freeze({
  maxFragments: 255,
  maxBytes: 65535,
  timeoutMs: 30_000,
  memoryBytes: 64 * 1024 * 1024,
});

/** strongSwan's `charon.fragment_size` default: 1280 bytes of IP for IPv4 and IPv6. */
export const DEFAULT_FRAGMENT_SIZE = 1280;
/** What `fragment_size = 0` means per family (strongSwan: a lower value for IPv4). */
export const FAMILY_FRAGMENT_SIZE = { 4: 576, 6: 1280 } as const;

const IPV4_HEADER = 20;
const IPV6_HEADER = 40;
const UDP_HEADER = 8;
const NON_ESP_MARKER_LEN = 4;

/**
 * The IP datagram size for fragments to a peer of `family`, as strongSwan 6 reads its settings: the
 * family's own size when set (non-zero), else `fragmentSize`, else the family default; then at most
 * `transportMax` (the largest datagram the transport can send).
 */
export function fragmentSizeFor(family: 4 | 6, fragmentSize: number, perFamily: number | undefined, transportMax?: number): number {
  const size = perFamily || fragmentSize || FAMILY_FRAGMENT_SIZE[family];
  return transportMax !== undefined && transportMax > 0 ? Math.min(size, transportMax) : size;
}

/**
 * The largest IKE message (UDP payload without the non-ESP marker) that fits an IP datagram of
 * `ipSize` bytes between these ports. The marker is on whenever neither port is 500 (RFC 3948).
 */
export function ikeBudget(ipSize: number, family: 4 | 6, localPort: number, remotePort: number): number {
  let b = ipSize - (family === 4 ? IPV4_HEADER : IPV6_HEADER) - UDP_HEADER;
  if (localPort !== IKE_PORT && remotePort !== IKE_PORT) b -= NON_ESP_MARKER_LEN;
  return Math.max(1, b);
}

/** Why a received fragment was dropped (the label of `vpp_iked_ike_fragments_dropped_total`). */
export type FragmentDrop =
  | 'unknown_sa'
  | 'not_negotiated'
  | 'unexpected'
  | 'invalid'
  | 'duplicate'
  | 'stale_total'
  | 'too_many'
  | 'too_big'
  | 'superseded'
  | 'timeout'
  | 'memory'
  | 'busy';

/** What adding an authenticated fragment did. */
export type AddResult =
  | { kind: 'more' }
  | { kind: 'done'; firstType: number; plain: Buffer }
  | { kind: 'drop'; reason: FragmentDrop; discarded: number };

/** One message under reassembly: the decrypted share of each fragment, by fragment number. */
export class Reassembly {
  readonly mid: number;
  readonly total: number;
  readonly startedAt: number;
  /** Type of the first inner payload, from fragment 1 (-1 until it arrives). */
  firstType = -1;
  readonly parts: (Buffer | undefined)[];
  count = 0;
  bytes = 0;

  constructor(mid: number, total: number, now: number) {
    this.mid = mid;
    this.total = total;
    this.startedAt = now;
    this.parts = new Array<Buffer | undefined>(total);
  }

  /**
   * Whether a fragment can be dropped before it is decrypted: its number is out of range, its set
   * has more fragments than allowed, fewer fragments than the set under way (RFC 7383 §2.6: the
   * sender does not shrink its fragments, so such a fragment is stale), or it is a duplicate.
   * Nothing changes here; a fragment that passes is decrypted and then add()ed.
   */
  static precheck(r: Reassembly | undefined, mid: number, num: number, total: number, limits: FragmentLimits): FragmentDrop | undefined {
    if (num < 1 || num > total) return 'invalid';
    if (total > limits.maxFragments) return 'too_many';
    if (!r || r.mid !== mid) return undefined;
    if (total < r.total) return 'stale_total';
    if (total === r.total && r.parts[num - 1] !== undefined) return 'duplicate';
    return undefined;
  }

  /** Store an authenticated fragment's plaintext (precheck passed). */
  add(num: number, innerType: number, plain: Buffer, limits: FragmentLimits): AddResult {
    if (this.parts[num - 1] !== undefined) return { kind: 'drop', reason: 'duplicate', discarded: 1 };
    if (this.bytes + plain.length > limits.maxBytes) return { kind: 'drop', reason: 'too_big', discarded: this.count + 1 };
    this.parts[num - 1] = plain;
    this.count++;
    this.bytes += plain.length;
    if (num === 1) this.firstType = innerType;
    if (this.count < this.total) return { kind: 'more' };
    return { kind: 'done', firstType: this.firstType, plain: Buffer.concat(this.parts as Buffer[], this.bytes) };
  }
}
