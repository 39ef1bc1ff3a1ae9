/**
 * The VPP emulator's tunnel protections: which SAs protect an ipsec interface (or one peer of a
 * p2mp one), with the SA locks they hold (FDio/vpp src/vnet/ipsec/ipsec_tun.c, ipsec_api.c).
 */

import type { Address, VppMessageTypes } from '../defs.generated.ts';
import { VppErr } from '../errors.ts';
import { addrText, MODE_P2P, U32_MAX, type EmuCtx, type EmuProtection } from './common.ts';
import { F_TUNNEL, unlockSa } from './sad.ts';
import type { VppEmulatorState } from './tables.ts';

/** The key of a protection in `protections`: the interface, and for a p2mp one also the next hop. */
function protectionKey(s: VppEmulatorState, swIfIndex: number, nh: Address): string {
  const itf = s.interfaces.get(swIfIndex);
  // ipsec_tun_protect_find: a p2p interface has one protection whatever the next hop.
  if (itf?.ipsec?.mode === MODE_P2P) return `${swIfIndex}`;
  return `${swIfIndex}|${addrText(nh)}`;
}

/** Lets go of the SA locks a protection holds (it is gone from `protections` already). */
export function releaseProtection(s: VppEmulatorState, p: EmuProtection): void {
  // ipsec_tun_protect_unconfig: unlock sa_out and every sa_in.
  const out = s.sas.get(p.saOut);
  if (out) unlockSa(s, out);
  for (const id of p.saIn) {
    const sa = s.sas.get(id);
    if (sa) unlockSa(s, sa);
  }
}

/**
 * vl_api_ipsec_tunnel_protect_update_t_handler → ipsec_tun_protect_update (ipsec_tun.c):
 * INVALID_SW_IF_INDEX for an unknown interface (VALIDATE_SW_IF_INDEX) or one that is not a
 * tunnel; LIMIT_EXCEEDED above 4 inbound SAs; INVALID_VALUE for an unknown SA;
 * INVALID_DST_ADDRESS when the interface has no encap and sa_out is not a tunnel SA. An existing
 * protection gets its SAs replaced (new ones locked, old ones unlocked).
 */
export function ipsec_tunnel_protect_update(s: VppEmulatorState, m: VppMessageTypes['ipsec_tunnel_protect_update'], ctx: EmuCtx): void {
  const t = m.tunnel;
  const itf = s.interfaces.get(t.sw_if_index);
  if (!itf) return ctx.reply({ retval: VppErr.INVALID_SW_IF_INDEX });
  if (t.sa_in.length > 4) return ctx.reply({ retval: VppErr.LIMIT_EXCEEDED });
  for (const id of t.sa_in) if (!s.sas.has(id)) return ctx.reply({ retval: VppErr.INVALID_VALUE });
  const out = s.sas.get(t.sa_out);
  if (!out) return ctx.reply({ retval: VppErr.INVALID_VALUE });
  const key = protectionKey(s, t.sw_if_index, t.nh);
  const existing = s.protections.get(key);
  if (!existing) {
    if (!itf.ipsec) return ctx.reply({ retval: VppErr.INVALID_SW_IF_INDEX });
    if (!(out.flags & F_TUNNEL)) return ctx.reply({ retval: VppErr.INVALID_DST_ADDRESS });
  }
  // ipsec_tun_protect_config: lock the new SAs before the old ones are let go.
  out.locks++;
  for (const id of t.sa_in) s.sas.get(id)!.locks++;
  if (existing) releaseProtection(s, existing);
  s.protections.set(key, { swIfIndex: t.sw_if_index, nh: t.nh, saOut: t.sa_out, saIn: t.sa_in });
  ctx.reply({ retval: 0 });
}

/** vl_api_ipsec_tunnel_protect_del_t_handler → ipsec_tun_protect_del: NO_SUCH_ENTRY when absent. */
export function ipsec_tunnel_protect_del(s: VppEmulatorState, m: VppMessageTypes['ipsec_tunnel_protect_del'], ctx: EmuCtx): void {
  if (!s.interfaces.has(m.sw_if_index)) return ctx.reply({ retval: VppErr.INVALID_SW_IF_INDEX });
  const key = protectionKey(s, m.sw_if_index, m.nh);
  const p = s.protections.get(key);
  if (!p) return ctx.reply({ retval: VppErr.NO_SUCH_ENTRY });
  s.protections.delete(key);
  releaseProtection(s, p);
  ctx.reply({ retval: 0 });
}

/** vl_api_ipsec_tunnel_protect_dump_t_handler: ~0 = every protection, else those of one interface. */
export function ipsec_tunnel_protect_dump(s: VppEmulatorState, m: VppMessageTypes['ipsec_tunnel_protect_dump'], ctx: EmuCtx): void {
  for (const p of s.protections.values()) {
    if (m.sw_if_index !== U32_MAX && p.swIfIndex !== m.sw_if_index) continue;
    ctx.details({ tun: { sw_if_index: p.swIfIndex, nh: p.nh, sa_out: p.saOut, sa_in: p.saIn } });
  }
}
