/**
 * Trust chains, revocation and identities: certificates and CRLs built in the test, verified at an
 * injected time.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  casFromCertReq,
  certIdentity,
  certMatchesIdentity,
  certReqData,
  expiresWithin,
  identityFromCert,
  loadCertificates,
  loadCrl,
  verifyChain,
  type Cert,
  type ChainResult,
  type Crl,
  type TrustStore,
  type VerifyOptions,
} from '../../src/pki/api.ts';
import { parseIdentity } from '../../src/config/identity.ts';
import { IdType } from '../../src/ikev2/constants.ts';
import { RSA_PKCS1 } from '../../src/pki/algorithms.ts';
import { ctx, enc, encOid, encUint, Tag } from '../../src/pki/der.ts';
import { buildCert, buildCrl, testKey, type CertSpec, type CrlSpec } from '../helpers/x509.ts';

const NOW = new Date('2027-01-15T00:00:00Z');
const DAY = 86_400_000;
const BEFORE = new Date(NOW.getTime() - 100 * DAY);
const AFTER = new Date(NOW.getTime() + 365 * DAY);

const ROOT_DN = 'C=CH, O=Test, CN=Root CA';
const INTER_DN = 'C=CH, O=Test, CN=Intermediate CA';
const END_DN = 'C=CH, O=Test, CN=gw.example.net';
const rootKey = testKey('p256', 10);
const interKey = testKey('p256', 11);
const endKey = testKey('ed25519', 12);
const ROOT = { dn: ROOT_DN, key: rootKey };
const INTER = { dn: INTER_DN, key: interKey };

function mk(spec: Partial<CertSpec> & Pick<CertSpec, 'subject' | 'key'>): Cert {
  return loadCertificates(buildCert({ notBefore: BEFORE, notAfter: AFTER, ...spec }), spec.subject)[0]!;
}
function crl(spec: Partial<CrlSpec> & Pick<CrlSpec, 'issuer'>): Crl {
  return loadCrl(buildCrl({ thisUpdate: new Date(NOW.getTime() - DAY), nextUpdate: new Date(NOW.getTime() + 6 * DAY), ...spec }), 'test.crl');
}

const root = mk({ subject: ROOT_DN, key: rootKey, ca: true, keyUsage: ['keyCertSign', 'cRLSign'], serial: 1 });
const inter = mk({ subject: INTER_DN, key: interKey, issuer: ROOT, ca: true, pathLen: 0, keyUsage: ['keyCertSign', 'cRLSign'], serial: 2 });
const end = mk({
  subject: END_DN,
  key: endKey,
  issuer: INTER,
  serial: 0x1001,
  keyUsage: ['digitalSignature'],
  san: { dns: ['gw.example.net', 'vpn.example.net'], email: ['ops@example.net'], ip: [Buffer.from([192, 0, 2, 1]), Buffer.from('20010db8000000000000000000000001', 'hex')] },
});

function trust(cas: Cert[] = [root], crls: Crl[] = []): TrustStore {
  return { cas, crls };
}
function fails(r: ChainResult, re: RegExp): void {
  assert.equal(r.ok, false, `expected failure matching ${re}`);
  if (!r.ok) assert.match(r.reason, re);
}
function ok(r: ChainResult): Cert[] {
  if (!r.ok) assert.fail(`expected success, got: ${r.reason}`);
  return r.chain;
}
function verify(e: Cert, im: Cert[], t: TrustStore, opts?: VerifyOptions, now = NOW): ChainResult {
  return verifyChain(e, im, t, now, opts);
}

describe('chain building', () => {
  it('valid with an intermediate: [end, intermediate, root]', () => {
    const chain = ok(verify(end, [inter], trust()));
    assert.deepEqual(
      chain.map((c) => c.subject),
      [END_DN, INTER_DN, ROOT_DN],
    );
  });

  it('intermediates may be unordered and include extras', () => {
    const other = mk({ subject: 'CN=Other CA', key: testKey('p256', 13), ca: true });
    const sub = mk({ subject: 'CN=Sub', key: testKey('p256', 14), issuer: { dn: 'CN=Other CA', key: testKey('p256', 13) }, ca: true });
    assert.equal(ok(verify(end, [other, sub, inter, root], trust())).length, 3);
  });

  it('an intermediate configured as a CA is a trust anchor', () => {
    assert.equal(ok(verify(end, [], trust([inter]))).length, 2);
  });

  it('a pinned self-signed end certificate is its own chain', () => {
    const self = mk({ subject: 'CN=pinned', key: testKey('p384', 15) });
    assert.equal(ok(verify(self, [], trust([root, self]))).length, 1);
    fails(verify(self, [], trust()), /no trusted CA/);
  });

  it('expired or not yet valid end, intermediate or root fails', () => {
    fails(verify(end, [inter], trust(), undefined, new Date(AFTER.getTime() + 1000)), /"C=CH, O=Test, CN=gw.example.net" expired on/);
    fails(verify(end, [inter], trust(), undefined, new Date(BEFORE.getTime() - 1000)), /is not valid before/);
    const oldInter = mk({ subject: INTER_DN, key: interKey, issuer: ROOT, ca: true, notAfter: new Date(NOW.getTime() - DAY) });
    fails(verify(end, [oldInter], trust()), /"C=CH, O=Test, CN=Intermediate CA" expired on/);
    const youngRoot = mk({ subject: ROOT_DN, key: rootKey, ca: true, notBefore: new Date(NOW.getTime() + DAY) });
    fails(verify(end, [inter], trust([youngRoot])), /"C=CH, O=Test, CN=Root CA" is not valid before/);
  });

  it('wrong CA and missing intermediate fail', () => {
    const otherRoot = mk({ subject: 'CN=Other Root', key: testKey('p256', 16), ca: true });
    fails(verify(end, [inter], trust([otherRoot])), /no trusted CA or intermediate certificate found for issuer "C=CH, O=Test, CN=Root CA"/);
    fails(verify(end, [], trust()), /found for issuer "C=CH, O=Test, CN=Intermediate CA" of "C=CH, O=Test, CN=gw.example.net"/);
  });

  it('a CA with the right name but another key fails', () => {
    const impostor = mk({ subject: ROOT_DN, key: testKey('p256', 17), ca: true });
    // the intermediate's authorityKeyIdentifier names the real root's key: no candidate at all
    fails(verify(end, [inter], trust([impostor])), /no trusted CA/);
  });

  it('a bad signature fails', () => {
    const forged = mk({ subject: END_DN, key: endKey, issuer: INTER, corruptSignature: true });
    fails(verify(forged, [inter], trust()), /signature of certificate "C=CH, O=Test, CN=gw.example.net" does not verify with the key of "C=CH, O=Test, CN=Intermediate CA"/);
    const forgedInter = mk({ subject: INTER_DN, key: interKey, issuer: ROOT, ca: true, corruptSignature: true });
    fails(verify(end, [forgedInter], trust()), /signature of certificate "C=CH, O=Test, CN=Intermediate CA" does not verify/);
  });

  it('path length exceeded fails', () => {
    const subKey = testKey('p256', 18);
    const sub = mk({ subject: 'CN=Sub CA', key: subKey, issuer: INTER, ca: true });
    const leaf = mk({ subject: 'CN=leaf', key: endKey, issuer: { dn: 'CN=Sub CA', key: subKey } });
    fails(verify(leaf, [sub, inter], trust()), /path length constraint 0 of "C=CH, O=Test, CN=Intermediate CA" exceeded/);
    const rootPl0 = mk({ subject: ROOT_DN, key: rootKey, ca: true, pathLen: 0 });
    fails(verify(end, [inter], trust([rootPl0])), /path length constraint 0 of "C=CH, O=Test, CN=Root CA"/);
    const rootPl1 = mk({ subject: ROOT_DN, key: rootKey, ca: true, pathLen: 1 });
    ok(verify(end, [inter], trust([rootPl1])));
  });

  it('an issuer that is not a CA, or lacks keyCertSign, fails', () => {
    const notCa = mk({ subject: INTER_DN, key: interKey, issuer: ROOT });
    fails(verify(end, [notCa], trust()), /issuer "C=CH, O=Test, CN=Intermediate CA" is not a CA/);
    const explicitNotCa = mk({ subject: INTER_DN, key: interKey, issuer: ROOT, ca: false });
    fails(verify(end, [explicitNotCa], trust()), /is not a CA/);
    const noSign = mk({ subject: INTER_DN, key: interKey, issuer: ROOT, ca: true, keyUsage: ['cRLSign', 'digitalSignature'] });
    fails(verify(end, [noSign], trust()), /keyUsage without keyCertSign/);
  });

  it('an end certificate whose keyUsage allows no signatures fails (RFC 4945 §5.1.3.2)', () => {
    const encOnly = mk({ subject: END_DN, key: endKey, issuer: INTER, keyUsage: ['keyEncipherment'] });
    fails(verify(encOnly, [inter], trust()), /keyUsage without digitalSignature or nonRepudiation/);
    ok(verify(mk({ subject: END_DN, key: endKey, issuer: INTER, keyUsage: ['nonRepudiation'] }), [inter], trust()));
  });

  it('SHA-1 signed certificates fail unless allowed', () => {
    const rk = testKey('rsa2048', 19);
    const rsaRoot = mk({ subject: 'CN=RSA Root', key: rk, ca: true });
    const leaf = mk({ subject: 'CN=old', key: endKey, issuer: { dn: 'CN=RSA Root', key: rk }, sigAlg: RSA_PKCS1('sha1') });
    fails(verify(leaf, [], trust([rsaRoot])), /signed with SHA-1/);
    ok(verify(leaf, [], trust([rsaRoot]), { allowSha1: true }));
  });

  it('a 50-certificate chain is refused quickly, a 10-certificate one by the depth limit', () => {
    const keys = Array.from({ length: 50 }, (_, i) => testKey('ed25519', 100 + i));
    const certs: Cert[] = [];
    for (let i = 0; i < 50; i++) {
      certs.push(
        mk({ subject: `CN=CA ${i}`, key: keys[i]!, ca: true, ...(i > 0 ? { issuer: { dn: `CN=CA ${i - 1}`, key: keys[i - 1]! } } : {}) }),
      );
    }
    const leaf = mk({ subject: 'CN=deep', key: endKey, issuer: { dn: 'CN=CA 49', key: keys[49]! } });
    const t0 = performance.now();
    fails(verify(leaf, certs.slice(1).reverse(), trust([certs[0]!])), /49 intermediate certificates \(at most 32\)/);
    assert.ok(performance.now() - t0 < 50);
    const leaf10 = mk({ subject: 'CN=ten', key: endKey, issuer: { dn: 'CN=CA 9', key: keys[9]! } });
    fails(verify(leaf10, certs.slice(1, 10), trust([certs[0]!])), /chain longer than 7/);
    // within the depth: 5 intermediates → 7 certificates
    const leaf6 = mk({ subject: 'CN=six', key: endKey, issuer: { dn: 'CN=CA 5', key: keys[5]! } });
    assert.equal(ok(verify(leaf6, certs.slice(1, 6), trust([certs[0]!]))).length, 7);
    fails(verify(leaf6, certs.slice(1, 6), trust([certs[0]!]), { maxDepth: 6 }), /longer than 6/);
  });

  it('many intermediates with the same name cost a bounded number of signature checks', () => {
    // same name, no key identifiers (v1): every one is a candidate
    const fakes = Array.from({ length: 32 }, (_, i) =>
      mk({ subject: INTER_DN, key: testKey('ed25519', 200 + i), issuer: ROOT, version: 1 }),
    );
    const leaf = mk({ subject: 'CN=v1 leaf', key: endKey, issuer: INTER, version: 1 });
    const t0 = performance.now();
    const r = verify(leaf, fakes, trust());
    assert.equal(r.ok, false);
    assert.ok(performance.now() - t0 < 1000);
  });

  it('verified chains are cached per trust object and re-checked against the clock', () => {
    const t = trust();
    ok(verify(end, [inter], t));
    // cached: the intermediate is known from the first verification
    assert.equal(ok(verify(end, [], t)).length, 3);
    // a new trust object (a reload) starts afresh
    fails(verify(end, [], trust()), /no trusted CA or intermediate/);
    // the cached chain is not used past the end certificate's notAfter
    fails(verify(end, [], t, undefined, new Date(AFTER.getTime() + 1000)), /expired/);
  });

  it('cached chains share one object per intermediate, however many copies peers sent', () => {
    const t = trust();
    const interDer = inter.der;
    const ends = [1, 2, 3].map((i) => mk({ subject: `CN=peer ${i}`, key: endKey, issuer: INTER, serial: 0x5000 + i }));
    const copies = ends.map(() => loadCertificates(interDer, 'CERT payload')[0]!);
    ends.forEach((e, i) => ok(verify(e, [copies[i]!], t)));
    const cached = ends.map((e) => ok(verify(e, [], t))[1]);
    assert.equal(cached[0]!.fingerprint, inter.fingerprint);
    assert.ok(cached.every((c) => c === cached[0]));
  });
});

describe('revocation', () => {
  it('a certificate on its issuer CRL is refused; others pass', () => {
    const c = crl({ issuer: INTER, revoked: [{ serial: 0x1001, date: new Date('2027-01-10T12:00:00Z') }] });
    fails(verify(end, [inter], trust([root], [c])), /"C=CH, O=Test, CN=gw.example.net" was revoked on 2027-01-10T12:00:00Z \(test.crl\)/);
    const other = crl({ issuer: INTER, revoked: [{ serial: 0x1002 }] });
    const r = verify(end, [inter], trust([root], [other, crl({ issuer: ROOT, revoked: [{ serial: 0x1001 }] })]), { revocation: 'strict' });
    assert.equal(ok(r).length, 3);
    // the root's CRL revoking the intermediate
    const rootCrl = crl({ issuer: ROOT, revoked: [{ serial: 2 }] });
    fails(verify(end, [inter], trust([root], [rootCrl])), /"C=CH, O=Test, CN=Intermediate CA" was revoked/);
    // certificateHold (6) is a revocation too
    const hold = crl({ issuer: INTER, revoked: [{ serial: 0x1001, reason: 6 }] });
    fails(verify(end, [inter], trust([root], [hold])), /was revoked/);
  });

  it('a CRL with a bad signature: a warning when relaxed, a failure with ifuri or strict', () => {
    const bad = crl({ issuer: INTER, revoked: [{ serial: 0x1001 }], corruptSignature: true });
    const r = verify(end, [inter], trust([root], [bad]));
    assert.equal(ok(r).length, 3);
    assert.match(r.ok ? r.warnings.join() : '', /CRL of "C=CH, O=Test, CN=Intermediate CA" \(test.crl\) is not correctly signed/);
    fails(verify(end, [inter], trust([root], [bad]), { revocation: 'ifuri' }), /not correctly signed by it \(revocation = ifuri\)/);
    fails(verify(end, [inter], trust([root], [bad]), { revocation: 'strict' }), /not correctly signed/);
    // signed by another key under the same name
    const foreign = crl({ issuer: { dn: INTER_DN, key: testKey('p256', 20) }, revoked: [{ serial: 0x1001 }] });
    fails(verify(end, [inter], trust([root], [foreign]), { revocation: 'ifuri' }), /not correctly signed/);
  });

  it('a stale CRL still revokes; otherwise it warns (relaxed) or fails (ifuri, strict)', () => {
    const stale = { thisUpdate: new Date(NOW.getTime() - 20 * DAY), nextUpdate: new Date(NOW.getTime() - 10 * DAY) };
    fails(verify(end, [inter], trust([root], [crl({ issuer: INTER, ...stale, revoked: [{ serial: 0x1001 }] })])), /was revoked/);
    const s = crl({ issuer: INTER, ...stale });
    const r = verify(end, [inter], trust([root], [s]));
    ok(r);
    assert.match(r.ok ? r.warnings.join() : '', /stale since/);
    fails(verify(end, [inter], trust([root], [s]), { revocation: 'ifuri' }), /stale since .* \(revocation = ifuri\)/);
    fails(verify(end, [inter], trust([root], [s]), { revocation: 'strict' }), /stale/);
  });

  it('strict needs a valid CRL for every link; relaxed and ifuri do not', () => {
    fails(verify(end, [inter], trust(), { revocation: 'strict' }), /no valid CRL for certificate "C=CH, O=Test, CN=gw.example.net"/);
    fails(verify(end, [inter], trust([root], [crl({ issuer: INTER })]), { revocation: 'strict' }), /no valid CRL for certificate "C=CH, O=Test, CN=Intermediate CA"/);
    ok(verify(end, [inter], trust([root], [crl({ issuer: INTER }), crl({ issuer: ROOT })]), { revocation: 'strict' }));
    ok(verify(end, [inter], trust(), { revocation: 'ifuri' }));
  });

  it('a CRL that is not valid yet is ignored until it is', () => {
    const future = crl({ issuer: INTER, thisUpdate: new Date(NOW.getTime() + DAY), revoked: [{ serial: 0x1001 }] });
    const t = trust([root], [future]);
    ok(verify(end, [inter], t));
    // the cached result must not outlive the CRL's thisUpdate
    fails(verify(end, [inter], t, undefined, new Date(NOW.getTime() + 2 * DAY)), /was revoked/);
  });
});

describe('identities in certificates', () => {
  it('matches the subject DN exactly and with wildcards, in RDN order', () => {
    assert.equal(certMatchesIdentity(end, END_DN), true);
    assert.equal(certMatchesIdentity(end, 'C=CH, O=Test, CN=*'), true);
    assert.equal(certMatchesIdentity(end, 'C=CH, O=*, CN=*'), true);
    assert.equal(certMatchesIdentity(end, 'C=CH, O=Test, CN=other.example.net'), false);
    assert.equal(certMatchesIdentity(end, 'CN=gw.example.net, O=Test, C=CH'), false);
    assert.equal(certMatchesIdentity(end, 'C=CH, CN=gw.example.net'), false);
    assert.equal(certMatchesIdentity(end, { type: IdType.ID_DER_ASN1_DN, data: end.subjectDer }), true);
  });

  it('matches subjectAltName DNS (with *.domain patterns), email and IP', () => {
    assert.equal(certMatchesIdentity(end, 'gw.example.net'), true);
    assert.equal(certMatchesIdentity(end, '@vpn.example.net'), true);
    assert.equal(certMatchesIdentity(end, 'GW.Example.NET'), true);
    assert.equal(certMatchesIdentity(end, '*.example.net'), true);
    assert.equal(certMatchesIdentity(end, '*.example.org'), false);
    assert.equal(certMatchesIdentity(end, 'other.example.net'), false);
    assert.equal(certMatchesIdentity(end, 'ops@example.net'), true);
    assert.equal(certMatchesIdentity(end, '*@example.net'), true);
    assert.equal(certMatchesIdentity(end, 'root@example.net'), false);
    assert.equal(certMatchesIdentity(end, '192.0.2.1'), true);
    assert.equal(certMatchesIdentity(end, '192.0.2.0/24'), true);
    assert.equal(certMatchesIdentity(end, '192.0.2.2'), false);
    assert.equal(certMatchesIdentity(end, '2001:db8::1'), true);
    assert.equal(certMatchesIdentity(end, parseIdentity('gw.example.net')), true);
  });

  it('%any matches, a key id matches the key hash, junk matches nothing', () => {
    assert.equal(certMatchesIdentity(end, '%any'), true);
    assert.equal(certMatchesIdentity(end, `@#${end.keyIdSha1.toString('hex')}`), true);
    assert.equal(certMatchesIdentity(end, `@#${end.spkiSha1.toString('hex')}`), true);
    assert.equal(certMatchesIdentity(end, '@#00112233'), false);
    const withSki = mk({ subject: 'CN=ski', key: endKey, issuer: INTER, subjectKeyId: Buffer.from('c0ffee', 'hex') });
    assert.equal(certMatchesIdentity(withSki, '@#c0ffee'), true);
    assert.equal(certMatchesIdentity(withSki, `@#${withSki.keyIdSha1.toString('hex')}`), true);
    assert.equal(certMatchesIdentity(end, 'X=unknown attribute'), false);
    assert.equal(certMatchesIdentity(end, ''), false);
  });

  it('the default identity is the subject DN as strongSwan prints it', () => {
    assert.equal(identityFromCert(end), 'C=CH, O=Test, CN=gw.example.net');
    assert.deepEqual(certIdentity(end), { type: IdType.ID_DER_ASN1_DN, data: end.subjectDer });
  });
});

describe('helpers', () => {
  it('expiresWithin', () => {
    assert.equal(expiresWithin(end, NOW, 30), false);
    assert.equal(expiresWithin(end, new Date(AFTER.getTime() - 29 * DAY), 30), true);
    assert.equal(expiresWithin(end, new Date(AFTER.getTime() + DAY), 30), true);
  });

  it('CERTREQ data names CAs by key hash, and a received one is mapped back', () => {
    const data = certReqData([root, inter]);
    assert.equal(data.length, 40);
    assert.deepEqual(casFromCertReq(trust([root, inter]), data), [root, inter]);
    assert.deepEqual(casFromCertReq(trust([root]), data), [root]);
    assert.deepEqual(casFromCertReq(trust([root]), data.subarray(0, 30)), []);
  });
});

describe('nameConstraints', () => {
  const sub = (n: number, ...bases: Buffer[]): Buffer => enc(ctx(n, true), ...bases.map((b) => enc(Tag.SEQUENCE, b)));
  const dns = (s: string) => enc(ctx(2, false), Buffer.from(s));
  const email = (s: string) => enc(ctx(1, false), Buffer.from(s));
  const ip = (hexAddrMask: string) => enc(ctx(7, false), Buffer.from(hexAddrMask, 'hex'));
  const dirName = (s: string) => enc(ctx(4, true), parseIdentity(s).data);
  const ncKey = testKey('p256', 30);
  const NC_DN = 'C=CH, O=Test, CN=Constrained CA';
  function constrained(value: Buffer): Cert {
    return mk({ subject: NC_DN, key: ncKey, issuer: ROOT, ca: true, extensions: [{ oid: '2.5.29.30', critical: true, value }] });
  }
  function leaf(subject: string, san: CertSpec['san']): Cert {
    return mk({ subject, key: endKey, issuer: { dn: NC_DN, key: ncKey }, ...(san ? { san } : {}) });
  }
  const check = (ca: Cert, c: Cert): ChainResult => verify(c, [ca], trust());

  it('DNS subtrees: permitted with subdomains, excluded wins', () => {
    const ca = constrained(enc(Tag.SEQUENCE, sub(0, dns('example.net')), sub(1, dns('bad.example.net'))));
    assert.deepEqual(ca.nameConstraints?.excluded.map((b) => b.value), ['bad.example.net']);
    ok(check(ca, leaf('CN=a', { dns: ['gw.example.net', 'example.net'] })));
    fails(check(ca, leaf('CN=b', { dns: ['gw.example.net', 'gw.example.org'] })), /dns name "gw.example.org" of "CN=b" is outside the nameConstraints of "C=CH, O=Test, CN=Constrained CA"/);
    fails(check(ca, leaf('CN=c', { dns: ['x.bad.example.net'] })), /"x.bad.example.net" .* is excluded/);
    fails(check(ca, leaf('CN=d', { dns: ['notexample.net'] })), /outside/);
    // no DNS name at all: DNS constraints do not apply
    ok(check(ca, leaf('CN=e', { email: ['x@anywhere.org'] })));
  });

  it('IP, email and directoryName subtrees', () => {
    const ca = constrained(
      enc(Tag.SEQUENCE, sub(0, ip('c0000200ffffff00'), email('.example.net'), dirName('C=CH, O=Test'))),
    );
    ok(check(ca, leaf('C=CH, O=Test, CN=x', { ip: [Buffer.from([192, 0, 2, 9])], email: ['a@mail.example.net'] })));
    fails(check(ca, leaf('C=CH, O=Test, CN=y', { ip: [Buffer.from([192, 0, 3, 9])] })), /ip name "192.0.3.9" .* outside/);
    fails(check(ca, leaf('C=CH, O=Test, CN=z', { email: ['a@example.org'] })), /email name "a@example.org"/);
    fails(check(ca, leaf('C=DE, O=Test, CN=w', undefined)), /dn name "C=DE, O=Test, CN=w" .* outside/);
    // an IPv6 address is not judged by IPv4 subtrees
    ok(check(ca, leaf('C=CH, O=Test, CN=v', { ip: [Buffer.alloc(16, 1)] })));
  });

  it('refuses constraints it cannot enforce and constraints on non-CAs', () => {
    const uri = enc(Tag.SEQUENCE, sub(0, enc(ctx(6, false), Buffer.from('http://x'))));
    assert.throws(() => constrained(uri), /nameConstraints on URIs are not supported/);
    const value = enc(Tag.SEQUENCE, sub(0, dns('example.net')));
    assert.throws(
      () => mk({ subject: 'CN=leaf', key: endKey, issuer: ROOT, extensions: [{ oid: '2.5.29.30', critical: true, value }] }),
      /nameConstraints in a certificate that is not a CA/,
    );
  });
});

describe('policy constraints (as strongSwan applies them)', () => {
  const P1 = '1.3.6.1.4.1.99999.1';
  const P2 = '1.3.6.1.4.1.99999.2';
  const ANY = '2.5.29.32.0';
  const policies = (...oids: string[]) => ({
    oid: '2.5.29.32',
    critical: false,
    value: enc(Tag.SEQUENCE, ...oids.map((o) => enc(Tag.SEQUENCE, encOid(o)))),
  });
  const constraints = (explicit?: number, inhibitMapping?: number) => ({
    oid: '2.5.29.36',
    critical: true,
    value: enc(
      Tag.SEQUENCE,
      ...(explicit !== undefined ? [enc(ctx(0, false), Buffer.from([explicit]))] : []),
      ...(inhibitMapping !== undefined ? [enc(ctx(1, false), Buffer.from([inhibitMapping]))] : []),
    ),
  });
  const mappings = (issuerDomain: string, subjectDomain: string) => ({
    oid: '2.5.29.33',
    critical: true,
    value: enc(Tag.SEQUENCE, enc(Tag.SEQUENCE, encOid(issuerDomain), encOid(subjectDomain))),
  });
  const inhibitAny = (n: number) => ({ oid: '2.5.29.54', critical: true, value: encUint(n) });
  const rootWith = (...extensions: { oid: string; critical: boolean; value: Buffer }[]) =>
    mk({ subject: ROOT_DN, key: rootKey, ca: true, extensions });
  const interWith = (...extensions: { oid: string; critical: boolean; value: Buffer }[]) =>
    mk({ subject: INTER_DN, key: interKey, issuer: ROOT, ca: true, extensions });
  const leafWith = (...extensions: { oid: string; critical: boolean; value: Buffer }[]) =>
    mk({ subject: END_DN, key: endKey, issuer: INTER, extensions });

  it('reads the policy extensions', () => {
    const c = mk({ subject: 'CN=p', key: rootKey, ca: true, extensions: [policies(P1, ANY), constraints(0, 1), mappings(P1, P2), inhibitAny(2)] });
    assert.deepEqual(c.policy, {
      oids: [P1, ANY],
      mappings: [{ issuerDomain: P1, subjectDomain: P2 }],
      requireExplicitPolicy: 0,
      inhibitPolicyMapping: 1,
      inhibitAnyPolicy: 2,
    });
  });

  it('requireExplicitPolicy: the end certificate policy must be held by its issuers', () => {
    const root = rootWith(constraints(0));
    ok(verify(leafWith(policies(P1)), [interWith(policies(P1))], trust([root])));
    ok(verify(leafWith(policies(P1)), [interWith(policies(ANY))], trust([root])));
    fails(verify(leafWith(policies(P1)), [interWith(policies(P2))], trust([root])), /policy 1\.3\.6\.1\.4\.1\.99999\.1 of "C=CH, O=Test, CN=gw.example.net" is missing in its issuer "C=CH, O=Test, CN=Intermediate CA" \(requireExplicitPolicy of "C=CH, O=Test, CN=Root CA"\)/);
    // without the constraint the same chain is fine
    ok(verify(leafWith(policies(P1)), [interWith(policies(P2))], trust()));
    // a policy the issuer maps to its own is held
    ok(verify(leafWith(policies(P2)), [interWith(policies(P1), mappings(P1, P2))], trust([root])));
  });

  it('inhibitPolicyMapping and inhibitAnyPolicy', () => {
    fails(
      verify(leafWith(policies(P2)), [interWith(policies(P1), mappings(P1, P2))], trust([rootWith(constraints(undefined, 0))])),
      /"C=CH, O=Test, CN=Intermediate CA" has policyMappings, but inhibitPolicyMapping of "C=CH, O=Test, CN=Root CA" is in effect/,
    );
    fails(
      verify(leafWith(policies(P1)), [interWith(policies(ANY))], trust([rootWith(inhibitAny(0))])),
      /"C=CH, O=Test, CN=Intermediate CA" has anyPolicy, but inhibitAnyPolicy/,
    );
    // skip certificates: the intermediate is exempt with inhibitAnyPolicy 1
    ok(verify(leafWith(policies(P1)), [interWith(policies(ANY))], trust([rootWith(inhibitAny(1))])));
  });
});
