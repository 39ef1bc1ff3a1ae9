/**
 * Protection groups (p2p and p2mp): the CHILD_SAs that share one tunnel protection. The
 * protection's sa_out is the outbound SA of the newest member (but see groupProtection), its sa_in
 * the inbound SAs of the (up to 4) newest members. Changes to a group run in its queue (`grp:<key>`).
 */

import { toApiAddress } from '../../vpp/address.ts';
import { acquireRoutes, releaseRoutes, routeSpecs } from './routes.ts';
import { removeGone, req, type Backend, type InstalledChild, type Snapshot } from './state.ts';
import type { Undo } from './txn.ts';

/**
 * The protection of a group: the newest member's outbound SA (skipping a rekey we answered while
 * the child it replaces is still a member: see ChildInstall.outboundAfterReplaced), the newest 4
 * members' inbound SAs.
 */
function groupProtection(b: Backend, key: string, override?: Map<number, InstalledChild>): { sa_out: number; sa_in: number[] } | undefined {
  const ids = b.groups.get(key);
  if (!ids || ids.size === 0) return undefined;
  const states: InstalledChild[] = [];
  for (const id of ids) {
    const s = override?.get(id) ?? b.children.get(id);
    if (s) states.push(s);
  }
  if (states.length === 0) return undefined;
  states.sort((x, y) => x.seq - y.seq);
  let out = states[states.length - 1]!;
  for (let i = states.length - 1; i >= 0; i--) {
    const s = states[i]!;
    const waits = s.child.outboundAfterReplaced === true && s.child.replaces !== undefined && ids.has(s.child.replaces);
    if (!waits) {
      out = s;
      break;
    }
  }
  return { sa_out: out.saOut, sa_in: states.slice(-4).map((s) => s.saIn) };
}

/** Programs a group's protection from its members (deleted when it has none). Run in the group's queue. */
export async function applyGroup(b: Backend, key: string, sw: number, nh: string, pending?: Map<number, InstalledChild>): Promise<void> {
  const p = groupProtection(b, key, pending);
  if (p) {
    await req(b, 'ipsec_tunnel_protect_update', { tunnel: { sw_if_index: sw, nh: toApiAddress(nh), ...p } });
  } else {
    await removeGone(() => req(b, 'ipsec_tunnel_protect_del', { sw_if_index: sw, nh: toApiAddress(nh) }));
  }
}

/** Adds `st` to its group (st.group) and updates the protection; undo takes it out again. */
export async function joinGroup(b: Backend, st: InstalledChild, undo: Undo): Promise<void> {
  const key = st.group!;
  const sw = st.swIfIndex!;
  const nh = st.nh!;
  const id = st.child.childId;
  await b.queue.run(`grp:${key}`, async () => {
    let members = b.groups.get(key);
    if (!members) {
      members = new Set();
      b.groups.set(key, members);
    }
    const added = !members.has(id);
    members.add(id);
    const m = members;
    undo.push(() =>
      b.queue.run(`grp:${key}`, async () => {
        if (added) m.delete(id);
        if (m.size === 0 && b.groups.get(key) === m) b.groups.delete(key);
        await applyGroup(b, key, sw, nh);
      }),
    );
    await applyGroup(b, key, sw, nh, new Map([[id, st]]));
  });
}

/** Takes child `id` out of group `key` (without touching VPP). True when no member is left. */
export function dropMember(b: Backend, key: string, id: number): boolean {
  const members = b.groups.get(key);
  members?.delete(id);
  const last = !members || members.size === 0;
  if (last) b.groups.delete(key);
  return last;
}

/**
 * Adds `st` (its interface and next hop set) to its group, then its routes through that interface
 * (`routeNh`: the next hop, '' for an attached path). Undo takes both back.
 */
export async function joinWithRoutes(b: Backend, st: InstalledChild, routeNh: string, undo: Undo): Promise<void> {
  await joinGroup(b, st, undo);
  const routes = routeSpecs(st.child, st.swIfIndex!, routeNh);
  await acquireRoutes(b, st.child.childId, routes, undo);
  st.routes = routes;
}

/**
 * Takes `st` out of its group: the protection of the remaining members is programmed (after a
 * rekey: the new SAs alone; none when no member is left) and st's routes are released. When st was
 * the last member and `whenLast` is given, `whenLast` runs instead (in the group's queue).
 */
export async function leaveWithRoutes(b: Backend, st: InstalledChild, whenLast?: () => Promise<void>): Promise<void> {
  if (st.group === undefined || st.swIfIndex === undefined) return;
  const g = st.group;
  const sw = st.swIfIndex;
  const id = st.child.childId;
  await b.queue.run(`grp:${g}`, async () => {
    const last = dropMember(b, g, id);
    if (last && whenLast) return whenLast();
    await applyGroup(b, g, sw, st.nh!);
    await releaseRoutes(b, id, st.routes);
  });
}

/** After a rebuild (update()) moved the CHILD_SA to another group: the previous group goes on without it. */
export async function retireGroup(b: Backend, prev: InstalledChild, st: InstalledChild): Promise<void> {
  if (prev.group === undefined || prev.group === st.group) return;
  const g = prev.group;
  await b.queue.run(`grp:${g}`, async () => {
    dropMember(b, g, st.child.childId);
    await applyGroup(b, g, prev.swIfIndex!, prev.nh!);
  });
}

/** A member of group `key` that is installed (not `except`, e.g. the one being replayed), if any. */
export function liveMember(b: Backend, key: string | undefined, except: number): InstalledChild | undefined {
  if (key === undefined) return undefined;
  for (const id of b.groups.get(key) ?? []) {
    const s = id === except ? undefined : b.children.get(id);
    if (s) return s;
  }
  return undefined;
}

/** VPP has a protection on the CHILD_SA's interface that uses its SAs. */
export function protectionIntact(st: InstalledChild, snap: Snapshot): boolean {
  return snap.prots.some((p) => p.swIfIndex === st.swIfIndex && (p.saOut === st.saOut || p.saIn.includes(st.saIn)));
}
