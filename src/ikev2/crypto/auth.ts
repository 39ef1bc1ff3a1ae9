/**
 * AUTH payload computation (RFC 7296 §2.15).
 *
 * Signed octets of the initiator: RealMessage1 | NonceRData | prf(SK_pi, IDi')
 * Signed octets of the responder: RealMessage2 | NonceIData | prf(SK_pr, IDr')
 * where IDx' is the ID payload body without its generic header (ID type, 3 reserved bytes, data).
 *
 * Shared-key AUTH = prf(prf(Shared Secret, "Key Pad for IKEv2"), <signed octets>).
 * After IKE_INTERMEDIATE exchanges (RFC 9242) both sides' signed octets end in IntAuth.
 */
import { createSecretKey, timingSafeEqual, type KeyObject } from 'node:crypto';
import { HEADER_FLAG_MASK, IKE_HEADER_LEN } from '../codec/header.ts';
import type { IkeHeader } from '../codec/types.ts';
import { PayloadType } from '../constants.ts';
import type { Prf } from './prf.ts';

const KEY_PAD = Buffer.from('Key Pad for IKEv2', 'ascii');

/** The octets an AUTH payload signs or MACs (RFC 7296 §2.15). */
export function signedOctets(prf: Prf, message: Buffer, peerNonce: Buffer, skP: Buffer, idPayloadBody: Buffer): Buffer {
  return Buffer.concat([message, peerNonce, prf.compute(skP, idPayloadBody)]);
}

/**
 * IntAuth_A | IntAuth_P of one IKE_INTERMEDIATE message (RFC 9242 §3.3.1): its IKE header and
 * Encrypted payload header as if the message were unfragmented and unencrypted (lengths counting
 * only the header, the Encrypted payload header and the inner payloads), then the inner payloads
 * in the clear (no IV, padding or ICV).
 */
export function intAuthOctets(h: Pick<IkeHeader, 'spiI' | 'spiR' | 'version' | 'exchange' | 'flags' | 'messageId'>, firstInner: number, inner: Buffer): Buffer {
  const head = Buffer.alloc(IKE_HEADER_LEN + 4);
  h.spiI.copy(head, 0);
  h.spiR.copy(head, 8);
  head[16] = PayloadType.SK;
  head[17] = h.version;
  head[18] = h.exchange;
  head[19] = h.flags & HEADER_FLAG_MASK;
  head.writeUInt32BE(h.messageId >>> 0, 20);
  head.writeUInt32BE(IKE_HEADER_LEN + 4 + inner.length, 24);
  head[IKE_HEADER_LEN] = firstInner;
  head.writeUInt16BE(4 + inner.length, IKE_HEADER_LEN + 2);
  return Buffer.concat([head, inner]);
}

/**
 * One link of the IntAuth chain (RFC 9242 §3.3.1): IntAuth_n = prf(SK_px, IntAuth_(n-1) | A | P),
 * with the SK_pi (initiator's messages) or SK_pr (responder's) in force for that message; the
 * first message of each side has no previous link.
 */
export function intAuthLink(prf: Prf, skP: Buffer, prev: Buffer | undefined, octets: Buffer): Buffer {
  return prf.compute(skP, prev ? [prev, octets] : octets);
}

/**
 * What IKE_INTERMEDIATE adds to both sides' signed octets (RFC 9242 §3.3.2):
 * IntAuth = IntAuth_iN | IntAuth_rN | IKE_AUTH_MID (the message ID of the first IKE_AUTH request).
 */
export function intAuthTail(intAuthI: Buffer, intAuthR: Buffer, authMid: number): Buffer {
  const mid = Buffer.alloc(4);
  mid.writeUInt32BE(authMid >>> 0, 0);
  return Buffer.concat([intAuthI, intAuthR, mid]);
}

/**
 * prf(Shared Secret, "Key Pad for IKEv2"): the per-PSK key of the shared-key AUTH. It depends
 * only on the PSK and the PRF, so callers may compute it once per secret and PRF.
 */
export function pskAuthKey(prf: Prf, psk: Buffer): Buffer {
  return prf.compute(psk, KEY_PAD);
}

/** pskAuthKey as a KeyObject, per PSK (its Buffer from the configuration) and PRF, with the PSK it was made from. */
const authKeys = new WeakMap<Buffer, Map<string, { psk: Buffer; key: KeyObject }>>();

/** pskAuthKey, computed once per PSK and PRF (two HMACs and a KeyObject less per IKE_AUTH). */
function cachedPskAuthKey(prf: Prf, psk: Buffer): KeyObject {
  let byPrf = authKeys.get(psk);
  if (!byPrf) {
    byPrf = new Map();
    authKeys.set(psk, byPrf);
  }
  const hit = byPrf.get(prf.alg.name);
  // the PSK's bytes are compared too: a Buffer changed in place does not get a stale key
  if (hit && hit.psk.equals(psk)) return hit.key;
  const key = createSecretKey(pskAuthKey(prf, psk));
  byPrf.set(prf.alg.name, { psk: Buffer.from(psk), key });
  return key;
}

/** Shared-key AUTH data: prf(prf(psk, "Key Pad for IKEv2"), octets). */
export function pskAuth(prf: Prf, psk: Buffer, octets: Buffer): Buffer {
  return prf.compute(cachedPskAuthKey(prf, psk), octets);
}

/** Checks a received shared-key AUTH in constant time; a wrong length is a mismatch. */
export function verifyPskAuth(prf: Prf, psk: Buffer, octets: Buffer, received: Buffer): boolean {
  const expected = pskAuth(prf, psk, octets);
  return received.length === expected.length && timingSafeEqual(received, expected);
}
