/**
 * The VPP emulator's punt sockets: registrations and punt reasons (FDio/vpp src/vnet/ip/punt_api.c,
 * punt.c).
 */

import type { Punt, VppMessageTypes } from '../defs.generated.ts';
import { VppErr } from '../errors.ts';
import type { EmuCtx } from './common.ts';
import type { VppEmulatorState } from './tables.ts';

/** The punt reasons the emulator has (ids from 1, in this order). */
export const IPSEC_PUNT_REASONS = ['ipsec4-spi-o-udp-0', 'ipsec4-no-such-tunnel', 'ipsec6-no-such-tunnel', 'ipsec6-spi-o-udp-0'];

/** vl_api_punt_decode (punt_api.c); undefined when the registration does not decode. */
function puntKey(s: VppEmulatorState, p: Punt): string | undefined {
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
      if (id === undefined || !s.puntReasons.some((r) => r.id === id)) return undefined;
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
export function punt_socket_register(s: VppEmulatorState, m: VppMessageTypes['punt_socket_register'], ctx: EmuCtx): void {
  const key = puntKey(s, m.punt);
  if (key === undefined) {
    ctx.warn('punt_socket_register: registration does not decode; no reply');
    return;
  }
  const server = s.options.puntSocket ?? '';
  let rv = 0;
  if (s.options.puntSocket === undefined) rv = -1;
  else if (m.header_version !== 1) rv = -1;
  else if (m.punt.type === 0 && m.punt.punt.l4?.protocol === 6) rv = -1; // TCP not supported
  else if (m.punt.type === 0 && m.punt.punt.l4?.port === 0) rv = -1; // port number required
  if (rv === 0) s.puntRegs.set(key, { punt: m.punt, pathname: m.pathname, key });
  ctx.reply({ retval: rv, pathname: server });
}

/** vl_api_punt_socket_deregister_t_handler → vnet_punt_socket_del. */
export function punt_socket_deregister(s: VppEmulatorState, m: VppMessageTypes['punt_socket_deregister'], ctx: EmuCtx): void {
  const key = puntKey(s, m.punt);
  if (key === undefined) return ctx.reply({ retval: VppErr.INVALID_VALUE });
  if (s.options.puntSocket === undefined) return ctx.reply({ retval: -1 });
  s.puntRegs.delete(key);
  ctx.reply({ retval: 0 });
}

/** vl_api_punt_socket_dump_t_handler: registrations of one punt type. */
export function punt_socket_dump(s: VppEmulatorState, m: VppMessageTypes['punt_socket_dump'], ctx: EmuCtx): void {
  if (m.type > 2) return;
  for (const r of s.puntRegs.values()) if (r.punt.type === m.type) ctx.details({ punt: r.punt, pathname: r.pathname });
}

/** vl_api_punt_reason_dump_t_handler: every reason, or the one whose name matches exactly. */
export function punt_reason_dump(s: VppEmulatorState, m: VppMessageTypes['punt_reason_dump'], ctx: EmuCtx): void {
  const name = m.reason.name;
  for (const r of s.puntReasons) {
    if (name && name !== r.name) continue;
    ctx.details({ reason: { id: r.id, name: r.name } });
  }
}
