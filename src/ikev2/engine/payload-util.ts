/**
 * Small constructors and finders for payloads, so the exchange code reads like the RFC's message
 * diagrams.
 */
import { hash } from 'node:crypto';
import { NOTIFY_ERROR_MAX, PayloadType, ProtocolId } from '../constants.ts';
import type {
  DeletePayload,
  IdPayload,
  NotifyPayload,
  Payload,
  TrafficSelector,
  TsPayload,
} from '../codec/types.ts';
import { writeIp } from '../../common/addr.ts';

export function notify(notifyType: number, data: Buffer = EMPTY, protocol = 0, spi: Buffer = EMPTY): NotifyPayload {
  return { type: PayloadType.NOTIFY, critical: false, protocol, spi, notifyType, data };
}

export function findNotify(payloads: Payload[], notifyType: number): NotifyPayload | undefined {
  for (const p of payloads) if (p.type === PayloadType.NOTIFY && p.notifyType === notifyType) return p;
  return undefined;
}

/** The first error notify (types up to NOTIFY_ERROR_MAX), if any. */
export function findErrorNotify(payloads: Payload[]): NotifyPayload | undefined {
  for (const p of payloads) if (p.type === PayloadType.NOTIFY && p.notifyType <= NOTIFY_ERROR_MAX) return p;
  return undefined;
}

/** The payload interface whose `type` admits T (IdPayload serves both IDi and IDr). */
export type PayloadOf<T extends number> = Payload extends infer P ? (P extends { type: infer U } ? (T extends U ? P : never) : never) : never;

export function find<T extends Payload['type']>(payloads: Payload[], type: T): PayloadOf<T> | undefined {
  for (const p of payloads) if (p.type === type) return p as PayloadOf<T>;
  return undefined;
}

export function findAll<T extends Payload['type']>(payloads: Payload[], type: T): PayloadOf<T>[] {
  return payloads.filter((p) => p.type === type) as PayloadOf<T>[];
}

export function tsPayload(type: typeof PayloadType.TSi | typeof PayloadType.TSr, selectors: TrafficSelector[]): TsPayload {
  return { type, critical: false, selectors };
}

export function deletePayload(protocol: number, spis: Buffer[]): DeletePayload {
  return {
    type: PayloadType.DELETE,
    critical: false,
    protocol,
    spiSize: protocol === ProtocolId.IKE ? 0 : 4,
    spis: protocol === ProtocolId.IKE ? [] : spis,
  };
}

/** ID payload body as signed in AUTH (RFC 7296 §2.15: ID type, 3 reserved bytes, data). */
export function idBody(id: IdPayload): Buffer {
  const b = Buffer.alloc(4 + id.data.length);
  b[0] = id.idType;
  id.data.copy(b, 4);
  return b;
}

/** NAT detection hash: SHA-1(SPIi | SPIr | IP | port) (RFC 7296 §2.23). */
export function natdHash(spiI: Buffer, spiR: Buffer, addr: string, port: number): Buffer {
  // one scratch buffer for the hash input (the hash is computed before it is used again)
  const b = NATD_INPUT;
  let o = spiI.copy(b, 0);
  o += spiR.copy(b, o);
  const n = writeIp(addr, b, o);
  // not an address: four zero bytes
  if (n === 0) b.fill(0, o, o + 4);
  o += n || 4;
  b.writeUInt16BE(port, o);
  return hash('sha1', b.subarray(0, o + 2), 'buffer');
}
const NATD_INPUT = Buffer.alloc(8 + 8 + 16 + 2);

export function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b;
}

export function u16(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n);
  return b;
}

export const EMPTY = Buffer.alloc(0);
