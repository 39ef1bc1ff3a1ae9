/**
 * AUTH payload computation (RFC 7296 §2.15).
 *
 * Signed octets of the initiator: RealMessage1 | NonceRData | prf(SK_pi, IDi')
 * Signed octets of the responder: RealMessage2 | NonceIData | prf(SK_pr, IDr')
 * where IDx' is the ID payload body without its generic header (ID type, 3 reserved bytes, data).
 *
 * Shared-key AUTH = prf(prf(Shared Secret, "Key Pad for IKEv2"), <signed octets>).
 */
import { createSecretKey, timingSafeEqual, type KeyObject } from 'node:crypto';
import type { Prf } from './prf.ts';

const KEY_PAD = Buffer.from('Key Pad for IKEv2', 'ascii');

/** The octets an AUTH payload signs or MACs (RFC 7296 §2.15). */
export function signedOctets(prf: Prf, message: Buffer, peerNonce: Buffer, skP: Buffer, idPayloadBody: Buffer): Buffer {
  return Buffer.concat([message, peerNonce, prf.compute(skP, idPayloadBody)]);
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
