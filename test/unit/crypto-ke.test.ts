/**
 * Key exchange: every supported group agrees with itself, peer values are validated
 * (RFC 7296 §3.4 / RFC 3526 / RFC 5903 / RFC 8031 rules), unsupported groups are refused.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { getDiffieHellman } from 'node:crypto';
import { createKeyExchange, createKeyExchangeFromPrivate, CryptoError, isSupportedKeGroup } from '../../src/ikev2/crypto/ke.ts';
import { KE_GROUPS, keGroup } from '../../src/ikev2/crypto/suites.ts';
import { KeId } from '../../src/ikev2/constants.ts';

const h = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');

function secretLen(group: number): number {
  const g = keGroup(group)!;
  return g.kind === 'ecp' ? g.publicLen / 2 : g.publicLen;
}

test('every supported group: two fresh key pairs derive the same secret of the expected size', () => {
  assert.deepEqual(
    KE_GROUPS.map((g) => g.id),
    [14, 15, 16, 17, 18, 19, 20, 21, 31, 32, 35, 36, 37],
  );
  // Diffie-Hellman groups; the KEMs (ML-KEM) are tested in crypto-pq.test.ts.
  for (const g of KE_GROUPS.filter((x) => x.kind !== 'mlkem')) {
    const a = createKeyExchange(g.id);
    const b = createKeyExchange(g.id);
    assert.equal(a.group, g.id);
    assert.equal(a.publicValue.length, g.publicLen, `${g.name} public length`);
    assert.notDeepEqual(a.publicValue, b.publicValue);
    const s1 = a.computeSecret(b.publicValue);
    const s2 = b.computeSecret(a.publicValue);
    assert.equal(s1.length, secretLen(g.id), `${g.name} secret length`);
    assert.deepEqual(s1, s2, `${g.name} agreement`);
  }
});

test('unsupported key exchange methods are refused with CryptoError', () => {
  for (const id of [0, 1, 2, 5, 22, 24, 28, 38, 99, 65535]) {
    assert.equal(isSupportedKeGroup(id), false);
    assert.throws(() => createKeyExchange(id), CryptoError, `group ${id}`);
    assert.throws(() => createKeyExchangeFromPrivate(id, Buffer.alloc(32, 1)), CryptoError);
  }
});

test('a peer value of the wrong length is refused for every group', () => {
  for (const g of KE_GROUPS.filter((x) => x.kind !== 'mlkem')) {
    const ke = createKeyExchange(g.id);
    const peer = createKeyExchange(g.id).publicValue;
    for (const bad of [Buffer.alloc(0), peer.subarray(1), Buffer.concat([peer, Buffer.from([0])]), Buffer.concat([Buffer.from([4]), peer])]) {
      assert.throws(() => ke.computeSecret(bad), CryptoError, `${g.name} length ${bad.length}`);
    }
  }
});

test('MODP groups use the RFC 3526 primes (length, leading pi digits, trailing ones)', () => {
  for (const g of KE_GROUPS.filter((x) => x.kind === 'modp')) {
    const p = getDiffieHellman(`modp${g.id}`).getPrime();
    assert.equal(p.length, g.publicLen);
    // RFC 3526: p = 2^n - 2^(n-64) - 1 + 2^64 * ([2^(n-130) pi] + k): FFFFFFFF FFFFFFFF C90FDAA2 2168C234 ... FFFFFFFF FFFFFFFF
    assert.deepEqual(p.subarray(0, 16), h('FFFFFFFFFFFFFFFFC90FDAA22168C234'));
    assert.deepEqual(p.subarray(-8), h('FFFFFFFFFFFFFFFF'));
  }
});

test('MODP: y must satisfy 1 < y < p-1 (y = 0, 1, p-1, p, 2^n-1 refused; 2 and p-2 accepted)', () => {
  for (const group of [KeId.MODP_2048, KeId.MODP_3072]) {
    const ke = createKeyExchange(group);
    const p = getDiffieHellman(`modp${group}`).getPrime();
    const len = p.length;
    const int = (v: bigint): Buffer => Buffer.from(v.toString(16).padStart(len * 2, '0'), 'hex');
    const P = BigInt('0x' + p.toString('hex'));
    for (const bad of [0n, 1n, P - 1n, P, (1n << BigInt(len * 8)) - 1n]) {
      assert.throws(() => ke.computeSecret(int(bad)), CryptoError, `y = ${bad === P ? 'p' : bad.toString(16).slice(0, 8)}`);
    }
    for (const ok of [2n, P - 2n]) assert.equal(ke.computeSecret(int(ok)).length, len);
  }
});

test('MODP with a fixed exponent matches an independent modular exponentiation', () => {
  const group = KeId.MODP_2048;
  const p = getDiffieHellman('modp14').getPrime();
  const P = BigInt('0x' + p.toString('hex'));
  const modpow = (b: bigint, e: bigint): bigint => {
    let r = 1n;
    b %= P;
    while (e > 0n) {
      if (e & 1n) r = (r * b) % P;
      b = (b * b) % P;
      e >>= 1n;
    }
    return r;
  };
  const toBuf = (v: bigint): Buffer => Buffer.from(v.toString(16).padStart(512, '0'), 'hex');
  const x = h('0f1e2d3c4b5a69788796a5b4c3d2e1f00112233445566778899aabbccddeeff0');
  const y = h('7a6b5c4d3e2f1001f2e3d4c5b6a79889fedcba98765432100123456789abcdef');
  const a = createKeyExchangeFromPrivate(group, x);
  const b = createKeyExchangeFromPrivate(group, y);
  const X = BigInt('0x' + x.toString('hex'));
  const Y = BigInt('0x' + y.toString('hex'));
  assert.deepEqual(a.publicValue, toBuf(modpow(2n, X)));
  assert.deepEqual(b.publicValue, toBuf(modpow(2n, Y)));
  const gxy = toBuf(modpow(modpow(2n, X), Y));
  assert.deepEqual(a.computeSecret(b.publicValue), gxy);
  assert.deepEqual(b.computeSecret(a.publicValue), gxy);
});

test('ECP: points not on the curve and the all-zero "point" are refused', () => {
  for (const g of KE_GROUPS.filter((x) => x.kind === 'ecp')) {
    const ke = createKeyExchange(g.id);
    const good = createKeyExchange(g.id).publicValue;
    const offCurve = Buffer.from(good);
    offCurve[offCurve.length - 1]! ^= 0x01; // y changed: (x, y') is not on the curve
    assert.throws(() => ke.computeSecret(offCurve), CryptoError, `${g.name} off-curve`);
    assert.throws(() => ke.computeSecret(Buffer.alloc(g.publicLen)), CryptoError, `${g.name} zero`);
    assert.throws(() => ke.computeSecret(Buffer.alloc(g.publicLen, 0xff)), CryptoError, `${g.name} coordinates >= p`);
  }
});

test('X25519/X448: small-order peer values giving an all-zero secret are refused (RFC 8031 §2.3)', () => {
  // u = 0 and u = 1 are points of small order: the X25519/X448 output is all zeros (RFC 7748 §6).
  for (const group of [KeId.CURVE25519, KeId.CURVE448]) {
    const len = keGroup(group)!.publicLen;
    const ke = createKeyExchange(group);
    const one = Buffer.alloc(len);
    one[0] = 1;
    assert.throws(() => ke.computeSecret(Buffer.alloc(len)), CryptoError);
    assert.throws(() => ke.computeSecret(one), CryptoError);
  }
});

test('createKeyExchangeFromPrivate checks the private key size for X25519/X448', () => {
  assert.throws(() => createKeyExchangeFromPrivate(KeId.CURVE25519, Buffer.alloc(31, 1)), CryptoError);
  assert.throws(() => createKeyExchangeFromPrivate(KeId.CURVE448, Buffer.alloc(32, 1)), CryptoError);
  assert.throws(() => createKeyExchangeFromPrivate(KeId.ECP_256, Buffer.alloc(32, 0)), CryptoError);
});
