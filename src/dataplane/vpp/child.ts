/**
 * The operations on one CHILD_SA: install (new, make-before-break, rebuilt by update(), or replayed
 * after a VPP restart), update (new endpoints) and remove, with the bookkeeping around them. What
 * depends on the mode is done by its driver (DRIVERS).
 */

import type { ChildInstall, InstallResult, SaEndpoint, SaParams } from '../types.ts';
import { validateChildInstall, validateEndpoints } from '../vpp-rules.ts';
import { DRIVERS } from './driver.ts';
import { dropMember } from './groups.ts';
import { allocSadId, freeInstance, freeSadIds } from './ids.ts';
import { forgetRoutes, releaseRoutes, routeKey } from './routes.ts';
import { delSa, updateSa } from './sa.ts';
import { ready, track, type Backend, type InstalledChild } from './state.ts';
import { rollback, type Undo } from './txn.ts';

export async function install(b: Backend, child: ChildInstall): Promise<InstallResult> {
  await ready(b);
  // The checks the memory dataplane makes too (vpp-rules.ts).
  const why = validateChildInstall(child, b.checkContext);
  if (why !== undefined) throw new Error(why);
  const old = child.replaces !== undefined ? b.children.get(child.replaces) : undefined;
  const lockKey = old ? `child:${old.child.childId}` : `child:${child.childId}`;
  return track(
    b,
    b.queue.run(lockKey, async () => {
      const st = await installChild(b, child, old);
      b.counters.installs++;
      const r: InstallResult = { saIn: st.saIn, saOut: st.saOut };
      if (st.itfName !== undefined) r.interface = st.itfName;
      return r;
    }),
  );
}

/**
 * Programs a CHILD_SA. `old` is the state it replaces: another child (make-before-break; `old`
 * stays installed until remove(old)) or the same child when its SAs are rebuilt (update()). With
 * `preset` (replay after a VPP restart), ids and the install order are reused instead of allocated.
 */
export async function installChild(b: Backend, c: ChildInstall, old: InstalledChild | undefined, preset?: InstalledChild): Promise<InstalledChild> {
  const undo: Undo = [];
  const rebuilt = old !== undefined && old.child.childId === c.childId ? old : undefined;
  const st: InstalledChild = {
    child: c,
    seq: preset?.seq ?? rebuilt?.seq ?? ++b.seq,
    saIn: preset?.saIn ?? allocSadId(b.ids),
    saOut: preset?.saOut ?? allocSadId(b.ids),
    routes: [],
    policies: [],
  };
  // A replaced child in another mode is left alone until remove(old) tears it down.
  const same = old && old.child.vppMode === c.vppMode ? old : undefined;
  try {
    await DRIVERS[c.vppMode].install(b, c, st, same, undo, preset);
  } catch (e) {
    b.counters.failures++;
    await rollback(b.log, undo, `install child ${c.childId}`);
    if (!preset) freeSadIds(b.ids, st.saIn, st.saOut);
    if (st.itfInstance !== undefined && st.itfInstance !== old?.itfInstance && !preset) freeInstance(b.ids, st.itfInstance);
    b.log.warn({ child_id: c.childId, err: (e as Error).message }, 'CHILD_SA install failed; rolled back');
    throw e;
  }
  // Committed: bookkeeping.
  b.ids.allocatedSpis.delete(c.inbound.spi);
  b.ids.liveSpis.set(c.inbound.spi, c.childId);
  b.children.set(c.childId, st);
  if (rebuilt) {
    // The new SAs are in use; what only the previous SAs of this child used goes now (best effort:
    // a failure leaves garbage that the next reconcile removes, not a broken CHILD_SA).
    try {
      await retireRebuilt(b, rebuilt, st);
    } catch (e) {
      b.log.warn({ child_id: c.childId, err: (e as Error).message }, 'could not remove the previous SAs of a rebuilt CHILD_SA');
    }
    for (const id of [rebuilt.saIn, rebuilt.saOut]) if (id !== st.saIn && id !== st.saOut) b.ids.liveSadIds.delete(id);
  }
  return st;
}

/** After a child's SAs were rebuilt (update()): removes what only its previous SAs used. */
async function retireRebuilt(b: Backend, prev: InstalledChild, st: InstalledChild): Promise<void> {
  const keep = new Set(st.routes.map(routeKey));
  await releaseRoutes(
    b,
    st.child.childId,
    prev.routes.filter((r) => !keep.has(routeKey(r))),
  );
  await DRIVERS[st.child.vppMode].retire(b, prev, st);
  const ids = [prev.saIn, prev.saOut].filter((x) => x !== st.saIn && x !== st.saOut);
  await Promise.all(ids.map((x) => delSa(b, x)));
}

export async function update(b: Backend, childId: number, local: SaEndpoint, remote: SaEndpoint, udpEncap: boolean): Promise<void> {
  await ready(b);
  const bad = validateEndpoints(local, remote);
  if (bad !== undefined) throw new Error(bad);
  await track(
    b,
    b.queue.run(`child:${childId}`, async () => {
      const st = b.children.get(childId);
      if (!st) throw new Error(`child ${childId} is not installed`);
      const c = st.child;
      const inbound: SaParams = { ...c.inbound, src: { ...remote }, dst: { ...local }, udpEncap };
      const outbound: SaParams = { ...c.outbound, src: { ...local }, dst: { ...remote }, udpEncap };
      const next: ChildInstall = { ...c, inbound, outbound };
      delete next.replaces;
      const moves = DRIVERS[c.vppMode].rebuildsOnMove(c, remote);
      if (udpEncap !== c.outbound.udpEncap || moves) {
        // VPP cannot switch UDP encapsulation on an SA (ipsec_sa_update changes ports only) and a
        // p2mp protection is keyed by the peer address: program new SAs (same SPIs and keys) and
        // ask the engine to rekey, as the outbound sequence numbers restart.
        await installChild(b, next, st);
        b.counters.updates++;
        b.listener.replayed?.([childId]);
        return;
      }
      // One SA after the other: when the second update fails, the first is set back, so the
      // CHILD_SA keeps working with the endpoints it had.
      await updateSa(b, st.saIn, inbound);
      try {
        await updateSa(b, st.saOut, outbound);
      } catch (e) {
        try {
          await updateSa(b, st.saIn, c.inbound);
        } catch (e2) {
          b.log.warn({ child_id: childId, err: (e2 as Error).message }, 'could not set the inbound SA back to its previous endpoints');
        }
        throw e;
      }
      st.child = next;
      b.counters.updates++;
    }),
  );
}

/**
 * Removes a CHILD_SA. While VPP is unreachable the removal is recorded and carried out by the
 * resync after the reconnect (a CHILD_SA VPP lost meanwhile is then simply not programmed
 * again); during a replay it waits for the replay, which leaves this CHILD_SA out.
 */
export async function remove(b: Backend, childId: number): Promise<void> {
  if (!b.children.has(childId) && !b.replaying.has(childId)) return;
  if (b.closed) throw new Error('VPP dataplane is closed');
  b.removing.add(childId);
  try {
    for (;;) {
      if (b.closed) throw new Error('VPP dataplane is closed');
      if (!b.client.connected) {
        if (b.pendingRelease === undefined) throw new Error('not connected to VPP');
        deferRemove(b, childId);
        return;
      }
      await b.gate;
      if (b.client.connected) break;
    }
    try {
      await track(
        b,
        b.queue.run(`child:${childId}`, async () => {
          const st = b.children.get(childId);
          if (!st) return;
          await teardown(b, st);
          forget(b, st);
          b.counters.removes++;
        }),
      );
    } catch (e) {
      // The connection went in the middle: the resync after the reconnect finishes the job.
      if (!b.client.connected && b.pendingRelease !== undefined && b.children.has(childId)) {
        deferRemove(b, childId);
        return;
      }
      throw e;
    }
  } finally {
    b.removing.delete(childId);
  }
}

function deferRemove(b: Backend, childId: number): void {
  b.deferredRemoves.add(childId);
  b.log.info({ child_id: childId }, 'VPP is unreachable: the CHILD_SA is removed once it is back');
}

/** remove() was called for this CHILD_SA and has not finished. */
export function removeRequested(b: Backend, id: number): boolean {
  return b.removing.has(id) || b.deferredRemoves.has(id);
}

/** Takes a CHILD_SA out of VPP: what its mode set up, then its SAs. */
export async function teardown(b: Backend, st: InstalledChild): Promise<void> {
  await DRIVERS[st.child.vppMode].teardown(b, st);
  await Promise.all([delSa(b, st.saIn), delSa(b, st.saOut)]);
}

/** Drops a CHILD_SA from the bookkeeping (after its teardown, or when VPP no longer has it). */
export function forget(b: Backend, st: InstalledChild): void {
  const id = st.child.childId;
  if (b.children.get(id) === st) b.children.delete(id);
  freeSadIds(b.ids, st.saIn, st.saOut);
  if (b.ids.liveSpis.get(st.child.inbound.spi) === id) b.ids.liveSpis.delete(st.child.inbound.spi);
}

/** Takes a CHILD_SA VPP no longer has out of its routes, protection group and SPD (without touching VPP). */
export function unlink(b: Backend, st: InstalledChild): void {
  const id = st.child.childId;
  forgetRoutes(b, id, st.routes);
  if (st.group) dropMember(b, st.group, id);
  if (st.spdTable !== undefined) b.spds.get(st.spdTable)?.users.delete(id);
}
