/**
 * IKE signature AUTH: RFC 7427 Appendix A AlgorithmIdentifiers as test vectors, each method's round
 * trip with keys made here, and cross-checks that must fail (PSS read as PKCS#1, wrong key, SHA-1
 * not allowed, key/method mismatch, malformed AUTH data).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { HASH_ALGORITHMS, loadPrivateKey, ourHashAlgorithms, PkiError, signAuth, verifyAuth, type PrivateKey, type PublicKeyInfo } from '../../src/pki/api.ts';
import { encodeSigAlg, parseSigAlg, RSA_PKCS1, RSA_PSS } from '../../src/pki/algorithms.ts';
import { keyKind } from '../../src/pki/kinds.ts';
import { testKey, type TestKeyType } from '../helpers/x509.ts';

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');

/** RFC 7427 Appendix A (A.1 RSA PKCS#1, A.3 ECDSA, A.4 RSASSA-PSS) and RFC 8420 / 8410 EdDSA. */
const VECTORS: [string, string, string][] = [
  ['A.1.1 sha1WithRSAEncryption', '300d06092a864886f70d0101050500', 'sha1WithRSAEncryption'],
  ['A.1.2 sha256WithRSAEncryption', '300d06092a864886f70d01010b0500', 'sha256WithRSAEncryption'],
  ['A.1.3 sha384WithRSAEncryption', '300d06092a864886f70d01010c0500', 'sha384WithRSAEncryption'],
  ['A.1.4 sha512WithRSAEncryption', '300d06092a864886f70d01010d0500', 'sha512WithRSAEncryption'],
  ['A.3.1 ecdsa-with-sha1', '3009 06072a8648ce3d0401', 'ecdsa-with-SHA1'],
  ['A.3.2 ecdsa-with-sha256', '300a 06082a8648ce3d040302', 'ecdsa-with-SHA256'],
  ['A.3.3 ecdsa-with-sha384', '300a 06082a8648ce3d040303', 'ecdsa-with-SHA384'],
  ['A.3.4 ecdsa-with-sha512', '300a 06082a8648ce3d040304', 'ecdsa-with-SHA512'],
  ['A.4.1 RSASSA-PSS with empty parameters', '300d 06092a864886f70d01010a 3000', 'RSASSA-PSS/sha1'],
  [
    'A.4.2 RSASSA-PSS with default parameters',
    '303e06092a864886f70d01010a3031a00b300906052b0e03021a0500a118301606092a864886f70d010108300906052b0e03021a0500a203020114a303020101',
    'RSASSA-PSS/sha1',
  ],
  [
    'A.4.3 RSASSA-PSS with SHA-256',
    '304606092a864886f70d01010a3039a00f300d06096086480165030402010500a11c301a06092a864886f70d010108300d06096086480165030402010500a203020120a303020101',
    'RSASSA-PSS/sha256',
  ],
  ['RFC 8420 Ed25519', '300506032b6570', 'Ed25519'],
  ['RFC 8420 Ed448', '300506032b6571', 'Ed448'],
];

/** AlgorithmIdentifiers that must be refused. */
const BAD: [string, string, RegExp][] = [
  ['A.2.1 dsa-with-sha1 (DSA is not supported)', '3009 06072a8648ce380403', /unknown signature algorithm 1\.2\.840\.10040\.4\.3/],
  ['PSS with an unknown hash', '301e06092a864886f70d01010a3011a00f300d06096086480165030402000500', /unknown hash/],
  ['PSS with an unknown MGF', '302b06092a864886f70d01010a301ea11c301a06092a864886f70d010100300d06096086480165030402010500', /mask generation/],
  ['PSS with trailerField 2', '301206092a864886f70d01010a3005a303020102', /trailerField 2/],
  ['PSS with a two-byte trailerField', '301306092a864886f70d01010a3006a30402020101', /trailerField 257/],
  [
    'PSS with a negative salt',
    '304d06092a864886f70d01010a3040a00f300d06096086480165030402010500a11c301a06092a864886f70d010108300d06096086480165030402010500a20a0208ffffffffffffffffa303020101',
    /negative|too large|shortest/,
  ],
  ['PSS with MGF1-SHA-256 and SHA-1', '302b06092a864886f70d01010a301ea11c301a06092a864886f70d010108300d06096086480165030402010500', /MGF1-sha256 and sha1/],
  ['ECDSA with NULL parameters', '300c06082a8648ce3d0403020500', /no parameters/],
  ['Ed25519 with trailing bytes', '300706032b65700500', /no parameters/],
  ['sha256WithRSA with an extra element', '300f06092a864886f70d01010b05000500', /unexpected bytes/],
  ['truncated', '300d06092a864886f70d01010b05', /missing|claims|truncated/],
];

function priv(type: TestKeyType, slot = 0): PrivateKey {
  const k = testKey(type, slot);
  return { source: type, key: k.privateKey, publicKey: k.publicKey, ...keyKind(k.privateKey, type) };
}
function pub(type: TestKeyType, slot = 0): PublicKeyInfo {
  const k = testKey(type, slot);
  return { publicKey: k.publicKey, ...keyKind(k.publicKey, type) };
}

const OCTETS = Buffer.from('RealMessage1 | NonceRData | prf(SK_pi, IDi)');
const ALL = ourHashAlgorithms(false);
const STRICT = { allowSha1: false };

describe('AlgorithmIdentifiers (RFC 7427 Appendix A)', () => {
  for (const [name, der, parsed] of VECTORS) {
    it(`parses ${name}`, () => assert.equal(parseSigAlg(hex(der), 'alg').name, parsed));
  }
  for (const [name, der, re] of BAD) {
    it(`refuses ${name}`, () => assert.throws(() => parseSigAlg(hex(der), 'alg'), re));
  }
  it('encodes PKCS#1 as A.1 and PSS with explicit SHA-2 parameters, no trailerField (RFC 7427 errata 4295)', () => {
    assert.equal(encodeSigAlg(RSA_PKCS1('sha256')).toString('hex'), '300d06092a864886f70d01010b0500');
    assert.equal(
      encodeSigAlg(RSA_PSS('sha256')).toString('hex'),
      '304106092a864886f70d01010a3034a00f300d06096086480165030402010500a11c301a06092a864886f70d010108300d06096086480165030402010500a203020120',
    );
    const pss512 = parseSigAlg(encodeSigAlg(RSA_PSS('sha512')), 'alg');
    assert.deepEqual([pss512.hash, pss512.pssSalt], ['sha512', 64]);
  });
  it('announces SHA2-256/384/512 and IDENTITY, SHA-1 only when allowed', () => {
    assert.deepEqual(ourHashAlgorithms(false), [2, 3, 4, 5]);
    assert.deepEqual(ourHashAlgorithms(true), [1, 2, 3, 4, 5]);
  });
});

describe('known answers (RFC 8032 §7.1 Ed25519 test vectors through method 14)', () => {
  const vectors = [
    {
      d: '9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60',
      x: 'd75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a',
      msg: '',
      sig: 'e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b',
    },
    {
      d: '4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb',
      x: '3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c',
      msg: '72',
      sig: '92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00',
    },
  ];
  for (const [i, v] of vectors.entries()) {
    it(`TEST ${i + 1}: exact AUTH data, and it verifies`, async () => {
      const { createPrivateKey, createPublicKey } = await import('node:crypto');
      const jwk = { kty: 'OKP', crv: 'Ed25519', d: hex(v.d).toString('base64url'), x: hex(v.x).toString('base64url') };
      const der = createPrivateKey({ key: jwk, format: 'jwk' }).export({ type: 'pkcs8', format: 'der' });
      const key = loadPrivateKey(der, 'rfc8032');
      const s = await signAuth(key, hex(v.msg), [HASH_ALGORITHMS.IDENTITY]);
      assert.equal(s.method, 14);
      assert.equal(s.data.toString('hex'), `07300506032b6570${v.sig}`);
      const publicKey = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: jwk.x }, format: 'jwk' });
      assert.equal(await verifyAuth({ publicKey, kind: 'ed25519', bits: 256 }, 14, s.data, hex(v.msg), STRICT), undefined);
    });
  }
});

describe('known answer (RFC 4754 §8.1 ECDSA-256, method 9)', () => {
  it('verifies the RFC signature over "abc" and refuses it altered', async () => {
    const { createPublicKey } = await import('node:crypto');
    const x = hex('2442A5CC0ECD015FA3CA31DC8E2BBC70BF42D60CBCA20085E0822CB04235E970').toString('base64url');
    const y = hex('6FC98BD7E50211A4A27102FA3549DF79EBCB4BF246B80945CDDFE7D509BBFD7D').toString('base64url');
    const publicKey = createPublicKey({ key: { kty: 'EC', crv: 'P-256', x, y }, format: 'jwk' });
    const rs = hex('CB28E0999B9C7715FD0A80D8E47A77079716CBBF917DD72E97566EA1C066957C 86FA3BB4E26CAD5BF90B7F81899256CE7594BB1EA0C89212748BFF3B3D5B0315');
    const info = { publicKey, kind: 'ecdsa-256' as const, bits: 256 };
    assert.equal(await verifyAuth(info, 9, rs, Buffer.from('abc'), STRICT), undefined);
    assert.match((await verifyAuth(info, 9, rs, Buffer.from('abd'), STRICT)) ?? '', /bad signature/);
    rs[63] ^= 1;
    assert.match((await verifyAuth(info, 9, rs, Buffer.from('abc'), STRICT)) ?? '', /bad signature/);
  });
});

describe('signature AUTH round trips', () => {
  const cases: [TestKeyType, number[] | undefined, number, string | undefined][] = [
    ['rsa2048', ALL, 14, 'RSASSA-PSS/sha256'],
    ['rsa4096', ALL, 14, 'RSASSA-PSS/sha384'],
    ['rsa2048', [HASH_ALGORITHMS.SHA2_512], 14, 'RSASSA-PSS/sha512'],
    ['rsa2048', undefined, 1, undefined],
    ['rsa2048', [HASH_ALGORITHMS.SHA1], 1, undefined],
    ['p256', ALL, 14, 'ecdsa-with-SHA256'],
    ['p256', [HASH_ALGORITHMS.SHA2_384], 14, 'ecdsa-with-SHA384'],
    ['p384', ALL, 14, 'ecdsa-with-SHA384'],
    ['p521', ALL, 14, 'ecdsa-with-SHA512'],
    ['p256', undefined, 9, undefined],
    ['p384', undefined, 10, undefined],
    ['p521', undefined, 11, undefined],
    ['p384', [HASH_ALGORITHMS.SHA2_256], 10, undefined],
    ['ed25519', ALL, 14, 'Ed25519'],
    ['ed448', [HASH_ALGORITHMS.IDENTITY], 14, 'Ed448'],
  ];
  for (const [type, hashes, method, alg] of cases) {
    it(`${type} with peer hashes ${hashes ? `[${hashes.join(',')}]` : 'none'}: method ${method}${alg ? ` ${alg}` : ''}`, async () => {
      const s = await signAuth(priv(type), OCTETS, hashes);
      assert.equal(s.method, method);
      if (alg) assert.equal(parseSigAlg(s.data.subarray(1, 1 + s.data[0]!), 'alg').name, alg);
      if (method >= 9 && method <= 11) assert.equal(s.data.length, { 9: 64, 10: 96, 11: 132 }[method]);
      const allowSha1 = method === 1;
      assert.equal(await verifyAuth(pub(type), s.method, s.data, OCTETS, { allowSha1 }), undefined);
      // other octets, another key of the same type
      assert.match((await verifyAuth(pub(type), s.method, s.data, Buffer.concat([OCTETS, Buffer.from([0])]), { allowSha1 })) ?? '', /bad signature/);
      assert.match((await verifyAuth(pub(type, 1), s.method, s.data, OCTETS, { allowSha1 })) ?? '', /bad signature/);
    });
  }

  it('PKCS#1 v1.5 with SHA-2 when PSS is off', async () => {
    const s = await signAuth(priv('rsa2048'), OCTETS, ALL, { rsaPss: false });
    assert.equal(s.data.subarray(1, 1 + s.data[0]!).toString('hex'), '300d06092a864886f70d01010b0500');
    assert.equal(await verifyAuth(pub('rsa2048'), 14, s.data, OCTETS, STRICT), undefined);
  });

  it('a PSS signature presented as PKCS#1 v1.5 (and the reverse) fails', async () => {
    const pss = await signAuth(priv('rsa2048'), OCTETS, ALL);
    const asPkcs1 = Buffer.concat([Buffer.from([15]), hex('300d06092a864886f70d01010b0500'), pss.data.subarray(1 + pss.data[0]!)]);
    assert.match((await verifyAuth(pub('rsa2048'), 14, asPkcs1, OCTETS, STRICT)) ?? '', /bad signature/);
    const pkcs1 = await signAuth(priv('rsa2048'), OCTETS, ALL, { rsaPss: false });
    const pssId = encodeSigAlg(RSA_PSS('sha256'));
    const asPss = Buffer.concat([Buffer.from([pssId.length]), pssId, pkcs1.data.subarray(16)]);
    assert.match((await verifyAuth(pub('rsa2048'), 14, asPss, OCTETS, STRICT)) ?? '', /bad signature/);
  });

  it('SHA-1 is refused unless allowed (method 1 and method 14 with SHA-1)', async () => {
    const m1 = await signAuth(priv('rsa2048'), OCTETS, undefined);
    assert.match((await verifyAuth(pub('rsa2048'), 1, m1.data, OCTETS, STRICT)) ?? '', /SHA-1.*not allowed/);
    const sha1Id = hex('300d06092a864886f70d0101050500');
    const m14 = Buffer.concat([Buffer.from([sha1Id.length]), sha1Id, m1.data]);
    assert.match((await verifyAuth(pub('rsa2048'), 14, m14, OCTETS, STRICT)) ?? '', /SHA-1, which is not allowed/);
    assert.equal(await verifyAuth(pub('rsa2048'), 14, m14, OCTETS, { allowSha1: true }), undefined);
  });

  it('key and method must fit', async () => {
    const ec = await signAuth(priv('p256'), OCTETS, undefined);
    assert.match((await verifyAuth(pub('p384'), 9, ec.data, OCTETS, STRICT)) ?? '', /method 9 .* ecdsa-384 key/);
    assert.match((await verifyAuth(pub('p256'), 1, ec.data, OCTETS, { allowSha1: true })) ?? '', /method 1 \(RSA\) with a ecdsa-256 key/);
    const ec14 = await signAuth(priv('p256'), OCTETS, ALL);
    assert.match((await verifyAuth(pub('rsa2048'), 14, ec14.data, OCTETS, STRICT)) ?? '', /does not fit the peer's rsa key/);
    const ed = await signAuth(priv('ed25519'), OCTETS, ALL);
    assert.match((await verifyAuth(pub('ed448'), 14, ed.data, OCTETS, STRICT)) ?? '', /does not fit/);
    assert.match((await verifyAuth(pub('p256'), 2, ec.data, OCTETS, STRICT)) ?? '', /not a supported signature method/);
  });

  it('EdDSA without IDENTITY from the peer cannot sign', async () => {
    await assert.rejects(signAuth(priv('ed25519'), OCTETS, undefined), PkiError);
    await assert.rejects(signAuth(priv('ed448'), OCTETS, [HASH_ALGORITHMS.SHA2_256]), /IDENTITY/);
  });

  it('malformed AUTH data gives a reason, never an exception', async () => {
    const good = (await signAuth(priv('p256'), OCTETS, ALL)).data;
    const inputs = [
      Buffer.alloc(0),
      Buffer.from([0]),
      Buffer.from([200, 0x30, 0x00]),
      Buffer.from([2, 0x30, 0x00, 1, 2, 3]),
      good.subarray(0, 1 + good[0]!),
      Buffer.concat([Buffer.from([good[0]! + 1]), good.subarray(1)]),
      Buffer.alloc(1 << 20, 0x30),
    ];
    for (let i = 0; i < 300; i++) {
      const m = Buffer.from(good);
      m[Math.floor(Math.random() * m.length)] ^= 1 << (i % 8);
      inputs.push(m);
    }
    for (const d of inputs) {
      const r = await verifyAuth(pub('p256'), 14, d, OCTETS, STRICT);
      assert.equal(typeof r, 'string');
    }
    for (const m of [1, 9, 10, 11]) assert.equal(typeof (await verifyAuth(pub('p256'), m, Buffer.alloc(3), OCTETS, STRICT)), 'string');
  });

  it('signing and verifying run off the event loop', async () => {
    const key = loadPrivateKey(Buffer.from(testKey('rsa4096').privateKey.export({ type: 'pkcs8', format: 'pem' })), 'k');
    await signAuth(key, OCTETS, ALL); // the thread pool is up
    let done = 0;
    const pending = Array.from({ length: 32 }, () => signAuth(key, OCTETS, ALL).then((s) => (done++, s)));
    // a blocking implementation would have finished every signature before this callback runs
    const seen = await new Promise<number>((resolve) => setImmediate(() => resolve(done)));
    assert.ok(seen < 32, `${seen} of 32 signatures were done before the event loop turned`);
    const sigs = await Promise.all(pending);
    let verified = 0;
    const checks = sigs.map((s) => verifyAuth(pub('rsa4096'), s.method, s.data, OCTETS, STRICT).then((r) => (verified++, r)));
    const seenV = await new Promise<number>((resolve) => setImmediate(() => resolve(verified)));
    assert.ok(seenV < 32);
    assert.deepEqual(await Promise.all(checks), Array(32).fill(undefined));
  });
});
