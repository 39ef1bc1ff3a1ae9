/**
 * Frames on VPP's punt sockets (pure: no I/O).
 *
 * When VPP owns the NIC, IKE reaches the daemon through a punt socket: the daemon registers its
 * unix datagram socket (punt_socket_register, header_version 1) for UDP/500 (an L4 punt) and for
 * the exception reasons ipsec4-spi-o-udp-0 / ipsec6-spi-o-udp-0 (IKE on UDP/4500), and answers by
 * writing complete IP packets to VPP's own punt socket.
 *
 * VPP → daemon, one datagram per packet:
 *   8-byte descriptor (punt_packetdesc_t, header version 1): u32 sw_if_index (the RX interface),
 *   u32 action (0), both in VPP's host byte order (little-endian on x86-64 and arm64);
 *   then the frame from its L2 header: a 14-byte Ethernet header (optionally 802.1Q/802.1ad tags)
 *   on ethernet interfaces, then IPv4 or IPv6, UDP, payload. IP fragments arrive reassembled; the
 *   UDP checksum may be a partial (offload) sum, so it is not checked. On port 4500 the non-ESP
 *   marker is still in the payload: src/net/framing.ts deals with it.
 *
 * daemon → VPP:
 *   the same descriptor with action 1 (IPv4 routed) or 2 (IPv6 routed) and the sw_if_index whose
 *   FIB does the lookup, then a complete IP packet (no L2 header) with a valid IPv4 header checksum
 *   and a UDP checksum. One injected packet must fit one VPP buffer: 2048 bytes of IP by default.
 */
import { formatIp, parseIp } from '../common/addr.ts';

/** punt_socket_register.header_version this module reads and writes. */
export const PUNT_HEADER_VERSION = 1;
/** Size of the descriptor (punt_packetdesc_t) in front of every packet. */
export const PUNT_DESC_LEN = 8;
/** Largest IP packet VPP takes from its punt socket with default buffers (buffers { default data-size 2048 }). */
export const PUNT_MAX_IP_PACKET = 2048;

/** punt_packetdesc_t.action */
export const PuntAction = { L2: 0, IP4_ROUTED: 1, IP6_ROUTED: 2 } as const;

const ETH_HEADER_LEN = 14;
const ETHERTYPE_IPV4 = 0x0800;
const ETHERTYPE_IPV6 = 0x86dd;
const ETHERTYPE_VLAN = 0x8100;
const ETHERTYPE_QINQ = 0x88a8;
const IPV4_MIN_HEADER = 20;
const IPV6_HEADER = 40;
const UDP_HEADER = 8;
const PROTO_UDP = 17;
const IPV6_HOP_BY_HOP = 0;
const IPV6_ROUTING = 43;
const IPV6_FRAGMENT = 44;
const IPV6_NO_NEXT = 59;
const IPV6_DEST_OPTS = 60;
const DEFAULT_TTL = 64;

/** A UDP datagram VPP punted to us. */
export interface PuntPacket {
  /** The interface the packet came in on (descriptor). */
  swIfIndex: number;
  /** The descriptor's action field (VPP writes 0). */
  action?: number;
  family: 4 | 6;
  /** Canonical address text (dotted quad, RFC 5952 IPv6). */
  src: string;
  dst: string;
  srcPort: number;
  dstPort: number;
  /** The UDP payload: a view into the received frame, not a copy. */
  payload: Buffer;
}

export type PuntParseResult = { ok: true; packet: PuntPacket } | { ok: false; reason: string };

export interface PuntParseOptions {
  /** The header_version the socket was registered with (default 1, the only one known). */
  headerVersion?: number;
  /**
   * What comes after the descriptor: 'ethernet' (default: VPP's host-interface, DPDK and other
   * ethernet interfaces) or 'ip' (interfaces without an L2 header).
   */
  link?: 'ethernet' | 'ip';
}

function drop(reason: string): PuntParseResult {
  return { ok: false, reason };
}

/**
 * Parses one datagram read from our punt socket. Never throws: anything that is not a complete,
 * unfragmented UDP datagram over IPv4 or IPv6 comes back as `{ ok: false, reason }`.
 */
export function parsePuntFrame(frame: Uint8Array, opts: PuntParseOptions = {}): PuntParseResult {
  const version = opts.headerVersion ?? PUNT_HEADER_VERSION;
  if (version !== PUNT_HEADER_VERSION) return drop(`unknown punt descriptor version ${version} (only ${PUNT_HEADER_VERSION} is known)`);
  const b = Buffer.isBuffer(frame) ? frame : Buffer.from(frame.buffer, frame.byteOffset, frame.byteLength);
  if (b.length < PUNT_DESC_LEN) return drop(`truncated: ${b.length} bytes, shorter than the ${PUNT_DESC_LEN}-byte punt descriptor`);
  const swIfIndex = b.readUInt32LE(0);
  const action = b.readUInt32LE(4);

  let off = PUNT_DESC_LEN;
  let family: 4 | 6;
  if ((opts.link ?? 'ethernet') === 'ethernet') {
    if (b.length < off + ETH_HEADER_LEN) return drop(`truncated: ${b.length - off} bytes after the descriptor, shorter than an Ethernet header`);
    let type = b.readUInt16BE(off + 12);
    off += ETH_HEADER_LEN;
    for (let tags = 0; (type === ETHERTYPE_VLAN || type === ETHERTYPE_QINQ) && tags < 2; tags++) {
      if (b.length < off + 4) return drop('truncated: VLAN tag cut short');
      type = b.readUInt16BE(off + 2);
      off += 4;
    }
    if (type === ETHERTYPE_IPV4) family = 4;
    else if (type === ETHERTYPE_IPV6) family = 6;
    else return drop(`not IP: ethertype 0x${type.toString(16).padStart(4, '0')}`);
    if (b.length > off && b[off]! >> 4 !== family) return drop(`ethertype says IPv${family} but the IP version is ${b[off]! >> 4}`);
  } else {
    if (b.length <= off) return drop('truncated: no IP header after the descriptor');
    const v = b[off]! >> 4;
    if (v !== 4 && v !== 6) return drop(`not IP: version ${v}`);
    family = v;
  }
  return family === 4 ? parseIPv4(b, off, swIfIndex, action) : parseIPv6(b, off, swIfIndex, action);
}

function parseIPv4(b: Buffer, ip: number, swIfIndex: number, action: number): PuntParseResult {
  const avail = b.length - ip;
  if (avail < IPV4_MIN_HEADER) return drop(`truncated: ${avail} bytes, shorter than an IPv4 header`);
  const ihl = (b[ip]! & 0x0f) * 4;
  if (ihl < IPV4_MIN_HEADER) return drop(`wrong IPv4 header length ${ihl} (at least ${IPV4_MIN_HEADER})`);
  if (ihl > avail) return drop(`truncated: IPv4 header of ${ihl} bytes, ${avail} present`);
  const total = b.readUInt16BE(ip + 2);
  if (total < ihl) return drop(`wrong IPv4 total length ${total}, shorter than its ${ihl}-byte header`);
  // Frames can carry padding after the packet (Ethernet minimum size); fewer bytes than the total
  // length means the packet was cut.
  if (total > avail) return drop(`truncated: IPv4 total length ${total}, ${avail} bytes present`);
  const frag = b.readUInt16BE(ip + 6);
  if ((frag & 0x3fff) !== 0) {
    return drop(`IPv4 fragment (offset ${(frag & 0x1fff) * 8}${frag & 0x2000 ? ', more fragments' : ''})`);
  }
  const proto = b[ip + 9]!;
  if (proto !== PROTO_UDP) return drop(`not UDP: IP protocol ${proto}`);
  return parseUdp(b, ip + ihl, ip + total, 4, b.subarray(ip + 12, ip + 16), b.subarray(ip + 16, ip + 20), swIfIndex, action);
}

function parseIPv6(b: Buffer, ip: number, swIfIndex: number, action: number): PuntParseResult {
  const avail = b.length - ip;
  if (avail < IPV6_HEADER) return drop(`truncated: ${avail} bytes, shorter than an IPv6 header`);
  const plen = b.readUInt16BE(ip + 4);
  if (plen === 0) return drop('wrong IPv6 payload length 0 (jumbograms are not supported)');
  const end = ip + IPV6_HEADER + plen;
  if (end > b.length) return drop(`truncated: IPv6 payload length ${plen}, ${avail - IPV6_HEADER} bytes present`);
  let next = b[ip + 6]!;
  let off = ip + IPV6_HEADER;
  // Extension headers that may precede UDP; a fragment header means the packet is a fragment.
  for (let n = 0; n < 8; n++) {
    if (next === PROTO_UDP) {
      return parseUdp(b, off, end, 6, b.subarray(ip + 8, ip + 24), b.subarray(ip + 24, ip + 40), swIfIndex, action);
    }
    if (next === IPV6_FRAGMENT) {
      if (end - off < 8) return drop('truncated: IPv6 fragment header cut short');
      const fo = b.readUInt16BE(off + 2);
      return drop(`IPv6 fragment (offset ${fo & 0xfff8}${fo & 1 ? ', more fragments' : ''})`);
    }
    if (next === IPV6_HOP_BY_HOP || next === IPV6_ROUTING || next === IPV6_DEST_OPTS) {
      if (end - off < 8) return drop(`truncated: IPv6 extension header ${next} cut short`);
      const len = (b[off + 1]! + 1) * 8;
      if (off + len > end) return drop(`truncated: IPv6 extension header ${next} of ${len} bytes overruns the payload`);
      next = b[off]!;
      off += len;
      continue;
    }
    if (next === IPV6_NO_NEXT) return drop('not UDP: IPv6 no next header');
    return drop(`not UDP: IPv6 next header ${next}`);
  }
  return drop('not UDP: too many IPv6 extension headers');
}

function parseUdp(
  b: Buffer,
  udp: number,
  end: number,
  family: 4 | 6,
  src: Buffer,
  dst: Buffer,
  swIfIndex: number,
  action: number,
): PuntParseResult {
  const room = end - udp;
  if (room < UDP_HEADER) return drop(`truncated: ${room} bytes of IP payload, shorter than a UDP header`);
  const ulen = b.readUInt16BE(udp + 4);
  if (ulen < UDP_HEADER) return drop(`wrong UDP length ${ulen} (at least ${UDP_HEADER})`);
  if (ulen !== room) return drop(`wrong UDP length ${ulen}: the IP packet carries ${room} bytes of UDP`);
  return {
    ok: true,
    packet: {
      swIfIndex,
      action,
      family,
      src: formatIp(src),
      dst: formatIp(dst),
      srcPort: b.readUInt16BE(udp),
      dstPort: b.readUInt16BE(udp + 2),
      payload: b.subarray(udp + UDP_HEADER, end),
    },
  };
}

// ---------------------------------------------------------------------------------------------
// building

/** A UDP datagram to hand to VPP for routing. */
export interface PuntSend {
  /** Interface whose FIB routes the packet (e.g. the sw_if_index the request came in on). */
  swIfIndex: number;
  src: string;
  dst: string;
  srcPort: number;
  dstPort: number;
  payload: Uint8Array;
  /** TTL / hop limit (default 64). */
  ttl?: number;
  /**
   * IPv4 identification (default 0). The packet is sent without DF so that VPP can fragment it
   * on a smaller link; use a different value per packet (a counter) when that can happen.
   */
  ipId?: number;
  /** Largest IP packet to build (default 2048, one VPP buffer). */
  maxIpBytes?: number;
}

export type PuntBuildResult = { ok: true; frame: Buffer } | { ok: false; reason: string };

function refuse(reason: string): PuntBuildResult {
  return { ok: false, reason };
}

function isPort(p: number): boolean {
  return Number.isInteger(p) && p >= 0 && p <= 0xffff;
}

/** One's-complement sum of 16-bit big-endian words of b[from, to), added to `sum` (not folded). */
function sum16(b: Buffer, from: number, to: number, sum: number): number {
  let i = from;
  for (; i + 1 < to; i += 2) sum += (b[i]! << 8) | b[i + 1]!;
  if (i < to) sum += b[i]! << 8;
  return sum;
}

function fold(sum: number): number {
  while (sum > 0xffff) sum = (sum & 0xffff) + Math.floor(sum / 0x10000);
  return sum;
}

/**
 * Builds the datagram to write to VPP's punt socket: descriptor (action IPv4/IPv6 routed, the
 * given sw_if_index) and a complete IP + UDP packet with its checksums. Refuses (without throwing)
 * bad addresses or ports and packets larger than `maxIpBytes`.
 */
export function buildPuntFrame(s: PuntSend): PuntBuildResult {
  const src = parseIp(s.src);
  const dst = parseIp(s.dst);
  if (!src) return refuse(`source ${s.src} is not an IP address`);
  if (!dst) return refuse(`destination ${s.dst} is not an IP address`);
  if (src.family !== dst.family) return refuse(`source ${s.src} and destination ${s.dst} are of different families`);
  if (!isPort(s.srcPort) || !isPort(s.dstPort)) return refuse(`ports ${s.srcPort} → ${s.dstPort} are not 0..65535`);
  if (!Number.isInteger(s.swIfIndex) || s.swIfIndex < 0 || s.swIfIndex > 0xffffffff) return refuse(`sw_if_index ${s.swIfIndex} is not a u32`);
  const ttl = s.ttl ?? DEFAULT_TTL;
  if (!Number.isInteger(ttl) || ttl < 1 || ttl > 255) return refuse(`TTL ${ttl} is not 1..255`);
  const ipId = s.ipId ?? 0;
  if (!Number.isInteger(ipId) || ipId < 0 || ipId > 0xffff) return refuse(`IPv4 identification ${ipId} is not 0..65535`);
  const max = Math.min(s.maxIpBytes ?? PUNT_MAX_IP_PACKET, 0xffff);
  const ipHeader = src.family === 4 ? IPV4_MIN_HEADER : IPV6_HEADER;
  const udpLen = UDP_HEADER + s.payload.length;
  const ipLen = ipHeader + udpLen;
  if (ipLen > max) {
    return refuse(`IP packet of ${ipLen} bytes exceeds the ${max} bytes VPP accepts from its punt socket (use IKE fragmentation)`);
  }

  const out = Buffer.alloc(PUNT_DESC_LEN + ipLen);
  out.writeUInt32LE(s.swIfIndex, 0);
  out.writeUInt32LE(src.family === 4 ? PuntAction.IP4_ROUTED : PuntAction.IP6_ROUTED, 4);
  const ip = PUNT_DESC_LEN;
  const udp = ip + ipHeader;
  let pseudo: number;
  if (src.family === 4) {
    out[ip] = 0x45;
    out.writeUInt16BE(ipLen, ip + 2);
    out.writeUInt16BE(ipId, ip + 4);
    out[ip + 8] = ttl;
    out[ip + 9] = PROTO_UDP;
    src.bytes.copy(out, ip + 12);
    dst.bytes.copy(out, ip + 16);
    out.writeUInt16BE(~fold(sum16(out, ip, ip + IPV4_MIN_HEADER, 0)) & 0xffff, ip + 10);
    pseudo = sum16(out, ip + 12, ip + 20, 0) + PROTO_UDP + udpLen;
  } else {
    out.writeUInt32BE(0x60000000, ip);
    out.writeUInt16BE(udpLen, ip + 4);
    out[ip + 6] = PROTO_UDP;
    out[ip + 7] = ttl;
    src.bytes.copy(out, ip + 8);
    dst.bytes.copy(out, ip + 24);
    pseudo = sum16(out, ip + 8, ip + 40, 0) + PROTO_UDP + udpLen;
  }
  out.writeUInt16BE(s.srcPort, udp);
  out.writeUInt16BE(s.dstPort, udp + 2);
  out.writeUInt16BE(udpLen, udp + 4);
  out.set(s.payload, udp + UDP_HEADER);
  // RFC 768: a computed checksum of zero is sent as all ones (zero means "none", not allowed in IPv6).
  const ck = ~fold(sum16(out, udp, udp + udpLen, pseudo)) & 0xffff;
  out.writeUInt16BE(ck === 0 ? 0xffff : ck, udp + 6);
  return { ok: true, frame: out };
}
