/**
 * IKE SA reauthentication (RFC 7296 §2.8.3, `reauth_time`), make-before-break as strongSwan's
 * `make_before_break`: a new IKE SA with the same connection is set up from scratch (IKE_SA_INIT
 * and IKE_AUTH with the credentials as configured now, no INITIAL_CONTACT), every CHILD_SA of the
 * old IKE SA is recreated on it (same config and traffic selectors; in the dataplane each new
 * CHILD_SA joins the tunnel of the one it takes over and sends on it at once), and only then is
 * the old IKE SA deleted with its CHILD_SAs. If the new IKE SA fails, or a CHILD_SA cannot be
 * recreated, it is deleted, the old one stays and the attempt is retried until the hard lifetime.
 *
 * As responder, a CHILD_SA the peer creates on a new IKE SA of the same peer (its
 * reauthentication) takes over the tunnel of the matching CHILD_SA of the older IKE SA: our
 * outbound traffic moves to it when the peer deletes the old one, which by then has the new SAs.
 */
import type { ChildConfig } from '../../config/types.ts';
import { IkeSa, Timer, type ChildSa, type Task } from '../sa/ike-sa.ts';
import { selToString, type Sel } from '../sa/ts.ts';
import { childEntry, jitter, newSpi, setTimer, type EngineContext } from './context.ts';
import { admit, idOr, localIdOf, sendInit } from './ike-init.ts';
import { kick } from './tasks.ts';
import { deleteIke, removeFromDataplane } from './teardown.ts';
import { retryIfKeptUp } from './keep-up.ts';

/** strongSwan's delay for a reauthentication that finds the IKE SA busy: 15 s less up to 10 s. */
const BUSY_RETRY_S = 15;
const BUSY_JITTER_S = 10;

/** The reauthentication time of an IKE SA came (or a postponed or failed attempt is due again). */
export function ikeReauthDue(ctx: EngineContext, sa: IkeSa): void {
  if (sa.dead || (sa.reauthBy && !sa.reauthBy.dead)) return;
  const now = ctx.sched.now();
  // As strongSwan: not while the IKE SA or one of its CHILD_SAs is in the middle of something.
  const busy = sa.state !== 'ESTABLISHED' || sa.children.some((c) => c.state !== 'INSTALLED' && c.state !== 'REKEYED');
  if (busy) {
    sa.reauthAt = now + BUSY_RETRY_S * 1000 - jitter(ctx, BUSY_JITTER_S);
    setTimer(ctx, sa, Timer.IKE_REAUTH, sa.reauthAt);
    if (ctx.debug) ctx.log.debug({ ike: sa.id, state: sa.state }, 'IKE SA busy, reauthentication delayed');
    return;
  }
  startReauth(ctx, sa);
}

/** Start the new IKE SA that takes over from `old`. */
function startReauth(ctx: EngineContext, old: IkeSa): void {
  const conn = old.conn!;
  const take = old.children.filter((c) => c.state === 'INSTALLED');
  if (take.length === 0) {
    // As strongSwan: only CHILD_SAs make a reauthentication worth it; the IKE SA expires at over_time.
    ctx.log.info({ ike: old.id, conn: conn.name }, 'unable to reauthenticate IKE SA, no CHILD SA to recreate');
    old.reauthAt = 0;
    return;
  }
  if (!admit(ctx)) return reauthRetry(ctx, old, 'IKE SA table is full');
  // To the addresses and ports the old IKE SA uses now (a NAT mapping, a MOBIKE move, a peer that
  // initiated it), as strongSwan does.
  const sa = new IkeSa(ctx.nextSaId++, true, newSpi(ctx), { ...old.local }, { ...old.remote }, ctx.sched.now(), ctx.gauges);
  sa.conn = conn;
  sa.localId = localIdOf(ctx, conn, sa.local.addr);
  sa.remoteId = idOr(conn.remote.id, sa.remote.addr);
  sa.encapForced = conn.encap;
  sa.authChild = take[0]!.cfg;
  sa.reauthOf = { old, authChild: take[0], todo: new Set(take) };
  for (const c of take.slice(1)) sa.queue.push({ kind: 'child-create', child: c.cfg, takeOver: c });
  // CHILD_SAs still to be created on the old IKE SA are created on the new one (as strongSwan).
  const moving = old.queue.filter((t): t is Extract<Task, { kind: 'child-create' }> => t.kind === 'child-create' && !t.rekey && !t.takeOver);
  old.queue = old.queue.filter((t) => !moving.includes(t as Extract<Task, { kind: 'child-create' }>));
  sa.queue.push(...moving, { kind: 'reauth-complete' });
  sa.state = 'CONNECTING';
  ctx.table.add(sa);
  old.reauthBy = sa;
  ctx.log.info({ ike: old.id, new_ike: sa.id, conn: conn.name, peer: sa.remote.addr, children: take.length }, 'reauthenticating IKE SA');
  sendInit(ctx, sa);
}

/** The old IKE SA stays; another attempt is made later, if one fits before its hard lifetime. */
function reauthRetry(ctx: EngineContext, old: IkeSa, why: string): void {
  if (old.dead || old.state === 'DELETING' || old.state === 'REKEYED') return;
  const at = ctx.sched.now() + 10_000 + jitter(ctx, 20);
  const expire = old.timers[Timer.IKE_EXPIRE]!;
  if (expire && at >= expire) {
    ctx.log.info({ ike: old.id, conn: old.conn?.name, reason: why }, 'IKE SA reauthentication failed, no time left before the hard lifetime');
    return;
  }
  old.reauthAt = at;
  setTimer(ctx, old, Timer.IKE_REAUTH, at);
  ctx.log.info({ ike: old.id, conn: old.conn?.name, reason: why, retry_in_s: Math.round((at - ctx.sched.now()) / 1000) }, 'IKE SA reauthentication failed, retrying later');
}

/**
 * The new IKE SA of a reauthentication goes before it completed: the old one stays and tries again.
 * When the old one went meanwhile (its peer deleted it, it expired), the connection is down: it is
 * started again if it is one we keep up, as after any failed initiation.
 */
export function reauthAborted(ctx: EngineContext, sa: IkeSa, reason: string): void {
  const r = sa.reauthOf;
  if (!r) return;
  sa.reauthOf = undefined;
  if (r.old.reauthBy === sa) r.old.reauthBy = undefined;
  if (r.old.dead) {
    if (sa.conn) retryIfKeptUp(ctx, sa.conn.name);
    return;
  }
  reauthRetry(ctx, r.old, reason);
}

/**
 * Delete the new IKE SA of a reauthentication. Our traffic goes back to the old CHILD_SAs before
 * the peer hears of the Delete and drops the new ones; deleteIke → destroy → reauthAborted keeps
 * the old IKE SA and retries.
 */
function abandon(ctx: EngineContext, sa: IkeSa): void {
  if (sa.state === 'CONNECTING' && sa.active?.task.kind === 'ike-auth' && sa.reauthOf) {
    // The peer may have set it up already: it is deleted with a Delete once IKE_AUTH is answered.
    sa.reauthOf.abandoned = true;
    sa.queue = sa.queue.filter((t) => t.kind !== 'child-create' || !t.takeOver);
    return;
  }
  for (const c of sa.children) {
    c.state = 'DELETING';
    void removeFromDataplane(ctx, sa, c.id);
  }
  deleteIke(ctx, sa);
}

/**
 * Responder: the peer authenticated a new IKE SA (`peers`) while we reauthenticate an older IKE SA
 * of the same peer: both sides reauthenticate at once. Kept, each side would take over the tunnels
 * twice and the IKE SAs would double with every round. The new IKE SA with the lower initiator SPI
 * gives way (both sides compare the same two SPIs): when it is ours we delete it, and the peer's
 * reauthentication replaces the old IKE SA (if that fails too, ours is retried later).
 */
export function reauthCollision(ctx: EngineContext, peers: IkeSa): void {
  for (const other of ctx.table.peers(peers.localId, peers.remoteId)) {
    const ours = other.reauthBy;
    if (other === peers || other.dead || !ours || ours.dead || ours === peers || other.conn?.name !== peers.conn?.name || other.remote.addr !== peers.remote.addr) continue;
    const oursLoses = Buffer.compare(ours.spiI, peers.spiI) < 0;
    ctx.log.info({ ike: other.id, ours: ours.id, peers: peers.id, deleting: oursLoses ? ours.id : undefined }, oursLoses ? 'reauthentication collision: the peer reauthenticates too, deleting our new IKE SA' : 'reauthentication collision: the peer reauthenticates too, it deletes its new IKE SA');
    if (oursLoses) abandon(ctx, ours);
  }
}

/** Every CHILD_SA was tried on the new IKE SA: the old IKE SA goes, or, if one is missing, the new one. */
export function completeReauth(ctx: EngineContext, sa: IkeSa): void {
  const r = sa.reauthOf;
  if (!r) return kick(ctx, sa);
  const old = r.old;
  if (r.abandoned) {
    abandon(ctx, sa);
    return kick(ctx, sa);
  }
  // Without the old IKE SA (the peer deleted it, it expired) the new one is all there is: it stays.
  if (r.todo.size > 0 && !old.dead) {
    ctx.log.info({ ike: sa.id, old_ike: old.id, missing: [...r.todo].map((c) => c.name) }, 'reauthentication could not recreate every CHILD SA, deleting the new IKE SA');
    abandon(ctx, sa);
    return kick(ctx, sa);
  }
  sa.reauthOf = undefined;
  if (old.reauthBy === sa) old.reauthBy = undefined;
  const missing = r.todo.size > 0 ? [...r.todo].map((c) => c.name) : undefined;
  ctx.log.info({ ike: sa.id, old_ike: old.id, conn: sa.conn?.name, peer: sa.remote.addr, children: sa.children.length, missing }, 'IKE SA reauthenticated, deleting the old IKE SA');
  if (!old.dead) deleteIke(ctx, old);
  kick(ctx, sa);
}

/**
 * The installed CHILD_SA whose tunnel `c` (a CHILD_SA of the old IKE SA) stands for now: itself, or
 * its successor when a rekey replaced it meanwhile; undefined once it is gone.
 */
export function takeOverTarget(ctx: EngineContext, c: ChildSa | undefined): ChildSa | undefined {
  for (let i = 0; c && i < 16; i++) {
    if (c.state === 'REKEYED' && c.successor) {
      c = c.successor;
      continue;
    }
    return childEntry(ctx, c.id)?.child === c && c.state !== 'DELETED' ? c : undefined;
  }
  return undefined;
}

/** The new CHILD_SA `fresh` of a reauthentication was installed in place of `old` (the old IKE SA's). */
export function tookOver(sa: IkeSa, takeOver: ChildSa, old: ChildSa | undefined, fresh: ChildSa): void {
  sa.reauthOf?.todo.delete(takeOver);
  if (old && old.state === 'INSTALLED') old.successor = fresh;
}

/** A CHILD_SA that took over a tunnel goes: the one it took over from is on its own again. */
export function takeOverGone(ctx: EngineContext, gone: ChildSa): void {
  if (gone.replaces === undefined) return;
  const e = childEntry(ctx, gone.replaces);
  if (e && e.child.state === 'INSTALLED' && e.child.successor === gone) e.child.successor = undefined;
}

function sameSels(a: Sel[], b: Sel[]): boolean {
  if (a.length !== b.length) return false;
  const x = a.map(selToString).sort();
  const y = b.map(selToString).sort();
  return x.every((s, i) => s === y[i]);
}

/**
 * Responder: the peer creates a CHILD_SA on `sa`. When another IKE SA of the same peer (identities,
 * connection, address) has an installed CHILD_SA of the same config and traffic selectors, the peer
 * is reauthenticating: the new CHILD_SA takes over its tunnel. One that no other CHILD_SA took over
 * yet is preferred (both sides reauthenticating at once take over the same tunnel twice).
 */
export function predecessorOf(ctx: EngineContext, sa: IkeSa, cfg: ChildConfig, localTs: Sel[], remoteTs: Sel[]): ChildSa | undefined {
  if (!sa.remoteId) return undefined;
  const peers = ctx.table.peers(sa.localId, sa.remoteId);
  if (peers.size < 2) return undefined;
  let taken: ChildSa | undefined;
  for (const other of peers) {
    if (other === sa || other.dead || other.conn?.name !== sa.conn?.name || other.remote.addr !== sa.remote.addr) continue;
    // Not the new IKE SA of a reauthentication of ours still under way (its tunnels are the old ones').
    if ((other.state !== 'ESTABLISHED' && other.state !== 'REKEYING') || other.reauthOf) continue;
    for (const c of other.children) {
      if (c.state !== 'INSTALLED' || c.name !== cfg.name || !sameSels(c.localTs, localTs) || !sameSels(c.remoteTs, remoteTs)) continue;
      if (!c.successor) return c;
      taken ??= c;
    }
  }
  return taken;
}
