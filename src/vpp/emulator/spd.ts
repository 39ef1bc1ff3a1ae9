/**
 * The VPP emulator's SPDs: adding and deleting them, binding them to interfaces, their entries and
 * dumps (FDio/vpp src/vnet/ipsec/ipsec_spd.c, ipsec_spd_policy.c, ipsec_api.c).
 */

import type { Address, IpsecSpdEntryV2, VppMessageTypes } from '../defs.generated.ts';
import { IpsecSpdAction } from '../defs.generated.ts';
import { parseIp, AF_IP4, AF_IP6 } from '../address.ts';
import { VppErr } from '../errors.ts';
import { addrText, U32_MAX, type EmuCtx, type EmuPolicy, type Obj } from './common.ts';
import { unlockSa } from './sad.ts';
import type { VppEmulatorState } from './tables.ts';

const BYPASS = IpsecSpdAction.IPSEC_API_SPD_ACTION_BYPASS;
const RESOLVE = IpsecSpdAction.IPSEC_API_SPD_ACTION_RESOLVE;
const PROTECT = IpsecSpdAction.IPSEC_API_SPD_ACTION_PROTECT;

/**
 * vl_api_ipsec_spd_add_del_t_handler → ipsec_add_del_spd (ipsec_spd.c). Deleting an SPD unbinds
 * it from its interfaces and frees only its per-type index vectors (vec_free): the policies stay
 * in VPP's policy pool and keep their SA locks (ipsec_add_del_policy takes one per PROTECT entry
 * and gives it back only when that entry is deleted, which needs the SPD). So an SA that an entry
 * of a deleted SPD used can no longer be freed: deleting it returns 0 and leaves it, id taken.
 * The emulator keeps such policies in `orphanPolicies`.
 */
export function ipsec_spd_add_del(s: VppEmulatorState, m: VppMessageTypes['ipsec_spd_add_del'], ctx: EmuCtx): void {
  const exists = s.spds.has(m.spd_id);
  if (exists && m.is_add) return ctx.reply({ retval: VppErr.ENTRY_ALREADY_EXISTS });
  if (!exists && !m.is_add) return ctx.reply({ retval: VppErr.NO_SUCH_ENTRY });
  if (m.is_add) {
    s.spds.set(m.spd_id, []);
    s.spdIndex.set(m.spd_id, s.spdPool.get());
  } else {
    for (const [sw, id] of [...s.spdBindings]) if (id === m.spd_id) s.spdBindings.delete(sw);
    const left = s.spds.get(m.spd_id)!;
    if (left.length > 0) ctx.warn(`SPD ${m.spd_id} deleted with ${left.length} entries: they keep their SA locks`);
    s.orphanPolicies.push(...left);
    s.spds.delete(m.spd_id);
    s.spdPool.put(s.spdIndex.get(m.spd_id)!);
    s.spdIndex.delete(m.spd_id);
  }
  ctx.reply({ retval: 0 });
}

/** vl_api_ipsec_interface_add_del_spd_t_handler → ipsec_set_interface_spd (ipsec_spd.c). */
export function ipsec_interface_add_del_spd(s: VppEmulatorState, m: VppMessageTypes['ipsec_interface_add_del_spd'], ctx: EmuCtx): void {
  if (!s.interfaces.has(m.sw_if_index)) return ctx.reply({ retval: VppErr.INVALID_SW_IF_INDEX });
  if (!s.spds.has(m.spd_id)) return ctx.reply({ retval: VppErr.SYSCALL_ERROR_1 }); // no such spd-id
  if (m.is_add) {
    if (s.spdBindings.has(m.sw_if_index)) return ctx.reply({ retval: VppErr.SYSCALL_ERROR_2 }); // spd already assigned
    s.spdBindings.set(m.sw_if_index, m.spd_id);
  } else {
    s.spdBindings.delete(m.sw_if_index);
  }
  ctx.reply({ retval: 0 });
}

/** Frees a deleted entry's pool index and, for PROTECT, its SA lock. */
function releasePolicy(s: VppEmulatorState, p: EmuPolicy): void {
  if (p.policy === PROTECT) {
    const sa = s.sas.get(p.saId);
    if (sa) unlockSa(s, sa);
  }
  s.policyPool.put(p.statIndex);
}

/**
 * vl_api_ipsec_spd_entry_add_del_v2_t_handler → ipsec_policy_mk_type / ipsec_add_del_policy
 * (ipsec_spd_policy.c): UNIMPLEMENTED for RESOLVE or an unknown action, SYSCALL_ERROR_1 for an
 * unknown SPD or (PROTECT) SA; entries are kept in descending priority; deleting an entry that
 * does not exist returns 0.
 */
export function ipsec_spd_entry_add_del_v2(s: VppEmulatorState, m: VppMessageTypes['ipsec_spd_entry_add_del_v2'], ctx: EmuCtx): void {
  const e: IpsecSpdEntryV2 = m.entry;
  const fail = (rv: number): void => ctx.reply({ retval: rv, stat_index: U32_MAX });
  if (e.policy > PROTECT || e.policy === RESOLVE) return fail(VppErr.UNIMPLEMENTED);
  const isIpv6 = e.remote_address_start.af === AF_IP6;
  // ipsec_policy_mk_type: outbound 0/1, inbound protect 2/3, bypass 4/5, discard 6/7
  const type = e.is_outbound ? (isIpv6 ? 1 : 0) : e.policy === PROTECT ? (isIpv6 ? 3 : 2) : e.policy === BYPASS ? (isIpv6 ? 5 : 4) : isIpv6 ? 7 : 6;
  const list = s.spds.get(e.spd_id);
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
      const sa = s.sas.get(p.saId);
      if (!sa) return fail(VppErr.SYSCALL_ERROR_1);
      sa.locks++;
    }
    p.statIndex = s.policyPool.get();
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
    releasePolicy(s, old!);
  }
  ctx.reply({ retval: 0, stat_index: U32_MAX });
}

/**
 * send_ipsec_spd_details: the addresses go through ip_address_encode with IP46_TYPE_ANY, so an
 * IPv6 address whose first 12 bytes are zero (such as ::, the start of "any") is reported as the
 * IPv4 address of its last 4 bytes.
 */
function policyEntry(p: EmuPolicy): Obj {
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
export function ipsec_spd_dump(s: VppEmulatorState, m: VppMessageTypes['ipsec_spd_dump'], ctx: EmuCtx): void {
  const list = s.spds.get(m.spd_id);
  if (!list) return;
  const sorted = [...list].sort((a, b) => a.type - b.type);
  for (const p of sorted) {
    if (m.sa_id === U32_MAX || m.sa_id === p.saId) ctx.details({ entry: policyEntry(p) });
  }
}

/** vl_api_ipsec_spds_dump_t_handler: in pool order. */
export function ipsec_spds_dump(s: VppEmulatorState, _m: VppMessageTypes['ipsec_spds_dump'], ctx: EmuCtx): void {
  const ids = [...s.spds.keys()].sort((a, b) => s.spdIndex.get(a)! - s.spdIndex.get(b)!);
  for (const id of ids) ctx.details({ spd_id: id, npolicies: s.spds.get(id)!.length });
}

/** vl_api_ipsec_spd_interface_dump_t_handler */
export function ipsec_spd_interface_dump(s: VppEmulatorState, m: VppMessageTypes['ipsec_spd_interface_dump'], ctx: EmuCtx): void {
  for (const [sw, spdId] of [...s.spdBindings].sort((a, b) => a[0] - b[0])) {
    // The reply carries the SPD's pool index (and the filter is one), not its id.
    const index = s.spdIndex.get(spdId)!;
    if (m.spd_index_valid && m.spd_index !== index) continue;
    ctx.details({ spd_index: index, sw_if_index: sw });
  }
}
