/**
 * The validated, immutable configuration the daemon runs with. Produced by the config loader from
 * swanctl-style files; consumed by the engine, transport, dataplane and control socket.
 * Durations are in seconds. Every object carries where it was defined, for error messages.
 */
import type { VppMode } from '../dataplane/types.ts';
import type { Credentials } from './credentials.ts';
import type { RevocationPolicy } from '../pki/api.ts';

export interface SourceLocation {
  file: string;
  line: number;
  col: number;
}

/** A proposal as configured: transform ids per type, in preference order (see crypto/proposals.ts). */
export interface ProposalSpec {
  protocol: 'ike' | 'esp';
  /** ENCR transforms: id and key length in bits (0 when the algorithm has a fixed key size). */
  encr: { id: number; keyBits: number }[];
  prf: number[];
  integ: number[];
  /** Key exchange methods (DH groups); for ESP, empty means no PFS. */
  ke: number[];
  /** ESP only: ESN transforms (0 = no, 1 = yes) in preference order. */
  esn: number[];
  /**
   * Additional key exchanges (RFC 9370), when the proposal has any: seven lists, one per transform
   * type ADDKE1..ADDKE7, each with its methods in preference order (0 = NONE, i.e. optional);
   * an empty list leaves the type out.
   */
  addKe?: number[][];
}

export interface AuthConfig {
  auth: 'psk' | 'pubkey';
  /** Identity as written (e.g. "gw.example.net", "192.0.2.1", "%any" on the remote side). */
  id: string;
  /** Certificate files (absolute paths): ours and intermediates (local side). */
  certs: string[];
  /** Trust anchors for the peer's certificate (remote side). */
  cacerts: string[];
  /** Revocation lists for the peer's chain (remote side); absent means none. */
  crls?: string[];
  /** How CRLs are applied to the peer's chain (remote side); absent means `relaxed`. */
  revocation?: RevocationPolicy;
}

export interface ChildConfig {
  name: string;
  localTs: string[]; // as written: "10.0.0.0/24", "10.0.0.0/24[tcp/80]", "dynamic"
  remoteTs: string[];
  espProposals: ProposalSpec[];
  mode: 'tunnel' | 'transport';
  startAction: 'none' | 'trap' | 'start';
  closeAction: 'none' | 'trap' | 'start';
  dpdAction: 'clear' | 'trap' | 'restart';
  rekeyTime: number;
  lifeTime: number;
  randTime: number;
  /** Volume lifetimes (strongSwan's): 0 = none. */
  rekeyBytes: number;
  lifeBytes: number;
  randBytes: number;
  rekeyPackets: number;
  lifePackets: number;
  randPackets: number;
  replayWindow: number;
  vppMode: VppMode;
  vppInterface?: string;
  vppTable: number;
  vppRoutes: boolean;
  loc: SourceLocation;
}

export interface ConnectionConfig {
  name: string;
  localAddrs: string[]; // empty = %any
  remoteAddrs: string[]; // empty = %any
  localPort: number;
  remotePort: number;
  proposals: ProposalSpec[];
  encap: boolean;
  dpdDelay: number;
  dpdTimeout: number;
  rekeyTime: number;
  reauthTime: number;
  overTime: number;
  randTime: number;
  fragmentation: 'yes' | 'no' | 'accept' | 'force';
  unique: 'no' | 'never' | 'keep' | 'replace';
  sendCert: 'always' | 'never' | 'ifasked';
  sendCertreq: boolean;
  mobike: boolean;
  keyingtries: number; // 0 = forever
  local: AuthConfig;
  remote: AuthConfig;
  children: ChildConfig[];
  loc: SourceLocation;
}

export interface SecretConfig {
  name: string; // e.g. "ike-lab"
  kind: 'ike' | 'private';
  ids: string[]; // the id / id-* values; empty = matches any
  secret?: string; // PSK ("0x..." / "0s..." already decoded into `secretBytes`)
  secretBytes?: Buffer;
  file?: string;
  loc: SourceLocation;
}

export interface DaemonConfig {
  listen: string[];
  port: number;
  portNatT: number;
  controlSocket: string;
  logLevel: string;
  ikeSaLimit: number;
  metrics?: string;
  dataplane: 'vpp' | 'memory';
  /** How IKE reaches the daemon: the host's UDP sockets, or VPP's punt socket. */
  transport: 'udp' | 'punt';
  /** Seconds a graceful stop (SIGTERM) may take before the daemon gives up waiting and exits. */
  stopTimeout: number;
  /**
   * What a graceful stop does with the SAs: `delete` tells every peer and removes the CHILD_SAs from
   * the dataplane; `keep` leaves both alone so traffic keeps flowing across a daemon restart.
   */
  stopAction: 'delete' | 'keep';
  /** SO_RCVBUF asked for every IKE socket (bytes); 0 leaves the kernel's default. */
  recvBufferSize: number;
  /** Worker threads for IKE_SA_INIT's crypto; `auto`: one per core beyond the first. */
  workers: number | 'auto';
  /** Retransmission of our requests: first timeout (s), backoff base, retransmissions before giving up. */
  retransmitTimeout: number;
  retransmitBase: number;
  retransmitTries: number;
  /** Half-open IKE SAs from which on IKE_SA_INIT requests must return a cookie (0 = never). */
  cookieThreshold: number;
  /** Half-open IKE SAs per peer address from which on its IKE_SA_INIT requests are dropped (0 = no limit). */
  blockThreshold: number;
  /** Half-open IKE SAs from which on all IKE_SA_INIT requests are dropped (0 = no limit). */
  initLimitHalfOpen: number;
  /** IKE SAs started from the start queue that may wait for their peers' answers at once (0 = no limit). */
  startLimitHalfOpen: number;
  /** Seconds between NAT-T keepalives from behind a NAT (0 = none). */
  keepAlive: number;
  /** Seconds between reads of the SA counters for volume lifetimes. */
  trafficPoll: number;
  /** IP datagram size of IKE fragments (0: 576 for IPv4, 1280 for IPv6), and per family (0/unset: fragmentSize). */
  fragmentSize: number;
  fragmentSizeV4?: number;
  fragmentSizeV6?: number;
}

export interface VppConfig {
  socket: string;
  /** transport = punt: our datagram socket that VPP punts IKE to. */
  puntSocket: string;
  /** transport = punt: who reads the punt socket (a thread of its own, or the event loop). */
  puntReader: 'thread' | 'event_loop';
  /** VPP interface whose address the p2p/p2mp ipsec interfaces borrow (unnumbered). Unset: none. */
  unnumberedInterface?: string;
  /** policy mode: the interface the SPD is bound to when a CHILD_SA sets no vpp_interface. */
  policyInterface?: string;
}

export interface Config {
  daemon: DaemonConfig;
  vpp: VppConfig;
  connections: ConnectionConfig[];
  secrets: SecretConfig[];
  /**
   * Certificates, private keys and CRLs read from the files the config names (the loader always
   * sets it; configs built in code without certificate authentication may leave it out).
   */
  credentials?: Credentials;
  /** Files that were read (the main file and its includes). */
  files: string[];
}
