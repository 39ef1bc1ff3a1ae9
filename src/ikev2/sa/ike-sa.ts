/**
 * IKE SA and CHILD SA records: identity, state, keys, config references and timers. The protocol
 * logic lives in the engine; these are plain data with no per-SA closures or timer objects (timer
 * due times are fields, the shared scheduler holds the entries).
 */
import type { ChildConfig, ConnectionConfig } from '../../config/types.ts';
import type { InstallResult, SaEndpoint } from '../../dataplane/types.ts';
import type { ChosenEsp, ChosenIke, IkeSuite } from '../crypto/proposals.ts';
import type { IkeCipher } from '../crypto/protect.ts';
import type { KeyExchange } from '../crypto/ke.ts';
import type { IkeKeys } from '../crypto/prf.ts';
import type { Prf } from '../crypto/prf.ts';
import type { Sel } from './ts.ts';
import type { IkeHeader, Payload } from '../codec/types.ts';
import type { Reassembly } from '../engine/fragments.ts';
import { keepConcat } from '../crypto/keep.ts';

const ZERO_SPI = Buffer.alloc(8);

/** strongSwan's IKE SA state names (what list-sas shows). */
export type IkeState = 'CREATED' | 'CONNECTING' | 'ESTABLISHED' | 'REKEYING' | 'REKEYED' | 'DELETING' | 'DESTROYING';
export type ChildState = 'CREATED' | 'INSTALLING' | 'INSTALLED' | 'REKEYING' | 'REKEYED' | 'DELETING' | 'DELETED' | 'FAILED';

/** Timer kinds in the shared scheduler. */
export const Timer = {
  RETRANSMIT: 1,
  HALF_OPEN: 2,
  DPD: 3,
  IKE_REKEY: 4,
  /** The IKE SA's hard lifetime (rekey time + over_time). */
  IKE_EXPIRE: 5,
  /** The IKE SA's reauthentication time (reauth_time): a new IKE SA takes over from it. */
  IKE_REAUTH: 6,
  RETRY: 7,
  DELETE_OLD: 8,
  CHILD_REKEY: 9,
  /** An incomplete set of IKE fragments is dropped (RFC 7383 §2.6). */
  DEFRAG: 10,
  /** A peer's CREATE_CHILD_SA waits for its IKE_FOLLOWUP_KE exchanges (RFC 9370). */
  FOLLOWUP: 11,
} as const;
export const TIMER_KINDS = 12;

/** Bits of IkeSa.extensions: what was negotiated in IKE_SA_INIT (kept across IKE SA rekeys). */
export const Ext = {
  /** The peer announced IKEV2_FRAGMENTATION_SUPPORTED (RFC 7383). */
  FRAGMENTATION: 1,
  /** We announced it, so the peer may send us fragments. */
  FRAGMENTATION_ANNOUNCED: 2,
} as const;

/** A received message waiting for its SA to become free. */
export interface PendingMessage {
  local: SaEndpoint;
  remote: SaEndpoint;
  data: Buffer;
  header: IkeHeader;
  payloads: Payload[];
  critical: number[];
}

export class ChildSa {
  readonly id: number;
  readonly name: string;
  readonly cfg: ChildConfig;
  state: ChildState = 'CREATED';
  spiIn = 0;
  spiOut = 0;
  proposal: ChosenEsp | undefined;
  localTs: Sel[] = [];
  remoteTs: Sel[] = [];
  encap = false;
  mode: 'tunnel' | 'transport';
  installedAt = 0;
  rekeyAt = 0;
  expireAt = 0;
  /** Volume rekey thresholds (rekey_bytes/rekey_packets less their random part); 0: none. */
  rekeyBytes = 0;
  rekeyPackets = 0;
  vpp: InstallResult = {};
  /** CHILD_SA this one replaced (rekey), until the old one is deleted. */
  replaces: number | undefined;
  /**
   * REKEYED: the CHILD_SA that took over from this one (none for a redundant SA of a rekey
   * collision). INSTALLED: the CHILD_SA of a reauthentication's new IKE SA that took over its tunnel.
   */
  successor: ChildSa | undefined;
  /** Rekeys failed until near the hard lifetime: the next attempt creates a new CHILD_SA instead. */
  lastResort = false;
  /**
   * The dataplane programmed this CHILD_SA again (VPP restarted): its outbound sequence numbers
   * started over, which the peer's replay window drops, so it is rekeyed at once and a rekey the
   * peer refuses for the moment (TEMPORARY_FAILURE) is tried again within seconds, this many times.
   */
  quickRetries = 0;
  constructor(id: number, cfg: ChildConfig) {
    this.id = id;
    this.cfg = cfg;
    this.name = cfg.name;
    this.mode = cfg.mode;
  }
}

/**
 * A CREATE_CHILD_SA (new or rekeyed CHILD_SA, or IKE SA rekey) whose additional key exchanges run
 * in IKE_FOLLOWUP_KE exchanges (RFC 9370 §2.2.4): what it will create once they are done.
 */
export interface Followup {
  /** The link data the next IKE_FOLLOWUP_KE request carries (the responder chooses it). */
  link: Buffer;
  /** Additional key exchange methods, in order, and how many are done. */
  methods: number[];
  done: number;
  /** SK(0), of the CREATE_CHILD_SA's own KE payloads, and SK(1).. so far. */
  secret0: Buffer;
  added: Buffer[];
  ni: Buffer;
  nr: Buffer;
  /** Initiator: the key exchange of the request in flight. */
  ke?: KeyExchange;
  target:
    | {
        kind: 'child';
        cfg: ChildConfig;
        esp: ChosenEsp;
        transport: boolean;
        spi: number;
        localTs: Sel[];
        remoteTs: Sel[];
        rekey: ChildSa | undefined;
        /** Initiator: the peer's colliding rekey of the same CHILD_SA (RFC 7296 §2.8.1). */
        passive?: PassiveRekey;
        /** Responder: our own rekey of it was in flight when the peer's came. */
        colliding?: boolean;
        /** Initiator: the CHILD_SA of the IKE SA being reauthenticated that this one takes over. */
        takeOver?: ChildSa;
      }
    | { kind: 'ike'; chosen: ChosenIke; spiI: Buffer; spiR: Buffer };
}

/** An exchange we started and wait for the answer to. */
export interface ActiveRequest {
  mid: number;
  exchange: number;
  packets: Buffer[];
  tries: number;
  task: Task;
}

/** What we are doing as the exchange's initiator. */
export type Task =
  | { kind: 'ike-init' }
  | { kind: 'ike-auth'; child?: ChildConfig; spi?: number }
  /** One IKE_INTERMEDIATE exchange with the next additional key exchange (initiator). */
  | { kind: 'ike-int' }
  | {
      kind: 'child-create';
      child: ChildConfig;
      rekey?: ChildSa;
      group?: number;
      spi?: number;
      ni?: Buffer;
      ke?: KeyExchange;
      /** A rekey collision (RFC 7296 §2.8.1): the peer rekeyed the same CHILD_SA while ours was in flight. */
      passive?: PassiveRekey;
      /** A new CHILD_SA (no REKEY_SA notify) that takes over from `rekey`: the last resort when rekeys fail. */
      fresh?: boolean;
      /** Reauthentication: the CHILD_SA of the old IKE SA whose tunnel this new one takes over. */
      takeOver?: ChildSa;
    }
  /** Delete a CHILD_SA the peer created but we could not use (our SPI names it); release the SPI after. */
  | { kind: 'delete-spi'; spi: number; release: boolean }
  | { kind: 'child-delete'; child: ChildSa }
  | { kind: 'ike-delete' }
  | { kind: 'dpd' }
  /** MOBIKE return routability check (RFC 4555 §3.5): COOKIE2 to the peer's new address before CHILD_SAs move there. */
  | { kind: 'mobike-check'; cookie2?: Buffer }
  | {
      kind: 'ike-rekey';
      group?: number;
      spi?: Buffer;
      ni?: Buffer;
      ke?: KeyExchange;
      /** A rekey collision (RFC 7296 §2.8.2): the IKE SA the peer's rekey made while ours was in flight. */
      passive?: { sa: IkeSa; nonce: Buffer };
    }
  /** The next IKE_FOLLOWUP_KE of sa.followupOut. */
  | { kind: 'followup' }
  /** Reauthentication: every CHILD_SA was recreated on this new IKE SA; the old IKE SA goes (no exchange of its own). */
  | { kind: 'reauth-complete' };

/**
 * A reauthentication in progress, held by the new IKE SA (make-before-break, as strongSwan's
 * make_before_break): the old IKE SA and its CHILD_SAs that are still to be recreated.
 */
export interface Reauth {
  old: IkeSa;
  /** The CHILD_SA recreated with IKE_AUTH. */
  authChild: ChildSa | undefined;
  /** Old CHILD_SAs not yet recreated. */
  todo: Set<ChildSa>;
  /** Given up (a reauthentication collision) while IKE_AUTH was under way: deleted once it is done. */
  abandoned?: boolean;
}

/** The peer's rekey of a CHILD_SA we were rekeying too: the CHILD_SA it made and its exchange's lower nonce. */
export interface PassiveRekey {
  child: ChildSa;
  nonce: Buffer;
}

/** Live counts kept up to date on every state change, so gauges never need a scan of the table. */
export interface SaGauges {
  ikeByState: Record<IkeState, number>;
  childSas: number;
}

export function newGauges(): SaGauges {
  return {
    ikeByState: { CREATED: 0, CONNECTING: 0, ESTABLISHED: 0, REKEYING: 0, REKEYED: 0, DELETING: 0, DESTROYING: 0 },
    childSas: 0,
  };
}

const NO_BYTES = Buffer.alloc(0);

/**
 * What an IKE SA holds only for a while (the handshake, a fragmented message, a rekey collision, an
 * IKE_FOLLOWUP_KE) or only in some set-ups (certificates, IKE_INTERMEDIATE). IkeSa keeps these in
 * a record of their own that exists only while one of them differs from its default here, so an
 * established, idle IKE SA (tens of thousands of them) carries none of these fields. IkeSa's
 * accessors of the same names read and write them.
 */
class Transient {
  ni: Buffer = NO_BYTES;
  nr: Buffer = NO_BYTES;
  /** IKE_SA_INIT request and response, kept until authentication is done (signed octets). */
  initRequest: Buffer | undefined = undefined;
  initResponse: Buffer | undefined = undefined;
  /** Responder: our IKE_SA_INIT answer waits for its keys from the crypto pool. */
  initPending: { header: IkeHeader; chosen: ChosenIke } | undefined = undefined;
  /** Initiator's pending key exchange during IKE_SA_INIT. */
  ke: KeyExchange | undefined = undefined;
  keRetried = false;
  /** The responder's cookie we return in IKE_SA_INIT (initiator), and how often we were sent one. */
  cookie: Buffer | undefined = undefined;
  cookieRetries = 0;
  /** Hash of the IKE_SA_INIT request, to answer its retransmissions. */
  initRequestHash: string | undefined = undefined;
  /** The IntAuth chain (RFC 9242 §3.3.1) of each side's IKE_INTERMEDIATE messages, until IKE_AUTH. */
  intAuthI: Buffer | undefined = undefined;
  intAuthR: Buffer | undefined = undefined;
  /** The cipher before the last IKE_INTERMEDIATE key update: a retransmitted request still uses it. */
  prevCipher: IkeCipher | undefined = undefined;
  /** Our CREATE_CHILD_SA in its IKE_FOLLOWUP_KE exchanges, and the peer's (RFC 9370 §2.2.4). */
  followupOut: Followup | undefined = undefined;
  followupIn: Followup | undefined = undefined;
  /** The peer's fragmented request and the fragmented response to ours, only while their fragments arrive. */
  defragRequest: Reassembly | undefined = undefined;
  defragResponse: Reassembly | undefined = undefined;
  /** Messages (already decoded) that arrived while an operation (e.g. a dataplane install) was in progress. */
  pending: PendingMessage[] | undefined = undefined;
  /** Key of this SA in the half-open index (responder, until IKE_AUTH completes). */
  halfOpenKey: string | undefined = undefined;
  /**
   * Made by the peer's rekey of this IKE SA while ours was in flight (a collision): until the outcome
   * is known it holds no CHILD_SAs and starts no exchange of its own.
   */
  collisionOf: IkeSa | undefined = undefined;
  /** The operator asked to terminate it while a rekey was in flight: delete the successor too. */
  terminateRequested = false;
  /**
   * Why it is being removed, when its Delete waits for our exchange in flight to complete (its
   * response, or its retransmissions giving up): see closeAfterExchange.
   */
  closing: string | undefined = undefined;
  /** Child to create together with IKE_AUTH (initiator). */
  authChild: ChildConfig | undefined = undefined;
  /** Why the CHILD_SA of IKE_AUTH failed, when it did (the IKE SA stays up). */
  authChildError: string | undefined = undefined;
  /** The peer's SIGNATURE_HASH_ALGORITHMS (RFC 7427 §4), when it sent them. */
  peerHashes: readonly number[] | undefined = undefined;
  /** The peer sent a CERTREQ (send_cert = ifasked). */
  certreqSeen = false;
  /** Subject of the certificate the peer authenticated with. */
  remoteCert: string | undefined = undefined;
  /** New IKE SA of a reauthentication: what it takes over. */
  reauthOf: Reauth | undefined = undefined;
  /** Old IKE SA: the new IKE SA of its reauthentication, while that is under way. */
  reauthBy: IkeSa | undefined = undefined;
}

/** Every field at its default (then IkeSa lets the record go). Nonces count as default when empty. */
function allDefault(t: Transient): boolean {
  return (
    t.ni.length === 0 && t.nr.length === 0 && t.initRequest === undefined && t.initResponse === undefined && t.initPending === undefined &&
    t.ke === undefined && !t.keRetried && t.cookie === undefined && t.cookieRetries === 0 && t.initRequestHash === undefined &&
    t.intAuthI === undefined && t.intAuthR === undefined && t.prevCipher === undefined && t.followupOut === undefined &&
    t.followupIn === undefined && t.defragRequest === undefined && t.defragResponse === undefined && t.pending === undefined &&
    t.halfOpenKey === undefined && t.collisionOf === undefined && !t.terminateRequested && t.closing === undefined && t.authChild === undefined &&
    t.authChildError === undefined && t.peerHashes === undefined && !t.certreqSeen && t.remoteCert === undefined &&
    t.reauthOf === undefined && t.reauthBy === undefined
  );
}

const DEFAULTS: Readonly<Transient> = Object.freeze(new Transient());

export class IkeSa {
  readonly id: number;
  conn: ConnectionConfig | undefined;
  /** We started this IKE SA (original initiator). */
  readonly initiator: boolean;
  /**
   * SPIi | SPIr in one kept block of 16 bytes (two Buffer objects would cost more than the SPIs in
   * them): spiI and spiR read views of it, and a write copies the 8 bytes in. SPIr is zero until
   * known.
   */
  private readonly spis: Buffer;
  get spiI(): Buffer {
    return this.spis.subarray(0, 8);
  }
  set spiI(v: Buffer) {
    this.putSpi(0, v);
  }
  get spiR(): Buffer {
    return this.spis.subarray(8, 16);
  }
  set spiR(v: Buffer) {
    this.putSpi(8, v);
  }
  private putSpi(at: number, v: Buffer): void {
    if (v.length !== 8) throw new RangeError(`an IKE SPI is 8 bytes, not ${v.length}`);
    v.copy(this.spis, at);
  }
  private _state: IkeState = 'CREATED';
  private readonly gauges: SaGauges | undefined;
  get state(): IkeState {
    return this._state;
  }
  set state(s: IkeState) {
    if (this.gauges && s !== this._state) {
      this.gauges.ikeByState[this._state]--;
      this.gauges.ikeByState[s]++;
    }
    this._state = s;
  }
  local: SaEndpoint;
  remote: SaEndpoint;
  natHere = false;
  natThere = false;
  /** UDP encapsulation forced by config (fake NAT) or by the peer's fake NATD hash. */
  encapForced = false;
  /** Ext bits. */
  extensions = 0;
  suite: IkeSuite | undefined;
  prf: Prf | undefined;
  keys: IkeKeys | undefined;
  cipher: IkeCipher | undefined;
  localId = '';
  remoteId = '';
  /** Our next request message ID, and the next request ID we expect from the peer. */
  sendMid = 0;
  recvMid = 0;
  active: ActiveRequest | undefined;
  /** Last response we sent, for answering retransmitted requests (RFC 7296 §2.1). */
  lastResponseMid = -1;
  lastResponse: Buffer[] | undefined;
  queue: Task[] = [];
  children: ChildSa[] = [];
  createdAt: number;
  establishedAt = 0;
  rekeyAt = 0;
  /** When the IKE SA is reauthenticated (0: never). */
  reauthAt = 0;
  lastInbound: number;
  /** When we last sent the peer anything (IKE message or NAT-T keepalive). */
  lastOutbound: number;
  /** Slot of the keepalive wheel the SA is in (-1: none). */
  keepaliveSlot = -1;
  /** Both sides announced MOBIKE (RFC 4555) in IKE_AUTH. */
  mobike = false;
  /** The peer sent MOBIKE_SUPPORTED in IKE_AUTH (responder: we answer with it when `mobike = yes`). */
  peerMobike = false;
  /**
   * Due time per timer kind (0 = none); scheduler entries whose time differs are stale. A plain
   * array of doubles (filled with a double first, so it is stored as doubles from the start): a
   * typed array would cost a second object and a backing store per SA.
   */
  readonly timers: number[] = new Array<number>(TIMER_KINDS).fill(0.5).fill(0);
  /** IKE_AUTH exchanges processed so far (one with PSKs; more with EAP or multiple authentication). */
  authRounds = 0;
  /** Both sides announced IKE_INTERMEDIATE (RFC 9242) in IKE_SA_INIT. */
  intermediate = false;
  /** Additional key exchanges (RFC 9370) completed in IKE_INTERMEDIATE exchanges. */
  addKeDone = 0;
  /** Operations in progress on this SA (one at a time is the rule; nested steps count too). */
  busyCount = 0;
  get busy(): boolean {
    return this.busyCount > 0;
  }
  /** Where the last request came from: its response goes back there (RFC 7296 §2.11). */
  requestLocal: SaEndpoint | undefined;
  requestRemote: SaEndpoint | undefined;
  /** Set when deletion is in progress or done; no more processing. */
  dead = false;

  constructor(id: number, initiator: boolean, spiI: Buffer, local: SaEndpoint, remote: SaEndpoint, now: number, gauges?: SaGauges) {
    this.id = id;
    this.gauges = gauges;
    if (gauges) gauges.ikeByState.CREATED++;
    this.initiator = initiator;
    this.spis = keepConcat([spiI, ZERO_SPI]);
    if (spiI.length !== 8) throw new RangeError(`an IKE SPI is 8 bytes, not ${spiI.length}`);
    this.local = local;
    this.remote = remote;
    this.createdAt = now;
    this.lastInbound = now;
    this.lastOutbound = now;
  }

  // ---- the Transient fields (see there): read from the record while it exists, else the defaults

  /** The record of Transient fields, while one of them is set. */
  private t: Transient | undefined = undefined;

  /** Whether the SA still holds a record of handshake state (an established SA normally does not). */
  get holdsHandshakeState(): boolean {
    return this.t !== undefined;
  }

  private put<K extends keyof Transient>(k: K, v: Transient[K]): void {
    let t = this.t;
    const isDefault = k === 'ni' || k === 'nr' ? (v as Buffer).length === 0 : v === DEFAULTS[k];
    if (t === undefined) {
      if (isDefault) return;
      t = this.t = new Transient();
    }
    t[k] = v;
    if (isDefault && allDefault(t)) this.t = undefined;
  }

  get ni(): Buffer {
    return (this.t ?? DEFAULTS).ni;
  }
  set ni(v: Buffer) {
    this.put('ni', v);
  }

  get nr(): Buffer {
    return (this.t ?? DEFAULTS).nr;
  }
  set nr(v: Buffer) {
    this.put('nr', v);
  }

  get initRequest(): Buffer | undefined {
    return (this.t ?? DEFAULTS).initRequest;
  }
  set initRequest(v: Buffer | undefined) {
    this.put('initRequest', v);
  }

  get initResponse(): Buffer | undefined {
    return (this.t ?? DEFAULTS).initResponse;
  }
  set initResponse(v: Buffer | undefined) {
    this.put('initResponse', v);
  }

  get initPending(): { header: IkeHeader; chosen: ChosenIke } | undefined {
    return (this.t ?? DEFAULTS).initPending;
  }
  set initPending(v: { header: IkeHeader; chosen: ChosenIke } | undefined) {
    this.put('initPending', v);
  }

  get ke(): KeyExchange | undefined {
    return (this.t ?? DEFAULTS).ke;
  }
  set ke(v: KeyExchange | undefined) {
    this.put('ke', v);
  }

  get keRetried(): boolean {
    return (this.t ?? DEFAULTS).keRetried;
  }
  set keRetried(v: boolean) {
    this.put('keRetried', v);
  }

  get cookie(): Buffer | undefined {
    return (this.t ?? DEFAULTS).cookie;
  }
  set cookie(v: Buffer | undefined) {
    this.put('cookie', v);
  }

  get cookieRetries(): number {
    return (this.t ?? DEFAULTS).cookieRetries;
  }
  set cookieRetries(v: number) {
    this.put('cookieRetries', v);
  }

  get initRequestHash(): string | undefined {
    return (this.t ?? DEFAULTS).initRequestHash;
  }
  set initRequestHash(v: string | undefined) {
    this.put('initRequestHash', v);
  }

  get intAuthI(): Buffer | undefined {
    return (this.t ?? DEFAULTS).intAuthI;
  }
  set intAuthI(v: Buffer | undefined) {
    this.put('intAuthI', v);
  }

  get intAuthR(): Buffer | undefined {
    return (this.t ?? DEFAULTS).intAuthR;
  }
  set intAuthR(v: Buffer | undefined) {
    this.put('intAuthR', v);
  }

  get prevCipher(): IkeCipher | undefined {
    return (this.t ?? DEFAULTS).prevCipher;
  }
  set prevCipher(v: IkeCipher | undefined) {
    this.put('prevCipher', v);
  }

  get followupOut(): Followup | undefined {
    return (this.t ?? DEFAULTS).followupOut;
  }
  set followupOut(v: Followup | undefined) {
    this.put('followupOut', v);
  }

  get followupIn(): Followup | undefined {
    return (this.t ?? DEFAULTS).followupIn;
  }
  set followupIn(v: Followup | undefined) {
    this.put('followupIn', v);
  }

  get defragRequest(): Reassembly | undefined {
    return (this.t ?? DEFAULTS).defragRequest;
  }
  set defragRequest(v: Reassembly | undefined) {
    this.put('defragRequest', v);
  }

  get defragResponse(): Reassembly | undefined {
    return (this.t ?? DEFAULTS).defragResponse;
  }
  set defragResponse(v: Reassembly | undefined) {
    this.put('defragResponse', v);
  }

  get pending(): PendingMessage[] | undefined {
    return (this.t ?? DEFAULTS).pending;
  }
  set pending(v: PendingMessage[] | undefined) {
    this.put('pending', v);
  }

  get halfOpenKey(): string | undefined {
    return (this.t ?? DEFAULTS).halfOpenKey;
  }
  set halfOpenKey(v: string | undefined) {
    this.put('halfOpenKey', v);
  }

  get collisionOf(): IkeSa | undefined {
    return (this.t ?? DEFAULTS).collisionOf;
  }
  set collisionOf(v: IkeSa | undefined) {
    this.put('collisionOf', v);
  }

  get terminateRequested(): boolean {
    return (this.t ?? DEFAULTS).terminateRequested;
  }
  set terminateRequested(v: boolean) {
    this.put('terminateRequested', v);
  }
  get closing(): string | undefined {
    return (this.t ?? DEFAULTS).closing;
  }
  set closing(v: string | undefined) {
    this.put('closing', v);
  }

  get authChild(): ChildConfig | undefined {
    return (this.t ?? DEFAULTS).authChild;
  }
  set authChild(v: ChildConfig | undefined) {
    this.put('authChild', v);
  }

  get authChildError(): string | undefined {
    return (this.t ?? DEFAULTS).authChildError;
  }
  set authChildError(v: string | undefined) {
    this.put('authChildError', v);
  }

  get peerHashes(): readonly number[] | undefined {
    return (this.t ?? DEFAULTS).peerHashes;
  }
  set peerHashes(v: readonly number[] | undefined) {
    this.put('peerHashes', v);
  }

  get certreqSeen(): boolean {
    return (this.t ?? DEFAULTS).certreqSeen;
  }
  set certreqSeen(v: boolean) {
    this.put('certreqSeen', v);
  }

  get remoteCert(): string | undefined {
    return (this.t ?? DEFAULTS).remoteCert;
  }
  set remoteCert(v: string | undefined) {
    this.put('remoteCert', v);
  }

  get reauthOf(): Reauth | undefined {
    return (this.t ?? DEFAULTS).reauthOf;
  }
  set reauthOf(v: Reauth | undefined) {
    this.put('reauthOf', v);
  }
  get reauthBy(): IkeSa | undefined {
    return (this.t ?? DEFAULTS).reauthBy;
  }
  set reauthBy(v: IkeSa | undefined) {
    this.put('reauthBy', v);
  }

  /** Our own SPI (the one peers address us with). */
  get ourSpi(): Buffer {
    return this.initiator ? this.spiI : this.spiR;
  }
  get theirSpi(): Buffer {
    return this.initiator ? this.spiR : this.spiI;
  }
}
