/**
 * p2p mode: an ipsec interface per tunnel (ipsec_itf_create, P2P, instance from p2pInstanceBase
 * up), admin up, unnumbered to `unnumberedInterface` when configured, bound to `vppTable`; its
 * protection carries the SAs; routes to the remote selectors go through the interface. A CHILD_SA
 * that replaces one (or, in a replay, one whose group already has a member back in VPP) joins that
 * interface; the interface lives as long as its group has members.
 */

import { zeroApiAddress } from '../../vpp/address.ts';
import { TunnelMode } from '../../vpp/defs.generated.ts';
import type { ModeDriver } from './driver.ts';
import { joinWithRoutes, leaveWithRoutes, liveMember, protectionIntact, retireGroup } from './groups.ts';
import { allocInstance, freeInstance } from './ids.ts';
import { configureInterface, ensureTable } from './interfaces.ts';
import { acquireRoutes, releaseRoutes, routeSpecs } from './routes.ts';
import { addSa } from './sa.ts';
import { removeGone, req, type Backend, type InstalledChild, type Snapshot } from './state.ts';
import { noUndo, parallel } from './txn.ts';

export const P2P_DRIVER: ModeDriver = {
  requiredInterfaces(b) {
    return b.opts.unnumberedInterface ? [b.opts.unnumberedInterface] : [];
  },
  async install(b, c, st, old, undo, preset) {
    // Join the interface of the replaced child, or (replay) of a group member already back in VPP.
    const join = old?.group !== undefined && old.swIfIndex !== undefined ? old : liveMember(b, preset?.group, c.childId);
    if (join) {
      // Make-before-break on the same interface: one protection update with the new outbound SA and
      // the inbound SAs of every member.
      st.itfName = join.itfName!;
      st.itfInstance = join.itfInstance!;
      st.swIfIndex = join.swIfIndex!;
      st.group = join.group!;
      st.nh = join.nh ?? '0.0.0.0';
      await parallel([addSa(b, st.saIn, c.inbound), addSa(b, st.saOut, c.outbound)], undo);
      await joinWithRoutes(b, st, '', undo);
      return;
    }
    // New tunnel: two round trips. The SA adds, the interface and the table go out together
    // and are awaited; then everything that needs the sw_if_index and the SAs (admin up, VRF,
    // unnumbered, protection, routes) goes out together.
    const instance = preset?.itfInstance ?? allocInstance(b.ids);
    b.ids.usedInstances.add(instance);
    st.itfInstance = instance;
    st.itfName = `ipsec${instance}`;
    st.nh = '0.0.0.0';
    await parallel(
      [addSa(b, st.saIn, c.inbound), addSa(b, st.saOut, c.outbound), createInterface(b, st, instance), noUndo(ensureTable(b, c.vppTable))],
      undo,
    );
    const sw = st.swIfIndex!;
    const nh = zeroApiAddress(false);
    const routes = routeSpecs(c, sw, '');
    st.routes = routes;
    await parallel(
      [
        noUndo(configureInterface(b, sw, c.vppTable)),
        req(b, 'ipsec_tunnel_protect_update', { tunnel: { sw_if_index: sw, nh, sa_out: st.saOut, sa_in: [st.saIn] } }).then(
          () => () => req(b, 'ipsec_tunnel_protect_del', { sw_if_index: sw, nh }),
        ),
        noUndo(acquireRoutes(b, c.childId, routes, undo)),
      ],
      undo,
    );
    // Nothing can fail after this point: the group starts here.
    st.group = `p2p|${instance}`;
    b.groups.set(st.group, new Set([c.childId]));
  },

  async teardown(b, st) {
    await leaveWithRoutes(b, st, () => deleteInterface(b, st));
  },

  retire: retireGroup,

  intact,
  ownPartsIntact: intact,

  rebuildsOnMove() {
    return false;
  },
};

/** VPP has the interface and a protection on it that uses the CHILD_SA's SAs. */
function intact(st: InstalledChild, snap: Snapshot): boolean {
  return snap.itfs.some((i) => i.instance === st.itfInstance && i.swIfIndex === st.swIfIndex) && protectionIntact(st, snap);
}

async function createInterface(b: Backend, st: InstalledChild, instance: number): Promise<() => Promise<unknown>> {
  const r = await req(b, 'ipsec_itf_create', { itf: { user_instance: instance, mode: TunnelMode.TUNNEL_API_MODE_P2P, sw_if_index: 0 } });
  const sw = r.sw_if_index;
  st.swIfIndex = sw;
  b.ifIndex.set(st.itfName!, sw);
  return async (): Promise<unknown> => {
    b.ifIndex.delete(st.itfName!);
    return req(b, 'ipsec_itf_delete', { sw_if_index: sw });
  };
}

/**
 * The last CHILD_SA of a p2p interface is gone: the interface goes. Deleting it would also remove
 * its protection (ipsec_tun_interface_add_del); removing the protection first releases the SAs.
 */
async function deleteInterface(b: Backend, st: InstalledChild): Promise<void> {
  const sw = st.swIfIndex!;
  await releaseRoutes(b, st.child.childId, st.routes);
  await removeGone(() => req(b, 'ipsec_tunnel_protect_del', { sw_if_index: sw, nh: zeroApiAddress(false) }));
  await removeGone(() => req(b, 'ipsec_itf_delete', { sw_if_index: sw }));
  if (st.itfName) b.ifIndex.delete(st.itfName);
  if (st.itfInstance !== undefined) freeInstance(b.ids, st.itfInstance);
}
