/**
 * CHILD_SA rekeying (RFC 7296 §1.3.3, §2.8): lifetimes (rekey_time with rand_time, life_time), one
 * timer per IKE SA for all its CHILD_SAs, make-before-break (the new SA is installed before the old one
 * is deleted), failed rekeys retried before the old SA expires.
 */
import { NotifyType, ProtocolId } from '../constants.ts';
import type { IkeHeader, Payload } from '../codec/types.ts';
import { Timer, type ChildSa, type IkeSa } from '../sa/ike-sa.ts';
import { EMPTY, findNotify, notify } from './payload-util.ts';
import { emit, jitter, setTimer, type EngineContext } from './context.ts';
import { answer, answerNotify } from './message.ts';
import { queueTask } from './tasks.ts';

/** Milliseconds an old SA waits for the peer that rekeyed it to delete it, before we do. */
export const DELETE_OLD_AFTER_MS = 30_000;

/** Rekey one CHILD_SA (make-before-break: the new SA is installed before the old one is deleted). */
export function rekeyChild(ctx: EngineContext, sa: IkeSa, child: ChildSa): void {
  if (child.state !== 'INSTALLED') return;
  queueTask(ctx, sa, { kind: 'child-create', child: child.cfg, rekey: child });
}

/**
 * The CHILD_SA a REKEY_SA notify names: undefined for a request without one (a new CHILD_SA), or null
 * when the request was answered here (unknown SPI, or a rekey of ours in flight).
 */
export function rekeyTarget(ctx: EngineContext, sa: IkeSa, h: IkeHeader, payloads: Payload[]): ChildSa | undefined | null {
  const rk = findNotify(payloads, NotifyType.REKEY_SA);
  if (!rk) return undefined;
  const spi = rk.spi.length === 4 ? rk.spi.readUInt32BE(0) : -1;
  const rekey = sa.children.find((c) => c.spiOut === spi && (c.state === 'INSTALLED' || c.state === 'REKEYING'));
  if (!rekey) {
    answer(ctx, sa, h, [notify(NotifyType.CHILD_SA_NOT_FOUND, EMPTY, ProtocolId.ESP, rk.spi)]);
    return null;
  }
  // We are rekeying it ourselves: let the peer retry later (RFC 7296 §2.25).
  if (rekey.state === 'REKEYING') {
    answerNotify(ctx, sa, h, NotifyType.TEMPORARY_FAILURE);
    return null;
  }
  return rekey;
}

/** The peer rekeyed `old` into `fresh`: the peer deletes the old SA; if it does not within a while, we do. */
export function rekeyedByPeer(ctx: EngineContext, sa: IkeSa, old: ChildSa, fresh: ChildSa): void {
  old.state = 'REKEYED';
  ctx.stats.childRekeyed++;
  emit(ctx, { type: 'child-rekeyed', sa, old, child: fresh });
  setTimer(ctx, sa, Timer.DELETE_OLD, ctx.sched.now() + DELETE_OLD_AFTER_MS);
}

/** Our rekey of `old` installed `fresh`: delete the old SA (make-before-break). */
export function rekeyCompleted(ctx: EngineContext, sa: IkeSa, old: ChildSa, fresh: ChildSa): void {
  old.state = 'REKEYED';
  ctx.stats.childRekeyed++;
  emit(ctx, { type: 'child-rekeyed', sa, old, child: fresh });
  queueTask(ctx, sa, { kind: 'child-delete', child: old });
}

/** A rekey of `child` did not happen: keep the child and try again before it expires. */
export function rekeyFailed(ctx: EngineContext, sa: IkeSa, child: ChildSa, reason: string): void {
  if (child.state === 'REKEYING') child.state = 'INSTALLED';
  if (sa.dead || child.state !== 'INSTALLED') return;
  const now = ctx.sched.now();
  const retry = now + (15 + jitter(ctx, 30)) * 1000;
  child.rekeyAt = child.expireAt ? Math.min(retry, Math.max(now + 1000, child.expireAt - 5000)) : retry;
  ctx.log.info({ ike: sa.id, child: child.name, child_id: child.id, reason }, 'CHILD SA rekey failed, retrying later');
  armChildTimer(ctx, sa);
}

/** Rekey and expiry times of a freshly installed CHILD_SA. */
export function childLifetimes(ctx: EngineContext, child: ChildSa): void {
  const cc = child.cfg;
  if (cc.rekeyTime > 0) child.rekeyAt = child.installedAt + (cc.rekeyTime - jitter(ctx, cc.randTime)) * 1000;
  if (cc.lifeTime > 0) child.expireAt = child.installedAt + cc.lifeTime * 1000;
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
