/**
 * The task manager: which exchange an IKE SA starts next, and which module handles a request, a
 * response or a timer. Static tables keyed by task kind, exchange type and timer kind; nothing is
 * allocated per SA. One exchange in flight per IKE SA (window size 1).
 */
import { ExchangeType, NotifyType, PayloadType, ProtocolId } from '../constants.ts';
import type { IkeHeader, Payload } from '../codec/types.ts';
import { Timer, type IkeSa, type Task } from '../sa/ike-sa.ts';
import { find } from './payload-util.ts';
import type { EngineContext } from './context.ts';
import { answerNotify, defragTimeout, retransmit } from './message.ts';
import { initFailed, onInitResponse, sendInit, halfOpenTimeout } from './ike-init.ts';
import { onAuthFailure, onAuthRequest, onAuthResponse, sendAuth } from './ike-auth.ts';
import { onIntermediateRequest, onIntermediateResponse, startIntermediate } from './ike-intermediate.ts';
import { followupTimeout, onFollowupFailure, onFollowupRequest, onFollowupResponse } from './followup.ts';
import { onChildRequest, onCreateChildFailure, onCreateChildResponse, startCreateChild } from './child-create.ts';
import { childTimers } from './child-rekey.ts';
import { ikeExpired, ikeRekeyDue, onIkeRekeyFailure, onIkeRekeyRequest, onIkeRekeyResponse, startIkeRekey } from './ike-rekey.ts';
import {
  deleteOldDue,
  onChildDeleteResponse,
  onDeleteSpiResponse,
  onIkeDeleteResponse,
  onInformationalRequest,
  startChildDelete,
  startDeleteSpi,
  startIkeDelete,
} from './informational.ts';
import { dpdCheck, startDpdExchange } from './dpd.ts';
import { completeReauth, ikeReauthDue } from './reauth.ts';
import { onMobikeCheckFailure, onMobikeCheckResponse, startMobikeCheck } from './mobike.ts';

type TaskOf<K extends Task['kind']> = Extract<Task, { kind: K }>;

interface TaskDef<T extends Task> {
  /** Lower runs first (strongSwan's order: deletes, then rekeys, then new CHILD_SAs, then DPD). */
  priority: number;
  /** Build and send the request (or start the work that leads to it). */
  start(ctx: EngineContext, sa: IkeSa, task: T): void;
  /** Process the peer's response to it. */
  response(ctx: EngineContext, sa: IkeSa, task: T, h: IkeHeader, payloads: Payload[], data: Buffer): Promise<void> | void;
  /** The peer's authenticated response cannot be used (`why`): fail the exchange now. */
  failed(ctx: EngineContext, sa: IkeSa, task: T, why: string): Promise<void> | void;
}

const TASKS: { [K in Task['kind']]: TaskDef<TaskOf<K>> } = {
  // IKE_SA_INIT and IKE_AUTH run before the SA is established, started by initiate(), never queued.
  'ike-init': {
    priority: -1,
    start: (ctx, sa) => sendInit(ctx, sa),
    response: (ctx, sa, _t, h, p, data) => onInitResponse(ctx, sa, h, p, data),
    failed: (ctx, sa, _t, why) => initFailed(ctx, sa, why),
  },
  'ike-auth': { priority: -1, start: (ctx, sa) => void sendAuth(ctx, sa), response: (ctx, sa, t, _h, p) => onAuthResponse(ctx, sa, t, p), failed: onAuthFailure },
  'ike-int': {
    priority: -1,
    start: (ctx, sa) => void startIntermediate(ctx, sa),
    response: (ctx, sa, _t, _h, p) => onIntermediateResponse(ctx, sa, p),
    failed: (ctx, sa, _t, why) => initFailed(ctx, sa, why, 'IKE_INTERMEDIATE'),
  },
  'delete-spi': { priority: 0, start: startDeleteSpi, response: (ctx, sa, t) => onDeleteSpiResponse(ctx, sa, t), failed: (ctx, sa, t) => onDeleteSpiResponse(ctx, sa, t) },
  'ike-delete': { priority: 1, start: startIkeDelete, response: (ctx, sa) => onIkeDeleteResponse(ctx, sa), failed: (ctx, sa) => onIkeDeleteResponse(ctx, sa) },
  'child-delete': { priority: 2, start: startChildDelete, response: (ctx, sa, t) => onChildDeleteResponse(ctx, sa, t), failed: (ctx, sa, t) => onChildDeleteResponse(ctx, sa, t) },
  'ike-rekey': { priority: 3, start: startIkeRekey, response: (ctx, sa, t, _h, p) => onIkeRekeyResponse(ctx, sa, t, p), failed: onIkeRekeyFailure },
  'child-create': { priority: 4, start: startCreateChild, response: (ctx, sa, t, _h, p) => onCreateChildResponse(ctx, sa, t, p), failed: onCreateChildFailure },
  // Before CHILD_SA work: the CHILD_SAs should follow a moved peer first.
  'mobike-check': { priority: 3, start: startMobikeCheck, response: (ctx, sa, t, _h, p) => onMobikeCheckResponse(ctx, sa, t, p), failed: onMobikeCheckFailure },
  // After every CHILD_SA creation of a reauthentication's new IKE SA (no exchange of its own).
  'reauth-complete': { priority: 4.5, start: (ctx, sa) => completeReauth(ctx, sa), response: () => undefined, failed: () => undefined },
  dpd: { priority: 5, start: startDpdExchange, response: () => undefined, failed: () => undefined },
  // IKE_FOLLOWUP_KE requests follow their CREATE_CHILD_SA directly, never queued.
  followup: { priority: -1, start: () => undefined, response: (ctx, sa, _t, _h, p) => onFollowupResponse(ctx, sa, p), failed: (ctx, sa, _t, why) => onFollowupFailure(ctx, sa, why) },
};

function priority(t: Task): number {
  return TASKS[t.kind].priority;
}

function byPriority(a: Task, b: Task): number {
  return priority(a) - priority(b);
}

export function queueTask(ctx: EngineContext, sa: IkeSa, task: Task): void {
  if (sa.dead) return;
  sa.queue.push(task);
  kick(ctx, sa);
}

/** Whether a task of this kind is queued or in flight. */
export function hasTask(sa: IkeSa, kind: Task['kind']): boolean {
  return sa.active?.task.kind === kind || sa.queue.some((t) => t.kind === kind);
}

/** Start the next queued exchange when nothing is in flight (window size 1). */
export function kick(ctx: EngineContext, sa: IkeSa): void {
  if (sa.active || sa.busy || sa.dead || sa.collisionOf || (sa.state !== 'ESTABLISHED' && sa.state !== 'DELETING' && sa.state !== 'REKEYED')) return;
  if (sa.state === 'REKEYED') sa.queue = sa.queue.filter((t) => t.kind === 'ike-delete');
  sa.queue.sort(byPriority);
  const task = sa.queue.shift();
  if (!task) return;
  (TASKS[task.kind].start as (ctx: EngineContext, sa: IkeSa, t: Task) => void)(ctx, sa, task);
}

export function handleResponse(ctx: EngineContext, sa: IkeSa, task: Task, h: IkeHeader, payloads: Payload[], data: Buffer): Promise<void> | void {
  const def = TASKS[task.kind] as TaskDef<Task>;
  return def.response(ctx, sa, task, h, payloads, data);
}

export function handleFailure(ctx: EngineContext, sa: IkeSa, task: Task, why: string): Promise<void> | void {
  const def = TASKS[task.kind] as TaskDef<Task>;
  return def.failed(ctx, sa, task, why);
}

type RequestHandler = (ctx: EngineContext, sa: IkeSa, h: IkeHeader, payloads: Payload[]) => Promise<void> | void;

/** CREATE_CHILD_SA carries a new CHILD_SA, a CHILD_SA rekey or an IKE SA rekey (RFC 7296 §1.3). */
function onCreateChildSaRequest(ctx: EngineContext, sa: IkeSa, h: IkeHeader, payloads: Payload[]): Promise<void> | void {
  const sap = find(payloads, PayloadType.SA);
  const ikeRekey = sap !== undefined && sap.proposals.some((p) => p.protocol === ProtocolId.IKE);
  // While we rekey the IKE SA, only the peer's own IKE SA rekey is answered (a collision, §2.8.2).
  if (sa.state !== 'ESTABLISHED' && !(ikeRekey && sa.state === 'REKEYING')) return answerNotify(ctx, sa, h, NotifyType.TEMPORARY_FAILURE);
  const nonce = find(payloads, PayloadType.NONCE);
  if (!sap || !nonce) return answerNotify(ctx, sa, h, NotifyType.INVALID_SYNTAX);
  if (ikeRekey) return onIkeRekeyRequest(ctx, sa, h, payloads, sap, nonce.data);
  return onChildRequest(ctx, sa, h, payloads, sap, nonce.data);
}

const REQUESTS: Partial<Record<number, RequestHandler>> = {
  [ExchangeType.IKE_AUTH]: onAuthRequest,
  [ExchangeType.IKE_INTERMEDIATE]: onIntermediateRequest,
  [ExchangeType.CREATE_CHILD_SA]: onCreateChildSaRequest,
  [ExchangeType.INFORMATIONAL]: onInformationalRequest,
  [ExchangeType.IKE_FOLLOWUP_KE]: onFollowupRequest,
};

/** An authenticated request of the peer (IKE_SA_INIT requests are handled before an SA exists). */
export function handleRequest(ctx: EngineContext, sa: IkeSa, h: IkeHeader, payloads: Payload[]): Promise<void> | void {
  // Until the peer is authenticated, IKE_AUTH is the only exchange it may start (RFC 7296 §1.2),
  // after IKE_INTERMEDIATE exchanges when both announced them (RFC 9242).
  if (!sa.initiator && sa.state === 'CONNECTING' && h.exchange !== ExchangeType.IKE_AUTH && h.exchange !== ExchangeType.IKE_INTERMEDIATE) {
    ctx.stats.rxInvalid++;
    if (ctx.debug) ctx.log.debug({ ike: sa.id, exchange: h.exchange }, 'request before IKE_AUTH refused');
    return answerNotify(ctx, sa, h, NotifyType.INVALID_SYNTAX);
  }
  const handler = REQUESTS[h.exchange];
  if (handler) return handler(ctx, sa, h, payloads);
  ctx.stats.rxInvalid++;
  // Unknown exchange types in an authenticated request: tell the peer (RFC 7296 §2.21.2).
  return answerNotify(ctx, sa, h, NotifyType.INVALID_SYNTAX);
}

const TIMERS: Partial<Record<number, (ctx: EngineContext, sa: IkeSa) => void>> = {
  [Timer.RETRANSMIT]: retransmit,
  [Timer.HALF_OPEN]: halfOpenTimeout,
  [Timer.DPD]: dpdCheck,
  [Timer.DELETE_OLD]: deleteOldDue,
  [Timer.CHILD_REKEY]: childTimers,
  [Timer.IKE_REKEY]: ikeRekeyDue,
  [Timer.IKE_EXPIRE]: ikeExpired,
  [Timer.IKE_REAUTH]: ikeReauthDue,
  [Timer.DEFRAG]: defragTimeout,
  [Timer.FOLLOWUP]: followupTimeout,
};

/** One of the SA's timers fired (stale entries were filtered by the caller). */
export function onSaTimer(ctx: EngineContext, sa: IkeSa, kind: number): void {
  TIMERS[kind]?.(ctx, sa);
}
