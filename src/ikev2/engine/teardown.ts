/**
 * The end of an IKE SA: deleting it politely (an INFORMATIONAL delete) or at once (dataplane cleaned,
 * waiters told, no message), and stopping the whole engine.
 */
import { ExchangeType, ProtocolId } from '../constants.ts';
import type { IkeSa } from '../sa/ike-sa.ts';
import { deletePayload } from './payload-util.ts';
import { emit, type EngineContext } from './context.ts';
import { dropReassembly, seal, transmit } from './message.ts';
import { queueTask } from './tasks.ts';
import { unwatchKeepalive } from './keepalive.ts';
import { unwatchTraffic } from './traffic.ts';
import { reauthAborted, takeOverGone } from './reauth.ts';

/** Take a CHILD_SA out of the dataplane; a failure is logged and counted (the SA may be left in VPP). */
export async function removeFromDataplane(ctx: EngineContext, sa: IkeSa, childId: number): Promise<void> {
  try {
    await ctx.dp.remove(childId);
  } catch (e) {
    ctx.stats.dataplaneErrors++;
    ctx.log.warn({ ike: sa.id, child: childId, err: (e as Error).message }, 'dataplane remove failed');
  }
}

/** Delete an IKE SA and its CHILD_SAs, telling the peer. */
export function deleteIke(ctx: EngineContext, sa: IkeSa): void {
  if (sa.dead) return;
  if (sa.state === 'REKEYING') {
    // Let the rekey finish; then the successor is deleted as well (and the old one, as usual).
    sa.terminateRequested = true;
    return;
  }
  if (sa.state !== 'ESTABLISHED' && sa.state !== 'DELETING' && sa.state !== 'REKEYED') return destroy(ctx, sa, 'terminated');
  queueTask(ctx, sa, { kind: 'ike-delete' });
}

/**
 * Remove an IKE SA now after telling the peer with one Delete (not retransmitted): for local
 * teardowns of an SA the peer considers up, other than a peer that stopped answering.
 */
export function deleteAndDestroy(ctx: EngineContext, sa: IkeSa, reason: string): void {
  if (sa.dead) return;
  if (sa.cipher) transmit(ctx, sa, seal(sa, ExchangeType.INFORMATIONAL, sa.sendMid++, false, [deletePayload(ProtocolId.IKE, [])]));
  destroy(ctx, sa, reason);
}

/** Whether the peer holds the IKE SA as up: it is told with a Delete when we remove it. */
function peerHolds(sa: IkeSa): boolean {
  return sa.cipher !== undefined && (sa.state === 'ESTABLISHED' || sa.state === 'REKEYING' || sa.state === 'DELETING' || sa.state === 'REKEYED');
}

/**
 * Remove an IKE SA after telling the peer with one Delete (not retransmitted), as deleteAndDestroy,
 * but when a request of ours is in flight the Delete waits until that exchange completes: its
 * response arrived and was processed, or its retransmissions gave up. Sent before, the Delete would
 * carry the message ID after the one the peer expects, and a peer with a window of one ignores it
 * (RFC 7296 §2.3). Meanwhile the SA starts no new exchange (see kick).
 */
export function closeAfterExchange(ctx: EngineContext, sa: IkeSa, reason: string): void {
  if (sa.dead) return;
  if (sa.active && peerHolds(sa)) {
    sa.closing ??= reason;
    if (ctx.debug) ctx.log.debug({ ike: sa.id, mid: sa.active.mid, task: sa.active.task.kind, reason }, 'Delete waits for the exchange in flight');
    return;
  }
  finishClosing(ctx, sa, reason);
}

/** The exchange a closing IKE SA waited for is over (or nothing was in flight): Delete it and remove it. */
export function finishClosing(ctx: EngineContext, sa: IkeSa, reason = sa.closing ?? 'shutdown'): void {
  if (sa.dead) return;
  // destroy() still needs the exchange in flight: it releases what that exchange held.
  if (peerHolds(sa)) transmit(ctx, sa, seal(sa, ExchangeType.INFORMATIONAL, sa.sendMid++, false, [deletePayload(ProtocolId.IKE, [])]));
  destroy(ctx, sa, reason);
}

/** Remove an IKE SA now: dataplane cleaned, waiters told, no message sent. */
export function destroy(ctx: EngineContext, sa: IkeSa, reason: string): void {
  if (sa.dead) return;
  const wasEstablished = sa.state === 'ESTABLISHED' || sa.state === 'DELETING' || sa.state === 'REKEYING';
  if (sa.state === 'REKEYED' && reason === 'deleted') reason = 'rekeyed';
  sa.dead = true;
  sa.state = 'DESTROYING';
  ctx.gauges.ikeByState.DESTROYING--;
  const t = sa.active?.task;
  if (t && (t.kind === 'ike-auth' || t.kind === 'child-create' || (t.kind === 'delete-spi' && t.release)) && t.spi) {
    ctx.dp.releaseSpi(t.spi);
    t.spi = undefined;
  }
  // CHILD_SAs waiting for their IKE_FOLLOWUP_KE exchanges hold an SPI of ours.
  for (const f of [sa.followupOut, sa.followupIn]) if (f?.target.kind === 'child') ctx.dp.releaseSpi(f.target.spi);
  sa.followupOut = undefined;
  sa.followupIn = undefined;
  sa.active = undefined;
  sa.queue.length = 0;
  sa.timers.fill(0);
  // The IKE SA a colliding rekey of the peer made goes too unless it took over (it holds nothing yet).
  if (t?.kind === 'ike-rekey' && t.passive && t.passive.sa.collisionOf === sa) {
    t.passive.sa.collisionOf = undefined;
    destroy(ctx, t.passive.sa, reason);
  }
  ctx.table.remove(sa, sa.halfOpenKey);
  unwatchKeepalive(ctx, sa);
  // The new IKE SA of a reauthentication went before it took over: the old one stays.
  reauthAborted(ctx, sa, reason);
  for (const child of sa.children) {
    ctx.childrenById.delete(child.id);
    unwatchTraffic(ctx, child.id);
    takeOverGone(ctx, child);
    ctx.gauges.childSas--;
    child.state = 'DELETED';
    ctx.stats.childDeleted++;
    void removeFromDataplane(ctx, sa, child.id);
    emit(ctx, { type: 'child-down', sa, child, reason });
  }
  sa.children = [];
  sa.keys = undefined;
  sa.cipher = undefined;
  sa.initRequest = undefined;
  sa.initResponse = undefined;
  sa.lastResponse = undefined;
  dropReassembly(ctx, sa);
  if (wasEstablished) {
    ctx.stats.ikeDeleted++;
    ctx.log.info({ ike: sa.id, peer: sa.remote.addr, conn: sa.conn?.name, reason }, 'IKE SA deleted');
    emit(ctx, { type: 'ike-down', sa, reason });
  }
  const w = ctx.waiters.get(sa.id);
  if (w) {
    ctx.waiters.delete(sa.id);
    for (const x of w) x.reject(new Error(reason));
  }
  const cw = ctx.childWaiters.get(sa.id);
  if (cw) {
    ctx.childWaiters.delete(sa.id);
    for (const x of cw) x.reject(new Error(`IKE SA ${sa.id} went down: ${reason}`));
  }
  if (ctx.stopped && ctx.table.size === 0) stopped(ctx);
}

/** Every IKE SA is gone after a shutdown: whoever waits for that hears of it. */
function stopped(ctx: EngineContext): void {
  const done = ctx.drained;
  ctx.drained = undefined;
  done?.();
}

/**
 * Stop everything: delete every IKE SA (telling peers when `tellPeers`). An IKE SA with a request of
 * ours in flight sends its Delete once that exchange completes (closeAfterExchange); the others go
 * at once. Resolves when every IKE SA is gone; abandonShutdown() ends the wait.
 */
export function shutdown(ctx: EngineContext, tellPeers: boolean): Promise<void> {
  ctx.stopped = true;
  ctx.keepUp.clear();
  ctx.keepUpById.clear();
  const done = new Promise<void>((resolve) => {
    ctx.drained = resolve;
  });
  let waiting = 0;
  for (const sa of [...ctx.table.values()]) {
    if (sa.dead) continue;
    if (tellPeers && sa.active && (sa.state === 'ESTABLISHED' || sa.state === 'REKEYING' || sa.state === 'DELETING') && sa.cipher) {
      closeAfterExchange(ctx, sa, 'shutdown');
      if (!sa.dead) waiting++;
      continue;
    }
    if (tellPeers && (sa.state === 'ESTABLISHED' || sa.state === 'REKEYING' || sa.state === 'DELETING') && sa.cipher) {
      transmit(ctx, sa, seal(sa, ExchangeType.INFORMATIONAL, sa.sendMid++, false, [deletePayload(ProtocolId.IKE, [])]));
    }
    destroy(ctx, sa, 'shutdown');
  }
  if (waiting > 0) ctx.log.info({ ike_sas: waiting }, 'stopping: IKE SAs with an exchange in flight send their Delete once it completes');
  if (ctx.table.size === 0) stopped(ctx);
  return done;
}

/**
 * The stop deadline came: IKE SAs still waiting for an exchange of ours send their Delete now (with
 * the next message ID, which a peer still expecting the earlier one ignores) and go, as do any others.
 */
export function abandonShutdown(ctx: EngineContext): number {
  const left = [...ctx.table.values()].filter((sa) => !sa.dead);
  if (left.length > 0) ctx.log.warn({ ike_sas: left.length }, 'stop: exchanges still unanswered, sending the Deletes without waiting');
  for (const sa of left) finishClosing(ctx, sa, 'shutdown');
  if (ctx.table.size === 0) stopped(ctx);
  return left.length;
}
