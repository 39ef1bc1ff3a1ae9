/**
 * Proposals: strongSwan syntax parse/print, wire offers, responder selection preferences and
 * response checks.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  checkEspResponse,
  checkIkeResponse,
  chosenToWire,
  DEFAULT_ESP_PROPOSALS,
  DEFAULT_IKE_PROPOSALS,
  espChosenToWire,
  formatEspProposal,
  formatIkeSuite,
  formatProposal,
  formatProposals,
  ikeChosenToWire,
  parseProposals,
  ProposalError,
  selectEspProposal,
  selectIkeProposal,
  toWireProposals,
} from '../../src/ikev2/crypto/proposals.ts';
import type { Proposal, Transform } from '../../src/ikev2/codec/types.ts';
import { EncrId, IntegId, KeId, PrfId, ProtocolId, TransformAttr, TransformType } from '../../src/ikev2/constants.ts';

const E = Buffer.alloc(0);
const SPI4 = Buffer.from('c0ffee01', 'hex');

test('parses IKE proposals with the strongSwan keywords', () => {
  const specs = parseProposals('aes256gcm16-prfsha256-x25519, aes128-sha256-modp3072', 'ike');
  assert.deepEqual(specs, [
    { protocol: 'ike', encr: [{ id: EncrId.AES_GCM_16, keyBits: 256 }], prf: [PrfId.HMAC_SHA2_256], integ: [], ke: [KeId.CURVE25519], esn: [] },
    {
      protocol: 'ike',
      encr: [{ id: EncrId.AES_CBC, keyBits: 128 }],
      prf: [PrfId.HMAC_SHA2_256], // implied by sha256
      integ: [IntegId.HMAC_SHA2_256_128],
      ke: [KeId.MODP_3072],
      esn: [],
    },
  ]);
  const [multi] = parseProposals('aes128-aes256-sha1-sha512-ecp256-ecp521-modp2048', 'ike');
  assert.deepEqual(multi!.prf, [PrfId.HMAC_SHA1, PrfId.HMAC_SHA2_512]);
  assert.deepEqual(multi!.ke, [KeId.ECP_256, KeId.ECP_521, KeId.MODP_2048]);
  const [chacha] = parseProposals('chacha20poly1305-prfsha512-x448', 'ike');
  assert.deepEqual(chacha!.encr, [{ id: EncrId.CHACHA20_POLY1305, keyBits: 0 }]);
});

test('keyword aliases and case map to the same transforms', () => {
  const canon = parseProposals('aes128gcm16-aes192gcm12-aes256gcm8-prfsha384-x25519-x448', 'ike');
  for (const alias of [
    'aes128gcm128-aes192gcm96-aes256gcm64-prfsha384-curve25519-curve448',
    'aes128gcm-aes192gcm12-aes256gcm8-prfsha384-x25519-x448',
    'AES128GCM16-Aes192Gcm12-aes256gcm8-PRFSHA384-X25519-x448',
  ]) {
    assert.deepEqual(parseProposals(alias, 'ike'), canon, alias);
  }
  assert.deepEqual(parseProposals('aes-sha-modp2048', 'ike'), parseProposals('aes128-sha1-modp2048', 'ike'));
  assert.deepEqual(parseProposals('aes256-sha2_256-ecp256', 'ike'), parseProposals('aes256-sha256-ecp256', 'ike'));
});

test('an unknown keyword is named in the error', () => {
  assert.throws(() => parseProposals('aes999-sha256', 'ike'), {
    name: 'ProposalError',
    message: "unknown algorithm 'aes999' in proposal 'aes999-sha256'",
  });
  assert.throws(() => parseProposals('aes128-sha256-modp2048, aes128-md5-modp2048', 'ike'), /unknown algorithm 'md5' in proposal 'aes128-md5-modp2048'/);
  assert.throws(() => parseProposals('3des-sha1-modp1024', 'esp'), /unknown algorithm '3des'/);
});

test('proposal rules: PRF, KE and integrity requirements, no AEAD/classic mix, ESN only for ESP', () => {
  const bad: [string, 'ike' | 'esp', RegExp][] = [
    ['aes256gcm16-x25519', 'ike', /needs a PRF/],
    ['aes128-sha256', 'ike', /key exchange method is mandatory/],
    ['aes128-sha256-modpnone', 'ike', /key exchange method is mandatory/],
    ['aes128-prfsha256-modp2048', 'ike', /integrity algorithm is mandatory/],
    ['aes128', 'esp', /integrity algorithm is mandatory/],
    ['aes128gcm16-aes128-sha256-prfsha256-x25519', 'ike', /cannot be mixed/],
    ['sha256-prfsha256-x25519', 'ike', /encryption algorithm is mandatory/],
    ['aes128-sha256-x25519-esn', 'ike', /not allowed in IKE/],
    ['aes128-sha256-x25519,,aes256-sha256-x25519', 'ike', /empty proposal/],
    ['', 'esp', /empty proposal/],
  ];
  for (const [text, proto, re] of bad) assert.throws(() => parseProposals(text, proto), (e: Error) => e instanceof ProposalError && re.test(e.message), text);
});

test('ESP proposals: no PFS by default, ESN default off, PRF dropped, integrity dropped for AEAD', () => {
  assert.deepEqual(parseProposals('aes128gcm16', 'esp'), [
    { protocol: 'esp', encr: [{ id: EncrId.AES_GCM_16, keyBits: 128 }], prf: [], integ: [], ke: [], esn: [0] },
  ]);
  const [pfs] = parseProposals('aes256-sha256-modp2048-esn-noesn', 'esp');
  assert.deepEqual(pfs!.ke, [KeId.MODP_2048]);
  assert.deepEqual(pfs!.esn, [1, 0]);
  assert.deepEqual(parseProposals('aes128-sha256-prfsha256', 'esp')[0]!.prf, []);
  assert.deepEqual(parseProposals('aes128gcm16-sha256', 'esp')[0]!.integ, []);
  assert.deepEqual(parseProposals('aes128gcm16-modpnone', 'esp')[0]!.ke, []);
  assert.deepEqual(parseProposals('aes128gcm16-ecp256-modpnone', 'esp')[0]!.ke, [KeId.ECP_256, 0]);
});

test("'default' expands to the documented lists", () => {
  assert.deepEqual(parseProposals('default', 'ike'), parseProposals(DEFAULT_IKE_PROPOSALS, 'ike'));
  assert.deepEqual(parseProposals('default', 'esp'), parseProposals(DEFAULT_ESP_PROPOSALS, 'esp'));
  const ike = parseProposals('default', 'ike');
  assert.equal(ike.length, 2);
  assert.equal(ike[0]!.encr[0]!.id, EncrId.AES_GCM_16);
  assert.equal(ike[0]!.ke[0], KeId.CURVE25519);
  const esp = parseProposals('aes256gcm16-ecp256, default', 'esp');
  assert.equal(esp.length, 3);
  assert.deepEqual(esp[1]!.ke, []);
});

test('formatProposal round trips with parseProposals', () => {
  const texts: [string, 'ike' | 'esp'][] = [
    ['aes256gcm16-prfsha256-x25519', 'ike'],
    ['aes128-sha256-modp3072', 'ike'],
    ['aes128-aes192-aes256-sha1-sha256-sha384-sha512-prfsha512-ecp256-ecp384-ecp521-modp2048-modp8192', 'ike'],
    ['chacha20poly1305-prfsha1-prfsha384-x448-x25519', 'ike'],
    ['aes128gcm8-aes192gcm12-aes256gcm16-prfsha256-modp4096-modp6144', 'ike'],
    ['aes128gcm16-chacha20poly1305', 'esp'],
    ['aes256-sha512-modp2048-modpnone-esn', 'esp'],
    ['aes128-sha1-esn-noesn', 'esp'],
    ['default', 'ike'],
    ['default', 'esp'],
  ];
  for (const [text, proto] of texts) {
    const specs = parseProposals(text, proto);
    const printed = formatProposals(specs);
    assert.deepEqual(parseProposals(printed, proto), specs, `${text} -> ${printed}`);
    if (text !== 'default') assert.equal(printed, text, 'canonical text prints as itself');
  }
  // Aliases print canonically; an implied PRF is left implicit, an explicit different one is kept.
  assert.equal(formatProposal(parseProposals('aes-sha-curve25519', 'ike')[0]!), 'aes128-sha1-x25519');
  assert.equal(formatProposal(parseProposals('aes128-sha256-prfsha384-x25519', 'ike')[0]!), 'aes128-sha256-prfsha384-x25519');
});

test('toWireProposals: numbered from 1, KEY_LENGTH for AES only, ESN for ESP, KE only with PFS', () => {
  const ike = toWireProposals(parseProposals('aes256gcm16-chacha20poly1305-prfsha256-x25519, aes128-sha256-modp2048', 'ike'), E);
  assert.equal(ike.length, 2);
  assert.deepEqual(
    ike.map((p) => [p.num, p.protocol, p.spi.length]),
    [
      [1, ProtocolId.IKE, 0],
      [2, ProtocolId.IKE, 0],
    ],
  );
  assert.deepEqual(ike[0]!.transforms, [
    { type: TransformType.ENCR, id: EncrId.AES_GCM_16, attributes: [{ type: TransformAttr.KEY_LENGTH, value: 256 }] },
    { type: TransformType.ENCR, id: EncrId.CHACHA20_POLY1305, attributes: [] },
    { type: TransformType.PRF, id: PrfId.HMAC_SHA2_256, attributes: [] },
    { type: TransformType.KE, id: KeId.CURVE25519, attributes: [] },
  ]);
  assert.deepEqual(
    ike[1]!.transforms.map((t) => [t.type, t.id]),
    [
      [TransformType.ENCR, EncrId.AES_CBC],
      [TransformType.PRF, PrfId.HMAC_SHA2_256],
      [TransformType.INTEG, IntegId.HMAC_SHA2_256_128],
      [TransformType.KE, KeId.MODP_2048],
    ],
  );
  const esp = toWireProposals(parseProposals('aes128gcm16, aes256-sha384-ecp384-esn', 'esp'), SPI4);
  assert.equal(esp[0]!.protocol, ProtocolId.ESP);
  assert.deepEqual(esp[0]!.spi, SPI4);
  assert.notEqual(esp[0]!.spi, SPI4, 'SPI is copied');
  assert.deepEqual(
    esp[0]!.transforms.map((t) => [t.type, t.id]),
    [
      [TransformType.ENCR, EncrId.AES_GCM_16],
      [TransformType.ESN, 0],
    ],
  );
  assert.deepEqual(
    esp[1]!.transforms.map((t) => [t.type, t.id]),
    [
      [TransformType.ENCR, EncrId.AES_CBC],
      [TransformType.INTEG, IntegId.HMAC_SHA2_384_192],
      [TransformType.KE, KeId.ECP_384],
      [TransformType.ESN, 1],
    ],
  );
});

/** A peer's offer written in proposal syntax (as strongSwan would send it). */
function offer(text: string, proto: 'ike' | 'esp', spi = proto === 'ike' ? E : SPI4): Proposal[] {
  return toWireProposals(parseProposals(text, proto), spi);
}

test('IKE selection follows OUR proposal order, then our transform order', () => {
  const ours = parseProposals('aes256gcm16-prfsha256-x25519, aes128-sha256-modp2048', 'ike');
  const theirs = offer('aes128-sha256-modp2048, aes256gcm16-prfsha256-x25519', 'ike');
  const c = selectIkeProposal(ours, theirs)!;
  assert.equal(c.num, 2, 'their second proposal matches our first');
  assert.equal(formatIkeSuite(c.suite), 'AES_GCM_16_256/PRF_HMAC_SHA2_256/CURVE_25519');

  const ours2 = parseProposals('aes128-aes256-sha256-sha512-x25519-ecp256', 'ike');
  const c2 = selectIkeProposal(ours2, offer('aes256-aes128-sha512-sha256-ecp256-x25519', 'ike'))!;
  assert.equal(formatIkeSuite(c2.suite), 'AES_CBC_128/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/CURVE_25519');
  assert.equal(c2.suite.integ!.id, IntegId.HMAC_SHA2_256_128);
  assert.equal(c2.suite.prf.id, PrfId.HMAC_SHA2_256);
});

test("the peer's KE group is chosen when both sides allow it (avoids INVALID_KE_PAYLOAD)", () => {
  const ours = parseProposals('aes128gcm16-prfsha256-x25519-ecp256-modp3072', 'ike');
  const theirs = offer('aes128gcm16-prfsha256-modp3072-ecp256', 'ike');
  assert.equal(selectIkeProposal(ours, theirs)!.suite.ke, KeId.ECP_256);
  assert.equal(selectIkeProposal(ours, theirs, { peerKe: KeId.MODP_3072 })!.suite.ke, KeId.MODP_3072);
  // A group only they support is not taken.
  assert.equal(selectIkeProposal(ours, offer('aes128gcm16-prfsha256-ecp384-ecp256', 'ike'), { peerKe: KeId.ECP_384 })!.suite.ke, KeId.ECP_256);
});

test('IKE selection: no match, wrong protocol, key length and attribute handling, mandatory unknown types', () => {
  const ours = parseProposals('aes128-sha256-x25519, aes256gcm16-prfsha384-ecp384', 'ike');
  assert.equal(selectIkeProposal(ours, offer('aes192-sha256-x25519, aes256gcm16-prfsha256-ecp384', 'ike')), undefined);
  assert.equal(selectIkeProposal(ours, offer('aes128-sha256', 'esp')), undefined);
  assert.equal(selectIkeProposal(ours, []), undefined);
  // SPI: none in IKE_SA_INIT, 8 bytes in a rekey, nothing else.
  assert.ok(selectIkeProposal(ours, offer('aes128-sha256-x25519', 'ike', Buffer.alloc(8, 1))));
  assert.equal(selectIkeProposal(ours, offer('aes128-sha256-x25519', 'ike', Buffer.alloc(4, 1))), undefined);

  const tr = (type: number, id: number, attributes: Transform['attributes'] = []): Transform => ({ type, id, attributes });
  const base = [tr(TransformType.PRF, PrfId.HMAC_SHA2_256), tr(TransformType.INTEG, IntegId.HMAC_SHA2_256_128), tr(TransformType.KE, KeId.CURVE25519)];
  const mk = (transforms: Transform[]): Proposal[] => [{ num: 1, protocol: ProtocolId.IKE, spi: E, transforms }];
  // AES without KEY_LENGTH, with a TLV value, with an unknown attribute: unusable.
  assert.equal(selectIkeProposal(ours, mk([tr(TransformType.ENCR, EncrId.AES_CBC), ...base])), undefined);
  assert.equal(selectIkeProposal(ours, mk([tr(TransformType.ENCR, EncrId.AES_CBC, [{ type: TransformAttr.KEY_LENGTH, value: Buffer.from([0, 128]) }]), ...base])), undefined);
  assert.equal(selectIkeProposal(ours, mk([tr(TransformType.ENCR, EncrId.AES_CBC, [{ type: 99, value: 1 }]), ...base])), undefined);
  const aes128 = tr(TransformType.ENCR, EncrId.AES_CBC, [{ type: TransformAttr.KEY_LENGTH, value: 128 }]);
  assert.ok(selectIkeProposal(ours, mk([aes128, ...base])));
  // RFC 9370 additional key exchange: mandatory (no NONE) → refused; optional → accepted.
  assert.equal(selectIkeProposal(ours, mk([aes128, ...base, tr(TransformType.ADDKE1, KeId.ML_KEM_768)])), undefined);
  assert.ok(selectIkeProposal(ours, mk([aes128, ...base, tr(TransformType.ADDKE1, KeId.ML_KEM_768), tr(TransformType.ADDKE1, 0)])));
  // ChaCha20-Poly1305 offered with an explicit 256-bit KEY_LENGTH is still recognised.
  const chachaOurs = parseProposals('chacha20poly1305-prfsha256-x25519', 'ike');
  const c = selectIkeProposal(chachaOurs, mk([tr(TransformType.ENCR, EncrId.CHACHA20_POLY1305, [{ type: TransformAttr.KEY_LENGTH, value: 256 }]), ...base]))!;
  assert.equal(c.suite.encr.id, EncrId.CHACHA20_POLY1305);
  assert.equal(c.suite.integ, null, 'AEAD selected: no integrity even though one was offered');
});

test('ESP selection: dataplane support filter, PFS rules, ESN, SPI size', () => {
  const ours = parseProposals('aes128gcm8-aes256gcm16-chacha20poly1305, aes256-sha256-sha1', 'esp');
  const theirs = offer('aes128gcm8-aes256gcm16, aes256-sha1', 'esp');
  assert.equal(selectEspProposal(ours, theirs)!.encr.icvLen, 8);
  // VPP's GCM is ICV-16 only: its support filter skips GCM-8.
  const vppOk = (e: { vppCryptoAlg: number | null }): boolean => e.vppCryptoAlg !== null;
  const c = selectEspProposal(ours, theirs, vppOk)!;
  assert.equal(formatEspProposal(c), 'AES_GCM_16_256');
  assert.deepEqual(c.spi, SPI4);
  assert.equal(c.num, 1);
  const cbc = selectEspProposal(ours, theirs, (e) => !e.aead)!;
  assert.equal(formatEspProposal(cbc), 'AES_CBC_256/HMAC_SHA1_96');
  assert.equal(cbc.num, 2);

  // No PFS on our side: an offer with a KE only matches if NONE is among its KE transforms.
  const noPfs = parseProposals('aes128gcm16', 'esp');
  assert.equal(selectEspProposal(noPfs, offer('aes128gcm16-ecp256', 'esp')), undefined);
  assert.equal(selectEspProposal(noPfs, offer('aes128gcm16-ecp256-modpnone', 'esp'))!.ke, 0);
  // PFS on our side: a common group is required …
  const pfs = parseProposals('aes128gcm16-x25519-ecp256', 'esp');
  assert.equal(selectEspProposal(pfs, offer('aes128gcm16', 'esp')), undefined);
  assert.equal(selectEspProposal(pfs, offer('aes128gcm16-ecp256-x25519', 'esp'))!.ke, KeId.CURVE25519);
  assert.equal(selectEspProposal(pfs, offer('aes128gcm16-ecp256-x25519', 'esp'), undefined, { peerKe: KeId.ECP_256 })!.ke, KeId.ECP_256);
  // … except in IKE_AUTH, where KE transforms are ignored.
  assert.equal(selectEspProposal(pfs, offer('aes128gcm16', 'esp'), undefined, { skipKe: true })!.ke, 0);
  // PFS optional (modpnone): either works.
  const optional = parseProposals('aes128gcm16-ecp256-modpnone', 'esp');
  assert.equal(selectEspProposal(optional, offer('aes128gcm16', 'esp'))!.ke, 0);
  assert.equal(selectEspProposal(optional, offer('aes128gcm16-ecp256', 'esp'))!.ke, KeId.ECP_256);

  // ESN: our order, and "no ESN" when the offer has no ESN transform.
  assert.equal(selectEspProposal(parseProposals('aes128gcm16-esn-noesn', 'esp'), offer('aes128gcm16-noesn-esn', 'esp'))!.esn, true);
  assert.equal(selectEspProposal(parseProposals('aes128gcm16-esn', 'esp'), offer('aes128gcm16', 'esp')), undefined);
  const noEsnTransform: Proposal[] = [
    { num: 1, protocol: ProtocolId.ESP, spi: SPI4, transforms: [{ type: TransformType.ENCR, id: EncrId.AES_GCM_16, attributes: [{ type: TransformAttr.KEY_LENGTH, value: 128 }] }] },
  ];
  assert.equal(selectEspProposal(noPfs, noEsnTransform)!.esn, false);
  // An ESP proposal must carry a 4-byte SPI.
  assert.equal(selectEspProposal(noPfs, offer('aes128gcm16', 'esp', Buffer.alloc(8))), undefined);
});

test('chosen proposals go back on the wire as one proposal with one transform per type, and check as responses', () => {
  const ours = parseProposals('aes256gcm16-prfsha256-x25519, aes128-sha256-modp2048', 'ike');
  const chosen = selectIkeProposal(ours, offer('aes128-sha256-modp2048', 'ike'))!;
  assert.equal(chosen.num, 1, 'their numbering');
  const resp = ikeChosenToWire(chosen);
  assert.deepEqual(resp, chosenToWire(chosen));
  assert.deepEqual(
    resp.transforms.map((t) => [t.type, t.id]),
    [
      [TransformType.ENCR, EncrId.AES_CBC],
      [TransformType.PRF, PrfId.HMAC_SHA2_256],
      [TransformType.INTEG, IntegId.HMAC_SHA2_256_128],
      [TransformType.KE, KeId.MODP_2048],
    ],
  );
  assert.equal(resp.spi.length, 0);
  assert.deepEqual(ikeChosenToWire(chosen, Buffer.alloc(8, 7)).spi, Buffer.alloc(8, 7));

  // The initiator checks the response against its offer (which it numbered from 1).
  const initiatorOffer = parseProposals('aes128-sha256-modp2048', 'ike');
  assert.deepEqual(checkIkeResponse(initiatorOffer, [resp])!.suite, chosen.suite);
  assert.equal(checkIkeResponse(initiatorOffer, [{ ...resp, num: 2 }]), undefined, 'number not in our offer');
  assert.equal(checkIkeResponse(initiatorOffer, [resp, resp]), undefined, 'more than one proposal');
  const twoKe = { ...resp, transforms: [...resp.transforms, { type: TransformType.KE, id: KeId.CURVE25519, attributes: [] }] };
  assert.equal(checkIkeResponse(initiatorOffer, [twoKe]), undefined, 'two transforms of one type');
  const other = ikeChosenToWire(selectIkeProposal(ours, offer('aes256gcm16-prfsha256-x25519', 'ike'))!);
  assert.equal(checkIkeResponse(initiatorOffer, [other]), undefined, 'transforms we did not offer');

  const espOurs = parseProposals('aes128-sha256-ecp256', 'esp');
  const esp = selectEspProposal(espOurs, offer('aes128-sha256-ecp256', 'esp'))!;
  const ourSpi = Buffer.from('0a0b0c0d', 'hex');
  const espResp = espChosenToWire(esp, ourSpi);
  assert.deepEqual(espResp, chosenToWire(esp, ourSpi));
  assert.deepEqual(espResp.spi, ourSpi);
  assert.deepEqual(
    espResp.transforms.map((t) => [t.type, t.id]),
    [
      [TransformType.ENCR, EncrId.AES_CBC],
      [TransformType.INTEG, IntegId.HMAC_SHA2_256_128],
      [TransformType.KE, KeId.ECP_256],
      [TransformType.ESN, 0],
    ],
  );
  const back = checkEspResponse(espOurs, [espResp])!;
  assert.deepEqual(back.spi, ourSpi);
  assert.equal(formatEspProposal(back), 'AES_CBC_128/HMAC_SHA2_256_128/ECP_256');
  // A response without KE to our PFS offer is refused, unless it is the IKE_AUTH CHILD SA.
  const noKe = { ...espResp, transforms: espResp.transforms.filter((t) => t.type !== TransformType.KE) };
  assert.equal(checkEspResponse(espOurs, [noKe]), undefined);
  assert.equal(checkEspResponse(espOurs, [noKe], { skipKe: true })!.ke, 0);
  assert.throws(() => chosenToWire(esp), ProposalError);
});

test('formatIkeSuite / formatEspProposal print strongSwan-style names', () => {
  const [s] = parseProposals('aes128-sha384-modp3072', 'ike');
  const c = selectIkeProposal([s!], toWireProposals([s!], E))!;
  assert.equal(formatIkeSuite(c.suite), 'AES_CBC_128/HMAC_SHA2_384_192/PRF_HMAC_SHA2_384/MODP_3072');
  const chacha = selectIkeProposal(parseProposals('chacha20poly1305-prfsha512-x448', 'ike'), offer('chacha20poly1305-prfsha512-x448', 'ike'))!;
  assert.equal(formatIkeSuite(chacha.suite), 'CHACHA20_POLY1305/PRF_HMAC_SHA2_512/CURVE_448');
  const e = selectEspProposal(parseProposals('aes256gcm16-ecp521-esn', 'esp'), offer('aes256gcm16-ecp521-esn', 'esp'))!;
  assert.equal(formatEspProposal(e), 'AES_GCM_16_256/ECP_521/ESN');
});
