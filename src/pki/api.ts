/**
 * The certificate library: X.509 certificates, private keys and CRLs from files or CERT payloads,
 * trust-chain verification, identities in certificates, and the IKEv2 signature AUTH methods
 * (RFC 7296 §3.8 methods 1, 9, 10, 11 and RFC 7427 method 14 with RFC 8420 EdDSA).
 *
 * This module is the library's whole public surface; the engine and the configuration loader
 * import from here only.
 *
 * Everything that reads bytes treats them as hostile: malformed, truncated or oversized input
 * throws PkiError (loaders) or yields a failure reason (verification), never anything else.
 */
import type { KeyObject, X509Certificate } from 'node:crypto';
import type { Identity } from '../config/identity.ts';
import * as certs from './cert.ts';
import * as keys from './key.ts';
import * as crls from './crl.ts';
import * as sigs from './sign.ts';
import * as chains from './chain.ts';
import * as ids from './identity.ts';
import { HASH_ALGORITHMS, PkiError } from './errors.ts';

export { PkiError };

/** Public key algorithm and size class of a certificate or private key. */
export type KeyKind = 'rsa' | 'ecdsa-256' | 'ecdsa-384' | 'ecdsa-521' | 'ed25519' | 'ed448';

/** keyUsage bits (RFC 5280 §4.2.1.3) by their RFC names. */
export type KeyUsage =
  | 'digitalSignature'
  | 'nonRepudiation'
  | 'keyEncipherment'
  | 'dataEncipherment'
  | 'keyAgreement'
  | 'keyCertSign'
  | 'cRLSign'
  | 'encipherOnly'
  | 'decipherOnly';

/** A public key with its kind: what verifyAuth needs (a Cert is one). */
export interface PublicKeyInfo {
  readonly publicKey: KeyObject;
  readonly kind: KeyKind;
  /** Modulus bits for RSA, curve bits for ECDSA (256/384/521), 256 / 456 for Ed25519 / Ed448. */
  readonly bits: number;
}

/** One subjectAltName entry; `value` is the printable form (IP addresses as text). */
export interface AltName {
  readonly type: 'dns' | 'email' | 'ip' | 'uri' | 'dn' | 'other';
  readonly value: string;
  /** The raw value: IA5String bytes for dns/email/uri, 4 or 16 address bytes for ip, DER Name for dn. */
  readonly data: Buffer;
}

/**
 * nameConstraints of a CA (RFC 5280 §4.2.1.10), enforced on the certificates below it in a chain.
 * Bases are AltNames; an 'ip' base's data is address + mask (8 or 32 bytes).
 */
export interface NameConstraints {
  readonly permitted: readonly AltName[];
  readonly excluded: readonly AltName[];
}

/**
 * Certificate policy extensions (RFC 5280 §4.2.1.4, .5, .11, .14): what strongSwan's constraints
 * plugin checks on a chain (see chain.ts).
 */
export interface CertPolicy {
  /** certificatePolicies OIDs ("2.5.29.32.0" is anyPolicy). */
  readonly oids: readonly string[];
  readonly mappings: readonly { readonly issuerDomain: string; readonly subjectDomain: string }[];
  readonly requireExplicitPolicy?: number;
  readonly inhibitPolicyMapping?: number;
  readonly inhibitAnyPolicy?: number;
}

/** A parsed, checked X.509 v3 certificate. */
export interface Cert extends PublicKeyInfo {
  /** Where it came from (file name or "CERT payload"), for messages. */
  readonly source: string;
  readonly x509: X509Certificate;
  /** The whole certificate, DER. */
  readonly der: Buffer;
  /** Subject DN as strongSwan prints it: "C=CH, O=strongSwan, CN=moon.example.net" (DER order). */
  readonly subject: string;
  /** The subject Name, DER (the data of an ID_DER_ASN1_DN identity). */
  readonly subjectDer: Buffer;
  readonly issuer: string;
  readonly issuerDer: Buffer;
  /** Serial number, lowercase hex of the INTEGER's magnitude (no sign byte, at least "00"). */
  readonly serial: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
  /** basicConstraints cA. */
  readonly isCa: boolean;
  /** basicConstraints pathLenConstraint, when present. */
  readonly pathLen?: number;
  /** keyUsage bits set, when the extension is present. */
  readonly keyUsage?: readonly KeyUsage[];
  /** subjectKeyIdentifier, when present. */
  readonly subjectKeyId?: Buffer;
  /** authorityKeyIdentifier keyIdentifier, when present (path building prefers the issuer with this SKI). */
  readonly authorityKeyId?: Buffer;
  /** nameConstraints, when present (CAs only). */
  readonly nameConstraints?: NameConstraints;
  /** certificatePolicies, policyMappings, policyConstraints, inhibitAnyPolicy, when any is present. */
  readonly policy?: CertPolicy;
  /** X.509 version: 1, 2 or 3. */
  readonly version: number;
  /** extKeyUsage OIDs, when the extension is present. */
  readonly extKeyUsage?: readonly string[];
  readonly altNames: readonly AltName[];
  /** SHA-1 of the DER SubjectPublicKeyInfo: the CA key hash of RFC 7296 CERTREQ payloads. */
  readonly spkiSha1: Buffer;
  /** SHA-1 of the subjectPublicKey BIT STRING contents (strongSwan's key id, matched by ID_KEY_ID). */
  readonly keyIdSha1: Buffer;
  /** SHA-256 fingerprint of `der`, lowercase hex. */
  readonly fingerprint: string;
  /** Issuer equals subject and the certificate's signature verifies with its own key. */
  readonly selfSigned: boolean;
  /** Name of the certificate's signature algorithm ("sha256WithRSAEncryption", "ecdsa-with-SHA384", ...). */
  readonly signatureAlgorithm: string;
}

/** A private key loaded from a file. */
export interface PrivateKey {
  readonly source: string;
  readonly key: KeyObject;
  readonly publicKey: KeyObject;
  readonly kind: KeyKind;
  readonly bits: number;
}

/** A parsed CRL (RFC 5280 §5); its signature is checked against the issuing CA by verifyChain. */
export interface Crl {
  readonly source: string;
  readonly der: Buffer;
  readonly issuer: string;
  readonly issuerDer: Buffer;
  readonly thisUpdate: Date;
  readonly nextUpdate?: Date;
  /** Revoked serials (Cert.serial form) → revocation date. */
  readonly revoked: ReadonlyMap<string, Date>;
  /** cRLNumber, lowercase hex, when present. */
  readonly crlNumber?: string;
  /** issuingDistributionPoint scope: the CRL covers only end-entity / only CA certificates. */
  readonly onlyUserCerts: boolean;
  readonly onlyCaCerts: boolean;
  readonly signatureAlgorithm: string;
  /** SHA-256 fingerprint of `der`, lowercase hex. */
  readonly fingerprint: string;
}

/**
 * The configured trust: CA certificates (trust anchors, and intermediates a config lists as
 * cacerts) and CRLs. Pass the same object for as long as the configuration is unchanged: verified
 * chains are cached per trust object, so a reload (a new object) starts a fresh cache.
 */
export interface TrustStore {
  readonly cas: readonly Cert[];
  readonly crls: readonly Crl[];
}

/**
 * Revocation policy, as swanctl.conf's `revocation`: `relaxed` (default) fails only on a revoked
 * certificate; `ifuri` also fails when a CRL for the issuer is configured but is stale or its
 * signature does not verify; `strict` also fails when there is no valid CRL for the issuer.
 */
export type RevocationPolicy = 'relaxed' | 'ifuri' | 'strict';

export interface VerifyOptions {
  /** Most certificates in a chain, end certificate and trust anchor included (default 7). */
  readonly maxDepth?: number;
  /** Default `relaxed`, as strongSwan. */
  readonly revocation?: RevocationPolicy;
  /** Accept certificates and CRLs signed with SHA-1 (default false; trust anchors' own signatures are never checked). */
  readonly allowSha1?: boolean;
}

/**
 * verifyChain's answer. `warnings` (ok only) says what was not checked under `revocation = relaxed`
 * (a stale CRL, a CRL whose signature does not verify): worth a log line, not a failure.
 */
export type ChainResult = { ok: true; chain: Cert[]; warnings: string[] } | { ok: false; reason: string };

/** RFC 7427 §4 / IANA "IKEv2 Hash Algorithms" (IDENTITY for EdDSA per RFC 8420). */
export { HASH_ALGORITHMS };

/** An AUTH payload's method and data. */
export interface AuthSignature {
  method: number;
  data: Buffer;
}

export interface SignOptions {
  /** RSA keys with method 14: RSASSA-PSS (true, default) or PKCS#1 v1.5 with SHA-2. */
  readonly rsaPss?: boolean;
}

export interface AuthVerifyOptions {
  /** Accept SHA-1 signatures (method 1, and method 14 with a SHA-1 AlgorithmIdentifier). */
  readonly allowSha1: boolean;
}

/**
 * Loads certificates: PEM (one or several CERTIFICATE blocks) or one DER certificate. Refuses
 * anything malformed, RSA keys under 2048 or over 8192 bits, curves other than P-256/384/521,
 * unknown signature algorithms and unknown critical extensions. `name` prefixes the message.
 */
export function loadCertificates(data: Buffer, name: string): Cert[] {
  return certs.loadCertificates(data, name);
}

/**
 * One DER certificate as carried in a CERT payload (encoding X.509 Signature): DER only, at most
 * 64 KiB, the same checks as loadCertificates. `name` prefixes the message ("CERT payload").
 */
export function parseCertificate(der: Buffer, name: string): Cert {
  if (der.length === 0 || der[0] !== 0x30) throw new PkiError(`${name}: not a DER certificate`);
  return certs.certFromDer(der, name);
}

/**
 * Loads a private key: PEM or DER; PKCS#1 RSA, SEC1 EC, PKCS#8 (encrypted PKCS#8 and encrypted
 * traditional PEM with `passphrase`). Same key limits as certificates.
 */
export function loadPrivateKey(data: Buffer, name: string, passphrase?: string): PrivateKey {
  return keys.loadPrivateKey(data, name, passphrase);
}

/** Whether the private key belongs to the certificate (same public key). */
export function matchesCert(key: PrivateKey, cert: Cert): boolean {
  return keys.matchesCert(key, cert);
}

/** Loads one CRL, PEM (X509 CRL) or DER. Delta and indirect CRLs are refused. */
export function loadCrl(data: Buffer, name: string): Crl {
  return crls.loadCrl(data, name);
}

/**
 * Our SIGNATURE_HASH_ALGORITHMS notify data (RFC 7427 §4): SHA2-256/384/512 and IDENTITY, SHA-1
 * first when allowed.
 */
export function ourHashAlgorithms(allowSha1: boolean): number[] {
  return sigs.ourHashAlgorithms(allowSha1);
}

/**
 * Signs the AUTH octets off the event loop. With `peerHashes` (the peer's
 * SIGNATURE_HASH_ALGORITHMS) method 14: RSA with RSASSA-PSS (or PKCS#1 v1.5) and a SHA-2 hash
 * matching the key size, ECDSA with the curve's hash (DER signature), Ed25519/Ed448 with
 * IDENTITY. Without (or when the peer lists no usable hash for RSA/ECDSA) the classic method:
 * 1 (RSA PKCS#1 v1.5 SHA-1) or 9/10/11 (ECDSA P-256/384/521, r||s). Throws PkiError when no
 * method fits (EdDSA without IDENTITY).
 */
export function signAuth(
  key: PrivateKey,
  octets: Buffer,
  peerHashes: readonly number[] | undefined,
  opts?: SignOptions,
): Promise<AuthSignature> {
  return sigs.signAuth(key, octets, peerHashes, opts);
}

/**
 * Verifies a received AUTH payload (methods 1, 9, 10, 11, 14) off the event loop. Resolves to
 * undefined when valid, else to the reason (unknown AlgorithmIdentifier, SHA-1 not allowed,
 * key/method mismatch, bad signature). Never rejects.
 */
export function verifyAuth(
  pub: PublicKeyInfo,
  method: number,
  data: Buffer,
  octets: Buffer,
  opts: AuthVerifyOptions,
): Promise<string | undefined> {
  return sigs.verifyAuth(pub, method, data, octets, opts);
}

/**
 * Builds and checks the path from `end` to a CA of `trust`: `intermediates` may be unordered and
 * contain extras. Checks each signature, validity at `now`, basicConstraints cA and pathLen and
 * keyUsage keyCertSign of issuers, keyUsage digitalSignature (or nonRepudiation, RFC 4945) of `end` when present,
 * nameConstraints of CAs (DNS, email, IP, DN) on the subject and subjectAltNames below them,
 * requireExplicitPolicy / inhibitPolicyMapping / inhibitAnyPolicy as strongSwan applies them, revocation
 * against configured CRLs (per `opts.revocation`), and the chain length. `chain` is
 * [end, ...issuers, anchor]. Successful results are cached (bounded, least recently used out) per
 * end certificate, trust object and options, and reused only while `now` lies within every
 * certificate's validity (and no configured CRL could have changed the answer): a cached chain
 * needs no intermediates, like strongSwan's certificate cache.
 */
export function verifyChain(
  end: Cert,
  intermediates: readonly Cert[],
  trust: TrustStore,
  now: Date,
  opts?: VerifyOptions,
): ChainResult {
  return chains.verifyChain(end, intermediates, trust, now, opts);
}

/**
 * Whether the certificate contains the identity: the subject DN or a subjectAltName (DNS, email,
 * IP) matches it with strongSwan's rules ("*.example.net", "*@example.net", DN attributes "*",
 * "%any"), or it is an ID_KEY_ID equal to the key's SHA-1 (keyIdSha1 or spkiSha1) or to the
 * subjectKeyIdentifier. A string is
 * parsed as swanctl.conf's `id`; one that does not parse matches nothing.
 */
export function certMatchesIdentity(cert: Cert, id: string | Identity): boolean {
  return ids.certMatchesIdentity(cert, id);
}

/** The subject DN as strongSwan prints it (a certificate's default identity). */
export function identityFromCert(cert: Cert): string {
  return cert.subject;
}

/** The certificate's default identity as an ID_DER_ASN1_DN identity (the subject Name). */
export function certIdentity(cert: Cert): Identity {
  return ids.certIdentity(cert);
}

/** Whether the certificate's notAfter falls within `days` days of `now` (or has passed). */
export function expiresWithin(cert: Cert, now: Date, days: number): boolean {
  return cert.notAfter.getTime() - now.getTime() <= days * 86_400_000;
}

/** CERTREQ payload data (encoding X.509 Signature) for these CAs: their 20-byte key hashes. */
export function certReqData(cas: readonly Cert[]): Buffer {
  return chains.certReqData(cas);
}

/**
 * The CAs of `trust` a received CERTREQ names (by key hash); malformed data (a length that is not a
 * multiple of 20) names none.
 */
export function casFromCertReq(trust: TrustStore, data: Buffer): Cert[] {
  return chains.casFromCertReq(trust, data);
}
