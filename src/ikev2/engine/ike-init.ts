/**
 * IKE_SA_INIT (RFC 7296 §1.2) for both roles, with NAT detection (§2.23): proposal and key exchange
 * choice, admission into the session table, the float to the NAT-T port, INVALID_KE_PAYLOAD and COOKIE
 * retries as initiator. Responder cookies and half-open limits (cookies.ts) go before everything else.
 */
import { createHash } from 'node:crypto';
import { ExchangeType, HeaderFlag, IKE_NATT_PORT, IKE_PORT, NotifyType, PayloadType, notifyName } from '../constants.ts';
import type { IkeHeader, Payload } from '../codec/types.ts';
import { IkeCipher } from '../crypto/protect.ts';
import { createKeyExchange, CryptoError, respondKeyExchange } from '../crypto/ke.ts';
import { deriveIkeKeys, ikeKeymatLength, KeptIkeKeys, prfOf } from '../crypto/prf.ts';
import type { InitKeyJob, InitKeyResult } from '../crypto/pool.ts';
import { keep } from '../crypto/keep.ts';
import { checkIkeResponse, ikeChosenToWire, selectIkeProposal, toWireProposals, type ChosenIke } from '../crypto/proposals.ts';
import { Ext, IkeSa, Timer } from '../sa/ike-sa.ts';
import type { ConnectionConfig } from '../../config/types.ts';
import { ipFamily } from '../../common/addr.ts';
import { EMPTY, find, findAll, findErrorNotify, findNotify, natdHash, notify, u16 } from './payload-util.ts';
import { ZERO_SPI, newSpi, nonce, setTimer, type EngineContext, type Endpoint } from './context.ts';
import { encodePlain, internalError, release, sendStateless, startRequest, transmit } from './message.ts';
import { startIntermediate } from './ike-intermediate.ts';
import { queueTask } from './tasks.ts';
import { deleteAndDestroy, destroy } from './teardown.ts';
import { retryIfKeptUp } from './keep-up.ts';
import { certReqForInit, defaultLocalId, hasCertReq, peerHashAlgorithms, signatureHashNotify, usesPubkey } from './auth/pubkey.ts';
import { COOKIE_CALMDOWN_MS } from './cookies.ts';

/** Times an initiator answers a responder's COOKIE before giving up (as strongSwan's ike_init). */
export const MAX_COOKIE_RETRIES = 5;

export function onInitRequest(ctx: EngineContext, local: Endpoint, remote: Endpoint, data: Buffer, h: IkeHeader, payloads: Payload[], critical: number[]): void {
  if (ctx.stopped) {
    if (ctx.debug) ctx.log.debug({ peer: remote.addr }, 'IKE_SA_INIT request dropped: stopping');
    return;
  }
  if (h.messageId !== 0 || !(h.flags & HeaderFlag.INITIATOR) || !h.spiR.equals(ZERO_SPI)) {
    ctx.stats.rxInvalid++;
    if (ctx.debug) ctx.log.debug({ peer: remote.addr }, 'IKE_SA_INIT request with a bad header dropped');
    return;
  }
  const hoKey = `${h.spiI.toString('hex')}|${remote.addr}|${remote.port}`;
  const existing = ctx.table.halfOpenByInit(hoKey);
  if (existing) {
    if (existing.initRequestHash === hashOf(data) && existing.lastResponse) {
      ctx.stats.retransmitsAnswered++;
      transmit(ctx, existing, existing.lastResponse);
    }
    return;
  }
  const ni = find(payloads, PayloadType.NONCE);
  // Cookies and half-open limits first: before any proposal choice, key exchange or allocation.
  if (ni && !admitInit(ctx, local, remote, h, payloads, ni.data)) return;
  if (critical.length > 0) {
    return sendStateless(ctx, local, remote, h, [notify(NotifyType.UNSUPPORTED_CRITICAL_PAYLOAD, Buffer.from([critical[0]!]))]);
  }
  const sap = find(payloads, PayloadType.SA);
  const ke = find(payloads, PayloadType.KE);
  if (!sap || !ke || !ni) {
    ctx.stats.rxInvalid++;
    return sendStateless(ctx, local, remote, h, [notify(NotifyType.INVALID_SYNTAX)]);
  }
  const candidates = ctx.index.forInit(local.addr, remote.addr);
  // Additional key exchanges (RFC 9370) need IKE_INTERMEDIATE, which the initiator announces (RFC 9242).
  const intermediate = findNotify(payloads, NotifyType.INTERMEDIATE_EXCHANGE_SUPPORTED) !== undefined;
  let chosen;
  let conn: ConnectionConfig | undefined;
  for (const c of candidates) {
    chosen = selectIkeProposal(c.proposals, sap.proposals, { peerKe: ke.group, addKe: intermediate });
    if (chosen) {
      conn = c;
      break;
    }
  }
  if (!chosen || !conn) {
    ctx.stats.noProposal++;
    ctx.log.info({ peer: remote.addr, offered: sap.proposals.length, configs: candidates.length }, 'no acceptable IKE proposal');
    return sendStateless(ctx, local, remote, h, [notify(NotifyType.NO_PROPOSAL_CHOSEN)]);
  }
  if (ke.group !== chosen.suite.ke) {
    ctx.stats.invalidKe++;
    if (ctx.debug) ctx.log.debug({ peer: remote.addr, offered: ke.group, wanted: chosen.suite.ke }, 'asking for another key exchange group');
    return sendStateless(ctx, local, remote, h, [notify(NotifyType.INVALID_KE_PAYLOAD, u16(chosen.suite.ke))]);
  }
  if (!admit(ctx)) {
    ctx.stats.initRefusedFull++;
    if (ctx.debug) ctx.log.debug({ peer: remote.addr }, 'IKE_SA_INIT refused: the IKE SA table is full');
    return;
  }
  if (ctx.pool?.offer(ctx.sched.now())) {
    // The key exchange and key derivation run on a worker thread; the SA exists meanwhile (a
    // retransmission of this request finds it and is ignored) and is held busy.
    const sa = responderSa(ctx, local, remote, data, h, payloads, conn, chosen, ni.data, hoKey);
    const job: InitKeyJob = {
      group: chosen.suite.ke,
      peerValue: ke.data,
      prfId: chosen.suite.prf.id,
      keymatLen: ikeKeymatLength(chosen.suite),
      ni: sa.ni,
      nr: sa.nr,
      spiI: sa.spiI,
      spiR: sa.spiR,
    };
    sa.initPending = { header: h, chosen };
    sa.busyCount++;
    ctx.pool.submit(job, sa);
    return;
  }
  const dh = respondKeyExchange(chosen.suite.ke, ke.data);
  if (!dh) {
    ctx.stats.rxInvalid++;
    return sendStateless(ctx, local, remote, h, [notify(NotifyType.INVALID_SYNTAX)]);
  }
  const sa = responderSa(ctx, local, remote, data, h, payloads, conn, chosen, ni.data, hoKey);
  answerInit(ctx, sa, chosen, dh.publicValue, new KeptIkeKeys(deriveIkeKeys(chosen.suite, dh.secret, sa.ni, sa.nr, sa.spiI, sa.spiR).keys));
}

/** The half-open responder SA of an IKE_SA_INIT request we accept (in the table, half-open timer running). */
function responderSa(
  ctx: EngineContext,
  local: Endpoint,
  remote: Endpoint,
  data: Buffer,
  h: IkeHeader,
  payloads: Payload[],
  conn: ConnectionConfig,
  chosen: ChosenIke,
  ni: Buffer,
  hoKey: string,
): IkeSa {
  // the SA copies SPIi into a block of its own; our own address is one record for all its SAs
  const sa = new IkeSa(ctx.nextSaId++, false, h.spiI, ourEndpoint(local), { addr: remote.addr, port: remote.port }, ctx.sched.now(), ctx.gauges);
  sa.spiR = newSpi(ctx);
  sa.conn = conn;
  sa.suite = chosen.suite;
  sa.prf = prfOf(chosen.suite.prf);
  // a view into the request, which the SA holds until IKE_AUTH is over too
  sa.ni = ni;
  sa.nr = nonce(ctx);
  sa.state = 'CONNECTING';
  // the initiator announced IKE_INTERMEDIATE (RFC 9242): we answer that we support it too
  sa.intermediate = findNotify(payloads, NotifyType.INTERMEDIATE_EXCHANGE_SUPPORTED) !== undefined;
  applyNatd(sa, payloads, ZERO_SPI);
  sa.peerHashes = peerHashAlgorithms(payloads);
  if (conn.encap) sa.encapForced = true;
  if (findNotify(payloads, NotifyType.IKEV2_FRAGMENTATION_SUPPORTED)) sa.extensions |= Ext.FRAGMENTATION;
  sa.initRequest = data;
  sa.initRequestHash = hashOf(data);
  sa.halfOpenKey = hoKey;
  ctx.table.add(sa, hoKey);
  setTimer(ctx, sa, Timer.HALF_OPEN, ctx.sched.now() + ctx.opts.halfOpenTimeout * 1000);
  return sa;
}

/** Keys are derived: the SA gets them and our IKE_SA_INIT response goes out. */
function answerInit(ctx: EngineContext, sa: IkeSa, chosen: ChosenIke, publicValue: Buffer, keys: KeptIkeKeys): void {
  sa.keys = keys;
  const out: Payload[] = [
    { type: PayloadType.SA, critical: false, proposals: [ikeChosenToWire(chosen)] },
    { type: PayloadType.KE, critical: false, group: chosen.suite.ke, data: publicValue },
    { type: PayloadType.NONCE, critical: false, data: sa.nr },
    ...natdPayloads(ctx, sa),
  ];
  // Certificates: which CAs we trust (the peer's connection is not known before IKE_AUTH, so all of
  // them), and that we verify RFC 7427 signatures (RFC 7296 §3.7, RFC 7427 §4).
  const certreq = certReqForInit(ctx, sa.conn!);
  if (certreq) out.push(certreq);
  out.push(notify(NotifyType.CHILDLESS_IKEV2_SUPPORTED));
  if (ctx.pubkeyInUse) out.push(signatureHashNotify());
  // RFC 7383 §2.3: a responder announces fragmentation only to an initiator that did.
  if (sa.conn!.fragmentation !== 'no' && sa.extensions & Ext.FRAGMENTATION) {
    out.push(notify(NotifyType.IKEV2_FRAGMENTATION_SUPPORTED));
    sa.extensions |= Ext.FRAGMENTATION_ANNOUNCED;
  }
  if (sa.intermediate) out.push(notify(NotifyType.INTERMEDIATE_EXCHANGE_SUPPORTED));
  const resp = encodePlain(sa, ExchangeType.IKE_SA_INIT, 0, true, out);
  sa.initResponse = resp;
  sa.recvMid = 1;
  sa.lastResponseMid = 0;
  sa.lastResponse = [resp];
  sa.cipher = new IkeCipher(chosen.suite, keys, false, ctx.opts.random);
  if (ctx.debug) ctx.log.debug({ ike: sa.id, peer: sa.remote.addr, conn: sa.conn?.name }, 'IKE_SA_INIT answered');
  transmit(ctx, sa, [resp]);
}

/** The worker's answer for an IKE_SA_INIT request (see onInitRequest); the SA may be gone by now. */
export function initKeysReady(ctx: EngineContext, sa: IkeSa, r: InitKeyResult): void {
  const pending = sa.initPending;
  sa.initPending = undefined;
  sa.busyCount--;
  if (sa.dead || !pending) return;
  try {
    if (r.ok) {
      answerInit(ctx, sa, pending.chosen, r.publicValue, new KeptIkeKeys({ suite: pending.chosen.suite, keymat: r.keymat }));
    } else if (r.invalid) {
      ctx.stats.rxInvalid++;
      sendStateless(ctx, sa.local, sa.remote, pending.header, [notify(NotifyType.INVALID_SYNTAX)]);
      destroy(ctx, sa, 'invalid KE payload');
    } else {
      internalError(ctx, sa, new Error(r.error));
    }
  } catch (e) {
    internalError(ctx, sa, e);
  }
  release(ctx, sa);
}

/**
 * Cookies and half-open limits for a new IKE_SA_INIT request (RFC 7296 §2.6, strongSwan's
 * cookie_threshold, block_threshold and init_limit_half_open, checked in that order). Returns
 * whether the request may go on; otherwise it was answered with a cookie or dropped.
 */
function admitInit(ctx: EngineContext, local: Endpoint, remote: Endpoint, h: IkeHeader, payloads: Payload[], ni: Buffer): boolean {
  const o = ctx.opts;
  const halfOpen = ctx.table.halfOpenCount;
  if (o.cookieThreshold > 0) {
    const now = ctx.sched.now();
    if (halfOpen >= o.cookieThreshold) ctx.cookiesUntil = now + COOKIE_CALMDOWN_MS;
    if (now < ctx.cookiesUntil) {
      // The COOKIE notification must be the first payload (§2.6).
      const first = payloads[0];
      const cookie = first && first.type === PayloadType.NOTIFY && first.notifyType === NotifyType.COOKIE ? first.data : undefined;
      const verdict = cookie ? ctx.cookies.check(cookie, ni, remote.addr, h.spiI) : undefined;
      if (verdict === 'ok') ctx.stats.cookiesVerified++;
      else {
        if (verdict !== undefined) ctx.stats.cookiesInvalid++;
        ctx.stats.cookiesSent++;
        if (ctx.debug) ctx.log.debug({ peer: remote.addr, half_open: halfOpen, returned: verdict ?? 'none' }, 'IKE_SA_INIT answered with a cookie');
        sendStateless(ctx, local, remote, h, [notify(NotifyType.COOKIE, ctx.cookies.make(ni, remote.addr, h.spiI))]);
        return false;
      }
    }
  }
  if (o.blockThreshold > 0 && ctx.table.halfOpenFrom(remote.addr) >= o.blockThreshold) {
    ctx.stats.initDroppedBlocked++;
    if (ctx.debug) ctx.log.debug({ peer: remote.addr, limit: o.blockThreshold }, 'IKE_SA_INIT dropped: half-open IKE SA limit of this address reached');
    return false;
  }
  if (o.initLimitHalfOpen > 0 && halfOpen >= o.initLimitHalfOpen) {
    ctx.stats.initDroppedHalfOpen++;
    if (ctx.debug) ctx.log.debug({ peer: remote.addr, limit: o.initLimitHalfOpen }, 'IKE_SA_INIT dropped: half-open IKE SA limit reached');
    return false;
  }
  return true;
}

/** A half-open IKE SA did not complete IKE_AUTH in time. */
export function halfOpenTimeout(ctx: EngineContext, sa: IkeSa): void {
  if (sa.state !== 'ESTABLISHED') destroy(ctx, sa, 'half-open timeout');
}

/** Room for a new IKE SA: evict what is cheapest to lose, or refuse. */
export function admit(ctx: EngineContext): boolean {
  for (;;) {
    const r = ctx.table.admission();
    if (r === 'ok') return true;
    if (r === 'full') return false;
    ctx.stats.evicted++;
    ctx.log.info({ ike: r.evict.id, peer: r.evict.remote.addr, reason: r.reason }, 'evicting IKE SA to make room');
    destroy(ctx, r.evict, `evicted (${r.reason})`);
  }
}

function natdPayloads(ctx: EngineContext, sa: IkeSa): Payload[] {
  const spiI = sa.spiI;
  const spiR = sa.initiator ? ZERO_SPI : sa.spiR;
  // With encap forced we pretend to be behind a NAT (as strongSwan's encap=yes), in either role, so
  // that the peer too uses UDP encapsulation.
  const src = sa.encapForced ? ctx.opts.random(20) : natdHash(spiI, spiR, sa.local.addr, sa.local.port);
  return [
    notify(NotifyType.NAT_DETECTION_SOURCE_IP, src),
    notify(NotifyType.NAT_DETECTION_DESTINATION_IP, natdHash(spiI, spiR, sa.remote.addr, sa.remote.port)),
  ];
}

/** Compare the peer's NAT detection hashes with what the addresses we see give (RFC 7296 §2.23). */
function applyNatd(sa: IkeSa, payloads: Payload[], spiR: Buffer): void {
  const dst = findNotify(payloads, NotifyType.NAT_DETECTION_DESTINATION_IP);
  if (!dst || !findNotify(payloads, NotifyType.NAT_DETECTION_SOURCE_IP)) return;
  const spiI = sa.spiI;
  const theirSrc = natdHash(spiI, spiR, sa.remote.addr, sa.remote.port);
  // the peer may send several source hashes (one per address it could send from): any one matches
  let matched = false;
  for (const p of payloads) {
    if (p.type === PayloadType.NOTIFY && p.notifyType === NotifyType.NAT_DETECTION_SOURCE_IP && p.data.equals(theirSrc)) {
      matched = true;
      break;
    }
  }
  sa.natThere = !matched;
  sa.natHere = !dst.data.equals(natdHash(spiI, spiR, sa.local.addr, sa.local.port));
}

/**
 * Bring up a connection (and one of its children, or the first one). Resolves when the IKE SA is
 * established, rejects when it fails. If an IKE SA for the connection exists, only the child is created.
 */
export function initiate(ctx: EngineContext, connName: string, childName?: string): Promise<IkeSa> {
  if (ctx.stopped) return Promise.reject(new Error('stopping'));
  const conn = ctx.index.get(connName);
  if (!conn) return Promise.reject(new Error(`no connection named '${connName}'`));
  const child = childName === undefined ? conn.children[0] : conn.children.find((c) => c.name === childName);
  if (childName !== undefined && !child) return Promise.reject(new Error(`connection '${connName}' has no child '${childName}'`));
  for (const sa of ctx.table.ofConnection(connName)) {
    if (sa.state === 'CONNECTING' && sa.initiator && !sa.dead && sa.conn === conn) {
      // Already on its way: wait for it (a child other than the one in IKE_AUTH follows after).
      if (child && child !== sa.authChild && !sa.queue.some((t) => t.kind === 'child-create' && t.child === child)) {
        sa.queue.push({ kind: 'child-create', child });
      }
      return new Promise<IkeSa>((resolve, reject) => {
        const w = ctx.waiters.get(sa.id);
        if (w) w.push({ resolve, reject });
        else ctx.waiters.set(sa.id, [{ resolve, reject }]);
      });
    }
    if (sa.state === 'ESTABLISHED' && !sa.dead && sa.conn === conn) {
      if (child) {
        if (sa.children.some((c) => c.cfg === child && c.state === 'INSTALLED')) return Promise.resolve(sa);
        queueTask(ctx, sa, { kind: 'child-create', child });
      }
      return Promise.resolve(sa);
    }
  }
  const remoteAddr = conn.remoteAddrs.find((a) => ipFamily(a) !== 0);
  if (!remoteAddr) return Promise.reject(new Error(`connection '${connName}' has no concrete remote address to initiate to`));
  const fam = ipFamily(remoteAddr);
  const localAddr = conn.localAddrs.find((a) => ipFamily(a) === fam) ?? ctx.opts.localAddressFor?.(remoteAddr) ?? (fam === 4 ? '0.0.0.0' : '::');
  if (!admit(ctx)) {
    ctx.stats.initRefusedFull++;
    return Promise.reject(new Error('IKE SA table is full'));
  }
  const sa = new IkeSa(ctx.nextSaId++, true, newSpi(ctx), { addr: localAddr, port: conn.localPort }, { addr: remoteAddr, port: conn.remotePort }, ctx.sched.now(), ctx.gauges);
  sa.conn = conn;
  sa.localId = localIdOf(ctx, conn, localAddr);
  sa.remoteId = idOr(conn.remote.id, remoteAddr);
  sa.authChild = child;
  // The other children come up with CREATE_CHILD_SA once the IKE SA is established.
  if (childName === undefined) {
    for (const c of conn.children) if (c !== child) sa.queue.push({ kind: 'child-create', child: c });
  }
  sa.encapForced = conn.encap;
  sa.state = 'CONNECTING';
  ctx.table.add(sa);
  const p = new Promise<IkeSa>((resolve, reject) => {
    ctx.waiters.set(sa.id, [{ resolve, reject }]);
  });
  ctx.log.info({ ike: sa.id, conn: conn.name, peer: remoteAddr }, 'initiating IKE SA');
  sendInit(ctx, sa);
  return p;
}

export function sendInit(ctx: EngineContext, sa: IkeSa, group?: number, sameKe = false): void {
  const conn = sa.conn!;
  const ke = group ?? conn.proposals[0]!.ke[0]!;
  if (!sameKe || !sa.ke || sa.ke.group !== ke) sa.ke = createKeyExchange(ke);
  if (sa.ni.length === 0) sa.ni = nonce(ctx);
  const payloads: Payload[] = [];
  if (sa.cookie) payloads.push(notify(NotifyType.COOKIE, sa.cookie));
  payloads.push(
    { type: PayloadType.SA, critical: false, proposals: toWireProposals(conn.proposals, EMPTY) },
    { type: PayloadType.KE, critical: false, group: ke, data: sa.ke.publicValue },
    { type: PayloadType.NONCE, critical: false, data: sa.ni },
    ...natdPayloads(ctx, sa),
  );
  if (!sa.authChild) payloads.push(notify(NotifyType.CHILDLESS_IKEV2_SUPPORTED));
  if (usesPubkey(conn)) payloads.push(signatureHashNotify());
  if (conn.fragmentation !== 'no') {
    payloads.push(notify(NotifyType.IKEV2_FRAGMENTATION_SUPPORTED));
    sa.extensions |= Ext.FRAGMENTATION_ANNOUNCED;
  }
  if (conn.proposals.some((p) => p.addKe)) payloads.push(notify(NotifyType.INTERMEDIATE_EXCHANGE_SUPPORTED));
  sa.sendMid = 0;
  const msg = encodePlain(sa, ExchangeType.IKE_SA_INIT, 0, false, payloads);
  sa.initRequest = msg;
  sa.sendMid = 1;
  startRequest(ctx, sa, ExchangeType.IKE_SA_INIT, 0, [msg], { kind: 'ike-init' });
}

export function onInitResponse(ctx: EngineContext, sa: IkeSa, h: IkeHeader, payloads: Payload[], data: Buffer): Promise<void> | void {
  const cookie = findNotify(payloads, NotifyType.COOKIE);
  if (cookie) {
    // The responder is under load: ask again with its cookie (RFC 7296 §2.6), a few times at most,
    // with the same nonce and key exchange (the cookie covers Ni). The codec refused cookies that are
    // empty or longer than 64 bytes.
    if (sa.cookieRetries >= MAX_COOKIE_RETRIES) return initFailed(ctx, sa, `still asked for a cookie after ${MAX_COOKIE_RETRIES} retries`);
    sa.cookieRetries++;
    sa.cookie = keep(cookie.data);
    if (ctx.debug) ctx.log.debug({ ike: sa.id, peer: sa.remote.addr, try: sa.cookieRetries }, 'responder sent a cookie, retrying IKE_SA_INIT with it');
    return sendInit(ctx, sa, sa.ke?.group, true);
  }
  const invalidKe = findNotify(payloads, NotifyType.INVALID_KE_PAYLOAD);
  if (invalidKe) {
    const group = invalidKe.data.length === 2 ? invalidKe.data.readUInt16BE(0) : -1;
    const offered = sa.conn!.proposals.some((p) => p.ke.includes(group));
    if (!sa.keRetried && offered && group !== sa.ke?.group) {
      ctx.stats.invalidKe++;
      sa.keRetried = true;
      ctx.log.info({ ike: sa.id, group }, 'peer asked for another key exchange group, retrying');
      return sendInit(ctx, sa, group);
    }
    return initFailed(ctx, sa, `INVALID_KE_PAYLOAD (group ${group})`);
  }
  const err = findErrorNotify(payloads);
  if (err) return initFailed(ctx, sa, notifyName(err.notifyType));
  const sap = find(payloads, PayloadType.SA);
  const ke = find(payloads, PayloadType.KE);
  const nr = find(payloads, PayloadType.NONCE);
  if (!sap || !ke || !nr || sap.proposals.length !== 1 || h.spiR.equals(ZERO_SPI)) return initFailed(ctx, sa, 'invalid IKE_SA_INIT response');
  const chosen = checkIkeResponse(sa.conn!.proposals, sap.proposals);
  if (!chosen || chosen.suite.ke !== ke.group || ke.group !== sa.ke!.group) return initFailed(ctx, sa, 'peer chose a proposal we did not offer');
  sa.intermediate = findNotify(payloads, NotifyType.INTERMEDIATE_EXCHANGE_SUPPORTED) !== undefined;
  if (chosen.suite.addKe && !sa.intermediate) return initFailed(ctx, sa, 'peer chose additional key exchanges without announcing IKE_INTERMEDIATE');
  let secret: Buffer;
  try {
    secret = sa.ke!.computeSecret(ke.data);
  } catch (e) {
    if (!(e instanceof CryptoError)) throw e;
    return initFailed(ctx, sa, `bad KE payload: ${e.message}`);
  }
  sa.spiR = h.spiR;
  sa.nr = keep(nr.data);
  sa.suite = chosen.suite;
  sa.prf = prfOf(chosen.suite.prf);
  sa.keys = new KeptIkeKeys(deriveIkeKeys(chosen.suite, secret, sa.ni, sa.nr, sa.spiI, sa.spiR).keys);
  sa.cipher = new IkeCipher(chosen.suite, sa.keys, true, ctx.opts.random);
  sa.ke = undefined;
  sa.initResponse = data;
  applyNatd(sa, payloads, sa.spiR);
  sa.peerHashes = peerHashAlgorithms(payloads);
  sa.certreqSeen = hasCertReq(payloads);
  if (findNotify(payloads, NotifyType.IKEV2_FRAGMENTATION_SUPPORTED)) sa.extensions |= Ext.FRAGMENTATION;
  // Float to the NAT-T port when a NAT is in the path or encapsulation is forced (RFC 7296 §2.23).
  // (A MOBIKE initiator that may move later floats in any case, as strongSwan does; vpp-iked never
  // moves itself, and a peer that does floats on its own, so without a NAT IKE stays where it is.)
  if ((sa.natHere || sa.natThere || sa.encapForced) && sa.local.port === ctx.opts.port) {
    sa.local = { addr: sa.local.addr, port: ctx.opts.portNatT };
    if (sa.remote.port === IKE_PORT) sa.remote = { addr: sa.remote.addr, port: IKE_NATT_PORT };
  }
  // IKE_INTERMEDIATE for each additional key exchange first, then IKE_AUTH.
  return startIntermediate(ctx, sa);
}

/** Our IKE_SA_INIT (or the IKE_AUTH that follows it) failed: drop the SA, retry if the connection is kept up. */
/**
 * Setting up the IKE SA failed. `tellPeer`: the peer considers the SA established (it sent its
 * IKE_AUTH response), so it gets a Delete.
 */
export function initFailed(ctx: EngineContext, sa: IkeSa, reason: string, stage = 'IKE_SA_INIT', tellPeer = false): void {
  ctx.stats.ikeFailed++;
  ctx.log.info({ ike: sa.id, conn: sa.conn?.name, peer: sa.remote.addr, reason }, `${stage} failed`);
  // A reauthentication's new IKE SA: the old one still serves the connection (and retries).
  const name = sa.reauthOf ? undefined : sa.conn?.name;
  if (tellPeer) deleteAndDestroy(ctx, sa, reason);
  else destroy(ctx, sa, reason);
  if (name) retryIfKeptUp(ctx, name);
}

function hashOf(b: Buffer): string {
  return createHash('sha1').update(b).digest('hex');
}

/** A configured identity, or the address when none is configured (strongSwan's default). */
export function idOr(id: string, addr: string): string {
  return id && id !== '%any' ? id : addr;
}

/** Our identity: `local.id`, else the subject of our certificate (auth = pubkey), else our address. */
export function localIdOf(ctx: EngineContext, conn: ConnectionConfig, addr: string): string {
  return defaultLocalId(ctx, conn)?.text ?? idOr(conn.local.id, addr);
}

/**
 * Our address and port as an IKE SA keeps it: one frozen record per address instead of a copy per
 * SA (endpoints are replaced, never changed in place). Bounded: emptied when full.
 */
const ourEndpoints = new Map<string, Endpoint>();

function ourEndpoint(e: Endpoint): Endpoint {
  const key = `${e.addr} ${e.port}`;
  let had = ourEndpoints.get(key);
  if (had === undefined) {
    if (ourEndpoints.size >= 64) ourEndpoints.clear();
    had = Object.freeze({ addr: e.addr, port: e.port });
    ourEndpoints.set(key, had);
  }
  return had;
}
