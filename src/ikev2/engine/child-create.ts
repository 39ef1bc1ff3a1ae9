/**
 * CHILD_SA creation (RFC 7296 §1.3.1, §2.9, §2.17) for both roles, in IKE_AUTH and in
 * CREATE_CHILD_SA: child config choice by traffic selectors, ESP proposal, optional PFS, key
 * derivation and the install into the dataplane. Rekeys use the same path (see child-rekey.ts).
 */
import { ExchangeType, NotifyType, PayloadType, ProtocolId, notifyName } from '../constants.ts';
import type { IkeHeader, KePayload, Payload, SaPayload } from '../codec/types.ts';
import { createKeyExchange, CryptoError, respondKeyExchange, type KeyExchange } from '../crypto/ke.ts';
import { deriveChildKeys } from '../crypto/prf.ts';
import { checkEspResponse, espChosenToWire, formatEspProposal, selectEspProposal, toWireProposals, type ChosenEsp } from '../crypto/proposals.ts';
import { ChildSa, type IkeSa, type PassiveRekey, type Task } from '../sa/ike-sa.ts';
import { isHostSel, isSubset, narrowInstallable, selForHost, selFromSpec, selFromWire, selToRange, selToString, selToWire, type Sel } from '../sa/ts.ts';
import type { ChildInstall, SaParams } from '../../dataplane/types.ts';
import type { ChildConfig, ProposalSpec } from '../../config/types.ts';
import { parseTrafficSelector } from '../../config/ts.ts';
import { hex8 } from '../../common/text.ts';
import { EMPTY, find, findErrorNotify, findNotify, notify, tsPayload, u16, u32 } from './payload-util.ts';
import { childFailed, childReady, emit, nonce, type EngineContext } from './context.ts';
import { answer, answerNotify, run, sendRequest } from './message.ts';
import { kick, queueTask } from './tasks.ts';
import { armChildTimer, childLifetimes, concludeRekey, livePassive, lowerNonce, rekeyedByPeer, rekeyFailed, rekeyTarget } from './child-rekey.ts';
import { removeFromDataplane } from './teardown.ts';
import { addKeMethods, withoutAddKe } from '../crypto/proposals.ts';
import { awaitFollowup, linkNotify, newLink, startFollowup } from './followup.ts';
import type { Followup } from '../sa/ike-sa.ts';
import { predecessorOf, takeOverTarget, tookOver } from './reauth.ts';

/** The selectors a child config allows on one side, `dynamic` resolved to that side's IKE address. */
export function tsAllowed(ctx: EngineContext, cfg: ChildConfig, side: 'local' | 'remote', sa: IkeSa): Sel[] {
  let parsed = ctx.tsCache.get(cfg);
  if (!parsed) {
    const conv = (specs: string[]): (Sel | 'dynamic')[] =>
      (specs.length ? specs : ['dynamic']).map((x) => {
        const t = parseTrafficSelector(x);
        return t === 'dynamic' ? t : selFromSpec(t);
      });
    parsed = { local: conv(cfg.localTs), remote: conv(cfg.remoteTs) };
    ctx.tsCache.set(cfg, parsed);
  }
  const host = side === 'local' ? sa.local.addr : sa.remote.addr;
  return parsed[side].map((t) => (t === 'dynamic' ? selForHost(host) : t));
}

// ---------------------------------------------------------------- responder

/** A CREATE_CHILD_SA request for a new CHILD_SA or a CHILD_SA rekey (REKEY_SA notify). */
export async function onChildRequest(ctx: EngineContext, sa: IkeSa, h: IkeHeader, payloads: Payload[], sap: SaPayload, ni: Buffer): Promise<void> {
  const rekey = rekeyTarget(ctx, sa, h, payloads);
  if (rekey === null) return;
  const tsi = find(payloads, PayloadType.TSi);
  const tsr = find(payloads, PayloadType.TSr);
  if (!tsi || !tsr) return answerNotify(ctx, sa, h, NotifyType.INVALID_SYNTAX);
  const nr = nonce(ctx);
  // Our own rekey of the same CHILD_SA is in flight: a collision, settled when our response is in.
  const colliding = rekey !== undefined && rekey.state === 'REKEYING';
  if (rekey) rekey.state = 'REKEYING';
  const r = await respondChild(ctx, sa, payloads, sap, tsi.selectors.map(selFromWire), tsr.selectors.map(selFromWire), ni, nr, rekey, false, find(payloads, PayloadType.KE));
  if (sa.dead) return;
  if (findErrorNotify(r.payloads)) {
    if (rekey && rekey.state === 'REKEYING' && !colliding) rekey.state = 'INSTALLED';
    return answer(ctx, sa, h, r.payloads);
  }
  const [sa0, ...rest] = r.payloads;
  const resp: Payload[] = [sa0!, { type: PayloadType.NONCE, critical: false, data: nr }];
  if (r.ke) resp.push(r.ke);
  resp.push(...rest);
  answer(ctx, sa, h, resp);
  // With additional key exchanges the CHILD_SA comes after the IKE_FOLLOWUP_KE exchanges.
  if (r.pending) {
    if (sa.followupIn?.target.kind === 'child') sa.followupIn.target.colliding = colliding;
    return;
  }
  if (!rekey) return;
  settlePeerRekey(ctx, sa, rekey, sa.children[sa.children.length - 1]!, colliding, ni, nr);
}

/**
 * The peer's rekey of `rekey` made `fresh`. When our own rekey of it is in flight (a collision) it is
 * settled once our response is in; otherwise the peer deletes the old CHILD_SA.
 */
export function settlePeerRekey(ctx: EngineContext, sa: IkeSa, rekey: ChildSa, fresh: ChildSa, colliding: boolean, ni: Buffer, nr: Buffer): void {
  const t = sa.active?.task;
  if (colliding && t?.kind === 'child-create' && t.rekey === rekey) {
    t.passive = { child: fresh, nonce: lowerNonce(ni, nr) };
    ctx.stats.childRekeyCollisions++;
    ctx.log.info({ ike: sa.id, child: rekey.name, child_id: rekey.id, peers: fresh.id }, 'CHILD SA rekey collision: the peer rekeys it too');
  } else rekeyedByPeer(ctx, sa, rekey, fresh);
}

/**
 * Create the CHILD_SA a peer asks for (IKE_AUTH or CREATE_CHILD_SA): pick the child config by traffic
 * selectors, the ESP proposal, allocate our SPI, derive keys and install. Returns the payloads of the
 * answer (SA, TSi, TSr, …) or an error notify.
 */
export async function respondChild(
  ctx: EngineContext,
  sa: IkeSa,
  payloads: Payload[],
  sap: SaPayload,
  tsiIn: (Sel | undefined)[],
  tsrIn: (Sel | undefined)[],
  ni: Buffer,
  nr: Buffer,
  rekey: ChildSa | undefined,
  inAuth: boolean,
  kePayload?: KePayload,
): Promise<{ payloads: Payload[]; ke?: KePayload; pending?: boolean }> {
  const conn = sa.conn!;
  const tsiP = tsiIn.filter((s): s is Sel => s !== undefined);
  const tsrP = tsrIn.filter((s): s is Sel => s !== undefined);
  let cfg: ChildConfig | undefined;
  let tsi: Sel[] = [];
  let tsr: Sel[] = [];
  const candidates = rekey ? [rekey.cfg] : conn.children;
  // Like strongSwan's child config selection: a config that takes the proposed selectors as they
  // are beats one that narrows them; among those the most specific config (the fewest addresses
  // allowed) wins, and on a tie the first.
  let bestExact = false;
  let bestSize = 0n;
  for (const c of candidates) {
    const allowedL = tsAllowed(ctx, c, 'local', sa);
    const allowedR = tsAllowed(ctx, c, 'remote', sa);
    const r = narrowInstallable(tsrP, allowedL);
    const i = narrowInstallable(tsiP, allowedR);
    if (!r.length || !i.length) continue;
    const exact = isSubset(tsrP, r) && isSubset(tsiP, i);
    if (cfg !== undefined && bestExact && !exact) continue;
    const size = addressCount(allowedL) + addressCount(allowedR);
    if (cfg === undefined || (exact && !bestExact) || size < bestSize) {
      bestExact = exact;
      bestSize = size;
      cfg = c;
      tsi = i;
      tsr = r;
    }
  }
  if (!cfg) {
    ctx.stats.tsUnacceptable++;
    ctx.stats.childFailed++;
    ctx.log.info({ ike: sa.id, conn: conn.name, tsi: tsiP.map(selToString), tsr: tsrP.map(selToString) }, 'traffic selectors unacceptable');
    return { payloads: [notify(NotifyType.TS_UNACCEPTABLE)] };
  }
  const esp = selectEspProposal(cfg.espProposals, sap.proposals, ctx.espSupported, { skipKe: inAuth, peerKe: kePayload?.group, addKe: !inAuth });
  if (!esp) {
    ctx.stats.noProposal++;
    ctx.stats.childFailed++;
    ctx.log.info({ ike: sa.id, conn: conn.name, child: cfg.name }, 'no acceptable ESP proposal');
    return { payloads: [notify(NotifyType.NO_PROPOSAL_CHOSEN)] };
  }
  // PFS only when the chosen proposal has a group (an offer may include NONE): the key exchange
  // is computed after the choice, so a peer cannot make us run a group we would refuse.
  let pfsSecret: Buffer | undefined;
  let ourKe: KePayload | undefined;
  if (esp.ke !== 0) {
    if (!kePayload || kePayload.group !== esp.ke) {
      ctx.stats.invalidKe++;
      return { payloads: [notify(NotifyType.INVALID_KE_PAYLOAD, u16(esp.ke))] };
    }
    const dh = respondKeyExchange(esp.ke, kePayload.data);
    if (!dh) {
      ctx.stats.rxInvalid++;
      return { payloads: [notify(NotifyType.INVALID_SYNTAX)] };
    }
    pfsSecret = dh.secret;
    ourKe = { type: PayloadType.KE, critical: false, group: esp.ke, data: dh.publicValue };
  }
  const transport = findNotify(payloads, NotifyType.USE_TRANSPORT_MODE) !== undefined && cfg.mode === 'transport';
  const methods = addKeMethods(esp.addKe);
  if (methods.length > 0 && pfsSecret) {
    // RFC 9370 §2.2.4: our SPI and selectors now, the CHILD_SA after the IKE_FOLLOWUP_KE exchanges.
    let spi: number;
    try {
      spi = await ctx.dp.allocateSpi();
    } catch (e) {
      ctx.stats.dataplaneErrors++;
      ctx.stats.childFailed++;
      ctx.log.warn({ ike: sa.id, err: (e as Error).message }, 'SPI allocation failed');
      return { payloads: [notify(NotifyType.NO_PROPOSAL_CHOSEN)] };
    }
    if (sa.dead) {
      ctx.dp.releaseSpi(spi);
      return { payloads: [notify(NotifyType.NO_PROPOSAL_CHOSEN)] };
    }
    const f: Followup = {
      link: newLink(ctx),
      methods,
      done: 0,
      secret0: pfsSecret,
      added: [],
      ni,
      nr,
      target: { kind: 'child', cfg, esp, transport, spi, localTs: tsr, remoteTs: tsi, rekey },
    };
    awaitFollowup(ctx, sa, f);
    return {
      payloads: [
        { type: PayloadType.SA, critical: false, proposals: [espChosenToWire(esp, u32(spi))] },
        ...(transport ? [notify(NotifyType.USE_TRANSPORT_MODE)] : []),
        tsPayload(PayloadType.TSi, tsi.map(selToWire)),
        tsPayload(PayloadType.TSr, tsr.map(selToWire)),
        linkNotify(f.link),
      ],
      ke: ourKe,
      pending: true,
    };
  }
  const { child, ok } = await createChild(ctx, sa, cfg, esp, transport, 0, tsr, tsi, rekey, ni, nr, pfsSecret, false, inAuth);
  if (!ok) return { payloads: [notify(NotifyType.NO_PROPOSAL_CHOSEN)] };
  return {
    payloads: [
      { type: PayloadType.SA, critical: false, proposals: [espChosenToWire(esp, u32(child.spiIn))] },
      ...(transport ? [notify(NotifyType.USE_TRANSPORT_MODE)] : []),
      tsPayload(PayloadType.TSi, tsi.map(selToWire)),
      tsPayload(PayloadType.TSr, tsr.map(selToWire)),
    ],
    ke: ourKe,
  };
}

// ---------------------------------------------------------------- both

/**
 * A negotiated CHILD_SA: derive its keys (RFC 7296 §2.17) and install it. Keys flow from the
 * exchange's initiator to its responder, so which half is inbound depends on who started it.
 */
async function createChild(
  ctx: EngineContext,
  sa: IkeSa,
  cfg: ChildConfig,
  esp: ChosenEsp,
  transport: boolean,
  spiIn: number,
  localTs: Sel[],
  remoteTs: Sel[],
  rekey: ChildSa | undefined,
  ni: Buffer,
  nr: Buffer,
  pfsSecret: Buffer | undefined,
  weInitiated: boolean,
  inAuth: boolean,
  passive?: PassiveRekey,
  added?: Buffer,
  takeOver?: ChildSa,
): Promise<{ child: ChildSa; ok: boolean }> {
  const child = new ChildSa(ctx.nextChildId++, cfg);
  child.mode = transport ? 'transport' : 'tunnel';
  child.spiIn = spiIn;
  child.spiOut = esp.spi.readUInt32BE(0);
  // The peer's SPI is spiOut from here on; the selector lists are copied to their exact size. The
  // proposal and selectors are shared records (see shared()).
  child.proposal = sharedProposal(esp);
  child.localTs = sharedSels(localTs, false);
  child.remoteTs = sharedSels(remoteTs, true);
  // Make-before-break from the CHILD_SA still in the dataplane: the one rekeyed, or, when the peer
  // deleted that one meanwhile, the SA its colliding rekey made.
  child.replaces = rekey && sa.children.includes(rekey) ? rekey.id : passive && sa.children.includes(passive.child) ? passive.child.id : undefined;
  // Reauthentication: the new CHILD_SA joins the tunnel of the old IKE SA's CHILD_SA. We started the
  // exchange: the peer has the new SAs, so we send on them at once. The peer started it (its
  // reauthentication): we send on the old SA until the peer deletes it.
  const heir = weInitiated ? takeOverTarget(ctx, takeOver) : rekey ? undefined : predecessorOf(ctx, sa, cfg, localTs, remoteTs);
  if (child.replaces === undefined && heir) child.replaces = heir.id;
  const k = deriveChildKeys(sa.prf!.alg, sa.keys!.skD, esp.encr, esp.integ, ni, nr, pfsSecret, added);
  const ok = weInitiated
    ? await installChild(ctx, sa, child, k.encR, k.integR, k.encI, k.integI, false, inAuth)
    : await installChild(ctx, sa, child, k.encI, k.integI, k.encR, k.integR, rekey !== undefined || heir !== undefined, inAuth);
  if (ok && heir) {
    const live = takeOverTarget(ctx, heir);
    ctx.log.info({ ike: sa.id, child: child.name, child_id: child.id, old_child_id: heir.id, old_live: live !== undefined }, 'CHILD SA takes over the tunnel of the CHILD SA of the older IKE SA');
    tookOver(sa, takeOver ?? heir, live, child);
  } else if (ok && takeOver) tookOver(sa, takeOver, undefined, child);
  return { child, ok };
}

/** How many addresses a list of selectors covers (overlaps counted twice). */
function addressCount(list: readonly Sel[]): bigint {
  let n = 0n;
  for (const s of list) n += s.end - s.start + 1n;
  return n;
}

/** The text of a CHILD_SA's proposal, once per shared proposal record (see sharedProposal). */
const proposalTexts = new WeakMap<ChosenEsp, string>();
export function espProposalText(p: ChosenEsp): string {
  let t = proposalTexts.get(p);
  if (t === undefined) proposalTexts.set(p, (t = formatEspProposal(p)));
  return t;
}

/** What the log says about an installed CHILD_SA. */
export function childLogFields(child: ChildSa): Record<string, unknown> {
  return {
    child: child.name,
    child_id: child.id,
    spi_in: hex8(child.spiIn),
    spi_out: hex8(child.spiOut),
    proposal: child.proposal ? espProposalText(child.proposal) : undefined,
    local_ts: child.localTs.map(selToString),
    remote_ts: child.remoteTs.map(selToString),
  };
}

/**
 * Allocate our SPI (if not yet), install both directions; on failure nothing is left installed.
 * `outboundAfterReplaced`: a rekey we answer; our outbound traffic moves to the new SA once the peer
 * deletes the old CHILD_SA (it has installed the new one by then).
 */
async function installChild(
  ctx: EngineContext,
  sa: IkeSa,
  child: ChildSa,
  encIn: Buffer,
  integIn: Buffer,
  encOut: Buffer,
  integOut: Buffer,
  outboundAfterReplaced: boolean,
  inAuth: boolean,
): Promise<boolean> {
  const dp = ctx.dp;
  const esp = child.proposal!;
  child.state = 'INSTALLING';
  try {
    if (!child.spiIn) child.spiIn = await dp.allocateSpi();
  } catch (e) {
    ctx.stats.dataplaneErrors++;
    ctx.stats.childFailed++;
    ctx.log.warn({ ike: sa.id, err: (e as Error).message }, 'SPI allocation failed');
    return false;
  }
  if (sa.dead) {
    dp.releaseSpi(child.spiIn);
    return false;
  }
  child.encap = sa.natHere || sa.natThere || sa.encapForced;
  const alg = sharedAlg(esp);
  const { encap, mode } = child;
  const replayWindow = child.cfg.replayWindow;
  // Endpoint objects are never changed in place (a move brings new ones), so they are shared. Plain
  // literals (not spreads) keep every field inside the object.
  const inbound: SaParams = { spi: child.spiIn, inbound: true, src: sa.remote, dst: sa.local, udpEncap: encap, alg, encKey: encIn, integKey: integIn, replayWindow, mode };
  const outbound: SaParams = { spi: child.spiOut, inbound: false, src: sa.local, dst: sa.remote, udpEncap: encap, alg, encKey: encOut, integKey: integOut, replayWindow, mode };
  const inst: ChildInstall = {
    childId: child.id,
    ikeSaId: sa.id,
    connection: sa.conn!.name,
    child: child.name,
    inbound,
    outbound,
    localTs: child.localTs.map((t) => selToRange(t)),
    remoteTs: child.remoteTs.map((t) => selToRange(t, true)),
    vppMode: child.cfg.vppMode,
    vppInterface: child.cfg.vppInterface,
    vppTable: child.cfg.vppTable,
    vppRoutes: child.cfg.vppRoutes,
    replaces: child.replaces,
    ...(outboundAfterReplaced ? { outboundAfterReplaced: true } : {}),
  };
  try {
    child.vpp = await dp.install(inst);
  } catch (e) {
    ctx.stats.dataplaneErrors++;
    ctx.stats.childFailed++;
    dp.releaseSpi(child.spiIn);
    child.state = 'FAILED';
    ctx.log.warn({ ike: sa.id, child: child.name, err: (e as Error).message }, 'CHILD_SA install failed');
    return false;
  }
  if (sa.dead) {
    // The IKE SA went away while the dataplane installed its CHILD_SA: take it out again.
    await removeFromDataplane(ctx, sa, child.id);
    return false;
  }
  child.state = 'INSTALLED';
  child.installedAt = ctx.sched.now();
  childLifetimes(ctx, child);
  // A new array of the exact size (push would reserve room for 16 more).
  sa.children = sa.children.concat(child);
  ctx.gauges.childSas++;
  armChildTimer(ctx, sa);
  ctx.childrenById.set(child.id, sa);
  ctx.stats.childEstablished++;
  // The CHILD_SA of IKE_AUTH is told in the IKE SA's own line (one info line per new peer).
  if (!inAuth) ctx.log.info({ ike: sa.id, conn: sa.conn!.name, ...childLogFields(child) }, 'CHILD SA installed');
  emit(ctx, { type: 'child-up', sa, child });
  childReady(ctx, sa, child);
  return true;
}

// ---------------------------------------------------------------- initiator

/** Start a queued CHILD_SA creation (or rekey) on an established IKE SA. */
export function startCreateChild(ctx: EngineContext, sa: IkeSa, task: Extract<Task, { kind: 'child-create' }>): void {
  if (task.rekey) {
    // Rekeyed by the peer, deleted or being deleted since the task was queued: nothing to do.
    if (task.rekey.state !== 'INSTALLED' || !sa.children.includes(task.rekey)) return kick(ctx, sa);
    task.rekey.state = 'REKEYING';
  }
  run(ctx, sa, () => prepareChildRequest(ctx, sa, task.child, [], task.rekey, false, task.group, task.fresh, task.takeOver));
}

/**
 * Add SA/TSi/TSr for a new CHILD_SA to `payloads` and send the request (IKE_AUTH or CREATE_CHILD_SA).
 */
export async function prepareChildRequest(
  ctx: EngineContext,
  sa: IkeSa,
  cfg: ChildConfig,
  payloads: Payload[],
  rekey: ChildSa | undefined,
  inAuth: boolean,
  group?: number,
  fresh?: boolean,
  takeOver?: ChildSa,
): Promise<void> {
  let spi: number;
  try {
    spi = await ctx.dp.allocateSpi();
  } catch (e) {
    ctx.stats.dataplaneErrors++;
    ctx.log.warn({ ike: sa.id, err: (e as Error).message }, 'SPI allocation failed');
    if (inAuth && !sa.dead) sendRequest(ctx, sa, ExchangeType.IKE_AUTH, payloads, { kind: 'ike-auth' });
    if (rekey) rekeyFailed(ctx, sa, rekey, 'SPI allocation failed');
    else if (!inAuth) childFailed(ctx, sa, cfg.name, 'SPI allocation failed');
    return;
  }
  if (sa.dead) {
    ctx.dp.releaseSpi(spi);
    return;
  }
  const specs = inAuth ? cfg.espProposals.map(withoutKe) : cfg.espProposals;
  const out = [...payloads];
  let ni: Buffer | undefined;
  let ke;
  if (!inAuth) {
    ni = nonce(ctx);
    const g = group ?? specs[0]?.ke[0] ?? 0;
    if (g) ke = createKeyExchange(g);
  }
  if (rekey && !fresh) out.push(notify(NotifyType.REKEY_SA, EMPTY, ProtocolId.ESP, u32(rekey.spiIn)));
  if (cfg.mode === 'transport') out.push(notify(NotifyType.USE_TRANSPORT_MODE));
  out.push({ type: PayloadType.SA, critical: false, proposals: toWireProposals(specs, u32(spi)) });
  if (ni) out.push({ type: PayloadType.NONCE, critical: false, data: ni });
  if (ke) out.push({ type: PayloadType.KE, critical: false, group: ke.group, data: ke.publicValue });
  out.push(
    tsPayload(PayloadType.TSi, tsAllowed(ctx, cfg, 'local', sa).map(selToWire)),
    tsPayload(PayloadType.TSr, tsAllowed(ctx, cfg, 'remote', sa).map(selToWire)),
  );
  if (inAuth) sendRequest(ctx, sa, ExchangeType.IKE_AUTH, out, { kind: 'ike-auth', child: cfg, spi });
  else sendRequest(ctx, sa, ExchangeType.CREATE_CHILD_SA, out, { kind: 'child-create', child: cfg, rekey, spi, ni, ke, ...(fresh ? { fresh } : {}), ...(takeOver ? { takeOver } : {}) });
}

export async function onCreateChildResponse(ctx: EngineContext, sa: IkeSa, task: Extract<Task, { kind: 'child-create' }>, payloads: Payload[]): Promise<void> {
  const spi = task.spi!;
  task.spi = undefined;
  const nr = find(payloads, PayloadType.NONCE);
  const rekey = task.rekey;
  if (rekey && !task.fresh && findNotify(payloads, NotifyType.CHILD_SA_NOT_FOUND) && !livePassive(sa, task.passive) && rekey.state === 'REKEYING') {
    // The peer does not know the CHILD_SA (it lost it): a new one takes over from it (RFC 7296 §2.25).
    ctx.dp.releaseSpi(spi);
    rekey.state = 'INSTALLED';
    ctx.log.info({ ike: sa.id, child: rekey.name, child_id: rekey.id }, 'peer does not know the CHILD SA we tried to rekey, creating a new one');
    return queueTask(ctx, sa, { kind: 'child-create', child: task.child, rekey, fresh: true });
  }
  await completeChild(ctx, sa, task.child, payloads, spi, task.ni!, nr?.data ?? EMPTY, rekey, false, task.ke, task.passive, task.fresh, task.takeOver);
}

/**
 * The response to our CREATE_CHILD_SA cannot be used: the exchange fails now. The peer may have
 * created the CHILD_SA, so it is told to delete it (our SPI names it); a rekey is retried.
 */
export function onCreateChildFailure(ctx: EngineContext, sa: IkeSa, task: Extract<Task, { kind: 'child-create' }>, why: string): void {
  const spi = task.spi;
  task.spi = undefined;
  ctx.stats.childFailed++;
  ctx.log.info({ ike: sa.id, conn: sa.conn?.name, child: task.child.name, reason: why }, 'CHILD SA failed');
  if (spi) queueTask(ctx, sa, { kind: 'delete-spi', spi, release: true });
  if (task.rekey) rekeyFailed(ctx, sa, task.rekey, why, task.passive);
  else childFailed(ctx, sa, task.child.name, why);
}

/**
 * The initiator's half of CHILD_SA creation, once the response is in. `ke` is our key exchange
 * when we offered PFS (CREATE_CHILD_SA only). On any failure our SPI is released, a rekeyed child
 * goes back to INSTALLED (and is retried), and a CHILD_SA the peer did create is deleted again.
 */
export async function completeChild(
  ctx: EngineContext,
  sa: IkeSa,
  cfg: ChildConfig,
  payloads: Payload[],
  spi: number,
  ni: Buffer,
  nr: Buffer,
  rekey: ChildSa | undefined,
  inAuth: boolean,
  ke?: KeyExchange,
  passive?: PassiveRekey,
  fresh?: boolean,
  takeOver?: ChildSa,
): Promise<void> {
  const err = findErrorNotify(payloads);
  const sap = find(payloads, PayloadType.SA);
  const tsi = find(payloads, PayloadType.TSi);
  const tsr = find(payloads, PayloadType.TSr);
  let peerCreated = false;
  const fail = (reason: string): void => {
    ctx.stats.childFailed++;
    ctx.log.info({ ike: sa.id, conn: sa.conn?.name, child: cfg.name, reason }, 'CHILD SA failed');
    if (cfg === sa.authChild && inAuth) sa.authChildError = reason;
    // The peer installed its side: tell it to delete it (our SPI names the pair), then release the SPI.
    if (peerCreated) queueTask(ctx, sa, { kind: 'delete-spi', spi, release: true });
    else ctx.dp.releaseSpi(spi);
    if (rekey) rekeyFailed(ctx, sa, rekey, reason, passive);
    else childFailed(ctx, sa, cfg.name, reason);
  };
  if (err) {
    const invalidKe = err.notifyType === NotifyType.INVALID_KE_PAYLOAD && err.data.length === 2 ? err.data.readUInt16BE(0) : 0;
    if (invalidKe && ke && invalidKe !== ke.group && cfg.espProposals.some((p) => p.ke.includes(invalidKe)) && !livePassive(sa, passive)) {
      // RFC 7296 §1.3: retry once with the group the responder asked for.
      ctx.dp.releaseSpi(spi);
      if (rekey) rekey.state = 'INSTALLED';
      queueTask(ctx, sa, { kind: 'child-create', child: cfg, rekey, group: invalidKe, ...(fresh ? { fresh } : {}), ...(takeOver ? { takeOver } : {}) });
      return;
    }
    return fail(notifyName(err.notifyType));
  }
  if (!sap || !tsi || !tsr || sap.proposals.length !== 1 || (!inAuth && !nr.length)) return fail('response without SA/Nr/TSi/TSr');
  peerCreated = true;
  const specs = inAuth ? cfg.espProposals.map(withoutKe) : cfg.espProposals;
  const esp = checkEspResponse(specs, sap.proposals, { skipKe: inAuth });
  if (!esp || !ctx.espSupported(esp.encr, esp.integ)) return fail('peer chose an ESP proposal we did not offer');
  // PFS: the chosen group must be the one we sent a KE payload for, and its exchange must succeed.
  let pfsSecret: Buffer | undefined;
  if (esp.ke !== 0) {
    const kep = find(payloads, PayloadType.KE);
    if (!ke || !kep || kep.group !== esp.ke || ke.group !== esp.ke) return fail('PFS group mismatch');
    try {
      pfsSecret = ke.computeSecret(kep.data);
    } catch (e) {
      if (!(e instanceof CryptoError)) throw e;
      return fail(`bad KE payload: ${e.message}`);
    }
  }
  const localTs = tsi.selectors.map(selFromWire).filter((s): s is Sel => s !== undefined);
  const remoteTs = tsr.selectors.map(selFromWire).filter((s): s is Sel => s !== undefined);
  if (!localTs.length || !remoteTs.length || !isSubset(localTs, tsAllowed(ctx, cfg, 'local', sa)) || !isSubset(remoteTs, tsAllowed(ctx, cfg, 'remote', sa))) {
    ctx.stats.tsUnacceptable++;
    return fail('peer narrowed traffic selectors outside what we proposed');
  }
  const transport = findNotify(payloads, NotifyType.USE_TRANSPORT_MODE) !== undefined && cfg.mode === 'transport';
  const methods = inAuth ? [] : addKeMethods(esp.addKe);
  if (methods.length > 0) {
    const link = findNotify(payloads, NotifyType.ADDITIONAL_KEY_EXCHANGE);
    if (!pfsSecret || !link || link.data.length === 0) return fail('additional key exchanges chosen without a key exchange or link data');
    startFollowup(ctx, sa, {
      link: link.data,
      methods,
      done: 0,
      secret0: pfsSecret,
      added: [],
      ni,
      nr,
      target: { kind: 'child', cfg, esp, transport, spi, localTs, remoteTs, rekey, passive, ...(takeOver ? { takeOver } : {}) },
    });
    return;
  }
  await finishChild(ctx, sa, cfg, esp, transport, spi, localTs, remoteTs, rekey, ni, nr, pfsSecret, inAuth, passive, undefined, takeOver);
}

/** The initiator's CHILD_SA, negotiated (and its additional key exchanges done): derive, install, finish a rekey. */
async function finishChild(
  ctx: EngineContext,
  sa: IkeSa,
  cfg: ChildConfig,
  esp: ChosenEsp,
  transport: boolean,
  spi: number,
  localTs: Sel[],
  remoteTs: Sel[],
  rekey: ChildSa | undefined,
  ni: Buffer,
  nr: Buffer,
  pfsSecret: Buffer | undefined,
  inAuth: boolean,
  passive?: PassiveRekey,
  added?: Buffer,
  takeOver?: ChildSa,
): Promise<void> {
  const { child, ok } = await createChild(ctx, sa, cfg, esp, transport, spi, localTs, remoteTs, rekey, ni, nr, pfsSecret, true, inAuth, passive, added, takeOver);
  if (!ok) {
    if (sa.dead) return;
    // installChild released the SPI; the peer still has its side.
    if (cfg === sa.authChild && inAuth) sa.authChildError = 'dataplane install failed';
    queueTask(ctx, sa, { kind: 'delete-spi', spi, release: false });
    if (rekey) rekeyFailed(ctx, sa, rekey, 'dataplane install failed', passive);
    else childFailed(ctx, sa, cfg.name, 'dataplane install failed');
    return;
  }
  if (rekey) concludeRekey(ctx, sa, rekey, child, ni, nr, passive);
}

/** IKE_AUTH's CHILD_SA has no key exchange, main or additional. */
function withoutKe(p: ProposalSpec): ProposalSpec {
  const q = withoutAddKe(p);
  return q.ke.length ? { ...q, ke: [] } : q;
}

/**
 * The IKE_FOLLOWUP_KE exchanges of a CHILD_SA are done: install it with keys from all secrets.
 * Initiator: as after a CREATE_CHILD_SA response; responder: returns the CHILD_SA, or undefined
 * when it could not be installed.
 */
export async function finishChildFollowup(ctx: EngineContext, sa: IkeSa, f: Followup, added: Buffer, weInitiated: boolean): Promise<ChildSa | undefined> {
  const t = f.target;
  if (t.kind !== 'child') return undefined;
  if (weInitiated) {
    await finishChild(ctx, sa, t.cfg, t.esp, t.transport, t.spi, t.localTs, t.remoteTs, t.rekey, f.ni, f.nr, f.secret0, false, t.passive, added, t.takeOver);
    return undefined;
  }
  const { child, ok } = await createChild(ctx, sa, t.cfg, t.esp, t.transport, t.spi, t.localTs, t.remoteTs, t.rekey, f.ni, f.nr, f.secret0, false, false, undefined, added);
  if (!ok && t.rekey && t.rekey.state === 'REKEYING' && !t.colliding) t.rekey.state = 'INSTALLED';
  return ok ? child : undefined;
}

/** A CHILD_SA's IKE_FOLLOWUP_KE exchanges failed or were abandoned: release its SPI, report or retry. */
export function abandonChildFollowup(ctx: EngineContext, sa: IkeSa, f: Followup, why: string, weInitiated: boolean): void {
  const t = f.target;
  if (t.kind !== 'child') return;
  ctx.stats.childFailed++;
  ctx.log.info({ ike: sa.id, conn: sa.conn?.name, child: t.cfg.name, reason: why }, 'CHILD SA failed in IKE_FOLLOWUP_KE');
  ctx.dp.releaseSpi(t.spi);
  if (t.rekey) {
    if (weInitiated) rekeyFailed(ctx, sa, t.rekey, why, t.passive);
    else if (t.rekey.state === 'REKEYING' && !t.colliding) t.rekey.state = 'INSTALLED';
  } else if (weInitiated) childFailed(ctx, sa, t.cfg.name, why);
}

/**
 * Records that many CHILD_SAs hold with the same content (the chosen proposal, the dataplane's
 * algorithm record, the local subnet's selector): one frozen copy per content instead of one per
 * CHILD_SA, which keeps each for its life. Cached by content, bounded (emptied when full); a record
 * that drops out of the cache stays valid for whoever holds it.
 */
const sharedRecords = new Map<string, object>();
const SHARED_MAX = 1024;

function shared<T extends object>(key: string, make: () => T): T {
  const had = sharedRecords.get(key);
  if (had !== undefined) return had as T;
  const v = Object.freeze(make());
  if (sharedRecords.size >= SHARED_MAX) sharedRecords.clear();
  sharedRecords.set(key, v);
  return v;
}

/** The proposal a CHILD_SA keeps: the chosen one without the peer's SPI (that is spiOut). */
function sharedProposal(esp: ChosenEsp): ChosenEsp {
  const key = `p ${esp.num} ${esp.encr.id}/${esp.encr.keyBits} ${esp.integ?.id ?? 0} ${esp.ke} ${esp.esn} ${esp.addKe?.join(',') ?? ''}`;
  return shared(key, () => (esp.addKe ? { num: esp.num, spi: EMPTY, encr: esp.encr, integ: esp.integ, ke: esp.ke, esn: esp.esn, addKe: esp.addKe } : { num: esp.num, spi: EMPTY, encr: esp.encr, integ: esp.integ, ke: esp.ke, esn: esp.esn }));
}

function sharedAlg(esp: ChosenEsp): SaParams['alg'] {
  const integId = esp.integ?.id ?? 0;
  return shared(`a ${esp.encr.id}/${esp.encr.keyBits} ${integId} ${esp.esn}`, () => ({ encrId: esp.encr.id, encrKeyBits: esp.encr.keyBits, integId, esn: esp.esn }));
}

/**
 * A selector list as a CHILD_SA keeps it: a list of one selector (the usual) is shared too. On the
 * peer's side a host selector (`dynamic`: the peer's own address) is that peer's alone: a frozen
 * copy, no cache entry (thousands of them would only push the shared records out). Ours (our own
 * address) is the same for every CHILD_SA and is shared.
 */
function sharedSels(list: readonly Sel[], peerSide: boolean): Sel[] {
  if (list.length !== 1) return list.map((t) => sharedSel(t, peerSide));
  if (peerSide && isHostSel(list[0]!)) return Object.freeze([plainSel(list[0]!)]) as Sel[];
  const one = sharedSel(list[0]!, peerSide);
  return shared(`l ${one.family} ${one.start} ${one.end} ${one.protocol} ${one.startPort} ${one.endPort}`, () => [one]);
}

/** A frozen copy, like the shared records (the same object shape for the code that reads them). */
function plainSel(s: Sel): Sel {
  return Object.freeze({ family: s.family, start: s.start, end: s.end, protocol: s.protocol, startPort: s.startPort, endPort: s.endPort });
}

function sharedSel(s: Sel, peerSide: boolean): Sel {
  if (peerSide && isHostSel(s)) return plainSel(s);
  return shared(`s ${s.family} ${s.start} ${s.end} ${s.protocol} ${s.startPort} ${s.endPort}`, () => ({ family: s.family, start: s.start, end: s.end, protocol: s.protocol, startPort: s.startPort, endPort: s.endPort }));
}
