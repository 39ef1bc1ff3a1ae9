/**
 * IKE_FOLLOWUP_KE (RFC 9370 §2.2.4): the additional key exchanges of a CREATE_CHILD_SA (a new or
 * rekeyed CHILD_SA with PFS, or an IKE SA rekey) run after it, one exchange each:
 *
 *   CREATE_CHILD_SA  {SA, Ni, KEi, ...}              -->
 *                    <--  {SA, Nr, KEr, N(ADDITIONAL_KEY_EXCHANGE)(link1), ...}
 *   IKE_FOLLOWUP_KE  {KEi(1), N(ADDITIONAL_KEY_EXCHANGE)(link1)}  -->
 *                    <--  {KEr(1) [, N(ADDITIONAL_KEY_EXCHANGE)(link2)]}
 *
 * The last response carries no link. Only then is the CHILD_SA installed or the new IKE SA made,
 * with keys from all secrets: SK(0) | Ni | Nr | SK(1) | ... | SK(n). The state of one such exchange
 * per direction lives on the IKE SA (sa.followupOut / sa.followupIn); a peer that does not follow
 * up within HALF_OPEN_TIMEOUT_S loses what it started, as does one that names unknown link data
 * (STATE_NOT_FOUND).
 */
import { ExchangeType, NotifyType, PayloadType, notifyName } from '../constants.ts';
import type { IkeHeader, KePayload, Payload } from '../codec/types.ts';
import { createKeyExchange, CryptoError, respondKeyExchange } from '../crypto/ke.ts';
import { Timer, type Followup, type IkeSa } from '../sa/ike-sa.ts';
import { find, findErrorNotify, findNotify, notify } from './payload-util.ts';
import { clearTimer, setTimer, type EngineContext } from './context.ts';
import { answer, answerNotify, sendRequest } from './message.ts';
import { abandonChildFollowup, finishChildFollowup, settlePeerRekey } from './child-create.ts';
import { abandonIkeFollowup, finishIkeFollowup } from './ike-rekey.ts';

const LINK_LEN = 8;

/** A fresh link for the next IKE_FOLLOWUP_KE (opaque to the initiator). */
export function newLink(ctx: EngineContext): Buffer {
  return ctx.opts.random(LINK_LEN);
}

/** The notify that carries link data. */
export function linkNotify(link: Buffer): Payload {
  return notify(NotifyType.ADDITIONAL_KEY_EXCHANGE, link);
}

// ---------------------------------------------------------------- initiator

/** Start the IKE_FOLLOWUP_KE exchanges of our CREATE_CHILD_SA; the response named the first link. */
export function startFollowup(ctx: EngineContext, sa: IkeSa, f: Followup): void {
  sa.followupOut = f;
  sendFollowup(ctx, sa);
}

function sendFollowup(ctx: EngineContext, sa: IkeSa): void {
  const f = sa.followupOut!;
  const method = f.methods[f.done]!;
  f.ke = createKeyExchange(method);
  const ke: KePayload = { type: PayloadType.KE, critical: false, group: method, data: f.ke.publicValue };
  sendRequest(ctx, sa, ExchangeType.IKE_FOLLOWUP_KE, [ke, linkNotify(f.link)], { kind: 'followup' });
}

/** Our IKE_FOLLOWUP_KE exchange failed: what the CREATE_CHILD_SA started is given up (a rekey is retried later). */
export function onFollowupFailure(ctx: EngineContext, sa: IkeSa, why: string): void {
  const f = sa.followupOut;
  if (!f) return;
  sa.followupOut = undefined;
  if (f.target.kind === 'child') abandonChildFollowup(ctx, sa, f, why, true);
  else abandonIkeFollowup(ctx, sa, why, true);
}

export async function onFollowupResponse(ctx: EngineContext, sa: IkeSa, payloads: Payload[]): Promise<void> {
  const f = sa.followupOut;
  if (!f) return;
  const fail = (why: string): void => onFollowupFailure(ctx, sa, why);
  const err = findErrorNotify(payloads);
  if (err) return fail(notifyName(err.notifyType));
  const ke = find(payloads, PayloadType.KE);
  if (!ke || !f.ke || ke.group !== f.ke.group) return fail('IKE_FOLLOWUP_KE response without our KE method');
  let secret: Buffer;
  try {
    secret = f.ke.computeSecret(ke.data);
  } catch (e) {
    if (!(e instanceof CryptoError)) throw e;
    return fail(`bad KE payload: ${e.message}`);
  }
  f.ke = undefined;
  f.added.push(secret);
  f.done++;
  if (f.done < f.methods.length) {
    const link = findNotify(payloads, NotifyType.ADDITIONAL_KEY_EXCHANGE);
    if (!link || link.data.length === 0) return fail('IKE_FOLLOWUP_KE response without the next link');
    f.link = link.data;
    return sendFollowup(ctx, sa);
  }
  sa.followupOut = undefined;
  const added = Buffer.concat(f.added);
  if (f.target.kind === 'child') await finishChildFollowup(ctx, sa, f, added, true);
  else finishIkeFollowup(ctx, sa, f, added, true);
}

// ---------------------------------------------------------------- responder

/** We answered a CREATE_CHILD_SA with the first link: wait for the peer's IKE_FOLLOWUP_KE requests. */
export function awaitFollowup(ctx: EngineContext, sa: IkeSa, f: Followup): void {
  if (sa.followupIn) dropFollowupIn(ctx, sa, 'replaced by a newer exchange');
  sa.followupIn = f;
  setTimer(ctx, sa, Timer.FOLLOWUP, ctx.sched.now() + ctx.opts.halfOpenTimeout * 1000);
}

/** The peer's CREATE_CHILD_SA will not complete: release what it holds. */
export function dropFollowupIn(ctx: EngineContext, sa: IkeSa, why: string): void {
  const f = sa.followupIn;
  if (!f) return;
  sa.followupIn = undefined;
  clearTimer(sa, Timer.FOLLOWUP);
  if (f.target.kind === 'child') abandonChildFollowup(ctx, sa, f, why, false);
  else abandonIkeFollowup(ctx, sa, why, false);
}

/** The peer did not follow up in time. */
export function followupTimeout(ctx: EngineContext, sa: IkeSa): void {
  dropFollowupIn(ctx, sa, 'no IKE_FOLLOWUP_KE from the peer');
}

export async function onFollowupRequest(ctx: EngineContext, sa: IkeSa, h: IkeHeader, payloads: Payload[]): Promise<void> {
  const f = sa.followupIn;
  const link = findNotify(payloads, NotifyType.ADDITIONAL_KEY_EXCHANGE);
  if (sa.state !== 'ESTABLISHED' && sa.state !== 'REKEYING') return answerNotify(ctx, sa, h, NotifyType.TEMPORARY_FAILURE);
  if (!f || !link || !link.data.equals(f.link)) {
    // RFC 9370 §2.2.4: link data we do not know (the state is gone or never was)
    ctx.stats.rxInvalid++;
    return answerNotify(ctx, sa, h, NotifyType.STATE_NOT_FOUND);
  }
  const method = f.methods[f.done]!;
  const ke = find(payloads, PayloadType.KE);
  const r = ke && ke.group === method ? respondKeyExchange(method, ke.data) : undefined;
  if (!r) {
    ctx.stats.rxInvalid++;
    answerNotify(ctx, sa, h, NotifyType.INVALID_SYNTAX);
    return dropFollowupIn(ctx, sa, ke ? `bad KE payload (method ${ke.group}, ${ke.data.length} bytes)` : 'no KE payload');
  }
  f.added.push(r.secret);
  f.done++;
  const ours: KePayload = { type: PayloadType.KE, critical: false, group: method, data: r.publicValue };
  if (f.done < f.methods.length) {
    f.link = newLink(ctx);
    setTimer(ctx, sa, Timer.FOLLOWUP, ctx.sched.now() + ctx.opts.halfOpenTimeout * 1000);
    return answer(ctx, sa, h, [ours, linkNotify(f.link)]);
  }
  sa.followupIn = undefined;
  clearTimer(sa, Timer.FOLLOWUP);
  const added = Buffer.concat(f.added);
  const t = f.target;
  if (t.kind === 'child') {
    const child = await finishChildFollowup(ctx, sa, f, added, false);
    if (sa.dead) return;
    answer(ctx, sa, h, child ? [ours] : [notify(NotifyType.NO_PROPOSAL_CHOSEN)]);
    if (child && t.rekey) settlePeerRekey(ctx, sa, t.rekey, child, t.colliding ?? false, f.ni, f.nr);
    return;
  }
  answer(ctx, sa, h, [ours]);
  finishIkeFollowup(ctx, sa, f, added, false);
}
