/**
 * Certificate revocation lists (RFC 5280 §5) from files: a strict parse of complete CRLs.
 * Delta and indirect CRLs, and CRLs limited to some revocation reasons, are refused: each would
 * need more than "this serial of this CA is revoked". The signature is checked against the issuing
 * CA when a chain is verified (chain.ts), since the CA may come from another file.
 */
import { createHash } from 'node:crypto';
import type { Crl } from './api.ts';
import { readSigAlg, verifySync, type SigAlg } from './algorithms.ts';
import { serialHex, dnString } from './cert.ts';
import { bitString, ctx, DerError, DerReader, integerBytes, readBoolean, readOid, readSmallUint, readTime, Tag } from './der.ts';
import { PkiError } from './errors.ts';
import { checkSize, isPem, pemBlocks } from './pem.ts';
import type { KeyObject } from 'node:crypto';

/** Most revoked entries one CRL may list. */
export const MAX_REVOKED = 1_000_000;

const OID_CRL = {
  authorityKeyIdentifier: '2.5.29.35',
  issuerAltName: '2.5.29.18',
  cRLNumber: '2.5.29.20',
  deltaCRLIndicator: '2.5.29.27',
  issuingDistributionPoint: '2.5.29.28',
  freshestCRL: '2.5.29.46',
  authorityInfoAccess: '1.3.6.1.5.5.7.1.1',
  reasonCode: '2.5.29.21',
  invalidityDate: '2.5.29.24',
  certificateIssuer: '2.5.29.29',
} as const;

/** CRLReason removeFromCRL: only meaningful in delta CRLs; such an entry does not revoke. */
const REASON_REMOVE_FROM_CRL = 8;

export interface CrlInternals {
  tbs: Buffer;
  sigAlg: SigAlg;
  signature: Buffer;
}

const internals = new WeakMap<Crl, CrlInternals>();

/** Whether `key` verifies the CRL's signature (no policy checks). */
export function crlSignedBy(crl: Crl, key: KeyObject): boolean {
  const i = internals.get(crl);
  return i ? verifySync(i.sigAlg, key, i.tbs, i.signature) : false;
}

export function crlInternals(crl: Crl): CrlInternals | undefined {
  return internals.get(crl);
}

interface Idp {
  onlyUser: boolean;
  onlyCa: boolean;
}

function parseIdp(v: Buffer): Idp {
  const r = new DerReader(v);
  const s = r.enter('issuingDistributionPoint');
  r.finish('issuingDistributionPoint');
  s.optional(ctx(0, true), 'distributionPoint');
  const flag = (n: number, what: string): boolean => {
    const t = s.optional(ctx(n, false), what);
    if (!t) return false;
    const b = s.value(t);
    if (b.length !== 1 || (b[0] !== 0 && b[0] !== 0xff)) throw new DerError(`${what}: invalid BOOLEAN`);
    return b[0] === 0xff;
  };
  const onlyUser = flag(1, 'onlyContainsUserCerts');
  const onlyCa = flag(2, 'onlyContainsCACerts');
  if (s.optional(ctx(3, false), 'onlySomeReasons')) throw new DerError('CRLs limited to some revocation reasons are not supported');
  if (flag(4, 'indirectCRL')) throw new DerError('indirect CRLs are not supported');
  if (flag(5, 'onlyContainsAttributeCerts')) throw new DerError('attribute certificate CRLs are not supported');
  s.finish('issuingDistributionPoint');
  if (onlyUser && onlyCa) throw new DerError('issuingDistributionPoint: both onlyContainsUserCerts and onlyContainsCACerts');
  return { onlyUser, onlyCa };
}

/** Entry extensions: the reason code, when present (critical ones other than known refuse the CRL). */
function parseEntryExtensions(r: DerReader): number | undefined {
  let reason: number | undefined;
  const exts = r.enter('crlEntryExtensions');
  let n = 0;
  while (!exts.done) {
    if (++n > 16) throw new DerError('crlEntryExtensions: too many');
    const e = exts.enter('crlEntryExtension');
    const oid = readOid(e, 'extnID');
    const critical = e.peekTag() === Tag.BOOLEAN ? readBoolean(e, 'critical') : false;
    const value = e.value(e.expect(Tag.OCTET_STRING, 'extnValue'));
    e.finish('crlEntryExtension');
    if (oid === OID_CRL.reasonCode) {
      const vr = new DerReader(value);
      reason = readSmallUint(vr, 'reasonCode', Tag.ENUMERATED);
      vr.finish('reasonCode');
    } else if (oid === OID_CRL.certificateIssuer) {
      throw new DerError('certificateIssuer entries (indirect CRLs) are not supported');
    } else if (critical && oid !== OID_CRL.invalidityDate) {
      throw new DerError(`critical CRL entry extension ${oid} is not supported`);
    }
  }
  return reason;
}

function parseCrlDer(der: Buffer, source: string): { crl: Crl; internals: CrlInternals } {
  const top = new DerReader(der);
  const list = top.enter('CertificateList');
  top.finish('CertificateList');
  const tbsTlv = list.expect(Tag.SEQUENCE, 'tbsCertList');
  const algTlv = list.expect(Tag.SEQUENCE, 'signatureAlgorithm');
  const sig = bitString(list.value(list.expect(Tag.BIT_STRING, 'signatureValue')), 'signatureValue');
  list.finish('CertificateList');
  if (sig.unused !== 0) throw new DerError('signatureValue: not whole octets');

  const tbs = DerReader.inside(der, tbsTlv, 'tbsCertList');
  if (tbs.peekTag() === Tag.INTEGER) {
    const v = readSmallUint(tbs, 'version');
    if (v !== 1) throw new DerError(`CRL version ${v + 1} is not supported`);
  }
  const inner = tbs.expect(Tag.SEQUENCE, 'signature');
  if (!tbs.raw(inner).equals(list.raw(algTlv))) throw new DerError('signature algorithm of tbsCertList and CRL differ');
  const sigAlg = readSigAlg(DerReader.inside(der, algTlv, 'signatureAlgorithm'), 'signatureAlgorithm');
  const issuerTlv = tbs.expect(Tag.SEQUENCE, 'issuer');
  const thisUpdate = readTime(tbs, 'thisUpdate');
  let nextUpdate: Date | undefined;
  const nt = tbs.peekTag();
  if (nt === Tag.UTC_TIME || nt === Tag.GENERALIZED_TIME) nextUpdate = readTime(tbs, 'nextUpdate');
  const revoked = new Map<string, Date>();
  if (tbs.peekTag() === Tag.SEQUENCE) {
    const entries = tbs.enter('revokedCertificates');
    while (!entries.done) {
      if (revoked.size >= MAX_REVOKED) throw new DerError(`more than ${MAX_REVOKED} revoked certificates`);
      const e = entries.enter('revokedCertificate');
      const serial = integerBytes(e.value(e.expect(Tag.INTEGER, 'userCertificate')), 'userCertificate');
      const date = readTime(e, 'revocationDate');
      const reason = e.done ? undefined : parseEntryExtensions(e);
      e.finish('revokedCertificate');
      if (reason !== REASON_REMOVE_FROM_CRL) revoked.set(serialHex(serial), date);
    }
  }
  let crlNumber: string | undefined;
  let idp: Idp = { onlyUser: false, onlyCa: false };
  const extTlv = tbs.optional(ctx(0, true), 'crlExtensions');
  if (extTlv) {
    const outer = DerReader.inside(der, extTlv, 'crlExtensions');
    const exts = outer.enter('crlExtensions');
    outer.finish('crlExtensions');
    const seen = new Set<string>();
    while (!exts.done) {
      if (seen.size >= 32) throw new DerError('crlExtensions: too many');
      const e = exts.enter('crlExtension');
      const oid = readOid(e, 'extnID');
      if (seen.has(oid)) throw new DerError(`CRL extension ${oid} appears twice`);
      seen.add(oid);
      const critical = e.peekTag() === Tag.BOOLEAN ? readBoolean(e, 'critical') : false;
      const value = e.value(e.expect(Tag.OCTET_STRING, 'extnValue'));
      e.finish('crlExtension');
      switch (oid) {
        case OID_CRL.deltaCRLIndicator:
          throw new DerError('delta CRLs are not supported');
        case OID_CRL.issuingDistributionPoint:
          idp = parseIdp(value);
          break;
        case OID_CRL.cRLNumber: {
          const vr = new DerReader(value);
          crlNumber = serialHex(integerBytes(vr.value(vr.expect(Tag.INTEGER, 'cRLNumber')), 'cRLNumber'));
          vr.finish('cRLNumber');
          break;
        }
        default:
          if (critical) throw new DerError(`critical CRL extension ${oid} is not supported`);
      }
    }
  }
  tbs.finish('tbsCertList');
  const issuerDer = Buffer.from(tbs.raw(issuerTlv));
  const crl: Crl = {
    source,
    der,
    issuer: dnString(issuerDer),
    issuerDer,
    thisUpdate,
    ...(nextUpdate ? { nextUpdate } : {}),
    revoked,
    ...(crlNumber !== undefined ? { crlNumber } : {}),
    onlyUserCerts: idp.onlyUser,
    onlyCaCerts: idp.onlyCa,
    signatureAlgorithm: sigAlg.name,
    fingerprint: createHash('sha256').update(der).digest('hex'),
  };
  return { crl, internals: { tbs: Buffer.from(tbs.raw(tbsTlv)), sigAlg, signature: Buffer.from(sig.bytes) } };
}

/** One CRL, PEM ("X509 CRL") or DER. */
export function loadCrl(data: Buffer, name: string): Crl {
  checkSize(data, name);
  let der: Buffer;
  if (isPem(data)) {
    const blocks = pemBlocks(data, name, 16).filter((b) => b.label === 'X509 CRL');
    if (blocks.length !== 1) throw new PkiError(`${name}: ${blocks.length === 0 ? 'no X509 CRL block' : 'more than one CRL'}`);
    der = blocks[0]!.der;
  } else {
    if (data[0] !== 0x30) throw new PkiError(`${name}: neither PEM nor a DER CRL`);
    der = Buffer.from(data);
  }
  try {
    const { crl, internals: i } = parseCrlDer(der, name);
    internals.set(crl, i);
    return crl;
  } catch (e) {
    if (e instanceof DerError) throw new PkiError(`${name}: malformed CRL: ${e.message}`);
    throw e;
  }
}
