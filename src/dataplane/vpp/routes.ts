/**
 * Routes to the remote traffic selectors (p2p: attached through the interface; p2mp: via the
 * peer's address on the shared interface). Routes are shared by reference: a path is added to VPP
 * for its first user and deleted with its last.
 */

import type { ChildInstall } from '../types.ts';
import { rangeToPrefixes, toApiAddress, zeroApiAddress } from '../../vpp/address.ts';
import type { FibPath } from '../../vpp/defs.generated.ts';
import { FibPathNhProto } from '../../vpp/defs.generated.ts';
import { VppErr } from '../../vpp/errors.ts';
import { isRouteGone, isVppError, req, U32_MAX, type Backend, type RouteSpec } from './state.ts';
import { parallel, type Undo } from './txn.ts';

/** The routes a CHILD_SA wants (none without vppRoutes), one per prefix of its remote selectors. */
export function routeSpecs(c: ChildInstall, swIfIndex: number, nh: string): RouteSpec[] {
  if (!c.vppRoutes) return [];
  const out: RouteSpec[] = [];
  const seen = new Set<string>();
  for (const ts of c.remoteTs) {
    for (const p of rangeToPrefixes(ts.start, ts.end)) {
      const isIp6 = ts.family === 6;
      const key = `${isIp6}|${p.addr}/${p.len}`;
      if (seen.has(key)) continue;
      seen.add(key);
      out.push({ table: c.vppTable, prefix: p.addr, len: p.len, isIp6, swIfIndex, nh });
    }
  }
  return out;
}

export function routeKey(r: RouteSpec): string {
  return `${r.table}|${r.isIp6 ? 6 : 4}|${r.prefix}/${r.len}|${r.swIfIndex}|${r.nh}`;
}

function fibPath(r: RouteSpec): FibPath {
  const nh = r.nh === '' ? zeroApiAddress(r.isIp6) : toApiAddress(r.nh);
  return {
    sw_if_index: r.swIfIndex,
    table_id: 0,
    rpf_id: 0,
    weight: 1,
    preference: 0,
    type: 0,
    flags: 0,
    proto: r.isIp6 ? FibPathNhProto.FIB_API_PATH_NH_PROTO_IP6 : FibPathNhProto.FIB_API_PATH_NH_PROTO_IP4,
    nh: { address: nh.un, via_label: 0, obj_id: 0, classify_table_index: U32_MAX },
    n_labels: 0,
    label_stack: [],
  };
}

/** Adds (or deletes) our path to a route (multipath, so routes of other tunnels to the same prefix stay). */
async function routeAdd(b: Backend, r: RouteSpec, isAdd: boolean): Promise<void> {
  await req(b, 'ip_route_add_del', {
    is_add: isAdd,
    is_multipath: true,
    route: {
      table_id: r.table,
      stats_index: 0,
      prefix: { address: toApiAddress(r.prefix), len: r.len },
      paths: [fibPath(r)],
    },
  });
}

/**
 * Makes `childId` a user of each route; a route's first user adds the path to VPP. Each new use
 * is registered for undo.
 */
export async function acquireRoutes(b: Backend, childId: number, routes: RouteSpec[], undo: Undo): Promise<void> {
  await parallel(
    routes.map(async (r) => {
      const k = routeKey(r);
      const e = b.routeUsers.get(k);
      if (e) {
        if (e.users.has(childId)) return undefined;
        e.users.add(childId);
        return () => releaseRoutes(b, childId, [r]);
      }
      b.routeUsers.set(k, { route: r, users: new Set([childId]) });
      try {
        await routeAdd(b, r, true);
      } catch (err) {
        const cur = b.routeUsers.get(k);
        cur?.users.delete(childId);
        if (cur && cur.users.size === 0) b.routeUsers.delete(k);
        throw err;
      }
      return () => releaseRoutes(b, childId, [r]);
    }),
    undo,
  );
}

/** Ends `childId`'s use of the routes; paths nobody uses any more are deleted from VPP. */
export async function releaseRoutes(b: Backend, childId: number, routes: RouteSpec[]): Promise<void> {
  const unused: RouteSpec[] = [];
  for (const r of routes) {
    const k = routeKey(r);
    const e = b.routeUsers.get(k);
    if (!e || !e.users.delete(childId)) continue;
    if (e.users.size === 0) {
      b.routeUsers.delete(k);
      unused.push(r);
    }
  }
  await Promise.all(
    unused.map((r) =>
      routeAdd(b, r, false).catch(async (e: unknown) => {
        if (!isRouteGone(e)) throw e;
        if (isVppError(e, VppErr.NO_MATCHING_INTERFACE)) await deleteOrphanedRoute(b, r);
      }),
    ),
  );
}

/**
 * The interface of a path was deleted under us (an operator deleted a shared p2mp interface): VPP
 * keeps the route, its path naming the gone sw_if_index, and answers NO_MATCHING_INTERFACE to a
 * delete by path. Such a path would come back to life on the next interface VPP gives that
 * sw_if_index, so the route is deleted by prefix (its whole API entry), unless another path of ours
 * to the same prefix is still in use.
 */
async function deleteOrphanedRoute(b: Backend, r: RouteSpec): Promise<void> {
  for (const e of b.routeUsers.values()) {
    const o = e.route;
    if (o.table === r.table && o.isIp6 === r.isIp6 && o.prefix === r.prefix && o.len === r.len) return;
  }
  await req(b, 'ip_route_add_del', {
    is_add: false,
    is_multipath: false,
    route: { table_id: r.table, stats_index: 0, prefix: { address: toApiAddress(r.prefix), len: r.len }, paths: [] },
  }).catch((e: unknown) => {
    if (!isRouteGone(e)) throw e;
  });
  b.log.warn({ prefix: `${r.prefix}/${r.len}`, table: r.table }, 'route through a deleted interface removed by prefix');
}

/** Forgets `childId`'s route uses without touching VPP (it lost them). */
export function forgetRoutes(b: Backend, childId: number, routes: RouteSpec[]): void {
  for (const r of routes) {
    const k = routeKey(r);
    const e = b.routeUsers.get(k);
    if (e?.users.delete(childId) && e.users.size === 0) b.routeUsers.delete(k);
  }
}
