/**
 * CHILD_SA rekeying (RFC 7296 §1.3.3, §2.8): lifetimes (rekey_time with rand_time, life_time), one
 * timer per IKE SA for all its CHILD_SAs, make-before-break (the new SA is installed before the old one
 * is deleted), failed rekeys retried before the old SA expires.
 */
import { NotifyType, ProtocolId } from '../constants.ts';
import type { IkeHeader, Payload } from '../codec/types.ts';
import { Timer, type ChildSa, type IkeSa, type PassiveRekey } from '../sa/ike-sa.ts';
import { EMPTY, findNotify, notify } from './payload-util.ts';
import { emit, jitter, setTimer, type EngineContext } from './context.ts';
import { answer, answerNotify, retransmitDelay } from './message.ts';
import { queueTask } from './tasks.ts';
import { childVolumeLimits } from './traffic.ts';

/** Rekeys refused with TEMPORARY_FAILURE retried within 1-3 s, after the dataplane replayed a CHILD_SA. */
export const QUICK_RETRIES = 5;

/** Milliseconds an old SA waits at least for the peer that rekeyed it to delete it, before we do. */
export const DELETE_OLD_AFTER_MS = 30_000;

/**
 * How long an old (or redundant) SA waits for the peer's delete: at least as long as the peer may
 * still retransmit the rekey request whose response was lost (our own retransmission span as the
 * estimate), so the SAs it still uses are not pulled away before it has the new ones.
 */
export function deleteOldAfter(ctx: EngineContext): number {
  let span = 0;
  for (let n = 0; n <= ctx.opts.retransmitTries; n++) span += retransmitDelay(ctx, n);
  return Math.max(DELETE_OLD_AFTER_MS, span);
}

/**
 * Rekey one CHILD_SA (make-before-break: the new SA is installed before the old one is deleted). As
 * the last resort near its hard lifetime, a new CHILD_SA with the same config takes over instead.
 */
export function rekeyChild(ctx: EngineContext, sa: IkeSa, child: ChildSa): void {
  if (child.state !== 'INSTALLED') return;
  queueTask(ctx, sa, { kind: 'child-create', child: child.cfg, rekey: child, ...(child.lastResort ? { fresh: true } : {}) });
}

/**
 * The CHILD_SA a REKEY_SA notify names: undefined for a request without one (a new CHILD_SA), or null
 * when the request was answered here. A CHILD_SA we are rekeying ourselves is answered as usual (a
 * rekey collision, RFC 7296 §2.8.1: the redundant SA is deleted once both exchanges are done); one we
 * are deleting, or that was rekeyed already, gets TEMPORARY_FAILURE (§2.25); an unknown one
 * CHILD_SA_NOT_FOUND.
 */
export function rekeyTarget(ctx: EngineContext, sa: IkeSa, h: IkeHeader, payloads: Payload[]): ChildSa | undefined | null {
  const rk = findNotify(payloads, NotifyType.REKEY_SA);
  if (!rk) return undefined;
  const spi = rk.spi.length === 4 ? rk.spi.readUInt32BE(0) : -1;
  const rekey = sa.children.find((c) => c.spiOut === spi);
  if (!rekey) {
    answer(ctx, sa, h, [notify(NotifyType.CHILD_SA_NOT_FOUND, EMPTY, ProtocolId.ESP, rk.spi)]);
    return null;
  }
  // One colliding rekey per rekey of ours; a further one waits (TEMPORARY_FAILURE) like any other.
  const t = sa.active?.task;
  const collides = rekey.state === 'REKEYING' && t?.kind === 'child-create' && t.rekey === rekey && !t.passive;
  if (rekey.state === 'INSTALLED' || collides) return rekey;
  if (ctx.debug) ctx.log.debug({ ike: sa.id, child_id: rekey.id, state: rekey.state }, 'CHILD SA rekey refused for now');
  answerNotify(ctx, sa, h, NotifyType.TEMPORARY_FAILURE);
  return null;
}

/** The lower of an exchange's two nonces (RFC 7296 §2.8.1 compares the exchanges by it). */
export function lowerNonce(a: Buffer, b: Buffer): Buffer {
  return nonceLess(a, b) ? a : b;
}

/** Whether nonce `a` sorts before `b` (compared over the shorter length, as strongSwan does). */
export function nonceLess(a: Buffer, b: Buffer): boolean {
  const n = Math.min(a.length, b.length);
  return Buffer.compare(a.subarray(0, n), b.subarray(0, n)) < 0;
}

/** The peer rekeyed `old` into `fresh`: the peer deletes the old SA; if it does not within a while, we do. */
export function rekeyedByPeer(ctx: EngineContext, sa: IkeSa, old: ChildSa, fresh: ChildSa): void {
  old.state = 'REKEYED';
  old.successor = fresh;
  ctx.stats.childRekeyed++;
  emit(ctx, { type: 'child-rekeyed', sa, old, child: fresh });
  setTimer(ctx, sa, Timer.DELETE_OLD, ctx.sched.now() + deleteOldAfter(ctx));
}

/** Our rekey of `old` installed `fresh`: delete the old SA (make-before-break). */
export function rekeyCompleted(ctx: EngineContext, sa: IkeSa, old: ChildSa, fresh: ChildSa): void {
  if (!sa.children.includes(old)) return;
  old.state = 'REKEYED';
  old.successor = fresh;
  ctx.stats.childRekeyed++;
  emit(ctx, { type: 'child-rekeyed', sa, old, child: fresh });
  queueTask(ctx, sa, { kind: 'child-delete', child: old });
}

/** The CHILD_SA of the peer's colliding rekey, while it is still up. */
export function livePassive(sa: IkeSa, passive: PassiveRekey | undefined): PassiveRekey | undefined {
  return passive && passive.child.state === 'INSTALLED' && sa.children.includes(passive.child) ? passive : undefined;
}

/**
 * Our rekey of `old` installed `ours` (exchange nonces ni, nr). Without a collision the old SA is
 * deleted. When the peer rekeyed `old` too (`passive`), both rekeys are complete now and the redundant
 * SA is the one made by the exchange with the lowest nonce (RFC 7296 §2.8.1): if that is ours we delete
 * it and the peer deletes the old SA; otherwise we delete the old SA and the peer deletes its own.
 * The outbound SA never goes missing: the dataplane sends on our new SA (an SA we initiated is used at
 * once) and falls back to the old one, then to the peer's, as they are removed.
 */
export function concludeRekey(ctx: EngineContext, sa: IkeSa, old: ChildSa, ours: ChildSa, ni: Buffer, nr: Buffer, passive: PassiveRekey | undefined): void {
  const p = livePassive(sa, passive);
  if (!p) return rekeyCompleted(ctx, sa, old, ours);
  const log = { ike: sa.id, child: old.name, child_id: old.id, ours: ours.id, peers: p.child.id };
  if (nonceLess(lowerNonce(ni, nr), p.nonce)) {
    ctx.log.info(log, 'CHILD SA rekey collision lost, deleting the redundant CHILD SA we made');
    ours.state = 'REKEYED';
    queueTask(ctx, sa, { kind: 'child-delete', child: ours });
    if (sa.children.includes(old)) rekeyedByPeer(ctx, sa, old, p.child);
    return;
  }
  ctx.log.info(log, 'CHILD SA rekey collision won, deleting the old CHILD SA');
  // The peer deletes the SA its exchange made; if it does not within a while, we do.
  p.child.state = 'REKEYED';
  setTimer(ctx, sa, Timer.DELETE_OLD, ctx.sched.now() + deleteOldAfter(ctx));
  rekeyCompleted(ctx, sa, old, ours);
}

/**
 * A rekey of `child` did not happen: keep the child and try again before it expires. When the peer's
 * colliding rekey made a CHILD_SA (`passive`), that one takes over and the peer deletes the old SA.
 */
export function rekeyFailed(ctx: EngineContext, sa: IkeSa, child: ChildSa, reason: string, passive?: PassiveRekey): void {
  if (child.state === 'REKEYING') child.state = 'INSTALLED';
  if (sa.dead || child.state !== 'INSTALLED') return;
  const p = livePassive(sa, passive);
  if (p) {
    ctx.log.info({ ike: sa.id, child: child.name, child_id: child.id, reason, peers: p.child.id }, 'CHILD SA rekey failed, the peer rekeyed it meanwhile');
    return rekeyedByPeer(ctx, sa, child, p.child);
  }
  const now = ctx.sched.now();
  // The last resort starts LAST_RESORT_MS before the hard lifetime, or half way between rekey_time
  // and life_time when those are closer together.
  const margin = Math.min(LAST_RESORT_MS, Math.max(1000, (child.cfg.lifeTime - child.cfg.rekeyTime) * 500));
  const left = child.expireAt ? child.expireAt - now - margin : Infinity;
  if (left <= 0) {
    // The hard lifetime is near: a new CHILD_SA with the same config takes over (make-before-break)
    // rather than let this one expire unreplaced. A refused one is tried again every few seconds.
    child.rekeyAt = now + (1 + jitter(ctx, 3)) * 1000;
    child.lastResort = true;
    ctx.log.info({ ike: sa.id, child: child.name, child_id: child.id, reason }, 'CHILD SA rekey failed near its life time, creating a new CHILD SA instead');
  } else {
    // Retried after a random delay (RFC 7296 §2.25), at most a random part of the time left before
    // the last resort, so several attempts fit into the lifetime. A CHILD_SA whose sequence numbers
    // started over (VPP restarted) loses traffic until it is replaced: a refusal for the moment
    // (the peer rekeys the IKE SA) is retried within seconds, a few times.
    const quick = child.quickRetries > 0 && reason === 'TEMPORARY_FAILURE';
    if (quick) child.quickRetries--;
    const delay = quick
      ? (1 + jitter(ctx, 2)) * 1000 + jitter(ctx, 1000)
      : Math.min((15 + jitter(ctx, 30)) * 1000, Math.max(1000, Math.round(left * (0.3 + jitter(ctx, 40) / 100))));
    child.rekeyAt = now + delay;
    ctx.log.info({ ike: sa.id, child: child.name, child_id: child.id, reason, retry_in_s: Math.round(delay / 1000) }, 'CHILD SA rekey failed, retrying later');
  }
  armChildTimer(ctx, sa);
}

/** Milliseconds before the hard lifetime from which a failing rekey gives way to a new CHILD_SA (at most). */
export const LAST_RESORT_MS = 20_000;

/**
 * The CHILD_SA that replaced `gone` in a rekey was deleted before the old one: the rekey is undone,
 * the old CHILD_SA stays in use and is rekeyed again soon.
 */
export function replacementGone(ctx: EngineContext, sa: IkeSa, gone: ChildSa): void {
  if (gone.replaces === undefined) return;
  const old = sa.children.find((c) => c.id === gone.replaces);
  if (!old || old.state !== 'REKEYED' || old.successor !== gone) return;
  old.state = 'INSTALLED';
  old.successor = undefined;
  old.rekeyAt = ctx.sched.now() + (1 + jitter(ctx, 10)) * 1000;
  ctx.log.info({ ike: sa.id, child: old.name, child_id: old.id, gone: gone.id }, 'the CHILD SA that replaced this one was deleted, keeping it');
  armChildTimer(ctx, sa);
}

/** Rekey and expiry times of a freshly installed CHILD_SA. */
export function childLifetimes(ctx: EngineContext, child: ChildSa): void {
  const cc = child.cfg;
  if (cc.rekeyTime > 0) child.rekeyAt = child.installedAt + (cc.rekeyTime - jitter(ctx, cc.randTime)) * 1000;
  if (cc.lifeTime > 0) child.expireAt = child.installedAt + cc.lifeTime * 1000;
  childVolumeLimits(ctx, child);
}

/** One timer per IKE SA for all its CHILD_SAs: the earliest rekey or expiry among them. */
export function armChildTimer(ctx: EngineContext, sa: IkeSa): void {
  let next = 0;
  for (const c of sa.children) {
    if (c.state === 'INSTALLED' && c.rekeyAt && (!next || c.rekeyAt < next)) next = c.rekeyAt;
    if (c.expireAt && (!next || c.expireAt < next)) next = c.expireAt;
  }
  const cur = sa.timers[Timer.CHILD_REKEY]!;
  if (next && (!cur || next < cur)) setTimer(ctx, sa, Timer.CHILD_REKEY, next);
}

/** The CHILD_SA timer fired: expire or rekey whichever children are due, then re-arm. */
export function childTimers(ctx: EngineContext, sa: IkeSa): void {
  const now = ctx.sched.now();
  for (const c of sa.children) {
    if (c.expireAt && c.expireAt <= now && c.state !== 'DELETING') {
      c.expireAt = 0;
      ctx.log.info({ ike: sa.id, child: c.name, child_id: c.id }, 'CHILD SA reached its life time');
      queueTask(ctx, sa, { kind: 'child-delete', child: c });
    } else if (c.rekeyAt && c.rekeyAt <= now && c.state === 'INSTALLED') {
      c.rekeyAt = 0;
      rekeyChild(ctx, sa, c);
    }
  }
  armChildTimer(ctx, sa);
}
