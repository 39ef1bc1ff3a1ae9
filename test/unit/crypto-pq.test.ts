/**
 * Post-quantum key exchange: ML-KEM-512/768/1024 (FIPS 203 sizes, both roles, malformed values
 * refused), the RFC 9370 key schedule (after IKE_INTERMEDIATE, IKE SA rekey and CHILD SA keys with
 * additional key exchanges) and the RFC 9242 IntAuth chain, each checked against a derivation
 * written here with plain createHmac from fixed inputs.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { createKeyExchange, createKeyExchangeFromPrivate, CryptoError, isSupportedKeGroup, respondKeyExchange } from '../../src/ikev2/crypto/ke.ts';
import { deriveAdditionalIkeKeys, deriveChildKeys, deriveIkeKeys, deriveRekeyedIkeKeys, ikeKeymatLength, Prf, type IkeSuite } from '../../src/ikev2/crypto/prf.ts';
import { intAuthLink, intAuthOctets, intAuthTail, signedOctets } from '../../src/ikev2/crypto/auth.ts';
import { encrAlg, integAlg, keGroup, prfAlg } from '../../src/ikev2/crypto/suites.ts';
import { EncrId, ExchangeType, HeaderFlag, IntegId, KeId, PayloadType, PrfId } from '../../src/ikev2/constants.ts';
import {
  checkIkeResponse,
  formatIkeSuite,
  formatProposal,
  ikeChosenToWire,
  parseProposals,
  ProposalError,
  selectEspProposal,
  selectIkeProposal,
  toWireProposals,
} from '../../src/ikev2/crypto/proposals.ts';
import type { Proposal } from '../../src/ikev2/codec/types.ts';
import { computeInitKeys, decodeJobs, decodeResults, encodeJobs, encodeResults, type InitKeyJob } from '../../src/ikev2/crypto/pool.ts';

const fill = (n: number, b: number): Buffer => Buffer.alloc(n, b);

// ---------------------------------------------------------------------------------------------
// ML-KEM

const SIZES = [
  { id: KeId.ML_KEM_512, name: 'ML_KEM_512', ek: 800, ct: 768 },
  { id: KeId.ML_KEM_768, name: 'ML_KEM_768', ek: 1184, ct: 1088 },
  { id: KeId.ML_KEM_1024, name: 'ML_KEM_1024', ek: 1568, ct: 1568 },
];

test('ML-KEM: IANA ids 35-37, FIPS 203 sizes, both roles agree on a 32-byte secret', () => {
  for (const s of SIZES) {
    assert.ok(isSupportedKeGroup(s.id));
    assert.equal(keGroup(s.id)!.name, s.name);
    const i = createKeyExchange(s.id);
    assert.equal(i.publicValue.length, s.ek, `${s.name} encapsulation key`);
    const r = respondKeyExchange(s.id, i.publicValue);
    assert.ok(r);
    assert.equal(r.publicValue.length, s.ct, `${s.name} ciphertext`);
    assert.equal(r.secret.length, 32);
    assert.deepEqual(i.computeSecret(r.publicValue), r.secret);
    // a second encapsulation to the same key gives another secret
    assert.notDeepEqual(respondKeyExchange(s.id, i.publicValue)!.secret, r.secret);
  }
});

test('ML-KEM: wrong lengths and keys that fail the FIPS 203 check are refused, never thrown past the caller', () => {
  for (const s of SIZES) {
    const i = createKeyExchange(s.id);
    const ek = i.publicValue;
    // responder side: respondKeyExchange answers undefined (the engine sends INVALID_SYNTAX)
    for (const bad of [Buffer.alloc(0), ek.subarray(1), Buffer.concat([ek, Buffer.from([0])]), fill(s.ct, 1)]) {
      if (bad.length === s.ek) continue;
      assert.equal(respondKeyExchange(s.id, bad), undefined, `${s.name} encapsulation key of ${bad.length} bytes`);
    }
    // the modulus check (FIPS 203 §7.2): coefficients >= q in the encoded key
    assert.equal(respondKeyExchange(s.id, fill(s.ek, 0xff)), undefined, `${s.name} key with coefficients out of range`);
    // initiator side: a ciphertext of the wrong length is a CryptoError
    const ct = respondKeyExchange(s.id, ek)!.publicValue;
    for (const bad of [Buffer.alloc(0), ct.subarray(1), Buffer.concat([ct, Buffer.from([0])]), fill(s.ek === s.ct ? 1 : s.ek, 1)]) {
      assert.throws(() => i.computeSecret(bad), CryptoError, `${s.name} ciphertext of ${bad.length} bytes`);
    }
    // a ciphertext of the right length but not ours decapsulates (implicit rejection) to another secret
    const other = i.computeSecret(fill(s.ct, 7));
    assert.equal(other.length, 32);
    assert.notDeepEqual(other, respondKeyExchange(s.id, ek)!.secret);
  }
});

test('ML-KEM: a key pair from a fixed seed is reproducible', () => {
  const a = createKeyExchangeFromPrivate(KeId.ML_KEM_768, fill(64, 3));
  const b = createKeyExchangeFromPrivate(KeId.ML_KEM_768, fill(64, 3));
  const c = createKeyExchangeFromPrivate(KeId.ML_KEM_768, fill(64, 4));
  assert.deepEqual(a.publicValue, b.publicValue);
  assert.notDeepEqual(a.publicValue, c.publicValue);
  const r = respondKeyExchange(KeId.ML_KEM_768, a.publicValue)!;
  assert.deepEqual(b.computeSecret(r.publicValue), r.secret);
  assert.throws(() => createKeyExchangeFromPrivate(KeId.ML_KEM_768, fill(32, 3)), CryptoError);
});

// ---------------------------------------------------------------------------------------------
// key schedule, by hand

const hmac = (hash: string, key: Buffer, ...data: Buffer[]): Buffer => {
  const m = createHmac(hash, key);
  for (const d of data) m.update(d);
  return m.digest();
};

function prfPlus(hash: string, key: Buffer, seed: Buffer, len: number): Buffer {
  let out: Buffer = Buffer.alloc(0);
  let t: Buffer = Buffer.alloc(0);
  for (let n = 1; out.length < len; n++) {
    t = hmac(hash, key, t, seed, Buffer.from([n]));
    out = Buffer.concat([out, t]);
  }
  return out.subarray(0, len);
}

/** aes256gcm16-prfsha256: SK_d 32, no SK_a, SK_e 36 (key + salt), SK_p 32. */
const SUITE: IkeSuite = { encr: encrAlg(EncrId.AES_GCM_16, 256)!, prf: prfAlg(PrfId.HMAC_SHA2_256)!, integ: null, ke: KeId.CURVE25519, addKe: [KeId.ML_KEM_768, 0, 0, 0, 0, 0, 0] };
const SIZES_GCM = [32, 0, 0, 36, 36, 32, 32];

function split(km: Buffer): Buffer[] {
  const out: Buffer[] = [];
  let off = 0;
  for (const n of SIZES_GCM) {
    out.push(km.subarray(off, off + n));
    off += n;
  }
  return out;
}

const Ni = fill(32, 0x11);
const Nr = fill(32, 0x22);
const SPIi = Buffer.from('0102030405060708', 'hex');
const SPIr = Buffer.from('1112131415161718', 'hex');
const G0 = fill(32, 0xa0); // the x25519 secret
const S1 = fill(32, 0xb1); // ML-KEM secrets
const S2 = fill(32, 0xb2);

test('RFC 9370 §2.2.2: keys after each IKE_INTERMEDIATE key exchange (SKEYSEED(n) = prf(SK_d(n-1), SK(n) | Ni | Nr))', () => {
  // IKE_SA_INIT: SKEYSEED = prf(Ni | Nr, g^ir)
  const seed0 = hmac('sha256', Buffer.concat([Ni, Nr]), G0);
  const km0 = split(prfPlus('sha256', seed0, Buffer.concat([Ni, Nr, SPIi, SPIr]), 200));
  const k0 = deriveIkeKeys(SUITE, G0, Ni, Nr, SPIi, SPIr).keys;
  assert.deepEqual(k0.skD, km0[0]);
  // first additional key exchange
  const seed1 = hmac('sha256', km0[0]!, S1, Ni, Nr);
  const km1 = split(prfPlus('sha256', seed1, Buffer.concat([Ni, Nr, SPIi, SPIr]), 200));
  const r1 = deriveAdditionalIkeKeys(SUITE, k0.skD, S1, Ni, Nr, SPIi, SPIr);
  assert.deepEqual(r1.skeyseed, seed1);
  assert.deepEqual([r1.keys.skD, r1.keys.skAi, r1.keys.skAr, r1.keys.skEi, r1.keys.skEr, r1.keys.skPi, r1.keys.skPr], km1);
  // a second one chains on SK_d(1)
  const seed2 = hmac('sha256', km1[0]!, S2, Ni, Nr);
  const km2 = split(prfPlus('sha256', seed2, Buffer.concat([Ni, Nr, SPIi, SPIr]), 200));
  const r2 = deriveAdditionalIkeKeys(SUITE, r1.keys.skD, S2, Ni, Nr, SPIi, SPIr);
  assert.deepEqual([r2.keys.skD, r2.keys.skEi, r2.keys.skPr], [km2[0], km2[3], km2[6]]);
});

test('RFC 9370 §2.2.4: IKE SA rekey and CHILD SA keys with additional key exchanges (SK(0) | Ni | Nr | SK(1) | ... | SK(n))', () => {
  const oldSkD = fill(32, 0x5d);
  const added = Buffer.concat([S1, S2]);
  // IKE SA rekey: SKEYSEED = prf(SK_d(old), SK(0) | Ni | Nr | SK(1) | SK(2)), new SPIs
  const seed = hmac('sha256', oldSkD, G0, Ni, Nr, S1, S2);
  const km = split(prfPlus('sha256', seed, Buffer.concat([Ni, Nr, SPIi, SPIr]), 200));
  const r = deriveRekeyedIkeKeys(SUITE, SUITE.prf, oldSkD, G0, Ni, Nr, SPIi, SPIr, added);
  assert.deepEqual(r.skeyseed, seed);
  assert.deepEqual([r.keys.skD, r.keys.skEi, r.keys.skEr, r.keys.skPi, r.keys.skPr], [km[0], km[3], km[4], km[5], km[6]]);
  // without additional secrets it is RFC 7296's formula still
  assert.deepEqual(deriveRekeyedIkeKeys(SUITE, SUITE.prf, oldSkD, G0, Ni, Nr, SPIi, SPIr).skeyseed, hmac('sha256', oldSkD, G0, Ni, Nr));
  // CHILD SA (aes256gcm16 + none, hmac-sha256 ESP variant too): KEYMAT = prf+(SK_d, SK(0) | Ni | Nr | SK(1) | SK(2))
  const gcm = encrAlg(EncrId.AES_GCM_16, 256)!;
  const kmc = prfPlus('sha256', oldSkD, Buffer.concat([G0, Ni, Nr, S1, S2]), 72);
  const c = deriveChildKeys(SUITE.prf, oldSkD, gcm, null, Ni, Nr, G0, added);
  assert.deepEqual([c.encI, c.encR], [kmc.subarray(0, 36), kmc.subarray(36, 72)]);
  const cbc = encrAlg(EncrId.AES_CBC, 128)!;
  const sha = integAlg(IntegId.HMAC_SHA2_256_128)!;
  const kmd = prfPlus('sha256', oldSkD, Buffer.concat([G0, Ni, Nr, S1]), 2 * (16 + 32));
  const d = deriveChildKeys(SUITE.prf, oldSkD, cbc, sha, Ni, Nr, G0, S1);
  assert.deepEqual([d.encI, d.integI, d.encR, d.integR], [kmd.subarray(0, 16), kmd.subarray(16, 48), kmd.subarray(48, 64), kmd.subarray(64, 96)]);
});

test('RFC 9242 §3.3: IntAuth octets, chain and what the AUTH payload signs', () => {
  const inner = Buffer.from('2200000c00240000deadbeef', 'hex'); // any inner payload bytes
  const hdr = { spiI: SPIi, spiR: SPIr, version: 0x20, exchange: ExchangeType.IKE_INTERMEDIATE, flags: HeaderFlag.INITIATOR, messageId: 1 };
  const octets = intAuthOctets(hdr, PayloadType.KE, inner);
  // IKE header: SPIs, Next Payload = SK (46), version, exchange 43, flags, MID 1, Length = 28 + 4 + inner
  const want = Buffer.concat([
    SPIi,
    SPIr,
    Buffer.from([46, 0x20, 43, 0x08, 0, 0, 0, 1]),
    Buffer.from([0, 0, 0, 28 + 4 + inner.length]),
    // Encrypted payload header: Next Payload = first inner payload (KE, 34), flags 0, Length = 4 + inner
    Buffer.from([34, 0, 0, 4 + inner.length]),
    inner,
  ]);
  assert.deepEqual(octets, want);
  const prf = new Prf(SUITE.prf);
  const skPi = fill(32, 0x71);
  const i1 = intAuthLink(prf, skPi, undefined, octets);
  assert.deepEqual(i1, hmac('sha256', skPi, want));
  const i2 = intAuthLink(prf, skPi, i1, octets);
  assert.deepEqual(i2, hmac('sha256', skPi, i1, want));
  const skPr = fill(32, 0x72);
  const r1 = intAuthLink(prf, skPr, undefined, octets);
  // InitiatorSignedOctets = RealMsg1 | NonceRData | MACedIDForI | IntAuth_iN | IntAuth_rN | IKE_AUTH_MID
  const tail = intAuthTail(i2, r1, 3);
  assert.deepEqual(tail, Buffer.concat([i2, r1, Buffer.from([0, 0, 0, 3])]));
  const msg1 = fill(100, 0x33);
  const idBody = Buffer.from('02000000612e6c6162', 'hex');
  const signed = Buffer.concat([signedOctets(prf, msg1, Nr, skPi, idBody), tail]);
  assert.deepEqual(signed, Buffer.concat([msg1, Nr, hmac('sha256', skPi, idBody), i2, r1, Buffer.from([0, 0, 0, 3])]));
});

// ---------------------------------------------------------------------------------------------
// proposals with additional key exchanges

test('proposal syntax: ke1_..ke7_ keywords, mlkem as the only key exchange, round trip, errors', () => {
  const [p] = parseProposals('aes256gcm16-prfsha256-x25519-ke1_mlkem768-ke1_none-ke3_mlkem1024', 'ike');
  assert.deepEqual(p!.ke, [KeId.CURVE25519]);
  assert.deepEqual(p!.addKe, [[KeId.ML_KEM_768, 0], [], [KeId.ML_KEM_1024], [], [], [], []]);
  assert.equal(formatProposal(p!), 'aes256gcm16-prfsha256-x25519-ke1_mlkem768-ke1_none-ke3_mlkem1024');
  assert.deepEqual(parseProposals(formatProposal(p!), 'ike'), [p]);
  const [only] = parseProposals('aes128gcm16-prfsha384-mlkem512', 'ike');
  assert.deepEqual(only!.ke, [KeId.ML_KEM_512]);
  assert.equal(only!.addKe, undefined);
  // ke<n>_none alone: as if the type were absent
  assert.equal(parseProposals('aes128-sha256-x25519-ke2_none', 'ike')[0]!.addKe, undefined);
  const [esp] = parseProposals('aes256gcm16-x25519-ke1_mlkem768', 'esp');
  assert.deepEqual(esp!.addKe![0], [KeId.ML_KEM_768]);
  for (const bad of ['aes128-sha256-x25519-ke8_mlkem768', 'aes128-sha256-x25519-ke0_mlkem768', 'aes128-sha256-x25519-ke1_mlkem', 'aes128-sha256-x25519-ke1_aes128']) {
    assert.throws(() => parseProposals(bad, 'ike'), ProposalError, bad);
  }
  assert.throws(() => parseProposals('aes256gcm16-ke1_mlkem768', 'esp'), /need a key exchange method/);
  // seven additional key exchanges on the wire: seven transform types 6..12
  const seven = parseProposals(`aes256gcm16-prfsha256-x25519-${[1, 2, 3, 4, 5, 6, 7].map((n) => `ke${n}_mlkem1024`).join('-')}`, 'ike');
  const wire = toWireProposals(seven, Buffer.alloc(0))[0]!;
  assert.deepEqual(wire.transforms.filter((t) => t.type >= 6).map((t) => [t.type, t.id]), [6, 7, 8, 9, 10, 11, 12].map((t) => [t, KeId.ML_KEM_1024]));
});

test('selection: each additional key exchange type negotiated on its own, NONE where both allow it, only when allowed', () => {
  const ours = parseProposals('aes256gcm16-prfsha256-x25519-ke1_mlkem768-ke1_mlkem1024-ke2_mlkem512-ke2_none', 'ike');
  const E = Buffer.alloc(0);
  const offer = (spec: string): Proposal[] => toWireProposals(parseProposals(spec, 'ike'), E);
  // our preference order within a type; type 2 NONE because the peer does not offer it
  let c = selectIkeProposal(ours, offer('aes256gcm16-prfsha256-x25519-ke1_mlkem1024-ke1_mlkem768'), { addKe: true });
  assert.deepEqual(c?.suite.addKe, [KeId.ML_KEM_768, 0, 0, 0, 0, 0, 0]);
  c = selectIkeProposal(ours, offer('aes256gcm16-prfsha256-x25519-ke1_mlkem1024-ke2_mlkem512'), { addKe: true });
  assert.deepEqual(c?.suite.addKe, [KeId.ML_KEM_1024, KeId.ML_KEM_512, 0, 0, 0, 0, 0]);
  assert.equal(formatIkeSuite(c!.suite), 'AES_GCM_16_256/PRF_HMAC_SHA2_256/CURVE_25519/KE1_ML_KEM_1024/KE2_ML_KEM_512');
  // the peer requires ADDKE1, which we do not allow here (no IKE_INTERMEDIATE announced)
  assert.equal(selectIkeProposal(ours, offer('aes256gcm16-prfsha256-x25519-ke1_mlkem768'), { addKe: false }), undefined);
  // nor does a peer without ADDKE1 match us (we require it)
  assert.equal(selectIkeProposal(ours, offer('aes256gcm16-prfsha256-x25519'), { addKe: true }), undefined);
  // a type only the peer offers (ADDKE3) needs NONE among its transforms
  assert.equal(selectIkeProposal(ours, offer('aes256gcm16-prfsha256-x25519-ke1_mlkem768-ke3_mlkem768'), { addKe: true }), undefined);
  assert.deepEqual(selectIkeProposal(ours, offer('aes256gcm16-prfsha256-x25519-ke1_mlkem768-ke3_mlkem768-ke3_none'), { addKe: true })?.suite.addKe, [KeId.ML_KEM_768, 0, 0, 0, 0, 0, 0]);
  // the response: one transform per negotiated type, NONE left out; it checks against our offer
  const resp = ikeChosenToWire(c!);
  assert.deepEqual(resp.transforms.filter((t) => t.type >= 6).map((t) => [t.type, t.id]), [[6, KeId.ML_KEM_1024], [7, KeId.ML_KEM_512]]);
  assert.deepEqual(checkIkeResponse(ours, [resp])?.suite.addKe, c!.suite.addKe);
  // a response that leaves out ADDKE1, which we required, is refused
  assert.equal(checkIkeResponse(ours, [{ ...resp, transforms: resp.transforms.filter((t) => t.type !== 6) }]), undefined);
  // ESP: additional key exchanges only with a main one, and only where allowed (CREATE_CHILD_SA)
  const espOurs = parseProposals('aes256gcm16-x25519-ke1_mlkem768', 'esp');
  const espOffer = toWireProposals(espOurs, Buffer.from([0, 0, 0, 1]));
  assert.deepEqual(selectEspProposal(espOurs, espOffer, undefined, { addKe: true, peerKe: KeId.CURVE25519 })?.addKe, [KeId.ML_KEM_768, 0, 0, 0, 0, 0, 0]);
  assert.equal(selectEspProposal(espOurs, espOffer, undefined, { addKe: false }), undefined);
  // in IKE_AUTH (skipKe) every key exchange transform is ignored
  assert.equal(selectEspProposal(espOurs, espOffer, undefined, { skipKe: true })?.addKe, undefined);
});

test('crypto workers: an IKE_SA_INIT job with ML-KEM-768 (1,184-byte key, 1,088-byte answer) encodes, computes and agrees with the initiator', () => {
  const i = createKeyExchange(KeId.ML_KEM_768);
  const suite: IkeSuite = { encr: encrAlg(EncrId.AES_GCM_16, 256)!, prf: prfAlg(PrfId.HMAC_SHA2_256)!, integ: null, ke: KeId.ML_KEM_768 };
  const job: InitKeyJob = { group: KeId.ML_KEM_768, peerValue: i.publicValue, prfId: PrfId.HMAC_SHA2_256, keymatLen: ikeKeymatLength(suite), ni: Ni, nr: Nr, spiI: SPIi, spiR: SPIr };
  const [back] = decodeJobs(encodeJobs([{ id: 7, job }]));
  assert.deepEqual(back!.job.peerValue, i.publicValue);
  const r = computeInitKeys(back!.job);
  assert.ok(r.ok);
  const [res] = decodeResults(encodeResults([{ id: 7, r }]));
  assert.ok(res!.r.ok);
  assert.equal(res!.r.publicValue.length, 1088);
  const keys = deriveIkeKeys(suite, i.computeSecret(res!.r.publicValue), Ni, Nr, SPIi, SPIr).keys;
  assert.deepEqual(res!.r.keymat.subarray(0, 32), keys.skD);
  // a key of the wrong length: the INVALID_SYNTAX case
  assert.deepEqual(computeInitKeys({ ...job, peerValue: i.publicValue.subarray(1) }), { ok: false, invalid: true });
});
