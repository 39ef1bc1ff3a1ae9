/**
 * The IKEv2 engine: IKE_SA_INIT, IKE_AUTH (PSK), CREATE_CHILD_SA, INFORMATIONAL, for both roles.
 *
 * Pure protocol logic: time comes from the injected scheduler, randomness from the injected source,
 * packets go to the injected sink, IPsec SAs to the injected dataplane. Nothing here opens a socket.
 * All IKE SAs share one timer heap; work on one IKE SA is serialised (a message that arrives while a
 * dataplane call for that SA is in flight waits in a small bounded queue).
 */
import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import {
  AuthMethod,
  ExchangeType,
  HeaderFlag,
  IKE_PORT,
  IKE_VERSION,
  NotifyType,
  PayloadType,
  ProtocolId,
  exchangeName,
  notifyName,
} from './constants.ts';
import type { IdPayload, IkeHeader, KePayload, Payload, SaPayload } from './codec/types.ts';
import { decodeMessage, decodePayloadChain, encodeMessage, encodePayloadChain } from './codec/message.ts';
import { ParseError } from '../common/bytes.ts';
import { IkeCipher, IntegrityError } from './crypto/protect.ts';
import { createKeyExchange, CryptoError, type KeyExchange } from './crypto/ke.ts';
import { deriveChildKeys, deriveIkeKeys, deriveRekeyedIkeKeys, Prf } from './crypto/prf.ts';
import { pskAuth, signedOctets, verifyPskAuth } from './crypto/auth.ts';
import {
  espChosenToWire,
  formatEspProposal,
  formatIkeSuite,
  ikeChosenToWire,
  selectEspProposal,
  selectIkeProposal,
  checkIkeResponse,
  checkEspResponse,
  toWireProposals,
  type ChosenEsp,
  type ChosenIke,
} from './crypto/proposals.ts';
import type { IntegAlg, EncrAlg } from './crypto/suites.ts';
import { ChildSa, IkeSa, Timer, newGauges, type Task } from './sa/ike-sa.ts';
import { SaTable } from './sa/table.ts';
import { ConfigIndex } from './sa/config-index.ts';
import {
  isSubset,
  narrow,
  selForHost,
  selFromSpec,
  selFromWire,
  selToRange,
  selToString,
  selToWire,
  type Sel,
} from './sa/ts.ts';
import {
  EMPTY,
  deletePayload,
  find,
  findAll,
  findErrorNotify,
  findNotify,
  idBody,
  natdHash,
  notify,
  tsPayload,
  u16,
  u32,
} from './payloads.ts';
import type { Scheduler, RandomSource } from '../common/clock.ts';
import type { ChildInstall, Dataplane, SaEndpoint, SaParams } from '../dataplane/types.ts';
import type { ChildConfig, Config, ConnectionConfig, ProposalSpec } from '../config/types.ts';
import { parseTrafficSelector } from '../config/ts.ts';
import { identityMatches, identityToString, parseIdentity, type Identity } from '../config/identity.ts';
import { ipFamily } from '../common/addr.ts';
import { hex8 } from '../common/text.ts';

export interface Endpoint {
  addr: string;
  port: number;
}

export interface OutPacket {
  local: Endpoint;
  remote: Endpoint;
  /** The IKE message; the transport adds the non-ESP marker where the ports call for it. */
  data: Buffer;
}

export type EngineEvent =
  | { type: 'ike-up'; sa: IkeSa }
  | { type: 'ike-down'; sa: IkeSa; reason: string }
  | { type: 'child-up'; sa: IkeSa; child: ChildSa }
  | { type: 'child-down'; sa: IkeSa; child: ChildSa; reason: string }
  | { type: 'child-rekeyed'; sa: IkeSa; old: ChildSa; child: ChildSa }
  | { type: 'ike-rekeyed'; sa: IkeSa; old: IkeSa };

export interface EngineOptions {
  scheduler: Scheduler;
  random: RandomSource;
  send: (p: OutPacket) => void;
  dataplane: Dataplane;
  log: Logger;
  /** Ports this daemon listens on (IKE and NAT-T). */
  port: number;
  portNatT: number;
  ikeSaLimit: number;
  /** Retransmission: timeout (s), base, tries (strongSwan defaults 4, 1.8, 5). */
  retransmitTimeout?: number;
  retransmitBase?: number;
  retransmitTries?: number;
  /** Seconds a half-open IKE SA may wait for IKE_AUTH. */
  halfOpenTimeout?: number;
  onEvent?: (e: EngineEvent) => void;
  /** Our source address towards a peer, when the connection names none (the transport knows). */
  localAddressFor?: (remote: string) => string | undefined;
}

/** Counters exported by `vpp-ikectl stats` and the metrics endpoint. */
export interface EngineStats {
  rxPackets: number;
  txPackets: number;
  rxInvalid: number;
  rxBadIcv: number;
  rxUnknownSpi: number;
  rxUnmatchedResponse: number;
  rxDroppedBusy: number;
  retransmitsSent: number;
  retransmitsAnswered: number;
  initRefusedFull: number;
  evicted: number;
  ikeEstablished: number;
  ikeFailed: number;
  ikeDeleted: number;
  childEstablished: number;
  childFailed: number;
  childDeleted: number;
  childRekeyed: number;
  ikeRekeyed: number;
  authFailed: number;
  noProposal: number;
  invalidKe: number;
  tsUnacceptable: number;
  dataplaneErrors: number;
}

const MAX_PENDING = 8;
const NONCE_LEN = 32;

/** A request to answer with, while processing a received request. */
interface Answer {
  payloads: Payload[];
}

export class Engine {
  readonly table: SaTable;
  /** IKE SAs by state and the number of CHILD SAs, kept current (for metrics). */
  readonly gauges = newGauges();
  readonly stats: EngineStats = {
    rxPackets: 0,
    txPackets: 0,
    rxInvalid: 0,
    rxBadIcv: 0,
    rxUnknownSpi: 0,
    rxUnmatchedResponse: 0,
    rxDroppedBusy: 0,
    retransmitsSent: 0,
    retransmitsAnswered: 0,
    initRefusedFull: 0,
    evicted: 0,
    ikeEstablished: 0,
    ikeFailed: 0,
    ikeDeleted: 0,
    childEstablished: 0,
    childFailed: 0,
    childDeleted: 0,
    childRekeyed: 0,
    ikeRekeyed: 0,
    authFailed: 0,
    noProposal: 0,
    invalidKe: 0,
    tsUnacceptable: 0,
    dataplaneErrors: 0,
  };
  private readonly opts: Required<Omit<EngineOptions, 'onEvent' | 'localAddressFor'>> & Pick<EngineOptions, 'onEvent' | 'localAddressFor'>;
  private readonly sched: Scheduler;
  private readonly log: Logger;
  private index = new ConfigIndex([], []);
  private nextSaId = 1;
  private nextChildId = 1;
  private readonly childrenById = new Map<number, { sa: IkeSa; child: ChildSa }>();
  /** Waiters of `initiate()` calls, per IKE SA id. */
  private readonly waiters = new Map<number, { resolve: (sa: IkeSa) => void; reject: (e: Error) => void }[]>();
  /** Connections with start_action=start that we keep up, and their retry state. */
  private readonly keepUp = new Map<string, KeepUp>();
  /** Retry timers are keyed by a negative number per connection kept up. */
  private readonly keepUpById = new Map<number, string>();
  private nextKeepUpId = 1;
  private readonly espSupported: (encr: EncrAlg, integ: IntegAlg | null) => boolean;

  constructor(opts: EngineOptions) {
    this.opts = {
      retransmitTimeout: 4,
      retransmitBase: 1.8,
      retransmitTries: 5,
      halfOpenTimeout: 30,
      ...opts,
    };
    this.sched = opts.scheduler;
    this.log = opts.log;
    this.table = new SaTable(opts.ikeSaLimit);
    this.sched.setHandler((key, kind, due) => this.onTimer(key, kind, due));
    const f = opts.dataplane.features();
    this.espSupported = (encr, integ) =>
      f.encr.has(`${encr.id}:${encr.keyBits}`) && (integ === null || f.integ.has(integ.id));
    opts.dataplane.setListener({
      replayed: (ids) => {
        // Re-added outbound SAs start their sequence numbers at 1 again, which the peer's replay
        // window would drop: replace each CHILD_SA (the dataplane paces the batches it reports).
        this.log.info({ children: ids.length }, 'dataplane replayed CHILD_SAs after a restart; rekeying them');
        for (const id of ids) {
          const e = this.childrenById.get(id);
          if (e && !e.sa.dead) this.rekeyChild(e.sa, e.child);
        }
      },
      failed: (childId, reason) => {
        const e = this.childrenById.get(childId);
        if (e) this.queueTask(e.sa, { kind: 'child-delete', child: e.child });
        this.log.warn({ child: childId, reason }, 'dataplane lost CHILD_SA');
      },
    });
  }

  get config(): ConfigIndex {
    return this.index;
  }

  /** Use a new configuration for new SAs; existing SAs keep the connection objects they were made from. */
  setConfig(cfg: Config): void {
    this.index = new ConfigIndex(cfg.connections, cfg.secrets);
  }

  /**
   * Bring up every connection with a child whose start_action is `start`, and keep it up; with
   * `only`, just the connections named there (a reload starts added and changed ones, not those an
   * operator terminated).
   */
  startConnections(only?: ReadonlySet<string>): void {
    for (const conn of this.index.connections) {
      if (only && !only.has(conn.name)) continue;
      if (conn.children.some((c) => c.startAction === 'start') && !this.keepUp.has(conn.name)) {
        this.keepUpEntry(conn.name);
        this.initiate(conn.name).catch((e: Error) => this.log.info({ conn: conn.name, err: e.message }, 'start failed'));
      }
    }
  }

  /** Stop keeping a connection up (removed by reload, terminated by the operator). */
  forgetConnection(name: string): void {
    const st = this.keepUp.get(name);
    if (!st) return;
    this.keepUp.delete(name);
    this.keepUpById.delete(st.id);
  }

  private keepUpEntry(name: string): KeepUp {
    let st = this.keepUp.get(name);
    if (!st) {
      st = { id: this.nextKeepUpId++, tries: 0, retryAt: 0 };
      this.keepUp.set(name, st);
      this.keepUpById.set(st.id, name);
    }
    return st;
  }

  // ---------------------------------------------------------------- timers

  private setTimer(sa: IkeSa, kind: number, at: number): void {
    sa.timers[kind] = at;
    this.sched.schedule(at, sa.id, kind);
  }

  private clearTimer(sa: IkeSa, kind: number): void {
    sa.timers[kind] = 0;
  }

  private onTimer(key: number, kind: number, due: number): void {
    if (key < 0) return this.onRetryTimer(-key, due);
    const sa = this.table.get(key);
    if (!sa || sa.dead || sa.timers[kind] !== due) return; // stale entry
    sa.timers[kind] = 0;
    try {
      this.onSaTimer(sa, kind);
    } catch (e) {
      this.internalError(sa, e);
    }
  }

  private onSaTimer(sa: IkeSa, kind: number): void {
    switch (kind) {
      case Timer.RETRANSMIT:
        return this.retransmit(sa);
      case Timer.HALF_OPEN:
        if (sa.state !== 'ESTABLISHED') this.destroy(sa, 'half-open timeout');
        return;
      case Timer.DPD:
        return this.dpdCheck(sa);
      case Timer.DELETE_OLD:
        if (sa.state === 'REKEYED') return this.destroy(sa, 'rekeyed');
        for (const c of sa.children) if (c.state === 'REKEYED') this.queueTask(sa, { kind: 'child-delete', child: c });
        return;
      case Timer.CHILD_REKEY:
        return this.childTimers(sa);
      case Timer.IKE_REKEY:
        if (sa.state === 'ESTABLISHED' && !sa.queue.some((t) => t.kind === 'ike-rekey') && sa.active?.task.kind !== 'ike-rekey') {
          this.queueTask(sa, { kind: 'ike-rekey' });
        }
        return;
    }
  }

  /** A connection we keep up is due for another attempt (unless an SA for it exists by now). */
  private onRetryTimer(id: number, due: number): void {
    const name = this.keepUpById.get(id);
    const st = name === undefined ? undefined : this.keepUp.get(name);
    if (!name || !st || st.retryAt !== due) return;
    st.retryAt = 0;
    if (this.table.ofConnection(name).size === 0) this.initiate(name).catch(() => {});
  }

  // ---------------------------------------------------------------- sending

  private header(sa: IkeSa, exchange: number, mid: number, response: boolean): Omit<IkeHeader, 'length' | 'nextPayload'> {
    return {
      spiI: sa.spiI,
      spiR: sa.spiR,
      version: IKE_VERSION,
      exchange,
      flags: (sa.initiator ? HeaderFlag.INITIATOR : 0) | (response ? HeaderFlag.RESPONSE : 0),
      messageId: mid,
    };
  }

  private seal(sa: IkeSa, exchange: number, mid: number, response: boolean, payloads: Payload[]): Buffer[] {
    const h = this.header(sa, exchange, mid, response);
    if (!sa.cipher) return [encodeMessage(h, payloads)];
    const chain = encodePayloadChain(payloads);
    const header: IkeHeader = { ...h, length: 0, nextPayload: PayloadType.SK };
    return [sa.cipher.seal(header, chain.firstType, chain.bytes)];
  }

  private transmit(sa: IkeSa, packets: Buffer[], local: Endpoint = sa.local, remote: Endpoint = sa.remote): void {
    for (const data of packets) {
      this.stats.txPackets++;
      this.opts.send({ local, remote, data });
    }
  }

  private sendRequest(sa: IkeSa, exchange: number, payloads: Payload[], task: Task): void {
    const mid = sa.sendMid++;
    const packets = this.seal(sa, exchange, mid, false, payloads);
    sa.active = { mid, exchange, packets, tries: 1, task };
    this.transmit(sa, packets);
    this.setTimer(sa, Timer.RETRANSMIT, this.sched.now() + this.retransmitDelay(0));
  }

  /** A response goes back to the address and port its request came from (RFC 7296 §2.11). */
  private sendResponse(sa: IkeSa, exchange: number, mid: number, payloads: Payload[]): void {
    const packets = this.seal(sa, exchange, mid, true, payloads);
    sa.lastResponseMid = mid;
    sa.lastResponse = packets;
    this.transmit(sa, packets, sa.requestLocal ?? sa.local, sa.requestRemote ?? sa.remote);
  }

  /** Delay before retransmission n (0 = after the first send): timeout × base^n. */
  retransmitDelay(n: number): number {
    return Math.round(this.opts.retransmitTimeout * 1000 * Math.pow(this.opts.retransmitBase, n));
  }

  private retransmit(sa: IkeSa): void {
    const a = sa.active;
    if (!a) return;
    if (a.tries > this.opts.retransmitTries) {
      this.log.info({ ike: sa.id, peer: sa.remote.addr, conn: sa.conn?.name, exchange: exchangeName(a.exchange) }, 'giving up after retransmissions');
      this.peerGone(sa, a.task);
      return;
    }
    this.stats.retransmitsSent++;
    if (a.tries === 1) this.table.setUnresponsive(sa, true);
    this.transmit(sa, a.packets);
    this.setTimer(sa, Timer.RETRANSMIT, this.sched.now() + this.retransmitDelay(a.tries));
    a.tries++;
  }

  /** The peer stopped answering: apply dpd_action / keyingtries. */
  private peerGone(sa: IkeSa, task: Task): void {
    const restart =
      sa.conn !== undefined &&
      (task.kind === 'ike-init' || task.kind === 'ike-auth'
        ? this.keepUp.has(sa.conn.name)
        : sa.children.some((c) => c.cfg.dpdAction === 'restart' || c.cfg.closeAction === 'start') ||
          this.keepUp.has(sa.conn.name));
    const name = sa.conn?.name;
    this.destroy(sa, 'peer not responding');
    if (restart && name) this.scheduleRetry(name);
  }

  private scheduleRetry(name: string): void {
    const conn = this.index.get(name);
    if (!conn) return;
    const st = this.keepUpEntry(name);
    st.tries++;
    if (conn.keyingtries !== 0 && st.tries >= conn.keyingtries && !conn.children.some((c) => c.startAction === 'start' || c.dpdAction === 'restart')) {
      this.forgetConnection(name);
      return;
    }
    // Backoff: 1 s, 2 s, 4 s ... capped at 60 s, with jitter from the random source.
    const base = Math.min(60_000, 1000 * 2 ** Math.min(st.tries - 1, 6));
    const jitter = this.opts.random(2).readUInt16BE() % Math.max(1, Math.floor(base / 4));
    st.retryAt = this.sched.now() + base + jitter;
    this.sched.schedule(st.retryAt, -st.id, Timer.RETRY);
  }

  // ---------------------------------------------------------------- receiving

  /** A datagram for IKE arrived (non-ESP marker already removed by the transport). */
  receive(local: Endpoint, remote: Endpoint, data: Buffer): void {
    this.stats.rxPackets++;
    let msg;
    try {
      msg = decodeMessage(data);
    } catch (e) {
      if (e instanceof ParseError) {
        this.stats.rxInvalid++;
        this.log.debug({ peer: remote.addr, err: e.message }, 'dropped malformed message');
        return;
      }
      throw e;
    }
    const h = msg.header;
    const response = (h.flags & HeaderFlag.RESPONSE) !== 0;
    if (h.version >> 4 !== 2) {
      this.stats.rxInvalid++;
      if (!response && h.exchange === ExchangeType.IKE_SA_INIT) {
        this.sendStateless(local, remote, h, [notify(NotifyType.INVALID_MAJOR_VERSION)]);
      }
      return;
    }
    if (h.exchange === ExchangeType.IKE_SA_INIT && !response) {
      this.onInitRequest(local, remote, data, msg.header, msg.payloads, msg.unsupportedCritical);
      return;
    }
    const fromInitiator = (h.flags & HeaderFlag.INITIATOR) !== 0;
    const sa = this.table.bySpiBuf(fromInitiator ? h.spiR : h.spiI);
    if (!sa || sa.dead || sa.initiator === fromInitiator) {
      this.stats.rxUnknownSpi++;
      return;
    }
    // The peer's SPI must match, except in the IKE_SA_INIT response that tells it to us.
    const theirs = fromInitiator ? h.spiI : h.spiR;
    if (!(h.exchange === ExchangeType.IKE_SA_INIT && response) && !theirs.equals(sa.theirSpi)) {
      this.stats.rxUnknownSpi++;
      return;
    }
    if (sa.busy) {
      if (!sa.pending) sa.pending = [];
      if (sa.pending.length >= MAX_PENDING) {
        this.stats.rxDroppedBusy++;
        return;
      }
      sa.pending.push({ local, remote, data, header: msg.header, payloads: msg.payloads, critical: msg.unsupportedCritical });
      return;
    }
    this.dispatch(sa, local, remote, data, msg.header, msg.payloads, msg.unsupportedCritical);
  }

  private dispatch(sa: IkeSa, local: Endpoint, remote: Endpoint, data: Buffer, h: IkeHeader, outer: Payload[], unsupportedCritical: number[]): void {
    const response = (h.flags & HeaderFlag.RESPONSE) !== 0;
    if (response) {
      if (!sa.active || sa.active.mid !== h.messageId || sa.active.exchange !== h.exchange) {
        this.stats.rxUnmatchedResponse++;
        return;
      }
    } else if (h.messageId !== sa.recvMid) {
      if (h.messageId === sa.lastResponseMid && sa.lastResponse && this.authentic(sa, h, outer, data)) {
        this.stats.retransmitsAnswered++;
        this.transmit(sa, sa.lastResponse, local, remote);
      } else {
        this.stats.rxInvalid++;
      }
      return;
    }
    // Plaintext only for the IKE_SA_INIT response; everything else is inside SK.
    let payloads = outer;
    let critical = unsupportedCritical;
    if (h.exchange !== ExchangeType.IKE_SA_INIT) {
      const sk = outer.find((p) => p.type === PayloadType.SK);
      if (!sa.cipher || !sk || sk.type !== PayloadType.SK) {
        this.stats.rxInvalid++;
        return;
      }
      try {
        const plain = sa.cipher.open(data, sk);
        const inner = decodePayloadChain(plain, sk.innerType, 0, plain.length);
        payloads = inner.payloads;
        critical = inner.unsupportedCritical;
      } catch (e) {
        if (e instanceof IntegrityError) this.stats.rxBadIcv++;
        else if (e instanceof ParseError) {
          this.stats.rxInvalid++;
          // An authenticated request whose contents do not parse gets INVALID_SYNTAX (RFC 7296 §2.21.2).
          if (!response) this.answer(sa, h, { payloads: [notify(NotifyType.INVALID_SYNTAX)] });
        } else throw e;
        return;
      }
      // Authenticated: the peer is reachable here (NAT mapping or float to the NAT-T port).
      this.updateEndpoints(sa, local, remote);
    }
    if (!response) {
      sa.requestLocal = local;
      sa.requestRemote = remote;
    }
    sa.lastInbound = this.sched.now();
    this.table.touch(sa);
    if (critical.length > 0) {
      if (!response) {
        this.answer(sa, h, { payloads: [notify(NotifyType.UNSUPPORTED_CRITICAL_PAYLOAD, Buffer.from([critical[0]!]))] });
      } else {
        this.failActive(sa, 'response with unsupported critical payload');
      }
      return;
    }
    if (response) {
      const a = sa.active!;
      sa.active = undefined;
      if (a.tries > 1) this.table.setUnresponsive(sa, false);
      this.clearTimer(sa, Timer.RETRANSMIT);
      this.run(sa, () => this.onResponse(sa, a.task, h, payloads, data));
    } else {
      this.run(sa, () => this.onRequest(sa, h, payloads));
    }
  }

  /**
   * Run an SA operation with the SA held busy from its first statement to the end of its last await,
   * so no other message or task for the SA interleaves with it; then drain what queued up meanwhile.
   */
  private run(sa: IkeSa, op: () => Promise<void> | void): void {
    sa.busyCount++;
    let r: Promise<void> | void;
    try {
      r = op();
    } catch (e) {
      sa.busyCount--;
      this.internalError(sa, e);
      return this.afterOp(sa);
    }
    if (r instanceof Promise) {
      r.catch((e: unknown) => this.internalError(sa, e)).finally(() => {
        sa.busyCount--;
        this.afterOp(sa);
      });
    } else {
      sa.busyCount--;
      this.afterOp(sa);
    }
  }

  private internalError(sa: IkeSa, e: unknown): void {
    this.log.error({ ike: sa.id, err: e instanceof Error ? e.stack : String(e) }, 'internal error, deleting IKE SA');
    if (!sa.dead) this.destroy(sa, 'internal error');
  }

  private afterOp(sa: IkeSa): void {
    if (sa.dead) {
      sa.pending = undefined;
      return;
    }
    while (sa.pending && sa.pending.length > 0 && !sa.busy && !sa.dead) {
      const m = sa.pending.shift()!;
      if (sa.pending.length === 0) sa.pending = undefined;
      this.dispatch(sa, m.local, m.remote, m.data, m.header, m.payloads, m.critical);
    }
    this.kick(sa);
  }

  /**
   * Follow the peer to where an authenticated message came from (RFC 7296 §2.23): when the peer is
   * behind a NAT (its mapping may change) and we are not, or when it floated to our NAT-T port.
   * Installed UDP-encapsulated CHILD_SAs follow the new mapping.
   */
  private updateEndpoints(sa: IkeSa, local: Endpoint, remote: Endpoint): void {
    if (sa.remote.addr === remote.addr && sa.remote.port === remote.port && sa.local.port === local.port && sa.local.addr === local.addr) return;
    const floated = local.port === this.opts.portNatT && sa.local.port !== this.opts.portNatT;
    if (sa.natHere || !(sa.natThere || floated)) return;
    sa.local = { addr: local.addr, port: local.port };
    sa.remote = { addr: remote.addr, port: remote.port };
    for (const c of sa.children) {
      if (c.state !== 'INSTALLED' && c.state !== 'REKEYED') continue;
      this.log.info({ ike: sa.id, child_id: c.id, remote: `${remote.addr}:${remote.port}` }, 'peer moved (NAT mapping changed), updating CHILD SA');
      this.opts.dataplane.update(c.id, sa.local, sa.remote, c.encap).catch((e: Error) => {
        this.stats.dataplaneErrors++;
        this.log.warn({ ike: sa.id, child_id: c.id, err: e.message }, 'dataplane update failed');
      });
    }
  }

  /** Whether a retransmitted request really comes from the peer (its ICV checks out) before we answer it again. */
  private authentic(sa: IkeSa, h: IkeHeader, outer: Payload[], data: Buffer): boolean {
    if (h.exchange === ExchangeType.IKE_SA_INIT) return true;
    const sk = outer.find((p) => p.type === PayloadType.SK);
    if (!sa.cipher || !sk || sk.type !== PayloadType.SK) return false;
    try {
      sa.cipher.open(data, sk);
      return true;
    } catch {
      this.stats.rxBadIcv++;
      return false;
    }
  }

  /** Answer a request (the message ID is the request's). */
  private answer(sa: IkeSa, h: IkeHeader, a: Answer): void {
    sa.recvMid = h.messageId + 1;
    this.sendResponse(sa, h.exchange, h.messageId, a.payloads);
  }

  private sendStateless(local: Endpoint, remote: Endpoint, req: IkeHeader, payloads: Payload[]): void {
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
    this.stats.txPackets++;
    this.opts.send({ local, remote, data });
  }

  // ---------------------------------------------------------------- IKE_SA_INIT (responder)

  private onInitRequest(local: Endpoint, remote: Endpoint, data: Buffer, h: IkeHeader, payloads: Payload[], critical: number[]): void {
    if (h.messageId !== 0 || !(h.flags & HeaderFlag.INITIATOR) || !h.spiR.equals(ZERO_SPI)) {
      this.stats.rxInvalid++;
      return;
    }
    const hoKey = `${h.spiI.toString('hex')}|${remote.addr}|${remote.port}`;
    const existing = this.table.halfOpenByInit(hoKey);
    if (existing) {
      if (existing.initRequestHash === hashOf(data) && existing.lastResponse) {
        this.stats.retransmitsAnswered++;
        this.transmit(existing, existing.lastResponse);
      }
      return;
    }
    if (critical.length > 0) {
      return this.sendStateless(local, remote, h, [notify(NotifyType.UNSUPPORTED_CRITICAL_PAYLOAD, Buffer.from([critical[0]!]))]);
    }
    const sap = find(payloads, PayloadType.SA);
    const ke = find(payloads, PayloadType.KE);
    const nonce = find(payloads, PayloadType.NONCE);
    if (!sap || !ke || !nonce) {
      this.stats.rxInvalid++;
      return this.sendStateless(local, remote, h, [notify(NotifyType.INVALID_SYNTAX)]);
    }
    const candidates = this.index.forInit(local.addr, remote.addr);
    let chosen;
    let conn: ConnectionConfig | undefined;
    for (const c of candidates) {
      chosen = selectIkeProposal(c.proposals, sap.proposals, { peerKe: ke.group });
      if (chosen) {
        conn = c;
        break;
      }
    }
    if (!chosen || !conn) {
      this.stats.noProposal++;
      this.log.info({ peer: remote.addr, offered: sap.proposals.length, configs: candidates.length }, 'no acceptable IKE proposal');
      return this.sendStateless(local, remote, h, [notify(NotifyType.NO_PROPOSAL_CHOSEN)]);
    }
    if (ke.group !== chosen.suite.ke) {
      this.stats.invalidKe++;
      return this.sendStateless(local, remote, h, [notify(NotifyType.INVALID_KE_PAYLOAD, u16(chosen.suite.ke))]);
    }
    if (!this.admit()) {
      this.stats.initRefusedFull++;
      return;
    }
    let dh;
    let secret: Buffer;
    try {
      dh = createKeyExchange(chosen.suite.ke);
      secret = dh.computeSecret(ke.data);
    } catch (e) {
      if (!(e instanceof CryptoError)) throw e;
      this.stats.rxInvalid++;
      return this.sendStateless(local, remote, h, [notify(NotifyType.INVALID_SYNTAX)]);
    }
    const sa = new IkeSa(this.nextSaId++, false, h.spiI, { ...local }, { ...remote }, this.sched.now(), this.gauges);
    sa.spiR = this.newSpi();
    sa.conn = conn;
    sa.suite = chosen.suite;
    sa.prf = new Prf(chosen.suite.prf);
    sa.ni = nonce.data;
    sa.nr = this.opts.random(NONCE_LEN);
    const { keys } = deriveIkeKeys(chosen.suite, secret, sa.ni, sa.nr, sa.spiI, sa.spiR);
    sa.keys = keys;
    sa.state = 'CONNECTING';
    this.applyNatd(sa, payloads, ZERO_SPI);
    sa.peerFragmentation = findNotify(payloads, NotifyType.IKEV2_FRAGMENTATION_SUPPORTED) !== undefined;
    if (conn.encap) sa.encapForced = true;
    sa.initRequest = data;
    sa.initRequestHash = hashOf(data);
    sa.halfOpenKey = hoKey;
    this.table.add(sa, hoKey);
    const out: Payload[] = [
      { type: PayloadType.SA, critical: false, proposals: [ikeChosenToWire(chosen)] },
      { type: PayloadType.KE, critical: false, group: chosen.suite.ke, data: dh.publicValue },
      { type: PayloadType.NONCE, critical: false, data: sa.nr },
      ...this.natdPayloads(sa),
    ];
    out.push(notify(NotifyType.CHILDLESS_IKEV2_SUPPORTED));
    const resp = encodeMessage(this.header(sa, ExchangeType.IKE_SA_INIT, 0, true), out);
    sa.initResponse = resp;
    sa.recvMid = 1;
    sa.lastResponseMid = 0;
    sa.lastResponse = [resp];
    sa.cipher = new IkeCipher(chosen.suite, keys, false, this.opts.random);
    this.transmit(sa, [resp]);
    this.setTimer(sa, Timer.HALF_OPEN, this.sched.now() + this.opts.halfOpenTimeout * 1000);
  }

  /** Room for a new IKE SA: evict what is cheapest to lose, or refuse. */
  private admit(): boolean {
    for (;;) {
      const r = this.table.admission();
      if (r === 'ok') return true;
      if (r === 'full') return false;
      this.stats.evicted++;
      this.log.info({ ike: r.evict.id, peer: r.evict.remote.addr, reason: r.reason }, 'evicting IKE SA to make room');
      this.destroy(r.evict, `evicted (${r.reason})`);
    }
  }

  private natdPayloads(sa: IkeSa): Payload[] {
    const spiR = sa.initiator ? ZERO_SPI : sa.spiR;
    // With encap forced we pretend to be behind a NAT (as strongSwan's encap=yes), in either role, so
    // that the peer too uses UDP encapsulation.
    const src = sa.encapForced ? this.opts.random(20) : natdHash(sa.spiI, spiR, sa.local.addr, sa.local.port);
    return [
      notify(NotifyType.NAT_DETECTION_SOURCE_IP, src),
      notify(NotifyType.NAT_DETECTION_DESTINATION_IP, natdHash(sa.spiI, spiR, sa.remote.addr, sa.remote.port)),
    ];
  }

  /** Compare the peer's NAT detection hashes with what the addresses we see give (RFC 7296 §2.23). */
  private applyNatd(sa: IkeSa, payloads: Payload[], spiR: Buffer): void {
    const srcs = findAll(payloads, PayloadType.NOTIFY).filter((n) => n.notifyType === NotifyType.NAT_DETECTION_SOURCE_IP);
    const dst = findNotify(payloads, NotifyType.NAT_DETECTION_DESTINATION_IP);
    if (srcs.length === 0 || !dst) return;
    const theirSrc = natdHash(sa.spiI, spiR, sa.remote.addr, sa.remote.port);
    sa.natThere = !srcs.some((n) => n.data.equals(theirSrc));
    sa.natHere = !dst.data.equals(natdHash(sa.spiI, spiR, sa.local.addr, sa.local.port));
  }

  private newSpi(): Buffer {
    for (;;) {
      const spi = this.opts.random(8);
      if (!spi.equals(ZERO_SPI) && !this.table.bySpiBuf(spi)) return spi;
    }
  }

  // ---------------------------------------------------------------- requests (responder side)

  private async onRequest(sa: IkeSa, h: IkeHeader, payloads: Payload[]): Promise<void> {
    switch (h.exchange) {
      case ExchangeType.IKE_AUTH:
        if (sa.initiator || sa.state !== 'CONNECTING' || h.messageId !== 1) return this.answer(sa, h, { payloads: [notify(NotifyType.INVALID_SYNTAX)] });
        return this.onAuthRequest(sa, h, payloads);
      case ExchangeType.CREATE_CHILD_SA:
        if (sa.state !== 'ESTABLISHED') return this.answer(sa, h, { payloads: [notify(NotifyType.TEMPORARY_FAILURE)] });
        return this.onCreateChildRequest(sa, h, payloads);
      case ExchangeType.INFORMATIONAL:
        return this.onInformationalRequest(sa, h, payloads);
      default:
        this.stats.rxInvalid++;
        // Unknown exchange types in an authenticated request: tell the peer (RFC 7296 §2.21.2).
        return this.answer(sa, h, { payloads: [notify(NotifyType.INVALID_SYNTAX)] });
    }
  }

  private async onAuthRequest(sa: IkeSa, h: IkeHeader, payloads: Payload[]): Promise<void> {
    const idi = find(payloads, PayloadType.IDi);
    const auth = find(payloads, PayloadType.AUTH);
    if (!idi || !auth) {
      this.answer(sa, h, { payloads: [notify(NotifyType.INVALID_SYNTAX)] });
      return this.destroy(sa, 'IKE_AUTH without IDi/AUTH');
    }
    const idr = find(payloads, PayloadType.IDr);
    const peerIdent: Identity = { type: idi.idType, data: idi.data };
    const wanted: Identity | undefined = idr ? { type: idr.idType, data: idr.data } : undefined;
    const peerId = safeIdString(peerIdent);
    const conn = this.index.forAuth(sa.local.addr, sa.remote.addr, peerIdent, wanted);
    if (!conn) {
      this.log.info({ ike: sa.id, peer: sa.remote.addr, id: peerId }, 'no connection matches peer identity');
      return this.authFailed(sa, h, 'no matching connection');
    }
    sa.conn = conn;
    sa.remoteId = peerId;
    sa.localId = idOr(conn.local.id, sa.local.addr);
    if (conn.remote.auth !== 'psk' || auth.method !== AuthMethod.SHARED_KEY_MIC) {
      return this.authFailed(sa, h, `unsupported auth method ${auth.method}`);
    }
    const psk = this.index.psk(sa.localId, sa.remoteId);
    if (!psk) return this.authFailed(sa, h, 'no PSK for these identities');
    const prf = sa.prf!;
    const keys = sa.keys!;
    if (!verifyPskAuth(prf, psk, signedOctets(prf, sa.initRequest!, sa.nr, keys.skPi, idBody(idi)), auth.data)) {
      return this.authFailed(sa, h, 'PSK authentication failed');
    }
    // Authenticated.
    const ourId = this.idPayload(PayloadType.IDr, sa.localId);
    const ourAuth = pskAuth(prf, psk, signedOctets(prf, sa.initResponse!, sa.ni, keys.skPr, idBody(ourId)));
    this.established(sa);
    const out: Payload[] = [ourId, { type: PayloadType.AUTH, critical: false, method: AuthMethod.SHARED_KEY_MIC, data: ourAuth }];
    const sap = find(payloads, PayloadType.SA);
    const tsi = find(payloads, PayloadType.TSi);
    const tsr = find(payloads, PayloadType.TSr);
    if (sap && tsi && tsr) {
      const childOut = await this.respondChild(sa, payloads, sap, tsi.selectors.map(selFromWire), tsr.selectors.map(selFromWire), sa.ni, sa.nr, undefined, true);
      out.push(...childOut.payloads);
    }
    if (sa.dead) return;
    this.answer(sa, h, { payloads: out });
    sa.initRequest = undefined;
    sa.initResponse = undefined;
    this.startDpd(sa);
    // Only after our IKE_AUTH response is out may anything else (a DELETE of a duplicate) be sent.
    if (findNotify(payloads, NotifyType.INITIAL_CONTACT)) this.initialContact(sa);
    else this.applyUnique(sa);
  }

  private authFailed(sa: IkeSa, h: IkeHeader, reason: string): void {
    this.stats.authFailed++;
    this.log.info({ ike: sa.id, peer: sa.remote.addr, conn: sa.conn?.name, reason }, 'authentication failed');
    this.answer(sa, h, { payloads: [notify(NotifyType.AUTHENTICATION_FAILED)] });
    this.destroy(sa, `authentication failed: ${reason}`);
  }

  private established(sa: IkeSa): void {
    sa.state = 'ESTABLISHED';
    sa.establishedAt = this.sched.now();
    this.clearTimer(sa, Timer.HALF_OPEN);
    this.table.established(sa, sa.halfOpenKey);
    sa.halfOpenKey = undefined;
    this.stats.ikeEstablished++;
    this.scheduleIkeRekey(sa);
    if (sa.conn) {
      const st = this.keepUp.get(sa.conn.name);
      if (st) st.tries = 0;
    }
    this.log.info(
      { ike: sa.id, peer: sa.remote.addr, conn: sa.conn?.name, local_id: sa.localId, remote_id: sa.remoteId, proposal: formatIkeSuite(sa.suite!) },
      'IKE SA established',
    );
    this.emit({ type: 'ike-up', sa });
    // An initiator's waiters hear back once the CHILD_SA of IKE_AUTH is settled too.
    if (!sa.initiator || !sa.authChild) this.resolveWaiters(sa);
  }

  private resolveWaiters(sa: IkeSa): void {
    for (const w of this.waiters.get(sa.id) ?? []) w.resolve(sa);
    this.waiters.delete(sa.id);
  }

  /** Events go to the daemon (monitor, metrics); a failing listener must not disturb the SA. */
  private emit(e: EngineEvent): void {
    try {
      this.opts.onEvent?.(e);
    } catch (err) {
      this.log.error({ ike: e.sa.id, event: e.type, err: err instanceof Error ? err.stack : String(err) }, 'event listener failed');
    }
  }

  /** Rekey an IKE SA (RFC 7296 §2.18); its CHILD_SAs move to the new one. */
  rekeyIke(sa: IkeSa): boolean {
    if (sa.dead || sa.state !== 'ESTABLISHED') return false;
    if (!sa.queue.some((t) => t.kind === 'ike-rekey') && sa.active?.task.kind !== 'ike-rekey') this.queueTask(sa, { kind: 'ike-rekey' });
    return true;
  }

  /** INITIAL_CONTACT: the peer rebooted; its older SAs with the same identities are gone (RFC 7296 §2.4). */
  private initialContact(sa: IkeSa): void {
    for (const other of [...this.table.peers(sa.localId, sa.remoteId)]) {
      if (other !== sa && !other.dead) this.destroy(other, 'replaced (INITIAL_CONTACT)');
    }
  }

  /** `unique` policy for a newly authenticated SA. */
  private applyUnique(sa: IkeSa): void {
    const policy = sa.conn?.unique ?? 'no';
    if (policy === 'no' || policy === 'never') return;
    for (const other of [...this.table.peers(sa.localId, sa.remoteId)]) {
      if (other === sa || other.dead) continue;
      if (policy === 'replace') this.deleteIke(other);
      else if (policy === 'keep') {
        this.log.info({ ike: sa.id, keep: other.id }, 'unique=keep: deleting the new duplicate');
        this.queueTask(sa, { kind: 'ike-delete' });
        return;
      }
    }
  }

  private idPayload(type: typeof PayloadType.IDi | typeof PayloadType.IDr, id: string): IdPayload {
    const ident = parseIdentity(id);
    return { type, critical: false, idType: ident.type, data: ident.data };
  }

  // ---------------------------------------------------------------- CHILD_SA creation (responder)

  /** The selectors a child config allows on one side, `dynamic` resolved to that side's IKE address. */
  private tsAllowed(cfg: ChildConfig, side: 'local' | 'remote', sa: IkeSa): Sel[] {
    let parsed = this.tsCache.get(cfg);
    if (!parsed) {
      const conv = (specs: string[]): (Sel | 'dynamic')[] =>
        (specs.length ? specs : ['dynamic']).map((x) => {
          const t = parseTrafficSelector(x);
          return t === 'dynamic' ? t : selFromSpec(t);
        });
      parsed = { local: conv(cfg.localTs), remote: conv(cfg.remoteTs) };
      this.tsCache.set(cfg, parsed);
    }
    const host = side === 'local' ? sa.local.addr : sa.remote.addr;
    return parsed[side].map((t) => (t === 'dynamic' ? selForHost(host) : t));
  }

  /** Parsed traffic selectors per child config (configs are immutable; a reload brings new objects). */
  private readonly tsCache = new WeakMap<ChildConfig, { local: (Sel | 'dynamic')[]; remote: (Sel | 'dynamic')[] }>();

  /**
   * Create the CHILD_SA a peer asks for (IKE_AUTH or CREATE_CHILD_SA): pick the child config by traffic
   * selectors, the ESP proposal, allocate our SPI, derive keys and install. Returns the payloads of the
   * answer (SA, TSi, TSr, …) or an error notify.
   */
  private async respondChild(
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
  ): Promise<{ payloads: Payload[]; ke?: KePayload }> {
    const conn = sa.conn!;
    const tsiP = tsiIn.filter((s): s is Sel => s !== undefined);
    const tsrP = tsrIn.filter((s): s is Sel => s !== undefined);
    let cfg: ChildConfig | undefined;
    let tsi: Sel[] = [];
    let tsr: Sel[] = [];
    const candidates = rekey ? [rekey.cfg] : conn.children;
    // Like strongSwan's child config selection: a config that takes the proposed selectors as they
    // are beats one that narrows them; among those the most specific config wins.
    let best = -1n;
    for (const c of candidates) {
      const allowedL = this.tsAllowed(c, 'local', sa);
      const allowedR = this.tsAllowed(c, 'remote', sa);
      const r = narrow(tsrP, allowedL);
      const i = narrow(tsiP, allowedR);
      if (!r.length || !i.length) continue;
      const exact = isSubset(tsrP, r) && isSubset(tsiP, i);
      const size = [...allowedL, ...allowedR].reduce((n, s) => n + (s.end - s.start + 1n), 0n);
      const score = (exact ? 1n << 200n : 0n) + ((1n << 199n) - size);
      if (score > best) {
        best = score;
        cfg = c;
        tsi = i;
        tsr = r;
      }
    }
    if (!cfg) {
      this.stats.tsUnacceptable++;
      this.stats.childFailed++;
      this.log.info({ ike: sa.id, conn: conn.name, tsi: tsiP.map(selToString), tsr: tsrP.map(selToString) }, 'traffic selectors unacceptable');
      return { payloads: [notify(NotifyType.TS_UNACCEPTABLE)] };
    }
    const esp = selectEspProposal(cfg.espProposals, sap.proposals, this.espSupported, { skipKe: inAuth, peerKe: kePayload?.group });
    if (!esp) {
      this.stats.noProposal++;
      this.stats.childFailed++;
      this.log.info({ ike: sa.id, conn: conn.name, child: cfg.name }, 'no acceptable ESP proposal');
      return { payloads: [notify(NotifyType.NO_PROPOSAL_CHOSEN)] };
    }
    // PFS only when the chosen proposal has a group (an offer may include NONE): the key exchange
    // is computed after the choice, so a peer cannot make us run a group we would refuse.
    let pfsSecret: Buffer | undefined;
    let ourKe: KePayload | undefined;
    if (esp.ke !== 0) {
      if (!kePayload || kePayload.group !== esp.ke) {
        this.stats.invalidKe++;
        return { payloads: [notify(NotifyType.INVALID_KE_PAYLOAD, u16(esp.ke))] };
      }
      try {
        const dh = createKeyExchange(esp.ke);
        pfsSecret = dh.computeSecret(kePayload.data);
        ourKe = { type: PayloadType.KE, critical: false, group: esp.ke, data: dh.publicValue };
      } catch (e) {
        if (!(e instanceof CryptoError)) throw e;
        this.stats.rxInvalid++;
        return { payloads: [notify(NotifyType.INVALID_SYNTAX)] };
      }
    }
    const transport = findNotify(payloads, NotifyType.USE_TRANSPORT_MODE) !== undefined && cfg.mode === 'transport';
    const { child, ok } = await this.createChild(sa, cfg, esp, transport, 0, tsr, tsi, rekey, ni, nr, pfsSecret, false);
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

  /**
   * A negotiated CHILD_SA: derive its keys (RFC 7296 §2.17) and install it. Keys flow from the
   * exchange's initiator to its responder, so which half is inbound depends on who started it.
   */
  private async createChild(
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
  ): Promise<{ child: ChildSa; ok: boolean }> {
    const child = new ChildSa(this.nextChildId++, cfg);
    child.mode = transport ? 'transport' : 'tunnel';
    child.proposal = esp;
    child.spiIn = spiIn;
    child.spiOut = esp.spi.readUInt32BE(0);
    child.localTs = localTs;
    child.remoteTs = remoteTs;
    child.replaces = rekey?.id;
    const k = deriveChildKeys(sa.prf!.alg, sa.keys!.skD, esp.encr, esp.integ, ni, nr, pfsSecret);
    const ok = weInitiated
      ? await this.installChild(sa, child, k.encR, k.integR, k.encI, k.integI)
      : await this.installChild(sa, child, k.encI, k.integI, k.encR, k.integR);
    return { child, ok };
  }

  /** Allocate our SPI (if not yet), install both directions; on failure nothing is left installed. */
  private async installChild(sa: IkeSa, child: ChildSa, encIn: Buffer, integIn: Buffer, encOut: Buffer, integOut: Buffer): Promise<boolean> {
    const dp = this.opts.dataplane;
    const esp = child.proposal!;
    child.state = 'INSTALLING';
    try {
      if (!child.spiIn) child.spiIn = await dp.allocateSpi();
    } catch (e) {
      this.stats.dataplaneErrors++;
      this.stats.childFailed++;
      this.log.warn({ ike: sa.id, err: (e as Error).message }, 'SPI allocation failed');
      return false;
    }
    if (sa.dead) {
      dp.releaseSpi(child.spiIn);
      return false;
    }
    child.encap = sa.natHere || sa.natThere || sa.encapForced;
    const alg = { encrId: esp.encr.id, encrKeyBits: esp.encr.keyBits, integId: esp.integ?.id ?? 0, esn: esp.esn };
    const common = { udpEncap: child.encap, alg, replayWindow: child.cfg.replayWindow, mode: child.mode };
    const inbound: SaParams = { ...common, spi: child.spiIn, inbound: true, src: { ...sa.remote }, dst: { ...sa.local }, encKey: encIn, integKey: integIn };
    const outbound: SaParams = { ...common, spi: child.spiOut, inbound: false, src: { ...sa.local }, dst: { ...sa.remote }, encKey: encOut, integKey: integOut };
    const inst: ChildInstall = {
      childId: child.id,
      ikeSaId: sa.id,
      connection: sa.conn!.name,
      child: child.name,
      inbound,
      outbound,
      localTs: child.localTs.map(selToRange),
      remoteTs: child.remoteTs.map(selToRange),
      vppMode: child.cfg.vppMode,
      vppInterface: child.cfg.vppInterface,
      vppTable: child.cfg.vppTable,
      vppRoutes: child.cfg.vppRoutes,
      replaces: child.replaces,
    };
    try {
      child.vpp = await dp.install(inst);
    } catch (e) {
      this.stats.dataplaneErrors++;
      this.stats.childFailed++;
      dp.releaseSpi(child.spiIn);
      child.state = 'FAILED';
      this.log.warn({ ike: sa.id, child: child.name, err: (e as Error).message }, 'CHILD_SA install failed');
      return false;
    }
    if (sa.dead) {
      await dp.remove(child.id).catch(() => {});
      return false;
    }
    child.state = 'INSTALLED';
    child.installedAt = this.sched.now();
    const cc = child.cfg;
    if (cc.rekeyTime > 0) child.rekeyAt = child.installedAt + (cc.rekeyTime - this.jitter(cc.randTime)) * 1000;
    if (cc.lifeTime > 0) child.expireAt = child.installedAt + cc.lifeTime * 1000;
    sa.children.push(child);
    this.gauges.childSas++;
    this.armChildTimer(sa);
    this.childrenById.set(child.id, { sa, child });
    this.stats.childEstablished++;
    this.log.info(
      {
        ike: sa.id,
        conn: sa.conn!.name,
        child: child.name,
        child_id: child.id,
        spi_in: hex8(child.spiIn),
        spi_out: hex8(child.spiOut),
        proposal: formatEspProposal(esp),
        local_ts: child.localTs.map(selToString),
        remote_ts: child.remoteTs.map(selToString),
      },
      'CHILD SA installed',
    );
    this.emit({ type: 'child-up', sa, child });
    return true;
  }

  private async onCreateChildRequest(sa: IkeSa, h: IkeHeader, payloads: Payload[]): Promise<void> {
    const sap = find(payloads, PayloadType.SA);
    const nonce = find(payloads, PayloadType.NONCE);
    if (!sap || !nonce) return this.answer(sa, h, { payloads: [notify(NotifyType.INVALID_SYNTAX)] });
    if (sap.proposals.some((p) => p.protocol === ProtocolId.IKE)) return this.onIkeRekeyRequest(sa, h, payloads, sap, nonce.data);
    let rekey: ChildSa | undefined;
    const rk = findNotify(payloads, NotifyType.REKEY_SA);
    if (rk) {
      const spi = rk.spi.length === 4 ? rk.spi.readUInt32BE(0) : -1;
      rekey = sa.children.find((c) => c.spiOut === spi && (c.state === 'INSTALLED' || c.state === 'REKEYING'));
      if (!rekey) return this.answer(sa, h, { payloads: [notify(NotifyType.CHILD_SA_NOT_FOUND, EMPTY, ProtocolId.ESP, rk.spi)] });
      // We are rekeying it ourselves: let the peer retry later (RFC 7296 §2.25).
      if (rekey.state === 'REKEYING') return this.answer(sa, h, { payloads: [notify(NotifyType.TEMPORARY_FAILURE)] });
    }
    const tsi = find(payloads, PayloadType.TSi);
    const tsr = find(payloads, PayloadType.TSr);
    if (!tsi || !tsr) return this.answer(sa, h, { payloads: [notify(NotifyType.INVALID_SYNTAX)] });
    const nr = this.opts.random(NONCE_LEN);
    if (rekey) rekey.state = 'REKEYING';
    const r = await this.respondChild(sa, payloads, sap, tsi.selectors.map(selFromWire), tsr.selectors.map(selFromWire), nonce.data, nr, rekey, false, find(payloads, PayloadType.KE));
    if (sa.dead) return;
    if (findErrorNotify(r.payloads)) {
      if (rekey && rekey.state === 'REKEYING') rekey.state = 'INSTALLED';
      return this.answer(sa, h, { payloads: r.payloads });
    }
    const [sa0, ...rest] = r.payloads;
    const resp: Payload[] = [sa0!, { type: PayloadType.NONCE, critical: false, data: nr }];
    if (r.ke) resp.push(r.ke);
    resp.push(...rest);
    this.answer(sa, h, { payloads: resp });
    if (rekey) {
      rekey.state = 'REKEYED';
      this.stats.childRekeyed++;
      const fresh = sa.children[sa.children.length - 1]!;
      this.emit({ type: 'child-rekeyed', sa, old: rekey, child: fresh });
      // The initiator of the rekey deletes the old SA; if it does not within a while, we do.
      this.setTimer(sa, Timer.DELETE_OLD, this.sched.now() + 30_000);
    }
  }

  // ---------------------------------------------------------------- INFORMATIONAL (responder)

  private async onInformationalRequest(sa: IkeSa, h: IkeHeader, payloads: Payload[]): Promise<void> {
    const dels = findAll(payloads, PayloadType.DELETE);
    if (dels.some((d) => d.protocol === ProtocolId.IKE)) {
      this.answer(sa, h, { payloads: [] });
      this.log.info({ ike: sa.id, peer: sa.remote.addr, conn: sa.conn?.name }, 'peer deleted IKE SA');
      const name = sa.conn?.name;
      const restart = sa.children.some((c) => c.cfg.closeAction === 'start');
      this.destroy(sa, 'deleted by peer');
      if (restart && name) this.scheduleRetry(name);
      return;
    }
    const ours: Buffer[] = [];
    const gone: ChildSa[] = [];
    for (const d of dels) {
      if (d.protocol !== ProtocolId.ESP) continue;
      for (const spiBuf of d.spis) {
        const spi = spiBuf.readUInt32BE(0);
        const child = sa.children.find((c) => c.spiOut === spi);
        if (!child) continue;
        // Both sides deleting it at once (RFC 7296 §1.4.1): the response must not name it again.
        const ourDeleteInFlight = sa.active?.task.kind === 'child-delete' && sa.active.task.child === child;
        if (!ourDeleteInFlight) ours.push(u32(child.spiIn));
        gone.push(child);
      }
    }
    this.answer(sa, h, { payloads: ours.length ? [deletePayload(ProtocolId.ESP, ours)] : [] });
    for (const c of gone) await this.removeChild(sa, c, 'deleted by peer');
  }

  private async removeChild(sa: IkeSa, child: ChildSa, reason: string): Promise<void> {
    const i = sa.children.indexOf(child);
    if (i < 0) return;
    sa.children.splice(i, 1);
    this.gauges.childSas--;
    this.childrenById.delete(child.id);
    const wasRekeyed = child.state === 'REKEYED';
    child.state = 'DELETED';
    this.stats.childDeleted++;
    try {
      await this.opts.dataplane.remove(child.id);
    } catch (e) {
      this.stats.dataplaneErrors++;
      this.log.warn({ ike: sa.id, child: child.id, err: (e as Error).message }, 'dataplane remove failed');
    }
    this.log.info({ ike: sa.id, conn: sa.conn?.name, child: child.name, child_id: child.id, spi_in: hex8(child.spiIn), reason }, 'CHILD SA deleted');
    this.emit({ type: 'child-down', sa, child, reason });
    if (!wasRekeyed && reason === 'deleted by peer' && child.cfg.closeAction === 'start' && !sa.dead) {
      this.queueTask(sa, { kind: 'child-create', child: child.cfg });
    }
  }

  // ---------------------------------------------------------------- initiator side

  /**
   * Bring up a connection (and one of its children, or the first one). Resolves when the IKE SA is
   * established, rejects when it fails. If an IKE SA for the connection exists, only the child is created.
   */
  initiate(connName: string, childName?: string): Promise<IkeSa> {
    const conn = this.index.get(connName);
    if (!conn) return Promise.reject(new Error(`no connection named '${connName}'`));
    const child = childName === undefined ? conn.children[0] : conn.children.find((c) => c.name === childName);
    if (childName !== undefined && !child) return Promise.reject(new Error(`connection '${connName}' has no child '${childName}'`));
    for (const sa of this.table.ofConnection(connName)) {
      if (sa.state === 'CONNECTING' && sa.initiator && !sa.dead && sa.conn === conn) {
        // Already on its way: wait for it (a child other than the one in IKE_AUTH follows after).
        if (child && child !== sa.authChild && !sa.queue.some((t) => t.kind === 'child-create' && t.child === child)) {
          sa.queue.push({ kind: 'child-create', child });
        }
        return new Promise<IkeSa>((resolve, reject) => {
          const w = this.waiters.get(sa.id);
          if (w) w.push({ resolve, reject });
          else this.waiters.set(sa.id, [{ resolve, reject }]);
        });
      }
      if (sa.state === 'ESTABLISHED' && !sa.dead && sa.conn === conn) {
        if (child) {
          if (sa.children.some((c) => c.cfg === child && c.state === 'INSTALLED')) return Promise.resolve(sa);
          this.queueTask(sa, { kind: 'child-create', child });
        }
        return Promise.resolve(sa);
      }
    }
    const remoteAddr = conn.remoteAddrs.find((a) => ipFamily(a) !== 0);
    if (!remoteAddr) return Promise.reject(new Error(`connection '${connName}' has no concrete remote address to initiate to`));
    const fam = ipFamily(remoteAddr);
    const localAddr = conn.localAddrs.find((a) => ipFamily(a) === fam) ?? this.opts.localAddressFor?.(remoteAddr) ?? (fam === 4 ? '0.0.0.0' : '::');
    if (!this.admit()) {
      this.stats.initRefusedFull++;
      return Promise.reject(new Error('IKE SA table is full'));
    }
    const sa = new IkeSa(this.nextSaId++, true, this.newSpi(), { addr: localAddr, port: conn.localPort }, { addr: remoteAddr, port: conn.remotePort }, this.sched.now(), this.gauges);
    sa.conn = conn;
    sa.localId = idOr(conn.local.id, localAddr);
    sa.remoteId = idOr(conn.remote.id, remoteAddr);
    sa.authChild = child;
    // The other children come up with CREATE_CHILD_SA once the IKE SA is established.
    if (childName === undefined) {
      for (const c of conn.children) if (c !== child) sa.queue.push({ kind: 'child-create', child: c });
    }
    sa.encapForced = conn.encap;
    sa.state = 'CONNECTING';
    this.table.add(sa);
    const p = new Promise<IkeSa>((resolve, reject) => {
      this.waiters.set(sa.id, [{ resolve, reject }]);
    });
    this.log.info({ ike: sa.id, conn: conn.name, peer: remoteAddr }, 'initiating IKE SA');
    this.sendInit(sa);
    return p;
  }

  private sendInit(sa: IkeSa, group?: number): void {
    const conn = sa.conn!;
    const ke = group ?? conn.proposals[0]!.ke[0]!;
    sa.ke = createKeyExchange(ke);
    if (sa.ni.length === 0) sa.ni = this.opts.random(NONCE_LEN);
    const payloads: Payload[] = [];
    if (sa.cookie) payloads.push(notify(NotifyType.COOKIE, sa.cookie));
    payloads.push(
      { type: PayloadType.SA, critical: false, proposals: toWireProposals(conn.proposals, EMPTY) },
      { type: PayloadType.KE, critical: false, group: ke, data: sa.ke.publicValue },
      { type: PayloadType.NONCE, critical: false, data: sa.ni },
      ...this.natdPayloads(sa),
    );
    if (!sa.authChild) payloads.push(notify(NotifyType.CHILDLESS_IKEV2_SUPPORTED));
    sa.sendMid = 0;
    const h = this.header(sa, ExchangeType.IKE_SA_INIT, 0, false);
    const msg = encodeMessage(h, payloads);
    sa.initRequest = msg;
    sa.sendMid = 1;
    sa.active = { mid: 0, exchange: ExchangeType.IKE_SA_INIT, packets: [msg], tries: 1, task: { kind: 'ike-init' } };
    this.transmit(sa, [msg]);
    this.setTimer(sa, Timer.RETRANSMIT, this.sched.now() + this.retransmitDelay(0));
  }

  private async onResponse(sa: IkeSa, task: Task, h: IkeHeader, payloads: Payload[], data: Buffer): Promise<void> {
    switch (task.kind) {
      case 'ike-init':
        return this.onInitResponse(sa, h, payloads, data);
      case 'ike-auth':
        return this.onAuthResponse(sa, task, payloads);
      case 'child-create':
        return this.onCreateChildResponse(sa, task, payloads);
      case 'child-delete': {
        await this.removeChild(sa, task.child, 'deleted');
        return;
      }
      case 'delete-spi':
        if (task.release) this.opts.dataplane.releaseSpi(task.spi);
        return;
      case 'ike-delete':
        this.destroy(sa, 'deleted');
        return;
      case 'dpd':
        return;
      case 'ike-rekey':
        return this.onIkeRekeyResponse(sa, task, payloads);
    }
  }

  private failActive(sa: IkeSa, reason: string): void {
    this.destroy(sa, reason);
  }

  private onInitResponse(sa: IkeSa, h: IkeHeader, payloads: Payload[], data: Buffer): void {
    const cookie = findNotify(payloads, NotifyType.COOKIE);
    if (cookie && !sa.cookie) {
      sa.cookie = cookie.data;
      return this.sendInit(sa, sa.ke?.group);
    }
    const invalidKe = findNotify(payloads, NotifyType.INVALID_KE_PAYLOAD);
    if (invalidKe) {
      const group = invalidKe.data.length === 2 ? invalidKe.data.readUInt16BE(0) : -1;
      const offered = sa.conn!.proposals.some((p) => p.ke.includes(group));
      if (!sa.keRetried && offered && group !== sa.ke?.group) {
        this.stats.invalidKe++;
        sa.keRetried = true;
        this.log.info({ ike: sa.id, group }, 'peer asked for another key exchange group, retrying');
        return this.sendInit(sa, group);
      }
      return this.initFailed(sa, `INVALID_KE_PAYLOAD (group ${group})`);
    }
    const err = findErrorNotify(payloads);
    if (err) return this.initFailed(sa, notifyName(err.notifyType));
    const sap = find(payloads, PayloadType.SA);
    const ke = find(payloads, PayloadType.KE);
    const nonce = find(payloads, PayloadType.NONCE);
    if (!sap || !ke || !nonce || sap.proposals.length !== 1 || h.spiR.equals(ZERO_SPI)) return this.initFailed(sa, 'invalid IKE_SA_INIT response');
    const chosen = checkIkeResponse(sa.conn!.proposals, sap.proposals);
    if (!chosen || chosen.suite.ke !== ke.group || ke.group !== sa.ke!.group) return this.initFailed(sa, 'peer chose a proposal we did not offer');
    let secret: Buffer;
    try {
      secret = sa.ke!.computeSecret(ke.data);
    } catch (e) {
      if (!(e instanceof CryptoError)) throw e;
      return this.initFailed(sa, `bad KE payload: ${e.message}`);
    }
    sa.spiR = Buffer.from(h.spiR);
    sa.nr = nonce.data;
    sa.suite = chosen.suite;
    sa.prf = new Prf(chosen.suite.prf);
    sa.keys = deriveIkeKeys(chosen.suite, secret, sa.ni, sa.nr, sa.spiI, sa.spiR).keys;
    sa.cipher = new IkeCipher(chosen.suite, sa.keys, true, this.opts.random);
    sa.ke = undefined;
    sa.initResponse = data;
    this.applyNatd(sa, payloads, sa.spiR);
    sa.peerFragmentation = findNotify(payloads, NotifyType.IKEV2_FRAGMENTATION_SUPPORTED) !== undefined;
    // Float to the NAT-T port when a NAT is in the path or encapsulation is forced (RFC 7296 §2.23).
    if ((sa.natHere || sa.natThere || sa.encapForced) && sa.local.port === this.opts.port) {
      sa.local = { addr: sa.local.addr, port: this.opts.portNatT };
      if (sa.remote.port === IKE_PORT) sa.remote = { addr: sa.remote.addr, port: 4500 };
    }
    this.sendAuth(sa);
  }

  private initFailed(sa: IkeSa, reason: string): void {
    this.stats.ikeFailed++;
    this.log.info({ ike: sa.id, conn: sa.conn?.name, peer: sa.remote.addr, reason }, 'IKE_SA_INIT failed');
    const name = sa.conn?.name;
    this.destroy(sa, reason);
    if (name && this.keepUp.has(name)) this.scheduleRetry(name);
  }

  private sendAuth(sa: IkeSa): Promise<void> | void {
    const conn = sa.conn!;
    const prf = sa.prf!;
    const keys = sa.keys!;
    const psk = this.index.psk(sa.localId, sa.remoteId);
    if (!psk || conn.local.auth !== 'psk') return this.initFailed(sa, 'no PSK for our identity');
    const idi = this.idPayload(PayloadType.IDi, sa.localId);
    const auth = pskAuth(prf, psk, signedOctets(prf, sa.initRequest!, sa.nr, keys.skPi, idBody(idi)));
    const payloads: Payload[] = [idi];
    if (this.table.peers(sa.localId, sa.remoteId).size === 0) {
      payloads.push(notify(NotifyType.INITIAL_CONTACT));
    }
    if (conn.remote.id && conn.remote.id !== '%any' && !conn.remote.id.includes('*')) payloads.push(this.idPayload(PayloadType.IDr, conn.remote.id));
    payloads.push({ type: PayloadType.AUTH, critical: false, method: AuthMethod.SHARED_KEY_MIC, data: auth });
    const child = sa.authChild;
    if (child) {
      // The CHILD_SA's SPI is allocated before the request; the SA is installed when the answer comes.
      return this.prepareChildRequest(sa, child, payloads, undefined, true);
    }
    this.sendRequest(sa, ExchangeType.IKE_AUTH, payloads, { kind: 'ike-auth' });
  }

  /**
   * Add SA/TSi/TSr for a new CHILD_SA to `payloads` and send the request (IKE_AUTH or CREATE_CHILD_SA).
   */
  private async prepareChildRequest(sa: IkeSa, cfg: ChildConfig, payloads: Payload[], rekey: ChildSa | undefined, inAuth: boolean, group?: number): Promise<void> {
    let spi: number;
    try {
      spi = await this.opts.dataplane.allocateSpi();
    } catch (e) {
      this.stats.dataplaneErrors++;
      this.log.warn({ ike: sa.id, err: (e as Error).message }, 'SPI allocation failed');
      if (inAuth && !sa.dead) this.sendRequest(sa, ExchangeType.IKE_AUTH, payloads, { kind: 'ike-auth' });
      if (rekey) this.rekeyFailed(sa, rekey, 'SPI allocation failed');
      return;
    }
    if (sa.dead) {
      this.opts.dataplane.releaseSpi(spi);
      return;
    }
    const specs = inAuth ? cfg.espProposals.map(withoutKe) : cfg.espProposals;
    const out = [...payloads];
    let ni: Buffer | undefined;
    let ke;
    if (!inAuth) {
      ni = this.opts.random(NONCE_LEN);
      const g = group ?? specs[0]?.ke[0] ?? 0;
      if (g) ke = createKeyExchange(g);
    }
    if (rekey) out.push(notify(NotifyType.REKEY_SA, EMPTY, ProtocolId.ESP, u32(rekey.spiIn)));
    if (cfg.mode === 'transport') out.push(notify(NotifyType.USE_TRANSPORT_MODE));
    out.push({ type: PayloadType.SA, critical: false, proposals: toWireProposals(specs, u32(spi)) });
    if (ni) out.push({ type: PayloadType.NONCE, critical: false, data: ni });
    if (ke) out.push({ type: PayloadType.KE, critical: false, group: ke.group, data: ke.publicValue });
    out.push(
      tsPayload(PayloadType.TSi, this.tsAllowed(cfg, 'local', sa).map(selToWire)),
      tsPayload(PayloadType.TSr, this.tsAllowed(cfg, 'remote', sa).map(selToWire)),
    );
    if (inAuth) this.sendRequest(sa, ExchangeType.IKE_AUTH, out, { kind: 'ike-auth', child: cfg, spi });
    else this.sendRequest(sa, ExchangeType.CREATE_CHILD_SA, out, { kind: 'child-create', child: cfg, rekey, spi, ni, ke });
  }

  private async onAuthResponse(sa: IkeSa, task: Extract<Task, { kind: 'ike-auth' }>, payloads: Payload[]): Promise<void> {
    const spi = task.spi;
    task.spi = undefined;
    const release = (): void => {
      if (spi) this.opts.dataplane.releaseSpi(spi);
    };
    const idr = find(payloads, PayloadType.IDr);
    const auth = find(payloads, PayloadType.AUTH);
    if (!idr || !auth) {
      release();
      const err = findErrorNotify(payloads);
      this.stats.authFailed++;
      return this.authDone(sa, err ? notifyName(err.notifyType) : 'IKE_AUTH response without IDr/AUTH');
    }
    const conn = sa.conn!;
    const peer: Identity = { type: idr.idType, data: idr.data };
    const peerId = safeIdString(peer);
    if (conn.remote.id && conn.remote.id !== '%any' && !this.identityOk(conn.remote.id, peer)) {
      release();
      this.stats.authFailed++;
      return this.authDone(sa, `peer identity '${peerId}' does not match '${conn.remote.id}'`);
    }
    const psk = this.index.psk(sa.localId, peerId);
    const prf = sa.prf!;
    if (!psk || auth.method !== AuthMethod.SHARED_KEY_MIC || !verifyPskAuth(prf, psk, signedOctets(prf, sa.initResponse!, sa.ni, sa.keys!.skPr, idBody(idr)), auth.data)) {
      release();
      this.stats.authFailed++;
      return this.authDone(sa, 'peer authentication failed');
    }
    sa.remoteId = peerId;
    sa.initRequest = undefined;
    sa.initResponse = undefined;
    this.established(sa);
    this.applyUnique(sa);
    this.startDpd(sa);
    const cfg = sa.authChild;
    if (cfg && spi) {
      await this.completeChild(sa, cfg, payloads, spi, sa.ni, sa.nr, undefined, true);
    } else if (cfg) {
      sa.authChildError = 'no SPI could be allocated';
    }
    this.resolveWaiters(sa);
  }

  private identityOk(pattern: string, id: Identity): boolean {
    try {
      const want = parseIdentity(pattern);
      if (want.type === id.type && want.data.equals(id.data)) return true;
    } catch {
      // fall through to pattern matching
    }
    return identityMatches(pattern, id);
  }

  /** The initiator's half of CHILD_SA creation, once the response is in. */
  /**
   * The initiator's half of CHILD_SA creation, once the response is in. `ke` is our key exchange
   * when we offered PFS (CREATE_CHILD_SA only). On any failure our SPI is released, a rekeyed child
   * goes back to INSTALLED (and is retried), and a CHILD_SA the peer did create is deleted again.
   */
  private async completeChild(
    sa: IkeSa,
    cfg: ChildConfig,
    payloads: Payload[],
    spi: number,
    ni: Buffer,
    nr: Buffer,
    rekey: ChildSa | undefined,
    inAuth: boolean,
    ke?: KeyExchange,
  ): Promise<void> {
    const err = findErrorNotify(payloads);
    const sap = find(payloads, PayloadType.SA);
    const tsi = find(payloads, PayloadType.TSi);
    const tsr = find(payloads, PayloadType.TSr);
    let peerCreated = false;
    const fail = (reason: string): void => {
      this.stats.childFailed++;
      this.log.info({ ike: sa.id, conn: sa.conn?.name, child: cfg.name, reason }, 'CHILD SA failed');
      if (cfg === sa.authChild && inAuth) sa.authChildError = reason;
      // The peer installed its side: tell it to delete it (our SPI names the pair), then release the SPI.
      if (peerCreated) this.queueTask(sa, { kind: 'delete-spi', spi, release: true });
      else this.opts.dataplane.releaseSpi(spi);
      if (rekey) this.rekeyFailed(sa, rekey, reason);
    };
    if (err) {
      const invalidKe = err.notifyType === NotifyType.INVALID_KE_PAYLOAD && err.data.length === 2 ? err.data.readUInt16BE(0) : 0;
      if (invalidKe && ke && invalidKe !== ke.group && cfg.espProposals.some((p) => p.ke.includes(invalidKe))) {
        // RFC 7296 §1.3: retry once with the group the responder asked for.
        this.opts.dataplane.releaseSpi(spi);
        if (rekey) rekey.state = 'INSTALLED';
        this.queueTask(sa, { kind: 'child-create', child: cfg, rekey, group: invalidKe });
        return;
      }
      return fail(notifyName(err.notifyType));
    }
    if (!sap || !tsi || !tsr || sap.proposals.length !== 1 || (!inAuth && !nr.length)) return fail('response without SA/Nr/TSi/TSr');
    peerCreated = true;
    const specs = inAuth ? cfg.espProposals.map(withoutKe) : cfg.espProposals;
    const esp = checkEspResponse(specs, sap.proposals, { skipKe: inAuth });
    if (!esp || !this.espSupported(esp.encr, esp.integ)) return fail('peer chose an ESP proposal we did not offer');
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
    if (!localTs.length || !remoteTs.length || !isSubset(localTs, this.tsAllowed(cfg, 'local', sa)) || !isSubset(remoteTs, this.tsAllowed(cfg, 'remote', sa))) {
      this.stats.tsUnacceptable++;
      return fail('peer narrowed traffic selectors outside what we proposed');
    }
    const transport = findNotify(payloads, NotifyType.USE_TRANSPORT_MODE) !== undefined && cfg.mode === 'transport';
    const { child, ok } = await this.createChild(sa, cfg, esp, transport, spi, localTs, remoteTs, rekey, ni, nr, pfsSecret, true);
    if (!ok) {
      if (sa.dead) return;
      // installChild released the SPI; the peer still has its side.
      if (cfg === sa.authChild && inAuth) sa.authChildError = 'dataplane install failed';
      this.queueTask(sa, { kind: 'delete-spi', spi, release: false });
      if (rekey) this.rekeyFailed(sa, rekey, 'dataplane install failed');
      return;
    }
    if (rekey) {
      rekey.state = 'REKEYED';
      this.stats.childRekeyed++;
      this.emit({ type: 'child-rekeyed', sa, old: rekey, child });
      this.queueTask(sa, { kind: 'child-delete', child: rekey });
    }
  }

  /** A rekey of `child` did not happen: keep the child and try again before it expires. */
  private rekeyFailed(sa: IkeSa, child: ChildSa, reason: string): void {
    if (child.state === 'REKEYING') child.state = 'INSTALLED';
    if (sa.dead || child.state !== 'INSTALLED') return;
    const now = this.sched.now();
    const retry = now + (15 + this.jitter(30)) * 1000;
    child.rekeyAt = child.expireAt ? Math.min(retry, Math.max(now + 1000, child.expireAt - 5000)) : retry;
    this.log.info({ ike: sa.id, child: child.name, child_id: child.id, reason }, 'CHILD SA rekey failed, retrying later');
    this.armChildTimer(sa);
  }

  private authDone(sa: IkeSa, reason: string): void {
    this.log.info({ ike: sa.id, conn: sa.conn?.name, peer: sa.remote.addr, reason }, 'IKE_AUTH failed');
    this.stats.ikeFailed++;
    const name = sa.conn?.name;
    this.destroy(sa, reason);
    if (name && this.keepUp.has(name)) this.scheduleRetry(name);
  }

  private async onCreateChildResponse(sa: IkeSa, task: Extract<Task, { kind: 'child-create' }>, payloads: Payload[]): Promise<void> {
    const spi = task.spi!;
    task.spi = undefined;
    const nonce = find(payloads, PayloadType.NONCE);
    await this.completeChild(sa, task.child, payloads, spi, task.ni!, nonce?.data ?? EMPTY, task.rekey, false, task.ke);
  }

  // ---------------------------------------------------------------- rekeying

  /** Random seconds in [0, max) from the injected source, to spread rekeys (rand_time). */
  private jitter(max: number): number {
    if (max <= 0) return 0;
    return this.opts.random(4).readUInt32BE(0) % Math.floor(max);
  }

  private scheduleIkeRekey(sa: IkeSa): void {
    const t = sa.conn?.rekeyTime ?? 0;
    if (t <= 0) return;
    sa.rekeyAt = this.sched.now() + (t - this.jitter(sa.conn!.randTime)) * 1000;
    this.setTimer(sa, Timer.IKE_REKEY, sa.rekeyAt);
  }

  /** One timer per IKE SA for all its CHILD_SAs: the earliest rekey or expiry among them. */
  private armChildTimer(sa: IkeSa): void {
    let next = 0;
    for (const c of sa.children) {
      if (c.state === 'INSTALLED' && c.rekeyAt && (!next || c.rekeyAt < next)) next = c.rekeyAt;
      if (c.expireAt && (!next || c.expireAt < next)) next = c.expireAt;
    }
    const cur = sa.timers[Timer.CHILD_REKEY]!;
    if (next && (!cur || next < cur)) this.setTimer(sa, Timer.CHILD_REKEY, next);
  }

  private childTimers(sa: IkeSa): void {
    const now = this.sched.now();
    for (const c of sa.children) {
      if (c.expireAt && c.expireAt <= now && c.state !== 'DELETING') {
        c.expireAt = 0;
        this.log.info({ ike: sa.id, child: c.name, child_id: c.id }, 'CHILD SA reached its life time');
        this.queueTask(sa, { kind: 'child-delete', child: c });
      } else if (c.rekeyAt && c.rekeyAt <= now && c.state === 'INSTALLED') {
        c.rekeyAt = 0;
        this.rekeyChild(sa, c);
      }
    }
    this.armChildTimer(sa);
  }

  /** Move CHILD_SAs from a rekeyed IKE SA to its successor (RFC 7296 §2.18). */
  private adoptChildren(from: IkeSa, to: IkeSa): void {
    to.children = from.children;
    from.children = [];
    for (const c of to.children) this.childrenById.set(c.id, { sa: to, child: c });
    this.armChildTimer(to);
  }

  /** A new IKE SA that takes over from `old` (keys from the old SK_d and the new key exchange). */
  private successor(old: IkeSa, weInitiated: boolean, spiI: Buffer, spiR: Buffer, chosen: ChosenIke, secret: Buffer, ni: Buffer, nr: Buffer): IkeSa {
    const sa = new IkeSa(this.nextSaId++, weInitiated, spiI, { ...old.local }, { ...old.remote }, this.sched.now(), this.gauges);
    sa.spiR = spiR;
    sa.conn = old.conn;
    sa.localId = old.localId;
    sa.remoteId = old.remoteId;
    sa.natHere = old.natHere;
    sa.natThere = old.natThere;
    sa.encapForced = old.encapForced;
    sa.peerFragmentation = old.peerFragmentation;
    sa.suite = chosen.suite;
    sa.prf = new Prf(chosen.suite.prf);
    sa.ni = ni;
    sa.nr = nr;
    sa.keys = deriveRekeyedIkeKeys(chosen.suite, old.prf!.alg, old.keys!.skD, secret, ni, nr, spiI, spiR).keys;
    sa.cipher = new IkeCipher(chosen.suite, sa.keys, weInitiated, this.opts.random);
    sa.state = 'ESTABLISHED';
    sa.establishedAt = this.sched.now();
    this.table.add(sa);
    this.table.established(sa);
    this.adoptChildren(old, sa);
    old.state = 'REKEYED';
    this.clearTimer(old, Timer.DPD);
    this.clearTimer(old, Timer.IKE_REKEY);
    this.clearTimer(old, Timer.CHILD_REKEY);
    this.scheduleIkeRekey(sa);
    this.startDpd(sa);
    this.stats.ikeRekeyed++;
    this.log.info({ ike: sa.id, old_ike: old.id, peer: sa.remote.addr, conn: sa.conn?.name, proposal: formatIkeSuite(sa.suite) }, 'IKE SA rekeyed');
    this.emit({ type: 'ike-rekeyed', sa, old });
    return sa;
  }

  private onIkeRekeyRequest(sa: IkeSa, h: IkeHeader, payloads: Payload[], sap: SaPayload, ni: Buffer): void {
    const ke = find(payloads, PayloadType.KE);
    if (sa.state !== 'ESTABLISHED' || sa.active?.task.kind === 'ike-rekey') {
      return this.answer(sa, h, { payloads: [notify(NotifyType.TEMPORARY_FAILURE)] });
    }
    if (!ke) return this.answer(sa, h, { payloads: [notify(NotifyType.INVALID_SYNTAX)] });
    const chosen = selectIkeProposal(sa.conn!.proposals, sap.proposals, { peerKe: ke.group });
    if (!chosen) {
      this.stats.noProposal++;
      return this.answer(sa, h, { payloads: [notify(NotifyType.NO_PROPOSAL_CHOSEN)] });
    }
    if (chosen.spi.length !== 8 || chosen.spi.equals(ZERO_SPI)) return this.answer(sa, h, { payloads: [notify(NotifyType.INVALID_SYNTAX)] });
    if (ke.group !== chosen.suite.ke) {
      this.stats.invalidKe++;
      return this.answer(sa, h, { payloads: [notify(NotifyType.INVALID_KE_PAYLOAD, u16(chosen.suite.ke))] });
    }
    let dh;
    let secret: Buffer;
    try {
      dh = createKeyExchange(chosen.suite.ke);
      secret = dh.computeSecret(ke.data);
    } catch (e) {
      if (!(e instanceof CryptoError)) throw e;
      return this.answer(sa, h, { payloads: [notify(NotifyType.INVALID_SYNTAX)] });
    }
    const nr = this.opts.random(NONCE_LEN);
    const spiR = this.newSpi();
    this.answer(sa, h, {
      payloads: [
        { type: PayloadType.SA, critical: false, proposals: [ikeChosenToWire(chosen, spiR)] },
        { type: PayloadType.NONCE, critical: false, data: nr },
        { type: PayloadType.KE, critical: false, group: chosen.suite.ke, data: dh.publicValue },
      ],
    });
    // The peer started the rekey, so it is the new IKE SA's initiator; it deletes the old one.
    this.successor(sa, false, Buffer.from(chosen.spi), spiR, chosen, secret, ni, nr);
    this.setTimer(sa, Timer.DELETE_OLD, this.sched.now() + 30_000);
  }

  private onIkeRekeyResponse(sa: IkeSa, task: Extract<Task, { kind: 'ike-rekey' }>, payloads: Payload[]): void {
    if (sa.state === 'REKEYING') sa.state = 'ESTABLISHED';
    if (sa.terminateRequested) {
      // The operator asked for a delete meanwhile: the SA the peer may have created dies with this one.
      this.deleteIke(sa);
    }
    const retryLater = (why: string): void => {
      if (sa.terminateRequested) return;
      this.log.info({ ike: sa.id, reason: why }, 'IKE SA rekey failed, retrying later');
      this.setTimer(sa, Timer.IKE_REKEY, this.sched.now() + (10 + this.jitter(20)) * 1000);
    };
    const invalidKe = findNotify(payloads, NotifyType.INVALID_KE_PAYLOAD);
    if (invalidKe && invalidKe.data.length === 2 && task.group === undefined) {
      const group = invalidKe.data.readUInt16BE(0);
      if (sa.conn!.proposals.some((p) => p.ke.includes(group))) return this.queueTask(sa, { kind: 'ike-rekey', group });
    }
    const err = findErrorNotify(payloads);
    if (err) return retryLater(notifyName(err.notifyType));
    const sap = find(payloads, PayloadType.SA);
    const nonce = find(payloads, PayloadType.NONCE);
    const ke = find(payloads, PayloadType.KE);
    if (!sap || !nonce || !ke) return retryLater('incomplete response');
    const chosen = checkIkeResponse(sa.conn!.proposals, sap.proposals);
    if (!chosen || chosen.spi.length !== 8 || ke.group !== task.ke!.group || chosen.suite.ke !== ke.group) return retryLater('unexpected proposal');
    let secret: Buffer;
    try {
      secret = task.ke!.computeSecret(ke.data);
    } catch (e) {
      if (!(e instanceof CryptoError)) throw e;
      return retryLater(e.message);
    }
    const next = this.successor(sa, true, task.spi!, Buffer.from(chosen.spi), chosen, secret, task.ni!, nonce.data);
    this.queueTask(sa, { kind: 'ike-delete' });
    if (sa.terminateRequested) this.deleteIke(next);
  }

  // ---------------------------------------------------------------- task queue

  private queueTask(sa: IkeSa, task: Task): void {
    if (sa.dead) return;
    sa.queue.push(task);
    this.kick(sa);
  }

  /** Start the next queued exchange when nothing is in flight (window size 1). */
  private kick(sa: IkeSa): void {
    if (sa.active || sa.busy || sa.dead || (sa.state !== 'ESTABLISHED' && sa.state !== 'DELETING' && sa.state !== 'REKEYED')) return;
    // Priority like strongSwan's task manager: IKE delete, then child delete, then IKE rekey, then child create, then DPD.
    const order = ['ike-delete', 'child-delete', 'ike-rekey', 'child-create', 'dpd'];
    if (sa.state === 'REKEYED') sa.queue = sa.queue.filter((t) => t.kind === 'ike-delete');
    sa.queue.sort((a, b) => order.indexOf(a.kind) - order.indexOf(b.kind));
    const task = sa.queue.shift();
    if (!task) return;
    switch (task.kind) {
      case 'ike-delete':
        sa.state = 'DELETING';
        sa.queue.length = 0;
        this.sendRequest(sa, ExchangeType.INFORMATIONAL, [deletePayload(ProtocolId.IKE, [])], task);
        return;
      case 'child-delete':
        if (!sa.children.includes(task.child)) return this.kick(sa);
        task.child.state = task.child.state === 'REKEYED' ? 'REKEYED' : 'DELETING';
        this.sendRequest(sa, ExchangeType.INFORMATIONAL, [deletePayload(ProtocolId.ESP, [u32(task.child.spiIn)])], task);
        return;
      case 'child-create':
        if (task.rekey) task.rekey.state = 'REKEYING';
        this.run(sa, () => this.prepareChildRequest(sa, task.child, [], task.rekey, false, task.group));
        return;
      case 'delete-spi':
        this.sendRequest(sa, ExchangeType.INFORMATIONAL, [deletePayload(ProtocolId.ESP, [u32(task.spi)])], task);
        return;
      case 'dpd':
        this.sendRequest(sa, ExchangeType.INFORMATIONAL, [], task);
        return;
      case 'ike-rekey': {
        const conn = sa.conn!;
        const group = task.group ?? sa.suite!.ke;
        task.spi = this.newSpi();
        task.ni = this.opts.random(NONCE_LEN);
        task.ke = createKeyExchange(group);
        sa.state = 'REKEYING';
        this.sendRequest(
          sa,
          ExchangeType.CREATE_CHILD_SA,
          [
            { type: PayloadType.SA, critical: false, proposals: toWireProposals(conn.proposals, task.spi) },
            { type: PayloadType.NONCE, critical: false, data: task.ni },
            { type: PayloadType.KE, critical: false, group, data: task.ke.publicValue },
          ],
          task,
        );
        return;
      }
      default:
        return;
    }
  }

  // ---------------------------------------------------------------- DPD

  private startDpd(sa: IkeSa): void {
    const delay = sa.conn?.dpdDelay ?? 0;
    if (delay > 0) this.setTimer(sa, Timer.DPD, this.sched.now() + delay * 1000);
  }

  private dpdCheck(sa: IkeSa): void {
    const delay = (sa.conn?.dpdDelay ?? 0) * 1000;
    if (delay <= 0 || sa.state !== 'ESTABLISHED') return;
    const idle = this.sched.now() - sa.lastInbound;
    if (idle >= delay && !sa.active && !sa.queue.some((t) => t.kind === 'dpd')) this.queueTask(sa, { kind: 'dpd' });
    this.setTimer(sa, Timer.DPD, Math.max(this.sched.now() + 1, sa.lastInbound + delay, this.sched.now() + (idle >= delay ? delay : 0)));
  }

  // ---------------------------------------------------------------- operator actions

  /** Delete an IKE SA and its CHILD_SAs, telling the peer. */
  deleteIke(sa: IkeSa): void {
    if (sa.dead) return;
    if (sa.state === 'REKEYING') {
      // Let the rekey finish; then the successor is deleted as well (and the old one, as usual).
      sa.terminateRequested = true;
      return;
    }
    if (sa.state !== 'ESTABLISHED' && sa.state !== 'DELETING' && sa.state !== 'REKEYED') return this.destroy(sa, 'terminated');
    this.queueTask(sa, { kind: 'ike-delete' });
  }

  /** Delete one CHILD_SA, telling the peer. */
  deleteChild(childId: number): boolean {
    const e = this.childrenById.get(childId);
    if (!e) return false;
    this.queueTask(e.sa, { kind: 'child-delete', child: e.child });
    return true;
  }

  /** Rekey one CHILD_SA (make-before-break: the new SA is installed before the old one is deleted). */
  rekeyChild(sa: IkeSa, child: ChildSa): void {
    if (child.state !== 'INSTALLED') return;
    this.queueTask(sa, { kind: 'child-create', child: child.cfg, rekey: child });
  }

  findChild(childId: number): { sa: IkeSa; child: ChildSa } | undefined {
    return this.childrenById.get(childId);
  }

  /** Remove an IKE SA now: dataplane cleaned, waiters told, no message sent. */
  destroy(sa: IkeSa, reason: string): void {
    if (sa.dead) return;
    const wasEstablished = sa.state === 'ESTABLISHED' || sa.state === 'DELETING' || sa.state === 'REKEYING';
    if (sa.state === 'REKEYED' && reason === 'deleted') reason = 'rekeyed';
    sa.dead = true;
    sa.state = 'DESTROYING';
    this.gauges.ikeByState.DESTROYING--;
    const t = sa.active?.task;
    if (t && (t.kind === 'ike-auth' || t.kind === 'child-create' || (t.kind === 'delete-spi' && t.release)) && t.spi) {
      this.opts.dataplane.releaseSpi(t.spi);
      t.spi = undefined;
    }
    sa.active = undefined;
    sa.queue.length = 0;
    sa.timers.fill(0);
    this.table.remove(sa, sa.halfOpenKey);
    for (const child of sa.children) {
      this.childrenById.delete(child.id);
      this.gauges.childSas--;
      child.state = 'DELETED';
      this.stats.childDeleted++;
      this.opts.dataplane.remove(child.id).catch((e: Error) => {
        this.stats.dataplaneErrors++;
        this.log.warn({ ike: sa.id, child: child.id, err: e.message }, 'dataplane remove failed');
      });
      this.emit({ type: 'child-down', sa, child, reason });
    }
    sa.children = [];
    sa.keys = undefined;
    sa.cipher = undefined;
    sa.initRequest = undefined;
    sa.initResponse = undefined;
    sa.lastResponse = undefined;
    if (wasEstablished) {
      this.stats.ikeDeleted++;
      this.log.info({ ike: sa.id, peer: sa.remote.addr, conn: sa.conn?.name, reason }, 'IKE SA deleted');
      this.emit({ type: 'ike-down', sa, reason });
    }
    const w = this.waiters.get(sa.id);
    if (w) {
      this.waiters.delete(sa.id);
      for (const x of w) x.reject(new Error(reason));
    }
  }

  /** Periodic housekeeping: drop stale timer entries once they dominate the heap. */
  compactTimers(): void {
    if (this.sched.pending > 4 * (this.table.size + 16)) {
      this.sched.compact((key, kind, at) => {
        if (key < 0) return this.keepUpById.has(-key);
        const sa = this.table.get(key);
        return sa !== undefined && sa.timers[kind] === at;
      });
    }
  }

  /** Stop everything: delete every IKE SA (telling peers when `tellPeers`). */
  shutdown(tellPeers: boolean): void {
    this.keepUp.clear();
    this.keepUpById.clear();
    for (const sa of [...this.table.values()]) {
      if (tellPeers && (sa.state === 'ESTABLISHED' || sa.state === 'REKEYING' || sa.state === 'DELETING') && sa.cipher) {
        // A last message on the way out: it may overlap an exchange in flight, which the peer tolerates
        // better than an SA it never hears about again.
        const payloads = [deletePayload(ProtocolId.IKE, [])];
        this.transmit(sa, this.seal(sa, ExchangeType.INFORMATIONAL, sa.sendMid++, false, payloads));
      }
      this.destroy(sa, 'shutdown');
    }
  }
}

const ZERO_SPI = Buffer.alloc(8);

/** A connection the engine keeps up (start_action = start, dpd/close action restart). */
interface KeepUp {
  id: number;
  tries: number;
  retryAt: number;
}

function hashOf(b: Buffer): string {
  return createHash('sha1').update(b).digest('hex');
}


function withoutKe(p: ProposalSpec): ProposalSpec {
  return p.ke.length ? { ...p, ke: [] } : p;
}

/** A configured identity, or the address when none is configured (strongSwan's default). */
function idOr(id: string, addr: string): string {
  return id && id !== '%any' ? id : addr;
}

function safeIdString(id: Identity): string {
  try {
    return identityToString(id);
  } catch {
    return `<id type ${id.type}>`;
  }
}
