/**
 * The VPP client's public types: options, connection info, counters, and the errors its requests
 * reject with (each names the message and, for VPP's own errors, VPP's error name).
 */
import { vppErrorName, vppErrorText } from './errors.ts';
import type { VppTransport } from './transport.ts';

/** The VPP release the generated definitions come from. */
export const VPP_EXPECTED_VERSION = '26.10';
export const DEFAULT_VPP_API_SOCKET = '/run/vpp/api.sock';


/** pino-compatible logger subset. */
export interface VppLogger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export const NOOP_LOGGER: VppLogger = { debug() {}, info() {}, warn() {}, error() {} };

export interface VppClientOptions {
  /** API socket path. Default /run/vpp/api.sock. */
  socket?: string;
  /** How the client reaches VPP. Default: the UNIX socket `socket`. */
  transport?: VppTransport;
  /** Name VPP shows for this client (at most 64 bytes). Default "vpp-iked". */
  clientName?: string;
  /** Per-request timeout (ms). Default 10000. */
  requestTimeoutMs?: number;
  /** Timeout for connecting and the sockclnt_create handshake (ms). Default 5000. */
  connectTimeoutMs?: number;
  /** Reconnect after the connection is lost. Default true. */
  reconnect?: boolean;
  /** First and largest reconnect delay (ms). Defaults 100 and 5000. */
  reconnectMinMs?: number;
  reconnectMaxMs?: number;
  /** control_ping interval when the socket is quiet (ms); 0 turns health checks off. Default 5000. */
  healthCheckMs?: number;
  /** Requests on the wire at once; more wait in a queue. 1 = strict request/response. Default 512. */
  maxInFlight?: number;
  logger?: VppLogger;
}

/** A request VPP answered with a non-zero retval. */
export class VppApiError extends Error {
  override readonly name = 'VppApiError';
  /** The request message name. */
  readonly msg: string;
  readonly retval: number;
  /** VPP's symbolic error name, e.g. "ENTRY_ALREADY_EXISTS". */
  readonly errorName: string;
  constructor(msg: string, retval: number) {
    const text = vppErrorText(retval);
    super(`${msg} failed: VPP error ${retval} (${vppErrorName(retval)}${text ? `: ${text}` : ''})`);
    this.msg = msg;
    this.retval = retval;
    this.errorName = vppErrorName(retval);
  }
}

/** VPP's message table lacks messages we use, or has them with other CRCs. */
export class VppCompatibilityError extends Error {
  override readonly name = 'VppCompatibilityError';
  readonly missing: string[];
  readonly mismatched: { name: string; ours: string; vpps: string }[];
  constructor(missing: string[], mismatched: { name: string; ours: string; vpps: string }[], version?: string) {
    const parts: string[] = [];
    if (missing.length) parts.push(`missing: ${missing.join(', ')}`);
    if (mismatched.length) {
      parts.push(`different CRC: ${mismatched.map((m) => `${m.name} (ours ${m.ours}, VPP's ${m.vpps})`).join(', ')}`);
    }
    super(
      `VPP API is not compatible with vpp-iked, which expects VPP ${VPP_EXPECTED_VERSION}` +
        `${version ? ` (connected VPP: ${version})` : ''}: ${parts.join('; ')}`,
    );
    this.missing = missing;
    this.mismatched = mismatched;
  }
}

export class VppTimeoutError extends Error {
  override readonly name = 'VppTimeoutError';
  readonly msg: string;
  constructor(msg: string, ms: number) {
    super(`${msg}: no reply from VPP within ${ms} ms`);
    this.msg = msg;
  }
}

export class VppDisconnectedError extends Error {
  override readonly name = 'VppDisconnectedError';
}

/** A reply that does not decode (VPP sent something else than the definitions say). */
export class VppProtocolError extends Error {
  override readonly name = 'VppProtocolError';
}

export interface VppConnectedInfo {
  reconnect: boolean;
  clientIndex: number;
  /** show_version's version string, when VPP answered it. */
  version?: string;
  messages: number;
}

export interface VppClientStats {
  sent: number;
  received: number;
  timeouts: number;
  errors: number;
  reconnects: number;
  inFlight: number;
  queued: number;
}

export interface VppRequestOptions {
  timeoutMs?: number;
  /** retvals (besides 0) that resolve instead of rejecting. */
  allowRetval?: readonly number[];
}

