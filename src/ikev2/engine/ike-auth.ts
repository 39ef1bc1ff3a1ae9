/**
 * IKE_AUTH (RFC 7296 §1.2, §2.15) for both roles: identities, the AUTH payload through the
 * connection's authenticator, the CHILD_SA that comes with it, then INITIAL_CONTACT and `unique`.
 * IKE_AUTH rounds are counted on the SA rather than tied to a message ID, so exchanges before it
 * (IKE_INTERMEDIATE) and multiple rounds (EAP) fit.
 */
import { ExchangeType, NotifyType, PayloadType, notifyName } from '../constants.ts';
import type { AuthPayload, IdPayload, IkeHeader, Payload } from '../codec/types.ts';
import { signedOctets } from '../crypto/auth.ts';
import { formatIkeSuite } from '../crypto/proposals.ts';
import { Timer, type IkeSa, type Task } from '../sa/ike-sa.ts';
import { selFromWire, selToString } from '../sa/ts.ts';
import { hex8 } from '../../common/text.ts';
import { identityHasWildcards, identityMatches, identityToString, parseIdentity, parseIdPattern, type Identity } from '../../config/identity.ts';
import { EMPTY, find, findErrorNotify, findNotify, idBody, notify } from './payload-util.ts';
import { childFailed, clearTimer, emit, resolveWaiters, setTimer, type EngineContext } from './context.ts';
import { authenticatorFor, type AuthBuild } from './auth/authenticator.ts';
import { answer, answerNotify, seal, sendRequest, transmit } from './message.ts';
import { initFailed, localIdOf } from './ike-init.ts';
import { certPayloads, certReqFor, defaultLocalId, hasCertReq } from './auth/pubkey.ts';
import { completeChild, espProposalText, prepareChildRequest, respondChild } from './child-create.ts';
import { scheduleIkeRekey } from './ike-rekey.ts';
import { startDpd } from './dpd.ts';
import { keptUp } from './keep-up.ts';
import { addKeRemaining, intermediateDone, intAuthForAuth } from './ike-intermediate.ts';
import { watchKeepalive } from './keepalive.ts';
import { queueTask } from './tasks.ts';
import { deleteIke, destroy } from './teardown.ts';
import { reauthCollision } from './reauth.ts';

/**
 * The signed octets of one side (RFC 7296 §2.15): its IKE_SA_INIT message, the other's nonce,
 * prf(SK_px, ID'), and after IKE_INTERMEDIATE exchanges the IntAuth chain (RFC 9242 §3.3.2).
 */
function octetsOf(sa: IkeSa, ofInitiator: boolean, id: IdPayload): Buffer {
  const keys = sa.keys!;
  const octets = ofInitiator
    ? signedOctets(sa.prf!, sa.initRequest!, sa.nr, keys.skPi, idBody(id))
    : signedOctets(sa.prf!, sa.initResponse!, sa.ni, keys.skPr, idBody(id));
  const intAuth = intAuthForAuth(sa);
  return intAuth ? Buffer.concat([octets, intAuth]) : octets;
}

async function built(r: AuthBuild | Promise<AuthBuild>): Promise<AuthBuild> {
  return r;
}

// ---------------------------------------------------------------- responder

export async function onAuthRequest(ctx: EngineContext, sa: IkeSa, h: IkeHeader, payloads: Payload[]): Promise<void> {
  if (sa.initiator || sa.state !== 'CONNECTING' || !sa.cipher) return answerNotify(ctx, sa, h, NotifyType.INVALID_SYNTAX);
  if (addKeRemaining(sa) > 0) {
    // IKE_AUTH before every additional key exchange negotiated in IKE_SA_INIT (RFC 9370 §2.2.2).
    ctx.stats.rxInvalid++;
    answerNotify(ctx, sa, h, NotifyType.INVALID_SYNTAX);
    return destroy(ctx, sa, 'IKE_AUTH before the additional key exchanges');
  }
  sa.authRounds++;
  const idi = find(payloads, PayloadType.IDi);
  const auth = find(payloads, PayloadType.AUTH);
  if (!idi || !auth) {
    answerNotify(ctx, sa, h, NotifyType.INVALID_SYNTAX);
    return destroy(ctx, sa, 'IKE_AUTH without IDi/AUTH');
  }
  const idr = find(payloads, PayloadType.IDr);
  sa.peerMobike = findNotify(payloads, NotifyType.MOBIKE_SUPPORTED) !== undefined;
  const peerIdent: Identity = { type: idi.idType, data: idi.data };
  const wanted: Identity | undefined = idr ? { type: idr.idType, data: idr.data } : undefined;
  const peerId = safeIdString(peerIdent);
  const conn = ctx.index.forAuth(sa.local.addr, sa.remote.addr, peerIdent, wanted);
  if (!conn) {
    ctx.log.info({ ike: sa.id, peer: sa.remote.addr, id: peerId }, 'no connection matches peer identity');
    return authFailed(ctx, sa, h, 'no matching connection');
  }
  sa.conn = conn;
  sa.remoteId = peerId;
  sa.localId = localIdOf(ctx, conn, sa.local.addr);
  if (hasCertReq(payloads)) sa.certreqSeen = true;
  const theirs = authenticatorFor(conn.remote.auth);
  if (!theirs || !theirs.methods.includes(auth.method)) return authFailed(ctx, sa, h, `unsupported auth method ${auth.method}`);
  const v = theirs.verify(ctx, sa, peerId, auth, octetsOf(sa, true, idi), payloads);
  const failure = v instanceof Promise ? await v : v;
  // The SA may have gone while the signature was checked (half-open timeout, terminate, reload).
  if (sa.dead) return;
  if (failure !== undefined) return authFailed(ctx, sa, h, failure);
  // Authenticated.
  const ourId = ourIdPayload(ctx, sa, PayloadType.IDr);
  const ours = authenticatorFor(conn.local.auth);
  const b = ours ? ours.build(ctx, sa, octetsOf(sa, false, ourId)) : { error: `unsupported auth '${conn.local.auth}'` };
  const ourAuth = b instanceof Promise ? await built(b) : b;
  if (sa.dead) return;
  if ('error' in ourAuth) return authFailed(ctx, sa, h, ourAuth.error);
  established(ctx, sa);
  const out: Payload[] = [ourId, ...certPayloads(ctx, sa), authPayload(ourAuth)];
  const sap = find(payloads, PayloadType.SA);
  const tsi = find(payloads, PayloadType.TSi);
  const tsr = find(payloads, PayloadType.TSr);
  if (sap && tsi && tsr) {
    const childOut = await respondChild(ctx, sa, payloads, sap, tsi.selectors.map(selFromWire), tsr.selectors.map(selFromWire), sa.ni, sa.nr, undefined, true);
    out.push(...childOut.payloads);
  }
  if (sa.dead) return;
  if (conn.mobike && sa.peerMobike) {
    sa.mobike = true;
    out.push(notify(NotifyType.MOBIKE_SUPPORTED));
  }
  answer(ctx, sa, h, out);
  logEstablished(ctx, sa);
  intermediateDone(sa);
  authDone(sa);
  startDpd(ctx, sa);
  // Only after our IKE_AUTH response is out may anything else (a DELETE of a duplicate) be sent.
  if (findNotify(payloads, NotifyType.INITIAL_CONTACT)) initialContact(ctx, sa);
  else {
    reauthCollision(ctx, sa);
    applyUnique(ctx, sa);
  }
}

/** The peer failed to authenticate (responder): tell it, and drop the SA. */
function authFailed(ctx: EngineContext, sa: IkeSa, h: IkeHeader, reason: string): void {
  ctx.stats.authFailed++;
  ctx.log.info({ ike: sa.id, peer: sa.remote.addr, conn: sa.conn?.name, reason }, 'authentication failed');
  answerNotify(ctx, sa, h, NotifyType.AUTHENTICATION_FAILED);
  destroy(ctx, sa, `authentication failed: ${reason}`);
}

function authPayload(a: { method: number; data: Buffer }): AuthPayload {
  return { type: PayloadType.AUTH, critical: false, method: a.method, data: a.data };
}

// ---------------------------------------------------------------- initiator

export async function sendAuth(ctx: EngineContext, sa: IkeSa): Promise<void> {
  const conn = sa.conn!;
  const idi = ourIdPayload(ctx, sa, PayloadType.IDi);
  const ours = authenticatorFor(conn.local.auth);
  const b = ours ? ours.build(ctx, sa, octetsOf(sa, true, idi)) : { error: 'no PSK for our identity' };
  const auth = b instanceof Promise ? await built(b) : b;
  if (sa.dead) return;
  if ('error' in auth) return initFailed(ctx, sa, auth.error);
  // RFC 7296 §1.2: IDi, [CERT+], [N(INITIAL_CONTACT)], [CERTREQ+], [IDr], AUTH, ...
  const payloads: Payload[] = [idi, ...certPayloads(ctx, sa)];
  // Not when reauthenticating: the old IKE SA must survive until the new one took over.
  if (!sa.reauthOf && ctx.table.peers(sa.localId, sa.remoteId).size === 0) {
    payloads.push(notify(NotifyType.INITIAL_CONTACT));
  }
  const certreq = certReqFor(ctx, conn);
  if (certreq) payloads.push(certreq);
  // IDr names the responder we want; a pattern (`*.example.net`, `10.0.0.0/8`) or %any names none
  if (isSpecificId(conn.remote.id)) payloads.push(idPayload(PayloadType.IDr, conn.remote.id));
  payloads.push(authPayload(auth));
  if (conn.mobike) payloads.push(notify(NotifyType.MOBIKE_SUPPORTED));
  sa.authRounds++;
  const child = sa.authChild;
  if (child) {
    // The CHILD_SA's SPI is allocated before the request; the SA is installed when the answer comes.
    return prepareChildRequest(ctx, sa, child, payloads, undefined, true);
  }
  sendRequest(ctx, sa, ExchangeType.IKE_AUTH, payloads, { kind: 'ike-auth' });
}

export async function onAuthResponse(ctx: EngineContext, sa: IkeSa, task: Extract<Task, { kind: 'ike-auth' }>, payloads: Payload[]): Promise<void> {
  const spi = task.spi;
  task.spi = undefined;
  const release = (): void => {
    if (spi) ctx.dp.releaseSpi(spi);
  };
  const idr = find(payloads, PayloadType.IDr);
  const auth = find(payloads, PayloadType.AUTH);
  if (!idr || !auth) {
    release();
    const err = findErrorNotify(payloads);
    ctx.stats.authFailed++;
    return initFailed(ctx, sa, err ? notifyName(err.notifyType) : 'IKE_AUTH response without IDr/AUTH', 'IKE_AUTH');
  }
  const conn = sa.conn!;
  const peer: Identity = { type: idr.idType, data: idr.data };
  const peerId = safeIdString(peer);
  if (conn.remote.id && conn.remote.id !== '%any' && !identityOk(conn.remote.id, peer)) {
    release();
    ctx.stats.authFailed++;
    tellAuthFailed(ctx, sa);
    return initFailed(ctx, sa, `peer identity '${peerId}' does not match '${conn.remote.id}'`, 'IKE_AUTH');
  }
  const theirs = authenticatorFor(conn.remote.auth);
  let failure: string | undefined = 'unsupported auth method';
  if (theirs && theirs.methods.includes(auth.method)) {
    const v = theirs.verify(ctx, sa, peerId, auth, octetsOf(sa, false, idr), payloads);
    failure = v instanceof Promise ? await v : v;
    if (sa.dead) return release();
  }
  if (failure !== undefined) {
    release();
    ctx.stats.authFailed++;
    tellAuthFailed(ctx, sa);
    return initFailed(ctx, sa, `peer authentication failed: ${failure}`, 'IKE_AUTH');
  }
  sa.remoteId = peerId;
  sa.peerMobike = findNotify(payloads, NotifyType.MOBIKE_SUPPORTED) !== undefined;
  sa.mobike = conn.mobike && sa.peerMobike;
  established(ctx, sa);
  // A reauthentication's new IKE SA replaces the old one itself, once its CHILD_SAs are up.
  if (!sa.reauthOf) applyUnique(ctx, sa);
  startDpd(ctx, sa);
  const cfg = sa.authChild;
  const { ni, nr } = sa;
  intermediateDone(sa);
  authDone(sa);
  if (cfg && spi) {
    await completeChild(ctx, sa, cfg, payloads, spi, ni, nr, undefined, true, undefined, undefined, undefined, sa.reauthOf?.authChild);
  } else if (cfg) {
    sa.authChildError = 'no SPI could be allocated';
    childFailed(ctx, sa, cfg.name, sa.authChildError);
  }
  if (!sa.dead) logEstablished(ctx, sa);
  resolveWaiters(ctx, sa);
  // The CHILD_SA of IKE_AUTH is settled: its config stays only with its failure (vpp-ikectl initiate
  // reports it), else the SA's record of handshake state can go (see authDone).
  if (sa.authChildError === undefined) sa.authChild = undefined;
}

/**
 * We refuse the responder after it accepted us: tell it in an INFORMATIONAL with
 * AUTHENTICATION_FAILED (RFC 7296 §2.21.2), sent once and not retransmitted (the SA goes now).
 */
function tellAuthFailed(ctx: EngineContext, sa: IkeSa): void {
  transmit(ctx, sa, seal(sa, ExchangeType.INFORMATIONAL, sa.sendMid++, false, [notify(NotifyType.AUTHENTICATION_FAILED)]));
}

/** The IKE_AUTH response cannot be used: the peer considers the SA up, so it gets a Delete. */
export function onAuthFailure(ctx: EngineContext, sa: IkeSa, task: Extract<Task, { kind: 'ike-auth' }>, why: string): void {
  if (task.spi) ctx.dp.releaseSpi(task.spi);
  task.spi = undefined;
  if (sa.authChild) childFailed(ctx, sa, sa.authChild.name, why);
  initFailed(ctx, sa, why, 'IKE_AUTH', true);
}

function identityOk(pattern: string, id: Identity): boolean {
  try {
    const want = parseIdentity(pattern);
    if (want.type === id.type && want.data.equals(id.data)) return true;
  } catch {
    // fall through to pattern matching
  }
  return identityMatches(pattern, id);
}

// ---------------------------------------------------------------- both

/**
 * Authentication is over: what only IKE_SA_INIT and IKE_AUTH need (both IKE_SA_INIT messages, the
 * nonces, the hash that spotted retransmitted IKE_SA_INITs, the peer's signature hash algorithms and
 * CERTREQ) is let go; with nothing else set, so is the SA's record of handshake state.
 */
function authDone(sa: IkeSa): void {
  sa.initRequest = undefined;
  sa.initResponse = undefined;
  sa.initRequestHash = undefined;
  sa.ni = EMPTY;
  sa.nr = EMPTY;
  sa.peerHashes = undefined;
  sa.certreqSeen = false;
}

/** The SA is authenticated (the log line follows once the CHILD_SA of IKE_AUTH is settled: logEstablished). */
function established(ctx: EngineContext, sa: IkeSa): void {
  sa.state = 'ESTABLISHED';
  sa.establishedAt = ctx.sched.now();
  clearTimer(sa, Timer.HALF_OPEN);
  ctx.table.established(sa, sa.halfOpenKey);
  sa.halfOpenKey = undefined;
  ctx.stats.ikeEstablished++;
  scheduleIkeRekey(ctx, sa);
  watchKeepalive(ctx, sa);
  if (sa.conn) keptUp(ctx, sa.conn.name);
  emit(ctx, { type: 'ike-up', sa });
  // An initiator's waiters hear back once the CHILD_SA of IKE_AUTH is settled too.
  if (!sa.initiator || !sa.authChild) resolveWaiters(ctx, sa);
}

/** 'IKE SA established', with the CHILD_SA of IKE_AUTH when there is one (then prefixed child_). */
function logEstablished(ctx: EngineContext, sa: IkeSa): void {
  if (!ctx.log.isLevelEnabled('info')) return;
  const child = sa.children[0];
  // one object literal of a fixed shape (a line per new peer: no key built or copied at run time);
  // without a CHILD_SA the child_ fields are undefined, which the line leaves out
  const fields = {
    ike: sa.id,
    peer: sa.remote.addr,
    conn: sa.conn?.name,
    local_id: sa.localId,
    remote_id: sa.remoteId,
    proposal: formatIkeSuite(sa.suite!),
    child: child?.name,
    child_id: child?.id,
    child_spi_in: child ? hex8(child.spiIn) : undefined,
    child_spi_out: child ? hex8(child.spiOut) : undefined,
    child_proposal: child?.proposal ? espProposalText(child.proposal) : undefined,
    child_local_ts: child?.localTs.map(selToString),
    child_remote_ts: child?.remoteTs.map(selToString),
  };
  ctx.log.info(fields, 'IKE SA established');
}

/** INITIAL_CONTACT: the peer rebooted; its older SAs with the same identities are gone (RFC 7296 §2.4). */
function initialContact(ctx: EngineContext, sa: IkeSa): void {
  for (const other of [...ctx.table.peers(sa.localId, sa.remoteId)]) {
    if (other !== sa && !other.dead) destroy(ctx, other, 'replaced (INITIAL_CONTACT)');
  }
}

/** Seconds a duplicate stays under `unique = replace` when the peer is suspected to reauthenticate (strongSwan's). */
export const UNIQUE_REPLACE_DELAY_S = 10;

/**
 * `unique` policy for a newly authenticated SA. As responder, strongSwan's uniqueness check: only
 * established IKE SAs of the same connection count, and one with the peer at the same address and
 * port is a suspected reauthentication (make-before-break): `replace` deletes it after 10 s rather
 * than at once (the peer deletes it itself once its CHILD_SAs moved), `keep` keeps both.
 */
function applyUnique(ctx: EngineContext, sa: IkeSa): void {
  const policy = sa.conn?.unique ?? 'no';
  if (policy === 'no' || policy === 'never') return;
  for (const other of [...ctx.table.peers(sa.localId, sa.remoteId)]) {
    if (other === sa || other.dead) continue;
    if (!sa.initiator) {
      if (other.conn?.name !== sa.conn?.name || (other.state !== 'ESTABLISHED' && other.state !== 'REKEYING')) continue;
      if (other.remote.addr === sa.remote.addr && other.remote.port === sa.remote.port) {
        if (policy === 'replace') {
          const at = ctx.sched.now() + UNIQUE_REPLACE_DELAY_S * 1000;
          const cur = other.timers[Timer.IKE_EXPIRE]!;
          if (!cur || at < cur) setTimer(ctx, other, Timer.IKE_EXPIRE, at);
          ctx.log.info({ ike: sa.id, old_ike: other.id, in_s: UNIQUE_REPLACE_DELAY_S }, 'unique=replace: deleting the older IKE SA of this peer soon (suspected reauthentication)');
        }
        continue;
      }
    }
    if (policy === 'replace') deleteIke(ctx, other);
    else if (policy === 'keep') {
      ctx.log.info({ ike: sa.id, keep: other.id }, 'unique=keep: deleting the new duplicate');
      queueTask(ctx, sa, { kind: 'ike-delete' });
      return;
    }
  }
}

/** Whether a configured identity names one peer (not %any, not a pattern); one that does not parse names none. */
function isSpecificId(text: string): boolean {
  const p = parseIdPattern(text);
  return p !== null && p !== false && !identityHasWildcards(p);
}

/** Our identities parsed lately (a few per connection; the same ones in every IKE_AUTH), emptied when full. */
const parsedOwnIds = new Map<string, Identity>();
const PARSED_OWN_IDS_MAX = 1024;

function idPayload(type: typeof PayloadType.IDi | typeof PayloadType.IDr, id: string): IdPayload {
  let ident = parsedOwnIds.get(id);
  if (!ident) {
    ident = parseIdentity(id);
    if (parsedOwnIds.size >= PARSED_OWN_IDS_MAX) parsedOwnIds.clear();
    parsedOwnIds.set(id, ident);
  }
  return { type, critical: false, idType: ident.type, data: ident.data };
}

/** Our ID payload: a certificate's subject as its DER Name (byte for byte), any other identity parsed. */
function ourIdPayload(ctx: EngineContext, sa: IkeSa, type: typeof PayloadType.IDi | typeof PayloadType.IDr): IdPayload {
  const def = sa.conn ? defaultLocalId(ctx, sa.conn) : undefined;
  if (def && def.text === sa.localId) return { type, critical: false, idType: def.identity.type, data: def.identity.data };
  return idPayload(type, sa.localId);
}

function safeIdString(id: Identity): string {
  try {
    return identityToString(id);
  } catch {
    return `<id type ${id.type}>`;
  }
}
