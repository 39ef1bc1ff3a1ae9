/**
 * The message layer: receive and check a datagram, find its IKE SA, decrypt and authenticate it,
 * answer retransmitted requests from the response cache, hand requests and responses to the task
 * manager, and seal, send and retransmit our own messages (RFC 7296 §2.1, §2.2, §2.11, §2.21.2).
 * Work on one IKE SA is serialised: a message for an SA that is busy (e.g. waiting for the dataplane)
 * waits in a small bounded queue. IKE fragmentation (RFC 7383) belongs here.
 */
import { ExchangeType, HeaderFlag, IKE_VERSION, NotifyType, PayloadType, exchangeName } from '../constants.ts';
import type { IkeHeader, Payload } from '../codec/types.ts';
import { decodeMessage, decodePayloadChain, encodeMessage, encodePayloadChain } from '../codec/message.ts';
import { ParseError } from '../../common/bytes.ts';
import { IntegrityError } from '../crypto/protect.ts';
import { Timer, type IkeSa, type Task } from '../sa/ike-sa.ts';
import { notify } from './payload-util.ts';
import { MAX_PENDING, clearTimer, setTimer, type EngineContext, type Endpoint } from './context.ts';
import { onInitRequest } from './ike-init.ts';
import { handleRequest, handleResponse, kick } from './tasks.ts';
import { destroy } from './teardown.ts';
import { peerGone } from './keep-up.ts';
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

/** The datagrams of one message: encrypted in an SK payload once the SA has keys. */
export function seal(sa: IkeSa, exchange: number, mid: number, response: boolean, payloads: Payload[]): Buffer[] {
  const h = header(sa, exchange, mid, response);
  if (!sa.cipher) return [encodeMessage(h, payloads)];
  const chain = encodePayloadChain(payloads);
  const full: IkeHeader = { ...h, length: 0, nextPayload: PayloadType.SK };
  return [sa.cipher.seal(full, chain.firstType, chain.bytes)];
}

export function transmit(ctx: EngineContext, sa: IkeSa, packets: Buffer[], local: Endpoint = sa.local, remote: Endpoint = sa.remote): void {
  sa.lastOutbound = ctx.sched.now();
  for (const data of packets) {
    ctx.stats.txPackets++;
    ctx.opts.send({ local, remote, data });
  }
}

/** Send a request of ours and keep it for retransmission until its response arrives. */
export function sendRequest(ctx: EngineContext, sa: IkeSa, exchange: number, payloads: Payload[], task: Task): void {
  const mid = sa.sendMid++;
  startRequest(ctx, sa, exchange, mid, seal(sa, exchange, mid, false, payloads), task);
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
  const packets = seal(sa, exchange, mid, true, payloads);
  sa.lastResponseMid = mid;
  sa.lastResponse = packets;
  transmit(ctx, sa, packets, sa.requestLocal ?? sa.local, sa.requestRemote ?? sa.remote);
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

/** A datagram for IKE arrived (non-ESP marker already removed by the transport). */
export function receive(ctx: EngineContext, local: Endpoint, remote: Endpoint, data: Buffer): void {
  ctx.stats.rxPackets++;
  let msg;
  try {
    msg = decodeMessage(data);
  } catch (e) {
    if (e instanceof ParseError) {
      ctx.stats.rxInvalid++;
      ctx.log.debug({ peer: remote.addr, err: e.message }, 'dropped malformed message');
      return;
    }
    throw e;
  }
  const h = msg.header;
  const response = (h.flags & HeaderFlag.RESPONSE) !== 0;
  if (h.version >> 4 !== 2) {
    ctx.stats.rxInvalid++;
    dropped(ctx, remote, `IKE major version ${h.version >> 4}`);
    if (!response && h.exchange === ExchangeType.IKE_SA_INIT) {
      sendStateless(ctx, local, remote, h, [notify(NotifyType.INVALID_MAJOR_VERSION)]);
    }
    return;
  }
  if (h.exchange === ExchangeType.IKE_SA_INIT && !response) {
    onInitRequest(ctx, local, remote, data, msg.header, msg.payloads, msg.unsupportedCritical);
    return;
  }
  const fromInitiator = (h.flags & HeaderFlag.INITIATOR) !== 0;
  const sa = ctx.table.bySpiBuf(fromInitiator ? h.spiR : h.spiI);
  if (!sa || sa.dead || sa.initiator === fromInitiator) {
    ctx.stats.rxUnknownSpi++;
    dropped(ctx, remote, 'unknown IKE SPI');
    return;
  }
  // The peer's SPI must match, except in the IKE_SA_INIT response that tells it to us.
  const theirs = fromInitiator ? h.spiI : h.spiR;
  if (!(h.exchange === ExchangeType.IKE_SA_INIT && response) && !theirs.equals(sa.theirSpi)) {
    ctx.stats.rxUnknownSpi++;
    dropped(ctx, remote, 'peer SPI does not match', sa);
    return;
  }
  if (sa.busy) {
    if (!sa.pending) sa.pending = [];
    if (sa.pending.length >= MAX_PENDING) {
      ctx.stats.rxDroppedBusy++;
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
  if (response) {
    if (!sa.active || sa.active.mid !== h.messageId || sa.active.exchange !== h.exchange) {
      ctx.stats.rxUnmatchedResponse++;
      dropped(ctx, remote, `response ${exchangeName(h.exchange)} #${h.messageId} matches no request`, sa);
      return;
    }
  } else if (h.messageId !== sa.recvMid) {
    if (h.messageId === sa.lastResponseMid && sa.lastResponse && authentic(ctx, sa, h, outer, data)) {
      ctx.stats.retransmitsAnswered++;
      if (ctx.debug) ctx.log.debug({ ike: sa.id, exchange: exchangeName(h.exchange), mid: h.messageId }, 'retransmitted request answered from cache');
      transmit(ctx, sa, sa.lastResponse, local, remote);
    } else {
      ctx.stats.rxInvalid++;
      dropped(ctx, remote, `request #${h.messageId} out of window (expected #${sa.recvMid})`, sa);
    }
    return;
  }
  // Plaintext only for the IKE_SA_INIT response; everything else is inside SK.
  let payloads = outer;
  let critical = unsupportedCritical;
  if (h.exchange !== ExchangeType.IKE_SA_INIT) {
    const sk = outer.find((p) => p.type === PayloadType.SK);
    if (!sa.cipher || !sk || sk.type !== PayloadType.SK) {
      ctx.stats.rxInvalid++;
      dropped(ctx, remote, 'no SK payload', sa);
      return;
    }
    try {
      const plain = sa.cipher.open(data, sk);
      const inner = decodePayloadChain(plain, sk.innerType, 0, plain.length);
      payloads = inner.payloads;
      critical = inner.unsupportedCritical;
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
    // Authenticated and not a retransmission: the peer is reachable here (NAT mapping change or
    // float to the NAT-T port; with MOBIKE the peer says so itself).
    followPeer(ctx, sa, local, remote);
  }
  if (!response) {
    sa.requestLocal = local;
    sa.requestRemote = remote;
  }
  sa.lastInbound = ctx.sched.now();
  if (ctx.debug) {
    ctx.log.debug({ ike: sa.id, exchange: exchangeName(h.exchange), mid: h.messageId, response, payloads: payloads.length }, response ? 'response received' : 'request received');
  }
  if (critical.length > 0) {
    if (!response) {
      answerNotify(ctx, sa, h, NotifyType.UNSUPPORTED_CRITICAL_PAYLOAD, Buffer.from([critical[0]!]));
    } else {
      destroy(ctx, sa, 'response with unsupported critical payload');
    }
    return;
  }
  if (response) {
    const a = sa.active!;
    sa.active = undefined;
    if (a.tries > 1) ctx.table.setUnresponsive(sa, false);
    clearTimer(sa, Timer.RETRANSMIT);
    run(ctx, sa, () => handleResponse(ctx, sa, a.task, h, payloads, data));
  } else {
    run(ctx, sa, () => handleRequest(ctx, sa, h, payloads));
  }
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
  if (!sa.dead) destroy(ctx, sa, 'internal error');
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

/** Whether a retransmitted request really comes from the peer (its ICV checks out) before we answer it again. */
function authentic(ctx: EngineContext, sa: IkeSa, h: IkeHeader, outer: Payload[], data: Buffer): boolean {
  if (h.exchange === ExchangeType.IKE_SA_INIT) return true;
  const sk = outer.find((p) => p.type === PayloadType.SK);
  if (!sa.cipher || !sk || sk.type !== PayloadType.SK) return false;
  try {
    sa.cipher.open(data, sk);
    return true;
  } catch {
    ctx.stats.rxBadIcv++;
    return false;
  }
}
