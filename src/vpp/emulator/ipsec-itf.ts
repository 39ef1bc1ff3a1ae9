/**
 * The VPP emulator's ipsec interfaces: creating, deleting and dumping them (FDio/vpp
 * src/vnet/ipsec/ipsec_itf.c, ipsec_api.c).
 */

import type { VppMessageTypes } from '../defs.generated.ts';
import { VppErr } from '../errors.ts';
import { MODE_MP, MODE_P2P, U32_MAX, type EmuCtx, type EmuInterface } from './common.ts';
import { releaseProtection } from './protection.ts';
import { dropTableIfUnused } from './routes.ts';
import type { VppEmulatorState } from './tables.ts';

/** vl_api_ipsec_itf_create_t_handler → ipsec_itf_create (ipsec_itf.c). */
export function ipsec_itf_create(s: VppEmulatorState, m: VppMessageTypes['ipsec_itf_create'], ctx: EmuCtx): void {
  const mode = m.itf.mode;
  if (mode !== MODE_P2P && mode !== MODE_MP) return ctx.reply({ retval: VppErr.INVALID_VALUE_2, sw_if_index: U32_MAX });
  // ipsec_itf_instance_alloc: ~0 = lowest free instance; explicit instance must be < 16384 and free.
  const want = m.itf.user_instance ?? U32_MAX;
  let instance: number;
  if (want === U32_MAX) {
    instance = 0;
    while (s.itfInstances.has(instance)) instance++;
    if (instance >= 16 * 1024) return ctx.reply({ retval: VppErr.INVALID_REGISTRATION, sw_if_index: U32_MAX });
  } else {
    if (want >= 16 * 1024 || s.itfInstances.has(want)) {
      return ctx.reply({ retval: VppErr.INVALID_REGISTRATION, sw_if_index: U32_MAX });
    }
    instance = want;
  }
  s.itfInstances.add(instance);
  const itf = s.addInterface(`ipsec${instance}`, 'IPSEC Tunnel');
  itf.ipsec = { instance, mode };
  ctx.reply({ retval: 0, sw_if_index: itf.swIfIndex });
}

/** vl_api_ipsec_itf_delete_t_handler → ipsec_itf_delete (ipsec_itf.c); protections go with it (ipsec_tun_interface_add_del). */
export function ipsec_itf_delete(s: VppEmulatorState, m: VppMessageTypes['ipsec_itf_delete'], ctx: EmuCtx): void {
  const itf = s.interfaces.get(m.sw_if_index);
  if (!itf || !itf.ipsec) return ctx.reply({ retval: VppErr.INVALID_SW_IF_INDEX });
  deleteInterface(s, itf);
  ctx.reply({ retval: 0 });
}

/** Deletes an interface with what hangs on it: protections, SPD binding, unnumbered borrowers, table locks. */
function deleteInterface(s: VppEmulatorState, itf: EmuInterface): void {
  for (const [k, p] of [...s.protections]) {
    if (p.swIfIndex === itf.swIfIndex) {
      s.protections.delete(k);
      releaseProtection(s, p);
    }
  }
  // API routes through the interface stay, their paths naming the deleted sw_if_index (and then
  // no longer deletable by path: fib_api_path_decode answers NO_MATCHING_INTERFACE).
  s.spdBindings.delete(itf.swIfIndex);
  for (const other of s.interfaces.values()) if (other.unnumberedTo === itf.swIfIndex) delete other.unnumberedTo;
  if (itf.ipsec) s.itfInstances.delete(itf.ipsec.instance);
  s.interfaces.delete(itf.swIfIndex);
  s.swIfPool.put(itf.swIfIndex);
  // ip4/ip6_sw_interface_add_del: the interface lets go of its tables (fib_table_bind to 0).
  dropTableIfUnused(s, 4, itf.table4);
  dropTableIfUnused(s, 6, itf.table6);
  for (const [client, pid] of s.interfaceEventClients) {
    s.sendEvent(client, 'sw_interface_event', { client_index: client, pid, sw_if_index: itf.swIfIndex, flags: 0, deleted: true });
  }
}

/** vl_api_ipsec_itf_dump_t_handler / send_ipsec_itf_details. */
export function ipsec_itf_dump(s: VppEmulatorState, m: VppMessageTypes['ipsec_itf_dump'], ctx: EmuCtx): void {
  for (const i of s.interfaces.values()) {
    if (!i.ipsec) continue;
    if (m.sw_if_index !== U32_MAX && m.sw_if_index !== i.swIfIndex) continue;
    ctx.details({ itf: { user_instance: i.ipsec.instance, mode: i.ipsec.mode, sw_if_index: i.swIfIndex } });
  }
}
