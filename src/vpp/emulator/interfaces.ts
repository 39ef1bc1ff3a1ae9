/**
 * The VPP emulator's interfaces: admin state and its events, unnumbered, VRF binding, addresses and
 * dumps (FDio/vpp src/vnet/interface_api.c, src/vnet/ip/ip_api.c).
 */

import type { Address, VppMessageTypes } from '../defs.generated.ts';
import { IfStatusFlags } from '../defs.generated.ts';
import { parseIp, AF_IP4, AF_IP6 } from '../address.ts';
import { VppErr } from '../errors.ts';
import { U32_MAX, type EmuCtx, type EmuInterface, type Obj } from './common.ts';
import { dropTableIfUnused } from './routes.ts';
import type { VppEmulatorState } from './tables.ts';

const ADMIN_UP = IfStatusFlags.IF_STATUS_API_FLAG_ADMIN_UP;
const LINK_UP = IfStatusFlags.IF_STATUS_API_FLAG_LINK_UP;

/** An interface's if_status_flags (admin and link up). */
function ifFlags(i: EmuInterface): number {
  return (i.adminUp ? ADMIN_UP : 0) | (i.linkUp ? LINK_UP : 0);
}

/** vl_api_sw_interface_set_flags_t_handler (interface_api.c); ipsec interfaces follow admin state with link state. */
export function sw_interface_set_flags(s: VppEmulatorState, m: VppMessageTypes['sw_interface_set_flags'], ctx: EmuCtx): void {
  const i = s.interfaces.get(m.sw_if_index);
  if (!i) return ctx.reply({ retval: VppErr.INVALID_SW_IF_INDEX });
  const up = (m.flags & ADMIN_UP) !== 0;
  const before = ifFlags(i);
  i.adminUp = up;
  if (i.ipsec || i.devType !== 'local') i.linkUp = up;
  ctx.reply({ retval: 0 });
  if (ifFlags(i) !== before) {
    for (const [client, pid] of s.interfaceEventClients) {
      s.sendEvent(client, 'sw_interface_event', { client_index: client, pid, sw_if_index: i.swIfIndex, flags: ifFlags(i), deleted: false });
    }
  }
}

/**
 * vl_api_sw_interface_set_unnumbered_t_handler: unnumbered_sw_if_index is the interface made
 * unnumbered (INVALID_SW_IF_INDEX if unknown), sw_if_index the one lending its address
 * (INVALID_SW_IF_INDEX_2 if unknown, checked only when adding).
 */
export function sw_interface_set_unnumbered(s: VppEmulatorState, m: VppMessageTypes['sw_interface_set_unnumbered'], ctx: EmuCtx): void {
  const target = s.interfaces.get(m.unnumbered_sw_if_index);
  if (!target) return ctx.reply({ retval: VppErr.INVALID_SW_IF_INDEX });
  const lender = s.interfaces.get(m.sw_if_index);
  if (m.is_add && !lender) return ctx.reply({ retval: VppErr.INVALID_SW_IF_INDEX_2 });
  if (m.is_add) {
    // vnet_sw_interface_check_table_same: both interfaces in the same IPv4 and IPv6 tables.
    if (target.table4 !== lender!.table4 || target.table6 !== lender!.table6) return ctx.reply({ retval: VppErr.UNEXPECTED_INTF_STATE });
    target.unnumberedTo = m.sw_if_index;
  } else delete target.unnumberedTo;
  ctx.reply({ retval: 0 });
}

/** An interface's addresses of one family, as foreach_ip_interface_address with honor_unnumbered sees them (the lender's for an unnumbered interface). */
function addressesOf(s: VppEmulatorState, i: EmuInterface, af: 4 | 6): string[] {
  const src = i.unnumberedTo !== undefined ? s.interfaces.get(i.unnumberedTo) : i;
  return (src?.addresses ?? []).filter((a) => (a.includes(':') ? 6 : 4) === af);
}

/**
 * vl_api_sw_interface_set_table_t_handler → ip_table_bind: NO_SUCH_FIB for a table that does not
 * exist, ADDRESS_FOUND_FOR_INTERFACE when the interface has an address of that family (its own, or
 * its lender's when it is unnumbered). The table it leaves is let go (fib_table_unlock).
 */
export function sw_interface_set_table(s: VppEmulatorState, m: VppMessageTypes['sw_interface_set_table'], ctx: EmuCtx): void {
  const i = s.interfaces.get(m.sw_if_index);
  if (!i) return ctx.reply({ retval: VppErr.INVALID_SW_IF_INDEX });
  const af = m.is_ipv6 ? 6 : 4;
  if (!s.tables.has(`${af}:${m.vrf_id}`)) return ctx.reply({ retval: VppErr.NO_SUCH_FIB });
  if (addressesOf(s, i, af).length > 0) return ctx.reply({ retval: VppErr.ADDRESS_FOUND_FOR_INTERFACE });
  const before = af === 6 ? i.table6 : i.table4;
  if (af === 6) i.table6 = m.vrf_id;
  else i.table4 = m.vrf_id;
  dropTableIfUnused(s, af, before);
  ctx.reply({ retval: 0 });
}

/**
 * vl_api_ip_address_dump_t_handler: the interface's own addresses of one family; nothing for an
 * unnumbered interface (foreach_ip_interface_address without honor_unnumbered) or an unknown one.
 */
export function ip_address_dump(s: VppEmulatorState, m: VppMessageTypes['ip_address_dump'], ctx: EmuCtx): void {
  const i = s.interfaces.get(m.sw_if_index);
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
export function sw_interface_get_table(s: VppEmulatorState, m: VppMessageTypes['sw_interface_get_table'], ctx: EmuCtx): void {
  const i = s.interfaces.get(m.sw_if_index);
  if (!i) return ctx.reply({ retval: VppErr.INVALID_SW_IF_INDEX, vrf_id: U32_MAX });
  ctx.reply({ retval: 0, vrf_id: m.is_ipv6 ? i.table6 : i.table4 });
}

/**
 * vl_api_ip_unnumbered_dump_t_handler: the unnumbered interfaces and their lenders (~0: all; an
 * unknown sw_if_index: nothing).
 */
export function ip_unnumbered_dump(s: VppEmulatorState, m: VppMessageTypes['ip_unnumbered_dump'], ctx: EmuCtx): void {
  for (const i of [...s.interfaces.values()].sort((a, b) => a.swIfIndex - b.swIfIndex)) {
    if (m.sw_if_index !== U32_MAX && m.sw_if_index !== i.swIfIndex) continue;
    if (i.unnumberedTo !== undefined) ctx.details({ sw_if_index: i.swIfIndex, ip_sw_if_index: i.unnumberedTo });
  }
}

/** send_sw_interface_details: one interface as sw_interface_dump reports it. */
function ifDetails(i: EmuInterface): Obj {
  return {
    sw_if_index: i.swIfIndex,
    sup_sw_if_index: i.swIfIndex,
    l2_address: i.ipsec || i.devType === 'local' ? Buffer.alloc(6) : i.mac,
    flags: ifFlags(i),
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
export function sw_interface_dump(s: VppEmulatorState, m: VppMessageTypes['sw_interface_dump'], ctx: EmuCtx): void {
  const sw = m.sw_if_index ?? U32_MAX;
  if (!m.name_filter_valid && sw !== U32_MAX && sw !== 0) {
    const i = s.interfaces.get(sw);
    if (i) ctx.details(ifDetails(i));
    return;
  }
  const filter = m.name_filter_valid ? m.name_filter.toLowerCase() : undefined;
  for (const i of [...s.interfaces.values()].sort((a, b) => a.swIfIndex - b.swIfIndex)) {
    if (filter !== undefined && !i.name.toLowerCase().includes(filter)) continue;
    ctx.details(ifDetails(i));
  }
}

/** pub_sub_handler (api_helper_macros.h): enabling twice or disabling when off → INVALID_REGISTRATION. */
export function want_interface_events(s: VppEmulatorState, m: VppMessageTypes['want_interface_events'], ctx: EmuCtx): void {
  const has = s.interfaceEventClients.has(ctx.clientIndex);
  if (has && m.enable_disable) return ctx.reply({ retval: VppErr.INVALID_REGISTRATION });
  if (!has && !m.enable_disable) return ctx.reply({ retval: VppErr.INVALID_REGISTRATION });
  if (m.enable_disable) s.interfaceEventClients.set(ctx.clientIndex, m.pid);
  else s.interfaceEventClients.delete(ctx.clientIndex);
  ctx.reply({ retval: 0 });
}
