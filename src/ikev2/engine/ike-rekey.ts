/**
 * IKE SA rekeying (RFC 7296 §1.3.2, §2.18) for both roles: a new IKE SA with keys from the old SK_d
 * and a fresh key exchange takes over the CHILD_SAs; the rekey's initiator deletes the old one.
 */
import { ExchangeType, NotifyType, PayloadType, notifyName } from '../constants.ts';
import type { IkeHeader, Payload, SaPayload } from '../codec/types.ts';
import { IkeCipher } from '../crypto/protect.ts';
import { keep } from '../crypto/keep.ts';
import { createKeyExchange, CryptoError, respondKeyExchange } from '../crypto/ke.ts';
import { deriveRekeyedIkeKeys, KeptIkeKeys, prfOf } from '../crypto/prf.ts';
import { checkIkeResponse, formatIkeSuite, ikeChosenToWire, selectIkeProposal, toWireProposals, type ChosenIke } from '../crypto/proposals.ts';
import { IkeSa, Timer, type Task } from '../sa/ike-sa.ts';
import { find, findErrorNotify, findNotify, u16 } from './payload-util.ts';
import { ZERO_SPI, clearTimer, emit, jitter, newSpi, nonce, setTimer, type EngineContext } from './context.ts';
import { answer, answerNotify, sendRequest } from './message.ts';
import { hasTask, kick, queueTask } from './tasks.ts';
import { armChildTimer, deleteOldAfter, lowerNonce, nonceLess } from './child-rekey.ts';
import { startDpd } from './dpd.ts';
import { watchKeepalive } from './keepalive.ts';
import { deleteIke } from './teardown.ts';
import { addKeMethods } from '../crypto/proposals.ts';
import type { Followup } from '../sa/ike-sa.ts';
import { awaitFollowup, linkNotify, newLink, startFollowup } from './followup.ts';

type IkeRekeyTask = Extract<Task, { kind: 'ike-rekey' }>;

/** Rekey an IKE SA (RFC 7296 §2.18); its CHILD_SAs move to the new one (and a reauthentication under way follows them). */
export function rekeyIke(ctx: EngineContext, sa: IkeSa): boolean {
  if (sa.dead || sa.state !== 'ESTABLISHED') return false;
  if (!hasTask(sa, 'ike-rekey')) queueTask(ctx, sa, { kind: 'ike-rekey' });
  return true;
}

/**
 * The IKE SA's rekey and reauthentication times (rekey_time and reauth_time, each less a random
 * part of rand_time) and, as strongSwan does, its hard lifetime: over_time after the earlier of
 * the two, the IKE SA is deleted if neither replaced it. `reauthAt`: the reauthentication time of
 * the IKE SA this one rekeyed, which it keeps (strongSwan's inherit_post).
 */
export function scheduleIkeRekey(ctx: EngineContext, sa: IkeSa, reauthAt = 0): void {
  const conn = sa.conn;
  if (!conn) return;
  const now = ctx.sched.now();
  if (conn.rekeyTime > 0) {
    sa.rekeyAt = now + conn.rekeyTime * 1000 - jitter(ctx, conn.randTime);
    setTimer(ctx, sa, Timer.IKE_REKEY, sa.rekeyAt);
  }
  if (conn.reauthTime > 0) {
    sa.reauthAt = reauthAt > 0 ? reauthAt : now + conn.reauthTime * 1000 - jitter(ctx, conn.randTime);
    setTimer(ctx, sa, Timer.IKE_REAUTH, Math.max(sa.reauthAt, now));
  }
  const first = sa.rekeyAt && sa.reauthAt ? Math.min(sa.rekeyAt, sa.reauthAt) : sa.rekeyAt || sa.reauthAt;
  if (first && conn.overTime > 0) setTimer(ctx, sa, Timer.IKE_EXPIRE, Math.max(first, now) + conn.overTime * 1000);
}

/** The IKE SA reached its hard lifetime without being rekeyed: it is deleted (with a Delete). */
export function ikeExpired(ctx: EngineContext, sa: IkeSa): void {
  if (sa.state === 'REKEYING') {
    // A rekey is in flight: its outcome decides (a successful one deletes this SA anyway).
    setTimer(ctx, sa, Timer.IKE_EXPIRE, ctx.sched.now() + 5000);
    return;
  }
  if (sa.state !== 'ESTABLISHED') return;
  ctx.log.info({ ike: sa.id, peer: sa.remote.addr, conn: sa.conn?.name }, 'IKE SA reached its hard lifetime (over_time) without a rekey or reauthentication, deleting it');
  deleteIke(ctx, sa);
}

/** The IKE SA's rekey time came (while it is reauthenticated, the rekey waits: the new IKE SA makes it moot). */
export function ikeRekeyDue(ctx: EngineContext, sa: IkeSa): void {
  if (sa.reauthBy && !sa.reauthBy.dead) return setTimer(ctx, sa, Timer.IKE_REKEY, ctx.sched.now() + 10_000);
  if (sa.state === 'ESTABLISHED' && !hasTask(sa, 'ike-rekey')) queueTask(ctx, sa, { kind: 'ike-rekey' });
}

export function startIkeRekey(ctx: EngineContext, sa: IkeSa, task: IkeRekeyTask): void {
  const conn = sa.conn!;
  const group = task.group ?? sa.suite!.ke;
  task.spi = newSpi(ctx);
  task.ni = nonce(ctx);
  task.ke = createKeyExchange(group);
  sa.state = 'REKEYING';
  sendRequest(
    ctx,
    sa,
    ExchangeType.CREATE_CHILD_SA,
    [
      { type: PayloadType.SA, critical: false, proposals: toWireProposals(conn.proposals, task.spi) },
      { type: PayloadType.NONCE, critical: false, data: task.ni },
      { type: PayloadType.KE, critical: false, group, data: task.ke.publicValue },
    ],
    task,
  );
}

/**
 * Move CHILD_SAs from a rekeyed IKE SA to its successor (RFC 7296 §2.18), with the CHILD_SA work
 * still queued on the old one.
 */
function adoptChildren(ctx: EngineContext, from: IkeSa, to: IkeSa): void {
  to.children = from.children;
  from.children = [];
  for (const c of to.children) ctx.childrenById.set(c.id, to);
  const moves = (t: Task): boolean => t.kind === 'child-create' || t.kind === 'child-delete' || t.kind === 'reauth-complete';
  const moving = from.queue.filter(moves);
  from.queue = from.queue.filter((t) => !moves(t));
  armChildTimer(ctx, to);
  // CHILD_SAs waiting for the peer's delete (rekeyed, or redundant after a collision) keep their grace period.
  if (to.children.some((c) => c.state === 'REKEYED')) setTimer(ctx, to, Timer.DELETE_OLD, ctx.sched.now() + deleteOldAfter(ctx));
  for (const t of moving) queueTask(ctx, to, t);
}

/** `next` takes over from `old`: the CHILD_SAs move, the old IKE SA only waits for its delete. */
function takeOver(ctx: EngineContext, old: IkeSa, next: IkeSa): void {
  next.collisionOf = undefined;
  adoptChildren(ctx, old, next);
  old.state = 'REKEYED';
  clearTimer(old, Timer.DPD);
  clearTimer(old, Timer.IKE_REKEY);
  clearTimer(old, Timer.IKE_EXPIRE);
  clearTimer(old, Timer.IKE_REAUTH);
  clearTimer(old, Timer.CHILD_REKEY);
  // A reauthentication under way follows the IKE SA: the new one it makes, or the one it replaces.
  if (old.reauthBy) {
    next.reauthBy = old.reauthBy;
    if (old.reauthBy.reauthOf?.old === old) old.reauthBy.reauthOf.old = next;
    old.reauthBy = undefined;
  }
  if (old.reauthOf) {
    next.reauthOf = old.reauthOf;
    if (next.reauthOf.old.reauthBy === old) next.reauthOf.old.reauthBy = next;
    old.reauthOf = undefined;
  }
  watchKeepalive(ctx, next);
  ctx.stats.ikeRekeyed++;
  ctx.log.info({ ike: next.id, old_ike: old.id, peer: next.remote.addr, conn: next.conn?.name, proposal: formatIkeSuite(next.suite!) }, 'IKE SA rekeyed');
  emit(ctx, { type: 'ike-rekeyed', sa: next, old });
  kick(ctx, next);
}

/**
 * A new IKE SA made by rekeying `old` (keys from the old SK_d and the new key exchange). With
 * `adopt` it takes over from old at once; without, it waits for the outcome of a rekey collision.
 * `added`: the secrets of additional key exchanges (IKE_FOLLOWUP_KE), SK(1) | ... | SK(n).
 */
function successor(
  ctx: EngineContext,
  old: IkeSa,
  weInitiated: boolean,
  spiI: Buffer,
  spiR: Buffer,
  chosen: ChosenIke,
  secret: Buffer,
  ni: Buffer,
  nr: Buffer,
  adopt = true,
  added?: Buffer,
): IkeSa {
  // The SA copies the SPIs into a block of its own. The nonces only go into the keys.
  const sa = new IkeSa(ctx.nextSaId++, weInitiated, spiI, { ...old.local }, { ...old.remote }, ctx.sched.now(), ctx.gauges);
  sa.spiR = spiR;
  sa.conn = old.conn;
  sa.localId = old.localId;
  sa.remoteId = old.remoteId;
  sa.remoteCert = old.remoteCert;
  sa.natHere = old.natHere;
  sa.natThere = old.natThere;
  sa.encapForced = old.encapForced;
  sa.mobike = old.mobike;
  sa.peerMobike = old.peerMobike;
  // What IKE_SA_INIT negotiated holds for the new IKE SA too (as strongSwan's inherit_pre).
  sa.extensions = old.extensions;
  sa.suite = chosen.suite;
  sa.prf = prfOf(chosen.suite.prf);
  sa.keys = new KeptIkeKeys(deriveRekeyedIkeKeys(chosen.suite, old.prf!.alg, old.keys!.skD, secret, ni, nr, spiI, spiR, added).keys);
  sa.cipher = new IkeCipher(chosen.suite, sa.keys, weInitiated, ctx.opts.random);
  sa.state = 'ESTABLISHED';
  sa.establishedAt = ctx.sched.now();
  ctx.table.add(sa);
  ctx.table.established(sa);
  scheduleIkeRekey(ctx, sa, old.reauthAt);
  startDpd(ctx, sa);
  if (adopt) takeOver(ctx, old, sa);
  return sa;
}

/** The IKE SA of the peer's colliding rekey, while it is up. */
function livePassive(task: IkeRekeyTask): IkeSa | undefined {
  const p = task.passive?.sa;
  return p && !p.dead && p.state === 'ESTABLISHED' ? p : undefined;
}

/**
 * The peer deletes `old` while our colliding rekey of it is in flight: the peer won the collision, so
 * the IKE SA its rekey made takes over the CHILD_SAs before old goes.
 */
export function peerWonIkeCollision(ctx: EngineContext, old: IkeSa): void {
  const t = old.active?.task;
  const p = t?.kind === 'ike-rekey' ? livePassive(t) : undefined;
  if (p) takeOver(ctx, old, p);
}

export function onIkeRekeyRequest(ctx: EngineContext, sa: IkeSa, h: IkeHeader, payloads: Payload[], sap: SaPayload, ni: Buffer): void {
  const ke = find(payloads, PayloadType.KE);
  const active = sa.active?.task;
  // Our own rekey in flight: a collision (RFC 7296 §2.8.2), answered as usual. While we create, rekey
  // or delete a CHILD_SA, or after a collision was answered, the peer retries later (§2.25.2).
  const colliding = active?.kind === 'ike-rekey' && !active.passive;
  const busyChild = active?.kind === 'child-create' || active?.kind === 'child-delete' || active?.kind === 'delete-spi' || active?.kind === 'followup';
  if ((sa.state !== 'ESTABLISHED' && !colliding) || busyChild) return answerNotify(ctx, sa, h, NotifyType.TEMPORARY_FAILURE);
  if (!ke) return answerNotify(ctx, sa, h, NotifyType.INVALID_SYNTAX);
  const chosen = selectIkeProposal(sa.conn!.proposals, sap.proposals, { peerKe: ke.group, addKe: true });
  if (!chosen) {
    ctx.stats.noProposal++;
    return answerNotify(ctx, sa, h, NotifyType.NO_PROPOSAL_CHOSEN);
  }
  if (chosen.spi.length !== 8 || chosen.spi.equals(ZERO_SPI)) return answerNotify(ctx, sa, h, NotifyType.INVALID_SYNTAX);
  if (ke.group !== chosen.suite.ke) {
    ctx.stats.invalidKe++;
    return answerNotify(ctx, sa, h, NotifyType.INVALID_KE_PAYLOAD, u16(chosen.suite.ke));
  }
  const dh = respondKeyExchange(chosen.suite.ke, ke.data);
  if (!dh) return answerNotify(ctx, sa, h, NotifyType.INVALID_SYNTAX);
  const secret = dh.secret;
  const nr = nonce(ctx);
  const spiR = newSpi(ctx);
  const out: Payload[] = [
    { type: PayloadType.SA, critical: false, proposals: [ikeChosenToWire(chosen, spiR)] },
    { type: PayloadType.NONCE, critical: false, data: nr },
    { type: PayloadType.KE, critical: false, group: chosen.suite.ke, data: dh.publicValue },
  ];
  const methods = addKeMethods(chosen.suite.addKe);
  if (methods.length > 0) {
    // RFC 9370 §2.2.4: the new IKE SA comes after the IKE_FOLLOWUP_KE exchanges. Colliding with
    // our own rekey, the peer retries later instead (RFC 7296 §2.25.2).
    if (colliding) return answerNotify(ctx, sa, h, NotifyType.TEMPORARY_FAILURE);
    const f: Followup = { link: newLink(ctx), methods, done: 0, secret0: secret, added: [], ni: keep(ni), nr, target: { kind: 'ike', chosen, spiI: keep(chosen.spi), spiR } };
    awaitFollowup(ctx, sa, f);
    return answer(ctx, sa, h, [...out, linkNotify(f.link)]);
  }
  answer(ctx, sa, h, out);
  // The peer started the rekey, so it is the new IKE SA's initiator; it deletes the old one.
  const next = successor(ctx, sa, false, chosen.spi, spiR, chosen, secret, ni, nr, !colliding);
  if (colliding && active?.kind === 'ike-rekey') {
    active.passive = { sa: next, nonce: lowerNonce(ni, nr) };
    next.collisionOf = sa;
    ctx.stats.ikeRekeyCollisions++;
    ctx.log.info({ ike: sa.id, peers: next.id }, 'IKE SA rekey collision: the peer rekeys it too');
    return;
  }
  setTimer(ctx, sa, Timer.DELETE_OLD, ctx.sched.now() + deleteOldAfter(ctx));
}

/** Our IKE SA rekey did not happen: try again later. */
function ikeRekeyFailed(ctx: EngineContext, sa: IkeSa, why: string): void {
  if (sa.terminateRequested) return;
  ctx.log.info({ ike: sa.id, reason: why }, 'IKE SA rekey failed, retrying later');
  setTimer(ctx, sa, Timer.IKE_REKEY, ctx.sched.now() + 10_000 + jitter(ctx, 20));
}

/** The response to our IKE SA rekey cannot be used: the exchange failed. */
export function onIkeRekeyFailure(ctx: EngineContext, sa: IkeSa, task: IkeRekeyTask, why: string): void {
  if (sa.state === 'REKEYING') sa.state = 'ESTABLISHED';
  if (peerRekeyStands(ctx, sa, task, why)) return;
  if (sa.terminateRequested) return deleteIke(ctx, sa);
  ikeRekeyFailed(ctx, sa, why);
}

/**
 * Our rekey failed but the peer's colliding one made an IKE SA: that one takes over, and the peer
 * deletes the old SA (we do if it does not within a while).
 */
function peerRekeyStands(ctx: EngineContext, sa: IkeSa, task: IkeRekeyTask, why: string): boolean {
  const p = livePassive(task);
  if (!p) return false;
  ctx.log.info({ ike: sa.id, peers: p.id, reason: why }, 'IKE SA rekey failed, the peer rekeyed it meanwhile');
  takeOver(ctx, sa, p);
  setTimer(ctx, sa, Timer.DELETE_OLD, ctx.sched.now() + deleteOldAfter(ctx));
  if (sa.terminateRequested) deleteIke(ctx, p);
  return true;
}

export function onIkeRekeyResponse(ctx: EngineContext, sa: IkeSa, task: IkeRekeyTask, payloads: Payload[]): void {
  if (sa.state === 'REKEYING') sa.state = 'ESTABLISHED';
  if (livePassive(task)) return concludeCollision(ctx, sa, task, payloads);
  if (sa.terminateRequested) {
    // The operator asked for a delete meanwhile: the SA the peer may have created dies with this one.
    deleteIke(ctx, sa);
  }
  const retryLater = (why: string): void => ikeRekeyFailed(ctx, sa, why);
  const invalidKe = findNotify(payloads, NotifyType.INVALID_KE_PAYLOAD);
  if (invalidKe && invalidKe.data.length === 2 && task.group === undefined) {
    const group = invalidKe.data.readUInt16BE(0);
    if (sa.conn!.proposals.some((p) => p.ke.includes(group))) return queueTask(ctx, sa, { kind: 'ike-rekey', group });
  }
  const err = findErrorNotify(payloads);
  if (err) return retryLater(notifyName(err.notifyType));
  const sap = find(payloads, PayloadType.SA);
  const nr = find(payloads, PayloadType.NONCE);
  const ke = find(payloads, PayloadType.KE);
  if (!sap || !nr || !ke) return retryLater('incomplete response');
  const chosen = checkIkeResponse(sa.conn!.proposals, sap.proposals);
  if (!chosen || chosen.spi.length !== 8 || ke.group !== task.ke!.group || chosen.suite.ke !== ke.group) return retryLater('unexpected proposal');
  let secret: Buffer;
  try {
    secret = task.ke!.computeSecret(ke.data);
  } catch (e) {
    if (!(e instanceof CryptoError)) throw e;
    return retryLater(e.message);
  }
  const methods = addKeMethods(chosen.suite.addKe);
  if (methods.length > 0) {
    const link = findNotify(payloads, NotifyType.ADDITIONAL_KEY_EXCHANGE);
    if (!link || link.data.length === 0) return retryLater('additional key exchanges chosen without link data');
    if (sa.terminateRequested) return;
    sa.state = 'REKEYING';
    return startFollowup(ctx, sa, { link: link.data, methods, done: 0, secret0: secret, added: [], ni: task.ni!, nr: keep(nr.data), target: { kind: 'ike', chosen, spiI: task.spi!, spiR: keep(chosen.spi) } });
  }
  const next = successor(ctx, sa, true, task.spi!, chosen.spi, chosen, secret, task.ni!, nr.data);
  queueTask(ctx, sa, { kind: 'ike-delete' });
  if (sa.terminateRequested) deleteIke(ctx, next);
}

/** The IKE_FOLLOWUP_KE exchanges of an IKE SA rekey are done: the new IKE SA takes over. */
export function finishIkeFollowup(ctx: EngineContext, sa: IkeSa, f: Followup, added: Buffer, weInitiated: boolean): void {
  const t = f.target;
  if (t.kind !== 'ike') return;
  if (weInitiated) {
    if (sa.state === 'REKEYING') sa.state = 'ESTABLISHED';
    const next = successor(ctx, sa, true, t.spiI, t.spiR, t.chosen, f.secret0, f.ni, f.nr, true, added);
    queueTask(ctx, sa, { kind: 'ike-delete' });
    if (sa.terminateRequested) deleteIke(ctx, next);
    return;
  }
  if (sa.state !== 'ESTABLISHED') return;
  successor(ctx, sa, false, t.spiI, t.spiR, t.chosen, f.secret0, f.ni, f.nr, true, added);
  setTimer(ctx, sa, Timer.DELETE_OLD, ctx.sched.now() + deleteOldAfter(ctx));
}

/** An IKE SA rekey's IKE_FOLLOWUP_KE exchanges failed: ours is retried later, the peer's forgotten. */
export function abandonIkeFollowup(ctx: EngineContext, sa: IkeSa, why: string, weInitiated: boolean): void {
  ctx.log.info({ ike: sa.id, reason: why }, weInitiated ? 'IKE SA rekey failed in IKE_FOLLOWUP_KE, retrying later' : 'peer IKE SA rekey abandoned in IKE_FOLLOWUP_KE');
  if (!weInitiated) return;
  if (sa.state === 'REKEYING') sa.state = 'ESTABLISHED';
  if (sa.terminateRequested) return deleteIke(ctx, sa);
  ikeRekeyFailed(ctx, sa, why);
}

/**
 * The response to our IKE SA rekey is in, and the peer's colliding rekey made an IKE SA too: the one
 * made by the exchange with the lowest nonce is redundant and is deleted by the side that started it
 * (RFC 7296 §2.8.2). The winner's new IKE SA takes the CHILD_SAs; the winner deletes the old SA.
 */
function concludeCollision(ctx: EngineContext, sa: IkeSa, task: IkeRekeyTask, payloads: Payload[]): void {
  const peers = task.passive!;
  const err = findErrorNotify(payloads);
  const sap = find(payloads, PayloadType.SA);
  const nr = find(payloads, PayloadType.NONCE);
  const ke = find(payloads, PayloadType.KE);
  if (err) return void peerRekeyStands(ctx, sa, task, notifyName(err.notifyType));
  if (!sap || !nr || !ke) return void peerRekeyStands(ctx, sa, task, 'incomplete response');
  const chosen = checkIkeResponse(sa.conn!.proposals, sap.proposals);
  if (!chosen || chosen.spi.length !== 8 || ke.group !== task.ke!.group || chosen.suite.ke !== ke.group) return void peerRekeyStands(ctx, sa, task, 'unexpected proposal');
  // IKE_FOLLOWUP_KE in the middle of a collision is not run: the peer's rekey stands.
  if (addKeMethods(chosen.suite.addKe).length > 0) return void peerRekeyStands(ctx, sa, task, 'additional key exchanges during a collision');
  let secret: Buffer;
  try {
    secret = task.ke!.computeSecret(ke.data);
  } catch (e) {
    if (!(e instanceof CryptoError)) throw e;
    return void peerRekeyStands(ctx, sa, task, e.message);
  }
  if (nonceLess(lowerNonce(task.ni!, nr.data), peers.nonce)) {
    ctx.log.info({ ike: sa.id, peers: peers.sa.id }, 'IKE SA rekey collision lost, deleting the redundant IKE SA we made');
    const redundant = successor(ctx, sa, true, task.spi!, chosen.spi, chosen, secret, task.ni!, nr.data, false);
    clearTimer(redundant, Timer.IKE_REKEY);
    clearTimer(redundant, Timer.IKE_EXPIRE);
    clearTimer(redundant, Timer.IKE_REAUTH);
    clearTimer(redundant, Timer.DPD);
    queueTask(ctx, redundant, { kind: 'ike-delete' });
    peerRekeyStands(ctx, sa, task, 'collision lost');
    return;
  }
  ctx.log.info({ ike: sa.id, peers: peers.sa.id }, 'IKE SA rekey collision won, deleting the old IKE SA');
  const next = successor(ctx, sa, true, task.spi!, chosen.spi, chosen, secret, task.ni!, nr.data);
  // The peer deletes the IKE SA its exchange made; if it does not within a while, we do.
  peers.sa.state = 'REKEYED';
  peers.sa.collisionOf = undefined;
  clearTimer(peers.sa, Timer.IKE_REKEY);
  clearTimer(peers.sa, Timer.IKE_EXPIRE);
  clearTimer(peers.sa, Timer.IKE_REAUTH);
  clearTimer(peers.sa, Timer.DPD);
  setTimer(ctx, peers.sa, Timer.DELETE_OLD, ctx.sched.now() + deleteOldAfter(ctx));
  kick(ctx, peers.sa);
  queueTask(ctx, sa, { kind: 'ike-delete' });
  if (sa.terminateRequested) deleteIke(ctx, next);
}
