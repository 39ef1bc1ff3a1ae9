/**
 * Known-answer tests for the primitives under the IKEv2 crypto suite: HMAC PRFs and integrity
 * truncation, ECDH (ECP groups), X25519/X448, AES-GCM and ChaCha20-Poly1305 with the IKE/ESP
 * nonce construction, and the RFC 7634 IKEv2 example message through IkeCipher.
 * Each vector names its source; none is computed by the code under test.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createSecretKey } from 'node:crypto';
import { createKeyExchangeFromPrivate } from '../../src/ikev2/crypto/ke.ts';
import { Prf } from '../../src/ikev2/crypto/prf.ts';
import { aeadDecrypt, aeadEncrypt, IkeCipher, IntegrityError } from '../../src/ikev2/crypto/protect.ts';
import { encrAlg, integAlg, prfAlg, PRF_ALGS, INTEG_ALGS } from '../../src/ikev2/crypto/suites.ts';
import { EncrId, IntegId, KeId, PayloadType, PrfId } from '../../src/ikev2/constants.ts';
import type { IkeKeys, IkeSuite } from '../../src/ikev2/crypto/prf.ts';
import type { SkPayload } from '../../src/ikev2/codec/types.ts';

const h = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const a = (s: string): Buffer => Buffer.from(s, 'ascii');
const rep = (byte: number, n: number): Buffer => Buffer.alloc(n, byte);
const seq = (from: number, to: number): Buffer => Buffer.from(Array.from({ length: to - from + 1 }, (_, i) => from + i));

// ---------------------------------------------------------------------------------------------
// HMAC

/** RFC 4231 §4.2-4.8, test cases 1-7 (case 5 is published truncated to 128 bits). */
const RFC4231: { tc: number; key: Buffer; data: Buffer; sha256: string; sha384: string; sha512: string; truncated?: boolean }[] = [
  {
    tc: 1,
    key: rep(0x0b, 20),
    data: a('Hi There'),
    sha256: 'b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7',
    sha384: 'afd03944d84895626b0825f4ab46907f15f9dadbe4101ec682aa034c7cebc59cfaea9ea9076ede7f4af152e8b2fa9cb6',
    sha512:
      '87aa7cdea5ef619d4ff0b4241a1d6cb02379f4e2ce4ec2787ad0b30545e17cdedaa833b7d6b8a702038b274eaea3f4e4be9d914eeb61f1702e696c203a126854',
  },
  {
    tc: 2,
    key: a('Jefe'),
    data: a('what do ya want for nothing?'),
    sha256: '5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843',
    sha384: 'af45d2e376484031617f78d2b58a6b1b9c7ef464f5a01b47e42ec3736322445e8e2240ca5e69e2c78b3239ecfab21649',
    sha512:
      '164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea2505549758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737',
  },
  {
    tc: 3,
    key: rep(0xaa, 20),
    data: rep(0xdd, 50),
    sha256: '773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe',
    sha384: '88062608d3e6ad8a0aa2ace014c8a86f0aa635d947ac9febe83ef4e55966144b2a5ab39dc13814b94e3ab6e101a34f27',
    sha512:
      'fa73b0089d56a284efb0f0756c890be9b1b5dbdd8ee81a3655f83e33b2279d39bf3e848279a722c806b485a47e67c807b946a337bee8942674278859e13292fb',
  },
  {
    tc: 4,
    key: seq(0x01, 0x19),
    data: rep(0xcd, 50),
    sha256: '82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b',
    sha384: '3e8a69b7783c25851933ab6290af6ca77a9981480850009cc5577c6e1f573b4e6801dd23c4a7d679ccf8a386c674cffb',
    sha512:
      'b0ba465637458c6990e5a8c5f61d4af7e576d97ff94b872de76f8050361ee3dba91ca5c11aa25eb4d679275cc5788063a5f19741120c4f2de2adebeb10a298dd',
  },
  {
    tc: 5,
    key: rep(0x0c, 20),
    data: a('Test With Truncation'),
    sha256: 'a3b6167473100ee06e0c796c2955552b',
    sha384: '3abf34c3503b2a23a46efc619baef897',
    sha512: '415fad6271580a531d4179bc891d87a6',
    truncated: true,
  },
  {
    tc: 6,
    key: rep(0xaa, 131),
    data: a('Test Using Larger Than Block-Size Key - Hash Key First'),
    sha256: '60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54',
    sha384: '4ece084485813e9088d2c63a041bc5b44f9ef1012a2b588f3cd11f05033ac4c60c2ef6ab4030fe8296248df163f44952',
    sha512:
      '80b24263c7c1a3ebb71493c1dd7be8b49b46d1f41b4aeec1121b013783f8f3526b56d037e05f2598bd0fd2215d6a1e5295e64f73f63f0aec8b915a985d786598',
  },
  {
    tc: 7,
    key: rep(0xaa, 131),
    data: a(
      'This is a test using a larger than block-size key and a larger than block-size data. ' +
        'The key needs to be hashed before being used by the HMAC algorithm.',
    ),
    sha256: '9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2',
    sha384: '6617178e941f020d351e2f254e8fd32c602420feb0b8fb9adccebb82461e99c5a678cc31e799176d3860e6110c46523e',
    sha512:
      'e37b6a775dc87dbaa4dfa9f96e5e3ffddebd71f8867289865df5a32d20cdc944b6022cac3c4982b10d5eeb55c3e4de15134676fb6de0446065c97440fa8c6a58',
  },
];

/** RFC 2202 §3, HMAC-SHA-1 test cases 1-7 (case 5 also gives the 96-bit truncation). */
const RFC2202: { tc: number; key: Buffer; data: Buffer; digest: string; digest96?: string }[] = [
  { tc: 1, key: rep(0x0b, 20), data: a('Hi There'), digest: 'b617318655057264e28bc0b6fb378c8ef146be00' },
  { tc: 2, key: a('Jefe'), data: a('what do ya want for nothing?'), digest: 'effcdf6ae5eb2fa2d27416d5f184df9c259a7c79' },
  { tc: 3, key: rep(0xaa, 20), data: rep(0xdd, 50), digest: '125d7342b9ac11cd91a39af48aa17b4f63f175d3' },
  { tc: 4, key: seq(0x01, 0x19), data: rep(0xcd, 50), digest: '4c9007f4026250c6bc8414f9bf50c86c2d7235da' },
  {
    tc: 5,
    key: rep(0x0c, 20),
    data: a('Test With Truncation'),
    digest: '4c1a03424b55e07fe7f27be1d58bb9324a9a5a04',
    digest96: '4c1a03424b55e07fe7f27be1',
  },
  {
    tc: 6,
    key: rep(0xaa, 80),
    data: a('Test Using Larger Than Block-Size Key - Hash Key First'),
    digest: 'aa4ae5e15272d00e95705637ce8a3b55ed402112',
  },
  {
    tc: 7,
    key: rep(0xaa, 80),
    data: a('Test Using Larger Than Block-Size Key and Larger Than One Block-Size Data'),
    digest: 'e8e99d0f45237d786d6bbaa7965c7808bbff1a91',
  },
];

test('PRF HMAC-SHA2-256/384/512 match RFC 4231 test cases 1-7 (Buffer and KeyObject keys, split data)', () => {
  for (const [id, field] of [
    [PrfId.HMAC_SHA2_256, 'sha256'],
    [PrfId.HMAC_SHA2_384, 'sha384'],
    [PrfId.HMAC_SHA2_512, 'sha512'],
  ] as const) {
    const prf = new Prf(prfAlg(id)!);
    for (const v of RFC4231) {
      const want = h(v[field]);
      const got = prf.compute(v.key, v.data);
      assert.equal(got.length, prf.alg.outLen);
      const cmp = v.truncated ? got.subarray(0, want.length) : got;
      assert.deepEqual(cmp, want, `${field} test case ${v.tc}`);
      // Same result with a KeyObject key and with the data given in parts.
      const parts = [v.data.subarray(0, 3), v.data.subarray(3)];
      const got2 = prf.compute(createSecretKey(v.key), parts);
      assert.deepEqual(got2, got, `${field} test case ${v.tc} (KeyObject, parts)`);
    }
  }
});

test('PRF HMAC-SHA1 matches RFC 2202 test cases 1-7', () => {
  const prf = new Prf(prfAlg(PrfId.HMAC_SHA1)!);
  for (const v of RFC2202) assert.deepEqual(prf.compute(v.key, v.data), h(v.digest), `test case ${v.tc}`);
});

test('INTEG transforms truncate to RFC 4868 / RFC 2404 ICV lengths (RFC 4231 tc 5, RFC 2202 tc 5)', () => {
  // RFC 4231 case 5 gives 128-bit truncations: HMAC-SHA2-256-128's ICV is exactly that; for
  // 384-192 and 512-256 the published 128 bits are a prefix of the ICV.
  const tc5 = RFC4231[4]!;
  for (const [id, field] of [
    [IntegId.HMAC_SHA2_256_128, 'sha256'],
    [IntegId.HMAC_SHA2_384_192, 'sha384'],
    [IntegId.HMAC_SHA2_512_256, 'sha512'],
  ] as const) {
    const integ = integAlg(id)!;
    assert.equal(integ.hash, field);
    const icv = new Prf({ id: 0, keyword: '', name: '', hash: integ.hash, outLen: 0, preferredKeyLen: 0 })
      .compute(tc5.key, tc5.data)
      .subarray(0, integ.icvLen);
    assert.deepEqual(icv.subarray(0, 16), h(tc5[field]));
  }
  const sha1 = integAlg(IntegId.HMAC_SHA1_96)!;
  assert.equal(sha1.icvLen, 12);
  const v = RFC2202[4]!;
  const full = new Prf(prfAlg(PrfId.HMAC_SHA1)!).compute(v.key, v.data);
  assert.deepEqual(full.subarray(0, sha1.icvLen), h(v.digest96!));
});

test('suite table: HMAC key lengths equal the hash output (RFC 4868 §2.1.1, RFC 2404)', () => {
  for (const p of PRF_ALGS) assert.equal(p.preferredKeyLen, p.outLen);
  for (const i of INTEG_ALGS) assert.equal(i.icvLen * 2 === i.keyLen || i.id === IntegId.HMAC_SHA1_96, true);
});

// ---------------------------------------------------------------------------------------------
// ECDH: RFC 5903 §8.1-8.3 (256-, 384- and 521-bit random ECP groups). KE data is gx | gy.

const RFC5903 = [
  {
    group: KeId.ECP_256,
    i: 'c88f01f510d9ac3f70a292daa2316de544e9aab8afe84049c62a9c57862d1433',
    gix: 'dad0b65394221cf9b051e1feca5787d098dfe637fc90b9ef945d0c3772581180',
    giy: '5271a0461cdb8252d61f1c456fa3e59ab1f45b33accf5f58389e0577b8990bb3',
    r: 'c6ef9c5d78ae012a011164acb397ce2088685d8f06bf9be0b283ab46476bee53',
    grx: 'd12dfb5289c8d4f81208b70270398c342296970a0bccb74c736fc7554494bf63',
    gry: '56fbf3ca366cc23e8157854c13c58d6aac23f046ada30f8353e74f33039872ab',
    girx: 'd6840f6b42f6edafd13116e0e12565202fef8e9ece7dce03812464d04b9442de',
  },
  {
    group: KeId.ECP_384,
    i: '099f3c7034d4a2c699884d73a375a67f7624ef7c6b3c0f160647b67414dce655e35b538041e649ee3faef896783ab194',
    gix: '667842d7d180ac2cde6f74f37551f55755c7645c20ef73e31634fe72b4c55ee6de3ac808acb4bdb4c88732aee95f41aa',
    giy: '9482ed1fc0eeb9cafc4984625ccfc23f65032149e0e144ada024181535a0f38eeb9fcff3c2c947dae69b4c634573a81c',
    r: '41cb0779b4bdb85d47846725fbec3c9430fab46cc8dc5060855cc9bda0aa2942e0308312916b8ed2960e4bd55a7448fc',
    grx: 'e558dbef53eecde3d3fccfc1aea08a89a987475d12fd950d83cfa41732bc509d0d1ac43a0336def96fda41d0774a3571',
    gry: 'dcfbec7aacf3196472169e838430367f66eebe3c6e70c416dd5f0c68759dd1fff83fa40142209dff5eaad96db9e6386c',
    girx: '11187331c279962d93d604243fd592cb9d0a926f422e47187521287e7156c5c4d603135569b9e9d09cf5d4a270f59746',
  },
  {
    group: KeId.ECP_521,
    i:
      '0037ade9319a89f4dabdb3ef411aaccca5123c61acab57b5393dce47608172a095aa85a30fe1c2952c6771d937ba9777f5957b2639bab072462f68c27a57382d4a52',
    gix:
      '0015417e84dbf28c0ad3c278713349dc7df153c897a1891bd98bab4357c9ecbee1e3bf42e00b8e380aeae57c2d107564941885942af5a7f4601723c4195d176ced3e',
    giy:
      '017cae20b6641d2eeb695786d8c946146239d099e18e1d5a514c739d7cb4a10ad8a788015ac405d7799dc75e7b7d5b6cf2261a6a7f1507438bf01beb6ca3926f9582',
    r:
      '0145ba99a847af43793fdd0e872e7cdfa16be30fdc780f97bccc3f078380201e9c677d600b343757a3bdbf2a3163e4c2f869cca7458aa4a4effc311f5cb151685eb9',
    grx:
      '00d0b3975ac4b799f5bea16d5e13e9af971d5e9b984c9f39728b5e5739735a219b97c356436adc6e95bb0352f6be64a6c2912d4ef2d0433ced2b6171640012d9460f',
    gry:
      '015c68226383956e3bd066e797b623c27ce0eac2f551a10c2c724d9852077b87220b6536c5c408a1d2aebb8e86d678ae49cb57091f4732296579ab44fcd17f0fc56a',
    girx:
      '01144c7d79ae6956bc8edb8e7c787c4521cb086fa64407f97894e5e6b2d79b04d1427e73ca4baa240a34786859810c06b3c715a3a8cc3151f2bee417996d19f3ddea',
  },
];

test('ECP groups 19/20/21 reproduce RFC 5903 §8 (public values without 0x04, secret = x only)', () => {
  for (const v of RFC5903) {
    const ini = createKeyExchangeFromPrivate(v.group, h(v.i));
    const res = createKeyExchangeFromPrivate(v.group, h(v.r));
    assert.deepEqual(ini.publicValue, h(v.gix + v.giy), `group ${v.group} initiator public`);
    assert.deepEqual(res.publicValue, h(v.grx + v.gry), `group ${v.group} responder public`);
    assert.deepEqual(ini.computeSecret(res.publicValue), h(v.girx), `group ${v.group} g^ir at initiator`);
    assert.deepEqual(res.computeSecret(ini.publicValue), h(v.girx), `group ${v.group} g^ir at responder`);
  }
});

// ---------------------------------------------------------------------------------------------
// X25519 / X448

test('X25519 scalar multiplication: RFC 7748 §5.2 vectors and the 1- and 1000-iteration results', () => {
  const vectors = [
    [
      'a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4',
      'e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c',
      'c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552',
    ],
    [
      '4b66e9d4d1b4673c5ad22691957d6af5c11b6421e0ea01d42ca4169e7918ba0d',
      'e5210f12786811d3f4b7959d0538ae2c31dbe7106fc03c3efc4cd549c715a493',
      '95cbde9476e8907d7aade45cb4b873f88b595a68799fa152e6f8f7647aac7957',
    ],
  ];
  for (const [k, u, out] of vectors) {
    assert.deepEqual(createKeyExchangeFromPrivate(KeId.CURVE25519, h(k!)).computeSecret(h(u!)), h(out!));
  }
  // RFC 7748 §5.2 iteration: k = u = 9; k, u = X25519(k, u), k.
  let k: Buffer = Buffer.alloc(32);
  k[0] = 9;
  let u: Buffer = Buffer.from(k);
  for (let i = 1; i <= 1000; i++) {
    const next = createKeyExchangeFromPrivate(KeId.CURVE25519, k).computeSecret(u);
    u = k;
    k = next;
    if (i === 1) assert.deepEqual(k, h('422c8e7a6227d7bca1350b3e2bb7279f7897b87bb6854b783c60e80311ae3079'));
  }
  assert.deepEqual(k, h('684cf59ba83309552800ef566f2f4d3c1c3887c49360e3875f2eb94d99532c51'));
});

test('X25519 Diffie-Hellman: RFC 7748 §6.1 and RFC 8031 Appendix A', () => {
  const vectors = [
    {
      // RFC 7748 §6.1
      a: '77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a',
      aPub: '8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a',
      b: '5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb',
      bPub: 'de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f',
      k: '4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742',
    },
    {
      // RFC 8031 Appendix A (the same bytes are in strongSwan's test_vectors/curve25519.c)
      a: '751fb4308655b476b6789b7325f9ea8cddd16a58533ff6d9e60009464a5f9d94',
      aPub: '48d5ddd4061257ba166fa3f9bbdb74f1a4e81c089384fa77f790709f0dfbc766',
      b: '0a54645253290d60ddadd0e030bacd9e5501efdc220755a1e978f1b839a05688',
      bPub: '0be7c1f5aad87d7e448662673298a443478b859745179eaf564c79c0ef6eee25',
      k: 'c74950607a12327f3204d94b6825bfb068b7f8319a9e3708ed3d43ce8130c950',
    },
  ];
  for (const v of vectors) {
    const alice = createKeyExchangeFromPrivate(KeId.CURVE25519, h(v.a));
    const bob = createKeyExchangeFromPrivate(KeId.CURVE25519, h(v.b));
    assert.deepEqual(alice.publicValue, h(v.aPub));
    assert.deepEqual(bob.publicValue, h(v.bPub));
    assert.deepEqual(alice.computeSecret(bob.publicValue), h(v.k));
    assert.deepEqual(bob.computeSecret(alice.publicValue), h(v.k));
  }
});

test('X448: RFC 7748 §5.2 scalar multiplication and §6.2 Diffie-Hellman', () => {
  const vectors = [
    [
      '3d262fddf9ec8e88495266fea19a34d28882acef045104d0d1aae121700a779c984c24f8cdd78fbff44943eba368f54b29259a4f1c600ad3',
      '06fce640fa3487bfda5f6cf2d5263f8aad88334cbd07437f020f08f9814dc031ddbdc38c19c6da2583fa5429db94ada18aa7a7fb4ef8a086',
      'ce3e4ff95a60dc6697da1db1d85e6afbdf79b50a2412d7546d5f239fe14fbaadeb445fc66a01b0779d98223961111e21766282f73dd96b6f',
    ],
    [
      '203d494428b8399352665ddca42f9de8fef600908e0d461cb021f8c538345dd77c3e4806e25f46d3315c44e0a5b4371282dd2c8d5be3095f',
      '0fbcc2f993cd56d3305b0b7d9e55d4c1a8fb5dbb52f8e9a1e9b6201b165d015894e56c4d3570bee52fe205e28a78b91cdfbde71ce8d157db',
      '884a02576239ff7a2f2f63b2db6a9ff37047ac13568e1e30fe63c4a7ad1b3ee3a5700df34321d62077e63633c575c1c954514e99da7c179d',
    ],
  ];
  for (const [k, u, out] of vectors) {
    assert.deepEqual(createKeyExchangeFromPrivate(KeId.CURVE448, h(k!)).computeSecret(h(u!)), h(out!));
  }
  const alice = createKeyExchangeFromPrivate(
    KeId.CURVE448,
    h('9a8f4925d1519f5775cf46b04b5800d4ee9ee8bae8bc5565d498c28dd9c9baf574a9419744897391006382a6f127ab1d9ac2d8c0a598726b'),
  );
  const bob = createKeyExchangeFromPrivate(
    KeId.CURVE448,
    h('1c306a7ac2a0e2e0990b294470cba339e6453772b075811d8fad0d1d6927c120bb5ee8972b0d3e21374c9c921b09d1b0366f10b65173992d'),
  );
  assert.deepEqual(
    alice.publicValue,
    h('9b08f7cc31b7e3e67d22d5aea121074a273bd2b83de09c63faa73d2c22c5d9bbc836647241d953d40c5b12da88120d53177f80e532c41fa0'),
  );
  assert.deepEqual(
    bob.publicValue,
    h('3eb7a829b0cd20f5bcfc0b599b6feccf6da4627107bdb0d4f345b43027d8b972fc3e34fb4232a13ca706dcb57aec3dae07bdc1c67bf33609'),
  );
  const k = h('07fff4181ac6cc95ec1c16a94a0f74d12da232ce40a77552281d282bb60c0b56fd2464c335543936521c24403085d59a449a5037514a879d');
  assert.deepEqual(alice.computeSecret(bob.publicValue), k);
  assert.deepEqual(bob.computeSecret(alice.publicValue), k);
});

// ---------------------------------------------------------------------------------------------
// AES-GCM: test cases of "The Galois/Counter Mode of Operation (GCM)", McGrew & Viega (revised
// spec), in the RFC 4106/5282 form: the 96-bit IV split into a 4-byte salt (end of the keying
// material) and an 8-byte explicit IV; ciphertext followed by the (truncated) tag. Layout as in
// strongSwan's test_vectors/aes_gcm.c.

const GCM = [
  { tc: 2, bits: 128, icv: 16, key: '00000000000000000000000000000000', salt: '00000000', iv: '0000000000000000', aad: '',
    plain: '00000000000000000000000000000000',
    out: '0388dace60b6a392f328c2b971b2fe78ab6e47d42cec13bdf53a67b21257bddf' },
  { tc: 3, bits: 128, icv: 8, key: 'feffe9928665731c6d6a8f9467308308', salt: 'cafebabe', iv: 'facedbaddecaf888', aad: '',
    plain: 'd9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255',
    out: '42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091473f59854d5c2af327cd64a6' },
  { tc: 3, bits: 128, icv: 12, key: 'feffe9928665731c6d6a8f9467308308', salt: 'cafebabe', iv: 'facedbaddecaf888', aad: '',
    plain: 'd9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255',
    out: '42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091473f59854d5c2af327cd64a62cf35abd' },
  { tc: 3, bits: 128, icv: 16, key: 'feffe9928665731c6d6a8f9467308308', salt: 'cafebabe', iv: 'facedbaddecaf888', aad: '',
    plain: 'd9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255',
    out: '42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091473f59854d5c2af327cd64a62cf35abd2ba6fab4' },
  { tc: 4, bits: 128, icv: 16, key: 'feffe9928665731c6d6a8f9467308308', salt: 'cafebabe', iv: 'facedbaddecaf888', aad: 'feedfacedeadbeeffeedfacedeadbeefabaddad2',
    plain: 'd9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39',
    out: '42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e0915bc94fbc3221a5db94fae95ae7121a47' },
  { tc: 8, bits: 192, icv: 16, key: '000000000000000000000000000000000000000000000000', salt: '00000000', iv: '0000000000000000', aad: '',
    plain: '00000000000000000000000000000000',
    out: '98e7247c07f0fe411c267e4384b0f6002ff58d80033927ab8ef4d4587514f0fb' },
  { tc: 10, bits: 192, icv: 16, key: 'feffe9928665731c6d6a8f9467308308feffe9928665731c', salt: 'cafebabe', iv: 'facedbaddecaf888', aad: 'feedfacedeadbeeffeedfacedeadbeefabaddad2',
    plain: 'd9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39',
    out: '3980ca0b3c00e841eb06fac4872a2757859e1ceaa6efd984628593b40ca1e19c7d773d00c144c525ac619d18c84a3f4718e2448b2fe324d9ccda27102519498e80f1478f37ba55bd6d27618c' },
  { tc: 14, bits: 256, icv: 16, key: '0000000000000000000000000000000000000000000000000000000000000000', salt: '00000000', iv: '0000000000000000', aad: '',
    plain: '00000000000000000000000000000000',
    out: 'cea7403d4d606b6e074ec5d3baf39d18d0d1c8a799996bf0265b98b5d48ab919' },
  { tc: 16, bits: 256, icv: 16, key: 'feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308', salt: 'cafebabe', iv: 'facedbaddecaf888', aad: 'feedfacedeadbeeffeedfacedeadbeefabaddad2',
    plain: 'd9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39',
    out: '522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f66276fc6ece0f4e1768cddf8853bb2d551b' },
] as const;

test('AES-GCM ICV 8/12/16 × 128/192/256 match the GCM spec test cases (salt | IV nonce)', () => {
  for (const v of GCM) {
    const id = v.icv === 8 ? EncrId.AES_GCM_8 : v.icv === 12 ? EncrId.AES_GCM_12 : EncrId.AES_GCM_16;
    const alg = encrAlg(id, v.bits)!;
    assert.equal(alg.icvLen, v.icv);
    assert.equal(alg.keyLen, v.bits / 8);
    const key = createSecretKey(h(v.key));
    const out = aeadEncrypt(alg, key, h(v.salt), h(v.iv), h(v.aad), h(v.plain));
    assert.deepEqual(out, h(v.out), `GCM test case ${v.tc}, ICV ${v.icv}`);
    assert.deepEqual(aeadDecrypt(alg, key, h(v.salt), h(v.iv), h(v.aad), h(v.out)), h(v.plain));
    const bad = h(v.out);
    bad[bad.length - 1]! ^= 1;
    assert.throws(() => aeadDecrypt(alg, key, h(v.salt), h(v.iv), h(v.aad), bad), IntegrityError);
  }
});

// ---------------------------------------------------------------------------------------------
// ChaCha20-Poly1305

const CHACHA = [
  {
    // RFC 8439 §2.8.2: nonce 07000000 4041424344454647 = salt | IV.
    src: 'RFC 8439 §2.8.2',
    key: '808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f',
    salt: '07000000',
    iv: '4041424344454647',
    aad: '50515253c0c1c2c3c4c5c6c7',
    plain: a(
      "Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.",
    ).toString('hex'),
    out:
      'd31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d63dbea45e8ca9671282fafb69da92728b' +
      '1a71de0a9e060b2905d6a5b67ecd3b3692ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc' +
      '3ff4def08e4b7a9de576d26586cec64b6116' +
      '1ae10b594f09e26a7e902ecbd0600691',
  },
  {
    // RFC 7634 Appendix A: ESP example (AAD = SPI | sequence number).
    src: 'RFC 7634 Appendix A',
    key: '808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f',
    salt: 'a0a1a2a3',
    iv: '1011121314151617',
    aad: '0102030400000005',
    plain:
      '45000054a6f200004001e778c6336405c000020508005b7a3a080000553bec100007362708090a0b0c0d0e0f101112131415161718191a1b' +
      '1c1d1e1f202122232425262728292a2b2c2d2e2f303132333435363701020204',
    out:
      '24039428b97f417e3c13753a4f05087b67c352e6a7fab1b982d466ef407ae5c614ee8099d52844eb61aa95dfab4c02f72aa71e7c4c4f64c9' +
      'befe2facc638e8f3cbec163fac469b502773f6fb94e664da9165b82829f641e0' +
      '76aaa8266b7fb0f7b11b369907e1ad43',
  },
];

test('ChaCha20-Poly1305 AEAD matches RFC 8439 §2.8.2 and the RFC 7634 ESP example', () => {
  const alg = encrAlg(EncrId.CHACHA20_POLY1305, 0)!;
  assert.equal(alg, encrAlg(EncrId.CHACHA20_POLY1305, 256));
  for (const v of CHACHA) {
    const key = createSecretKey(h(v.key));
    assert.deepEqual(aeadEncrypt(alg, key, h(v.salt), h(v.iv), h(v.aad), h(v.plain)), h(v.out), v.src);
    assert.deepEqual(aeadDecrypt(alg, key, h(v.salt), h(v.iv), h(v.aad), h(v.out)), h(v.plain), v.src);
    const badAad = h(v.aad);
    badAad[0]! ^= 0x80;
    assert.throws(() => aeadDecrypt(alg, key, h(v.salt), h(v.iv), badAad, h(v.out)), IntegrityError);
  }
});

// RFC 7634 Appendix B: an IKEv2 INFORMATIONAL message protected with ChaCha20-Poly1305.
// IKE header + SK header (the AAD), IV, ciphertext, ICV; the plaintext is a Notify payload
// (SET_WINDOW_SIZE = 10) followed by a zero pad length byte.
const RFC7634_B = {
  skE: '808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f' + 'a0a1a2a3',
  aad: 'c0c1c2c3c4c5c6c7d0d1d2d3d4d5d6d7' + '2e202500000000090000004529000029',
  iv: '1011121314151617',
  ct: '610394701f8d017f7c12924889',
  icv: '6b71bfe25236efd7cdc670669063 15b2',
  inner: '0000000c000040010000000a',
};

function chachaSuite(): IkeSuite {
  return { encr: encrAlg(EncrId.CHACHA20_POLY1305, 0)!, prf: prfAlg(PrfId.HMAC_SHA2_256)!, integ: null, ke: KeId.CURVE25519 };
}

function rfc7634Keys(): IkeKeys {
  // The example's key protects the message; we put it in SK_er (a response-direction key) and
  // a different key in SK_ei so that direction mix-ups fail.
  const e = Buffer.alloc(0);
  return { skD: e, skAi: e, skAr: e, skEi: Buffer.alloc(36, 0x55), skEr: h(RFC7634_B.skE), skPi: e, skPr: e };
}

test('IkeCipher.open decrypts the RFC 7634 Appendix B IKEv2 message', () => {
  const msg = h(RFC7634_B.aad + RFC7634_B.iv + RFC7634_B.ct + RFC7634_B.icv);
  assert.equal(msg.length, 0x45);
  const sk: SkPayload = { type: PayloadType.SK, critical: false, innerType: 0x29, body: msg.subarray(32), offset: 28 };
  const ini = new IkeCipher(chachaSuite(), rfc7634Keys(), true, () => Buffer.alloc(8));
  assert.deepEqual(ini.open(msg, sk), h(RFC7634_B.inner));
  // The same message under the other direction's key fails the tag check.
  const res = new IkeCipher(chachaSuite(), rfc7634Keys(), false, () => Buffer.alloc(8));
  assert.throws(() => res.open(msg, sk), IntegrityError);
});

test('IkeCipher.seal produces the RFC 7634 Appendix B message byte for byte', () => {
  const res = new IkeCipher(chachaSuite(), rfc7634Keys(), false, (n) => h(RFC7634_B.iv).subarray(0, n));
  const header = {
    spiI: h('c0c1c2c3c4c5c6c7'),
    spiR: h('d0d1d2d3d4d5d6d7'),
    nextPayload: 0,
    version: 0x20,
    exchange: 37,
    flags: 0,
    messageId: 9,
    length: 0,
  };
  const out = res.seal(header, PayloadType.NOTIFY, h(RFC7634_B.inner));
  assert.deepEqual(out, h(RFC7634_B.aad + RFC7634_B.iv + RFC7634_B.ct + RFC7634_B.icv));
});
