/**
 * The certificate library's readers: the strict DER reader, certificates, private keys and CRLs
 * from PEM and DER, and hostile input (truncations, bit flips, oversized blobs, deep nesting).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { loadCertificates, loadCrl, loadPrivateKey, matchesCert, PkiError } from '../../src/pki/api.ts';
import { DerError, DerReader, decodeOid, readTime, readTlv, Tag } from '../../src/pki/der.ts';
import { buildCert, buildCrl, pem, testKey, type TestKeyType } from '../helpers/x509.ts';

const ROOT = 'C=CH, O=Test, CN=Root CA';

function throwsPki(fn: () => unknown, re?: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof PkiError, `expected PkiError, got ${String(e)}`);
    if (re) assert.match(e.message, re);
    return true;
  });
}

describe('DER reader', () => {
  it('reads short and long lengths', () => {
    const long = Buffer.concat([Buffer.from([0x04, 0x81, 0x80]), Buffer.alloc(0x80)]);
    const t = readTlv(long, 0, long.length);
    assert.deepEqual([t.tag, t.valueStart, t.end], [0x04, 3, 0x83]);
    const short = Buffer.from([0x02, 0x01, 0x05]);
    assert.equal(readTlv(short, 0, 3).end, 3);
  });

  it('refuses indefinite, non-minimal, over-long and truncated lengths and multi-octet tags', () => {
    const bad: [number[], RegExp][] = [
      [[0x30, 0x80, 0x00, 0x00], /indefinite/],
      [[0x04, 0x81, 0x05, 1, 2, 3, 4, 5], /shortest/],
      [[0x04, 0x82, 0x00, 0x80], /shortest/],
      [[0x04, 0x85, 1, 0, 0, 0, 0], /length of 5 octets/],
      [[0x04, 0x05, 1, 2], /claims 5 bytes/],
      [[0x04, 0x84, 0x7f, 0xff, 0xff, 0xff], /element of|claims/],
      [[0x1f, 0x81, 0x01, 0x00], /multi-octet tag/],
      [[0x04], /truncated/],
    ];
    for (const [bytes, re] of bad) {
      const b = Buffer.from(bytes);
      assert.throws(() => readTlv(b, 0, b.length), (e: unknown) => e instanceof DerError && re.test(e.message), bytes.join(','));
    }
  });

  it('an element must fit in its parent; finish() refuses leftovers', () => {
    // SEQUENCE of 3 bytes holding an OCTET STRING that claims 4
    const b = Buffer.from([0x30, 0x03, 0x04, 0x04, 0x00, 0x00, 0x00]);
    const r = new DerReader(b);
    const seq = r.enter('seq');
    assert.throws(() => seq.next('inner'), DerError);
    const b2 = Buffer.from([0x30, 0x03, 0x05, 0x00, 0x00]);
    const seq2 = new DerReader(b2).enter('seq');
    seq2.expect(Tag.NULL, 'null');
    assert.throws(() => seq2.finish('seq'), /unexpected bytes/);
  });

  it('decodes OIDs and refuses non-minimal arcs', () => {
    assert.equal(decodeOid(Buffer.from('2a864886f70d01010b', 'hex'), 'oid'), '1.2.840.113549.1.1.11');
    assert.equal(decodeOid(Buffer.from('2b6570', 'hex'), 'oid'), '1.3.101.112');
    assert.throws(() => decodeOid(Buffer.from('2a808601', 'hex'), 'oid'), /shortest/);
    assert.throws(() => decodeOid(Buffer.from('2a86', 'hex'), 'oid'), /truncated/);
  });

  it('reads UTCTime and GeneralizedTime strictly', () => {
    const t = (tag: number, s: string) => readTime(new DerReader(Buffer.concat([Buffer.from([tag, s.length]), Buffer.from(s)])), 't');
    assert.equal(t(Tag.UTC_TIME, '491231235959Z').toISOString(), '2049-12-31T23:59:59.000Z');
    assert.equal(t(Tag.UTC_TIME, '500101000000Z').toISOString(), '1950-01-01T00:00:00.000Z');
    assert.equal(t(Tag.GENERALIZED_TIME, '20500101000000Z').toISOString(), '2050-01-01T00:00:00.000Z');
    assert.throws(() => t(Tag.UTC_TIME, '4912312359Z'), DerError);
    assert.throws(() => t(Tag.UTC_TIME, '490231000000Z'), /invalid date/);
    assert.throws(() => t(Tag.GENERALIZED_TIME, '20500101000000+0100'), DerError);
  });
});

describe('certificates', () => {
  const kinds: [TestKeyType, string, number][] = [
    ['rsa2048', 'rsa', 2048],
    ['p256', 'ecdsa-256', 256],
    ['p384', 'ecdsa-384', 384],
    ['p521', 'ecdsa-521', 521],
    ['ed25519', 'ed25519', 256],
    ['ed448', 'ed448', 456],
  ];
  for (const [type, kind, bits] of kinds) {
    it(`loads a ${kind} certificate with its fields`, () => {
      const key = testKey(type);
      const der = buildCert({
        subject: 'C=CH, O=Test, CN=gw.example.net',
        key,
        issuer: { dn: ROOT, key: testKey('p256', 9) },
        serial: Buffer.from('00f00d', 'hex'),
        ca: false,
        keyUsage: ['digitalSignature', 'keyEncipherment'],
        san: { dns: ['gw.example.net'], email: ['ops@example.net'], ip: [Buffer.from([192, 0, 2, 7])] },
        notBefore: new Date('2026-01-01T00:00:00Z'),
        notAfter: new Date('2036-01-01T00:00:00Z'),
      });
      const [c] = loadCertificates(der, 'gw.der');
      assert.ok(c);
      assert.equal(c.kind, kind);
      assert.equal(c.bits, bits);
      assert.equal(c.subject, 'C=CH, O=Test, CN=gw.example.net');
      assert.equal(c.issuer, ROOT);
      assert.equal(c.serial, 'f00d');
      assert.equal(c.isCa, false);
      assert.equal(c.selfSigned, false);
      assert.deepEqual(c.keyUsage, ['digitalSignature', 'keyEncipherment']);
      assert.deepEqual(
        c.altNames.map((a) => `${a.type}:${a.value}`),
        ['dns:gw.example.net', 'email:ops@example.net', 'ip:192.0.2.7'],
      );
      assert.equal(c.notBefore.toISOString(), '2026-01-01T00:00:00.000Z');
      assert.equal(c.notAfter.toISOString(), '2036-01-01T00:00:00.000Z');
      assert.equal(c.signatureAlgorithm, 'ecdsa-with-SHA256');
      assert.equal(c.spkiSha1.length, 20);
      assert.ok(c.der.equals(der));
      assert.equal(c.x509.serialNumber.toLowerCase(), '00f00d'.replace(/^00/, '').padStart(4, '0'));
    });
  }

  it('spkiSha1 is the SHA-1 of the SubjectPublicKeyInfo (RFC 7296 CERTREQ hash)', async () => {
    const { createHash } = await import('node:crypto');
    const key = testKey('p256');
    const [c] = loadCertificates(buildCert({ subject: ROOT, key, ca: true }), 'ca');
    const spki = key.publicKey.export({ type: 'spki', format: 'der' });
    assert.ok(c!.spkiSha1.equals(createHash('sha1').update(spki).digest()));
    assert.equal(c!.selfSigned, true);
    assert.equal(c!.isCa, true);
  });

  it('reads several PEM certificates and skips other blocks', () => {
    const a = buildCert({ subject: 'CN=a', key: testKey('ed25519') });
    const b = buildCert({ subject: 'CN=b', key: testKey('p256'), ca: true, pathLen: 2 });
    const text = `junk before\n${pem('CERTIFICATE', a)}${pem('EC PRIVATE KEY', Buffer.from([0x30, 0]))}${pem('CERTIFICATE', b)}`;
    const certs = loadCertificates(Buffer.from(text), 'bundle.pem');
    assert.deepEqual(
      certs.map((c) => [c.subject, c.pathLen]),
      [
        ['CN=a', undefined],
        ['CN=b', 2],
      ],
    );
  });

  it('refuses weak or unknown keys, unknown signature algorithms and critical extensions', () => {
    throwsPki(() => loadCertificates(buildCert({ subject: 'CN=x', key: testKey('rsa1024') }), 'weak.der'), /1024 bits is too weak/);
    throwsPki(
      () => loadCertificates(buildCert({ subject: 'CN=x', key: testKey('secp256k1'), issuer: { dn: 'CN=ca', key: testKey('p256') } }), 'k1'),
      /curve secp256k1 is not supported/,
    );
    // an AlgorithmIdentifier with an unknown OID (1.2.3.4)
    const unknown = Buffer.from('300506032a0304', 'hex');
    throwsPki(() => loadCertificates(buildCert({ subject: 'CN=x', key: testKey('p256'), rawSigAlg: unknown }), 'u'), /unknown signature algorithm 1\.2\.3\.4/);
    const md5 = Buffer.from('300d06092a864886f70d0101040500', 'hex');
    throwsPki(() => loadCertificates(buildCert({ subject: 'CN=x', key: testKey('rsa2048'), rawSigAlg: md5 }), 'm'), /md5WithRSAEncryption is not supported/);
    const crit = [{ oid: '1.3.6.1.4.1.99999.1', critical: true, value: Buffer.from([0x05, 0x00]) }];
    throwsPki(() => loadCertificates(buildCert({ subject: 'CN=x', key: testKey('p256'), extensions: crit }), 'c'), /critical extension 1\.3\.6\.1\.4\.1\.99999\.1/);
    const nc = [{ oid: '2.5.29.30', critical: true, value: Buffer.from([0x30, 0x00]) }];
    throwsPki(() => loadCertificates(buildCert({ subject: 'CN=x', key: testKey('p256'), ca: true, extensions: nc }), 'c'), /nameConstraints: empty/);
    // freshestCRL (delta CRLs) is not processed: refused when critical
    const fc = [{ oid: '2.5.29.46', critical: true, value: Buffer.from([0x30, 0x00]) }];
    throwsPki(() => loadCertificates(buildCert({ subject: 'CN=x', key: testKey('p256'), ca: true, extensions: fc }), 'c'), /critical extension freshestCrl is not supported/);
    // the same unknown extension, not critical, is fine
    loadCertificates(buildCert({ subject: 'CN=x', key: testKey('p256'), extensions: [{ ...crit[0]!, critical: false }] }), 'ok');
  });

  it('refuses empty, non-certificate, truncated and oversized input with PkiError', () => {
    throwsPki(() => loadCertificates(Buffer.alloc(0), 'e'), /empty/);
    throwsPki(() => loadCertificates(Buffer.from('hello'), 'txt'), /neither PEM nor/);
    throwsPki(() => loadCertificates(Buffer.from('-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n'), 'b64'), /invalid base64/);
    throwsPki(() => loadCertificates(Buffer.from('-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n'), 'tiny'), /malformed/);
    throwsPki(() => loadCertificates(Buffer.from(pem('PRIVATE KEY', Buffer.from([0x30, 0]))), 'k'), /no CERTIFICATE block/);
    const der = buildCert({ subject: 'CN=x', key: testKey('ed25519') });
    for (let n = 1; n < der.length; n++) throwsPki(() => loadCertificates(der.subarray(0, n), 'cut'));
    throwsPki(() => loadCertificates(Buffer.concat([der, Buffer.from([0])]), 'extra'), /unexpected bytes|malformed/);
    // a 1 MB blob: a SEQUENCE header claiming 1 MB of contents
    const blob = Buffer.concat([Buffer.from([0x30, 0x83, 0x10, 0x00, 0x00]), randomBytes(0x100000)]);
    const t0 = performance.now();
    throwsPki(() => loadCertificates(blob, 'blob'), /too large|malformed/);
    throwsPki(() => loadCertificates(randomBytes(1 << 20), 'random'));
    // 10,000 nested SEQUENCEs
    const deep = Buffer.alloc(20_000);
    for (let i = 0; i < 10_000; i++) {
      deep[2 * i] = 0x30;
      deep[2 * i + 1] = 0x80;
    }
    throwsPki(() => loadCertificates(deep, 'deep'), /malformed/);
    assert.ok(performance.now() - t0 < 500);
    throwsPki(() => loadCertificates(Buffer.alloc(17 * 1024 * 1024, 0x30), 'huge'), /larger than/);
  });

  it('never throws anything but PkiError for mutated certificates', () => {
    const der = buildCert({
      subject: 'C=CH, CN=x',
      key: testKey('ed25519'),
      ca: true,
      pathLen: 1,
      keyUsage: ['keyCertSign'],
      san: { dns: ['x.example'], ip: [Buffer.alloc(16, 1)] },
    });
    let loaded = 0;
    for (let i = 0; i < 1500; i++) {
      const m = Buffer.from(der);
      const flips = 1 + (i % 3);
      for (let f = 0; f < flips; f++) {
        const pos = Math.floor(Math.random() * m.length);
        m[pos] = i % 2 ? m[pos]! ^ (1 << (i % 8)) : Math.floor(Math.random() * 256);
      }
      try {
        loadCertificates(m, 'fuzz');
        loaded++;
      } catch (e) {
        assert.ok(e instanceof PkiError, `mutation ${i}: ${String(e)}`);
      }
    }
    assert.ok(loaded < 1500);
  });
});

describe('private keys', () => {
  it('loads PKCS#1, SEC1, PKCS#8 in PEM and DER and matches them to certificates', () => {
    const rsa = testKey('rsa2048');
    const ec = testKey('p384');
    const ed = testKey('ed448');
    const forms: [Buffer | string, string][] = [
      [rsa.privateKey.export({ type: 'pkcs1', format: 'pem' }), 'rsa'],
      [rsa.privateKey.export({ type: 'pkcs1', format: 'der' }), 'rsa'],
      [rsa.privateKey.export({ type: 'pkcs8', format: 'der' }), 'rsa'],
      [ec.privateKey.export({ type: 'sec1', format: 'pem' }), 'ecdsa-384'],
      [ec.privateKey.export({ type: 'sec1', format: 'der' }), 'ecdsa-384'],
      [ec.privateKey.export({ type: 'pkcs8', format: 'pem' }), 'ecdsa-384'],
      [ed.privateKey.export({ type: 'pkcs8', format: 'pem' }), 'ed448'],
      [ed.privateKey.export({ type: 'pkcs8', format: 'der' }), 'ed448'],
    ];
    for (const [data, kind] of forms) {
      const k = loadPrivateKey(Buffer.from(data), 'key');
      assert.equal(k.kind, kind);
    }
    const rsaCert = loadCertificates(buildCert({ subject: 'CN=r', key: rsa }), 'r')[0]!;
    const ecCert = loadCertificates(buildCert({ subject: 'CN=e', key: ec }), 'e')[0]!;
    const rk = loadPrivateKey(Buffer.from(rsa.privateKey.export({ type: 'pkcs8', format: 'pem' })), 'k');
    assert.equal(matchesCert(rk, rsaCert), true);
    assert.equal(matchesCert(rk, ecCert), false);
    const other = loadPrivateKey(Buffer.from(testKey('rsa2048', 1).privateKey.export({ type: 'pkcs8', format: 'pem' })), 'k2');
    assert.equal(matchesCert(other, rsaCert), false);
  });

  it('decrypts encrypted keys with the passphrase and says what is wrong without it', () => {
    const ec = testKey('p256');
    const encrypted = [
      ec.privateKey.export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: 'pw' }),
      ec.privateKey.export({ type: 'sec1', format: 'pem', cipher: 'aes-128-cbc', passphrase: 'pw' }),
      ec.privateKey.export({ type: 'pkcs8', format: 'der', cipher: 'aes-256-cbc', passphrase: 'pw' }),
    ];
    for (const e of encrypted) {
      const b = Buffer.from(e);
      assert.equal(loadPrivateKey(b, 'k', 'pw').kind, 'ecdsa-256');
      throwsPki(() => loadPrivateKey(b, 'k.pem'), /k\.pem: the key is encrypted and no passphrase/);
      throwsPki(() => loadPrivateKey(b, 'k.pem', 'wrong'), /wrong passphrase/);
    }
  });

  it('refuses weak keys, several keys and garbage', () => {
    throwsPki(() => loadPrivateKey(Buffer.from(testKey('rsa1024').privateKey.export({ type: 'pkcs8', format: 'pem' })), 'w'), /too weak/);
    const one = testKey('p256').privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
    throwsPki(() => loadPrivateKey(Buffer.from(one + one), 'two'), /more than one/);
    throwsPki(() => loadPrivateKey(Buffer.from([0x30, 0x03, 0x02, 0x01, 0x00]), 'g'), /not a usable private key/);
    throwsPki(() => loadPrivateKey(randomBytes(1 << 20), 'r'));
  });
});

describe('CRLs', () => {
  const ca = { dn: ROOT, key: testKey('p256', 5) };
  it('reads issuer, dates, revoked serials and the CRL number', () => {
    const der = buildCrl({
      issuer: ca,
      thisUpdate: new Date('2026-12-01T00:00:00Z'),
      nextUpdate: new Date('2026-12-08T00:00:00Z'),
      revoked: [{ serial: 0x1234 }, { serial: Buffer.from('00ff01', 'hex'), reason: 1 }, { serial: 7, reason: 8 }],
      crlNumber: 42,
    });
    for (const data of [der, Buffer.from(pem('X509 CRL', der))]) {
      const crl = loadCrl(data, 'ca.crl');
      assert.equal(crl.issuer, ROOT);
      assert.equal(crl.thisUpdate.toISOString(), '2026-12-01T00:00:00.000Z');
      assert.equal(crl.nextUpdate?.toISOString(), '2026-12-08T00:00:00.000Z');
      // removeFromCRL (8) does not revoke
      assert.deepEqual([...crl.revoked.keys()], ['1234', 'ff01']);
      assert.equal(crl.crlNumber, '2a');
    }
  });

  it('refuses delta CRLs, unknown critical extensions and malformed data', () => {
    throwsPki(() => loadCrl(buildCrl({ issuer: ca, extensions: [{ oid: '2.5.29.27', critical: true, value: Buffer.from([2, 1, 1]) }] }), 'd'), /delta CRLs/);
    throwsPki(() => loadCrl(buildCrl({ issuer: ca, extensions: [{ oid: '1.2.3.4', critical: true, value: Buffer.from([5, 0]) }] }), 'c'), /critical CRL extension 1\.2\.3\.4/);
    // issuingDistributionPoint with indirectCRL
    throwsPki(() => loadCrl(buildCrl({ issuer: ca, extensions: [{ oid: '2.5.29.28', critical: true, value: Buffer.from([0x30, 3, 0x84, 1, 0xff]) }] }), 'i'), /indirect/);
    const idp = loadCrl(buildCrl({ issuer: ca, extensions: [{ oid: '2.5.29.28', critical: true, value: Buffer.from([0x30, 3, 0x81, 1, 0xff]) }] }), 'u');
    assert.equal(idp.onlyUserCerts, true);
    const der = buildCrl({ issuer: ca, revoked: [{ serial: 1 }] });
    for (let n = 1; n < der.length; n++) throwsPki(() => loadCrl(der.subarray(0, n), 'cut'));
    throwsPki(() => loadCrl(Buffer.from(pem('CERTIFICATE', der)), 'p'), /no X509 CRL block/);
    throwsPki(() => loadCrl(randomBytes(1 << 20), 'r'));
  });
});

describe('CERT payload certificates', () => {
  it('parseCertificate takes one DER certificate and nothing else', async () => {
    const { parseCertificate } = await import('../../src/pki/api.ts');
    const der = buildCert({ subject: 'CN=peer', key: testKey('p256') });
    assert.equal(parseCertificate(der, 'CERT payload').subject, 'CN=peer');
    throwsPki(() => parseCertificate(Buffer.from(pem('CERTIFICATE', der)), 'CERT payload'), /CERT payload: not a DER certificate/);
    throwsPki(() => parseCertificate(Buffer.alloc(0), 'CERT payload'), /not a DER/);
    throwsPki(() => parseCertificate(Buffer.concat([Buffer.from([0x30, 0x83, 0x10, 0x00, 0x00]), Buffer.alloc(0x100000)]), 'CERT payload'), /too large/);
  });
});

describe('PEM armour', () => {
  it('refuses unterminated and mismatched blocks quickly, even many of them', () => {
    const begins = Buffer.from('-----BEGIN CERTIFICATE-----\nAAAA\n'.repeat(200_000));
    const t0 = performance.now();
    throwsPki(() => loadCertificates(begins, 'b.pem'), /no END line/);
    assert.ok(performance.now() - t0 < 500);
    throwsPki(() => loadCertificates(Buffer.from('-----BEGIN CERTIFICATE-----\nAAAA\n-----END X509 CRL-----\n'), 'm'), /no END line/);
    throwsPki(() => loadCertificates(Buffer.from('-----BEGIN certificate-----\nAAAA\n-----END certificate-----\n'), 'l'), /label/);
  });

  it('reads CRLF line ends and a byte-order mark', () => {
    const der = buildCert({ subject: 'CN=crlf', key: testKey('ed25519') });
    const text = `\ufeff${pem('CERTIFICATE', der).replace(/\n/g, '\r\n')}`;
    assert.equal(loadCertificates(Buffer.from(text), 'crlf.pem')[0]!.subject, 'CN=crlf');
  });
});

describe('RSA public exponent', () => {
  it('refuses exponents over 2^32-1 (each verification would cost a private-key operation)', async () => {
    const { createPublicKey } = await import('node:crypto');
    const jwk = testKey('rsa2048').publicKey.export({ format: 'jwk' });
    const e = Buffer.from('0100000001', 'hex').toString('base64url');
    const publicKey = createPublicKey({ key: { kty: 'RSA', n: jwk.n!, e }, format: 'jwk' });
    const der = buildCert({ subject: 'CN=e', key: { publicKey, privateKey: testKey('p256').privateKey }, issuer: { dn: 'CN=ca', key: testKey('p256') } });
    throwsPki(() => loadCertificates(der, 'e.der'), /public exponent 4294967297 is not accepted/);
  });
});

describe('mutated CRLs and keys', () => {
  it('never throw anything but PkiError', () => {
    const crlDer = buildCrl({ issuer: { dn: ROOT, key: testKey('ed25519', 3) }, revoked: [{ serial: 1, reason: 1 }, { serial: 2 }], crlNumber: 3 });
    const keyDer = testKey('p256').privateKey.export({ type: 'pkcs8', format: 'der' });
    for (const [what, der, load] of [
      ['CRL', crlDer, (b: Buffer) => loadCrl(b, 'fuzz.crl')],
      ['key', keyDer, (b: Buffer) => loadPrivateKey(b, 'fuzz.key')],
    ] as const) {
      for (let i = 0; i < 800; i++) {
        const m = Buffer.from(der);
        for (let f = 0; f <= i % 3; f++) m[Math.floor(Math.random() * m.length)] = Math.floor(Math.random() * 256);
        try {
          load(m);
        } catch (e) {
          assert.ok(e instanceof PkiError, `${what} mutation ${i}: ${String(e)}`);
        }
      }
    }
  });
});
