/**
 * IKEv2 pseudo-random functions and key derivation (RFC 7296 §2.13, §2.14, §2.17, §2.18).
 *
 * prf+ (K, S) = T1 | T2 | ...,  T1 = prf(K, S | 0x01),  Tn = prf(K, Tn-1 | S | n)
 *
 * Keys handed in as Buffers are wrapped in a KeyObject once per call: on Node 24 an HMAC with a
 * raw Buffer key pays a key set-up of ~15 µs, with a KeyObject it does not.
 */
import { createHmac, createSecretKey, type KeyObject } from 'node:crypto';
import { CryptoError } from './errors.ts';
import { keep, keepConcat } from './keep.ts';
import type { EncrAlg, IntegAlg, PrfAlg } from './suites.ts';

/** The largest prf+ output: the counter is one octet (RFC 7296 §2.13). */
const PRF_PLUS_MAX_BLOCKS = 255;

function toKey(key: Buffer | KeyObject): Buffer | KeyObject {
  // A zero-length HMAC key is legal; it is passed as-is.
  return Buffer.isBuffer(key) && key.length > 0 ? createSecretKey(key) : key;
}

export class Prf {
  readonly alg: PrfAlg;

  constructor(alg: PrfAlg) {
    this.alg = alg;
  }

  /** prf(key, data); data given as parts is hashed as their concatenation. */
  compute(key: Buffer | KeyObject, data: Buffer | Buffer[]): Buffer {
    const h = createHmac(this.alg.hash, toKey(key));
    if (Array.isArray(data)) for (const d of data) h.update(d);
    else h.update(data);
    return h.digest();
  }

  /** prf+(key, seed) truncated to len bytes. Throws CryptoError past 255 blocks. */
  plus(key: Buffer | KeyObject, seed: Buffer, len: number): Buffer {
    const outLen = this.alg.outLen;
    const blocks = Math.ceil(len / outLen);
    if (!Number.isInteger(len) || len < 0 || blocks > PRF_PLUS_MAX_BLOCKS) {
      throw new CryptoError(`prf+ cannot produce ${len} bytes with ${this.alg.name}`);
    }
    const k = toKey(key);
    const out = Buffer.allocUnsafe(blocks * outLen);
    const counter = Buffer.allocUnsafe(1);
    let prev: Buffer | null = null;
    for (let n = 1; n <= blocks; n++) {
      const h = createHmac(this.alg.hash, k);
      if (prev) h.update(prev);
      h.update(seed);
      counter[0] = n;
      h.update(counter);
      prev = h.digest();
      prev.copy(out, (n - 1) * outLen);
    }
    return out.subarray(0, len);
  }
}

const prfs = new Map<PrfAlg, Prf>();
/** The Prf of an algorithm, one object per algorithm (IKE SAs share it; it holds no key). */
export function prfOf(alg: PrfAlg): Prf {
  let p = prfs.get(alg);
  if (!p) prfs.set(alg, (p = new Prf(alg)));
  return p;
}

export interface IkeKeys {
  skD: Buffer;
  skAi: Buffer;
  skAr: Buffer;
  skEi: Buffer;
  skEr: Buffer;
  skPi: Buffer;
  skPr: Buffer;
}

/**
 * The negotiated IKE SA transforms. integ is null for AEAD encryption. `ke` is the KE method id;
 * `addKe`, when any was negotiated, the methods of ADDKE1..ADDKE7 (RFC 9370; 0 = none).
 */
export interface IkeSuite {
  encr: EncrAlg;
  prf: PrfAlg;
  integ: IntegAlg | null;
  ke: number;
  addKe?: readonly number[];
}

/** Total keying material for the IKE SA: SK_d | SK_ai | SK_ar | SK_ei | SK_er | SK_pi | SK_pr. */
export function ikeKeymatLength(suite: IkeSuite): number {
  const p = suite.prf.preferredKeyLen;
  return 3 * p + 2 * (suite.integ ? suite.integ.keyLen : 0) + 2 * suite.encr.keymatLen;
}

/** SK_d | SK_ai | SK_ar | SK_ei | SK_er | SK_pi | SK_pr out of the keying material (views of it). */
export function splitIkeKeys(suite: IkeSuite, keymat: Buffer): IkeKeys {
  const p = suite.prf.preferredKeyLen;
  const a = suite.integ ? suite.integ.keyLen : 0;
  const e = suite.encr.keymatLen;
  let off = 0;
  // Views of the keying material: whoever keeps the keys copies them (KeptIkeKeys).
  const take = (n: number): Buffer => {
    const b = keymat.subarray(off, off + n);
    off += n;
    return b;
  };
  return {
    skD: take(p),
    skAi: take(a),
    skAr: take(a),
    skEi: take(e),
    skEr: take(e),
    skPi: take(p),
    skPr: take(p),
  };
}

/**
 * The keys of an IKE SA as one kept block (SK_d | SK_ai | SK_ar | SK_ei | SK_er | SK_pi | SK_pr)
 * instead of seven Buffers: an SA holds its keys for its whole life, and each Buffer object costs
 * more than the key in it. Each read returns a view of the block.
 */
export class KeptIkeKeys implements IkeKeys {
  private readonly block: Buffer;
  /** Lengths of SK_d/SK_p*, SK_a*, SK_e*. */
  private readonly p: number;
  private readonly a: number;
  private readonly e: number;

  constructor(keys: IkeKeys | { suite: IkeSuite; keymat: Buffer }) {
    if ('keymat' in keys) {
      // the keying material of prf+ is the seven keys in this order already: one copy, no views
      const { suite, keymat } = keys;
      this.p = suite.prf.preferredKeyLen;
      this.a = suite.integ ? suite.integ.keyLen : 0;
      this.e = suite.encr.keymatLen;
      if (keymat.length !== ikeKeymatLength(suite)) throw new CryptoError(`IKE SA keying material of ${keymat.length} bytes, not ${ikeKeymatLength(suite)}`);
      this.block = keep(keymat);
      return;
    }
    this.p = keys.skD.length;
    this.a = keys.skAi.length;
    this.e = keys.skEi.length;
    if (keys.skAr.length !== this.a || keys.skEr.length !== this.e || keys.skPi.length !== this.p || keys.skPr.length !== this.p) {
      throw new CryptoError('IKE SA keys of unequal lengths');
    }
    this.block = keepConcat([keys.skD, keys.skAi, keys.skAr, keys.skEi, keys.skEr, keys.skPi, keys.skPr]);
  }

  private at(off: number, len: number): Buffer {
    return this.block.subarray(off, off + len);
  }
  get skD(): Buffer {
    return this.at(0, this.p);
  }
  get skAi(): Buffer {
    return this.at(this.p, this.a);
  }
  get skAr(): Buffer {
    return this.at(this.p + this.a, this.a);
  }
  get skEi(): Buffer {
    return this.at(this.p + 2 * this.a, this.e);
  }
  get skEr(): Buffer {
    return this.at(this.p + 2 * this.a + this.e, this.e);
  }
  get skPi(): Buffer {
    return this.at(this.p + 2 * this.a + 2 * this.e, this.p);
  }
  get skPr(): Buffer {
    return this.at(2 * this.p + 2 * this.a + 2 * this.e, this.p);
  }
}

/**
 * RFC 7296 §2.14: SKEYSEED = prf(Ni | Nr, g^ir);
 * {SK_d | SK_ai | SK_ar | SK_ei | SK_er | SK_pi | SK_pr} = prf+(SKEYSEED, Ni | Nr | SPIi | SPIr).
 * For the HMAC PRFs the PRF key is Ni | Nr as-is. SK_e* of an AEAD include the salt (key | salt).
 */
export function deriveIkeKeys(
  suite: IkeSuite,
  sharedSecret: Buffer,
  ni: Buffer,
  nr: Buffer,
  spiI: Buffer,
  spiR: Buffer,
): { skeyseed: Buffer; keys: IkeKeys } {
  const prf = new Prf(suite.prf);
  const skeyseed = prf.compute(Buffer.concat([ni, nr]), sharedSecret);
  const keymat = prf.plus(skeyseed, Buffer.concat([ni, nr, spiI, spiR]), ikeKeymatLength(suite));
  return { skeyseed, keys: splitIkeKeys(suite, keymat) };
}

/**
 * RFC 7296 §2.18 (IKE SA rekey): SKEYSEED = prf(SK_d (old), g^ir (new) | Ni | Nr) with the OLD
 * SA's PRF; the new keys are prf+(SKEYSEED, Ni | Nr | SPIi | SPIr) with the NEW suite's PRF and
 * the new SA's SPIs. With additional key exchanges (RFC 9370 §2.2.4) their secrets follow:
 * SKEYSEED = prf(SK_d (old), SK(0) | Ni | Nr | SK(1) | ... | SK(n)); `added` is SK(1) | ... | SK(n).
 */
export function deriveRekeyedIkeKeys(
  suite: IkeSuite,
  oldPrf: PrfAlg,
  oldSkD: Buffer,
  sharedSecret: Buffer,
  ni: Buffer,
  nr: Buffer,
  spiI: Buffer,
  spiR: Buffer,
  added?: Buffer,
): { skeyseed: Buffer; keys: IkeKeys } {
  const skeyseed = new Prf(oldPrf).compute(oldSkD, added ? [sharedSecret, ni, nr, added] : [sharedSecret, ni, nr]);
  const keymat = new Prf(suite.prf).plus(skeyseed, Buffer.concat([ni, nr, spiI, spiR]), ikeKeymatLength(suite));
  return { skeyseed, keys: splitIkeKeys(suite, keymat) };
}

/**
 * RFC 9370 §2.2.2: after each additional key exchange in IKE_INTERMEDIATE the IKE SA's keys are
 * replaced: SKEYSEED(n) = prf(SK_d(n-1), SK(n) | Ni | Nr);
 * {SK_d(n) | SK_ai(n) | ... | SK_pr(n)} = prf+(SKEYSEED(n), Ni | Nr | SPIi | SPIr), same PRF and SPIs.
 */
export function deriveAdditionalIkeKeys(
  suite: IkeSuite,
  prevSkD: Buffer,
  sharedSecret: Buffer,
  ni: Buffer,
  nr: Buffer,
  spiI: Buffer,
  spiR: Buffer,
): { skeyseed: Buffer; keys: IkeKeys } {
  return deriveRekeyedIkeKeys(suite, suite.prf, prevSkD, sharedSecret, ni, nr, spiI, spiR);
}

/**
 * CHILD SA keys. "I" = initiator-to-responder direction, "R" = responder-to-initiator.
 * For AEAD, encX is key | salt and integX is empty.
 */
export interface ChildKeys {
  encI: Buffer;
  integI: Buffer;
  encR: Buffer;
  integR: Buffer;
}

/**
 * RFC 7296 §2.17: KEYMAT = prf+(SK_d, Ni | Nr), or prf+(SK_d, g^ir (new) | Ni | Nr) with PFS.
 * With additional key exchanges (RFC 9370 §2.2.4): prf+(SK_d, SK(0) | Ni | Nr | SK(1) | ... | SK(n)),
 * `added` being SK(1) | ... | SK(n).
 * Keys for initiator-to-responder traffic come first; within a direction, the encryption key
 * first, then the integrity key.
 */
export function deriveChildKeys(
  prf: PrfAlg,
  skD: Buffer,
  encr: EncrAlg,
  integ: IntegAlg | null,
  ni: Buffer,
  nr: Buffer,
  pfsSecret?: Buffer,
  added?: Buffer,
): ChildKeys {
  const e = encr.keymatLen;
  const a = integ ? integ.keyLen : 0;
  const seed = pfsSecret ? Buffer.concat(added ? [pfsSecret, ni, nr, added] : [pfsSecret, ni, nr]) : Buffer.concat([ni, nr]);
  const km = new Prf(prf).plus(skD, seed, 2 * (e + a));
  return {
    encI: keep(km.subarray(0, e)),
    integI: keep(km.subarray(e, e + a)),
    encR: keep(km.subarray(e + a, 2 * e + a)),
    integR: keep(km.subarray(2 * e + a, 2 * (e + a))),
  };
}
