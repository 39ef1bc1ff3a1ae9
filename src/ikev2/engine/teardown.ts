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
}

/** Stop everything: delete every IKE SA (telling peers when `tellPeers`). */
export function shutdown(ctx: EngineContext, tellPeers: boolean): void {
  ctx.stopped = true;
  ctx.keepUp.clear();
  ctx.keepUpById.clear();
  for (const sa of [...ctx.table.values()]) {
    if (tellPeers && (sa.state === 'ESTABLISHED' || sa.state === 'REKEYING' || sa.state === 'DELETING') && sa.cipher) {
      // A last message on the way out: it may overlap an exchange in flight, which the peer tolerates
      // better than an SA it never hears about again.
      const payloads = [deletePayload(ProtocolId.IKE, [])];
      transmit(ctx, sa, seal(sa, ExchangeType.INFORMATIONAL, sa.sendMid++, false, payloads));
    }
    destroy(ctx, sa, 'shutdown');
  }
}
