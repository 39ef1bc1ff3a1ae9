/**
 * The narrow interface between the IKE engine and whatever forwards ESP (VPP, or the in-memory
 * recorder used by tests and dry runs). Shaped like strongSwan's kernel_ipsec: the engine asks for
 * inbound SPIs and hands over parameter records; back ends never call into the engine except through
 * the listener upcalls.
 */

export type VppMode = 'p2p' | 'p2mp' | 'policy';

/** One traffic selector range as negotiated (inclusive ranges). */
export interface TsRange {
  /** 4 = IPv4, 6 = IPv6 */
  family: 4 | 6;
  start: string; // textual address
  end: string;
  /** 0 = any */
  protocol: number;
  startPort: number;
  endPort: number;
}

/** ESP algorithms as the dataplane needs them. */
export interface EspAlgorithms {
  /** IKE ENCR transform id and key length in bits. */
  encrId: number;
  encrKeyBits: number;
  /** IKE INTEG transform id, 0 for AEAD. */
  integId: number;
  esn: boolean;
}

export interface SaEndpoint {
  addr: string;
  port: number;
}

/** Parameters of one direction of an IPsec SA. */
export interface SaParams {
  spi: number; // u32
  inbound: boolean;
  /** Outer tunnel source and destination (for inbound: peer → us). */
  src: SaEndpoint;
  dst: SaEndpoint;
  /** UDP encapsulation (NAT-T): ports from src/dst are used. */
  udpEncap: boolean;
  alg: EspAlgorithms;
  /** Encryption key including the 4-byte salt for AEAD/GCM (KEYMAT order). */
  encKey: Buffer;
  integKey: Buffer;
  replayWindow: number;
  mode: 'tunnel' | 'transport';
}

/** Everything needed to install (or re-install after a dataplane restart) one CHILD_SA. */
export interface ChildInstall {
  /** Stable id of the CHILD_SA within the daemon (unique over its lifetime). */
  childId: number;
  ikeSaId: number;
  connection: string;
  child: string;
  inbound: SaParams;
  outbound: SaParams;
  localTs: TsRange[];
  remoteTs: TsRange[];
  vppMode: VppMode;
  vppInterface?: string;
  vppTable: number;
  vppRoutes: boolean;
  /**
   * When set, this CHILD_SA replaces (rekeys) the given child, make-before-break: the new inbound SA
   * accepts at once, the outbound direction switches to the new SA in one step, and the old child's
   * inbound SA keeps accepting until the engine calls remove(old) once the old CHILD_SA is deleted.
   */
  replaces?: number;
  /**
   * With `replaces`, we answered the rekey (the peer started it): the outbound direction stays on
   * the replaced child's SA until remove(replaced), which comes when the peer, having installed the
   * new SAs, deletes the old CHILD_SA. Nothing is sent on the new SA before the peer can decrypt it
   * (strongSwan does the same). Route-based modes (p2p, p2mp); policy mode switches at once.
   */
  outboundAfterReplaced?: boolean;
}

/** What the back end reports about an installed CHILD_SA (shown in list-sas under "vpp"). */
export interface InstallResult {
  saIn?: number;
  saOut?: number;
  interface?: string;
}

export interface DataplaneFeatures {
  /** ESP ENCR transform ids + key sizes the back end can run, as "id:bits". */
  encr: Set<string>;
  integ: Set<number>;
  esn: boolean;
  modes: Set<VppMode>;
}

/**
 * Traffic on one installed CHILD_SA as the dataplane counted it since the SAs were installed:
 * packets and bytes of its inbound and of its outbound SA (VPP: the SA's combined counter in the
 * stats segment, `/net/ipsec/sa`).
 */
export interface ChildCounters {
  packetsIn: number;
  bytesIn: number;
  packetsOut: number;
  bytesOut: number;
}

/** The dataplane cannot read SA counters at all (why: `message`); volume lifetimes cannot be enforced. */
export class CountersUnavailableError extends Error {
  override readonly name = 'CountersUnavailableError';
}

/** Upcalls from the dataplane to the engine. */
export interface DataplaneListener {
  /** The dataplane lost its state (e.g. VPP restarted) and has replayed these CHILD_SAs: the engine should rekey them soon. */
  replayed?(childIds: number[]): void;
  /** A CHILD_SA could no longer be kept (e.g. replay failed): the engine should delete it. */
  failed?(childId: number, reason: string): void;
}

export interface Dataplane {
  readonly name: string;
  features(): DataplaneFeatures;
  /** A fresh inbound SPI, unique among the live SAs of this dataplane. */
  allocateSpi(): Promise<number>;
  /** Release an SPI that was allocated but never installed. */
  releaseSpi(spi: number): void;
  /** Install both directions; on failure nothing stays installed and the promise rejects. */
  install(child: ChildInstall): Promise<InstallResult>;
  /** Change outer addresses/ports of an installed CHILD_SA (NAT mapping change). */
  update(childId: number, local: SaEndpoint, remote: SaEndpoint, udpEncap: boolean): Promise<void>;
  /** Remove a CHILD_SA; unknown ids are ignored. */
  remove(childId: number): Promise<void>;
  /**
   * The traffic counters of these installed CHILD_SAs, read in one batch. Ids that are not installed
   * are left out of the result. Rejects with CountersUnavailableError when the back end cannot read
   * counters at all.
   */
  counters(childIds: readonly number[]): Promise<Map<number, ChildCounters>>;
  /** Raw state, for `vpp-ikectl vpp-sas`. */
  dump(): Promise<unknown>;
  setListener(l: DataplaneListener): void;
  close(): Promise<void>;
}
