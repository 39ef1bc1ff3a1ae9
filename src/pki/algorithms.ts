/**
 * Signature AlgorithmIdentifiers (RFC 5280 §4.1.1.2, RFC 4055, RFC 5758, RFC 8410) as used in
 * certificates, CRLs and RFC 7427 AUTH payloads: strict parsing, their encodings, and
 * verification with node:crypto.
 */
import { constants, verify as cryptoVerify, type KeyObject } from 'node:crypto';
import { DER_NULL, DerError, DerReader, ctx, enc, encOid, encUint, readOid, readSmallUint, Tag } from './der.ts';

export type HashName = 'sha1' | 'sha224' | 'sha256' | 'sha384' | 'sha512';
export type SigKey = 'rsa' | 'ecdsa' | 'ed25519' | 'ed448';

/** A parsed signature algorithm. */
export interface SigAlg {
  /** Display name ("sha256WithRSAEncryption", "RSASSA-PSS/sha256", "ecdsa-with-SHA384", "Ed25519"). */
  readonly name: string;
  readonly key: SigKey;
  /** The hash (undefined for EdDSA, which signs the message itself). */
  readonly hash?: HashName;
  /** RSASSA-PSS salt length (the MGF1 hash is always `hash`); undefined for PKCS#1 v1.5. */
  readonly pssSalt?: number;
}

export const OID = {
  rsaEncryption: '1.2.840.113549.1.1.1',
  md5WithRSA: '1.2.840.113549.1.1.4',
  sha1WithRSA: '1.2.840.113549.1.1.5',
  rsassaPss: '1.2.840.113549.1.1.10',
  mgf1: '1.2.840.113549.1.1.8',
  sha256WithRSA: '1.2.840.113549.1.1.11',
  sha384WithRSA: '1.2.840.113549.1.1.12',
  sha512WithRSA: '1.2.840.113549.1.1.13',
  sha224WithRSA: '1.2.840.113549.1.1.14',
  ecdsaSha1: '1.2.840.10045.4.1',
  ecdsaSha224: '1.2.840.10045.4.3.1',
  ecdsaSha256: '1.2.840.10045.4.3.2',
  ecdsaSha384: '1.2.840.10045.4.3.3',
  ecdsaSha512: '1.2.840.10045.4.3.4',
  ed25519: '1.3.101.112',
  ed448: '1.3.101.113',
  sha1: '1.3.14.3.2.26',
  sha256: '2.16.840.1.101.3.4.2.1',
  sha384: '2.16.840.1.101.3.4.2.2',
  sha512: '2.16.840.1.101.3.4.2.3',
  sha224: '2.16.840.1.101.3.4.2.4',
} as const;

const HASH_BY_OID = new Map<string, HashName>([
  [OID.sha1, 'sha1'],
  [OID.sha224, 'sha224'],
  [OID.sha256, 'sha256'],
  [OID.sha384, 'sha384'],
  [OID.sha512, 'sha512'],
]);
const HASH_OID: Record<HashName, string> = {
  sha1: OID.sha1,
  sha224: OID.sha224,
  sha256: OID.sha256,
  sha384: OID.sha384,
  sha512: OID.sha512,
};
export const HASH_SIZE: Record<HashName, number> = { sha1: 20, sha224: 28, sha256: 32, sha384: 48, sha512: 64 };

interface Simple {
  name: string;
  key: SigKey;
  hash?: HashName;
  /** Parameters: 'null' = NULL or absent (RSA PKCS#1), 'absent' = must be absent. */
  params: 'null' | 'absent';
}

const SIMPLE = new Map<string, Simple>([
  [OID.sha1WithRSA, { name: 'sha1WithRSAEncryption', key: 'rsa', hash: 'sha1', params: 'null' }],
  [OID.sha224WithRSA, { name: 'sha224WithRSAEncryption', key: 'rsa', hash: 'sha224', params: 'null' }],
  [OID.sha256WithRSA, { name: 'sha256WithRSAEncryption', key: 'rsa', hash: 'sha256', params: 'null' }],
  [OID.sha384WithRSA, { name: 'sha384WithRSAEncryption', key: 'rsa', hash: 'sha384', params: 'null' }],
  [OID.sha512WithRSA, { name: 'sha512WithRSAEncryption', key: 'rsa', hash: 'sha512', params: 'null' }],
  [OID.ecdsaSha1, { name: 'ecdsa-with-SHA1', key: 'ecdsa', hash: 'sha1', params: 'absent' }],
  [OID.ecdsaSha224, { name: 'ecdsa-with-SHA224', key: 'ecdsa', hash: 'sha224', params: 'absent' }],
  [OID.ecdsaSha256, { name: 'ecdsa-with-SHA256', key: 'ecdsa', hash: 'sha256', params: 'absent' }],
  [OID.ecdsaSha384, { name: 'ecdsa-with-SHA384', key: 'ecdsa', hash: 'sha384', params: 'absent' }],
  [OID.ecdsaSha512, { name: 'ecdsa-with-SHA512', key: 'ecdsa', hash: 'sha512', params: 'absent' }],
  [OID.ed25519, { name: 'Ed25519', key: 'ed25519', params: 'absent' }],
  [OID.ed448, { name: 'Ed448', key: 'ed448', params: 'absent' }],
]);

const KNOWN_NAMES = new Map<string, string>([[OID.md5WithRSA, 'md5WithRSAEncryption']]);

/** A hash AlgorithmIdentifier (parameters NULL or absent). */
function readHashAlg(r: DerReader, what: string): HashName {
  const a = r.enter(what);
  const oid = readOid(a, what);
  const hash = HASH_BY_OID.get(oid);
  if (!hash) throw new DerError(`${what}: unknown hash algorithm ${oid}`);
  if (!a.done) {
    const p = a.expect(Tag.NULL, `${what} parameters`);
    if (p.end !== p.valueStart) throw new DerError(`${what}: invalid NULL`);
  }
  a.finish(what);
  return hash;
}

/** RSASSA-PSS-params (RFC 4055 §3.1); every field has a default (SHA-1, MGF1-SHA-1, 20, 1). */
function readPssParams(r: DerReader): { hash: HashName; mgfHash: HashName; salt: number } {
  let hash: HashName = 'sha1';
  let mgfHash: HashName = 'sha1';
  let salt = 20;
  const p = r.enter('RSASSA-PSS parameters');
  const h = p.optional(ctx(0, true), 'hashAlgorithm');
  if (h) {
    const hr = DerReader.inside(p.buf, h, 'hashAlgorithm');
    hash = readHashAlg(hr, 'hashAlgorithm');
    hr.finish('hashAlgorithm');
  }
  const m = p.optional(ctx(1, true), 'maskGenAlgorithm');
  if (m) {
    const mr = DerReader.inside(p.buf, m, 'maskGenAlgorithm').enter('maskGenAlgorithm');
    const oid = readOid(mr, 'maskGenAlgorithm');
    if (oid !== OID.mgf1) throw new DerError(`maskGenAlgorithm: unknown mask generation function ${oid}`);
    mgfHash = readHashAlg(mr, 'MGF1 hash');
    mr.finish('maskGenAlgorithm');
  }
  const s = p.optional(ctx(2, true), 'saltLength');
  if (s) {
    const sr = DerReader.inside(p.buf, s, 'saltLength');
    salt = readSmallUint(sr, 'saltLength');
    sr.finish('saltLength');
    if (salt > 1024) throw new DerError(`saltLength ${salt} is too large`);
  }
  const t = p.optional(ctx(3, true), 'trailerField');
  if (t) {
    const tr = DerReader.inside(p.buf, t, 'trailerField');
    const trailer = readSmallUint(tr, 'trailerField');
    tr.finish('trailerField');
    if (trailer !== 1) throw new DerError(`trailerField ${trailer} is not 1`);
  }
  p.finish('RSASSA-PSS parameters');
  return { hash, mgfHash, salt };
}

/**
 * Parses the contents of an AlgorithmIdentifier SEQUENCE (reader positioned inside it, which must
 * be fully consumed). Throws DerError for malformed encodings and unknown or unsupported algorithms.
 */
export function readSigAlg(a: DerReader, what: string): SigAlg {
  const oid = readOid(a, what);
  if (oid === OID.rsassaPss) {
    const { hash, mgfHash, salt } = readPssParams(a);
    a.finish(what);
    if (mgfHash !== hash) throw new DerError(`${what}: RSASSA-PSS with MGF1-${mgfHash} and ${hash} is not supported`);
    return { name: `RSASSA-PSS/${hash}`, key: 'rsa', hash, pssSalt: salt };
  }
  const s = SIMPLE.get(oid);
  if (!s) {
    const known = KNOWN_NAMES.get(oid);
    throw new DerError(`${what}: ${known ? `${known} is not supported` : `unknown signature algorithm ${oid}`}`);
  }
  if (!a.done) {
    if (s.params === 'absent') throw new DerError(`${what}: ${s.name} must have no parameters`);
    const p = a.expect(Tag.NULL, `${what} parameters`);
    if (p.end !== p.valueStart) throw new DerError(`${what}: invalid NULL`);
  }
  a.finish(what);
  return s.hash ? { name: s.name, key: s.key, hash: s.hash } : { name: s.name, key: s.key };
}

/** Parses a complete DER AlgorithmIdentifier. */
export function parseSigAlg(der: Buffer, what: string): SigAlg {
  const r = new DerReader(der);
  const a = r.enter(what);
  r.finish(what);
  return readSigAlg(a, what);
}

/** The DER AlgorithmIdentifier we send for an algorithm (PKCS#1 with NULL, PSS with explicit params). */
export function encodeSigAlg(alg: SigAlg): Buffer {
  if (alg.pssSalt !== undefined) {
    const hash = alg.hash ?? 'sha1';
    const hashAlg = enc(Tag.SEQUENCE, encOid(HASH_OID[hash]), DER_NULL);
    return enc(
      Tag.SEQUENCE,
      encOid(OID.rsassaPss),
      enc(
        Tag.SEQUENCE,
        enc(ctx(0, true), hashAlg),
        enc(ctx(1, true), enc(Tag.SEQUENCE, encOid(OID.mgf1), hashAlg)),
        enc(ctx(2, true), encUint(alg.pssSalt)),
      ),
    );
  }
  for (const [oid, s] of SIMPLE) {
    if (s.key === alg.key && s.hash === alg.hash) {
      return s.params === 'null' ? enc(Tag.SEQUENCE, encOid(oid), DER_NULL) : enc(Tag.SEQUENCE, encOid(oid));
    }
  }
  throw new Error(`no encoding for ${alg.name}`);
}

export const RSA_PSS = (hash: HashName): SigAlg => ({ name: `RSASSA-PSS/${hash}`, key: 'rsa', hash, pssSalt: HASH_SIZE[hash] });
export const RSA_PKCS1 = (hash: HashName): SigAlg => ({ name: `${hash}WithRSAEncryption`, key: 'rsa', hash });
export const ECDSA = (hash: HashName): SigAlg => ({ name: `ecdsa-with-${hash.toUpperCase()}`, key: 'ecdsa', hash });
export const EDDSA = (key: 'ed25519' | 'ed448'): SigAlg => ({ name: key === 'ed25519' ? 'Ed25519' : 'Ed448', key });

/** The KeyObject type a signature algorithm needs. */
export function keyTypeFor(alg: SigAlg): string {
  return alg.key === 'ecdsa' ? 'ec' : alg.key;
}

/** Arguments for node:crypto sign/verify. */
export function cryptoArgs(
  alg: SigAlg,
  key: KeyObject,
  ecdsaEncoding: 'der' | 'ieee-p1363',
): { hash: string | null; key: KeyObject | { key: KeyObject; padding?: number; saltLength?: number; dsaEncoding?: 'der' | 'ieee-p1363' } } {
  if (alg.key === 'ed25519' || alg.key === 'ed448') return { hash: null, key };
  if (alg.key === 'ecdsa') return { hash: alg.hash ?? null, key: { key, dsaEncoding: ecdsaEncoding } };
  if (alg.pssSalt !== undefined) {
    return { hash: alg.hash ?? null, key: { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: alg.pssSalt } };
  }
  return { hash: alg.hash ?? null, key: { key, padding: constants.RSA_PKCS1_PADDING } };
}

/** Synchronous verification (certificate and CRL signatures; ECDSA DER-encoded). False on any error. */
export function verifySync(alg: SigAlg, pub: KeyObject, data: Buffer, sig: Buffer): boolean {
  if (pub.asymmetricKeyType !== keyTypeFor(alg)) return false;
  const a = cryptoArgs(alg, pub, 'der');
  try {
    return cryptoVerify(a.hash, data, a.key, sig);
  } catch {
    return false;
  }
}
