/**
 * policy mode: the SPD of `vppTable` (spd.ts) bound to `vppInterface` (or the back end's
 * policyInterface); PROTECT entries in both directions per selector pair. A CHILD_SA that replaces
 * one in the same SPD gets outbound entries of a higher priority (100..199, wrapping), so outbound
 * traffic switches the moment they are in; the old outbound entries are deleted then, its inbound
 * entries and SAs stay until remove(old).
 */

import type { ChildInstall } from '../types.ts';
import type { IpsecSpdEntryV2 } from '../../vpp/defs.generated.ts';
import { IpsecSpdAction } from '../../vpp/defs.generated.ts';
import type { ModeDriver } from './driver.ts';
import { addSa } from './sa.ts';
import { acquireSpd, deleteSpdEntries, PRIORITY, releaseSpd, spdEntry } from './spd.ts';
import { req, type Backend, type SpdState } from './state.ts';
import { parallel, type Undo } from './txn.ts';

const PROTECT = IpsecSpdAction.IPSEC_API_SPD_ACTION_PROTECT;

export const POLICY_DRIVER: ModeDriver = {
  requiredInterfaces(b, c) {
    const iface = c.vppInterface ?? b.opts.policyInterface;
    return iface ? [iface] : [];
  },
  async install(b, c, st, old, undo, preset) {
    const iface = c.vppInterface ?? b.opts.policyInterface!;
    const wasUser = b.spds.get(c.vppTable)?.users.has(c.childId) === true;
    let spd: SpdState | undefined;
    await parallel(
      [
        acquireSpd(b, c.vppTable, iface, c.childId, preset?.spdId).then((s) => {
          spd = s;
          return wasUser ? undefined : () => releaseSpd(b, c.vppTable, c.childId);
        }),
        addSa(b, st.saIn, c.inbound),
        addSa(b, st.saOut, c.outbound),
      ],
      undo,
    );
    st.spdTable = c.vppTable;
    st.spdId = spd!.spdId;
    st.itfName = iface;
    // Outbound traffic switches to the new SA the moment its entries are in: they outrank the old ones.
    const sameSpd = old !== undefined && old.spdTable === c.vppTable;
    st.outPriority = preset?.outPriority ?? (sameSpd ? nextPriority(old.outPriority ?? PRIORITY.PROTECT) : PRIORITY.PROTECT);
    // A replay restores exactly the entries the child had (a replaced child has no outbound ones
    // left), in the SPD it has now.
    const entries = preset
      ? preset.policies.map((e) => ({ ...e, spd_id: spd!.spdId }))
      : policyEntries(c, spd!.spdId, st.saIn, st.saOut, st.outPriority);
    await changeEntries(b, entries, true, undo);
    st.policies = entries;
    if (old && sameSpd && old.child.childId !== c.childId) {
      // The replaced child's outbound entries are no longer needed; its inbound entries and SAs stay
      // until remove(old).
      await changeEntries(
        b,
        old.policies.filter((e) => e.is_outbound),
        false,
        undo,
      );
      old.policies = old.policies.filter((e) => !e.is_outbound);
    }
  },

  async teardown(b, st) {
    await deleteSpdEntries(b, st.policies);
    if (st.spdTable !== undefined) await releaseSpd(b, st.spdTable, st.child.childId);
  },

  async retire(b, prev) {
    await deleteSpdEntries(b, prev.policies);
  },

  intact(st, snap) {
    return snap.spds.has(st.spdId ?? -1);
  },

  /** The SPD is judged with all its users by the resync. */
  ownPartsIntact() {
    return true;
  },

  rebuildsOnMove() {
    return false;
  },
};

/** The outbound PROTECT priority of a CHILD_SA that replaces one with priority `p`. */
function nextPriority(p: number): number {
  return p >= PRIORITY.PROTECT_MAX || p < PRIORITY.PROTECT ? PRIORITY.PROTECT : p + 1;
}

function policyEntries(c: ChildInstall, spdId: number, saIn: number, saOut: number, outPriority: number): IpsecSpdEntryV2[] {
  const out: IpsecSpdEntryV2[] = [];
  for (const l of c.localTs) {
    for (const r of c.remoteTs) {
      if (l.family !== r.family) continue;
      if (l.protocol !== 0 && r.protocol !== 0 && l.protocol !== r.protocol) continue;
      const proto = l.protocol || r.protocol;
      out.push(spdEntry(spdId, outPriority, true, PROTECT, saOut, l, r, proto));
      // Inbound ESP is matched by SPI (and tunnel endpoints): old and new entries coexist.
      out.push(spdEntry(spdId, PRIORITY.PROTECT, false, PROTECT, saIn, l, r, proto));
    }
  }
  return out;
}

/** Adds (or deletes) SPD entries at once; each change is registered for undo. */
async function changeEntries(b: Backend, entries: IpsecSpdEntryV2[], isAdd: boolean, undo: Undo): Promise<void> {
  await parallel(
    entries.map(async (entry) => {
      await req(b, 'ipsec_spd_entry_add_del_v2', { is_add: isAdd, entry });
      return () => req(b, 'ipsec_spd_entry_add_del_v2', { is_add: !isAdd, entry });
    }),
    undo,
  );
}
