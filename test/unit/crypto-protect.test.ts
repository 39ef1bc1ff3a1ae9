/**
 * SK / SKF payload protection (RFC 7296 §3.14, RFC 5282, RFC 7634, RFC 7383): round trips for
 * every ENCR (and every INTEG with CBC), tamper detection over the whole message, padding and
 * length checks, and fragmentation.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createCipheriv, createHmac, createSecretKey, randomBytes } from 'node:crypto';
import { aeadEncrypt, IkeCipher, IntegrityError } from '../../src/ikev2/crypto/protect.ts';
import { CryptoError } from '../../src/ikev2/crypto/errors.ts';
import { ENCR_ALGS, INTEG_ALGS, encrAlg, integAlg, prfAlg } from '../../src/ikev2/crypto/suites.ts';
import type { IkeKeys, IkeSuite } from '../../src/ikev2/crypto/prf.ts';
import { ParseError } from '../../src/common/bytes.ts';
import { decodeMessage } from '../../src/ikev2/codec/message.ts';
import type { IkeHeader, SkfPayload, SkPayload } from '../../src/ikev2/codec/types.ts';
import { EncrId, ExchangeType, HeaderFlag, IntegId, KeId, Limits, PayloadType, PrfId } from '../../src/ikev2/constants.ts';

function suites(): IkeSuite[] {
  const prf = prfAlg(PrfId.HMAC_SHA2_256)!;
  const out: IkeSuite[] = [];
  for (const encr of ENCR_ALGS) {
    if (encr.aead) out.push({ encr, prf, integ: null, ke: KeId.CURVE25519 });
    else for (const integ of INTEG_ALGS) out.push({ encr, prf, integ, ke: KeId.CURVE25519 });
  }
  return out;
}

function keysFor(s: IkeSuite): IkeKeys {
  const a = s.integ?.keyLen ?? 0;
  const e = s.encr.keymatLen;
  return {
    skD: randomBytes(32),
    skAi: randomBytes(a),
    skAr: randomBytes(a),
    skEi: randomBytes(e),
    skEr: randomBytes(e),
    skPi: randomBytes(32),
    skPr: randomBytes(32),
  };
}

function pair(s: IkeSuite): { ini: IkeCipher; res: IkeCipher; keys: IkeKeys } {
  const keys = keysFor(s);
  return { ini: new IkeCipher(s, keys, true, randomBytes), res: new IkeCipher(s, keys, false, randomBytes), keys };
}

const header = (flags: number = HeaderFlag.INITIATOR, messageId = 1): IkeHeader => ({
  spiI: Buffer.from('0102030405060708', 'hex'),
  spiR: Buffer.from('1112131415161718', 'hex'),
  nextPayload: 0,
  version: 0x20,
  exchange: ExchangeType.IKE_AUTH,
  flags,
  messageId,
  length: 0,
});

/** The SK payload as the codec reports it: first (and last) payload after the header. */
function skOf(msg: Buffer): SkPayload {
  return { type: PayloadType.SK, critical: false, innerType: msg[28]!, body: msg.subarray(32), offset: 28 };
}

const name = (s: IkeSuite): string => `${s.encr.name}${s.integ ? '/' + s.integ.name : ''}`;

test('seal → open round trips for every ENCR (and every INTEG with AES-CBC), both directions', () => {
  for (const s of suites()) {
    const { ini, res } = pair(s);
    for (const len of [0, 1, 15, 16, 17, 31, 100, 1000]) {
      const pt = randomBytes(len);
      const msg = ini.seal(header(), PayloadType.IDi, pt);
      assert.equal(msg.length, ini.sealedLength(len), `${name(s)} length`);
      assert.equal(msg.readUInt32BE(24), msg.length, 'header length');
      assert.equal(msg[16], PayloadType.SK, 'header next payload');
      assert.equal(msg[28], PayloadType.IDi, 'SK next payload = first inner payload');
      assert.equal(msg.readUInt16BE(30), msg.length - 28, 'SK payload length');
      const encLen = msg.length - 32 - s.encr.ivLen - (s.encr.aead ? s.encr.icvLen : s.integ!.icvLen);
      assert.equal(encLen % s.encr.blockSize, 0, 'encrypted part is whole blocks');
      assert.deepEqual(res.open(msg, skOf(msg)), pt, `${name(s)} I->R ${len}`);
      const back = res.seal(header(HeaderFlag.RESPONSE), PayloadType.AUTH, pt);
      assert.deepEqual(ini.open(back, skOf(back)), pt, `${name(s)} R->I ${len}`);
      // A party cannot open its own messages: the directions use different keys.
      assert.throws(() => ini.open(msg, skOf(msg)), IntegrityError);
    }
  }
});

test('messages sealed here decode with the message codec, and open() takes its SkPayload', () => {
  const s = suites().find((x) => x.encr.id === EncrId.AES_GCM_16 && x.encr.keyBits === 256)!;
  const { ini, res } = pair(s);
  const pt = randomBytes(77);
  const msg = ini.seal(header(), PayloadType.IDi, pt);
  const dec = decodeMessage(msg);
  assert.equal(dec.header.length, msg.length);
  const sk = dec.payloads[0];
  assert.ok(sk && sk.type === PayloadType.SK);
  assert.equal(sk.innerType, PayloadType.IDi);
  assert.deepEqual(res.open(msg, sk), pt);
});

test('a flipped bit anywhere in the message (header, SK header, IV, data, ICV) fails with IntegrityError', () => {
  for (const s of suites()) {
    const { ini, res } = pair(s);
    const msg = ini.seal(header(), PayloadType.IDi, randomBytes(40));
    const sk = skOf(msg);
    for (let i = 0; i < msg.length; i++) {
      const bad = Buffer.from(msg);
      bad[i]! ^= 1 << (i % 8);
      assert.throws(() => res.open(bad, sk), IntegrityError, `${name(s)} byte ${i}`);
    }
  }
});

test('AEAD IVs are unique per message: a counter from a random start', () => {
  const s = suites().find((x) => x.encr.id === EncrId.CHACHA20_POLY1305)!;
  const keys = keysFor(s);
  const c = new IkeCipher(s, keys, true, () => Buffer.from('00000000ffffffff', 'hex'));
  const ivs = [0, 1, 2].map(() => c.seal(header(), PayloadType.IDi, Buffer.alloc(4)).subarray(32, 40).toString('hex'));
  assert.deepEqual(ivs, ['00000000ffffffff', '0000000100000000', '0000000100000001']);
});

/** A message with chosen inner bytes (including the pad length byte), validly protected. */
function craft(s: IkeSuite, keys: IkeKeys, inner: Buffer): Buffer {
  const icvLen = s.encr.aead ? s.encr.icvLen : s.integ!.icvLen;
  const total = 32 + s.encr.ivLen + inner.length + icvLen;
  const msg = Buffer.alloc(total);
  Buffer.from('0102030405060708111213141516171800', 'hex').copy(msg, 0);
  msg[16] = PayloadType.SK;
  msg[17] = 0x20;
  msg[18] = ExchangeType.IKE_AUTH;
  msg[19] = HeaderFlag.INITIATOR;
  msg.writeUInt32BE(1, 20);
  msg.writeUInt32BE(total, 24);
  msg[28] = PayloadType.IDi;
  msg.writeUInt16BE(total - 28, 30);
  const iv = randomBytes(s.encr.ivLen);
  iv.copy(msg, 32);
  const encStart = 32 + s.encr.ivLen;
  if (s.encr.aead) {
    const key = createSecretKey(keys.skEi.subarray(0, s.encr.keyLen));
    aeadEncrypt(s.encr, key, keys.skEi.subarray(s.encr.keyLen), iv, msg.subarray(0, 32), inner).copy(msg, encStart);
  } else {
    const c = createCipheriv(s.encr.cipher, keys.skEi, iv);
    c.setAutoPadding(false);
    Buffer.concat([c.update(inner), c.final()]).copy(msg, encStart);
    const mac = createHmac(s.integ!.hash, keys.skAi).update(msg.subarray(0, total - icvLen)).digest();
    mac.copy(msg, total - icvLen, 0, icvLen);
  }
  return msg;
}

test('pad length larger than the decrypted data is a ParseError; the largest valid one yields an empty chain', () => {
  const picks = [
    suites().find((x) => x.encr.id === EncrId.AES_CBC && x.encr.keyBits === 128 && x.integ!.id === IntegId.HMAC_SHA2_256_128)!,
    suites().find((x) => x.encr.id === EncrId.AES_GCM_16 && x.encr.keyBits === 128)!,
    suites().find((x) => x.encr.id === EncrId.CHACHA20_POLY1305)!,
  ];
  for (const s of picks) {
    const keys = keysFor(s);
    const res = new IkeCipher(s, keys, false, randomBytes);
    const n = 32; // two AES blocks
    for (const padLen of [n, n + 1, 255]) {
      const inner = randomBytes(n);
      inner[n - 1] = padLen;
      const msg = craft(s, keys, inner);
      assert.throws(() => res.open(msg, skOf(msg)), ParseError, `${s.encr.name} pad ${padLen}`);
    }
    const inner = randomBytes(n);
    inner[n - 1] = n - 1;
    const msg = craft(s, keys, inner);
    assert.deepEqual(res.open(msg, skOf(msg)), Buffer.alloc(0));
    inner[n - 1] = 5;
    const msg2 = craft(s, keys, inner);
    assert.deepEqual(res.open(msg2, skOf(msg2)), inner.subarray(0, n - 6));
  }
});

test('encrypted payloads of impossible length are ParseErrors, not crashes', () => {
  for (const s of suites().filter((x) => x.integ === null || x.integ.id === IntegId.HMAC_SHA1_96)) {
    const { ini, res } = pair(s);
    const msg = ini.seal(header(), PayloadType.IDi, randomBytes(20));
    const icvLen = s.encr.aead ? s.encr.icvLen : s.integ!.icvLen;
    // Body holding no more than IV + ICV.
    const short = msg.subarray(0, 32 + s.encr.ivLen + icvLen);
    assert.throws(() => res.open(short, skOf(short)), ParseError, name(s));
    // Body that claims to extend past the message.
    const sk = skOf(msg);
    assert.throws(() => res.open(msg.subarray(0, msg.length - 1), sk), ParseError);
    assert.throws(() => res.open(msg, { ...sk, offset: 10 }), ParseError);
    if (!s.encr.aead) {
      // CBC data that is not a whole number of blocks.
      const odd = Buffer.concat([msg.subarray(0, 32 + 16 + 17), msg.subarray(msg.length - icvLen)]);
      assert.throws(() => res.open(odd, skOf(odd)), ParseError);
    }
  }
});

test('the constructor refuses keys of the wrong size and CBC without integrity', () => {
  const gcm: IkeSuite = { encr: encrAlg(EncrId.AES_GCM_16, 128)!, prf: prfAlg(PrfId.HMAC_SHA2_256)!, integ: null, ke: 19 };
  const k = keysFor(gcm);
  assert.throws(() => new IkeCipher(gcm, { ...k, skEi: k.skEi.subarray(0, 16) }, true, randomBytes), CryptoError);
  const cbc: IkeSuite = { ...gcm, encr: encrAlg(EncrId.AES_CBC, 256)!, integ: integAlg(IntegId.HMAC_SHA2_256_128)! };
  const kc = keysFor(cbc);
  assert.throws(() => new IkeCipher(cbc, { ...kc, skAr: kc.skAr.subarray(1) }, true, randomBytes), CryptoError);
  assert.throws(() => new IkeCipher({ ...cbc, integ: null }, kc, true, randomBytes), CryptoError);
});

function skfOf(msg: Buffer): SkfPayload {
  return {
    type: PayloadType.SKF,
    critical: false,
    innerType: msg[28]!,
    fragmentNumber: msg.readUInt16BE(32),
    totalFragments: msg.readUInt16BE(34),
    body: msg.subarray(36),
    offset: 28,
  };
}

test('sealFragments → openFragment round trips; every datagram fits; numbering and Next Payload per RFC 7383', () => {
  for (const s of suites().filter((x) => x.integ === null || x.integ.id === IntegId.HMAC_SHA2_512_256)) {
    const { ini, res } = pair(s);
    for (const [len, max] of [
      [0, 576],
      [1, 576],
      [1200, 576],
      [3000, 1280],
      [5000, 200],
    ] as const) {
      const pt = randomBytes(len);
      const frags = ini.sealFragments(header(), PayloadType.IDi, pt, max);
      const chunk = ini.maxFragmentPlaintext(max);
      assert.equal(frags.length, Math.max(1, Math.ceil(len / chunk)));
      const parts: Buffer[] = [];
      frags.forEach((f, idx) => {
        assert.ok(f.length <= max, `${name(s)}: fragment of ${f.length} > ${max}`);
        const dec = decodeMessage(f);
        assert.equal(dec.header.nextPayload, PayloadType.SKF);
        assert.equal(dec.header.messageId, 1);
        const skf = dec.payloads[0];
        assert.ok(skf && skf.type === PayloadType.SKF);
        assert.equal(skf.fragmentNumber, idx + 1);
        assert.equal(skf.totalFragments, frags.length);
        assert.equal(skf.innerType, idx === 0 ? PayloadType.IDi : PayloadType.NONE);
        parts.push(res.openFragment(f, skf));
      });
      assert.deepEqual(Buffer.concat(parts), pt, `${name(s)} ${len}/${max}`);
    }
  }
});

test('a fragment with any bit flipped (fragment number and total included) fails with IntegrityError', () => {
  for (const s of suites().filter((x) => x.integ === null || x.integ.id === IntegId.HMAC_SHA1_96)) {
    const { ini, res } = pair(s);
    const frags = ini.sealFragments(header(), PayloadType.IDi, randomBytes(400), 200);
    assert.ok(frags.length > 2);
    const f = frags[1]!;
    const skf = skfOf(f);
    for (let i = 0; i < f.length; i++) {
      const bad = Buffer.from(f);
      bad[i]! ^= 0x80 >> (i % 8);
      assert.throws(() => res.openFragment(bad, skf), IntegrityError, `${name(s)} byte ${i}`);
    }
  }
});

test('fragmentation limits: too small a datagram, too many fragments, bad fragment numbers', () => {
  const s = suites().find((x) => x.encr.id === EncrId.AES_GCM_16 && x.encr.keyBits === 128)!;
  const { ini, res } = pair(s);
  // 28 header + 8 SKF header + 8 IV + 16 ICV + 1 pad length byte = 61: nothing fits in 61.
  assert.throws(() => ini.sealFragments(header(), PayloadType.IDi, Buffer.alloc(10), 61), CryptoError);
  assert.equal(ini.sealFragments(header(), PayloadType.IDi, Buffer.alloc(10), 62).length, 10);
  assert.throws(
    () => ini.sealFragments(header(), PayloadType.IDi, Buffer.alloc(Limits.MAX_FRAGMENTS + 1), 62),
    CryptoError,
  );
  const f = ini.sealFragments(header(), PayloadType.IDi, Buffer.alloc(30), 100)[0]!;
  const skf = skfOf(f);
  assert.throws(() => res.openFragment(f, { ...skf, fragmentNumber: 0 }), ParseError);
  assert.throws(() => res.openFragment(f, { ...skf, fragmentNumber: skf.totalFragments + 1 }), ParseError);
});

test('seal refuses a message larger than the 65535-byte limit', () => {
  const s = suites().find((x) => x.encr.id === EncrId.AES_GCM_16 && x.encr.keyBits === 256)!;
  const { ini } = pair(s);
  assert.throws(() => ini.seal(header(), PayloadType.IDi, Buffer.alloc(Limits.MAX_MESSAGE)), CryptoError);
});
