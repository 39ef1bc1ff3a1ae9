/**
 * IKE SA rekeying (RFC 7296 §1.3.2, §2.18) for both roles: a new IKE SA with keys from the old SK_d
 * and a fresh key exchange takes over the CHILD_SAs; the rekey's initiator deletes the old one.
 */
import { ExchangeType, NotifyType, PayloadType, notifyName } from '../constants.ts';
import type { IkeHeader, Payload, SaPayload } from '../codec/types.ts';
import { IkeCipher } from '../crypto/protect.ts';
import { keep } from '../crypto/keep.ts';
import { createKeyExchange, CryptoError, respondKeyExchange } from '../crypto/ke.ts';
import { deriveRekeyedIkeKeys, Prf } from '../crypto/prf.ts';
import { checkIkeResponse, formatIkeSuite, ikeChosenToWire, selectIkeProposal, toWireProposals, type ChosenIke } from '../crypto/proposals.ts';
import { IkeSa, Timer, type Task } from '../sa/ike-sa.ts';
import { find, findErrorNotify, findNotify, u16 } from './payload-util.ts';
import { ZERO_SPI, clearTimer, emit, jitter, newSpi, nonce, setTimer, type EngineContext } from './context.ts';
import { answer, answerNotify, sendRequest } from './message.ts';
import { hasTask, queueTask } from './tasks.ts';
import { armChildTimer, DELETE_OLD_AFTER_MS } from './child-rekey.ts';
import { startDpd } from './dpd.ts';
import { deleteIke } from './teardown.ts';

type IkeRekeyTask = Extract<Task, { kind: 'ike-rekey' }>;

/** Rekey an IKE SA (RFC 7296 §2.18); its CHILD_SAs move to the new one. */
export function rekeyIke(ctx: EngineContext, sa: IkeSa): boolean {
  if (sa.dead || sa.state !== 'ESTABLISHED') return false;
  if (!hasTask(sa, 'ike-rekey')) queueTask(ctx, sa, { kind: 'ike-rekey' });
  return true;
}

export function scheduleIkeRekey(ctx: EngineContext, sa: IkeSa): void {
  const t = sa.conn?.rekeyTime ?? 0;
  if (t <= 0) return;
  sa.rekeyAt = ctx.sched.now() + (t - jitter(ctx, sa.conn!.randTime)) * 1000;
  setTimer(ctx, sa, Timer.IKE_REKEY, sa.rekeyAt);
}

/** The IKE SA's rekey time came. */
export function ikeRekeyDue(ctx: EngineContext, sa: IkeSa): void {
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

/** Move CHILD_SAs from a rekeyed IKE SA to its successor (RFC 7296 §2.18). */
function adoptChildren(ctx: EngineContext, from: IkeSa, to: IkeSa): void {
  to.children = from.children;
  from.children = [];
  for (const c of to.children) ctx.childrenById.set(c.id, { sa: to, child: c });
  armChildTimer(ctx, to);
}

/** A new IKE SA that takes over from `old` (keys from the old SK_d and the new key exchange). */
function successor(ctx: EngineContext, old: IkeSa, weInitiated: boolean, spiI: Buffer, spiR: Buffer, chosen: ChosenIke, secret: Buffer, ni: Buffer, nr: Buffer): IkeSa {
  // SPIs and nonces are kept for the new SA's life: copies of their own (see keep()).
  spiI = keep(spiI);
  spiR = keep(spiR);
  ni = keep(ni);
  nr = keep(nr);
  const sa = new IkeSa(ctx.nextSaId++, weInitiated, spiI, { ...old.local }, { ...old.remote }, ctx.sched.now(), ctx.gauges);
  sa.spiR = spiR;
  sa.conn = old.conn;
  sa.localId = old.localId;
  sa.remoteId = old.remoteId;
  sa.remoteCert = old.remoteCert;
  sa.natHere = old.natHere;
  sa.natThere = old.natThere;
  sa.encapForced = old.encapForced;
  // What IKE_SA_INIT negotiated holds for the new IKE SA too (as strongSwan's inherit_pre).
  sa.extensions = old.extensions;
  sa.suite = chosen.suite;
  sa.prf = new Prf(chosen.suite.prf);
  sa.ni = ni;
  sa.nr = nr;
  sa.keys = deriveRekeyedIkeKeys(chosen.suite, old.prf!.alg, old.keys!.skD, secret, ni, nr, spiI, spiR).keys;
  sa.cipher = new IkeCipher(chosen.suite, sa.keys, weInitiated, ctx.opts.random);
  sa.state = 'ESTABLISHED';
  sa.establishedAt = ctx.sched.now();
  ctx.table.add(sa);
  ctx.table.established(sa);
  adoptChildren(ctx, old, sa);
  old.state = 'REKEYED';
  clearTimer(old, Timer.DPD);
  clearTimer(old, Timer.IKE_REKEY);
  clearTimer(old, Timer.CHILD_REKEY);
  scheduleIkeRekey(ctx, sa);
  startDpd(ctx, sa);
  ctx.stats.ikeRekeyed++;
  ctx.log.info({ ike: sa.id, old_ike: old.id, peer: sa.remote.addr, conn: sa.conn?.name, proposal: formatIkeSuite(sa.suite) }, 'IKE SA rekeyed');
  emit(ctx, { type: 'ike-rekeyed', sa, old });
  return sa;
}

export function onIkeRekeyRequest(ctx: EngineContext, sa: IkeSa, h: IkeHeader, payloads: Payload[], sap: SaPayload, ni: Buffer): void {
  const ke = find(payloads, PayloadType.KE);
  if (sa.state !== 'ESTABLISHED' || sa.active?.task.kind === 'ike-rekey') return answerNotify(ctx, sa, h, NotifyType.TEMPORARY_FAILURE);
  if (!ke) return answerNotify(ctx, sa, h, NotifyType.INVALID_SYNTAX);
  const chosen = selectIkeProposal(sa.conn!.proposals, sap.proposals, { peerKe: ke.group });
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
  answer(ctx, sa, h, [
    { type: PayloadType.SA, critical: false, proposals: [ikeChosenToWire(chosen, spiR)] },
    { type: PayloadType.NONCE, critical: false, data: nr },
    { type: PayloadType.KE, critical: false, group: chosen.suite.ke, data: dh.publicValue },
  ]);
  // The peer started the rekey, so it is the new IKE SA's initiator; it deletes the old one.
  successor(ctx, sa, false, chosen.spi, spiR, chosen, secret, ni, nr);
  setTimer(ctx, sa, Timer.DELETE_OLD, ctx.sched.now() + DELETE_OLD_AFTER_MS);
}

export function onIkeRekeyResponse(ctx: EngineContext, sa: IkeSa, task: IkeRekeyTask, payloads: Payload[]): void {
  if (sa.state === 'REKEYING') sa.state = 'ESTABLISHED';
  if (sa.terminateRequested) {
    // The operator asked for a delete meanwhile: the SA the peer may have created dies with this one.
    deleteIke(ctx, sa);
  }
  const retryLater = (why: string): void => {
    if (sa.terminateRequested) return;
    ctx.log.info({ ike: sa.id, reason: why }, 'IKE SA rekey failed, retrying later');
    setTimer(ctx, sa, Timer.IKE_REKEY, ctx.sched.now() + (10 + jitter(ctx, 20)) * 1000);
  };
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
  const next = successor(ctx, sa, true, task.spi!, chosen.spi, chosen, secret, task.ni!, nr.data);
  queueTask(ctx, sa, { kind: 'ike-delete' });
  if (sa.terminateRequested) deleteIke(ctx, next);
}
