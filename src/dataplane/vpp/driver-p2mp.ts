/**
 * p2mp mode: one shared multipoint interface (`vppInterface`, e.g. "ipsec100", created when absent);
 * one tunnel protection per peer, keyed by the next hop = the peer's outer address; routes to the
 * remote selectors via that next hop. CHILD_SAs to the same peer share the protection (newest
 * outbound SA, up to 4 inbound SAs); a replaced CHILD_SA to the same peer is simply a member of the
 * group its successor joins.
 */

import { TunnelMode } from '../../vpp/defs.generated.ts';
import type { ModeDriver } from './driver.ts';
import { joinWithRoutes, leaveWithRoutes, protectionIntact, retireGroup } from './groups.ts';
import { configureInterface, ensureTable, interfaceIndex } from './interfaces.ts';
import { addSa } from './sa.ts';
import { isGone, parseIpText, req, type Backend } from './state.ts';
import { noUndo, parallel } from './txn.ts';

export const P2MP_DRIVER: ModeDriver = {
  requiredInterfaces(b) {
    return b.opts.unnumberedInterface ? [b.opts.unnumberedInterface] : [];
  },
  async install(b, c, st, _old, undo) {
    const iface = c.vppInterface!;
    const nh = c.outbound.dst.addr;
    st.itfName = iface;
    st.group = `${iface}|${parseIpText(nh)}`;
    st.nh = nh;
    await parallel(
      [
        sharedInterface(b, iface, c.vppTable).then((sw) => {
          st.swIfIndex = sw;
          return undefined;
        }),
        addSa(b, st.saIn, c.inbound),
        addSa(b, st.saOut, c.outbound),
        noUndo(ensureTable(b, c.vppTable)),
      ],
      undo,
    );
    // A replaced child to the same peer is a member of this group: its inbound SA stays in the protection.
    await joinWithRoutes(b, st, nh, undo);
  },

  async teardown(b, st) {
    await leaveWithRoutes(b, st);
  },

  retire: retireGroup,
  intact: protectionIntact,
  ownPartsIntact: protectionIntact,

  /** The protection is keyed by the peer address: a new one needs new SAs. */
  rebuildsOnMove(c, remote) {
    return parseIpText(remote.addr) !== parseIpText(c.outbound.dst.addr);
  },
};

/** The shared interface: looked up, or created (ipsecN, multipoint) and configured. */
async function sharedInterface(b: Backend, name: string, table: number): Promise<number> {
  return b.queue.run(`itf:${name}`, async () => {
    const known = await interfaceIndex(b, name);
    if (known !== undefined) return known;
    const instance = Number(name.slice('ipsec'.length));
    const r = await req(b, 'ipsec_itf_create', { itf: { user_instance: instance, mode: TunnelMode.TUNNEL_API_MODE_MP, sw_if_index: 0 } });
    try {
      await configureInterface(b, r.sw_if_index, table);
    } catch (e) {
      // Not half-configured: the interface goes again, so the next install starts over.
      try {
        await req(b, 'ipsec_itf_delete', { sw_if_index: r.sw_if_index });
      } catch (e2) {
        if (!isGone(e2)) b.log.warn({ interface: name, err: (e2 as Error).message }, 'could not delete a shared interface that failed to configure');
      }
      throw e;
    }
    b.ifIndex.set(name, r.sw_if_index);
    b.log.info({ interface: name, sw_if_index: r.sw_if_index }, 'created shared p2mp ipsec interface');
    return r.sw_if_index;
  });
}
