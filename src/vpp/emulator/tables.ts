/**
 * The VPP emulator's tables and message handlers. Each handler mirrors the VPP 26.10 function named
 * in its comment (FDio/vpp at b575ec2c: src/vnet/ipsec/ipsec_api.c, ipsec_sa.c, ipsec_tun.c,
 * ipsec_itf.c, ipsec_spd.c, ipsec_spd_policy.c, src/vnet/interface_api.c, src/vnet/ip/ip_api.c,
 * src/vnet/fib/fib_api.c, src/vnet/ip/punt_api.c, src/vlibmemory/socket_api.c), including the
 * reply codes VPP returns and its quirks (e.g. deleting an SA that a tunnel protection still uses
 * returns 0 and leaves the SA in place until the protection lets go of it).
 *
 * Handlers keep the decoded request objects they are given (the codec returns fresh objects).
 *
 * What is not emulated: packet forwarding, counters (always 0), routes other than those added
 * through the API, and the fast-path SPD variant.
 */

import type {
  Address,
  FibPath,
  IpsecSpdEntryV2,
  Punt,
  Tunnel,
  VppMessageTypes, IpUnnumberedDump, SwInterfaceGetTable } from '../defs.generated.ts';
import { IfStatusFlags, IpsecCryptoAlg as C, IpsecIntegAlg as I, IpsecProto, IpsecSadFlags, IpsecSpdAction, TunnelFlags, TunnelMode } from '../defs.generated.ts';
import { apiAddressText, parseIp, zeroApiAddress, AF_IP4, AF_IP6 } from '../address.ts';
import { VppErr } from '../errors.ts';

type Obj = Record<string, unknown>;
const U32_MAX = 0xffffffff;

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

const IPSEC_PUNT_REASONS = ['ipsec4-spi-o-udp-0', 'ipsec4-no-such-tunnel', 'ipsec6-no-such-tunnel', 'ipsec6-spi-o-udp-0'];

/** IPSEC_SAD_FLAG bits (ipsec_types.api). */
const F_ANTI_REPLAY = IpsecSadFlags.IPSEC_API_SAD_FLAG_USE_ANTI_REPLAY;
const F_TUNNEL = IpsecSadFlags.IPSEC_API_SAD_FLAG_IS_TUNNEL;
const F_TUNNEL_V6 = IpsecSadFlags.IPSEC_API_SAD_FLAG_IS_TUNNEL_V6;
const F_UDP_ENCAP = IpsecSadFlags.IPSEC_API_SAD_FLAG_UDP_ENCAP;
/** Every flag ipsec_sa_flags_decode knows. */
const F_KNOWN = Object.values(IpsecSadFlags).reduce<number>((a, b) => a | b, 0);
const BYPASS = IpsecSpdAction.IPSEC_API_SPD_ACTION_BYPASS;
const RESOLVE = IpsecSpdAction.IPSEC_API_SPD_ACTION_RESOLVE;
const PROTECT = IpsecSpdAction.IPSEC_API_SPD_ACTION_PROTECT;

const ESP = IpsecProto.IPSEC_API_PROTO_ESP;
const AH = IpsecProto.IPSEC_API_PROTO_AH;
const MODE_P2P = TunnelMode.TUNNEL_API_MODE_P2P;
const MODE_MP = TunnelMode.TUNNEL_API_MODE_MP;
const ADMIN_UP = IfStatusFlags.IF_STATUS_API_FLAG_ADMIN_UP;
const LINK_UP = IfStatusFlags.IF_STATUS_API_FLAG_LINK_UP;
const MAX_CRYPTO = Math.max(...Object.values(C));
const MAX_INTEG = Math.max(...Object.values(I));

/** Cipher key lengths VPP's crypto engines accept, by ipsec_crypto_alg (vnet_crypto key checks). */
const CIPHER_KEY_LEN: Readonly<Record<number, number>> = {
  [C.IPSEC_API_CRYPTO_ALG_AES_CBC_128]: 16,
  [C.IPSEC_API_CRYPTO_ALG_AES_CBC_192]: 24,
  [C.IPSEC_API_CRYPTO_ALG_AES_CBC_256]: 32,
  [C.IPSEC_API_CRYPTO_ALG_AES_CTR_128]: 16,
  [C.IPSEC_API_CRYPTO_ALG_AES_CTR_192]: 24,
  [C.IPSEC_API_CRYPTO_ALG_AES_CTR_256]: 32,
  [C.IPSEC_API_CRYPTO_ALG_AES_GCM_128]: 16,
  [C.IPSEC_API_CRYPTO_ALG_AES_GCM_192]: 24,
  [C.IPSEC_API_CRYPTO_ALG_AES_GCM_256]: 32,
  [C.IPSEC_API_CRYPTO_ALG_DES_CBC]: 8,
  [C.IPSEC_API_CRYPTO_ALG_3DES_CBC]: 24,
  [C.IPSEC_API_CRYPTO_ALG_CHACHA20_POLY1305]: 32,
  [C.IPSEC_API_CRYPTO_ALG_AES_NULL_GMAC_128]: 16,
  [C.IPSEC_API_CRYPTO_ALG_AES_NULL_GMAC_192]: 24,
  [C.IPSEC_API_CRYPTO_ALG_AES_NULL_GMAC_256]: 32,
};

/** ipsec_sa_crypto_integ_map in ipsec_sa.c: which (crypto, integ) pairs VPP can run. */
function comboSupported(crypto: number, integ: number): boolean {
  if (crypto === C.IPSEC_API_CRYPTO_ALG_NONE) return true; // with any integ (incl. NONE)
  if (crypto === C.IPSEC_API_CRYPTO_ALG_DES_CBC) return integ === I.IPSEC_API_INTEG_ALG_NONE;
  if (crypto === C.IPSEC_API_CRYPTO_ALG_3DES_CBC || (crypto >= C.IPSEC_API_CRYPTO_ALG_AES_CBC_128 && crypto <= C.IPSEC_API_CRYPTO_ALG_AES_CBC_256)) {
    return true; // 3DES / AES-CBC with any integ
  }
  if (crypto >= C.IPSEC_API_CRYPTO_ALG_AES_CTR_128 && crypto <= C.IPSEC_API_CRYPTO_ALG_AES_CTR_256) {
    return integ !== I.IPSEC_API_INTEG_ALG_MD5_96; // AES-CTR: not with MD5-96
  }
  return integ === I.IPSEC_API_INTEG_ALG_NONE; // AEADs (GCM, ChaCha20, GMAC)
}

function bswap32(v: number): number {
  return (((v & 0xff) << 24) | ((v & 0xff00) << 8) | ((v >>> 8) & 0xff00) | (v >>> 24)) >>> 0;
}

/** A pool with VPP's index reuse: freed indices are handed out again, most recently freed first. */
class IndexPool {
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
function addrText(a: Address): string {
  return apiAddressText(a, a.af === AF_IP6 ? '::' : '0.0.0.0');
}

export class VppEmulatorState {
  readonly interfaces = new Map<number, EmuInterface>();
  readonly sas = new Map<number, EmuSa>();
  /** Key: `${sw_if_index}` for p2p interfaces, `${sw_if_index}|${nh}` for p2mp. */
  readonly protections = new Map<string, EmuProtection>();
  readonly spds = new Map<number, EmuPolicy[]>();
  /** Entries of deleted SPDs: still in VPP's policy pool, still locking their SAs. */
  readonly orphanPolicies: EmuPolicy[] = [];
  /** sw_if_index → spd_id */
  readonly spdBindings = new Map<number, number>();
  /**
   * FIB tables by "4:<id>" / "6:<id>", with whether the API holds its lock on them. A table lives
   * while the API's lock or an interface bound to it holds it (fib_table_lock sources API and
   * INTERFACE); table 0 always.
   */
  readonly tables = new Map<string, { api: boolean }>([
    ['4:0', { api: true }],
    ['6:0', { api: true }],
  ]);
  /** Key: `${4|6}:${table}:${prefix}/${len}` */
  readonly routes = new Map<string, EmuRoute>();
  readonly puntRegs = new Map<string, EmuPuntReg>();
  readonly puntReasons: { id: number; name: string }[];
  /** client_index → pid, for want_interface_events. */
  readonly interfaceEventClients = new Map<number, number>();
  readonly options: Required<Omit<EmuOptions, 'puntSocket' | 'addresses'>> & {
    puntSocket: string | undefined;
    addresses: Readonly<Record<string, readonly string[]>>;
  };

  /** Sends an event to one client registration; set by the server. */
  sendEvent: (clientIndex: number, name: keyof VppMessageTypes, fields: Obj) => void = () => {};
  /** Counts of handled requests by name (for tests and benchmarks). */
  readonly requestCounts = new Map<string, number>();

  private readonly swIfPool = new IndexPool(0);
  private readonly saPool = new IndexPool(0);
  private readonly policyPool = new IndexPool(0);
  /** SPD id → its index in VPP's SPD pool (what ipsec_spd_interface_dump reports). */
  private readonly spdIndex = new Map<number, number>();
  private readonly spdPool = new IndexPool(0);
  private readonly itfInstances = new Set<number>();
  private nextRouteStat = 1;

  constructor(options: EmuOptions = {}) {
    this.options = {
      interfaces: options.interfaces ?? ['host-eth0'],
      addresses: options.addresses ?? {},
      puntSocket: options.puntSocket,
      version: options.version ?? '26.10-rc0~374-gb575ec2c56d',
      pid: options.pid ?? process.pid,
    };
    this.addInterface('local0', 'local');
    for (const n of this.options.interfaces) {
      this.addInterface(n, n.startsWith('loop') ? 'Loopback' : 'af-packet', true, this.options.addresses[n] ?? []);
    }
    this.puntReasons = IPSEC_PUNT_REASONS.map((name, i) => ({ id: i + 1, name }));
  }

  /**
   * Creates an interface (as VPP's startup-config or an operator would). A loopback ("loopN", dev
   * type "Loopback") gets VPP's MAC de:ad:00:00:00:N.
   */
  addInterface(name: string, devType: string, up = false, addresses: readonly string[] = []): EmuInterface {
    const swIfIndex = this.swIfPool.get();
    const loop = /^loop(\d+)$/.exec(name);
    const mac = loop
      ? Buffer.from([0xde, 0xad, 0, 0, 0, Number(loop[1]) & 0xff])
      : Buffer.from([0x02, 0xfe, 0, 0, (swIfIndex >> 8) & 0xff, swIfIndex & 0xff]);
    const i: EmuInterface = { swIfIndex, name, devType, adminUp: up, linkUp: up, mtu: 9000, mac, table4: 0, table6: 0, addresses: [...addresses] };
    this.interfaces.set(swIfIndex, i);
    return i;
  }

  count(name: string): void {
    this.requestCounts.set(name, (this.requestCounts.get(name) ?? 0) + 1);
  }

  // ------------------------------------------------------------------ memclnt / vpe

  /** vl_api_show_version_t_handler (vpe_api.c) */
  show_version(_m: VppMessageTypes['show_version'], ctx: EmuCtx): void {
    ctx.reply({
      retval: 0,
      program: 'vpe',
      version: this.options.version,
      build_date: 'Sat Aug 22 03:00:55 UTC 2026',
      build_directory: '/usr/src/vpp (emulated)',
    });
  }

  /** vl_api_control_ping_t_handler (vlibmemory/vlib_api.c): retval 0 and VPP's pid. */
  control_ping(_m: VppMessageTypes['control_ping'], ctx: EmuCtx): void {
    ctx.reply({ retval: 0, client_index: 0, vpe_pid: this.options.pid });
  }

  // ------------------------------------------------------------------ SAD

  private findSa(id: number): EmuSa | undefined {
    const sa = this.sas.get(id);
    return sa;
  }

  /** Mirrors tunnel_decode() (tunnel_types_api.c); returns a VPP error code or 0. */
  private tunnelDecode(t: Tunnel): number {
    if (t.src.af !== t.dst.af) return VppErr.INVALID_PROTOCOL;
    if (addrText(t.src) === addrText(t.dst)) return VppErr.SAME_SRC_DST;
    if (t.mode !== MODE_P2P && t.mode !== MODE_MP) return VppErr.INVALID_VALUE_2;
    if ((t.flags & ~TunnelFlags.TUNNEL_API_FLAG_TRACK_MTU) !== 0) return VppErr.INVALID_VALUE_2;
    if (!this.tables.has(`${t.dst.af === AF_IP6 ? 6 : 4}:${t.table_id}`)) return VppErr.NO_SUCH_FIB;
    return 0;
  }

  /**
   * vl_api_ipsec_sad_entry_add_v2_t_handler → ipsec_sad_entry_add_v4 (ipsec_api.c) →
   * ipsec_sa_add_and_lock (ipsec_sa.c).
   */
  ipsec_sad_entry_add_v2(m: VppMessageTypes['ipsec_sad_entry_add_v2'], ctx: EmuCtx): void {
    const e = m.entry;
    const fail = (rv: number): void => ctx.reply({ retval: rv, stat_index: U32_MAX });
    // ipsec_proto_decode / ipsec_crypto_algo_decode / ipsec_integ_algo_decode (ipsec_types_api.c)
    if (e.protocol !== ESP && e.protocol !== AH) return fail(VppErr.INVALID_PROTOCOL);
    if (e.crypto_algorithm > MAX_CRYPTO) return fail(VppErr.INVALID_ALGORITHM);
    if (e.integrity_algorithm > MAX_INTEG) return fail(VppErr.INVALID_ALGORITHM);
    let flags = e.flags & F_KNOWN; // ipsec_sa_flags_decode drops unknown bits
    if (flags & F_TUNNEL) {
      const rv = this.tunnelDecode(e.tunnel);
      if (rv) return fail(rv);
    }
    // ipsec_sa_add_and_lock
    if (this.sas.has(e.sad_id)) return fail(VppErr.ENTRY_ALREADY_EXISTS);
    const crypto = e.protocol === AH ? C.IPSEC_API_CRYPTO_ALG_NONE : e.crypto_algorithm;
    if (e.protocol === AH && e.integrity_algorithm === I.IPSEC_API_INTEG_ALG_NONE) return fail(VppErr.UNIMPLEMENTED);
    if (!comboSupported(crypto, e.integrity_algorithm)) return fail(VppErr.UNIMPLEMENTED);
    const ckLen = Math.min(e.crypto_key.length, 128);
    const ikLen = Math.min(e.integrity_key.length, 128);
    // vnet_crypto_ctx_set_cipher_key: a key of length 0 is not set (the SA is added without one);
    // any other length than the algorithm's fails, and ipsec_sa_add_and_lock's failure path then
    // crashes VPP 26.10 (SIGSEGV) instead of answering KEY_LENGTH. Integrity (HMAC) keys may have
    // any length, 0 included.
    if (crypto !== C.IPSEC_API_CRYPTO_ALG_NONE && ckLen !== 0 && CIPHER_KEY_LEN[crypto] !== ckLen) {
      return ctx.crash(`invalid cipher key: len ${ckLen} expected ${CIPHER_KEY_LEN[crypto]}; SIGSEGV in ipsec_sa_add_and_lock`);
    }
    let window = 64;
    const asked = e.anti_replay_window_size ?? 64;
    if (flags & F_ANTI_REPLAY && asked > 64) {
      window = 1;
      while (window < asked) window *= 2; // rounded up to the next power of 2
    }
    if (flags & F_TUNNEL && e.tunnel.src.af === AF_IP6) flags |= F_TUNNEL_V6;
    let udpSrc = 0;
    let udpDst = 0;
    if (flags & F_UDP_ENCAP) {
      // IPSEC_UDP_PORT_NONE (0xffff) means the default 4500.
      udpSrc = e.udp_src_port === undefined || e.udp_src_port === 0xffff ? 4500 : e.udp_src_port;
      udpDst = e.udp_dst_port === undefined || e.udp_dst_port === 0xffff ? 4500 : e.udp_dst_port;
    }
    const statIndex = this.saPool.get();
    this.sas.set(e.sad_id, {
      id: e.sad_id,
      spi: e.spi,
      protocol: e.protocol,
      crypto,
      cryptoKey: e.crypto_key.data.subarray(0, ckLen),
      integ: e.integrity_algorithm,
      integKey: e.integrity_key.data.subarray(0, ikLen),
      flags,
      tunnel: flags & F_TUNNEL ? e.tunnel : undefined,
      saltWire: e.salt,
      udpSrc,
      udpDst,
      window,
      locks: 1,
      statIndex,
      deleteRequested: false,
    });
    ctx.reply({ retval: 0, stat_index: statIndex });
  }

  private unlockSa(sa: EmuSa): void {
    sa.locks--;
    if (sa.locks <= 0) {
      // ipsec_sa_del: the SA is freed and its id released.
      this.sas.delete(sa.id);
      this.saPool.put(sa.statIndex);
    }
  }

  /**
   * vl_api_ipsec_sad_entry_del_t_handler → ipsec_sa_unlock_id (ipsec_sa.c): NO_SUCH_ENTRY for an
   * unknown id; otherwise drops the add's lock and returns 0 — an SA still used by a tunnel
   * protection or policy stays (listed, its id taken) until that user lets go.
   */
  ipsec_sad_entry_del(m: VppMessageTypes['ipsec_sad_entry_del'], ctx: EmuCtx): void {
    const sa = this.findSa(m.id);
    if (!sa) return ctx.reply({ retval: VppErr.NO_SUCH_ENTRY });
    if (sa.locks > 1) ctx.warn(`SA ${sa.id} is still in use; it stays until released`);
    if (sa.deleteRequested && sa.locks > 1) {
      ctx.warn(`SA ${sa.id} deleted twice while in use: VPP would free it under its user`);
    }
    sa.deleteRequested = true;
    this.unlockSa(sa);
    ctx.reply({ retval: 0 });
  }

  /**
   * vl_api_ipsec_sad_entry_update_t_handler → ipsec_sa_update (ipsec_sa.c): NO_SUCH_ENTRY for an
   * unknown id; with is_tun the tunnel endpoints change (tunnel-mode SAs only); UDP ports change
   * only on SAs that already have UDP_ENCAP, and 0xffff leaves a port unchanged.
   */
  ipsec_sad_entry_update(m: VppMessageTypes['ipsec_sad_entry_update'], ctx: EmuCtx): void {
    if (m.is_tun) {
      const rv = this.tunnelDecode(m.tunnel);
      if (rv) return ctx.reply({ retval: rv });
    }
    const sa = this.findSa(m.sad_id);
    if (!sa) return ctx.reply({ retval: VppErr.NO_SUCH_ENTRY });
    if (m.is_tun && sa.flags & F_TUNNEL && sa.tunnel) {
      if (addrText(m.tunnel.src) !== addrText(sa.tunnel.src) || addrText(m.tunnel.dst) !== addrText(sa.tunnel.dst)) {
        sa.tunnel = m.tunnel;
      }
    }
    if (sa.flags & F_UDP_ENCAP) {
      const dst = m.udp_dst_port ?? 0xffff;
      const src = m.udp_src_port ?? 0xffff;
      if (dst !== 0xffff) sa.udpDst = dst;
      if (src !== 0xffff) sa.udpSrc = src;
    }
    ctx.reply({ retval: 0 });
  }

  /**
   * The sw_if_index send_ipsec_sa_v5_details reports: only an SA marked IS_PROTECT names its
   * protection's interface, and ipsec_tun_protect_set_crypto_addr marks only the inbound tunnel SAs
   * of protections on interfaces other than ipsec interfaces (IPSEC_PROTECT_ITF). The emulator has
   * protections on ipsec interfaces only, so this is always ~0.
   */
  private saUser(sa: EmuSa): number {
    for (const p of this.protections.values()) {
      if (this.interfaces.get(p.swIfIndex)?.ipsec) continue;
      if (sa.flags & F_TUNNEL && p.saIn.includes(sa.id)) return p.swIfIndex;
    }
    return U32_MAX;
  }

  /**
   * vl_api_ipsec_sa_v5_dump_t_handler / send_ipsec_sa_v5_details (ipsec_api.c): ignores sa_id and
   * walks every SA. The salt is sent through clib_host_to_net_u32 of the word stored from the add
   * request, i.e. byte-swapped on a little-endian host. Tunnel only for tunnel SAs, UDP ports only
   * with UDP_ENCAP, window size only with anti-replay.
   */
  ipsec_sa_v5_dump(_m: VppMessageTypes['ipsec_sa_v5_dump'], ctx: EmuCtx): void {
    const all = [...this.sas.values()].sort((a, b) => a.statIndex - b.statIndex);
    for (const sa of all) {
      const ck = Buffer.alloc(128);
      sa.cryptoKey.copy(ck);
      const ik = Buffer.alloc(128);
      sa.integKey.copy(ik);
      ctx.details({
        entry: {
          sad_id: sa.id,
          spi: sa.spi,
          protocol: sa.protocol,
          crypto_algorithm: sa.crypto,
          crypto_key: { length: sa.cryptoKey.length, data: ck },
          integrity_algorithm: sa.integ,
          integrity_key: { length: sa.integKey.length, data: ik },
          flags: sa.flags & F_KNOWN,
          tunnel: sa.tunnel ?? { src: zeroApiAddress(false), dst: zeroApiAddress(false) },
          salt: bswap32(sa.saltWire),
          udp_src_port: sa.flags & F_UDP_ENCAP ? sa.udpSrc : 0,
          udp_dst_port: sa.flags & F_UDP_ENCAP ? sa.udpDst : 0,
          anti_replay_window_size: sa.flags & F_ANTI_REPLAY ? sa.window : 0,
        },
        sw_if_index: this.saUser(sa),
        seq_outbound: 0n,
        last_seq_inbound: 0n,
        replay_window: 0n,
        thread_index: 0,
        stat_index: sa.statIndex,
      });
    }
  }

  // ------------------------------------------------------------------ ipsec interfaces

  /** vl_api_ipsec_itf_create_t_handler → ipsec_itf_create (ipsec_itf.c). */
  ipsec_itf_create(m: VppMessageTypes['ipsec_itf_create'], ctx: EmuCtx): void {
    const mode = m.itf.mode;
    if (mode !== MODE_P2P && mode !== MODE_MP) return ctx.reply({ retval: VppErr.INVALID_VALUE_2, sw_if_index: U32_MAX });
    // ipsec_itf_instance_alloc: ~0 = lowest free instance; explicit instance must be < 16384 and free.
    const want = m.itf.user_instance ?? U32_MAX;
    let instance: number;
    if (want === U32_MAX) {
      instance = 0;
      while (this.itfInstances.has(instance)) instance++;
      if (instance >= 16 * 1024) return ctx.reply({ retval: VppErr.INVALID_REGISTRATION, sw_if_index: U32_MAX });
    } else {
      if (want >= 16 * 1024 || this.itfInstances.has(want)) {
        return ctx.reply({ retval: VppErr.INVALID_REGISTRATION, sw_if_index: U32_MAX });
      }
      instance = want;
    }
    this.itfInstances.add(instance);
    const itf = this.addInterface(`ipsec${instance}`, 'IPSEC Tunnel');
    itf.ipsec = { instance, mode };
    ctx.reply({ retval: 0, sw_if_index: itf.swIfIndex });
  }

  /** vl_api_ipsec_itf_delete_t_handler → ipsec_itf_delete (ipsec_itf.c); protections go with it (ipsec_tun_interface_add_del). */
  ipsec_itf_delete(m: VppMessageTypes['ipsec_itf_delete'], ctx: EmuCtx): void {
    const itf = this.interfaces.get(m.sw_if_index);
    if (!itf || !itf.ipsec) return ctx.reply({ retval: VppErr.INVALID_SW_IF_INDEX });
    this.deleteInterface(itf);
    ctx.reply({ retval: 0 });
  }

  private deleteInterface(itf: EmuInterface): void {
    for (const [k, p] of [...this.protections]) {
      if (p.swIfIndex === itf.swIfIndex) {
        this.protections.delete(k);
        this.releaseProtection(p);
      }
    }
    // API routes through the interface stay, their paths naming the deleted sw_if_index (and then
    // no longer deletable by path: fib_api_path_decode answers NO_MATCHING_INTERFACE).
    this.spdBindings.delete(itf.swIfIndex);
    for (const other of this.interfaces.values()) if (other.unnumberedTo === itf.swIfIndex) delete other.unnumberedTo;
    if (itf.ipsec) this.itfInstances.delete(itf.ipsec.instance);
    this.interfaces.delete(itf.swIfIndex);
    this.swIfPool.put(itf.swIfIndex);
    // ip4/ip6_sw_interface_add_del: the interface lets go of its tables (fib_table_bind to 0).
    this.dropTableIfUnused(4, itf.table4);
    this.dropTableIfUnused(6, itf.table6);
    for (const [client, pid] of this.interfaceEventClients) {
      this.sendEvent(client, 'sw_interface_event', { client_index: client, pid, sw_if_index: itf.swIfIndex, flags: 0, deleted: true });
    }
  }

  /** vl_api_ipsec_itf_dump_t_handler / send_ipsec_itf_details. */
  ipsec_itf_dump(m: VppMessageTypes['ipsec_itf_dump'], ctx: EmuCtx): void {
    for (const i of this.interfaces.values()) {
      if (!i.ipsec) continue;
      if (m.sw_if_index !== U32_MAX && m.sw_if_index !== i.swIfIndex) continue;
      ctx.details({ itf: { user_instance: i.ipsec.instance, mode: i.ipsec.mode, sw_if_index: i.swIfIndex } });
    }
  }

  // ------------------------------------------------------------------ tunnel protection

  private protectionKey(swIfIndex: number, nh: Address): string {
    const itf = this.interfaces.get(swIfIndex);
    // ipsec_tun_protect_find: a p2p interface has one protection whatever the next hop.
    if (itf?.ipsec?.mode === MODE_P2P) return `${swIfIndex}`;
    return `${swIfIndex}|${addrText(nh)}`;
  }

  private releaseProtection(p: EmuProtection): void {
    // ipsec_tun_protect_unconfig: unlock sa_out and every sa_in.
    const out = this.sas.get(p.saOut);
    if (out) this.unlockSa(out);
    for (const id of p.saIn) {
      const sa = this.sas.get(id);
      if (sa) this.unlockSa(sa);
    }
  }

  /**
   * vl_api_ipsec_tunnel_protect_update_t_handler → ipsec_tun_protect_update (ipsec_tun.c):
   * INVALID_SW_IF_INDEX for an unknown interface (VALIDATE_SW_IF_INDEX) or one that is not a
   * tunnel; LIMIT_EXCEEDED above 4 inbound SAs; INVALID_VALUE for an unknown SA;
   * INVALID_DST_ADDRESS when the interface has no encap and sa_out is not a tunnel SA. An existing
   * protection gets its SAs replaced (new ones locked, old ones unlocked).
   */
  ipsec_tunnel_protect_update(m: VppMessageTypes['ipsec_tunnel_protect_update'], ctx: EmuCtx): void {
    const t = m.tunnel;
    const itf = this.interfaces.get(t.sw_if_index);
    if (!itf) return ctx.reply({ retval: VppErr.INVALID_SW_IF_INDEX });
    if (t.sa_in.length > 4) return ctx.reply({ retval: VppErr.LIMIT_EXCEEDED });
    for (const id of t.sa_in) if (!this.sas.has(id)) return ctx.reply({ retval: VppErr.INVALID_VALUE });
    const out = this.sas.get(t.sa_out);
    if (!out) return ctx.reply({ retval: VppErr.INVALID_VALUE });
    const key = this.protectionKey(t.sw_if_index, t.nh);
    const existing = this.protections.get(key);
    if (!existing) {
      if (!itf.ipsec) return ctx.reply({ retval: VppErr.INVALID_SW_IF_INDEX });
      if (!(out.flags & F_TUNNEL)) return ctx.reply({ retval: VppErr.INVALID_DST_ADDRESS });
    }
    // ipsec_tun_protect_config: lock the new SAs before the old ones are let go.
    out.locks++;
    for (const id of t.sa_in) this.sas.get(id)!.locks++;
    if (existing) this.releaseProtection(existing);
    this.protections.set(key, { swIfIndex: t.sw_if_index, nh: t.nh, saOut: t.sa_out, saIn: t.sa_in });
    ctx.reply({ retval: 0 });
  }

  /** vl_api_ipsec_tunnel_protect_del_t_handler → ipsec_tun_protect_del: NO_SUCH_ENTRY when absent. */
  ipsec_tunnel_protect_del(m: VppMessageTypes['ipsec_tunnel_protect_del'], ctx: EmuCtx): void {
    if (!this.interfaces.has(m.sw_if_index)) return ctx.reply({ retval: VppErr.INVALID_SW_IF_INDEX });
    const key = this.protectionKey(m.sw_if_index, m.nh);
    const p = this.protections.get(key);
    if (!p) return ctx.reply({ retval: VppErr.NO_SUCH_ENTRY });
    this.protections.delete(key);
    this.releaseProtection(p);
    ctx.reply({ retval: 0 });
  }

  /** vl_api_ipsec_tunnel_protect_dump_t_handler: ~0 = every protection, else those of one interface. */
  ipsec_tunnel_protect_dump(m: VppMessageTypes['ipsec_tunnel_protect_dump'], ctx: EmuCtx): void {
    for (const p of this.protections.values()) {
      if (m.sw_if_index !== U32_MAX && p.swIfIndex !== m.sw_if_index) continue;
      ctx.details({ tun: { sw_if_index: p.swIfIndex, nh: p.nh, sa_out: p.saOut, sa_in: p.saIn } });
    }
  }

  // ------------------------------------------------------------------ SPD

  /**
   * vl_api_ipsec_spd_add_del_t_handler → ipsec_add_del_spd (ipsec_spd.c). Deleting an SPD unbinds
   * it from its interfaces and frees only its per-type index vectors (vec_free): the policies stay
   * in VPP's policy pool and keep their SA locks (ipsec_add_del_policy takes one per PROTECT entry
   * and gives it back only when that entry is deleted, which needs the SPD). So an SA that an entry
   * of a deleted SPD used can no longer be freed: deleting it returns 0 and leaves it, id taken.
   * The emulator keeps such policies in `orphanPolicies`.
   */
  ipsec_spd_add_del(m: VppMessageTypes['ipsec_spd_add_del'], ctx: EmuCtx): void {
    const exists = this.spds.has(m.spd_id);
    if (exists && m.is_add) return ctx.reply({ retval: VppErr.ENTRY_ALREADY_EXISTS });
    if (!exists && !m.is_add) return ctx.reply({ retval: VppErr.NO_SUCH_ENTRY });
    if (m.is_add) {
      this.spds.set(m.spd_id, []);
      this.spdIndex.set(m.spd_id, this.spdPool.get());
    } else {
      for (const [sw, id] of [...this.spdBindings]) if (id === m.spd_id) this.spdBindings.delete(sw);
      const left = this.spds.get(m.spd_id)!;
      if (left.length > 0) ctx.warn(`SPD ${m.spd_id} deleted with ${left.length} entries: they keep their SA locks`);
      this.orphanPolicies.push(...left);
      this.spds.delete(m.spd_id);
      this.spdPool.put(this.spdIndex.get(m.spd_id)!);
      this.spdIndex.delete(m.spd_id);
    }
    ctx.reply({ retval: 0 });
  }

  /** vl_api_ipsec_interface_add_del_spd_t_handler → ipsec_set_interface_spd (ipsec_spd.c). */
  ipsec_interface_add_del_spd(m: VppMessageTypes['ipsec_interface_add_del_spd'], ctx: EmuCtx): void {
    if (!this.interfaces.has(m.sw_if_index)) return ctx.reply({ retval: VppErr.INVALID_SW_IF_INDEX });
    if (!this.spds.has(m.spd_id)) return ctx.reply({ retval: VppErr.SYSCALL_ERROR_1 }); // no such spd-id
    if (m.is_add) {
      if (this.spdBindings.has(m.sw_if_index)) return ctx.reply({ retval: VppErr.SYSCALL_ERROR_2 }); // spd already assigned
      this.spdBindings.set(m.sw_if_index, m.spd_id);
    } else {
      this.spdBindings.delete(m.sw_if_index);
    }
    ctx.reply({ retval: 0 });
  }

  private releasePolicy(p: EmuPolicy): void {
    if (p.policy === PROTECT) {
      const sa = this.sas.get(p.saId);
      if (sa) this.unlockSa(sa);
    }
    this.policyPool.put(p.statIndex);
  }

  /**
   * vl_api_ipsec_spd_entry_add_del_v2_t_handler → ipsec_policy_mk_type / ipsec_add_del_policy
   * (ipsec_spd_policy.c): UNIMPLEMENTED for RESOLVE or an unknown action, SYSCALL_ERROR_1 for an
   * unknown SPD or (PROTECT) SA; entries are kept in descending priority; deleting an entry that
   * does not exist returns 0.
   */
  ipsec_spd_entry_add_del_v2(m: VppMessageTypes['ipsec_spd_entry_add_del_v2'], ctx: EmuCtx): void {
    const e: IpsecSpdEntryV2 = m.entry;
    const fail = (rv: number): void => ctx.reply({ retval: rv, stat_index: U32_MAX });
    if (e.policy > PROTECT || e.policy === RESOLVE) return fail(VppErr.UNIMPLEMENTED);
    const isIpv6 = e.remote_address_start.af === AF_IP6;
    // ipsec_policy_mk_type: outbound 0/1, inbound protect 2/3, bypass 4/5, discard 6/7
    const type = e.is_outbound ? (isIpv6 ? 1 : 0) : e.policy === PROTECT ? (isIpv6 ? 3 : 2) : e.policy === BYPASS ? (isIpv6 ? 5 : 4) : isIpv6 ? 7 : 6;
    const list = this.spds.get(e.spd_id);
    if (!list) return fail(VppErr.SYSCALL_ERROR_1);
    const p: EmuPolicy = {
      spdId: e.spd_id,
      priority: e.priority,
      isOutbound: e.is_outbound,
      isIpv6,
      saId: e.sa_id,
      policy: e.policy,
      protocol: e.protocol,
      raddrStart: addrText(e.remote_address_start),
      raddrStop: addrText(e.remote_address_stop),
      laddrStart: addrText(e.local_address_start),
      laddrStop: addrText(e.local_address_stop),
      rportStart: e.remote_port_start,
      rportStop: e.remote_port_stop,
      lportStart: e.local_port_start,
      lportStop: e.local_port_stop,
      type,
      statIndex: 0,
    };
    if (m.is_add) {
      if (p.policy === PROTECT) {
        const sa = this.sas.get(p.saId);
        if (!sa) return fail(VppErr.SYSCALL_ERROR_1);
        sa.locks++;
      }
      p.statIndex = this.policyPool.get();
      let i = 0;
      while (i < list.length && !(list[i]!.type === type && list[i]!.priority <= p.priority)) i++;
      list.splice(i, 0, p);
      return ctx.reply({ retval: 0, stat_index: p.statIndex });
    }
    const same = (a: EmuPolicy): boolean =>
      a.type === p.type &&
      a.priority === p.priority &&
      a.policy === p.policy &&
      a.protocol === p.protocol &&
      a.saId === p.saId &&
      a.raddrStart === p.raddrStart &&
      a.raddrStop === p.raddrStop &&
      a.laddrStart === p.laddrStart &&
      a.laddrStop === p.laddrStop &&
      a.rportStart === p.rportStart &&
      a.rportStop === p.rportStop &&
      a.lportStart === p.lportStart &&
      a.lportStop === p.lportStop;
    const idx = list.findIndex(same);
    if (idx >= 0) {
      const [old] = list.splice(idx, 1);
      this.releasePolicy(old!);
    }
    ctx.reply({ retval: 0, stat_index: U32_MAX });
  }

  /**
   * send_ipsec_spd_details: the addresses go through ip_address_encode with IP46_TYPE_ANY, so an
   * IPv6 address whose first 12 bytes are zero (such as ::, the start of "any") is reported as the
   * IPv4 address of its last 4 bytes.
   */
  private policyEntry(p: EmuPolicy): Obj {
    const a = (t: string): Address => {
      const { af, bytes } = parseIp(t);
      if (af === AF_IP6 && bytes.subarray(0, 12).every((x) => x === 0)) return { af: AF_IP4, un: { ip4: Buffer.from(bytes.subarray(12)) } };
      return af === AF_IP4 ? { af, un: { ip4: bytes } } : { af, un: { ip6: bytes } };
    };
    return {
      spd_id: p.spdId,
      priority: p.priority,
      is_outbound: p.isOutbound,
      sa_id: p.saId,
      policy: p.policy,
      protocol: p.protocol,
      remote_address_start: a(p.raddrStart),
      remote_address_stop: a(p.raddrStop),
      local_address_start: a(p.laddrStart),
      local_address_stop: a(p.laddrStop),
      remote_port_start: p.rportStart,
      remote_port_stop: p.rportStop,
      local_port_start: p.lportStart,
      local_port_stop: p.lportStop,
    };
  }

  /** vl_api_ipsec_spd_dump_t_handler: nothing for an unknown SPD; sa_id ~0 = all entries. */
  ipsec_spd_dump(m: VppMessageTypes['ipsec_spd_dump'], ctx: EmuCtx): void {
    const list = this.spds.get(m.spd_id);
    if (!list) return;
    const sorted = [...list].sort((a, b) => a.type - b.type);
    for (const p of sorted) {
      if (m.sa_id === U32_MAX || m.sa_id === p.saId) ctx.details({ entry: this.policyEntry(p) });
    }
  }

  /** vl_api_ipsec_spds_dump_t_handler: in pool order. */
  ipsec_spds_dump(_m: VppMessageTypes['ipsec_spds_dump'], ctx: EmuCtx): void {
    const ids = [...this.spds.keys()].sort((a, b) => this.spdIndex.get(a)! - this.spdIndex.get(b)!);
    for (const id of ids) ctx.details({ spd_id: id, npolicies: this.spds.get(id)!.length });
  }

  /** vl_api_ipsec_spd_interface_dump_t_handler */
  ipsec_spd_interface_dump(m: VppMessageTypes['ipsec_spd_interface_dump'], ctx: EmuCtx): void {
    for (const [sw, spdId] of [...this.spdBindings].sort((a, b) => a[0] - b[0])) {
      // The reply carries the SPD's pool index (and the filter is one), not its id.
      const index = this.spdIndex.get(spdId)!;
      if (m.spd_index_valid && m.spd_index !== index) continue;
      ctx.details({ spd_index: index, sw_if_index: sw });
    }
  }

  // ------------------------------------------------------------------ interfaces

  private ifFlags(i: EmuInterface): number {
    return (i.adminUp ? ADMIN_UP : 0) | (i.linkUp ? LINK_UP : 0);
  }

  /** vl_api_sw_interface_set_flags_t_handler (interface_api.c); ipsec interfaces follow admin state with link state. */
  sw_interface_set_flags(m: VppMessageTypes['sw_interface_set_flags'], ctx: EmuCtx): void {
    const i = this.interfaces.get(m.sw_if_index);
    if (!i) return ctx.reply({ retval: VppErr.INVALID_SW_IF_INDEX });
    const up = (m.flags & ADMIN_UP) !== 0;
    const before = this.ifFlags(i);
    i.adminUp = up;
    if (i.ipsec || i.devType !== 'local') i.linkUp = up;
    ctx.reply({ retval: 0 });
    if (this.ifFlags(i) !== before) {
      for (const [client, pid] of this.interfaceEventClients) {
        this.sendEvent(client, 'sw_interface_event', { client_index: client, pid, sw_if_index: i.swIfIndex, flags: this.ifFlags(i), deleted: false });
      }
    }
  }

  /**
   * vl_api_sw_interface_set_unnumbered_t_handler: unnumbered_sw_if_index is the interface made
   * unnumbered (INVALID_SW_IF_INDEX if unknown), sw_if_index the one lending its address
   * (INVALID_SW_IF_INDEX_2 if unknown, checked only when adding).
   */
  sw_interface_set_unnumbered(m: VppMessageTypes['sw_interface_set_unnumbered'], ctx: EmuCtx): void {
    const target = this.interfaces.get(m.unnumbered_sw_if_index);
    if (!target) return ctx.reply({ retval: VppErr.INVALID_SW_IF_INDEX });
    const lender = this.interfaces.get(m.sw_if_index);
    if (m.is_add && !lender) return ctx.reply({ retval: VppErr.INVALID_SW_IF_INDEX_2 });
    if (m.is_add) {
      // vnet_sw_interface_check_table_same: both interfaces in the same IPv4 and IPv6 tables.
      if (target.table4 !== lender!.table4 || target.table6 !== lender!.table6) return ctx.reply({ retval: VppErr.UNEXPECTED_INTF_STATE });
      target.unnumberedTo = m.sw_if_index;
    } else delete target.unnumberedTo;
    ctx.reply({ retval: 0 });
  }

  /** An interface's addresses of one family, as foreach_ip_interface_address with honor_unnumbered sees them (the lender's for an unnumbered interface). */
  private addressesOf(i: EmuInterface, af: 4 | 6): string[] {
    const src = i.unnumberedTo !== undefined ? this.interfaces.get(i.unnumberedTo) : i;
    return (src?.addresses ?? []).filter((a) => (a.includes(':') ? 6 : 4) === af);
  }

  /**
   * vl_api_sw_interface_set_table_t_handler → ip_table_bind: NO_SUCH_FIB for a table that does not
   * exist, ADDRESS_FOUND_FOR_INTERFACE when the interface has an address of that family (its own, or
   * its lender's when it is unnumbered). The table it leaves is let go (fib_table_unlock).
   */
  sw_interface_set_table(m: VppMessageTypes['sw_interface_set_table'], ctx: EmuCtx): void {
    const i = this.interfaces.get(m.sw_if_index);
    if (!i) return ctx.reply({ retval: VppErr.INVALID_SW_IF_INDEX });
    const af = m.is_ipv6 ? 6 : 4;
    if (!this.tables.has(`${af}:${m.vrf_id}`)) return ctx.reply({ retval: VppErr.NO_SUCH_FIB });
    if (this.addressesOf(i, af).length > 0) return ctx.reply({ retval: VppErr.ADDRESS_FOUND_FOR_INTERFACE });
    const before = af === 6 ? i.table6 : i.table4;
    if (af === 6) i.table6 = m.vrf_id;
    else i.table4 = m.vrf_id;
    this.dropTableIfUnused(af, before);
    ctx.reply({ retval: 0 });
  }

  /**
   * vl_api_ip_address_dump_t_handler: the interface's own addresses of one family; nothing for an
   * unnumbered interface (foreach_ip_interface_address without honor_unnumbered) or an unknown one.
   */
  ip_address_dump(m: VppMessageTypes['ip_address_dump'], ctx: EmuCtx): void {
    const i = this.interfaces.get(m.sw_if_index);
    if (!i || i.unnumberedTo !== undefined) return;
    for (const a of i.addresses) {
      const [text, len] = a.split('/');
      const { af, bytes } = parseIp(text!);
      if ((af === AF_IP6) !== m.is_ipv6) continue;
      const address: Address = af === AF_IP4 ? { af, un: { ip4: bytes } } : { af, un: { ip6: bytes } };
      ctx.details({ sw_if_index: i.swIfIndex, prefix: { address, len: Number(len) } });
    }
  }

  /**
   * vl_api_sw_interface_get_table_t_handler: the VRF of the interface's IPv4 or IPv6 table;
   * INVALID_SW_IF_INDEX (vrf_id ~0) for an unknown interface.
   */
  sw_interface_get_table(m: SwInterfaceGetTable, ctx: EmuCtx): void {
    const i = this.interfaces.get(m.sw_if_index);
    if (!i) return ctx.reply({ retval: VppErr.INVALID_SW_IF_INDEX, vrf_id: U32_MAX });
    ctx.reply({ retval: 0, vrf_id: m.is_ipv6 ? i.table6 : i.table4 });
  }

  /**
   * vl_api_ip_unnumbered_dump_t_handler: the unnumbered interfaces and their lenders (~0: all; an
   * unknown sw_if_index: nothing).
   */
  ip_unnumbered_dump(m: IpUnnumberedDump, ctx: EmuCtx): void {
    for (const i of [...this.interfaces.values()].sort((a, b) => a.swIfIndex - b.swIfIndex)) {
      if (m.sw_if_index !== U32_MAX && m.sw_if_index !== i.swIfIndex) continue;
      if (i.unnumberedTo !== undefined) ctx.details({ sw_if_index: i.swIfIndex, ip_sw_if_index: i.unnumberedTo });
    }
  }

  private ifDetails(i: EmuInterface): Obj {
    return {
      sw_if_index: i.swIfIndex,
      sup_sw_if_index: i.swIfIndex,
      l2_address: i.ipsec || i.devType === 'local' ? Buffer.alloc(6) : i.mac,
      flags: this.ifFlags(i),
      type: 0,
      link_duplex: 0,
      link_speed: 0,
      // An ipsec interface's hardware has no link MTU (0); its L3 MTU is 9000.
      link_mtu: i.ipsec ? 0 : i.mtu,
      mtu: [i.mtu, 0, 0, 0],
      interface_name: i.name,
      interface_dev_type: i.devType,
      tag: '',
    };
  }

  /**
   * vl_api_sw_interface_dump_t_handler: without a name filter and with sw_if_index other than ~0
   * and 0, one interface (nothing if unknown); otherwise all, filtered by case-insensitive
   * substring when name_filter_valid.
   */
  sw_interface_dump(m: VppMessageTypes['sw_interface_dump'], ctx: EmuCtx): void {
    const sw = m.sw_if_index ?? U32_MAX;
    if (!m.name_filter_valid && sw !== U32_MAX && sw !== 0) {
      const i = this.interfaces.get(sw);
      if (i) ctx.details(this.ifDetails(i));
      return;
    }
    const filter = m.name_filter_valid ? m.name_filter.toLowerCase() : undefined;
    for (const i of [...this.interfaces.values()].sort((a, b) => a.swIfIndex - b.swIfIndex)) {
      if (filter !== undefined && !i.name.toLowerCase().includes(filter)) continue;
      ctx.details(this.ifDetails(i));
    }
  }

  /** pub_sub_handler (api_helper_macros.h): enabling twice or disabling when off → INVALID_REGISTRATION. */
  want_interface_events(m: VppMessageTypes['want_interface_events'], ctx: EmuCtx): void {
    const has = this.interfaceEventClients.has(ctx.clientIndex);
    if (has && m.enable_disable) return ctx.reply({ retval: VppErr.INVALID_REGISTRATION });
    if (!has && !m.enable_disable) return ctx.reply({ retval: VppErr.INVALID_REGISTRATION });
    if (m.enable_disable) this.interfaceEventClients.set(ctx.clientIndex, m.pid);
    else this.interfaceEventClients.delete(ctx.clientIndex);
    ctx.reply({ retval: 0 });
  }

  /** A client registration went away: drop its subscriptions. */
  clientGone(clientIndex: number): void {
    this.interfaceEventClients.delete(clientIndex);
  }

  // ------------------------------------------------------------------ IP tables and routes

  /**
   * vl_api_ip_table_add_del_t_handler → ip_table_create / ip_table_delete; table 0 is always there.
   * The API holds one lock on a table however often it adds it; deleting drops that lock, and the
   * table (with its routes) goes only when no interface is bound to it either.
   */
  ip_table_add_del(m: VppMessageTypes['ip_table_add_del'], ctx: EmuCtx): void {
    const af = m.table.is_ip6 ? 6 : 4;
    const id = m.table.table_id;
    if (id !== 0) {
      const t = this.tables.get(`${af}:${id}`);
      if (m.is_add ?? true) {
        if (t) t.api = true;
        else this.tables.set(`${af}:${id}`, { api: true });
      } else if (t) {
        t.api = false;
        this.dropTableIfUnused(af, id);
      }
    }
    ctx.reply({ retval: 0 });
  }

  /** fib_table_unlock: a table nothing holds any more (API lock, bound interfaces) is destroyed with its routes. */
  private dropTableIfUnused(af: 4 | 6, id: number): void {
    if (id === 0) return;
    const key = `${af}:${id}`;
    const t = this.tables.get(key);
    if (!t || t.api) return;
    for (const i of this.interfaces.values()) if ((af === 6 ? i.table6 : i.table4) === id) return;
    this.tables.delete(key);
    for (const [k, r] of [...this.routes]) if (r.tableId === id && r.isIp6 === (af === 6)) this.routes.delete(k);
  }

  /**
   * vl_api_ip_route_add_del_t_handler → fib_api_table_id_decode (NO_SUCH_FIB),
   * fib_api_path_decode (NO_MATCHING_INTERFACE for an unknown sw_if_index), fib_api_route_add_del
   * (INVALID_PREFIX_LENGTH, NO_PATHS_IN_ROUTE; add without multipath replaces the paths; delete of
   * an absent route returns 0).
   */
  ip_route_add_del(m: VppMessageTypes['ip_route_add_del'], ctx: EmuCtx): void {
    const r = m.route;
    const isIp6 = r.prefix.address.af === AF_IP6;
    const fail = (rv: number): void => ctx.reply({ retval: rv, stats_index: U32_MAX });
    if (!this.tables.has(`${isIp6 ? 6 : 4}:${r.table_id}`)) return fail(VppErr.NO_SUCH_FIB);
    for (const p of r.paths) {
      if (p.sw_if_index !== U32_MAX && !this.interfaces.has(p.sw_if_index)) return fail(VppErr.NO_MATCHING_INTERFACE);
    }
    if (r.prefix.len > (isIp6 ? 128 : 32)) return fail(VppErr.INVALID_PREFIX_LENGTH);
    const prefix = addrText(r.prefix.address);
    // fib_table_route_path_fixup: an attached path (no next hop) to a host prefix becomes an
    // attached next hop to that host, on add and delete alike (and so ip_route_dump shows it).
    if (r.prefix.len === (isIp6 ? 128 : 32)) {
      r.paths = r.paths.map((p) => {
        const nh = addrText({ af: isIp6 ? AF_IP6 : AF_IP4, un: p.nh.address });
        if (p.sw_if_index === U32_MAX || (nh !== '0.0.0.0' && nh !== '::')) return p;
        return { ...p, nh: { ...p.nh, address: r.prefix.address.un } };
      });
    }
    const key = `${isIp6 ? 6 : 4}:${r.table_id}:${prefix}/${r.prefix.len}`;
    const isAdd = m.is_add ?? true;
    const pathKey = (p: FibPath): string => `${p.sw_if_index}|${addrText({ af: isIp6 ? AF_IP6 : AF_IP4, un: p.nh.address })}`;
    if (m.is_multipath) {
      if (r.paths.length === 0) return fail(VppErr.NO_PATHS_IN_ROUTE);
      const cur = this.routes.get(key);
      if (isAdd) {
        const route = cur ?? { tableId: r.table_id, isIp6, prefix, len: r.prefix.len, paths: [], statsIndex: this.nextRouteStat++ };
        for (const p of r.paths) if (!route.paths.some((q) => pathKey(q) === pathKey(p))) route.paths.push(p);
        this.routes.set(key, route);
        return ctx.reply({ retval: 0, stats_index: route.statsIndex });
      }
      if (cur) {
        const gone = new Set(r.paths.map(pathKey));
        cur.paths = cur.paths.filter((q) => !gone.has(pathKey(q)));
        if (cur.paths.length === 0) this.routes.delete(key);
      }
      return ctx.reply({ retval: 0, stats_index: U32_MAX });
    }
    if (isAdd) {
      if (r.paths.length === 0) return fail(VppErr.NO_PATHS_IN_ROUTE);
      const statsIndex = this.routes.get(key)?.statsIndex ?? this.nextRouteStat++;
      this.routes.set(key, { tableId: r.table_id, isIp6, prefix, len: r.prefix.len, paths: r.paths, statsIndex });
      return ctx.reply({ retval: 0, stats_index: statsIndex });
    }
    this.routes.delete(key);
    ctx.reply({ retval: 0, stats_index: U32_MAX });
  }

  /** vl_api_ip_route_dump_t_handler: the routes of one table (API-added routes only, here). */
  ip_route_dump(m: VppMessageTypes['ip_route_dump'], ctx: EmuCtx): void {
    const af = m.table.is_ip6 ? 6 : 4;
    if (!this.tables.has(`${af}:${m.table.table_id}`)) return;
    for (const r of this.routes.values()) {
      if (r.tableId !== m.table.table_id || r.isIp6 !== (af === 6)) continue;
      const { af: a, bytes } = parseIp(r.prefix);
      const address: Address = a === AF_IP4 ? { af: a, un: { ip4: bytes } } : { af: a, un: { ip6: bytes } };
      ctx.details({ route: { table_id: r.tableId, stats_index: r.statsIndex, prefix: { address, len: r.len }, paths: r.paths } });
    }
  }

  // ------------------------------------------------------------------ punt

  /** vl_api_punt_decode (punt_api.c); undefined when the registration does not decode. */
  private puntKey(p: Punt): string | undefined {
    switch (p.type) {
      case 0: {
        const l4 = p.punt.l4;
        if (!l4 || (l4.af !== 0 && l4.af !== 1)) return undefined;
        return `l4:${l4.af}:${l4.protocol}:${l4.port}`;
      }
      case 1: {
        const ip = p.punt.ip_proto;
        if (!ip || (ip.af !== 0 && ip.af !== 1)) return undefined;
        return `ip:${ip.af}:${ip.protocol}`;
      }
      case 2: {
        const id = p.punt.exception?.id;
        // vlib_punt_reason_validate
        if (id === undefined || !this.puntReasons.some((r) => r.id === id)) return undefined;
        return `ex:${id}`;
      }
      default:
        return undefined;
    }
  }

  /**
   * vl_api_punt_socket_register_t_handler → vnet_punt_socket_add (punt.c). A registration that does
   * not decode gets no reply at all (the handler returns early); errors ("socket is not
   * configured", bad header version, TCP) are retval -1. The reply names VPP's own punt socket.
   */
  punt_socket_register(m: VppMessageTypes['punt_socket_register'], ctx: EmuCtx): void {
    const key = this.puntKey(m.punt);
    if (key === undefined) {
      ctx.warn('punt_socket_register: registration does not decode; no reply');
      return;
    }
    const server = this.options.puntSocket ?? '';
    let rv = 0;
    if (this.options.puntSocket === undefined) rv = -1;
    else if (m.header_version !== 1) rv = -1;
    else if (m.punt.type === 0 && m.punt.punt.l4?.protocol === 6) rv = -1; // TCP not supported
    else if (m.punt.type === 0 && m.punt.punt.l4?.port === 0) rv = -1; // port number required
    if (rv === 0) this.puntRegs.set(key, { punt: m.punt, pathname: m.pathname, key });
    ctx.reply({ retval: rv, pathname: server });
  }

  /** vl_api_punt_socket_deregister_t_handler → vnet_punt_socket_del. */
  punt_socket_deregister(m: VppMessageTypes['punt_socket_deregister'], ctx: EmuCtx): void {
    const key = this.puntKey(m.punt);
    if (key === undefined) return ctx.reply({ retval: VppErr.INVALID_VALUE });
    if (this.options.puntSocket === undefined) return ctx.reply({ retval: -1 });
    this.puntRegs.delete(key);
    ctx.reply({ retval: 0 });
  }

  /** vl_api_punt_socket_dump_t_handler: registrations of one punt type. */
  punt_socket_dump(m: VppMessageTypes['punt_socket_dump'], ctx: EmuCtx): void {
    if (m.type > 2) return;
    for (const r of this.puntRegs.values()) if (r.punt.type === m.type) ctx.details({ punt: r.punt, pathname: r.pathname });
  }

  /** vl_api_punt_reason_dump_t_handler: every reason, or the one whose name matches exactly. */
  punt_reason_dump(m: VppMessageTypes['punt_reason_dump'], ctx: EmuCtx): void {
    const name = m.reason.name;
    for (const r of this.puntReasons) {
      if (name && name !== r.name) continue;
      ctx.details({ reason: { id: r.id, name: r.name } });
    }
  }

  // ------------------------------------------------------------------ inspection

  /** A JSON-able view of every table (keys omitted). */
  snapshot(): Obj {
    return {
      interfaces: [...this.interfaces.values()].map((i) => ({
        sw_if_index: i.swIfIndex,
        name: i.name,
        admin_up: i.adminUp,
        table: [i.table4, i.table6],
        ipsec: i.ipsec ?? null,
        unnumbered_to: i.unnumberedTo ?? null,
      })),
      sas: [...this.sas.values()].map((s) => ({
        sad_id: s.id,
        spi: s.spi,
        flags: s.flags,
        locks: s.locks,
        delete_requested: s.deleteRequested,
        tunnel: s.tunnel ? { src: addrText(s.tunnel.src), dst: addrText(s.tunnel.dst), table_id: s.tunnel.table_id } : null,
        udp: s.flags & F_UDP_ENCAP ? [s.udpSrc, s.udpDst] : null,
      })),
      protections: [...this.protections.values()].map((p) => ({ sw_if_index: p.swIfIndex, nh: addrText(p.nh), sa_out: p.saOut, sa_in: p.saIn })),
      spds: [...this.spds].map(([id, list]) => ({ spd_id: id, policies: list.length })),
      orphan_policies: this.orphanPolicies.length,
      spd_bindings: [...this.spdBindings],
      routes: [...this.routes.values()].map((r) => ({ table_id: r.tableId, prefix: `${r.prefix}/${r.len}`, paths: r.paths.map((p) => p.sw_if_index) })),
      punt: [...this.puntRegs.keys()],
    };
  }

  /** Runs the handler of request `name`. */
  handle(name: string, msg: unknown, ctx: EmuCtx): void {
    if (!HANDLED.has(name)) throw new Error(`no handler for ${name}`);
    this.count(name);
    (this as unknown as Record<string, (m: unknown, c: EmuCtx) => void>)[name]!(msg, ctx);
  }
}

const HANDLED = new Set<string>([
  'show_version',
  'control_ping',
  'ipsec_sad_entry_add_v2',
  'ipsec_sad_entry_del',
  'ipsec_sad_entry_update',
  'ipsec_sa_v5_dump',
  'ipsec_itf_create',
  'ipsec_itf_delete',
  'ipsec_itf_dump',
  'ipsec_tunnel_protect_update',
  'ipsec_tunnel_protect_del',
  'ipsec_tunnel_protect_dump',
  'ipsec_spd_add_del',
  'ipsec_interface_add_del_spd',
  'ipsec_spd_entry_add_del_v2',
  'ipsec_spd_dump',
  'ipsec_spds_dump',
  'ipsec_spd_interface_dump',
  'sw_interface_set_flags',
  'sw_interface_set_unnumbered',
  'sw_interface_set_table',
  'sw_interface_dump',
  'sw_interface_get_table',
  'want_interface_events',
  'ip_table_add_del',
  'ip_route_add_del',
  'ip_route_dump',
  'ip_address_dump',
  'ip_unnumbered_dump',
  'punt_socket_register',
  'punt_socket_deregister',
  'punt_socket_dump',
  'punt_reason_dump',
]);

