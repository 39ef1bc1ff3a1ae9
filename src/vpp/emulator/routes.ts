/**
 * The VPP emulator's FIB: IP tables (with their API and interface locks) and API-added routes
 * (FDio/vpp src/vnet/ip/ip_api.c, src/vnet/fib/fib_api.c, fib_table.c).
 */

import type { Address, FibPath, VppMessageTypes } from '../defs.generated.ts';
import { parseIp, AF_IP4, AF_IP6 } from '../address.ts';
import { VppErr } from '../errors.ts';
import { addrText, U32_MAX, type EmuCtx } from './common.ts';
import type { VppEmulatorState } from './tables.ts';

/**
 * vl_api_ip_table_add_del_t_handler → ip_table_create / ip_table_delete; table 0 is always there.
 * The API holds one lock on a table however often it adds it; deleting drops that lock, and the
 * table (with its routes) goes only when no interface is bound to it either.
 */
export function ip_table_add_del(s: VppEmulatorState, m: VppMessageTypes['ip_table_add_del'], ctx: EmuCtx): void {
  const af = m.table.is_ip6 ? 6 : 4;
  const id = m.table.table_id;
  if (id !== 0) {
    const t = s.tables.get(`${af}:${id}`);
    if (m.is_add ?? true) {
      if (t) t.api = true;
      else s.tables.set(`${af}:${id}`, { api: true });
    } else if (t) {
      t.api = false;
      dropTableIfUnused(s, af, id);
    }
  }
  ctx.reply({ retval: 0 });
}

/** fib_table_unlock: a table nothing holds any more (API lock, bound interfaces) is destroyed with its routes. */
export function dropTableIfUnused(s: VppEmulatorState, af: 4 | 6, id: number): void {
  if (id === 0) return;
  const key = `${af}:${id}`;
  const t = s.tables.get(key);
  if (!t || t.api) return;
  for (const i of s.interfaces.values()) if ((af === 6 ? i.table6 : i.table4) === id) return;
  s.tables.delete(key);
  for (const [k, r] of [...s.routes]) if (r.tableId === id && r.isIp6 === (af === 6)) s.routes.delete(k);
}

/**
 * vl_api_ip_route_add_del_t_handler → fib_api_table_id_decode (NO_SUCH_FIB),
 * fib_api_path_decode (NO_MATCHING_INTERFACE for an unknown sw_if_index), fib_api_route_add_del
 * (INVALID_PREFIX_LENGTH, NO_PATHS_IN_ROUTE; add without multipath replaces the paths; delete of
 * an absent route returns 0).
 */
export function ip_route_add_del(s: VppEmulatorState, m: VppMessageTypes['ip_route_add_del'], ctx: EmuCtx): void {
  const r = m.route;
  const isIp6 = r.prefix.address.af === AF_IP6;
  const fail = (rv: number): void => ctx.reply({ retval: rv, stats_index: U32_MAX });
  if (!s.tables.has(`${isIp6 ? 6 : 4}:${r.table_id}`)) return fail(VppErr.NO_SUCH_FIB);
  for (const p of r.paths) {
    if (p.sw_if_index !== U32_MAX && !s.interfaces.has(p.sw_if_index)) return fail(VppErr.NO_MATCHING_INTERFACE);
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
    const cur = s.routes.get(key);
    if (isAdd) {
      const route = cur ?? { tableId: r.table_id, isIp6, prefix, len: r.prefix.len, paths: [], statsIndex: s.nextRouteStat++ };
      for (const p of r.paths) if (!route.paths.some((q) => pathKey(q) === pathKey(p))) route.paths.push(p);
      s.routes.set(key, route);
      return ctx.reply({ retval: 0, stats_index: route.statsIndex });
    }
    if (cur) {
      const gone = new Set(r.paths.map(pathKey));
      cur.paths = cur.paths.filter((q) => !gone.has(pathKey(q)));
      if (cur.paths.length === 0) s.routes.delete(key);
    }
    return ctx.reply({ retval: 0, stats_index: U32_MAX });
  }
  if (isAdd) {
    if (r.paths.length === 0) return fail(VppErr.NO_PATHS_IN_ROUTE);
    const statsIndex = s.routes.get(key)?.statsIndex ?? s.nextRouteStat++;
    s.routes.set(key, { tableId: r.table_id, isIp6, prefix, len: r.prefix.len, paths: r.paths, statsIndex });
    return ctx.reply({ retval: 0, stats_index: statsIndex });
  }
  s.routes.delete(key);
  ctx.reply({ retval: 0, stats_index: U32_MAX });
}

/** vl_api_ip_route_dump_t_handler: the routes of one table (API-added routes only, here). */
export function ip_route_dump(s: VppEmulatorState, m: VppMessageTypes['ip_route_dump'], ctx: EmuCtx): void {
  const af = m.table.is_ip6 ? 6 : 4;
  if (!s.tables.has(`${af}:${m.table.table_id}`)) return;
  for (const r of s.routes.values()) {
    if (r.tableId !== m.table.table_id || r.isIp6 !== (af === 6)) continue;
    const { af: a, bytes } = parseIp(r.prefix);
    const address: Address = a === AF_IP4 ? { af: a, un: { ip4: bytes } } : { af: a, un: { ip6: bytes } };
    ctx.details({ route: { table_id: r.tableId, stats_index: r.statsIndex, prefix: { address, len: r.len }, paths: r.paths } });
  }
}
