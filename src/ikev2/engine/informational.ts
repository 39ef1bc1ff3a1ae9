/**
 * INFORMATIONAL exchanges (RFC 7296 §1.4): deletes of IKE SAs and CHILD_SAs in both directions,
 * including simultaneous deletes (§1.4.1) and the clean-up of SAs that were rekeyed. Liveness checks
 * (empty INFORMATIONAL) are in dpd.ts; MOBIKE's address updates and the NAT detection and COOKIE2
 * payloads its INFORMATIONALs carry are in mobike.ts.
 */
import { ExchangeType, NotifyType, PayloadType, ProtocolId } from '../constants.ts';
import type { IkeHeader, Payload } from '../codec/types.ts';
import type { ChildSa, IkeSa, Task } from '../sa/ike-sa.ts';
import { hex8 } from '../../common/text.ts';
import { deletePayload, findAll, findNotify, u32 } from './payload-util.ts';
import { mobikeAnswerPayloads, onUpdateSaAddresses } from './mobike.ts';
import { childEntry, emit, type EngineContext } from './context.ts';
import { answer, sendRequest } from './message.ts';
import { kick, queueTask } from './tasks.ts';
import { scheduleRetry } from './keep-up.ts';
import { replacementGone } from './child-rekey.ts';
import { closeAfterExchange, destroy, removeFromDataplane } from './teardown.ts';
import { peerWonIkeCollision } from './ike-rekey.ts';
import { unwatchTraffic } from './traffic.ts';
import { takeOverGone } from './reauth.ts';

type TaskOf<K extends Task['kind']> = Extract<Task, { kind: K }>;

export async function onInformationalRequest(ctx: EngineContext, sa: IkeSa, h: IkeHeader, payloads: Payload[]): Promise<void> {
  if (findNotify(payloads, NotifyType.AUTHENTICATION_FAILED)) {
    // The initiator refused our authentication after we accepted its own (RFC 7296 §2.21.2).
    answer(ctx, sa, h, []);
    ctx.stats.authFailed++;
    ctx.log.info({ ike: sa.id, peer: sa.remote.addr, conn: sa.conn?.name }, 'peer refused our authentication (AUTHENTICATION_FAILED)');
    destroy(ctx, sa, 'peer refused our authentication');
    return;
  }
  const dels = findAll(payloads, PayloadType.DELETE);
  if (dels.length === 0 && findNotify(payloads, NotifyType.UPDATE_SA_ADDRESSES)) return onUpdateSaAddresses(ctx, sa, h, payloads);
  if (dels.some((d) => d.protocol === ProtocolId.IKE)) {
    answer(ctx, sa, h, []);
    ctx.log.info({ ike: sa.id, peer: sa.remote.addr, conn: sa.conn?.name }, 'peer deleted IKE SA');
    peerWonIkeCollision(ctx, sa);
    const name = sa.conn?.name;
    // CHILD_SAs a newer IKE SA of the peer took over (its reauthentication) are not restarted.
    const restart = sa.children.some((c) => c.cfg.closeAction === 'start' && !(c.state === 'INSTALLED' && c.successor));
    destroy(ctx, sa, 'deleted by peer');
    if (restart && name) scheduleRetry(ctx, name);
    return;
  }
  const ours: Buffer[] = [];
  const gone: ChildSa[] = [];
  for (const d of dels) {
    if (d.protocol !== ProtocolId.ESP) continue;
    for (const spiBuf of d.spis) {
      const spi = spiBuf.readUInt32BE(0);
      const child = sa.children.find((c) => c.spiOut === spi);
      if (!child) continue;
      // Both sides deleting it at once (RFC 7296 §1.4.1): the response must not name it again.
      const ourDeleteInFlight = sa.active?.task.kind === 'child-delete' && sa.active.task.child === child;
      if (!ourDeleteInFlight) ours.push(u32(child.spiIn));
      gone.push(child);
    }
  }
  const out: Payload[] = ours.length ? [deletePayload(ProtocolId.ESP, ours)] : [];
  answer(ctx, sa, h, [...out, ...mobikeAnswerPayloads(sa, payloads)]);
  for (const c of gone) await removeChild(ctx, sa, c, 'deleted by peer');
}

/** Take a CHILD_SA off its IKE SA and out of the dataplane. */
async function removeChild(ctx: EngineContext, sa: IkeSa, child: ChildSa, reason: string): Promise<void> {
  const i = sa.children.indexOf(child);
  if (i < 0) return;
  sa.children.splice(i, 1);
  ctx.gauges.childSas--;
  ctx.childrenById.delete(child.id);
  unwatchTraffic(ctx, child.id);
  const wasRekeyed = child.state === 'REKEYED';
  child.state = 'DELETED';
  ctx.stats.childDeleted++;
  replacementGone(ctx, sa, child);
  takeOverGone(ctx, child);
  await removeFromDataplane(ctx, sa, child.id);
  ctx.log.info({ ike: sa.id, conn: sa.conn?.name, child: child.name, child_id: child.id, spi_in: hex8(child.spiIn), reason }, 'CHILD SA deleted');
  emit(ctx, { type: 'child-down', sa, child, reason });
  if (!wasRekeyed && reason === 'deleted by peer' && child.cfg.closeAction === 'start' && !sa.dead) {
    queueTask(ctx, sa, { kind: 'child-create', child: child.cfg });
  }
}

/** Delete one CHILD_SA, telling the peer. */
export function deleteChild(ctx: EngineContext, childId: number): boolean {
  const e = childEntry(ctx, childId);
  if (!e) return false;
  queueTask(ctx, e.sa, { kind: 'child-delete', child: e.child });
  return true;
}

/** The grace period after a rekey is over: the old IKE SA, or old CHILD_SAs the peer did not delete, go. */
export function deleteOldDue(ctx: EngineContext, sa: IkeSa): void {
  if (sa.state === 'REKEYED') return closeAfterExchange(ctx, sa, 'rekeyed');
  for (const c of sa.children) if (c.state === 'REKEYED') queueTask(ctx, sa, { kind: 'child-delete', child: c });
}

export function startIkeDelete(ctx: EngineContext, sa: IkeSa, task: TaskOf<'ike-delete'>): void {
  sa.state = 'DELETING';
  sa.queue.length = 0;
  sendRequest(ctx, sa, ExchangeType.INFORMATIONAL, [deletePayload(ProtocolId.IKE, [])], task);
}

export function onIkeDeleteResponse(ctx: EngineContext, sa: IkeSa): void {
  destroy(ctx, sa, 'deleted');
}

export function startChildDelete(ctx: EngineContext, sa: IkeSa, task: TaskOf<'child-delete'>): void {
  if (!sa.children.includes(task.child)) {
    // Gone meanwhile (the peer deleted it, or its IKE SA moved on): next task.
    return kick(ctx, sa);
  }
  task.child.state = task.child.state === 'REKEYED' ? 'REKEYED' : 'DELETING';
  sendRequest(ctx, sa, ExchangeType.INFORMATIONAL, [deletePayload(ProtocolId.ESP, [u32(task.child.spiIn)])], task);
}

export function onChildDeleteResponse(ctx: EngineContext, sa: IkeSa, task: TaskOf<'child-delete'>): Promise<void> {
  return removeChild(ctx, sa, task.child, 'deleted');
}

/** Delete a CHILD_SA the peer created but we could not use (our SPI names it). */
export function startDeleteSpi(ctx: EngineContext, sa: IkeSa, task: TaskOf<'delete-spi'>): void {
  sendRequest(ctx, sa, ExchangeType.INFORMATIONAL, [deletePayload(ProtocolId.ESP, [u32(task.spi)])], task);
}

export function onDeleteSpiResponse(ctx: EngineContext, _sa: IkeSa, task: TaskOf<'delete-spi'>): void {
  if (task.release) ctx.dp.releaseSpi(task.spi);
}
