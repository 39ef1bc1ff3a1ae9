/**
 * Moving peers: NAT mapping changes (RFC 7296 §2.23) and MOBIKE (RFC 4555), responder side.
 *
 * Without MOBIKE an authenticated request or response that arrives from a new address or port of a
 * peer behind a NAT moves the IKE SA there, and the UDP-encapsulated CHILD_SAs follow in the
 * dataplane (their endpoints are updated in place).
 *
 * With MOBIKE (both sides announced MOBIKE_SUPPORTED in IKE_AUTH) nothing moves implicitly: the peer
 * says where it is with UPDATE_SA_ADDRESSES. The IKE SA moves to the addresses that message came
 * from and to; the NAT detection payloads in it decide whether a NAT is in the path now (and so
 * whether ESP is UDP-encapsulated); the answer echoes its COOKIE2 and carries our NAT detection
 * payloads. Before the CHILD_SAs follow, a return routability check (an INFORMATIONAL request with
 * a COOKIE2 of ours, sent to the new address) must come back with that COOKIE2. vpp-iked does not
 * change its own addresses (the MOBIKE initiator role).
 */
import { timingSafeEqual } from 'node:crypto';
import { ExchangeType, NotifyType, PayloadType } from '../constants.ts';
import type { IkeHeader, Payload } from '../codec/types.ts';
import type { IkeSa, Task } from '../sa/ike-sa.ts';
import { findAll, findNotify, natdHash, notify } from './payload-util.ts';
import type { EngineContext, Endpoint } from './context.ts';
import { answer, sendRequest } from './message.ts';
import { queueTask } from './tasks.ts';
import { destroy } from './teardown.ts';
import { unwatchKeepalive, watchKeepalive } from './keepalive.ts';

/** COOKIE2 is 8 to 64 bytes (RFC 4555 §3.5); ours are 16. */
const COOKIE2_MIN = 8;
const COOKIE2_MAX = 64;
const COOKIE2_LEN = 16;

/**
 * A peer behind a NAT was heard from a new address or port in an authenticated message that is not
 * a retransmission (RFC 7296 §2.23): without MOBIKE the IKE SA and its CHILD_SAs follow it. Also the
 * float to the NAT-T port during IKE_AUTH. With MOBIKE the peer moves the SA itself.
 */
export function followPeer(ctx: EngineContext, sa: IkeSa, local: Endpoint, remote: Endpoint): void {
  if (sa.remote.addr === remote.addr && sa.remote.port === remote.port && sa.local.port === local.port && sa.local.addr === local.addr) return;
  if (sa.mobike) return;
  const floated = local.port === ctx.opts.portNatT && sa.local.port !== ctx.opts.portNatT;
  if (sa.natHere || !(sa.natThere || floated)) return;
  const established = sa.state !== 'CONNECTING' && sa.state !== 'CREATED';
  if (established) {
    ctx.stats.peerMoved++;
    ctx.log.info({ ike: sa.id, peer: `${remote.addr}:${remote.port}`, was: `${sa.remote.addr}:${sa.remote.port}` }, 'peer moved (NAT mapping changed)');
  }
  sa.local = { addr: local.addr, port: local.port };
  sa.remote = { addr: remote.addr, port: remote.port };
  void moveChildren(ctx, sa);
}

/** Point the installed CHILD_SAs at the IKE SA's endpoints (encapsulation as the NAT state says). */
async function moveChildren(ctx: EngineContext, sa: IkeSa): Promise<void> {
  const encap = sa.natHere || sa.natThere || sa.encapForced;
  const updates: Promise<void>[] = [];
  for (const c of sa.children) {
    if (c.state !== 'INSTALLED' && c.state !== 'REKEYED' && c.state !== 'REKEYING') continue;
    c.encap = encap;
    updates.push(
      ctx.dp.update(c.id, sa.local, sa.remote, encap).catch((e: Error) => {
        ctx.stats.dataplaneErrors++;
        ctx.log.warn({ ike: sa.id, child_id: c.id, err: e.message }, 'dataplane update failed');
      }),
    );
  }
  if (updates.length === 0) return;
  if (ctx.debug) ctx.log.debug({ ike: sa.id, children: updates.length, remote: `${sa.remote.addr}:${sa.remote.port}`, encap }, 'CHILD SAs follow the peer');
  await Promise.all(updates);
}

/** NAT_DETECTION_* payloads for the SA's endpoints as they are now (RFC 4555 §3.8). */
function natdNow(sa: IkeSa, local: Endpoint, remote: Endpoint): Payload[] {
  return [
    notify(NotifyType.NAT_DETECTION_SOURCE_IP, natdHash(sa.spiI, sa.spiR, local.addr, local.port)),
    notify(NotifyType.NAT_DETECTION_DESTINATION_IP, natdHash(sa.spiI, sa.spiR, remote.addr, remote.port)),
  ];
}

/**
 * What a MOBIKE peer's INFORMATIONAL request adds to our answer: NAT detection payloads when it sent
 * some (its liveness checks carry them to find NAT mapping changes, RFC 4555 §3.8) and its COOKIE2.
 */
export function mobikeAnswerPayloads(sa: IkeSa, payloads: Payload[]): Payload[] {
  if (!sa.mobike) return [];
  const out: Payload[] = [];
  if (findNotify(payloads, NotifyType.NAT_DETECTION_SOURCE_IP)) out.push(...natdNow(sa, sa.requestLocal ?? sa.local, sa.requestRemote ?? sa.remote));
  const c2 = findNotify(payloads, NotifyType.COOKIE2);
  if (c2 && c2.data.length >= COOKIE2_MIN && c2.data.length <= COOKIE2_MAX) out.push(notify(NotifyType.COOKIE2, c2.data));
  return out;
}

/**
 * UPDATE_SA_ADDRESSES (RFC 4555 §3.5) from the peer, in an authenticated request that is not a
 * retransmission: the IKE SA moves to the addresses of the request, the NAT state is taken from its
 * NAT detection payloads, and the CHILD_SAs follow once the return routability check succeeds.
 */
export function onUpdateSaAddresses(ctx: EngineContext, sa: IkeSa, h: IkeHeader, payloads: Payload[]): void {
  if (!sa.mobike) {
    // MOBIKE was not negotiated: the notification means nothing here (RFC 4555 §3.5 needs both sides).
    if (ctx.debug) ctx.log.debug({ ike: sa.id }, 'UPDATE_SA_ADDRESSES without MOBIKE ignored');
    return answer(ctx, sa, h, []);
  }
  const local = sa.requestLocal ?? sa.local;
  const remote = sa.requestRemote ?? sa.remote;
  const srcs = findAll(payloads, PayloadType.NOTIFY).filter((n) => n.notifyType === NotifyType.NAT_DETECTION_SOURCE_IP);
  const dst = findNotify(payloads, NotifyType.NAT_DETECTION_DESTINATION_IP);
  const wasNatHere = sa.natHere;
  const wasEncap = sa.natHere || sa.natThere || sa.encapForced;
  if (srcs.length > 0 && dst) {
    const theirSrc = natdHash(sa.spiI, sa.spiR, remote.addr, remote.port);
    sa.natThere = !srcs.some((n) => n.data.equals(theirSrc));
    sa.natHere = !dst.data.equals(natdHash(sa.spiI, sa.spiR, local.addr, local.port));
  } else if (srcs.length > 0 || dst) {
    ctx.stats.rxInvalid++;
    return answer(ctx, sa, h, [notify(NotifyType.INVALID_SYNTAX)]);
  }
  if (findNotify(payloads, NotifyType.NO_NATS_ALLOWED) && (sa.natHere || sa.natThere)) {
    // The peer wants no NAT on the path, and there is one (RFC 4555 §3.9): it is not moved.
    sa.natHere = wasNatHere;
    return answer(ctx, sa, h, [notify(NotifyType.UNEXPECTED_NAT_DETECTED)]);
  }
  ctx.stats.mobikeUpdates++;
  const moved = sa.remote.addr !== remote.addr || sa.remote.port !== remote.port || sa.local.addr !== local.addr || sa.local.port !== local.port;
  ctx.log.info(
    { ike: sa.id, peer: `${remote.addr}:${remote.port}`, was: `${sa.remote.addr}:${sa.remote.port}`, nat_local: sa.natHere, nat_remote: sa.natThere },
    'peer updated its addresses (MOBIKE)',
  );
  sa.local = { addr: local.addr, port: local.port };
  sa.remote = { addr: remote.addr, port: remote.port };
  answer(ctx, sa, h, mobikeAnswerPayloads(sa, payloads));
  if (sa.natHere !== wasNatHere) {
    if (sa.natHere) watchKeepalive(ctx, sa);
    else unwatchKeepalive(ctx, sa);
  }
  const encap = sa.natHere || sa.natThere || sa.encapForced;
  if (!moved && encap === wasEncap && sa.children.every((c) => c.encap === encap)) return;
  if (moved) ctx.stats.peerMoved++;
  // One check at a time: a newer update supersedes a queued one.
  sa.queue = sa.queue.filter((t) => t.kind !== 'mobike-check');
  queueTask(ctx, sa, { kind: 'mobike-check' });
}

/** The return routability check: an INFORMATIONAL with a fresh COOKIE2 to where the IKE SA is now. */
export function startMobikeCheck(ctx: EngineContext, sa: IkeSa, task: Extract<Task, { kind: 'mobike-check' }>): void {
  task.cookie2 = ctx.opts.random(COOKIE2_LEN);
  sendRequest(ctx, sa, ExchangeType.INFORMATIONAL, [notify(NotifyType.COOKIE2, task.cookie2)], task);
}

/** The answer to our check could not be used (malformed, unsupported critical payload): the check failed. */
export function onMobikeCheckFailure(ctx: EngineContext, sa: IkeSa, _task: Extract<Task, { kind: 'mobike-check' }>, why: string): void {
  ctx.stats.mobikeCheckFailed++;
  ctx.log.warn({ ike: sa.id, peer: sa.remote.addr, reason: why }, 'MOBIKE return routability check failed; deleting IKE SA');
  destroy(ctx, sa, 'MOBIKE return routability check failed');
}

export async function onMobikeCheckResponse(ctx: EngineContext, sa: IkeSa, task: Extract<Task, { kind: 'mobike-check' }>, payloads: Payload[]): Promise<void> {
  const echo = findNotify(payloads, NotifyType.COOKIE2);
  const want = task.cookie2;
  task.cookie2 = undefined;
  if (!want || !echo || echo.data.length !== want.length || !timingSafeEqual(echo.data, want)) {
    // The answer did not come from whoever we sent the check to: do not trust the new path
    // (strongSwan closes the IKE SA on a COOKIE2 mismatch too).
    ctx.stats.mobikeCheckFailed++;
    ctx.log.warn({ ike: sa.id, peer: sa.remote.addr }, 'MOBIKE return routability check failed (COOKIE2 not echoed); deleting IKE SA');
    return destroy(ctx, sa, 'MOBIKE return routability check failed');
  }
  // A newer update queued meanwhile does its own check.
  if (sa.queue.some((t) => t.kind === 'mobike-check')) return;
  await moveChildren(ctx, sa);
}
