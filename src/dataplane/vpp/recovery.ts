/**
 * Start-up and VPP restarts: what VPP holds (snapshot), removing what looks like ours and is not
 * (reconcile), and after a reconnect the resync: removals that waited, finding what VPP lost,
 * removing strays, programming the lost CHILD_SAs again (replay) and telling the engine in paced
 * batches. A start-up reconcile or resync that fails as a whole is retried with backoff while its
 * connection lasts; operations wait at the gate until it is done.
 */

import type { VppConnectedInfo } from '../../vpp/client.ts';
import { VppApiError } from '../../vpp/client.ts';
import type { VppDetailsOf, VppDumpName, VppRequestBody } from '../../vpp/api.ts';
import { apiAddressText, toApiAddress } from '../../vpp/address.ts';
import { TunnelMode } from '../../vpp/defs.generated.ts';
import { hex8 } from '../../common/text.ts';
import { forget, installChild, removeRequested, teardown, unlink } from './child.ts';
import { DRIVERS } from './driver.ts';
import { liveMember } from './groups.ts';
import { freeInstance, isOurId, MAX_INSTANCES } from './ids.ts';
import { interfaceIndex } from './interfaces.ts';
import { delSa } from './sa.ts';
import { deleteSpd } from './spd.ts';
import { isGone, req, runGated, streamAll, U32_MAX, type Backend, type InstalledChild, type Snapshot } from './state.ts';

/** CHILD_SAs (protection groups) programmed again at the same time after a VPP restart. */
const REPLAY_CONCURRENCY = 256;

/** What reconcile keeps although it looks like ours. */
interface Keep {
  sas: Set<number>;
  instances: Set<number>;
  spds: Set<number>;
}

/**
 * Connects to VPP (retrying until it answers; an incompatible API fails at once) and removes
 * objects that look like ours (left by an earlier run). A dump or delete that fails is retried
 * with backoff while the connection lasts.
 */
export async function start(b: Backend): Promise<void> {
  if (b.started) return;
  b.started = true;
  if (!b.client.connected) await b.client.start();
  const gen = b.connGen;
  const run = runGated(b, async () => {
    const done = await retrying(b, gen, 'start-up reconcile', async () => {
      await reconcile(b, await snapshot(b), { sas: new Set(), instances: new Set(), spds: new Set() });
    });
    if (!done) throw new Error(b.closed ? 'VPP dataplane is closed' : 'connection to VPP lost during start-up');
  });
  b.startup = run.catch(() => {});
  await run;
}

// ------------------------------------------------------------------ connection changes

export function onDisconnected(b: Backend): void {
  b.connGen++;
  endPause(b);
  b.ifIndex = new Map();
  b.tablesReady = new Set();
  // A restarted VPP has other stat indexes: the resync's snapshot and re-adds fill them in again.
  b.statIndex.clear();
  for (const s of b.spds.values()) s.ready = false;
  if (b.closed || b.pendingRelease) return;
  // Operations wait until the reconnect's replay is done.
  let release!: () => void;
  const hold = new Promise<void>((r) => (release = r));
  const prev = b.gate;
  b.gate = Promise.all([prev, hold]).then(() => undefined);
  b.pendingRelease = release;
}

export function onConnected(b: Backend, info: VppConnectedInfo): void {
  b.connGen++;
  endPause(b);
  if (!info.reconnect || b.closed || !b.started) return;
  const gen = b.connGen;
  const release = b.pendingRelease;
  b.pendingRelease = undefined;
  const prev = b.resyncing;
  b.resyncing = (async (): Promise<void> => {
    // The start-up reconcile and the resync of an earlier connection end first, then the
    // operations that were running when the connection dropped (they fail).
    await b.startup;
    await prev;
    await Promise.allSettled([...b.ops]);
    if (b.beforeResync && gen === b.connGen && !b.closed) {
      await b.beforeResync().catch((e: unknown) => b.log.error({ err: (e as Error).message }, 'work before the resync failed'));
    }
    await retrying(b, gen, 'resync after VPP reconnect', () => resync(b, gen));
  })()
    .catch((e: unknown) => b.log.error({ err: (e as Error).message }, 'resync after VPP reconnect failed'))
    .finally(() => release?.());
}

/**
 * Runs `fn` until it succeeds, pausing with backoff after each failure, as long as the
 * connection `gen` lasts. False when it gave up because the connection went or close() was called.
 */
async function retrying(b: Backend, gen: number, what: string, fn: () => Promise<void>): Promise<boolean> {
  let delay = b.opts.resyncRetryMinMs;
  for (;;) {
    if (b.closed || gen !== b.connGen || !b.client.connected) return false;
    try {
      await fn();
      return true;
    } catch (e) {
      b.counters.resync_failures++;
      if (b.closed || gen !== b.connGen || !b.client.connected) return false;
      b.log.error({ err: (e as Error).message, retry_ms: delay }, `${what} failed; retrying`);
      await new Promise<void>((resolve) => {
        const done = (): void => {
          b.pause = undefined;
          resolve();
        };
        b.pause = { cancel: b.timers.after(delay, done), done };
      });
      delay = Math.min(b.opts.resyncRetryMaxMs, delay * 2);
    }
  }
}

/** Ends a resync's backoff pause early (the connection changed, or close()). */
export function endPause(b: Backend): void {
  if (!b.pause) return;
  b.pause.cancel();
  b.pause.done();
}

// ------------------------------------------------------------------ what VPP holds

/** Reads a dump record by record, keeping what `take` keeps. */
async function scan<N extends VppDumpName>(b: Backend, name: N, body: VppRequestBody<N>, take: (d: VppDetailsOf<N>) => void): Promise<void> {
  for await (const d of streamAll(b, name, body)) take(d);
}

/** What VPP holds, for reconcile and replay decisions: ids, SPIs and indexes (no keys). */
async function snapshot(b: Backend): Promise<Snapshot> {
  const snap: Snapshot = { sas: new Map(), itfs: [], prots: [], spds: new Set(), spdBound: new Set() };
  await Promise.all([
    scan(b, 'ipsec_sa_v5_dump', { sa_id: U32_MAX }, (d) => {
      snap.sas.set(d.entry.sad_id, { spi: d.entry.spi, swIfIndex: d.sw_if_index });
      if (isOurId(d.entry.sad_id)) b.statIndex.set(d.entry.sad_id, d.stat_index);
    }),
    scan(b, 'ipsec_itf_dump', { sw_if_index: U32_MAX }, (d) =>
      snap.itfs.push({ instance: d.itf.user_instance ?? U32_MAX, mode: d.itf.mode, swIfIndex: d.itf.sw_if_index }),
    ),
    scan(b, 'ipsec_tunnel_protect_dump', { sw_if_index: U32_MAX }, (d) =>
      snap.prots.push({ swIfIndex: d.tun.sw_if_index, nh: apiAddressText(d.tun.nh, ''), saOut: d.tun.sa_out, saIn: d.tun.sa_in }),
    ),
    scan(b, 'ipsec_spds_dump', {}, (d) => snap.spds.add(d.spd_id)),
    scan(b, 'ipsec_spd_interface_dump', { spd_index: 0, spd_index_valid: 0 }, (d) => snap.spdBound.add(d.sw_if_index)),
  ]);
  return snap;
}

/** VPP has both SAs of the CHILD_SA, with its SPIs. */
function sasIntact(st: InstalledChild, snap: Snapshot): boolean {
  return snap.sas.get(st.saIn)?.spi === st.child.inbound.spi && snap.sas.get(st.saOut)?.spi === st.child.outbound.spi;
}

// ------------------------------------------------------------------ strays

/**
 * Removes what looks like ours (see the header of index.ts) and is not in `keep`: tunnel
 * protections that use our SAs, p2p interfaces in our instance range without foreign protection,
 * our SPDs (entries first) and our SAs. Then records what VPP still holds in our ranges, so those
 * ids are not handed out.
 */
async function reconcile(b: Backend, snap: Snapshot, keep: Keep): Promise<number> {
  const ids = b.ids;
  let removed = 0;
  ids.foreignSpis.clear();
  ids.foreignInstances.clear();
  ids.instanceHint = 0;
  for (const [id, sa] of snap.sas) if (!isOurId(id)) ids.foreignSpis.add(sa.spi);
  const protsOn = new Map<number, Snapshot['prots']>();
  for (const p of snap.prots) {
    const list = protsOn.get(p.swIfIndex);
    if (list) list.push(p);
    else protsOn.set(p.swIfIndex, [p]);
  }
  const base = b.opts.p2pInstanceBase;
  const strayItf: Snapshot['itfs'] = [];
  for (const i of snap.itfs) {
    const inRange = i.mode === TunnelMode.TUNNEL_API_MODE_P2P && i.instance >= base && i.instance < MAX_INSTANCES;
    if (!inRange) {
      ids.foreignInstances.add(i.instance);
      continue;
    }
    if (keep.instances.has(i.instance)) continue;
    const prots = protsOn.get(i.swIfIndex) ?? [];
    if (prots.every((p) => isOurId(p.saOut) && p.saIn.every(isOurId))) {
      strayItf.push(i);
    } else {
      // Protected with SAs that are not ours: an operator's tunnel in our range.
      ids.foreignInstances.add(i.instance);
      b.log.warn({ interface: `ipsec${i.instance}`, sw_if_index: i.swIfIndex }, 'p2p ipsec interface in the range reserved for vpp-iked uses foreign SAs; left alone');
    }
  }
  const straySw = new Set(strayItf.map((i) => i.swIfIndex));
  // Protections that use our SAs but are not ours to keep (p2mp groups are rebuilt by replay).
  for (const p of snap.prots) {
    const usesOurs = isOurId(p.saOut) || p.saIn.some(isOurId);
    const kept = [p.saOut, ...p.saIn].every((id) => keep.sas.has(id));
    if ((usesOurs && !kept) || straySw.has(p.swIfIndex)) {
      const nh = toApiAddress(p.nh === '' ? '0.0.0.0' : p.nh);
      if (await bestEffort(b, 'tunnel protection', () => req(b, 'ipsec_tunnel_protect_del', { sw_if_index: p.swIfIndex, nh }))) removed++;
    }
  }
  for (const i of strayItf) {
    if (await bestEffort(b, `ipsec${i.instance}`, () => req(b, 'ipsec_itf_delete', { sw_if_index: i.swIfIndex }))) removed++;
    else ids.foreignInstances.add(i.instance); // still there: not ours to use
  }
  let deleted = false;
  for (const id of snap.spds) {
    if (isOurId(id) && !keep.spds.has(id)) {
      deleted = true;
      if (await bestEffort(b, `SPD ${hex8(id)}`, () => deleteSpd(b, id))) removed++;
    }
  }
  const straySas = [...snap.sas.keys()].filter((id) => isOurId(id) && !keep.sas.has(id));
  const done = await Promise.all(straySas.map((id) => bestEffort(b, `SA ${hex8(id)}`, () => delSa(b, id))));
  removed += done.filter(Boolean).length;
  deleted ||= straySas.length > 0;
  // An SA that something else still locks stays in VPP (ipsec_sad_entry_del returns 0): its id
  // must not be handed out. Same for SPD ids.
  let sasNow: Iterable<number> = snap.sas.keys();
  let spdsNow: Iterable<number> = snap.spds;
  if (deleted) {
    const sasLeft: number[] = [];
    const spdsLeft: number[] = [];
    await Promise.all([
      scan(b, 'ipsec_sa_v5_dump', { sa_id: U32_MAX }, (d) => sasLeft.push(d.entry.sad_id)),
      scan(b, 'ipsec_spds_dump', {}, (d) => spdsLeft.push(d.spd_id)),
    ]);
    sasNow = sasLeft;
    spdsNow = spdsLeft;
  }
  ids.avoidSadIds.clear();
  ids.avoidSpdIds.clear();
  for (const id of sasNow) if (isOurId(id) && !keep.sas.has(id)) ids.avoidSadIds.add(id);
  for (const id of spdsNow) if (isOurId(id) && !keep.spds.has(id)) ids.avoidSpdIds.add(id);
  if (ids.avoidSadIds.size > 0) {
    b.log.warn({ sad_ids: [...ids.avoidSadIds].slice(0, 20).map(hex8), count: ids.avoidSadIds.size }, 'VPP keeps SAs of ours that could not be deleted (still in use); their ids are not used again');
  }
  if (removed > 0) b.log.info({ removed }, 'removed stale vpp-iked objects from VPP');
  return removed;
}

/**
 * A stray removal: true when done (or already gone). VPP refusing it is logged and leaves the
 * object (its ids are then avoided); a lost connection or a timeout is thrown, so the whole
 * reconcile is tried again.
 */
async function bestEffort(b: Backend, what: string, fn: () => Promise<unknown>): Promise<boolean> {
  try {
    await fn();
    return true;
  } catch (e) {
    if (isGone(e)) return true;
    if (!(e instanceof VppApiError) || !b.client.connected) throw e;
    b.log.warn({ object: what, err: e.message }, 'could not remove a stale vpp-iked object from VPP; left in place');
    return false;
  }
}

// ------------------------------------------------------------------ resync

/** After a reconnect: removals that waited, re-program every CHILD_SA VPP lost, drop strays, tell the engine. */
async function resync(b: Backend, gen: number): Promise<void> {
  let snap = await snapshot(b);
  if (await removeDeferred(b, gen, snap)) snap = await snapshot(b);
  const lost = new Map<number, InstalledChild>();
  for (const st of b.children.values()) {
    if (!sasIntact(st, snap) || !DRIVERS[st.child.vppMode].ownPartsIntact(st, snap)) lost.set(st.child.childId, st);
  }
  const dropped = await checkSpds(b, snap, lost);
  await removeStrays(b, snap, lost, dropped);
  // Nothing above changed our bookkeeping (bar SPDs marked ready), so a failure up to here is
  // simply retried.
  for (const t of dropped) b.spds.delete(t);
  if (lost.size === 0) return;
  await waitForInterfaces(b, gen, lost);
  await replay(b, gen, lost);
}

/**
 * VPP answers its API before its startup-config has created its interfaces (a second or two after a
 * restart): the replay waits until the interfaces the lost CHILD_SAs need are there, rather than
 * failing them. After `interfaceWaitMs` it goes ahead and reports what fails.
 */
async function waitForInterfaces(b: Backend, gen: number, lost: Map<number, InstalledChild>): Promise<void> {
  const names = new Set<string>();
  for (const st of lost.values()) for (const n of DRIVERS[st.child.vppMode].requiredInterfaces(b, st.child)) names.add(n);
  if (names.size === 0) return;
  let told = false;
  for (let waited = 0; ; waited += b.opts.interfaceWaitStepMs) {
    const missing: string[] = [];
    for (const n of names) if ((await interfaceIndex(b, n)) === undefined) missing.push(n);
    if (missing.length === 0) {
      if (told) b.log.info({ waited_ms: waited }, 'VPP interfaces are back; programming the CHILD_SAs again');
      return;
    }
    if (gen !== b.connGen || b.closed) throw new Error('connection to VPP changed while waiting for its interfaces');
    if (waited >= b.opts.interfaceWaitMs) {
      b.log.error({ missing, waited_ms: waited }, 'VPP interfaces did not come back; programming the CHILD_SAs anyway');
      return;
    }
    if (!told) {
      b.log.warn({ missing, children: lost.size }, 'waiting for VPP interfaces before programming the CHILD_SAs again');
      told = true;
    }
    await new Promise<void>((resolve) => {
      const done = (): void => {
        b.pause = undefined;
        resolve();
      };
      b.pause = { cancel: b.timers.after(b.opts.interfaceWaitStepMs, done), done };
    });
  }
}

/**
 * Removals asked for while VPP was unreachable. Only a CHILD_SA VPP still has is torn down (after a
 * restart its sw_if_index and ids may mean other objects); the rest is forgotten and its remnants
 * are strays. True when something was torn down (the snapshot is then out of date).
 */
async function removeDeferred(b: Backend, gen: number, snap: Snapshot): Promise<boolean> {
  let toreDown = false;
  for (const id of [...b.deferredRemoves]) {
    const st = b.children.get(id);
    if (st) {
      if (sasIntact(st, snap) && DRIVERS[st.child.vppMode].intact(st, snap)) {
        toreDown = true;
        try {
          await b.queue.run(`child:${id}`, () => teardown(b, st));
          b.counters.removes++;
        } catch (e) {
          if (gen !== b.connGen) throw e;
          b.log.warn({ child_id: id, err: (e as Error).message }, 'removal after the reconnect failed; its objects are removed as strays');
        }
      } else {
        unlink(b, st);
      }
      forget(b, st);
    }
    b.deferredRemoves.delete(id);
  }
  return toreDown;
}

/**
 * The SPDs: an SPD VPP still has, with all its users intact, is used again (bound to its interface
 * again if it lost the binding) and marked ready. Any other is dropped: all its users are lost and
 * it is rebuilt as a whole (deleted with its entries as a stray, programmed again by the replay).
 * Users whose table has no SPD state are lost too. Returns the tables whose SPD is dropped.
 */
async function checkSpds(b: Backend, snap: Snapshot, lost: Map<number, InstalledChild>): Promise<Set<number>> {
  const users = new Map<number, InstalledChild[]>();
  for (const st of b.children.values()) {
    if (st.spdTable === undefined || lost.has(st.child.childId)) continue;
    const list = users.get(st.spdTable);
    if (list) list.push(st);
    else users.set(st.spdTable, [st]);
  }
  const dropped = new Set<number>();
  for (const [t, list] of users) if (!b.spds.has(t)) for (const st of list) lost.set(st.child.childId, st);
  for (const [t, s] of b.spds) {
    let ok = s.users.size > 0 && snap.spds.has(s.spdId) && [...s.users].every((id) => b.children.has(id) && !lost.has(id));
    if (ok) {
      // The SPD is there: bound to its interface again if it lost the binding.
      const sw = await interfaceIndex(b, s.iface);
      if (sw === undefined) ok = false;
      else {
        s.swIfIndex = sw;
        if (!snap.spdBound.has(sw)) {
          // Refused (another SPD took the interface): the SPD is rebuilt, which then fails visibly.
          ok = await bestEffort(b, `binding of SPD ${hex8(s.spdId)}`, () =>
            req(b, 'ipsec_interface_add_del_spd', { is_add: true, sw_if_index: sw, spd_id: s.spdId }),
          );
          if (ok) b.log.warn({ spd_id: s.spdId, interface: s.iface }, 'SPD was no longer bound to its interface; bound again');
        }
      }
    }
    if (ok) s.ready = true;
    else {
      dropped.add(t);
      for (const st of users.get(t) ?? []) lost.set(st.child.childId, st);
    }
  }
  return dropped;
}

/** Strays, including the remnants of what was lost (they would collide with the replay). */
async function removeStrays(b: Backend, snap: Snapshot, lost: Map<number, InstalledChild>, dropped: Set<number>): Promise<void> {
  const keep: Keep = { sas: new Set(), instances: new Set(), spds: new Set() };
  for (const st of b.children.values()) {
    if (lost.has(st.child.childId)) continue;
    keep.sas.add(st.saIn);
    keep.sas.add(st.saOut);
    if (st.itfInstance !== undefined) keep.instances.add(st.itfInstance);
  }
  for (const [t, s] of b.spds) if (!dropped.has(t)) keep.spds.add(s.spdId);
  await reconcile(b, snap, keep);
}

/** Programs the lost CHILD_SAs again, with the same ids; reports what failed and announces the rest. */
async function replay(b: Backend, gen: number, lost: Map<number, InstalledChild>): Promise<void> {
  b.log.warn({ children: lost.size }, 'VPP lost CHILD_SAs; programming them again');
  for (const st of lost.values()) {
    b.children.delete(st.child.childId);
    b.replaying.set(st.child.childId, st);
    unlink(b, st);
  }
  const replayed: number[] = [];
  const failed: [InstalledChild, string][] = [];
  const dropIds: InstalledChild[] = [];
  try {
    // Members of one protection group go one after the other, oldest first (the first one creates a
    // p2p interface, the others join it); everything else is pipelined, bounded by the client's window.
    const runs = new Map<string | number, InstalledChild[]>();
    for (const st of lost.values()) {
      const k = st.group ?? st.child.childId;
      const run = runs.get(k);
      if (run) run.push(st);
      else runs.set(k, [st]);
    }
    // At most REPLAY_CONCURRENCY runs at a time: all 50,000 at once is slower on a real VPP than a
    // bounded window, which keeps the client's pipeline full without flooding it.
    const queue = [...runs.values()];
    let next = 0;
    const worker = async (): Promise<void> => {
      for (let run = queue[next++]; run !== undefined; run = queue[next++]) {
        run.sort((x, y) => x.seq - y.seq);
        for (const st of run) {
          const id = st.child.childId;
          if (removeRequested(b, id)) {
            // Removed while the replay ran: not programmed again, not reported.
            b.replaying.delete(id);
            dropIds.push(st);
            continue;
          }
          if (gen !== b.connGen) continue; // connection gone: left for the next resync
          try {
            await installChild(b, st.child, undefined, st);
            b.replaying.delete(id);
            replayed.push(id);
          } catch (e) {
            if (gen !== b.connGen || !b.client.connected) continue;
            b.replaying.delete(id);
            failed.push([st, (e as Error).message]);
          }
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(REPLAY_CONCURRENCY, queue.length) }, worker));
  } finally {
    // Not replayed because the connection went: still lost, replayed by the next resync.
    for (const [id, st] of b.replaying) b.children.set(id, st);
    b.replaying.clear();
  }
  for (const st of [...dropIds, ...failed.map(([st]) => st)]) {
    forget(b, st);
    // p2p: the interface instance is free once no member of its group is left.
    if (st.itfInstance !== undefined && liveMember(b, st.group, st.child.childId) === undefined) freeInstance(b.ids, st.itfInstance);
    b.deferredRemoves.delete(st.child.childId);
  }
  b.counters.replays += replayed.length;
  for (const [st, why] of failed) b.listener.failed?.(st.child.childId, `could not program again after VPP restart: ${why}`);
  b.log.info({ replayed: replayed.length, failed: failed.length, removed: dropIds.length }, 'CHILD_SAs programmed again after VPP restart');
  announceReplayed(
    b,
    replayed.filter((id) => !removeRequested(b, id)).sort((x, y) => x - y),
  );
}

/** replayed() in batches, spaced so the engine's rekeys are paced. */
function announceReplayed(b: Backend, ids: number[]): void {
  if (ids.length === 0) return;
  b.announceQueue.push(...ids);
  if (b.announceCancel === undefined) announceNext(b);
}

function announceNext(b: Backend): void {
  b.announceCancel = undefined;
  if (b.closed) return;
  const part = b.announceQueue.splice(0, b.opts.replayBatch).filter((id) => b.children.has(id) && !removeRequested(b, id));
  if (part.length > 0) b.listener.replayed?.(part);
  if (b.announceQueue.length > 0) b.announceCancel = b.timers.after(b.opts.replayIntervalMs, () => announceNext(b));
}
