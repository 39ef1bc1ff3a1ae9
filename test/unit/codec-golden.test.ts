/**
 * Golden-byte tests of the IKEv2 codec: hand-written messages (test/unit/codec-fixtures.ts, built
 * from the RFC 7296 §3 and RFC 7383 §2.5 layouts) are decoded, their fields checked, and
 * re-encoded to the identical bytes.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { decodeMessage, decodePayloadChain, encodeMessage, encodePayloadChain } from '../../src/ikev2/codec/message.ts';
import { decodeHeader, encodeHeader, IKE_HEADER_LEN } from '../../src/ikev2/codec/header.ts';
import { Writer } from '../../src/common/bytes.ts';
import {
  AuthMethod,
  CertEncoding,
  CfgAttr,
  CfgType,
  EncrId,
  ExchangeType,
  HeaderFlag,
  IdType,
  IntegId,
  KeId,
  NotifyType,
  PayloadType,
  PrfId,
  ProtocolId,
  TransformAttr,
  TransformType,
  TsType,
} from '../../src/ikev2/constants.ts';
import type { DecodedMessage, Payload } from '../../src/ikev2/codec/types.ts';
import * as F from './codec-fixtures.ts';

function reencode(d: DecodedMessage): Buffer {
  const { length: _l, nextPayload: _n, ...h } = d.header;
  return encodeMessage(h, d.payloads);
}

/** The payload interface(s) whose `type` admits T (IdPayload covers both IDi and IDr). */
type Admitting<P, T> = P extends { type: infer U } ? (T extends U ? P : never) : never;

/** Narrows a payload list entry to the expected type (fails the test otherwise). */
function as<T extends Payload['type']>(p: Payload | undefined, type: T): Admitting<Payload, T> {
  assert.ok(p, `missing payload of type ${type}`);
  assert.equal(p.type, type);
  return p as Admitting<Payload, T>;
}

describe('IKE header (RFC 7296 §3.1)', () => {
  it('decodes every field and re-encodes the same 28 bytes', () => {
    const h = decodeHeader(F.IKE_SA_INIT_RESPONSE);
    assert.deepEqual(h.spiI, F.hex(F.SPI_I));
    assert.deepEqual(h.spiR, F.hex(F.SPI_R));
    assert.equal(h.nextPayload, PayloadType.SA);
    assert.equal(h.version, 0x20);
    assert.equal(h.exchange, ExchangeType.IKE_SA_INIT);
    assert.equal(h.flags, HeaderFlag.RESPONSE);
    assert.equal(h.messageId, 0);
    assert.equal(h.length, 241);
    const w = new Writer();
    encodeHeader(h, w);
    assert.deepEqual(w.finish(), F.IKE_SA_INIT_RESPONSE.subarray(0, IKE_HEADER_LEN));
  });

  it('ignores reserved flag bits on receipt and clears them on send', () => {
    const b = Buffer.from(F.IKE_AUTH_REQUEST);
    b[19] = 0xff; // all flag bits set
    const h = decodeHeader(b);
    assert.equal(h.flags, HeaderFlag.INITIATOR | HeaderFlag.VERSION | HeaderFlag.RESPONSE);
    const w = new Writer();
    encodeHeader({ ...h, flags: 0xff }, w);
    assert.equal(w.finish()[19], 0x38);
  });

  it('decodes the message ID as an unsigned 32-bit number', () => {
    const b = Buffer.from(F.IKE_AUTH_REQUEST);
    b.writeUInt32BE(0xfffffffe, 20);
    assert.equal(decodeHeader(b).messageId, 0xfffffffe);
  });
});

describe('IKE_SA_INIT request (golden)', () => {
  const d = decodeMessage(F.IKE_SA_INIT_REQUEST);

  it('decodes the header', () => {
    assert.equal(d.header.exchange, ExchangeType.IKE_SA_INIT);
    assert.equal(d.header.flags, HeaderFlag.INITIATOR);
    assert.deepEqual(d.header.spiR, Buffer.alloc(8));
    assert.equal(d.header.length, F.IKE_SA_INIT_REQUEST.length);
    assert.deepEqual(
      d.payloads.map((p) => p.type),
      [33, 34, 40, 41, 41, 41, 41, 43],
    );
    assert.deepEqual(d.unknown, []);
    assert.deepEqual(d.unsupportedCritical, []);
  });

  it('decodes both proposals with transforms and the TV key length attribute', () => {
    const sa = as(d.payloads[0], PayloadType.SA);
    assert.equal(sa.critical, false);
    assert.equal(sa.proposals.length, 2);
    const [p1, p2] = sa.proposals;
    assert.deepEqual(p1, {
      num: 1,
      protocol: ProtocolId.IKE,
      spi: Buffer.alloc(0),
      transforms: [
        { type: TransformType.ENCR, id: EncrId.AES_GCM_16, attributes: [{ type: TransformAttr.KEY_LENGTH, value: 256 }] },
        { type: TransformType.PRF, id: PrfId.HMAC_SHA2_256, attributes: [] },
        { type: TransformType.KE, id: KeId.CURVE25519, attributes: [] },
        { type: TransformType.KE, id: KeId.ECP_256, attributes: [] },
      ],
    });
    assert.equal(p2!.num, 2);
    assert.deepEqual(
      p2!.transforms.map((t) => [t.type, t.id]),
      [
        [TransformType.ENCR, EncrId.AES_CBC],
        [TransformType.PRF, PrfId.HMAC_SHA2_256],
        [TransformType.INTEG, IntegId.HMAC_SHA2_256_128],
        [TransformType.KE, KeId.MODP_2048],
      ],
    );
    assert.deepEqual(p2!.transforms[0]!.attributes, [{ type: TransformAttr.KEY_LENGTH, value: 128 }]);
  });

  it('decodes KE, nonce, notifies and vendor ID', () => {
    const ke = as(d.payloads[1], PayloadType.KE);
    assert.equal(ke.group, KeId.CURVE25519);
    assert.deepEqual(ke.data, F.hex(F.X25519_ALICE));
    assert.deepEqual(as(d.payloads[2], PayloadType.NONCE).data, F.hex(F.NONCE_I));
    const src = as(d.payloads[3], PayloadType.NOTIFY);
    assert.deepEqual(
      { protocol: src.protocol, spi: src.spi, notifyType: src.notifyType, data: src.data },
      { protocol: 0, spi: Buffer.alloc(0), notifyType: NotifyType.NAT_DETECTION_SOURCE_IP, data: F.hex(F.NATD_SRC) },
    );
    assert.equal(as(d.payloads[4], PayloadType.NOTIFY).notifyType, NotifyType.NAT_DETECTION_DESTINATION_IP);
    const frag = as(d.payloads[5], PayloadType.NOTIFY);
    assert.equal(frag.notifyType, NotifyType.IKEV2_FRAGMENTATION_SUPPORTED);
    assert.equal(frag.data.length, 0);
    assert.deepEqual(as(d.payloads[6], PayloadType.NOTIFY).data, F.hex('000200030004'));
    assert.deepEqual(as(d.payloads[7], PayloadType.VENDOR).data, F.hex('f4ed19e0c114eb516faaac0ee37daf28'));
  });

  it('re-encodes byte for byte', () => {
    assert.deepEqual(reencode(d), F.IKE_SA_INIT_REQUEST);
  });

  it('is produced byte for byte by the encoder from payload values alone', () => {
    const natd = (notifyType: number, data: string): Payload => ({
      type: PayloadType.NOTIFY,
      critical: false,
      protocol: 0,
      spi: Buffer.alloc(0),
      notifyType,
      data: F.hex(data),
    });
    const keyLen = (bits: number) => [{ type: TransformAttr.KEY_LENGTH, value: bits }];
    const bytes = encodeMessage(
      {
        spiI: F.hex(F.SPI_I),
        spiR: Buffer.alloc(8),
        version: 0x20,
        exchange: ExchangeType.IKE_SA_INIT,
        flags: HeaderFlag.INITIATOR,
        messageId: 0,
      },
      [
        {
          type: PayloadType.SA,
          critical: false,
          proposals: [
            {
              num: 1,
              protocol: ProtocolId.IKE,
              spi: Buffer.alloc(0),
              transforms: [
                { type: TransformType.ENCR, id: EncrId.AES_GCM_16, attributes: keyLen(256) },
                { type: TransformType.PRF, id: PrfId.HMAC_SHA2_256, attributes: [] },
                { type: TransformType.KE, id: KeId.CURVE25519, attributes: [] },
                { type: TransformType.KE, id: KeId.ECP_256, attributes: [] },
              ],
            },
            {
              num: 2,
              protocol: ProtocolId.IKE,
              spi: Buffer.alloc(0),
              transforms: [
                { type: TransformType.ENCR, id: EncrId.AES_CBC, attributes: keyLen(128) },
                { type: TransformType.PRF, id: PrfId.HMAC_SHA2_256, attributes: [] },
                { type: TransformType.INTEG, id: IntegId.HMAC_SHA2_256_128, attributes: [] },
                { type: TransformType.KE, id: KeId.MODP_2048, attributes: [] },
              ],
            },
          ],
        },
        { type: PayloadType.KE, critical: false, group: KeId.CURVE25519, data: F.hex(F.X25519_ALICE) },
        { type: PayloadType.NONCE, critical: false, data: F.hex(F.NONCE_I) },
        natd(NotifyType.NAT_DETECTION_SOURCE_IP, F.NATD_SRC),
        natd(NotifyType.NAT_DETECTION_DESTINATION_IP, F.NATD_DST),
        natd(NotifyType.IKEV2_FRAGMENTATION_SUPPORTED, ''),
        natd(NotifyType.SIGNATURE_HASH_ALGORITHMS, '000200030004'),
        { type: PayloadType.VENDOR, critical: false, data: F.hex('f4ed19e0c114eb516faaac0ee37daf28') },
      ],
    );
    assert.deepEqual(bytes, F.IKE_SA_INIT_REQUEST);
  });
});

describe('IKE_SA_INIT response (golden)', () => {
  const d = decodeMessage(F.IKE_SA_INIT_RESPONSE);

  it('decodes the chosen proposal, KE, CERTREQ and notifies', () => {
    assert.equal(d.header.flags, HeaderFlag.RESPONSE);
    const sa = as(d.payloads[0], PayloadType.SA);
    assert.equal(sa.proposals.length, 1);
    assert.equal(sa.proposals[0]!.transforms.length, 3);
    assert.deepEqual(as(d.payloads[1], PayloadType.KE).data, F.hex(F.X25519_BOB));
    assert.deepEqual(as(d.payloads[2], PayloadType.NONCE).data, F.hex(F.NONCE_R));
    const certreq = as(d.payloads[5], PayloadType.CERTREQ);
    assert.equal(certreq.encoding, CertEncoding.X509_SIGNATURE);
    assert.deepEqual(certreq.data, F.hex(F.CA_HASH));
    assert.equal(as(d.payloads[6], PayloadType.NOTIFY).notifyType, NotifyType.MULTIPLE_AUTH_SUPPORTED);
    assert.equal(as(d.payloads[7], PayloadType.NOTIFY).notifyType, NotifyType.IKEV2_FRAGMENTATION_SUPPORTED);
  });

  it('re-encodes byte for byte', () => {
    assert.deepEqual(reencode(d), F.IKE_SA_INIT_RESPONSE);
  });
});

describe('IKE_AUTH request with SK (golden)', () => {
  const d = decodeMessage(F.IKE_AUTH_REQUEST);

  it('keeps the SK body opaque and records inner type and offset', () => {
    assert.equal(d.header.exchange, ExchangeType.IKE_AUTH);
    assert.equal(d.header.messageId, 1);
    assert.equal(d.payloads.length, 1);
    const sk = as(d.payloads[0], PayloadType.SK);
    assert.equal(sk.innerType, PayloadType.IDi);
    assert.equal(sk.offset, IKE_HEADER_LEN);
    assert.deepEqual(sk.body, F.IKE_AUTH_REQUEST.subarray(IKE_HEADER_LEN + 4));
    assert.equal(sk.body.length, 64);
  });

  it('re-encodes byte for byte', () => {
    assert.deepEqual(reencode(d), F.IKE_AUTH_REQUEST);
  });

  it('decodes the plaintext chain: IDi, CERT, N, CERTREQ, IDr, AUTH, CP, SA, TSi (IPv4 + IPv6), TSr', () => {
    const c = decodePayloadChain(F.IKE_AUTH_REQUEST_INNER, PayloadType.IDi, 0, F.IKE_AUTH_REQUEST_INNER.length);
    const p = c.payloads;
    const idi = as(p[0], PayloadType.IDi);
    assert.equal(idi.idType, IdType.ID_FQDN);
    assert.equal(idi.data.toString(), 'vpn.example');
    const cert = as(p[1], PayloadType.CERT);
    assert.equal(cert.encoding, CertEncoding.X509_SIGNATURE);
    assert.deepEqual(cert.data, F.hex('3003020101'));
    assert.equal(as(p[2], PayloadType.NOTIFY).notifyType, NotifyType.INITIAL_CONTACT);
    assert.deepEqual(as(p[3], PayloadType.CERTREQ).data, F.hex(F.CA_HASH));
    const idr = as(p[4], PayloadType.IDr);
    assert.equal(idr.idType, IdType.ID_IPV4_ADDR);
    assert.deepEqual(idr.data, F.hex('c0000201'));
    const auth = as(p[5], PayloadType.AUTH);
    assert.equal(auth.method, AuthMethod.SHARED_KEY_MIC);
    assert.equal(auth.data.length, 32);
    const cp = as(p[6], PayloadType.CP);
    assert.equal(cp.cfgType, CfgType.CFG_REQUEST);
    assert.deepEqual(
      cp.attributes.map((a) => [a.type, a.value.length]),
      [
        [CfgAttr.INTERNAL_IP4_ADDRESS, 0],
        [CfgAttr.INTERNAL_IP4_DNS, 0],
        [CfgAttr.INTERNAL_IP6_ADDRESS, 0],
      ],
    );
    const sa = as(p[7], PayloadType.SA);
    assert.equal(sa.proposals[0]!.protocol, ProtocolId.ESP);
    assert.deepEqual(sa.proposals[0]!.spi, F.hex('c1a2b3d4'));
    assert.deepEqual(sa.proposals[0]!.transforms[1], { type: TransformType.ESN, id: 0, attributes: [] });
    const tsi = as(p[8], PayloadType.TSi);
    assert.deepEqual(tsi.selectors, [
      {
        tsType: TsType.TS_IPV4_ADDR_RANGE,
        ipProto: 0,
        startPort: 0,
        endPort: 65535,
        start: F.hex('0a000000'),
        end: F.hex('0a0000ff'),
      },
      {
        tsType: TsType.TS_IPV6_ADDR_RANGE,
        ipProto: 0,
        startPort: 0,
        endPort: 65535,
        start: F.hex('20010db8000000000000000000000000'),
        end: F.hex('20010db800000000000000000000ffff'),
      },
    ]);
    const tsr = as(p[9], PayloadType.TSr);
    assert.equal(tsr.selectors.length, 1);
    assert.equal(tsr.selectors[0]!.ipProto, 17);
    assert.equal(tsr.selectors[0]!.startPort, 500);
    assert.deepEqual(tsr.selectors[0]!.end, F.hex('20010db80001ffffffffffffffffffff'));
    const e = encodePayloadChain(p);
    assert.equal(e.firstType, PayloadType.IDi);
    assert.deepEqual(e.bytes, F.IKE_AUTH_REQUEST_INNER);
  });

  it('decodes an IKE_AUTH response carrying EAP and re-encodes it', () => {
    const b = F.IKE_AUTH_EAP_RESPONSE_INNER;
    const c = decodePayloadChain(b, PayloadType.IDr, 0, b.length);
    assert.equal(as(c.payloads[0], PayloadType.IDr).data.toString(), 'gw.example');
    assert.equal(as(c.payloads[1], PayloadType.AUTH).method, AuthMethod.RSA_SIG);
    assert.deepEqual(as(c.payloads[2], PayloadType.EAP).data, F.hex('012a000501'));
    assert.deepEqual(encodePayloadChain(c.payloads), { firstType: PayloadType.IDr, bytes: b });
  });
});

describe('CREATE_CHILD_SA request (golden)', () => {
  it('decodes the SK message and re-encodes it', () => {
    const d = decodeMessage(F.CREATE_CHILD_SA_REQUEST);
    assert.equal(d.header.exchange, ExchangeType.CREATE_CHILD_SA);
    assert.equal(d.header.messageId, 2);
    const sk = as(d.payloads[0], PayloadType.SK);
    assert.equal(sk.innerType, PayloadType.NOTIFY);
    assert.equal(sk.body.length, 80);
    assert.deepEqual(reencode(d), F.CREATE_CHILD_SA_REQUEST);
  });

  it('decodes the rekey contents: N(REKEY_SA) with an ESP SPI, SA, Ni, KEi, TSi, TSr', () => {
    const b = F.CREATE_CHILD_SA_REQUEST_INNER;
    const c = decodePayloadChain(b, PayloadType.NOTIFY, 0, b.length);
    const rekey = as(c.payloads[0], PayloadType.NOTIFY);
    assert.deepEqual(
      { protocol: rekey.protocol, spi: rekey.spi, notifyType: rekey.notifyType, data: rekey.data.length },
      { protocol: ProtocolId.ESP, spi: F.hex('c1a2b3d4'), notifyType: NotifyType.REKEY_SA, data: 0 },
    );
    const sa = as(c.payloads[1], PayloadType.SA);
    assert.deepEqual(sa.proposals[0]!.spi, F.hex('d4c3b2a1'));
    assert.deepEqual(
      sa.proposals[0]!.transforms.map((t) => t.type),
      [TransformType.ENCR, TransformType.KE, TransformType.ESN],
    );
    assert.equal(as(c.payloads[3], PayloadType.KE).group, KeId.CURVE25519);
    assert.deepEqual(as(c.payloads[4], PayloadType.TSi).selectors[0]!.start, F.hex('c0a80100'));
    assert.equal(as(c.payloads[5], PayloadType.TSr).selectors[0]!.ipProto, 6);
    assert.deepEqual(encodePayloadChain(c.payloads), { firstType: PayloadType.NOTIFY, bytes: b });
  });
});

describe('INFORMATIONAL with Delete (golden)', () => {
  it('decodes the SK message and re-encodes it', () => {
    const d = decodeMessage(F.INFORMATIONAL_REQUEST);
    assert.equal(d.header.exchange, ExchangeType.INFORMATIONAL);
    assert.equal(as(d.payloads[0], PayloadType.SK).innerType, PayloadType.DELETE);
    assert.deepEqual(reencode(d), F.INFORMATIONAL_REQUEST);
  });

  it('decodes a Delete of two ESP SAs', () => {
    const b = F.INFORMATIONAL_DELETE_ESP_INNER;
    const c = decodePayloadChain(b, PayloadType.DELETE, 0, b.length);
    assert.deepEqual(c.payloads, [
      {
        type: PayloadType.DELETE,
        critical: false,
        protocol: ProtocolId.ESP,
        spiSize: 4,
        spis: [F.hex('c1a2b3d4'), F.hex('0badf00d')],
      },
    ]);
    assert.deepEqual(encodePayloadChain(c.payloads).bytes, b);
  });

  it('decodes a Delete of the IKE SA (no SPIs)', () => {
    const b = F.INFORMATIONAL_DELETE_IKE_INNER;
    const c = decodePayloadChain(b, PayloadType.DELETE, 0, b.length);
    assert.deepEqual(c.payloads, [
      { type: PayloadType.DELETE, critical: false, protocol: ProtocolId.IKE, spiSize: 0, spis: [] },
    ]);
    assert.deepEqual(encodePayloadChain(c.payloads).bytes, b);
  });
});

describe('IKE_AUTH fragments, SKF (RFC 7383 §2.5, golden)', () => {
  it('decodes fragment 1 of 3 with the inner type', () => {
    const d = decodeMessage(F.IKE_AUTH_FRAGMENT_1);
    const f = as(d.payloads[0], PayloadType.SKF);
    assert.equal(f.innerType, PayloadType.IDi);
    assert.equal(f.fragmentNumber, 1);
    assert.equal(f.totalFragments, 3);
    assert.equal(f.offset, IKE_HEADER_LEN);
    assert.deepEqual(f.body, F.IKE_AUTH_FRAGMENT_1.subarray(IKE_HEADER_LEN + 8));
    assert.deepEqual(reencode(d), F.IKE_AUTH_FRAGMENT_1);
  });

  it('decodes fragment 2 of 3 with Next Payload 0', () => {
    const d = decodeMessage(F.IKE_AUTH_FRAGMENT_2);
    const f = as(d.payloads[0], PayloadType.SKF);
    assert.equal(f.innerType, 0);
    assert.equal(f.fragmentNumber, 2);
    assert.equal(f.body.length, 40);
    assert.deepEqual(reencode(d), F.IKE_AUTH_FRAGMENT_2);
  });
});

describe('other payload encodings', () => {
  it('round-trips a CP reply with an IPv6 address attribute (§3.15.1: 16 bytes + prefix length)', () => {
    const b = F.hex(
      '00 00 0025', //  CP: Next none, Payload Length 37
      '02 000000', //   CFG_REPLY (2)
      '0001 0004 0a000102', // INTERNAL_IP4_ADDRESS 10.0.1.2
      '0008 0011 20010db8000000000000000000000002 40', // INTERNAL_IP6_ADDRESS 2001:db8::2/64
    );
    const c = decodePayloadChain(b, PayloadType.CP, 0, b.length);
    const cp = as(c.payloads[0], PayloadType.CP);
    assert.equal(cp.cfgType, CfgType.CFG_REPLY);
    assert.deepEqual(cp.attributes[1], {
      type: CfgAttr.INTERNAL_IP6_ADDRESS,
      value: F.hex('20010db800000000000000000000000240'),
    });
    assert.deepEqual(encodePayloadChain(c.payloads).bytes, b);
  });

  it('round-trips a TLV transform attribute and keeps the critical bit of a known payload', () => {
    // An SA whose one transform carries a TLV attribute of type 17 (unassigned): 8 + 4 + 2 bytes.
    const withTlv = F.hex(
      '00 80 001a', //  SA, C=1, Payload Length 26
      '00 00 0016 01 01 00 01', // proposal length 22
      '00 00 000e 01 00 000c', //  transform: last, length 14, ENCR AES_CBC
      '0011 0002 abcd', //         TLV attribute type 17, length 2, value abcd
    );
    const c = decodePayloadChain(withTlv, PayloadType.SA, 0, withTlv.length);
    const sa = as(c.payloads[0], PayloadType.SA);
    assert.equal(sa.critical, true);
    assert.deepEqual(sa.proposals[0]!.transforms[0]!.attributes, [{ type: 17, value: F.hex('abcd') }]);
    assert.deepEqual(encodePayloadChain(c.payloads).bytes, withTlv);
  });

  it('keeps selectors of other TS types raw and re-encodes them (RFC 9478 TS_SECLABEL)', () => {
    const b = F.hex(
      '00 00 0020 02 000000', // TSi: length 32, 2 TSs
      '0a 00 0008 73797300', //  TS_SECLABEL (10), reserved, length 8, label "sys\\0"
      '07 00 0010 0000 ffff 0a000000 0a0000ff',
    );
    const c = decodePayloadChain(b, PayloadType.TSi, 0, b.length);
    const ts = as(c.payloads[0], PayloadType.TSi);
    assert.deepEqual(ts.selectors[0], {
      tsType: TsType.TS_SECLABEL,
      ipProto: 0,
      startPort: 0,
      endPort: 0,
      start: F.hex('73797300'),
      end: Buffer.alloc(0),
    });
    assert.equal(ts.selectors[1]!.tsType, TsType.TS_IPV4_ADDR_RANGE);
    assert.deepEqual(encodePayloadChain(c.payloads).bytes, b);
  });

  it('encodes an empty payload list as a bare header with Next Payload 0', () => {
    const b = encodeMessage(
      { spiI: F.hex(F.SPI_I), spiR: F.hex(F.SPI_R), version: 0x20, exchange: 37, flags: 0x20, messageId: 7 },
      [],
    );
    assert.equal(b.length, IKE_HEADER_LEN);
    assert.equal(b[16], 0);
    assert.equal(b.readUInt32BE(24), IKE_HEADER_LEN);
    assert.deepEqual(decodeMessage(b).payloads, []);
    assert.deepEqual(encodePayloadChain([]), { firstType: 0, bytes: Buffer.alloc(0) });
  });

  it('rejects values that do not fit their fields when encoding', () => {
    const h = { spiI: F.hex(F.SPI_I), spiR: F.hex(F.SPI_R), version: 0x20, exchange: 37, flags: 0, messageId: 1 };
    assert.throws(() => encodeMessage({ ...h, spiI: Buffer.alloc(4) }, []), RangeError);
    const sk: Payload = { type: PayloadType.SK, critical: false, innerType: 0, body: Buffer.alloc(8), offset: 0 };
    const nonce: Payload = { type: PayloadType.NONCE, critical: false, data: Buffer.alloc(16) };
    assert.throws(() => encodeMessage(h, [sk, nonce]), /must be the last payload/);
    assert.throws(
      () => encodePayloadChain([{ type: PayloadType.KE, critical: false, group: 70000, data: Buffer.alloc(1) }]),
      RangeError,
    );
    assert.throws(
      () => encodePayloadChain([{ type: PayloadType.VENDOR, critical: false, data: Buffer.alloc(70000) }]),
      /exceeds 65535/,
    );
    assert.throws(
      () =>
        encodePayloadChain([
          { type: PayloadType.DELETE, critical: false, protocol: 3, spiSize: 4, spis: [Buffer.alloc(8)] },
        ]),
      RangeError,
    );
  });
});

describe('major version', () => {
  it('decodes only the header of a major version 3 message and reports the version', () => {
    const d = decodeMessage(F.MAJOR_VERSION_3);
    assert.equal(d.header.version >> 4, 3);
    assert.equal(d.header.nextPayload, PayloadType.SA);
    assert.deepEqual(d.payloads, []);
    assert.deepEqual(d.unknown, []);
    assert.deepEqual(d.unsupportedCritical, []);
  });

  it('accepts a higher minor version of IKEv2', () => {
    const b = Buffer.from(F.IKE_AUTH_REQUEST);
    b[17] = 0x21;
    const d = decodeMessage(b);
    assert.equal(d.header.version, 0x21);
    assert.equal(d.payloads.length, 1);
  });
});
