/**
 * IKEv2 signature AUTH (RFC 7296 §3.8, RFC 7427, RFC 8420).
 *
 * Classic methods: 1 = RSASSA-PKCS1-v1_5 with SHA-1 (RFC 7296; RFC 4718 §3.2 names the hash),
 * 9/10/11 = ECDSA P-256/SHA-256, P-384/SHA-384, P-521/SHA-512 with r||s signatures (RFC 4754).
 * Method 14 (RFC 7427 §3): one octet with the length of the DER AlgorithmIdentifier that follows,
 * then the signature; ECDSA signatures are DER Ecdsa-Sig-Value there, EdDSA signs the octets
 * themselves (hash IDENTITY, RFC 8420).
 *
 * The hash a key signs with follows strongSwan's choice: the first of SHA-256, SHA-384, SHA-512
 * the peer announced, skipping hashes too weak for the key (RSA above 3072 bits starts at
 * SHA-384, above 7680 at SHA-512; ECDSA P-384 at SHA-384, P-521 at SHA-512).
 *
 * Signing and verifying use node:crypto's callback forms, which run on libuv's thread pool.
 */
import { sign as cryptoSign, verify as cryptoVerify, type KeyObject } from 'node:crypto';
import { AuthMethod } from '../ikev2/constants.ts';
import type { AuthSignature, AuthVerifyOptions, KeyKind, PrivateKey, PublicKeyInfo, SignOptions } from './api.ts';
import { cryptoArgs, ECDSA, EDDSA, encodeSigAlg, keyTypeFor, parseSigAlg, RSA_PKCS1, RSA_PSS, type HashName, type SigAlg } from './algorithms.ts';
import { DerError } from './der.ts';
import { HASH_ALGORITHMS, PkiError } from './errors.ts';

/** Our SIGNATURE_HASH_ALGORITHMS (RFC 7427 §4), SHA-1 first when allowed. */
export function ourHashAlgorithms(allowSha1: boolean): number[] {
  const out: number[] = [HASH_ALGORITHMS.SHA2_256, HASH_ALGORITHMS.SHA2_384, HASH_ALGORITHMS.SHA2_512, HASH_ALGORITHMS.IDENTITY];
  return allowSha1 ? [HASH_ALGORITHMS.SHA1, ...out] : out;
}

const IKE_HASH: Record<HashName, number | undefined> = {
  sha1: HASH_ALGORITHMS.SHA1,
  sha224: undefined,
  sha256: HASH_ALGORITHMS.SHA2_256,
  sha384: HASH_ALGORITHMS.SHA2_384,
  sha512: HASH_ALGORITHMS.SHA2_512,
};

/** SHA-2 hashes a key may sign with, strongest-enough first (strongSwan's scheme order). */
function hashesFor(kind: KeyKind, bits: number): HashName[] {
  switch (kind) {
    case 'rsa':
      return bits <= 3072 ? ['sha256', 'sha384', 'sha512'] : bits <= 7680 ? ['sha384', 'sha512'] : ['sha512'];
    case 'ecdsa-256':
      return ['sha256', 'sha384', 'sha512'];
    case 'ecdsa-384':
      return ['sha384', 'sha512'];
    case 'ecdsa-521':
      return ['sha512'];
    default:
      return [];
  }
}

const CLASSIC_ECDSA: Record<string, { method: number; hash: HashName; size: number }> = {
  'ecdsa-256': { method: AuthMethod.ECDSA_SHA256_P256, hash: 'sha256', size: 32 },
  'ecdsa-384': { method: AuthMethod.ECDSA_SHA384_P384, hash: 'sha384', size: 48 },
  'ecdsa-521': { method: AuthMethod.ECDSA_SHA512_P521, hash: 'sha512', size: 66 },
};

function signAsync(alg: SigAlg, key: KeyObject, data: Buffer, encoding: 'der' | 'ieee-p1363'): Promise<Buffer> {
  const a = cryptoArgs(alg, key, encoding);
  return new Promise((resolve, reject) => {
    cryptoSign(a.hash, data, a.key, (err, sig) => (err ? reject(err) : resolve(sig)));
  });
}

function verifyAsync(alg: SigAlg, key: KeyObject, data: Buffer, sig: Buffer, encoding: 'der' | 'ieee-p1363'): Promise<boolean> {
  const a = cryptoArgs(alg, key, encoding);
  return new Promise((resolve) => {
    try {
      cryptoVerify(a.hash, data, a.key, sig, (err, ok) => resolve(!err && ok));
    } catch {
      resolve(false);
    }
  });
}

/** The method-14 algorithm for a key and the peer's hashes, or undefined when none fits. */
function chooseAlg(key: PrivateKey, peerHashes: readonly number[], rsaPss: boolean): SigAlg | undefined {
  if (key.kind === 'ed25519' || key.kind === 'ed448') {
    return peerHashes.includes(HASH_ALGORITHMS.IDENTITY) ? EDDSA(key.kind) : undefined;
  }
  const hash = hashesFor(key.kind, key.bits).find((h) => peerHashes.includes(IKE_HASH[h]!));
  if (!hash) return undefined;
  if (key.kind === 'rsa') return rsaPss ? RSA_PSS(hash) : RSA_PKCS1(hash);
  return ECDSA(hash);
}

/** Signs AUTH octets (see the module comment for the choice of method). */
export async function signAuth(
  key: PrivateKey,
  octets: Buffer,
  peerHashes: readonly number[] | undefined,
  opts?: SignOptions,
): Promise<AuthSignature> {
  if (peerHashes) {
    const alg = chooseAlg(key, peerHashes, opts?.rsaPss ?? true);
    if (alg) {
      const algId = encodeSigAlg(alg);
      const sig = await signAsync(alg, key.key, octets, 'der');
      return { method: AuthMethod.DIGITAL_SIGNATURE, data: Buffer.concat([Buffer.from([algId.length]), algId, sig]) };
    }
  }
  if (key.kind === 'rsa') {
    return { method: AuthMethod.RSA_SIG, data: await signAsync(RSA_PKCS1('sha1'), key.key, octets, 'der') };
  }
  const classic = CLASSIC_ECDSA[key.kind];
  if (classic) {
    return { method: classic.method, data: await signAsync(ECDSA(classic.hash), key.key, octets, 'ieee-p1363') };
  }
  throw new PkiError(
    `${key.kind === 'ed25519' ? 'Ed25519' : 'Ed448'} keys need RFC 7427 signature authentication with hash IDENTITY, which the peer did not announce`,
  );
}

function kindMatches(alg: SigAlg, kind: KeyKind): boolean {
  if (alg.key === 'ecdsa') return kind.startsWith('ecdsa-');
  return alg.key === kind;
}

/** Verifies a received signature AUTH; resolves to undefined or the reason it is not valid. */
export async function verifyAuth(
  pub: PublicKeyInfo,
  method: number,
  data: Buffer,
  octets: Buffer,
  opts: AuthVerifyOptions,
): Promise<string | undefined> {
  try {
    if (method === AuthMethod.RSA_SIG) {
      if (pub.kind !== 'rsa') return `AUTH method 1 (RSA) with a ${pub.kind} key`;
      if (!opts.allowSha1) return 'AUTH method 1 signs with SHA-1, which is not allowed';
      return (await verifyAsync(RSA_PKCS1('sha1'), pub.publicKey, octets, data, 'der')) ? undefined : 'bad signature';
    }
    const classicKind = Object.entries(CLASSIC_ECDSA).find(([, c]) => c.method === method);
    if (classicKind) {
      const [kind, c] = classicKind;
      if (pub.kind !== kind) return `AUTH method ${method} (${kind.toUpperCase()}) with a ${pub.kind} key`;
      if (data.length !== 2 * c.size) return `ECDSA signature of ${data.length} bytes, expected ${2 * c.size}`;
      return (await verifyAsync(ECDSA(c.hash), pub.publicKey, octets, data, 'ieee-p1363')) ? undefined : 'bad signature';
    }
    if (method !== AuthMethod.DIGITAL_SIGNATURE) return `AUTH method ${method} is not a supported signature method`;
    if (data.length < 1) return 'empty AUTH data';
    const len = data[0]!;
    if (len === 0 || 1 + len > data.length) return 'truncated AlgorithmIdentifier in AUTH data';
    let alg: SigAlg;
    try {
      alg = parseSigAlg(data.subarray(1, 1 + len), 'AlgorithmIdentifier');
    } catch (e) {
      if (e instanceof DerError) return e.message;
      throw e;
    }
    const sig = data.subarray(1 + len);
    if (sig.length === 0) return 'AUTH data holds no signature';
    if (!kindMatches(alg, pub.kind)) return `signature algorithm ${alg.name} does not fit the peer's ${pub.kind} key`;
    if (alg.hash === 'sha1' && !opts.allowSha1) return `signature algorithm ${alg.name} uses SHA-1, which is not allowed`;
    if (alg.hash && IKE_HASH[alg.hash] === undefined) return `signature algorithm ${alg.name} uses a hash we did not announce`;
    if (pub.publicKey.asymmetricKeyType !== keyTypeFor(alg)) return `signature algorithm ${alg.name} does not fit the key`;
    return (await verifyAsync(alg, pub.publicKey, octets, sig, 'der')) ? undefined : `bad signature (${alg.name})`;
  } catch (e) {
    return `signature not verifiable: ${(e as Error).message}`;
  }
}
