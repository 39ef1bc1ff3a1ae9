/**
 * Decoded forms of the IKEv2 header and payloads (RFC 7296 §3, RFC 7383 §2.5).
 * Every payload carries its `type` and `critical` flag; byte fields are Buffers.
 */
import type { PayloadType } from '../constants.ts';

export interface IkeHeader {
  spiI: Buffer; // 8 bytes
  spiR: Buffer; // 8 bytes
  nextPayload: number;
  version: number; // 0x20
  exchange: number;
  flags: number; // HeaderFlag bits
  messageId: number;
  length: number; // whole message, filled in by the encoder
}

export interface TransformAttribute {
  type: number; // without the AF bit
  /** TV format (AF=1): a 16-bit value; TLV: bytes */
  value: number | Buffer;
}

export interface Transform {
  type: number; // TransformType
  id: number;
  attributes: TransformAttribute[];
}

export interface Proposal {
  num: number; // 1-based
  protocol: number; // ProtocolId
  spi: Buffer; // empty for IKE_SA_INIT, 8 for IKE rekey, 4 for ESP/AH
  transforms: Transform[];
}

interface Base<T extends number> {
  type: T;
  critical: boolean;
}

export interface SaPayload extends Base<typeof PayloadType.SA> {
  proposals: Proposal[];
}
export interface KePayload extends Base<typeof PayloadType.KE> {
  group: number;
  data: Buffer;
}
export interface IdPayload extends Base<typeof PayloadType.IDi | typeof PayloadType.IDr> {
  idType: number;
  /** The 3 reserved bytes after the ID type are part of what AUTH signs; always zero on encode. */
  data: Buffer;
}
export interface CertPayload extends Base<typeof PayloadType.CERT> {
  encoding: number;
  data: Buffer;
}
export interface CertReqPayload extends Base<typeof PayloadType.CERTREQ> {
  encoding: number;
  data: Buffer;
}
export interface AuthPayload extends Base<typeof PayloadType.AUTH> {
  method: number;
  data: Buffer;
}
export interface NoncePayload extends Base<typeof PayloadType.NONCE> {
  data: Buffer;
}
export interface NotifyPayload extends Base<typeof PayloadType.NOTIFY> {
  protocol: number; // 0 when no SPI
  spi: Buffer;
  notifyType: number;
  data: Buffer;
}
export interface DeletePayload extends Base<typeof PayloadType.DELETE> {
  protocol: number;
  spiSize: number; // 0 for IKE, 4 for ESP/AH
  spis: Buffer[];
}
export interface VendorPayload extends Base<typeof PayloadType.VENDOR> {
  data: Buffer;
}
export interface TrafficSelector {
  tsType: number; // TS_IPV4_ADDR_RANGE | TS_IPV6_ADDR_RANGE, others kept raw
  ipProto: number;
  startPort: number;
  endPort: number;
  start: Buffer; // 4 or 16 bytes
  end: Buffer;
}
export interface TsPayload extends Base<typeof PayloadType.TSi | typeof PayloadType.TSr> {
  selectors: TrafficSelector[];
}
/** SK: the encrypted payload, not yet decrypted. `body` = IV || ciphertext || ICV. */
export interface SkPayload extends Base<typeof PayloadType.SK> {
  /** Type of the first payload inside (from this payload's Next Payload field). */
  innerType: number;
  body: Buffer;
  /** Offset of this payload's generic header in the whole message (AAD/ICV computation needs it). */
  offset: number;
}
/** SKF: one encrypted fragment (RFC 7383). */
export interface SkfPayload extends Base<typeof PayloadType.SKF> {
  /** Next Payload of the first fragment: type of the first inner payload; 0 in the others. */
  innerType: number;
  fragmentNumber: number;
  totalFragments: number;
  body: Buffer;
  offset: number;
}
export interface CfgAttribute {
  type: number;
  value: Buffer;
}
export interface CpPayload extends Base<typeof PayloadType.CP> {
  cfgType: number;
  attributes: CfgAttribute[];
}
export interface EapPayload extends Base<typeof PayloadType.EAP> {
  /** The whole EAP message (code, identifier, length, type data). */
  data: Buffer;
}
/** Payload of a type we do not implement, kept raw so the engine can apply the critical bit rule. */
export interface UnknownPayload {
  type: number;
  critical: boolean;
  data: Buffer;
}

export type Payload =
  | SaPayload
  | KePayload
  | IdPayload
  | CertPayload
  | CertReqPayload
  | AuthPayload
  | NoncePayload
  | NotifyPayload
  | DeletePayload
  | VendorPayload
  | TsPayload
  | SkPayload
  | SkfPayload
  | CpPayload
  | EapPayload;

export interface DecodedMessage {
  header: IkeHeader;
  payloads: Payload[];
  /** Payloads of unknown type with the critical bit clear (skipped, kept for logs). */
  unknown: UnknownPayload[];
  /** Types of unknown payloads with the critical bit set: the engine answers UNSUPPORTED_CRITICAL_PAYLOAD. */
  unsupportedCritical: number[];
}
