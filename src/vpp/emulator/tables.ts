/**
 * The VPP emulator's tables and the dispatch of requests to their handlers. Each handler mirrors
 * the VPP 26.10 function named in its comment (FDio/vpp at b575ec2c: src/vnet/ipsec/ipsec_api.c,
 * ipsec_sa.c, ipsec_tun.c, ipsec_itf.c, ipsec_spd.c, ipsec_spd_policy.c, src/vnet/interface_api.c,
 * src/vnet/ip/ip_api.c, src/vnet/fib/fib_api.c, src/vnet/ip/punt_api.c, src/vlibmemory/socket_api.c),
 * including the reply codes VPP returns and its quirks (e.g. deleting an SA that a tunnel protection
 * still uses returns 0 and leaves the SA in place until the protection lets go of it).
 *
 * The handlers are functions `(state, request, ctx)` named after the message they answer, one module
 * per area: vpe.ts (memclnt / vpe), sad.ts (SAs), ipsec-itf.ts (ipsec interfaces), protection.ts
 * (tunnel protection), spd.ts (SPDs and their entries), interfaces.ts (interfaces and their
 * addresses and tables), routes.ts (IP tables and routes), punt.ts (punt sockets). HANDLERS below
 * lists every request the emulator answers.
 *
 * Handlers keep the decoded request objects they are given (the codec returns fresh objects).
 *
 * What is not emulated: packet forwarding (sendPackets() only counts what a route through a
 * protected ipsec interface would encrypt), counters other than the SAs' (`/net/ipsec/sa`, in the
 * stats segment, stats.ts), routes other than those added through the API, and the fast-path SPD
 * variant.
 */

import type { VppMessageTypes } from '../defs.generated.ts';
import { addrText, IndexPool, type EmuCtx, type EmuInterface, type EmuOptions, type EmuPolicy, type EmuProtection, type EmuPuntReg, type EmuRoute, type EmuSa, type Obj } from './common.ts';
import { control_ping, show_version } from './vpe.ts';
import { F_UDP_ENCAP, ipsec_sa_v5_dump, ipsec_sad_entry_add_v2, ipsec_sad_entry_del, ipsec_sad_entry_update } from './sad.ts';
import { ipsec_itf_create, ipsec_itf_delete, ipsec_itf_dump } from './ipsec-itf.ts';
import { ipsec_tunnel_protect_del, ipsec_tunnel_protect_dump, ipsec_tunnel_protect_update } from './protection.ts';
import { ipsec_interface_add_del_spd, ipsec_spd_add_del, ipsec_spd_dump, ipsec_spd_entry_add_del_v2, ipsec_spd_interface_dump, ipsec_spds_dump } from './spd.ts';
import {
  ip_address_dump,
  ip_unnumbered_dump,
  sw_interface_dump,
  sw_interface_get_table,
  sw_interface_set_flags,
  sw_interface_set_table,
  sw_interface_set_unnumbered,
  want_interface_events,
} from './interfaces.ts';
import { ip_route_add_del, ip_route_dump, ip_table_add_del } from './routes.ts';
import { IPSEC_PUNT_REASONS, punt_reason_dump, punt_socket_deregister, punt_socket_dump, punt_socket_register } from './punt.ts';
import type { EmuStatsSegment } from './stats.ts';
import { parseIp, AF_IP6 } from '../address.ts';

export type { EmuCtx, EmuInterface, EmuOptions, EmuPolicy, EmuProtection, EmuPuntReg, EmuRoute, EmuSa } from './common.ts';

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

  // VPP's pools and counters behind the tables (for the handler modules).
  readonly swIfPool = new IndexPool(0);
  readonly saPool = new IndexPool(0);
  readonly policyPool = new IndexPool(0);
  /** SPD id → its index in VPP's SPD pool (what ipsec_spd_interface_dump reports). */
  readonly spdIndex = new Map<number, number>();
  readonly spdPool = new IndexPool(0);
  readonly itfInstances = new Set<number>();
  /** The stats index the next new route gets. */
  nextRouteStat = 1;
  /** The stats segment the SA counters live in (set by the server; none: not counted). */
  stats: EmuStatsSegment | undefined;

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

  /**
   * `packets` IP packets of `size` bytes each sent by VPP to `dst` (as VPP's own `ping`): when the
   * longest matching route in `table` goes through an ipsec interface whose tunnel protection
   * covers its next hop, the protection's outbound SA encrypts them and counts them in the stats
   * segment as esp-encrypt does: packets, and per packet the ESP payload it builds (the IP packet,
   * padding, pad length and next header, the ICV; not the ESP header and IV). Returns the sad_id of
   * that SA, or undefined when no SA would carry them.
   */
  sendPackets(dst: string, packets: number, size: number, table = 0): number | undefined {
    const d = parseIp(dst);
    const isIp6 = d.af === AF_IP6;
    let best: EmuRoute | undefined;
    for (const r of this.routes.values()) {
      if (r.isIp6 !== isIp6 || r.tableId !== table || (best && best.len >= r.len)) continue;
      if (prefixCovers(parseIp(r.prefix).bytes, r.len, d.bytes)) best = r;
    }
    const path = best?.paths[0];
    if (!path) return undefined;
    const nh = addrText({ af: d.af, un: path.nh.address });
    for (const p of this.protections.values()) {
      if (p.swIfIndex !== path.sw_if_index) continue;
      const pnh = addrText(p.nh);
      if (pnh !== nh && pnh !== '0.0.0.0' && pnh !== '::') continue;
      const sa = this.sas.get(p.saOut);
      if (!sa) return undefined;
      this.stats?.add(sa.statIndex, packets, packets * espPayloadBytes(sa, size));
      return sa.id;
    }
    return undefined;
  }

  count(name: string): void {
    this.requestCounts.set(name, (this.requestCounts.get(name) ?? 0) + 1);
  }

  /** A client registration went away: drop its subscriptions. */
  clientGone(clientIndex: number): void {
    this.interfaceEventClients.delete(clientIndex);
  }

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
    const handler = Object.hasOwn(HANDLERS, name) ? (HANDLERS as Readonly<Record<string, AnyHandler>>)[name] : undefined;
    if (!handler) throw new Error(`no handler for ${name}`);
    this.count(name);
    handler(this, msg, ctx);
  }
}

type AnyHandler = (state: VppEmulatorState, msg: unknown, ctx: EmuCtx) => void;

/** The handler of each request the emulator answers (handle() throws for any other name). */
const HANDLERS: { readonly [K in keyof VppMessageTypes]?: (state: VppEmulatorState, msg: VppMessageTypes[K], ctx: EmuCtx) => void } = {
  show_version,
  control_ping,
  ipsec_sad_entry_add_v2,
  ipsec_sad_entry_del,
  ipsec_sad_entry_update,
  ipsec_sa_v5_dump,
  ipsec_itf_create,
  ipsec_itf_delete,
  ipsec_itf_dump,
  ipsec_tunnel_protect_update,
  ipsec_tunnel_protect_del,
  ipsec_tunnel_protect_dump,
  ipsec_spd_add_del,
  ipsec_interface_add_del_spd,
  ipsec_spd_entry_add_del_v2,
  ipsec_spd_dump,
  ipsec_spds_dump,
  ipsec_spd_interface_dump,
  sw_interface_set_flags,
  sw_interface_set_unnumbered,
  sw_interface_set_table,
  sw_interface_dump,
  sw_interface_get_table,
  want_interface_events,
  ip_table_add_del,
  ip_route_add_del,
  ip_route_dump,
  ip_address_dump,
  ip_unnumbered_dump,
  punt_socket_register,
  punt_socket_deregister,
  punt_socket_dump,
  punt_reason_dump,
};

/** Whether `addr` is inside prefix/len (same family). */
function prefixCovers(prefix: Buffer, len: number, addr: Buffer): boolean {
  if (prefix.length !== addr.length) return false;
  const full = len >> 3;
  if (prefix.compare(addr, 0, full, 0, full) !== 0) return false;
  const bits = len & 7;
  if (bits === 0) return true;
  const mask = (0xff << (8 - bits)) & 0xff;
  return (prefix[full]! & mask) === (addr[full]! & mask);
}

/**
 * The bytes esp-encrypt counts for one tunnel-mode packet of `size` bytes: the packet with its ESP
 * trailer padded to the cipher's alignment (esp_add_footer_and_icv) plus the ICV.
 */
function espPayloadBytes(sa: EmuSa, size: number): number {
  // CBC ciphers pad to their block size, the others (CTR, AEADs, none) to 4 bytes
  const align = sa.crypto >= 1 && sa.crypto <= 3 ? 16 : sa.crypto === 10 || sa.crypto === 11 ? 8 : 4;
  // AEAD tags (GCM, ChaCha20-Poly1305, GMAC) or the truncated integrity checks
  const aead = (sa.crypto >= 7 && sa.crypto <= 9) || sa.crypto >= 12;
  const icv = aead ? 16 : ([0, 12, 12, 12, 16, 24, 32][sa.integ] ?? 0);
  return Math.ceil((size + 2) / align) * align + icv;
}
