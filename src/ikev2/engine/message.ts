/**
 * The message layer: receive and check a datagram, find its IKE SA, decrypt and authenticate it,
 * answer retransmitted requests from the response cache, hand requests and responses to the task
 * manager, and seal, send and retransmit our own messages (RFC 7296 §2.1, §2.2, §2.11, §2.21.2).
 * Work on one IKE SA is serialised: a message for an SA that is busy (e.g. waiting for the dataplane)
 * waits in a small bounded queue. Messages too large for the path go as IKE fragments and the
 * peer's fragments are reassembled here (RFC 7383, with fragments.ts).
 */
import { ExchangeType, HeaderFlag, IKE_VERSION, NotifyType, PayloadType, exchangeName } from '../constants.ts';
import type { IkeHeader, Payload, SkfPayload } from '../codec/types.ts';
import { decodeMessage, decodePayloadChain, encodeMessage, encodePayloadChain } from '../codec/message.ts';
import { IKE_HEADER_LEN } from '../codec/header.ts';
import { ParseError } from '../../common/bytes.ts';
import { ipFamily } from '../../common/addr.ts';
import { IntegrityError } from '../crypto/protect.ts';
import { CryptoError } from '../crypto/errors.ts';
import { Ext, Timer, type ActiveRequest, type IkeSa, type Task } from '../sa/ike-sa.ts';
import { notify } from './payload-util.ts';
import { MAX_PENDING, clearTimer, setTimer, type EngineContext, type Endpoint } from './context.ts';
import { ikeBudget, Reassembly, type FragmentDrop } from './fragments.ts';
import { onInitRequest } from './ike-init.ts';
import { handleFailure, handleRequest, handleResponse, kick } from './tasks.ts';
import { deleteAndDestroy, finishClosing } from './teardown.ts';
import { peerGone } from './keep-up.ts';
import { foldIntAuth } from './ike-intermediate.ts';
import { followPeer } from './mobike.ts';

function header(sa: IkeSa, exchange: number, mid: number, response: boolean): Omit<IkeHeader, 'length' | 'nextPayload'> {
  return {
    spiI: sa.spiI,
    spiR: sa.spiR,
    version: IKE_VERSION,
    exchange,
    flags: (sa.initiator ? HeaderFlag.INITIATOR : 0) | (response ? HeaderFlag.RESPONSE : 0),
    messageId: mid,
  };
}

/** A plaintext message (IKE_SA_INIT) of this SA. */
export function encodePlain(sa: IkeSa, exchange: number, mid: number, response: boolean, payloads: Payload[]): Buffer {
  return encodeMessage(header(sa, exchange, mid, response), payloads);
}

/** The datagram of one message, whole: encrypted in an SK payload once the SA has keys. */
export function seal(sa: IkeSa, exchange: number, mid: number, response: boolean, payloads: Payload[]): Buffer[] {
  const h = header(sa, exchange, mid, response);
  if (!sa.cipher) return [encodeMessage(h, payloads)];
  const chain = encodePayloadChain(payloads);
  const full: IkeHeader = { ...h, length: 0, nextPayload: PayloadType.SK };
  return [sa.cipher.seal(full, chain.firstType, chain.bytes)];
}

/**
 * The datagrams of one message: encrypted in an SK payload once the SA has keys, or in SKF fragments
 * when the peer takes them (`fragmentation = yes` and the peer announced support, or `force`) and the
 * IP datagram between `local` and `remote` would exceed the fragment size (RFC 7383 §2.5).
 */
export function sealFor(ctx: EngineContext, sa: IkeSa, exchange: number, mid: number, response: boolean, payloads: Payload[], local: Endpoint = sa.local, remote: Endpoint = sa.remote): Buffer[] {
  const h = header(sa, exchange, mid, response);
  if (!sa.cipher) return [encodeMessage(h, payloads)];
  const chain = encodePayloadChain(payloads);
  // IntAuth covers the whole message, as if it were not fragmented (RFC 9242 §3.3.1).
  if (exchange === ExchangeType.IKE_INTERMEDIATE) foldIntAuth(sa, h, sa.initiator, chain.firstType, chain.bytes);
  if (sendsFragments(sa)) {
    const family = ipFamily(remote.addr) === 6 ? 6 : 4;
    const budget = ikeBudget(ctx.fragmentSize[family], family, local.port, remote.port);
    if (sa.cipher.sealedLength(chain.bytes.length) > budget) {
      try {
        const frags = sa.cipher.sealFragments({ ...h, length: 0, nextPayload: PayloadType.SKF }, chain.firstType, chain.bytes, budget);
        ctx.stats.messagesFragmented++;
        if (ctx.debug) ctx.log.debug({ ike: sa.id, exchange: exchangeName(exchange), mid, bytes: chain.bytes.length, fragments: frags.length, budget }, 'message split into fragments');
        return frags;
      } catch (e) {
        if (!(e instanceof CryptoError)) throw e;
        ctx.log.warn({ ike: sa.id, exchange: exchangeName(exchange), mid, err: e.message }, 'message cannot be fragmented, sending it whole');
      }
    }
  }
  const full: IkeHeader = { ...h, length: 0, nextPayload: PayloadType.SK };
  return [sa.cipher.seal(full, chain.firstType, chain.bytes)];
}

/** Whether our messages on this SA may go as fragments (strongSwan's meanings of `fragmentation`). */
function sendsFragments(sa: IkeSa): boolean {
  const f = sa.conn?.fragmentation;
  return f === 'force' || (f === 'yes' && (sa.extensions & Ext.FRAGMENTATION) !== 0);
}

export function transmit(ctx: EngineContext, sa: IkeSa, packets: Buffer[], local: Endpoint = sa.local, remote: Endpoint = sa.remote): void {
  sa.lastOutbound = ctx.sched.now();
  for (const data of packets) {
    ctx.stats.txPackets++;
    if (isFragment(data)) ctx.stats.fragmentsSent++;
    ctx.opts.send({ local, remote, data });
  }
}

/** Send a request of ours and keep it for retransmission until its response arrives. */
export function sendRequest(ctx: EngineContext, sa: IkeSa, exchange: number, payloads: Payload[], task: Task): void {
  const mid = sa.sendMid++;
  startRequest(ctx, sa, exchange, mid, sealFor(ctx, sa, exchange, mid, false, payloads), task);
}

/** Send prepared datagrams as request `mid` (also used for IKE_SA_INIT, which is sealed elsewhere). */
export function startRequest(ctx: EngineContext, sa: IkeSa, exchange: number, mid: number, packets: Buffer[], task: Task): void {
  sa.active = { mid, exchange, packets, tries: 1, task };
  if (ctx.debug) ctx.log.debug({ ike: sa.id, exchange: exchangeName(exchange), mid, task: task.kind, peer: sa.remote.addr }, 'request sent');
  transmit(ctx, sa, packets);
  setTimer(ctx, sa, Timer.RETRANSMIT, ctx.sched.now() + retransmitDelay(ctx, 0));
}

/** A response goes back to the address and port its request came from (RFC 7296 §2.11). */
function sendResponse(ctx: EngineContext, sa: IkeSa, exchange: number, mid: number, payloads: Payload[]): void {
  const local = sa.requestLocal ?? sa.local;
  const remote = sa.requestRemote ?? sa.remote;
  const packets = sealFor(ctx, sa, exchange, mid, true, payloads, local, remote);
  sa.lastResponseMid = mid;
  sa.lastResponse = packets;
  transmit(ctx, sa, packets, local, remote);
}

/** Answer the request being processed (the message ID is the request's). */
export function answer(ctx: EngineContext, sa: IkeSa, h: IkeHeader, payloads: Payload[]): void {
  sa.recvMid = h.messageId + 1;
  if (ctx.debug) ctx.log.debug({ ike: sa.id, exchange: exchangeName(h.exchange), mid: h.messageId, payloads: payloads.length }, 'request answered');
  sendResponse(ctx, sa, h.exchange, h.messageId, payloads);
}

/** Answer with one notify (an error, or INVALID_SYNTAX for a malformed request). */
export function answerNotify(ctx: EngineContext, sa: IkeSa, h: IkeHeader, type: number, data?: Buffer): void {
  answer(ctx, sa, h, [notify(type, data)]);
}

/** Delay before retransmission n (0 = after the first send): timeout × base^n. */
export function retransmitDelay(ctx: EngineContext, n: number): number {
  return Math.round(ctx.opts.retransmitTimeout * 1000 * Math.pow(ctx.opts.retransmitBase, n));
}

export function retransmit(ctx: EngineContext, sa: IkeSa): void {
  const a = sa.active;
  if (!a) return;
  if (a.tries > ctx.opts.retransmitTries) {
    ctx.log.info({ ike: sa.id, peer: sa.remote.addr, conn: sa.conn?.name, exchange: exchangeName(a.exchange) }, 'giving up after retransmissions');
    // Its Delete waited for this exchange: it goes now, the peer may still be there.
    if (sa.closing !== undefined || ctx.stopped) return finishClosing(ctx, sa);
    peerGone(ctx, sa, a.task);
    return;
  }
  ctx.stats.retransmitsSent++;
  if (a.tries === 1) ctx.table.setUnresponsive(sa, true);
  if (ctx.debug) ctx.log.debug({ ike: sa.id, exchange: exchangeName(a.exchange), mid: a.mid, try: a.tries + 1 }, 'retransmitting request');
  transmit(ctx, sa, a.packets);
  setTimer(ctx, sa, Timer.RETRANSMIT, ctx.sched.now() + retransmitDelay(ctx, a.tries));
  a.tries++;
}

/** A response without an SA (errors to IKE_SA_INIT requests, INVALID_MAJOR_VERSION). */
export function sendStateless(ctx: EngineContext, local: Endpoint, remote: Endpoint, req: IkeHeader, payloads: Payload[]): void {
  const data = encodeMessage(
    {
      spiI: req.spiI,
      spiR: req.spiR,
      version: IKE_VERSION,
      exchange: req.exchange,
      flags: HeaderFlag.RESPONSE,
      messageId: req.messageId,
    },
    payloads,
  );
  if (ctx.debug) ctx.log.debug({ peer: remote.addr, exchange: exchangeName(req.exchange), payloads: payloads.length }, 'stateless response sent');
  ctx.stats.txPackets++;
  ctx.opts.send({ local, remote, data });
}

function dropped(ctx: EngineContext, remote: Endpoint, why: string, sa?: IkeSa): void {
  if (ctx.debug) ctx.log.debug({ ike: sa?.id, peer: `${remote.addr}:${remote.port}`, why }, 'message dropped');
}

/** Whether a datagram is an IKE fragment (its first payload is SKF). */
function isFragment(data: Buffer): boolean {
  return data.length >= IKE_HEADER_LEN && data[16] === PayloadType.SKF;
}

/** Count `n` received fragments as dropped for `reason`. */
function fragmentDropped(ctx: EngineContext, reason: FragmentDrop, n = 1): void {
  ctx.fragmentDrops[reason] += n;
}

/** A datagram for IKE arrived (non-ESP marker already removed by the transport). */
export function receive(ctx: EngineContext, local: Endpoint, remote: Endpoint, data: Buffer): void {
  ctx.stats.rxPackets++;
  const fragment = isFragment(data);
  if (fragment) ctx.stats.fragmentsReceived++;
  let msg;
  try {
    msg = decodeMessage(data);
  } catch (e) {
    if (e instanceof ParseError) {
      ctx.stats.rxInvalid++;
      if (fragment) fragmentDropped(ctx, 'invalid');
      ctx.log.debug({ peer: remote.addr, err: e.message }, 'dropped malformed message');
      return;
    }
    throw e;
  }
  const h = msg.header;
  const response = (h.flags & HeaderFlag.RESPONSE) !== 0;
  if (h.version >> 4 !== 2) {
    ctx.stats.rxInvalid++;
    if (fragment) fragmentDropped(ctx, 'invalid');
    dropped(ctx, remote, `IKE major version ${h.version >> 4}`);
    if (!response && h.exchange === ExchangeType.IKE_SA_INIT) {
      sendStateless(ctx, local, remote, h, [notify(NotifyType.INVALID_MAJOR_VERSION)]);
    }
    return;
  }
  if (h.exchange === ExchangeType.IKE_SA_INIT && !response) {
    if (fragment) {
      // IKE_SA_INIT is never fragmented (RFC 7383 §2.5): there are no keys yet.
      ctx.stats.rxInvalid++;
      fragmentDropped(ctx, 'invalid');
      dropped(ctx, remote, 'fragmented IKE_SA_INIT request');
      return;
    }
    onInitRequest(ctx, local, remote, data, msg.header, msg.payloads, msg.unsupportedCritical);
    return;
  }
  const fromInitiator = (h.flags & HeaderFlag.INITIATOR) !== 0;
  const sa = ctx.table.bySpiBuf(fromInitiator ? h.spiR : h.spiI);
  if (!sa || sa.dead || sa.initiator === fromInitiator) {
    ctx.stats.rxUnknownSpi++;
    if (fragment) fragmentDropped(ctx, 'unknown_sa');
    dropped(ctx, remote, 'unknown IKE SPI');
    return;
  }
  // The peer's SPI must match, except in the IKE_SA_INIT response that tells it to us.
  const theirs = fromInitiator ? h.spiI : h.spiR;
  if (!(h.exchange === ExchangeType.IKE_SA_INIT && response) && !theirs.equals(sa.theirSpi)) {
    ctx.stats.rxUnknownSpi++;
    if (fragment) fragmentDropped(ctx, 'unknown_sa');
    dropped(ctx, remote, 'peer SPI does not match', sa);
    return;
  }
  if (sa.busy) {
    if (!sa.pending) sa.pending = [];
    if (sa.pending.length >= MAX_PENDING) {
      ctx.stats.rxDroppedBusy++;
      if (fragment) fragmentDropped(ctx, 'busy');
      dropped(ctx, remote, 'IKE SA busy and its queue full', sa);
      return;
    }
    sa.pending.push({ local, remote, data, header: msg.header, payloads: msg.payloads, critical: msg.unsupportedCritical });
    return;
  }
  dispatch(ctx, sa, local, remote, data, msg.header, msg.payloads, msg.unsupportedCritical);
}

function dispatch(ctx: EngineContext, sa: IkeSa, local: Endpoint, remote: Endpoint, data: Buffer, h: IkeHeader, outer: Payload[], unsupportedCritical: number[]): void {
  const response = (h.flags & HeaderFlag.RESPONSE) !== 0;
  const last = outer[outer.length - 1];
  const skf = last?.type === PayloadType.SKF ? last : undefined;
  if (response) {
    if (!sa.active || sa.active.mid !== h.messageId || sa.active.exchange !== h.exchange) {
      ctx.stats.rxUnmatchedResponse++;
      if (skf) fragmentDropped(ctx, 'unexpected');
      dropped(ctx, remote, `response ${exchangeName(h.exchange)} #${h.messageId} matches no request`, sa);
      return;
    }
  } else if (h.messageId !== sa.recvMid) {
    // A retransmitted fragmented request is answered on its first fragment only; the others are
    // ignored (RFC 7383 §2.6.1).
    if (h.messageId === sa.lastResponseMid && sa.lastResponse && (!skf || skf.fragmentNumber === 1) && authentic(ctx, sa, h, outer, data)) {
      ctx.stats.retransmitsAnswered++;
      if (ctx.debug) ctx.log.debug({ ike: sa.id, exchange: exchangeName(h.exchange), mid: h.messageId }, 'retransmitted request answered from cache');
      transmit(ctx, sa, sa.lastResponse, local, remote);
    } else if (skf) {
      fragmentDropped(ctx, 'unexpected');
      dropped(ctx, remote, `fragment ${skf.fragmentNumber}/${skf.totalFragments} of request #${h.messageId} (expected #${sa.recvMid})`, sa);
    } else {
      ctx.stats.rxInvalid++;
      dropped(ctx, remote, `request #${h.messageId} out of window (expected #${sa.recvMid})`, sa);
    }
    return;
  }
  // Plaintext only for the IKE_SA_INIT response; everything else is inside SK (or SKF fragments).
  let payloads = outer;
  let critical = unsupportedCritical;
  if (h.exchange !== ExchangeType.IKE_SA_INIT) {
    let plain: Buffer;
    let firstType: number;
    if (skf) {
      const whole = reassemble(ctx, sa, local, remote, h, skf, data, response);
      if (!whole) return;
      plain = whole.plain;
      firstType = whole.firstType;
    } else {
      const sk = outer.find((p) => p.type === PayloadType.SK);
      if (!sa.cipher || !sk || sk.type !== PayloadType.SK) {
        ctx.stats.rxInvalid++;
        dropped(ctx, remote, 'no SK payload', sa);
        return;
      }
      try {
        plain = sa.cipher.open(data, sk);
      } catch (e) {
        if (e instanceof IntegrityError) {
          ctx.stats.rxBadIcv++;
          dropped(ctx, remote, 'integrity check failed', sa);
        } else if (e instanceof ParseError) {
          ctx.stats.rxInvalid++;
          dropped(ctx, remote, `encrypted payloads malformed: ${e.message}`, sa);
          // An authenticated request whose contents do not parse gets INVALID_SYNTAX (RFC 7296 §2.21.2).
          if (!response) answerNotify(ctx, sa, h, NotifyType.INVALID_SYNTAX);
        } else throw e;
        return;
      }
      firstType = sk.innerType;
    }
    try {
      const inner = decodePayloadChain(plain, firstType, 0, plain.length);
      payloads = inner.payloads;
      critical = inner.unsupportedCritical;
      // over the whole message, reassembled if it came in fragments
      if (h.exchange === ExchangeType.IKE_INTERMEDIATE) foldIntAuth(sa, h, !sa.initiator, firstType, plain);
    } catch (e) {
      if (!(e instanceof ParseError)) throw e;
      ctx.stats.rxInvalid++;
      // An authenticated request whose contents do not parse gets INVALID_SYNTAX (RFC 7296 §2.21.2).
      if (!response) {
        dropped(ctx, remote, `encrypted payloads malformed: ${e.message}`, sa);
        answerNotify(ctx, sa, h, NotifyType.INVALID_SYNTAX);
      } else {
        // The peer answered (the ICV checks out) but the answer cannot be used: retransmitting would
        // only bring the same answer from its cache, so the exchange fails now.
        sa.lastInbound = ctx.sched.now();
        responseUnusable(ctx, sa, h, `encrypted payloads malformed: ${e.message}`);
      }
      return;
    }
    // Authenticated and not a retransmission: the peer is reachable here (NAT mapping change or
    // float to the NAT-T port; with MOBIKE the peer says so itself).
    followPeer(ctx, sa, local, remote);
  }
  if (!response) {
    // Mostly the SA's own endpoints: then no second copy is held.
    sa.requestLocal = sameEndpoint(local, sa.local) ? sa.local : local;
    sa.requestRemote = sameEndpoint(remote, sa.remote) ? sa.remote : remote;
  }
  sa.lastInbound = ctx.sched.now();
  if (ctx.debug) {
    ctx.log.debug({ ike: sa.id, exchange: exchangeName(h.exchange), mid: h.messageId, response, payloads: payloads.length }, response ? 'response received' : 'request received');
  }
  if (critical.length > 0) {
    if (!response) {
      answerNotify(ctx, sa, h, NotifyType.UNSUPPORTED_CRITICAL_PAYLOAD, Buffer.from([critical[0]!]));
    } else {
      deleteAndDestroy(ctx, sa, 'response with unsupported critical payload');
    }
    return;
  }
  if (response) {
    const a = endRequest(ctx, sa);
    run(ctx, sa, () => handleResponse(ctx, sa, a.task, h, payloads, data));
  } else {
    run(ctx, sa, () => handleRequest(ctx, sa, h, payloads));
  }
}

/** The response to the request in flight arrived: it is no longer retransmitted. */
function endRequest(ctx: EngineContext, sa: IkeSa): ActiveRequest {
  const a = sa.active!;
  sa.active = undefined;
  if (a.tries > 1) ctx.table.setUnresponsive(sa, false);
  clearTimer(sa, Timer.RETRANSMIT);
  return a;
}

/**
 * An authenticated response that cannot be used: its exchange fails at once, with a log line that
 * says why, and the task's failure handling follows (a CHILD_SA the peer may have created is deleted,
 * a failed IKE_AUTH deletes the IKE SA with a Delete, a rekey is retried later).
 */
function responseUnusable(ctx: EngineContext, sa: IkeSa, h: IkeHeader, why: string): void {
  const a = endRequest(ctx, sa);
  ctx.log.warn({ ike: sa.id, peer: sa.remote.addr, conn: sa.conn?.name, exchange: exchangeName(h.exchange), mid: h.messageId, task: a.task.kind, reason: why }, 'response unusable, exchange failed');
  run(ctx, sa, () => handleFailure(ctx, sa, a.task, why));
}

/**
 * Run an SA operation with the SA held busy from its first statement to the end of its last await,
 * so no other message or task for the SA interleaves with it; then drain what queued up meanwhile.
 */
export function run(ctx: EngineContext, sa: IkeSa, op: () => Promise<void> | void): void {
  sa.busyCount++;
  let r: Promise<void> | void;
  try {
    r = op();
  } catch (e) {
    sa.busyCount--;
    internalError(ctx, sa, e);
    return afterOp(ctx, sa);
  }
  if (r instanceof Promise) {
    r.catch((e: unknown) => internalError(ctx, sa, e)).finally(() => {
      sa.busyCount--;
      afterOp(ctx, sa);
    });
  } else {
    sa.busyCount--;
    afterOp(ctx, sa);
  }
}

export function internalError(ctx: EngineContext, sa: IkeSa, e: unknown): void {
  ctx.log.error({ ike: sa.id, err: e instanceof Error ? e.stack : String(e) }, 'internal error, deleting IKE SA');
  if (!sa.dead) deleteAndDestroy(ctx, sa, 'internal error');
}

/** An operation held the SA busy without run() (see initKeysReady) and is over: as after run(). */
export function release(ctx: EngineContext, sa: IkeSa): void {
  afterOp(ctx, sa);
}

function afterOp(ctx: EngineContext, sa: IkeSa): void {
  if (sa.dead) {
    sa.pending = undefined;
    return;
  }
  while (sa.pending && sa.pending.length > 0 && !sa.busy && !sa.dead) {
    const m = sa.pending.shift()!;
    if (sa.pending.length === 0) sa.pending = undefined;
    dispatch(ctx, sa, m.local, m.remote, m.data, m.header, m.payloads, m.critical);
  }
  kick(ctx, sa);
}

function sameEndpoint(a: Endpoint, b: Endpoint): boolean {
  return a.port === b.port && a.addr === b.addr;
}

/** Whether a retransmitted request really comes from the peer (its ICV checks out) before we answer it again. */
function authentic(ctx: EngineContext, sa: IkeSa, h: IkeHeader, outer: Payload[], data: Buffer): boolean {
  if (h.exchange === ExchangeType.IKE_SA_INIT) return true;
  const p = outer[outer.length - 1];
  if (!sa.cipher || !p || (p.type !== PayloadType.SK && p.type !== PayloadType.SKF)) return false;
  try {
    if (p.type === PayloadType.SK) sa.cipher.open(data, p);
    else sa.cipher.openFragment(data, p);
    return true;
  } catch {
    // A retransmitted IKE_INTERMEDIATE request is under the keys before our response's key update.
    try {
      if (sa.prevCipher) {
        if (p.type === PayloadType.SK) sa.prevCipher.open(data, p);
        else sa.prevCipher.openFragment(data, p);
        return true;
      }
    } catch {
      // not from the peer either
    }
    ctx.stats.rxBadIcv++;
    if (p.type === PayloadType.SKF) fragmentDropped(ctx, 'invalid');
    return false;
  }
}

/**
 * One fragment of the request we expect or of the response to ours (RFC 7383 §2.6). Dropped unless we
 * announced fragmentation, fits the set under way and is authentic; kept (decrypted) otherwise.
 * Returns the decrypted inner payload chain once every fragment is in.
 */
function reassemble(
  ctx: EngineContext,
  sa: IkeSa,
  local: Endpoint,
  remote: Endpoint,
  h: IkeHeader,
  skf: SkfPayload,
  data: Buffer,
  response: boolean,
): { plain: Buffer; firstType: number } | undefined {
  const limits = ctx.fragmentLimits;
  const num = skf.fragmentNumber;
  const total = skf.totalFragments;
  const drop = (reason: FragmentDrop, why: string, n = 1): undefined => {
    fragmentDropped(ctx, reason, n);
    dropped(ctx, remote, `fragment ${num}/${total} of ${exchangeName(h.exchange)} #${h.messageId}: ${why}`, sa);
    return undefined;
  };
  if (!(sa.extensions & Ext.FRAGMENTATION_ANNOUNCED) || !sa.cipher) return drop('not_negotiated', 'fragmentation was not negotiated');
  let r = response ? sa.defragResponse : sa.defragRequest;
  const early = Reassembly.precheck(r, h.messageId, num, total, limits);
  if (early) return drop(early, early);
  if (ctx.defragBytes + skf.body.length > limits.memoryBytes) return drop('memory', 'reassembly memory exhausted');
  let plain: Buffer;
  try {
    plain = sa.cipher.openFragment(data, skf);
  } catch (e) {
    if (e instanceof IntegrityError) ctx.stats.rxBadIcv++;
    else if (e instanceof ParseError) ctx.stats.rxInvalid++;
    else throw e;
    return drop('invalid', e.message);
  }
  // Authentic from here on.
  sa.lastInbound = ctx.sched.now();
  if (r && (r.mid !== h.messageId || total > r.total)) {
    // A new message, or the same one cut into more fragments (RFC 7383 §2.6): start over.
    fragmentDropped(ctx, 'superseded', r.count);
    r = discard(ctx, sa, response);
  }
  if (!r) {
    r = new Reassembly(h.messageId, total, ctx.sched.now());
    if (response) sa.defragResponse = r;
    else sa.defragRequest = r;
    armDefragTimer(ctx, sa, r.startedAt + limits.timeoutMs);
  }
  const res = r.add(num, skf.innerType, plain, limits);
  if (res.kind === 'more') {
    ctx.defragBytes += plain.length;
    if (ctx.debug) ctx.log.debug({ ike: sa.id, mid: h.messageId, fragment: num, total, have: r.count }, 'fragment received');
    return undefined;
  }
  if (res.kind === 'drop') {
    if (res.reason !== 'duplicate') discard(ctx, sa, response);
    return drop(res.reason, res.reason, res.discarded);
  }
  ctx.defragBytes += plain.length;
  discard(ctx, sa, response);
  ctx.stats.messagesReassembled++;
  if (ctx.debug) ctx.log.debug({ ike: sa.id, exchange: exchangeName(h.exchange), mid: h.messageId, fragments: total, bytes: res.plain.length, peer: `${remote.addr}:${remote.port}`, local: local.port }, 'message reassembled');
  return { plain: res.plain, firstType: res.firstType };
}

/** Forget a reassembly of the SA (request or response side) and the memory it held. */
function discard(ctx: EngineContext, sa: IkeSa, response: boolean): undefined {
  const r = response ? sa.defragResponse : sa.defragRequest;
  if (!r) return undefined;
  ctx.defragBytes -= r.bytes;
  if (response) sa.defragResponse = undefined;
  else sa.defragRequest = undefined;
  return undefined;
}

/** Free what an IKE SA holds for reassembly (it goes away). */
export function dropReassembly(ctx: EngineContext, sa: IkeSa): void {
  discard(ctx, sa, false);
  discard(ctx, sa, true);
}

function armDefragTimer(ctx: EngineContext, sa: IkeSa, at: number): void {
  const cur = sa.timers[Timer.DEFRAG]!;
  if (cur === 0 || cur > at) setTimer(ctx, sa, Timer.DEFRAG, at);
}

/** The reassembly timer fired: drop fragment sets that did not complete in time (RFC 7383 §2.6). */
export function defragTimeout(ctx: EngineContext, sa: IkeSa): void {
  const now = ctx.sched.now();
  const timeout = ctx.fragmentLimits.timeoutMs;
  for (const response of [false, true]) {
    const r = response ? sa.defragResponse : sa.defragRequest;
    if (!r) continue;
    if (now - r.startedAt >= timeout) {
      fragmentDropped(ctx, 'timeout', r.count);
      if (ctx.debug) ctx.log.debug({ ike: sa.id, mid: r.mid, have: r.count, total: r.total }, 'incomplete fragment set dropped');
      discard(ctx, sa, response);
    } else armDefragTimer(ctx, sa, r.startedAt + timeout);
  }
}
