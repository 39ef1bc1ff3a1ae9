/**
 * X.509 v3 certificates (RFC 5280 §4): loading from PEM or DER, a strict parse of the parts
 * node:crypto's X509Certificate does not expose (DER names, basicConstraints, keyUsage,
 * subjectAltName, key identifiers, the SubjectPublicKeyInfo), and the signature check used by
 * chain verification.
 */
import { createHash, X509Certificate } from 'node:crypto';
import { identityToString } from '../config/identity.ts';
import { IdType } from '../ikev2/constants.ts';
import type { AltName, Cert, CertPolicy, KeyUsage, NameConstraints } from './api.ts';
import { readSigAlg, verifySync, type SigAlg } from './algorithms.ts';
import { bitString, ctx, DerError, DerReader, decodeOid, integerBytes, readBoolean, readOid, readSmallUint, readTime, Tag } from './der.ts';
import { PkiError } from './errors.ts';
import { keyKind } from './kinds.ts';
import { checkSize, isPem, pemBlocks } from './pem.ts';

/** Most certificates one file may hold. */
export const MAX_CERTS_PER_FILE = 1000;
/** Largest single certificate accepted. */
export const MAX_CERT_SIZE = 64 * 1024;
const MAX_EXTENSIONS = 64;
const MAX_ALT_NAMES = 256;

/** What chain verification needs beyond the public Cert fields. */
export interface CertInternals {
  /** The DER TBSCertificate (the signed bytes). */
  tbs: Buffer;
  sigAlg: SigAlg;
  signature: Buffer;
  version: number;
}

const internals = new WeakMap<Cert, CertInternals>();

/** Internals of a Cert made by this module (undefined for anything else). */
export function certInternals(c: Cert): CertInternals | undefined {
  return internals.get(c);
}

const OID_EXT = {
  subjectKeyIdentifier: '2.5.29.14',
  keyUsage: '2.5.29.15',
  subjectAltName: '2.5.29.17',
  issuerAltName: '2.5.29.18',
  basicConstraints: '2.5.29.19',
  nameConstraints: '2.5.29.30',
  crlDistributionPoints: '2.5.29.31',
  certificatePolicies: '2.5.29.32',
  policyMappings: '2.5.29.33',
  authorityKeyIdentifier: '2.5.29.35',
  policyConstraints: '2.5.29.36',
  extKeyUsage: '2.5.29.37',
  freshestCrl: '2.5.29.46',
  inhibitAnyPolicy: '2.5.29.54',
  subjectDirectoryAttributes: '2.5.29.9',
  authorityInfoAccess: '1.3.6.1.5.5.7.1.1',
  subjectInfoAccess: '1.3.6.1.5.5.7.1.11',
} as const;

/** Extensions that may be marked critical: the ones processed here or whose meaning is advisory. */
const CRITICAL_OK = new Set<string>([
  OID_EXT.keyUsage,
  OID_EXT.subjectAltName,
  OID_EXT.basicConstraints,
  OID_EXT.extKeyUsage,
  OID_EXT.certificatePolicies,
  OID_EXT.policyConstraints,
  OID_EXT.inhibitAnyPolicy,
  OID_EXT.subjectKeyIdentifier,
  OID_EXT.authorityKeyIdentifier,
  OID_EXT.nameConstraints,
  OID_EXT.policyMappings,
]);
const EXT_NAMES = new Map<string, string>(Object.entries(OID_EXT).map(([k, v]) => [v, k]));

/** keyUsage bit names in bit order (bit 0 first). */
export const KEY_USAGE_BITS: readonly KeyUsage[] = [
  'digitalSignature',
  'nonRepudiation',
  'keyEncipherment',
  'dataEncipherment',
  'keyAgreement',
  'keyCertSign',
  'cRLSign',
  'encipherOnly',
  'decipherOnly',
];

/** A Name (DN) as strongSwan prints it; the DER is checked by identityToString's own parser. */
export function dnString(der: Buffer): string {
  return identityToString({ type: IdType.ID_DER_ASN1_DN, data: der });
}

/** Serial bytes as Cert.serial: lowercase hex without leading zero bytes, at least "00". */
export function serialHex(v: Buffer): string {
  let i = 0;
  while (i < v.length - 1 && v[i] === 0) i++;
  return v.subarray(i).toString('hex');
}

function formatIp(b: Buffer): string {
  if (b.length === 4) return Array.from(b).join('.');
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(b.readUInt16BE(i).toString(16));
  return groups.join(':').replace(/(^|:)0(:0)+(:|$)/, '::').replace(/:{3,}/, '::');
}

function ia5(v: Buffer, what: string): string {
  for (const c of v) if (c < 0x20 || c > 0x7e) throw new DerError(`${what}: not printable ASCII`);
  return v.toString('latin1');
}

/** One GeneralName (RFC 5280 §4.2.1.6); `subtree` reads iPAddress as address + mask (name constraints). */
function readGeneralName(r: DerReader, subtree: boolean): AltName {
  const t = r.next('GeneralName');
  const data = r.value(t);
  switch (t.tag) {
    case ctx(1, false):
      return { type: 'email', value: ia5(data, 'rfc822Name'), data };
    case ctx(2, false):
      return { type: 'dns', value: ia5(data, 'dNSName'), data };
    case ctx(6, false):
      return { type: 'uri', value: ia5(data, 'URI'), data };
    case ctx(7, false): {
      const n = subtree ? data.length / 2 : data.length;
      if (n !== 4 && n !== 16) throw new DerError(`iPAddress of ${data.length} bytes`);
      const value = subtree ? `${formatIp(data.subarray(0, n))}/${formatIp(data.subarray(n))}` : formatIp(data);
      return { type: 'ip', value, data };
    }
    case ctx(4, true): {
      const n = DerReader.inside(r.buf, t, 'directoryName');
      const name = n.expect(Tag.SEQUENCE, 'directoryName');
      n.finish('directoryName');
      const der = n.raw(name);
      return { type: 'dn', value: dnString(der), data: der };
    }
    default:
      return { type: 'other', value: `[${t.tag & 0x1f}]`, data };
  }
}

function parseAltNames(v: Buffer): AltName[] {
  const r = new DerReader(v);
  const seq = r.enter('subjectAltName');
  r.finish('subjectAltName');
  const out: AltName[] = [];
  while (!seq.done) {
    if (out.length >= MAX_ALT_NAMES) throw new DerError(`subjectAltName: more than ${MAX_ALT_NAMES} names`);
    out.push(readGeneralName(seq, false));
  }
  return out;
}

/** nameConstraints (RFC 5280 §4.2.1.10); bases other than DNS, email, IP and DN are refused. */
function parseNameConstraints(v: Buffer): NameConstraints {
  const r = new DerReader(v);
  const s = r.enter('nameConstraints');
  r.finish('nameConstraints');
  const read = (n: number, what: string): AltName[] => {
    const t = s.optional(ctx(n, true), what);
    if (!t) return [];
    const list = DerReader.inside(s.buf, t, what);
    const out: AltName[] = [];
    while (!list.done) {
      if (out.length >= MAX_ALT_NAMES) throw new DerError(`${what}: more than ${MAX_ALT_NAMES} subtrees`);
      const sub = list.enter('GeneralSubtree');
      const base = readGeneralName(sub, true);
      if (!sub.done) throw new DerError(`${what}: minimum and maximum are not allowed (RFC 5280)`);
      if (base.type === 'uri' || base.type === 'other') throw new DerError(`nameConstraints on ${base.type === 'uri' ? 'URIs' : `GeneralName ${base.value}`} are not supported`);
      out.push(base);
    }
    return out;
  };
  const permitted = read(0, 'permittedSubtrees');
  const excluded = read(1, 'excludedSubtrees');
  s.finish('nameConstraints');
  if (permitted.length === 0 && excluded.length === 0) throw new DerError('nameConstraints: empty');
  return { permitted, excluded };
}

type MutablePolicy = { -readonly [K in keyof CertPolicy]: CertPolicy[K] };
const MAX_POLICIES = 32;

/** certificatePolicies: the policy OIDs (qualifiers are not used). */
function parseCertificatePolicies(v: Buffer): string[] {
  const r = new DerReader(v);
  const s = r.enter('certificatePolicies');
  r.finish('certificatePolicies');
  const out: string[] = [];
  while (!s.done) {
    if (out.length >= MAX_POLICIES) throw new DerError(`certificatePolicies: more than ${MAX_POLICIES}`);
    const pi = s.enter('PolicyInformation');
    out.push(readOid(pi, 'policyIdentifier'));
    pi.optional(Tag.SEQUENCE, 'policyQualifiers');
    pi.finish('PolicyInformation');
  }
  return out;
}

function parsePolicyMappings(v: Buffer): { issuerDomain: string; subjectDomain: string }[] {
  const r = new DerReader(v);
  const s = r.enter('policyMappings');
  r.finish('policyMappings');
  const out: { issuerDomain: string; subjectDomain: string }[] = [];
  while (!s.done) {
    if (out.length >= MAX_POLICIES) throw new DerError(`policyMappings: more than ${MAX_POLICIES}`);
    const m = s.enter('policyMapping');
    out.push({ issuerDomain: readOid(m, 'issuerDomainPolicy'), subjectDomain: readOid(m, 'subjectDomainPolicy') });
    m.finish('policyMapping');
  }
  return out;
}

function parsePolicyConstraints(v: Buffer): { requireExplicitPolicy?: number; inhibitPolicyMapping?: number } {
  const r = new DerReader(v);
  const s = r.enter('policyConstraints');
  r.finish('policyConstraints');
  const out: { requireExplicitPolicy?: number; inhibitPolicyMapping?: number } = {};
  if (s.peekTag() === ctx(0, false)) out.requireExplicitPolicy = readSmallUint(s, 'requireExplicitPolicy', ctx(0, false));
  if (s.peekTag() === ctx(1, false)) out.inhibitPolicyMapping = readSmallUint(s, 'inhibitPolicyMapping', ctx(1, false));
  s.finish('policyConstraints');
  return out;
}

function parseKeyUsage(v: Buffer): KeyUsage[] {
  const r = new DerReader(v);
  const t = r.expect(Tag.BIT_STRING, 'keyUsage');
  r.finish('keyUsage');
  const { bytes } = bitString(r.value(t), 'keyUsage');
  if (bytes.length > 2) throw new DerError('keyUsage: too long');
  const out: KeyUsage[] = [];
  for (let i = 0; i < KEY_USAGE_BITS.length; i++) {
    const byte = bytes[i >> 3];
    if (byte !== undefined && (byte >> (7 - (i & 7))) & 1) out.push(KEY_USAGE_BITS[i]!);
  }
  return out;
}

function parseBasicConstraints(v: Buffer): { isCa: boolean; pathLen?: number } {
  const r = new DerReader(v);
  const s = r.enter('basicConstraints');
  r.finish('basicConstraints');
  let isCa = false;
  if (s.peekTag() === Tag.BOOLEAN) isCa = readBoolean(s, 'basicConstraints cA');
  let pathLen: number | undefined;
  if (!s.done) pathLen = readSmallUint(s, 'pathLenConstraint');
  s.finish('basicConstraints');
  return pathLen === undefined ? { isCa } : { isCa, pathLen };
}

function parseExtKeyUsage(v: Buffer): string[] {
  const r = new DerReader(v);
  const s = r.enter('extKeyUsage');
  r.finish('extKeyUsage');
  const out: string[] = [];
  while (!s.done) {
    out.push(readOid(s, 'extKeyUsage'));
    if (out.length > 64) throw new DerError('extKeyUsage: too many purposes');
  }
  return out;
}

function parseSki(v: Buffer): Buffer {
  const r = new DerReader(v);
  const t = r.expect(Tag.OCTET_STRING, 'subjectKeyIdentifier');
  r.finish('subjectKeyIdentifier');
  return Buffer.from(r.value(t));
}

function parseAki(v: Buffer): Buffer | undefined {
  const r = new DerReader(v);
  const s = r.enter('authorityKeyIdentifier');
  r.finish('authorityKeyIdentifier');
  const k = s.optional(ctx(0, false), 'keyIdentifier');
  return k ? Buffer.from(s.value(k)) : undefined;
}

interface Parsed {
  fields: Omit<Cert, 'x509' | 'publicKey' | 'kind' | 'bits' | 'selfSigned' | 'source'>;
  internals: CertInternals;
}

/** Parses one DER certificate (the whole buffer). Throws DerError for anything malformed. */
function parseCertDer(der: Buffer): Parsed {
  const top = new DerReader(der);
  const cert = top.enter('Certificate');
  top.finish('Certificate');
  const tbsTlv = cert.expect(Tag.SEQUENCE, 'tbsCertificate');
  const sigAlgTlv = cert.expect(Tag.SEQUENCE, 'signatureAlgorithm');
  const sigTlv = cert.expect(Tag.BIT_STRING, 'signatureValue');
  cert.finish('Certificate');
  const sigBits = bitString(cert.value(sigTlv), 'signatureValue');
  if (sigBits.unused !== 0) throw new DerError('signatureValue: not whole octets');

  const tbs = DerReader.inside(der, tbsTlv, 'tbsCertificate');
  let version = 1;
  const vt = tbs.optional(ctx(0, true), 'version');
  if (vt) {
    const vr = DerReader.inside(der, vt, 'version');
    version = readSmallUint(vr, 'version') + 1;
    vr.finish('version');
    if (version < 2 || version > 3) throw new DerError(`version ${version} is not supported`);
  }
  const serialTlv = tbs.expect(Tag.INTEGER, 'serialNumber');
  const serial = integerBytes(tbs.value(serialTlv), 'serialNumber');
  if (serial.length > 21) throw new DerError('serialNumber longer than 20 octets');
  const innerAlg = tbs.expect(Tag.SEQUENCE, 'signature');
  if (!tbs.raw(innerAlg).equals(cert.raw(sigAlgTlv))) {
    throw new DerError('signature algorithm of tbsCertificate and certificate differ');
  }
  const sigAlg = readSigAlg(DerReader.inside(der, sigAlgTlv, 'signatureAlgorithm'), 'signatureAlgorithm');
  const issuerTlv = tbs.expect(Tag.SEQUENCE, 'issuer');
  const validity = tbs.enter('validity');
  const notBefore = readTime(validity, 'notBefore');
  const notAfter = readTime(validity, 'notAfter');
  validity.finish('validity');
  const subjectTlv = tbs.expect(Tag.SEQUENCE, 'subject');
  const spkiTlv = tbs.expect(Tag.SEQUENCE, 'subjectPublicKeyInfo');
  const spki = DerReader.inside(der, spkiTlv, 'subjectPublicKeyInfo');
  spki.expect(Tag.SEQUENCE, 'algorithm');
  const pkBits = bitString(spki.value(spki.expect(Tag.BIT_STRING, 'subjectPublicKey')), 'subjectPublicKey');
  spki.finish('subjectPublicKeyInfo');
  tbs.optional(ctx(1, false), 'issuerUniqueID');
  tbs.optional(ctx(2, false), 'subjectUniqueID');

  let isCa = false;
  let pathLen: number | undefined;
  let keyUsage: KeyUsage[] | undefined;
  let extKeyUsage: string[] | undefined;
  let altNames: AltName[] = [];
  let subjectKeyId: Buffer | undefined;
  let authorityKeyId: Buffer | undefined;
  let nameConstraints: NameConstraints | undefined;
  const policy: MutablePolicy = { oids: [], mappings: [] };
  let hasPolicy = false;
  const extTlv = tbs.optional(ctx(3, true), 'extensions');
  if (extTlv) {
    if (version !== 3) throw new DerError('extensions in a certificate older than v3');
    const outer = DerReader.inside(der, extTlv, 'extensions');
    const exts = outer.enter('extensions');
    outer.finish('extensions');
    const seen = new Set<string>();
    while (!exts.done) {
      if (seen.size >= MAX_EXTENSIONS) throw new DerError(`more than ${MAX_EXTENSIONS} extensions`);
      const e = exts.enter('extension');
      const oid = readOid(e, 'extnID');
      const what = EXT_NAMES.get(oid) ?? oid;
      if (seen.has(oid)) throw new DerError(`extension ${what} appears twice`);
      seen.add(oid);
      const critical = e.peekTag() === Tag.BOOLEAN ? readBoolean(e, 'critical') : false;
      const value = Buffer.from(e.value(e.expect(Tag.OCTET_STRING, 'extnValue')));
      e.finish('extension');
      switch (oid) {
        case OID_EXT.basicConstraints: {
          const bc = parseBasicConstraints(value);
          isCa = bc.isCa;
          pathLen = bc.pathLen;
          break;
        }
        case OID_EXT.keyUsage:
          keyUsage = parseKeyUsage(value);
          break;
        case OID_EXT.extKeyUsage:
          extKeyUsage = parseExtKeyUsage(value);
          break;
        case OID_EXT.subjectAltName:
          altNames = parseAltNames(value);
          break;
        case OID_EXT.subjectKeyIdentifier:
          subjectKeyId = parseSki(value);
          break;
        case OID_EXT.authorityKeyIdentifier:
          authorityKeyId = parseAki(value);
          break;
        case OID_EXT.nameConstraints:
          nameConstraints = parseNameConstraints(value);
          break;
        case OID_EXT.certificatePolicies:
          policy.oids = parseCertificatePolicies(value);
          hasPolicy = true;
          break;
        case OID_EXT.policyMappings:
          policy.mappings = parsePolicyMappings(value);
          hasPolicy = true;
          break;
        case OID_EXT.policyConstraints:
          Object.assign(policy, parsePolicyConstraints(value));
          hasPolicy = true;
          break;
        case OID_EXT.inhibitAnyPolicy: {
          const r = new DerReader(value);
          policy.inhibitAnyPolicy = readSmallUint(r, 'inhibitAnyPolicy');
          r.finish('inhibitAnyPolicy');
          hasPolicy = true;
          break;
        }
        default:
          if (critical && !CRITICAL_OK.has(oid)) throw new DerError(`critical extension ${what} is not supported`);
      }
    }
  }
  tbs.finish('tbsCertificate');
  if (!isCa && pathLen !== undefined) throw new DerError('pathLenConstraint in a certificate that is not a CA');
  if (!isCa && nameConstraints) throw new DerError('nameConstraints in a certificate that is not a CA');

  const issuerDer = Buffer.from(tbs.raw(issuerTlv));
  const subjectDer = Buffer.from(tbs.raw(subjectTlv));
  const spkiDer = tbs.raw(spkiTlv);
  return {
    fields: {
      der,
      subject: dnString(subjectDer),
      subjectDer,
      issuer: dnString(issuerDer),
      issuerDer,
      serial: serialHex(serial),
      notBefore,
      notAfter,
      isCa,
      ...(pathLen !== undefined ? { pathLen } : {}),
      ...(keyUsage ? { keyUsage } : {}),
      ...(extKeyUsage ? { extKeyUsage } : {}),
      ...(subjectKeyId ? { subjectKeyId } : {}),
      ...(authorityKeyId ? { authorityKeyId } : {}),
      ...(nameConstraints ? { nameConstraints } : {}),
      ...(hasPolicy ? { policy } : {}),
      altNames,
      spkiSha1: createHash('sha1').update(spkiDer).digest(),
      keyIdSha1: createHash('sha1').update(pkBits.bytes).digest(),
      fingerprint: createHash('sha256').update(der).digest('hex'),
      signatureAlgorithm: sigAlg.name,
      version,
    },
    internals: { tbs: Buffer.from(tbs.raw(tbsTlv)), sigAlg, signature: Buffer.from(sigBits.bytes), version },
  };
}

/** Whether `issuer`'s key verifies the certificate's signature (no policy checks). */
export function signedBy(c: Cert, issuer: Cert): boolean {
  const i = internals.get(c);
  if (!i) return false;
  return verifySync(i.sigAlg, issuer.publicKey, i.tbs, i.signature);
}

/** Parses and checks one DER certificate; `what` names it in errors. */
export function certFromDer(der: Buffer, what: string): Cert {
  if (der.length > MAX_CERT_SIZE) throw new PkiError(`${what}: certificate of ${der.length} bytes is too large`);
  let parsed: Parsed;
  try {
    parsed = parseCertDer(Buffer.from(der));
  } catch (e) {
    if (e instanceof DerError) throw new PkiError(`${what}: malformed certificate: ${e.message}`);
    throw e;
  }
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(parsed.fields.der);
  } catch (e) {
    throw new PkiError(`${what}: certificate not accepted: ${(e as Error).message}`);
  }
  let publicKey;
  try {
    publicKey = x509.publicKey;
  } catch (e) {
    throw new PkiError(`${what}: public key not usable: ${(e as Error).message}`);
  }
  const { kind, bits } = keyKind(publicKey, `${what} (${parsed.fields.subject})`);
  const cert: Cert = { ...parsed.fields, source: what, x509, publicKey, kind, bits, selfSigned: false };
  internals.set(cert, parsed.internals);
  if (cert.issuerDer.equals(cert.subjectDer) && signedBy(cert, cert)) {
    const self: Cert = { ...cert, selfSigned: true };
    internals.set(self, parsed.internals);
    return self;
  }
  return cert;
}

/** Certificates from PEM (CERTIFICATE / X509 CERTIFICATE blocks; others are skipped) or one DER certificate. */
export function loadCertificates(data: Buffer, name: string): Cert[] {
  checkSize(data, name);
  if (!isPem(data)) {
    if (data[0] !== 0x30) throw new PkiError(`${name}: neither PEM nor a DER certificate`);
    return [certFromDer(data, name)];
  }
  const blocks = pemBlocks(data, name, MAX_CERTS_PER_FILE * 4).filter(
    (b) => b.label === 'CERTIFICATE' || b.label === 'X509 CERTIFICATE',
  );
  if (blocks.length === 0) throw new PkiError(`${name}: no CERTIFICATE block`);
  if (blocks.length > MAX_CERTS_PER_FILE) throw new PkiError(`${name}: more than ${MAX_CERTS_PER_FILE} certificates`);
  return blocks.map((b, i) => certFromDer(b.der, blocks.length > 1 ? `${name} (certificate ${i + 1})` : name));
}

export { decodeOid };
