/**
 * Protection of IKE messages: the Encrypted payload SK (RFC 7296 §3.14), AEAD transforms in it
 * (RFC 5282 for AES-GCM, RFC 7634 for ChaCha20-Poly1305) and Encrypted Fragment payloads SKF
 * (RFC 7383 §2.5).
 *
 * SK payload:  generic header (4) | IV | E(inner payloads | padding | pad length) | ICV
 * SKF payload: generic header (4) | fragment number (2) | total fragments (2) | IV | E(...) | ICV
 *
 * - AEAD: nonce = salt (last 4 bytes of SK_e*) | IV (8 bytes); associated data = the message from
 *   the first byte of the IKE header to the end of the SK/SKF payload header (for SKF including
 *   the fragment number and total fragments). The ICV is the AEAD tag. No padding is added
 *   (block size 1); the pad length byte is always present.
 * - CBC + INTEG: random 16-byte IV; ICV = HMAC(SK_a*, message from the IKE header up to the
 *   ICV), truncated to the transform's ICV length.
 *
 * Cipher and HMAC keys are KeyObjects made per message from the SA's keys (none are held).
 */
import {
  createCipheriv,
  createDecipheriv,
  createHmac,
  createSecretKey,
  timingSafeEqual,
  type CipherGCMTypes,
  type KeyObject,
} from 'node:crypto';
import { ParseError } from '../../common/bytes.ts';
import { HEADER_FLAG_MASK, IKE_HEADER_LEN } from '../codec/header.ts';
import type { IkeHeader, SkfPayload, SkPayload } from '../codec/types.ts';
import { Limits, PayloadType } from '../constants.ts';
import { CryptoError, IntegrityError } from './errors.ts';
import type { IkeKeys, IkeSuite } from './prf.ts';
import type { EncrAlg } from './suites.ts';

export { IntegrityError } from './errors.ts';

const SK_HEADER_LEN = 4;
const SKF_HEADER_LEN = 8;
const SPI_LEN = 8;

/**
 * AEAD nonce scratch (salt | IV) shared by every IkeCipher: seal and open are synchronous and node
 * copies the nonce when the cipher is created. One per length.
 */
const nonceScratch: Buffer[] = [];
function nonceOf(salt: Buffer, iv: Buffer): Buffer {
  const n = salt.length + iv.length;
  let b = nonceScratch[n];
  if (!b) nonceScratch[n] = b = Buffer.alloc(n);
  salt.copy(b, 0);
  iv.copy(b, salt.length);
  return b;
}

/** Writes the 28-byte IKE header with the given Next Payload and Length. */
function writeHeader(buf: Buffer, h: IkeHeader, nextPayload: number, length: number): void {
  if (h.spiI.length !== SPI_LEN || h.spiR.length !== SPI_LEN) {
    throw new RangeError(`IKE SPIs must be ${SPI_LEN} bytes (got ${h.spiI.length} and ${h.spiR.length})`);
  }
  h.spiI.copy(buf, 0);
  h.spiR.copy(buf, 8);
  buf[16] = nextPayload;
  buf[17] = h.version;
  buf[18] = h.exchange;
  buf[19] = h.flags & HEADER_FLAG_MASK;
  buf.writeUInt32BE(h.messageId >>> 0, 20);
  buf.writeUInt32BE(length, 24);
}

/**
 * AEAD encryption as used by IKEv2 and ESP (RFC 4106 / RFC 5282 / RFC 7634): nonce = salt | iv.
 * Returns ciphertext | ICV (alg.icvLen bytes).
 */
export function aeadEncrypt(alg: EncrAlg, key: KeyObject, salt: Buffer, iv: Buffer, aad: Buffer, plaintext: Buffer): Buffer {
  const c = createCipheriv(alg.cipher as CipherGCMTypes, key, Buffer.concat([salt, iv]), { authTagLength: alg.icvLen });
  c.setAAD(aad);
  const ct = c.update(plaintext);
  c.final();
  return Buffer.concat([ct, c.getAuthTag()]);
}

/** The inverse of aeadEncrypt for ciphertext | ICV; throws IntegrityError when the tag does not verify. */
export function aeadDecrypt(alg: EncrAlg, key: KeyObject, salt: Buffer, iv: Buffer, aad: Buffer, data: Buffer): Buffer {
  if (data.length < alg.icvLen) throw new IntegrityError(`${alg.name}: ${data.length} bytes cannot hold the ICV`);
  const split = data.length - alg.icvLen;
  const d = createDecipheriv(alg.cipher as CipherGCMTypes, key, Buffer.concat([salt, iv]), { authTagLength: alg.icvLen });
  d.setAAD(aad);
  d.setAuthTag(data.subarray(split));
  const pt = d.update(data.subarray(0, split));
  try {
    d.final();
  } catch {
    throw new IntegrityError(`${alg.name}: authentication tag mismatch`);
  }
  return pt;
}

export class IkeCipher {
  readonly suite: IkeSuite;
  /**
   * The SA's keys, read per message: the cipher and HMAC KeyObjects are made for each message
   * (about a microsecond each) rather than held, so an idle IKE SA holds no native key handles.
   */
  private readonly keys: IkeKeys;
  private readonly initiator: boolean;
  private readonly random: (n: number) => Buffer;
  /**
   * AEAD IVs are a 64-bit counter that starts at a random value, so an IV is never used twice
   * with the same key by this instance (RFC 5282 §3.1, RFC 7634 §2). The halves are kept as
   * signed 32-bit values (the same bits), which V8 stores inline rather than as boxed doubles.
   */
  private ivHigh = 0;
  private ivLow = 0;
  private ivStarted = false;

  constructor(suite: IkeSuite, keys: IkeKeys, weAreInitiator: boolean, random: (n: number) => Buffer) {
    const { encr, integ } = suite;
    if (!encr.aead && !integ) throw new CryptoError(`${encr.name} needs an integrity algorithm`);
    this.suite = suite;
    this.random = random;
    this.keys = keys;
    this.initiator = weAreInitiator;
    const check = (skE: Buffer, skA: Buffer, which: string): void => {
      if (skE.length !== encr.keymatLen) {
        throw new CryptoError(`${which}: SK_e is ${skE.length} bytes, ${encr.name} needs ${encr.keymatLen}`);
      }
      if (!encr.aead && skA.length !== integ!.keyLen) {
        throw new CryptoError(`${which}: SK_a is ${skA.length} bytes, ${integ!.name} needs ${integ!.keyLen}`);
      }
    };
    check(keys.skEi, keys.skAi, 'initiator');
    check(keys.skEr, keys.skAr, 'responder');
  }

  private get ivLen(): number {
    return this.suite.encr.ivLen;
  }
  private get icvLen(): number {
    return this.suite.encr.aead ? this.suite.encr.icvLen : this.suite.integ!.icvLen;
  }
  private get blockSize(): number {
    return this.suite.encr.blockSize;
  }
  /** SK_e and SK_a of one direction: ours when sending, the peer's when receiving. */
  private skE(sending: boolean): Buffer {
    return sending === this.initiator ? this.keys.skEi : this.keys.skEr;
  }
  private skA(sending: boolean): Buffer {
    return sending === this.initiator ? this.keys.skAi : this.keys.skAr;
  }

  /** Build a whole IKE message: header (length and nextPayload filled in) + SK payload with the given plaintext inner chain. */
  seal(header: IkeHeader, innerFirstType: number, plaintext: Buffer): Buffer {
    return this.build(header, PayloadType.SK, innerFirstType, 0, 0, plaintext);
  }

  /**
   * Verify + decrypt the SK payload of a received message (message = whole IKE message bytes,
   * the SK payload being its last payload). Returns the inner payload chain bytes with padding
   * removed. Throws IntegrityError when the ICV/tag does not verify, ParseError for a malformed
   * payload (length not matching the transform, pad length larger than the data).
   */
  open(message: Buffer, sk: SkPayload): Buffer {
    const start = sk.offset + SK_HEADER_LEN;
    return this.decrypt(message, start, start + sk.body.length);
  }

  /**
   * RFC 7383: split into SKF fragments so that each UDP payload is at most maxDatagram bytes
   * (the caller subtracts the 4-byte non-ESP marker on port 4500). Fragment 1 carries
   * innerFirstType; the others have Next Payload 0. All fragments share the header's message ID.
   */
  sealFragments(header: IkeHeader, innerFirstType: number, plaintext: Buffer, maxDatagram: number): Buffer[] {
    const chunk = this.maxFragmentPlaintext(maxDatagram);
    if (chunk < 1) throw new CryptoError(`a datagram of ${maxDatagram} bytes cannot carry an encrypted fragment`);
    const total = Math.max(1, Math.ceil(plaintext.length / chunk));
    if (total > Limits.MAX_FRAGMENTS) {
      throw new CryptoError(`${plaintext.length} bytes need ${total} fragments, more than ${Limits.MAX_FRAGMENTS}`);
    }
    const out: Buffer[] = [];
    for (let n = 1; n <= total; n++) {
      const part = plaintext.subarray((n - 1) * chunk, n * chunk);
      out.push(this.build(header, PayloadType.SKF, n === 1 ? innerFirstType : PayloadType.NONE, n, total, part));
    }
    return out;
  }

  /** Verify + decrypt one SKF fragment; returns that fragment's share of the inner payload chain. */
  openFragment(message: Buffer, skf: SkfPayload): Buffer {
    if (skf.fragmentNumber < 1 || skf.fragmentNumber > skf.totalFragments) {
      throw new ParseError(`fragment ${skf.fragmentNumber} of ${skf.totalFragments}`, skf.offset + SK_HEADER_LEN);
    }
    const start = skf.offset + SKF_HEADER_LEN;
    return this.decrypt(message, start, start + skf.body.length);
  }

  /** The largest plaintext share one SKF fragment of a maxDatagram-byte message can carry (may be <= 0). */
  maxFragmentPlaintext(maxDatagram: number): number {
    const avail = Math.min(maxDatagram, Limits.MAX_MESSAGE) - IKE_HEADER_LEN - SKF_HEADER_LEN - this.ivLen - this.icvLen;
    const enc = this.blockSize > 1 ? Math.floor(avail / this.blockSize) * this.blockSize : avail;
    return enc - 1; // minus the pad length byte
  }

  /** Bytes an SK payload adds around a plaintext of the given length (header, IV, padding, ICV). */
  sealedLength(plaintextLen: number): number {
    return IKE_HEADER_LEN + SK_HEADER_LEN + this.ivLen + this.encryptedLength(plaintextLen) + this.icvLen;
  }

  private encryptedLength(plaintextLen: number): number {
    const bs = this.blockSize;
    const padLen = bs > 1 ? (bs - ((plaintextLen + 1) % bs)) % bs : 0;
    return plaintextLen + padLen + 1;
  }

  private nextIv(): Buffer {
    const n = this.ivLen;
    if (!this.suite.encr.aead) {
      const iv = this.random(n);
      if (iv.length !== n) throw new CryptoError(`random source returned ${iv.length} bytes, wanted ${n}`);
      return iv;
    }
    if (!this.ivStarted) {
      const seed = this.random(8);
      if (seed.length !== 8) throw new CryptoError(`random source returned ${seed.length} bytes, wanted 8`);
      this.ivHigh = seed.readInt32BE(0);
      this.ivLow = seed.readInt32BE(4);
      this.ivStarted = true;
    } else {
      this.ivLow = (this.ivLow + 1) | 0;
      if (this.ivLow === 0) this.ivHigh = (this.ivHigh + 1) | 0;
    }
    const iv = Buffer.allocUnsafe(8);
    iv.writeInt32BE(this.ivHigh, 0);
    iv.writeInt32BE(this.ivLow, 4);
    return iv;
  }

  private build(
    header: IkeHeader,
    payloadType: number,
    innerType: number,
    fragNum: number,
    fragTotal: number,
    plaintext: Buffer,
  ): Buffer {
    const encr = this.suite.encr;
    const phLen = payloadType === PayloadType.SKF ? SKF_HEADER_LEN : SK_HEADER_LEN;
    const encLen = this.encryptedLength(plaintext.length);
    const aadEnd = IKE_HEADER_LEN + phLen;
    const encStart = aadEnd + this.ivLen;
    const icvStart = encStart + encLen;
    const total = icvStart + this.icvLen;
    if (total > Limits.MAX_MESSAGE) {
      throw new CryptoError(`encrypted message of ${total} bytes exceeds ${Limits.MAX_MESSAGE}`);
    }
    const buf = Buffer.alloc(total);
    writeHeader(buf, header, payloadType, total);
    buf[IKE_HEADER_LEN] = innerType;
    buf[IKE_HEADER_LEN + 1] = 0;
    buf.writeUInt16BE(total - IKE_HEADER_LEN, IKE_HEADER_LEN + 2);
    if (payloadType === PayloadType.SKF) {
      buf.writeUInt16BE(fragNum, IKE_HEADER_LEN + 4);
      buf.writeUInt16BE(fragTotal, IKE_HEADER_LEN + 6);
    }
    const iv = this.nextIv();
    iv.copy(buf, aadEnd);

    // inner = plaintext | zero padding | pad length
    const inner = Buffer.alloc(encLen);
    plaintext.copy(inner, 0);
    inner[encLen - 1] = encLen - 1 - plaintext.length;

    const skE = this.skE(true);
    const encKey = createSecretKey(skE.subarray(0, encr.keyLen));
    if (encr.aead) {
      const nonce = nonceOf(skE.subarray(encr.keyLen), iv);
      const c = createCipheriv(encr.cipher as CipherGCMTypes, encKey, nonce, { authTagLength: this.icvLen });
      c.setAAD(buf.subarray(0, aadEnd));
      c.update(inner).copy(buf, encStart);
      c.final();
      c.getAuthTag().copy(buf, icvStart);
    } else {
      const c = createCipheriv(encr.cipher, encKey, iv);
      c.setAutoPadding(false);
      const ct = c.update(inner);
      ct.copy(buf, encStart);
      c.final();
      const mac = createHmac(this.suite.integ!.hash, createSecretKey(this.skA(true))).update(buf.subarray(0, icvStart)).digest();
      mac.copy(buf, icvStart, 0, this.icvLen);
    }
    return buf;
  }

  private decrypt(message: Buffer, bodyStart: number, bodyEnd: number): Buffer {
    if (bodyStart < IKE_HEADER_LEN + SK_HEADER_LEN || bodyEnd > message.length || bodyStart > bodyEnd) {
      throw new ParseError(`encrypted payload body ${bodyStart}..${bodyEnd} outside the ${message.length}-byte message`, 0);
    }
    const encr = this.suite.encr;
    const encStart = bodyStart + this.ivLen;
    const icvStart = bodyEnd - this.icvLen;
    const encLen = icvStart - encStart;
    if (encLen < 1) {
      throw new ParseError(`encrypted payload too short for ${encr.name}: ${bodyEnd - bodyStart} bytes`, bodyStart);
    }
    if (encLen % this.blockSize !== 0) {
      throw new ParseError(`encrypted data of ${encLen} bytes is not a multiple of the ${this.blockSize}-byte block`, encStart);
    }
    const iv = message.subarray(bodyStart, encStart);
    const skE = this.skE(false);
    const encKey = createSecretKey(skE.subarray(0, encr.keyLen));
    let inner: Buffer;
    if (encr.aead) {
      const d = createDecipheriv(encr.cipher as CipherGCMTypes, encKey, nonceOf(skE.subarray(encr.keyLen), iv), { authTagLength: this.icvLen });
      d.setAAD(message.subarray(0, bodyStart));
      d.setAuthTag(message.subarray(icvStart, bodyEnd));
      inner = d.update(message.subarray(encStart, icvStart));
      try {
        d.final();
      } catch {
        throw new IntegrityError(`${encr.name}: authentication tag mismatch`);
      }
    } else {
      const mac = createHmac(this.suite.integ!.hash, createSecretKey(this.skA(false))).update(message.subarray(0, icvStart)).digest();
      if (!timingSafeEqual(mac.subarray(0, this.icvLen), message.subarray(icvStart, bodyEnd))) {
        throw new IntegrityError(`${this.suite.integ!.name}: integrity check value mismatch`);
      }
      const d = createDecipheriv(encr.cipher, encKey, iv);
      d.setAutoPadding(false);
      inner = d.update(message.subarray(encStart, icvStart));
      d.final();
    }
    const padLen = inner[inner.length - 1]!;
    if (padLen + 1 > inner.length) {
      throw new ParseError(`pad length ${padLen} exceeds the ${inner.length - 1} decrypted bytes`, icvStart - 1);
    }
    return inner.subarray(0, inner.length - 1 - padLen);
  }
}
