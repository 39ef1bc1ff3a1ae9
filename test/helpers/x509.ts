/**
 * A minimal X.509 certificate and CRL builder for tests: DER made from keys generated in the test,
 * with every field the chain checks look at under the test's control (validity, basicConstraints,
 * keyUsage, subjectAltName, extensions, signature algorithm, a corrupted signature).
 */
import { createHash, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { parseIdentity } from '../../src/config/identity.ts';
import { cryptoArgs, ECDSA, EDDSA, encodeSigAlg, RSA_PKCS1, type SigAlg } from '../../src/pki/algorithms.ts';
import type { KeyUsage } from '../../src/pki/api.ts';
import { KEY_USAGE_BITS } from '../../src/pki/cert.ts';
import { ctx, enc, encOid, encUint, Tag } from '../../src/pki/der.ts';

export interface KeyPair {
  privateKey: KeyObject;
  publicKey: KeyObject;
}

export type TestKeyType = 'rsa2048' | 'rsa3072' | 'rsa4096' | 'rsa1024' | 'p256' | 'p384' | 'p521' | 'ed25519' | 'ed448' | 'secp256k1';

const keyCache = new Map<string, KeyPair>();

/** A key pair of the type; `slot` > 0 gives further distinct keys (cached per process). */
export function testKey(type: TestKeyType, slot = 0): KeyPair {
  const id = `${type}/${slot}`;
  const hit = keyCache.get(id);
  if (hit) return hit;
  let kp: KeyPair;
  switch (type) {
    case 'rsa1024':
    case 'rsa2048':
    case 'rsa3072':
    case 'rsa4096':
      kp = generateKeyPairSync('rsa', { modulusLength: Number(type.slice(3)) });
      break;
    case 'p256':
      kp = generateKeyPairSync('ec', { namedCurve: 'P-256' });
      break;
    case 'p384':
      kp = generateKeyPairSync('ec', { namedCurve: 'P-384' });
      break;
    case 'p521':
      kp = generateKeyPairSync('ec', { namedCurve: 'P-521' });
      break;
    case 'secp256k1':
      kp = generateKeyPairSync('ec', { namedCurve: 'secp256k1' });
      break;
    case 'ed25519':
      kp = generateKeyPairSync('ed25519');
      break;
    case 'ed448':
      kp = generateKeyPairSync('ed448');
      break;
  }
  keyCache.set(id, kp);
  return kp;
}

/** The certificate signature algorithm a key signs with by default. */
export function defaultSigAlg(key: KeyObject): SigAlg {
  switch (key.asymmetricKeyType) {
    case 'rsa':
      return RSA_PKCS1('sha256');
    case 'ec': {
      const c = key.asymmetricKeyDetails?.namedCurve;
      return ECDSA(c === 'secp384r1' ? 'sha384' : c === 'secp521r1' ? 'sha512' : 'sha256');
    }
    case 'ed25519':
      return EDDSA('ed25519');
    case 'ed448':
      return EDDSA('ed448');
    default:
      throw new Error(`no signature algorithm for ${key.asymmetricKeyType}`);
  }
}

function dn(s: string): Buffer {
  return parseIdentity(s).data;
}

function time(d: Date): Buffer {
  const y = d.getUTCFullYear();
  const p = (n: number) => String(n).padStart(2, '0');
  const rest = `${p(d.getUTCMonth() + 1)}${p(d.getUTCDate())}${p(d.getUTCHours())}${p(d.getUTCMinutes())}${p(d.getUTCSeconds())}Z`;
  if (y >= 1950 && y < 2050) return enc(Tag.UTC_TIME, Buffer.from(`${p(y % 100)}${rest}`, 'latin1'));
  return enc(Tag.GENERALIZED_TIME, Buffer.from(`${y}${rest}`, 'latin1'));
}

function ext(oid: string, critical: boolean, value: Buffer): Buffer {
  return enc(Tag.SEQUENCE, encOid(oid), ...(critical ? [Buffer.from([0x01, 0x01, 0xff])] : []), enc(Tag.OCTET_STRING, value));
}


function keyUsageValue(bits: string[]): Buffer {
  let v = 0;
  let last = -1;
  for (const b of bits) {
    const i = KEY_USAGE_BITS.indexOf(b as KeyUsage);
    if (i < 0) throw new Error(`unknown key usage ${b}`);
    v |= 1 << (15 - i);
    last = Math.max(last, i);
  }
  const nbytes = last >= 8 ? 2 : 1;
  const bytes = nbytes === 2 ? Buffer.from([v >> 8, v & 0xff]) : Buffer.from([v >> 8]);
  const unused = nbytes * 8 - (last + 1);
  return enc(Tag.BIT_STRING, Buffer.from([last < 0 ? 0 : unused]), last < 0 ? Buffer.alloc(0) : bytes);
}

function keyId(pub: KeyObject): Buffer {
  const spki = pub.export({ type: 'spki', format: 'der' });
  return createHash('sha1').update(spki).digest();
}

export interface Issuer {
  dn: string;
  key: KeyPair;
}

export interface CertSpec {
  subject: string;
  key: KeyPair;
  /** Signed by this issuer; self-signed when absent. */
  issuer?: Issuer;
  serial?: number | Buffer;
  notBefore?: Date;
  notAfter?: Date;
  /** basicConstraints (absent when undefined). */
  ca?: boolean;
  pathLen?: number;
  keyUsage?: string[];
  san?: { dns?: string[]; email?: string[]; ip?: Buffer[] };
  sigAlg?: SigAlg;
  /** Replaces the AlgorithmIdentifier (both copies) without changing how it is signed. */
  rawSigAlg?: Buffer;
  extensions?: { oid: string; critical: boolean; value: Buffer }[];
  version?: 1 | 3;
  corruptSignature?: boolean;
  /** subjectKeyIdentifier (default: SHA-1 of the SubjectPublicKeyInfo). */
  subjectKeyId?: Buffer;
}

function signWith(alg: SigAlg, key: KeyObject, data: Buffer): Buffer {
  const a = cryptoArgs(alg, key, 'der');
  return sign(a.hash, data, a.key);
}

/** Builds a DER certificate. */
export function buildCert(spec: CertSpec): Buffer {
  const issuer = spec.issuer ?? { dn: spec.subject, key: spec.key };
  const sigAlg = spec.sigAlg ?? defaultSigAlg(issuer.key.privateKey);
  const algId = spec.rawSigAlg ?? encodeSigAlg(sigAlg);
  const now = Date.now();
  const exts: Buffer[] = [];
  if (spec.ca !== undefined || spec.pathLen !== undefined) {
    exts.push(
      ext(
        '2.5.29.19',
        true,
        enc(Tag.SEQUENCE, ...(spec.ca ? [Buffer.from([0x01, 0x01, 0xff])] : []), ...(spec.pathLen !== undefined ? [encUint(spec.pathLen)] : [])),
      ),
    );
  }
  if (spec.keyUsage) exts.push(ext('2.5.29.15', true, keyUsageValue(spec.keyUsage)));
  if (spec.san) {
    const names: Buffer[] = [];
    for (const d of spec.san.dns ?? []) names.push(enc(ctx(2, false), Buffer.from(d, 'latin1')));
    for (const e of spec.san.email ?? []) names.push(enc(ctx(1, false), Buffer.from(e, 'latin1')));
    for (const ip of spec.san.ip ?? []) names.push(enc(ctx(7, false), ip));
    exts.push(ext('2.5.29.17', false, enc(Tag.SEQUENCE, ...names)));
  }
  if (spec.version !== 1) {
    exts.push(ext('2.5.29.14', false, enc(Tag.OCTET_STRING, spec.subjectKeyId ?? keyId(spec.key.publicKey))));
    exts.push(ext('2.5.29.35', false, enc(Tag.SEQUENCE, enc(ctx(0, false), keyId(issuer.key.publicKey)))));
  }
  for (const e of spec.extensions ?? []) exts.push(ext(e.oid, e.critical, e.value));
  const spki = spec.key.publicKey.export({ type: 'spki', format: 'der' });
  const tbs = enc(
    Tag.SEQUENCE,
    ...(spec.version === 1 ? [] : [enc(ctx(0, true), encUint(2))]),
    encUint(spec.serial ?? 1),
    algId,
    dn(issuer.dn),
    enc(Tag.SEQUENCE, time(spec.notBefore ?? new Date(now - 86_400_000)), time(spec.notAfter ?? new Date(now + 365 * 86_400_000))),
    dn(spec.subject),
    spki,
    ...(spec.version === 1 || exts.length === 0 ? [] : [enc(ctx(3, true), enc(Tag.SEQUENCE, ...exts))]),
  );
  const sig = signWith(sigAlg, issuer.key.privateKey, tbs);
  if (spec.corruptSignature) sig[sig.length >> 1] ^= 0x01;
  return enc(Tag.SEQUENCE, tbs, algId, enc(Tag.BIT_STRING, Buffer.from([0]), sig));
}

export interface CrlSpec {
  issuer: Issuer;
  thisUpdate?: Date;
  nextUpdate?: Date | null;
  revoked?: { serial: number | Buffer; date?: Date; reason?: number }[];
  sigAlg?: SigAlg;
  corruptSignature?: boolean;
  crlNumber?: number;
  /** Extra crlExtensions. */
  extensions?: { oid: string; critical: boolean; value: Buffer }[];
}

/** Builds a DER CRL (v2). */
export function buildCrl(spec: CrlSpec): Buffer {
  const sigAlg = spec.sigAlg ?? defaultSigAlg(spec.issuer.key.privateKey);
  const algId = encodeSigAlg(sigAlg);
  const now = Date.now();
  const entries = (spec.revoked ?? []).map((r) =>
    enc(
      Tag.SEQUENCE,
      encUint(r.serial),
      time(r.date ?? new Date(now - 3_600_000)),
      ...(r.reason !== undefined
        ? [enc(Tag.SEQUENCE, ext('2.5.29.21', false, enc(Tag.ENUMERATED, Buffer.from([r.reason]))))]
        : []),
    ),
  );
  const exts: Buffer[] = [ext('2.5.29.35', false, enc(Tag.SEQUENCE, enc(ctx(0, false), keyId(spec.issuer.key.publicKey))))];
  if (spec.crlNumber !== undefined) exts.push(ext('2.5.29.20', false, encUint(spec.crlNumber)));
  for (const e of spec.extensions ?? []) exts.push(ext(e.oid, e.critical, e.value));
  const next = spec.nextUpdate === undefined ? new Date(now + 7 * 86_400_000) : spec.nextUpdate;
  const tbs = enc(
    Tag.SEQUENCE,
    encUint(1),
    algId,
    dn(spec.issuer.dn),
    time(spec.thisUpdate ?? new Date(now - 3_600_000)),
    ...(next ? [time(next)] : []),
    ...(entries.length ? [enc(Tag.SEQUENCE, ...entries)] : []),
    enc(ctx(0, true), enc(Tag.SEQUENCE, ...exts)),
  );
  const sig = signWith(sigAlg, spec.issuer.key.privateKey, tbs);
  if (spec.corruptSignature) sig[sig.length >> 1] ^= 0x01;
  return enc(Tag.SEQUENCE, tbs, algId, enc(Tag.BIT_STRING, Buffer.from([0]), sig));
}

/** PEM armour for DER data. */
export function pem(label: string, der: Buffer): string {
  const b64 = der.toString('base64').replace(/(.{64})/g, '$1\n').replace(/\n$/, '');
  return `-----BEGIN ${label}-----\n${b64}\n-----END ${label}-----\n`;
}
