/**
 * IKE_INTERMEDIATE (RFC 9242) carrying the additional key exchanges of RFC 9370 between IKE_SA_INIT
 * and IKE_AUTH, both roles: one exchange per negotiated ADDKE transform (ADDKE1 first, NONE skipped),
 * each with one KE payload each way; after each exchange the IKE SA's keys are derived again from
 * SK_d and the new shared secret (same SPIs). Every IKE_INTERMEDIATE message, sent or received, is
 * folded into the IntAuth chain with the SK_p key in force for it; IKE_AUTH signs the chain.
 *
 * Message IDs run on: IKE_INTERMEDIATE requests are 1..n, the first IKE_AUTH request n+1.
 * Retransmission and the response cache are the message layer's, as for any request. State per SA:
 * a counter, the two chain values and the previous cipher (for a retransmitted request after our
 * response switched keys); nothing else.
 */
import { ExchangeType, NotifyType, PayloadType, notifyName } from '../constants.ts';
import type { IkeHeader, Payload } from '../codec/types.ts';
import { intAuthLink, intAuthOctets, intAuthTail } from '../crypto/auth.ts';
import { createKeyExchange, CryptoError, respondKeyExchange } from '../crypto/ke.ts';
import { deriveAdditionalIkeKeys, KeptIkeKeys } from '../crypto/prf.ts';
import { addKeMethods } from '../crypto/proposals.ts';
import { IkeCipher } from '../crypto/protect.ts';
import type { IkeSa } from '../sa/ike-sa.ts';
import { find, findErrorNotify } from './payload-util.ts';
import type { EngineContext } from './context.ts';
import { answer, answerNotify, sendRequest } from './message.ts';
import { initFailed } from './ike-init.ts';
import { sendAuth } from './ike-auth.ts';
import { destroy } from './teardown.ts';

/** The additional key exchanges of the SA's suite still to run. */
export function addKeRemaining(sa: IkeSa): number {
  return addKeMethods(sa.suite?.addKe).length - sa.addKeDone;
}

/**
 * Fold one IKE_INTERMEDIATE message into the IntAuth chain of its sender (RFC 9242 §3.3.1), with the
 * keys that protect it. Called by the message layer for every such message it seals or accepts
 * while the SA is being set up.
 */
export function foldIntAuth(sa: IkeSa, h: Pick<IkeHeader, 'spiI' | 'spiR' | 'version' | 'exchange' | 'flags' | 'messageId'>, fromInitiator: boolean, firstInner: number, inner: Buffer): void {
  if (h.exchange !== ExchangeType.IKE_INTERMEDIATE || sa.state !== 'CONNECTING' || !sa.intermediate || !sa.prf || !sa.keys) return;
  const octets = intAuthOctets(h, firstInner, inner);
  if (fromInitiator) sa.intAuthI = intAuthLink(sa.prf, sa.keys.skPi, sa.intAuthI, octets);
  else sa.intAuthR = intAuthLink(sa.prf, sa.keys.skPr, sa.intAuthR, octets);
}

/** What IKE_INTERMEDIATE adds to the AUTH payload's signed octets (empty when there was none). */
export function intAuthForAuth(sa: IkeSa): Buffer | undefined {
  if (!sa.intAuthI || !sa.intAuthR) return undefined;
  // The first IKE_AUTH request follows the IKE_INTERMEDIATE exchanges: message ID 1 + their number.
  return intAuthTail(sa.intAuthI, sa.intAuthR, 1 + sa.addKeDone);
}

/** IntAuth is signed; the chain and the old cipher are not needed once IKE_AUTH is done. */
export function intermediateDone(sa: IkeSa): void {
  sa.intAuthI = undefined;
  sa.intAuthR = undefined;
  sa.prevCipher = undefined;
}

/** New IKE SA keys after additional key exchange number sa.addKeDone (RFC 9370 §2.2.2). */
function updateKeys(ctx: EngineContext, sa: IkeSa, secret: Buffer): void {
  const suite = sa.suite!;
  sa.keys = new KeptIkeKeys(deriveAdditionalIkeKeys(suite, sa.keys!.skD, secret, sa.ni, sa.nr, sa.spiI, sa.spiR).keys);
  sa.prevCipher = sa.cipher;
  sa.cipher = new IkeCipher(suite, sa.keys, sa.initiator, ctx.opts.random);
  sa.addKeDone++;
}

// ---------------------------------------------------------------- initiator

/** Send the IKE_INTERMEDIATE request of the next additional key exchange, or IKE_AUTH when all are done. */
export function startIntermediate(ctx: EngineContext, sa: IkeSa): Promise<void> | void {
  const method = addKeMethods(sa.suite!.addKe)[sa.addKeDone];
  if (method === undefined) return sendAuth(ctx, sa);
  sa.ke = createKeyExchange(method);
  sendRequest(ctx, sa, ExchangeType.IKE_INTERMEDIATE, [{ type: PayloadType.KE, critical: false, group: method, data: sa.ke.publicValue }], { kind: 'ike-int' });
}

export function onIntermediateResponse(ctx: EngineContext, sa: IkeSa, payloads: Payload[]): Promise<void> | void {
  const stage = 'IKE_INTERMEDIATE';
  const err = findErrorNotify(payloads);
  if (err) return initFailed(ctx, sa, notifyName(err.notifyType), stage);
  const ke = find(payloads, PayloadType.KE);
  const ours = sa.ke;
  if (!ke || !ours || ke.group !== ours.group) return initFailed(ctx, sa, 'IKE_INTERMEDIATE response without our KE method', stage);
  let secret: Buffer;
  try {
    secret = ours.computeSecret(ke.data);
  } catch (e) {
    if (!(e instanceof CryptoError)) throw e;
    return initFailed(ctx, sa, `bad KE payload: ${e.message}`, stage);
  }
  sa.ke = undefined;
  updateKeys(ctx, sa, secret);
  if (ctx.debug) ctx.log.debug({ ike: sa.id, done: sa.addKeDone, left: addKeRemaining(sa) }, 'additional key exchange done');
  return startIntermediate(ctx, sa);
}

// ---------------------------------------------------------------- responder

/** A request we cannot continue from: tell the peer and drop the half-open SA. */
function refuse(ctx: EngineContext, sa: IkeSa, h: IkeHeader, type: number, why: string): void {
  ctx.stats.rxInvalid++;
  ctx.log.info({ ike: sa.id, peer: sa.remote.addr, reason: why }, 'IKE_INTERMEDIATE refused');
  answerNotify(ctx, sa, h, type);
  if (sa.state === 'CONNECTING') destroy(ctx, sa, `IKE_INTERMEDIATE: ${why}`);
}

export function onIntermediateRequest(ctx: EngineContext, sa: IkeSa, h: IkeHeader, payloads: Payload[]): void {
  if (sa.initiator || sa.state !== 'CONNECTING' || !sa.intermediate || sa.authRounds > 0) {
    return refuse(ctx, sa, h, NotifyType.INVALID_SYNTAX, 'not expected now');
  }
  const method = addKeMethods(sa.suite?.addKe)[sa.addKeDone];
  if (method === undefined) return refuse(ctx, sa, h, NotifyType.INVALID_SYNTAX, 'no additional key exchange left');
  const ke = find(payloads, PayloadType.KE);
  if (!ke) return refuse(ctx, sa, h, NotifyType.INVALID_SYNTAX, 'no KE payload');
  // RFC 9370 §2.2.2: the KE payload must be of the method negotiated for this exchange.
  if (ke.group !== method) return refuse(ctx, sa, h, NotifyType.INVALID_SYNTAX, `KE method ${ke.group}, negotiated ${method}`);
  const r = respondKeyExchange(method, ke.data);
  if (!r) return refuse(ctx, sa, h, NotifyType.INVALID_SYNTAX, `invalid key exchange data (${ke.data.length} bytes)`);
  answer(ctx, sa, h, [{ type: PayloadType.KE, critical: false, group: method, data: r.publicValue }]);
  // The response went out under the old keys (and is folded into IntAuth with them); the next
  // message, IKE_INTERMEDIATE or IKE_AUTH, uses the new ones.
  updateKeys(ctx, sa, r.secret);
}
