/**
 * What the VPP emulator's modules share: the records its tables hold, the context a handler answers
 * through, the emulator's options, and small helpers (VPP's index pools, address text).
 */

import type { Address, FibPath, Punt, Tunnel } from '../defs.generated.ts';
import { TunnelMode } from '../defs.generated.ts';
import { apiAddressText, AF_IP6 } from '../address.ts';

export type Obj = Record<string, unknown>;
export const U32_MAX = 0xffffffff;

export const MODE_P2P = TunnelMode.TUNNEL_API_MODE_P2P;
export const MODE_MP = TunnelMode.TUNNEL_API_MODE_MP;

/** How a handler answers; provided by the server for each request. */
export interface EmuCtx {
  /** Sends the request's reply (the server adds _vl_msg_id and context). */
  reply(fields: Obj): void;
  /** Sends one details message of a dump. */
  details(fields: Obj): void;
  /** The registration the request names in client_index (VPP routes replies by it). */
  readonly clientIndex: number;
  /** Log a line the way VPP logs (clib_warning). */
  warn(msg: string): void;
  /**
   * VPP dies on this request (what VPP 26.10 does, not what it should): no reply; every connection
   * drops and the emulator starts over with empty tables, as a supervised VPP that restarts.
   */
  crash(why: string): void;
}

export interface EmuInterface {
  swIfIndex: number;
  name: string;
  devType: string;
  adminUp: boolean;
  linkUp: boolean;
  mtu: number;
  mac: Buffer;
  /** Set for ipsec interfaces. */
  ipsec?: { instance: number; mode: number };
  /** sw_if_index whose address this interface borrows (unnumbered), if any. */
  unnumberedTo?: number;
  /** FIB table ids the interface is bound to. */
  table4: number;
  table6: number;
  /** Its own IP addresses as prefixes ("192.0.2.2/24"); an unnumbered interface has none. */
  addresses: string[];
}

export interface EmuSa {
  id: number;
  spi: number;
  protocol: number;
  crypto: number;
  cryptoKey: Buffer;
  integ: number;
  integKey: Buffer;
  flags: number;
  tunnel: Tunnel | undefined;
  /** The salt exactly as the request carried it (VPP stores the network-order word). */
  saltWire: number;
  udpSrc: number;
  udpDst: number;
  window: number;
  /** VPP's SA lock count: 1 from the add, +1 per tunnel protection or SPD policy using it. */
  locks: number;
  statIndex: number;
  /** Deleted by the API while still locked by a user. */
  deleteRequested: boolean;
}

export interface EmuProtection {
  swIfIndex: number;
  nh: Address;
  saOut: number;
  saIn: number[];
}

export interface EmuPolicy {
  spdId: number;
  priority: number;
  isOutbound: boolean;
  isIpv6: boolean;
  saId: number;
  policy: number;
  protocol: number;
  raddrStart: string;
  raddrStop: string;
  laddrStart: string;
  laddrStop: string;
  rportStart: number;
  rportStop: number;
  lportStart: number;
  lportStop: number;
  /** VPP policy type index (IPSEC_SPD_POLICY_*). */
  type: number;
  statIndex: number;
}

export interface EmuRoute {
  tableId: number;
  isIp6: boolean;
  prefix: string;
  len: number;
  paths: FibPath[];
  statsIndex: number;
}

export interface EmuPuntReg {
  punt: Punt;
  pathname: string;
  key: string;
}

export interface EmuOptions {
  /**
   * Interfaces that exist besides local0 (like NICs VPP was started with), up. Default
   * ['host-eth0']. Names starting with "loop" are loopbacks, the others af_packet host interfaces.
   */
  interfaces?: string[];
  /** Addresses of those interfaces, by name (prefixes, "192.0.2.2/24", "2001:db8::2/64"). */
  addresses?: Readonly<Record<string, readonly string[]>>;
  /** VPP's punt socket path (`punt { socket … }`); unset = punt sockets not configured. */
  puntSocket?: string;
  /** Version string show_version reports. */
  version?: string;
  /** Process id reported in control_ping_reply. */
  pid?: number;
}

/** A pool with VPP's index reuse: freed indices are handed out again, most recently freed first. */
export class IndexPool {
  private next: number;
  private free: number[] = [];
  constructor(first = 0) {
    this.next = first;
  }
  get(): number {
    return this.free.pop() ?? this.next++;
  }
  put(i: number): void {
    this.free.push(i);
  }
}

/** Text of an address from a request; a malformed one reads as the zero address of its family. */
export function addrText(a: Address): string {
  return apiAddressText(a, a.af === AF_IP6 ? '::' : '0.0.0.0');
}
