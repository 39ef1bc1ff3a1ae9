/**
 * IKEv2 key exchange (Diffie-Hellman) on node:crypto: MODP groups 14-18 (RFC 3526), NIST ECP
 * groups 19-21 (RFC 5903) and Curve25519/Curve448 (RFC 8031).
 *
 * Wire formats (the KE payload's Key Exchange Data):
 * - MODP: g^x mod p, big-endian, left-padded with zeros to the length of the prime.
 * - ECP: x || y, each coordinate padded to the field size, without the 0x04 prefix (RFC 5903 §7);
 *   the shared secret is the x coordinate of the shared point only.
 * - X25519/X448: the u coordinate as in RFC 7748 (little-endian, 32 or 56 bytes).
 * - ML-KEM-512/768/1024 (FIPS 203, a KEM): the initiator sends its encapsulation key (800, 1184,
 *   1568 bytes), the responder the ciphertext (768, 1088, 1568 bytes); the shared secret is the
 *   32-byte key both derive. The initiator's key is checked as FIPS 203 §7.2 asks (OpenSSL's import).
 *
 * Peer values are validated before use; every refusal is a CryptoError.
 */
import {
  createDiffieHellman,
  createECDH,
  createPrivateKey,
  createPublicKey,
  decapsulate,
  diffieHellman,
  encapsulate,
  generateKeyPairSync,
  getDiffieHellman,
  type DiffieHellmanGroup,
  type DiffieHellman,
  type ECDH,
  type KeyObject,
} from 'node:crypto';
import { CryptoError } from './errors.ts';
import { keGroup, type KeGroupInfo } from './suites.ts';

export { CryptoError } from './errors.ts';

export interface KeyExchange {
  readonly group: number;
  /** Our public value in KE payload format. */
  readonly publicValue: Buffer;
  /** The shared secret g^ir for the peer's KE payload data; throws CryptoError for an invalid value. */
  computeSecret(peer: Buffer): Buffer;
}

/** OpenSSL names of the RFC 3526 groups (node's getDiffieHellman). */
const MODP_NAMES: Record<number, string> = { 14: 'modp14', 15: 'modp15', 16: 'modp16', 17: 'modp17', 18: 'modp18' };
const ECP_CURVES: Record<number, string> = { 19: 'prime256v1', 20: 'secp384r1', 21: 'secp521r1' };

/** DER prefixes that wrap a raw X25519/X448 key in SPKI / PKCS#8 (RFC 8410). */
const SPKI_PREFIX = {
  x25519: Buffer.from('302a300506032b656e032100', 'hex'),
  x448: Buffer.from('3042300506032b656f033900', 'hex'),
} as const;
const PKCS8_PREFIX = {
  x25519: Buffer.from('302e020100300506032b656e04220420', 'hex'),
  x448: Buffer.from('3046020100300506032b656f043a0438', 'hex'),
} as const;

function leftPad(b: Buffer, len: number): Buffer {
  if (b.length === len) return b;
  if (b.length > len) throw new CryptoError(`value of ${b.length} bytes exceeds ${len}`);
  const out = Buffer.alloc(len);
  b.copy(out, len - b.length);
  return out;
}

function isAllZero(b: Buffer): boolean {
  let acc = 0;
  for (let i = 0; i < b.length; i++) acc |= b[i]!;
  return acc === 0;
}

function checkLength(info: KeGroupInfo, peer: Buffer): void {
  if (peer.length !== info.publicLen) {
    throw new CryptoError(`${info.name}: peer key exchange data is ${peer.length} bytes, expected ${info.publicLen}`);
  }
}

// ---------------------------------------------------------------------------------------------
// MODP

interface ModpParams {
  prime: Buffer;
  /** p - 1, for the range check 1 < y < p-1. */
  primeMinus1: Buffer;
}
const modpParams = new Map<number, ModpParams>();

function getModpParams(group: number): ModpParams {
  let p = modpParams.get(group);
  if (!p) {
    const prime = getDiffieHellman(MODP_NAMES[group]!).getPrime();
    const primeMinus1 = Buffer.from(prime);
    // RFC 3526 primes are odd, so p-1 only clears the lowest bit.
    primeMinus1[primeMinus1.length - 1]! &= 0xfe;
    p = { prime, primeMinus1 };
    modpParams.set(group, p);
  }
  return p;
}

/** True when 1 < y < p-1, with y and p-1 both big-endian of the prime's length. */
function modpInRange(y: Buffer, pMinus1: Buffer): boolean {
  // y > 1: some byte before the last is non-zero, or the last byte is > 1.
  let high = 0;
  for (let i = 0; i < y.length - 1; i++) high |= y[i]!;
  if (high === 0 && y[y.length - 1]! <= 1) return false;
  return Buffer.compare(y, pMinus1) < 0;
}

class ModpKeyExchange implements KeyExchange {
  readonly group: number;
  readonly publicValue: Buffer;
  private readonly info: KeGroupInfo;
  private readonly dh: DiffieHellmanGroup | DiffieHellman;

  constructor(info: KeGroupInfo, privateKey?: Buffer) {
    this.info = info;
    this.group = info.id;
    const params = getModpParams(info.id);
    if (privateKey) {
      const dh = createDiffieHellman(params.prime, Buffer.from([2]));
      dh.setPrivateKey(privateKey);
      dh.generateKeys(); // keeps the private key set above, computes g^x mod p
      this.dh = dh;
    } else {
      this.dh = getDiffieHellman(MODP_NAMES[info.id]!);
      this.dh.generateKeys();
    }
    this.publicValue = leftPad(this.dh.getPublicKey(), info.publicLen);
  }

  computeSecret(peer: Buffer): Buffer {
    checkLength(this.info, peer);
    if (!modpInRange(peer, getModpParams(this.group).primeMinus1)) {
      throw new CryptoError(`${this.info.name}: peer public value outside 1 < y < p-1`);
    }
    let secret: Buffer;
    try {
      secret = this.dh.computeSecret(peer);
    } catch (e) {
      throw new CryptoError(`${this.info.name}: ${(e as Error).message}`);
    }
    return leftPad(secret, this.info.publicLen);
  }
}

// ---------------------------------------------------------------------------------------------
// ECP

const POINT_UNCOMPRESSED = Buffer.from([0x04]);

class EcpKeyExchange implements KeyExchange {
  readonly group: number;
  readonly publicValue: Buffer;
  private readonly info: KeGroupInfo;
  private readonly ecdh: ECDH;

  constructor(info: KeGroupInfo, privateKey?: Buffer) {
    this.info = info;
    this.group = info.id;
    this.ecdh = createECDH(ECP_CURVES[info.id]!);
    if (privateKey) {
      try {
        this.ecdh.setPrivateKey(leftPad(privateKey, info.publicLen / 2));
      } catch (e) {
        throw new CryptoError(`${info.name}: invalid private key: ${(e as Error).message}`);
      }
    } else {
      this.ecdh.generateKeys();
    }
    // Uncompressed SEC1 point 04 || x || y; IKEv2 sends x || y (RFC 5903 §7).
    this.publicValue = this.ecdh.getPublicKey().subarray(1);
  }

  computeSecret(peer: Buffer): Buffer {
    checkLength(this.info, peer);
    try {
      // node/OpenSSL decode the point and refuse one that is not on the curve or is the identity.
      return leftPad(this.ecdh.computeSecret(Buffer.concat([POINT_UNCOMPRESSED, peer])), this.info.publicLen / 2);
    } catch (e) {
      throw new CryptoError(`${this.info.name}: invalid peer point: ${(e as Error).message}`);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Curve25519 / Curve448

class MontgomeryKeyExchange implements KeyExchange {
  readonly group: number;
  readonly publicValue: Buffer;
  private readonly info: KeGroupInfo;
  private readonly kind: 'x25519' | 'x448';
  private readonly privateKey: KeyObject;

  constructor(info: KeGroupInfo, privateKey?: Buffer) {
    this.info = info;
    this.group = info.id;
    const kind = info.kind === 'x448' ? 'x448' : 'x25519';
    this.kind = kind;
    if (privateKey) {
      if (privateKey.length !== info.publicLen) {
        throw new CryptoError(`${info.name}: private key must be ${info.publicLen} bytes`);
      }
      this.privateKey = createPrivateKey({
        key: Buffer.concat([PKCS8_PREFIX[kind], privateKey]),
        format: 'der',
        type: 'pkcs8',
      });
      this.publicValue = rawPublic(createPublicKey(this.privateKey));
    } else {
      // generateKeyPairSync's overloads need a literal key type.
      const pair = kind === 'x448' ? generateKeyPairSync('x448') : generateKeyPairSync('x25519');
      this.privateKey = pair.privateKey;
      this.publicValue = rawPublic(pair.publicKey);
    }
  }

  computeSecret(peer: Buffer): Buffer {
    checkLength(this.info, peer);
    let secret: Buffer;
    try {
      // A PEM string rather than { key, format: 'der', type: 'spki' }: node first probes an options
      // object for being a KeyObject and a CryptoKey, two thrown and caught errors that cost about
      // twice the key parsing itself; a string skips both.
      const publicKey = createPublicKey(spkiPem(SPKI_PREFIX[this.kind], peer));
      secret = diffieHellman({ privateKey: this.privateKey, publicKey });
    } catch (e) {
      // OpenSSL itself refuses an all-zero result (a low-order peer point).
      throw new CryptoError(`${this.info.name}: key exchange failed: ${(e as Error).message}`);
    }
    // RFC 8031 §2.3: the all-zero value MUST be refused.
    if (isAllZero(secret)) throw new CryptoError(`${this.info.name}: all-zero shared secret`);
    return secret;
  }
}

/** A public key as PEM: the SPKI prefix of its type followed by the raw key bytes. */
function spkiPem(prefix: Buffer, raw: Buffer): string {
  return `-----BEGIN PUBLIC KEY-----\n${Buffer.concat([prefix, raw]).toString('base64')}\n-----END PUBLIC KEY-----\n`;
}

/** The raw public key bytes (JWK export is much cheaper than an SPKI export in node). */
function rawPublic(k: KeyObject): Buffer {
  const jwk = k.export({ format: 'jwk' });
  if (typeof jwk.x !== 'string') throw new CryptoError('public key export failed');
  return Buffer.from(jwk.x, 'base64url');
}

// ---------------------------------------------------------------------------------------------
// ML-KEM (a key encapsulation mechanism: the two sides send different things)

type MlKemType = 'ml-kem-512' | 'ml-kem-768' | 'ml-kem-1024';

function mlKemType(info: KeGroupInfo): MlKemType {
  return info.publicLen === 800 ? 'ml-kem-512' : info.publicLen === 1184 ? 'ml-kem-768' : 'ml-kem-1024';
}

/** The initiator's side: a key pair; the secret comes from decapsulating the responder's ciphertext. */
class MlKemKeyExchange implements KeyExchange {
  readonly group: number;
  readonly publicValue: Buffer;
  private readonly info: KeGroupInfo;
  private readonly privateKey: KeyObject;

  constructor(info: KeGroupInfo, seed?: Buffer) {
    this.info = info;
    this.group = info.id;
    const type = mlKemType(info);
    if (seed) {
      if (seed.length !== 64) throw new CryptoError(`${info.name}: the private seed must be 64 bytes`);
      this.privateKey = createPrivateKey({ key: seed, format: 'raw-seed', asymmetricKeyType: type });
      this.publicValue = createPublicKey(this.privateKey).export({ format: 'raw-public' });
    } else {
      const pair = generateKeyPairSync(type);
      this.privateKey = pair.privateKey;
      this.publicValue = pair.publicKey.export({ format: 'raw-public' });
    }
  }

  computeSecret(peer: Buffer): Buffer {
    if (peer.length !== this.info.responseLen) {
      throw new CryptoError(`${this.info.name}: peer ciphertext is ${peer.length} bytes, expected ${this.info.responseLen}`);
    }
    try {
      return decapsulate(this.privateKey, peer);
    } catch (e) {
      throw new CryptoError(`${this.info.name}: decapsulation failed: ${(e as Error).message}`);
    }
  }
}

/** The responder's side: encapsulate to the initiator's key; the ciphertext is our KE data. */
function mlKemEncapsulate(info: KeGroupInfo, peer: Buffer): { publicValue: Buffer; secret: Buffer } {
  checkLength(info, peer);
  let publicKey: KeyObject;
  try {
    publicKey = createPublicKey({ key: peer, format: 'raw-public', asymmetricKeyType: mlKemType(info) });
  } catch (e) {
    throw new CryptoError(`${info.name}: invalid encapsulation key: ${(e as Error).message}`);
  }
  const r = encapsulate(publicKey);
  return { publicValue: r.ciphertext, secret: r.sharedKey };
}

// ---------------------------------------------------------------------------------------------

function supported(group: number): KeGroupInfo {
  const info = keGroup(group);
  if (!info) throw new CryptoError(`unsupported key exchange method ${group}`);
  return info;
}

/** A fresh ephemeral key pair for the group. Throws CryptoError for an unsupported group. */
export function createKeyExchange(group: number): KeyExchange {
  const info = supported(group);
  switch (info.kind) {
    case 'modp':
      return new ModpKeyExchange(info);
    case 'ecp':
      return new EcpKeyExchange(info);
    case 'mlkem':
      return new MlKemKeyExchange(info);
    default:
      return new MontgomeryKeyExchange(info);
  }
}

/**
 * A key exchange with a given private key, for known-answer tests and reproducible runs.
 * MODP: the exponent x (big-endian); ECP: the scalar (big-endian); X25519/X448: the RFC 7748
 * scalar bytes; ML-KEM: the 64-byte seed (d | z) of FIPS 203.
 */
export function createKeyExchangeFromPrivate(group: number, privateKey: Buffer): KeyExchange {
  const info = supported(group);
  switch (info.kind) {
    case 'modp':
      return new ModpKeyExchange(info, privateKey);
    case 'ecp':
      return new EcpKeyExchange(info, privateKey);
    case 'mlkem':
      return new MlKemKeyExchange(info, privateKey);
    default:
      return new MontgomeryKeyExchange(info, privateKey);
  }
}

/** Whether createKeyExchange supports the group. */
export function isSupportedKeGroup(group: number): boolean {
  return keGroup(group) !== undefined;
}

/**
 * The responder's side of a key exchange: our public value (for ML-KEM the ciphertext) and the
 * shared secret for the peer's value, or undefined when the peer's value is not valid for the
 * group (the caller answers INVALID_SYNTAX). Other errors are thrown.
 */
export function respondKeyExchange(group: number, peerValue: Buffer): { publicValue: Buffer; secret: Buffer } | undefined {
  try {
    const info = supported(group);
    if (info.kind === 'mlkem') return mlKemEncapsulate(info, peerValue);
    const dh = createKeyExchange(group);
    const secret = dh.computeSecret(peerValue);
    return { publicValue: dh.publicValue, secret };
  } catch (e) {
    if (e instanceof CryptoError) return undefined;
    throw e;
  }
}
