/**
 * What `vpp-ikectl vpp-sas` shows: VPP's IPsec objects as VPP reports them (no key material), next
 * to the CHILD_SAs this back end tracks.
 */

import type { VppMode } from '../types.ts';
import { hex8 } from '../../common/text.ts';
import { apiAddressText } from '../../vpp/address.ts';
import { IpsecCryptoAlg, IpsecIntegAlg, IpsecProto, IpsecSadFlags, IpsecSpdAction, TunnelMode } from '../../vpp/defs.generated.ts';
import { isOurId } from './ids.ts';
import { ADMIN_UP } from './interfaces.ts';
import { spdEntryV2 } from './spd.ts';
import { dumpAll, U32_MAX, type Backend } from './state.ts';

const { IPSEC_API_SAD_FLAG_IS_TUNNEL: IS_TUNNEL, IPSEC_API_SAD_FLAG_UDP_ENCAP: UDP_ENCAP, IPSEC_API_SAD_FLAG_IS_INBOUND: IS_INBOUND } = IpsecSadFlags;
const { IPSEC_API_PROTO_ESP: PROTO_ESP, IPSEC_API_PROTO_AH: PROTO_AH } = IpsecProto;

/** The CHILD_SAs this back end tracks (what it expects VPP to hold). */
function trackedView(b: Backend): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = [];
  for (const st of b.children.values()) {
    out.push({
      child_id: st.child.childId,
      ike_sa_id: st.child.ikeSaId,
      connection: st.child.connection,
      child: st.child.child,
      mode: st.child.vppMode,
      interface: st.itfName ?? null,
      sa_in: st.saIn,
      sa_out: st.saOut,
      spi_in: hex8(st.child.inbound.spi),
      spi_out: hex8(st.child.outbound.spi),
      replaces: st.child.replaces ?? null,
    });
  }
  return out.sort((x, y) => (x.child_id as number) - (y.child_id as number));
}

/**
 * What VPP holds, as VPP reports it (SAD from ipsec_sa_v5_dump without key material, tunnel
 * protections, ipsec interfaces, SPDs and the entries of ours), plus the CHILD_SAs we track.
 */
export async function inspect(b: Backend, name: string): Promise<unknown> {
  if (!b.client.connected) {
    return { dataplane: name, connected: false, socket: b.client.socketPath, children: trackedView(b) };
  }
  await b.gate;
  const [sas, prots, itfs, ifs, spds] = await Promise.all([
    dumpAll(b, 'ipsec_sa_v5_dump', { sa_id: U32_MAX }),
    dumpAll(b, 'ipsec_tunnel_protect_dump', { sw_if_index: U32_MAX }),
    dumpAll(b, 'ipsec_itf_dump', { sw_if_index: U32_MAX }),
    dumpAll(b, 'sw_interface_dump', { sw_if_index: U32_MAX, name_filter_valid: false, name_filter: '' }),
    dumpAll(b, 'ipsec_spds_dump', {}),
  ]);
  const ourSpds = spds.filter((d) => isOurId(d.spd_id));
  const spdEntries = await Promise.all(ourSpds.map((d) => dumpAll(b, 'ipsec_spd_dump', { spd_id: d.spd_id, sa_id: U32_MAX })));
  const entriesOf = new Map(ourSpds.map((d, i) => [d.spd_id, spdEntries[i]!]));
  const ifName = new Map(ifs.map((i) => [i.sw_if_index, i.interface_name]));
  const ifFlags = new Map(ifs.map((i) => [i.sw_if_index, i.flags]));
  const nameOf = (sw: number): string | number => ifName.get(sw) ?? sw;
  const spiOf = new Map(sas.map((d) => [d.entry.sad_id, hex8(d.entry.spi)]));
  // VPP names the interface of an SA only when it marked it IS_PROTECT, which it never does for
  // protections on ipsec interfaces: the protection that uses the SA names it.
  const protectedOn = new Map<number, number>();
  for (const d of prots) for (const id of [d.tun.sa_out, ...d.tun.sa_in]) if (!protectedOn.has(id)) protectedOn.set(id, d.tun.sw_if_index);
  const bySad = new Map<number, number>();
  for (const st of b.children.values()) {
    bySad.set(st.saIn, st.child.childId);
    bySad.set(st.saOut, st.child.childId);
  }
  return {
    dataplane: name,
    socket: b.client.socketPath,
    connected: true,
    vpp_version: b.client.vppVersion ?? null,
    sas: sas.map((d) => {
      const e = d.entry;
      const tun = (e.flags & IS_TUNNEL) !== 0;
      return {
        sad_id: e.sad_id,
        ours: isOurId(e.sad_id),
        child_id: bySad.get(e.sad_id) ?? null,
        spi: hex8(e.spi),
        direction: e.flags & IS_INBOUND ? 'in' : 'out',
        protocol: e.protocol === PROTO_ESP ? 'esp' : e.protocol === PROTO_AH ? 'ah' : e.protocol,
        crypto: enumName(IpsecCryptoAlg, e.crypto_algorithm, 'IPSEC_API_CRYPTO_ALG_'),
        crypto_algorithm: e.crypto_algorithm,
        crypto_key_bytes: e.crypto_key.length,
        integrity: enumName(IpsecIntegAlg, e.integrity_algorithm, 'IPSEC_API_INTEG_ALG_'),
        integrity_algorithm: e.integrity_algorithm,
        integrity_key_bytes: e.integrity_key.length,
        flags: e.flags,
        flag_names: flagNames(e.flags),
        tunnel_src: tun ? apiAddressText(e.tunnel.src, null) : null,
        tunnel_dst: tun ? apiAddressText(e.tunnel.dst, null) : null,
        tunnel_table: tun ? e.tunnel.table_id : null,
        udp_encap: e.flags & UDP_ENCAP ? { src_port: e.udp_src_port, dst_port: e.udp_dst_port } : null,
        replay_window: e.anti_replay_window_size,
        interface: d.sw_if_index !== U32_MAX ? nameOf(d.sw_if_index) : protectedOn.has(e.sad_id) ? nameOf(protectedOn.get(e.sad_id)!) : null,
        stat_index: d.stat_index,
        thread_index: d.thread_index,
        seq_outbound: d.seq_outbound.toString(),
        last_seq_inbound: d.last_seq_inbound.toString(),
      };
    }),
    tunnel_protections: prots.map((d) => ({
      interface: nameOf(d.tun.sw_if_index),
      sw_if_index: d.tun.sw_if_index,
      nh: apiAddressText(d.tun.nh, null),
      sa_out: d.tun.sa_out,
      sa_in: d.tun.sa_in,
      spi_out: spiOf.get(d.tun.sa_out) ?? null,
      spi_in: d.tun.sa_in.map((id) => spiOf.get(id) ?? null),
    })),
    interfaces: itfs.map((d) => ({
      name: ifName.get(d.itf.sw_if_index) ?? `ipsec${d.itf.user_instance}`,
      sw_if_index: d.itf.sw_if_index,
      instance: d.itf.user_instance,
      mode: d.itf.mode === TunnelMode.TUNNEL_API_MODE_P2P ? 'p2p' : 'p2mp',
      admin_up: ((ifFlags.get(d.itf.sw_if_index) ?? 0) & ADMIN_UP) !== 0,
    })),
    spds: spds.map((d) => ({
      spd_id: d.spd_id,
      ours: isOurId(d.spd_id),
      policies: d.npolicies,
      ...(entriesOf.has(d.spd_id)
        ? {
            // IPv6 entries read as IPv6 (VPP reports an address within ::/96 as IPv4).
            entries: entriesOf.get(d.spd_id)!.map(({ entry }) => spdEntryV2(entry)).map((p) => ({
              priority: p.priority,
              direction: p.is_outbound ? 'out' : 'in',
              action: enumName(IpsecSpdAction, p.policy, 'IPSEC_API_SPD_ACTION_'),
              sa_id: p.policy === IpsecSpdAction.IPSEC_API_SPD_ACTION_PROTECT ? p.sa_id : null,
              protocol: p.protocol,
              local: `${apiAddressText(p.local_address_start, null)}-${apiAddressText(p.local_address_stop, null)}`,
              remote: `${apiAddressText(p.remote_address_start, null)}-${apiAddressText(p.remote_address_stop, null)}`,
              local_ports: `${p.local_port_start}-${p.local_port_stop}`,
              remote_ports: `${p.remote_port_start}-${p.remote_port_stop}`,
            })),
          }
        : {}),
    })),
    children: trackedView(b),
    calls: b.counters.calls,
  };
}

/** The state tracked for a child (tests and diagnostics). */
export function childView(
  b: Backend,
  childId: number,
): Readonly<{ saIn: number; saOut: number; interface?: string; swIfIndex?: number; mode: VppMode }> | undefined {
  const st = b.children.get(childId);
  if (!st) return undefined;
  return {
    saIn: st.saIn,
    saOut: st.saOut,
    mode: st.child.vppMode,
    ...(st.itfName !== undefined ? { interface: st.itfName } : {}),
    ...(st.swIfIndex !== undefined ? { swIfIndex: st.swIfIndex } : {}),
  };
}

/** An enum value's name without its prefix, lower-case (e.g. "aes_gcm_256"); the number when unknown. */
function enumName(values: Readonly<Record<string, number>>, v: number, prefix: string): string | number {
  for (const [k, x] of Object.entries(values)) if (x === v) return k.startsWith(prefix) ? k.slice(prefix.length).toLowerCase() : k;
  return v;
}

/** The names of the SA flags that are set (unknown bits as numbers). */
function flagNames(flags: number): (string | number)[] {
  const out: (string | number)[] = [];
  let rest = flags >>> 0;
  for (const [k, bit] of Object.entries(IpsecSadFlags)) {
    if (bit !== 0 && (rest & bit) === bit) {
      out.push(k.slice('IPSEC_API_SAD_FLAG_'.length).toLowerCase());
      rest = (rest & ~bit) >>> 0;
    }
  }
  if (rest !== 0) out.push(rest);
  return out;
}
