/**
 * Malformed-input corpus for the IKEv2 codec: every input must be rejected with a ParseError
 * whose offset points at the offending field — never with another exception type.
 * Layouts and rules: RFC 7296 §3 (payload formats), §2.10 (nonce sizes), §2.6 (COOKIE),
 * §2.23 (NAT_DETECTION_*), RFC 7383 §2.5 (SKF).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ParseError } from '../../src/common/bytes.ts';
import { decodeMessage, decodePayloadChain } from '../../src/ikev2/codec/message.ts';
import { IKE_HEADER_LEN } from '../../src/ikev2/codec/header.ts';
import { Limits, PayloadType } from '../../src/ikev2/constants.ts';
import * as F from './codec-fixtures.ts';

/** Runs `fn`, requires a ParseError (optionally at `offset` and matching `message`), returns it. */
function parseError(fn: () => unknown, offset?: number, message?: RegExp): ParseError {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof ParseError, `expected ParseError, got ${String(caught)}`);
  if (offset !== undefined) assert.equal(caught.offset, offset, caught.message);
  if (message) assert.match(caught.message, message);
  return caught;
}

/** A message around `body` (a payload chain starting with `first`), with a correct Length. */
function message(first: number, body: Buffer): Buffer {
  const h = F.hex(F.SPI_I, F.SPI_R, first.toString(16).padStart(2, '0'), '20 22 08 00000000 00000000');
  const b = Buffer.concat([h, body]);
  b.writeUInt32BE(b.length, 24);
  return b;
}

/** One payload (generic header with Next Payload 0) around `bodyHex`. */
function payload(bodyHex: string, next = 0, critical = false): Buffer {
  const body = F.hex(bodyHex);
  const h = Buffer.from([next, critical ? 0x80 : 0, 0, 0]);
  h.writeUInt16BE(body.length + 4, 2);
  return Buffer.concat([h, body]);
}

/** Decodes one payload of `type` as a chain; payload body offsets start at 4. */
function decodeOne(type: number, bodyHex: string): void {
  const b = payload(bodyHex);
  decodePayloadChain(b, type, 0, b.length);
}

/** Offsets of the generic headers of the outer payload chain of a valid message. */
function payloadOffsets(b: Buffer): number[] {
  const out: number[] = [];
  let at = IKE_HEADER_LEN;
  while (at < b.length) {
    out.push(at);
    at += b.readUInt16BE(at + 2);
  }
  return out;
}

describe('truncation', () => {
  for (const [name, msg] of F.GOLDEN_MESSAGES) {
    it(`${name}: every prefix is a ParseError (with and without a matching Length field)`, () => {
      for (let n = 0; n < msg.length; n++) {
        const cut = Buffer.from(msg.subarray(0, n));
        const e = parseError(() => decodeMessage(cut));
        assert.equal(e.offset, n < IKE_HEADER_LEN ? 0 : 24, `prefix ${n}: ${e.message}`);
        if (n >= IKE_HEADER_LEN) {
          cut.writeUInt32BE(n, 24);
          const e2 = parseError(() => decodeMessage(cut));
          assert.ok(e2.offset >= IKE_HEADER_LEN && e2.offset <= n, `prefix ${n}: offset ${e2.offset}`);
        }
      }
    });
  }
  for (const [name, first, chain] of F.GOLDEN_CHAINS) {
    it(`${name}: every prefix of the plaintext chain is a ParseError`, () => {
      for (let n = 0; n < chain.length; n++) {
        const e = parseError(() => decodePayloadChain(chain, first, 0, n));
        assert.ok(e.offset >= 0 && e.offset <= n, `prefix ${n}: offset ${e.offset}`);
      }
    });
  }
});

describe('header Length field and trailing data', () => {
  const msg = F.IKE_SA_INIT_REQUEST;

  it('rejects a Length one byte too big or too small', () => {
    for (const delta of [1, -1, 1000, -msg.length]) {
      const b = Buffer.from(msg);
      b.writeUInt32BE(msg.length + delta, 24);
      parseError(() => decodeMessage(b), 24, /header length/);
    }
  });

  it('rejects a datagram with bytes beyond the Length', () => {
    parseError(() => decodeMessage(Buffer.concat([msg, F.hex('00')])), 24);
  });

  it('rejects trailing garbage covered by the Length after the last payload', () => {
    const b = Buffer.concat([msg, F.hex('deadbeef')]);
    b.writeUInt32BE(b.length, 24);
    parseError(() => decodeMessage(b), msg.length, /4 bytes after the last payload/);
  });

  it('rejects a message larger than Limits.MAX_MESSAGE', () => {
    const b = Buffer.alloc(Limits.MAX_MESSAGE + 1);
    F.IKE_AUTH_REQUEST.copy(b, 0, 0, IKE_HEADER_LEN);
    b.writeUInt32BE(b.length, 24);
    parseError(() => decodeMessage(b), 24, /exceeds/);
  });

  it('rejects a header whose Next Payload names a payload that is not there', () => {
    const b = Buffer.from(msg.subarray(0, IKE_HEADER_LEN));
    b.writeUInt32BE(IKE_HEADER_LEN, 24);
    parseError(() => decodeMessage(b), IKE_HEADER_LEN, /should start/);
  });
});

describe('generic payload header', () => {
  const msg = F.IKE_SA_INIT_REQUEST;
  const offsets = payloadOffsets(msg);

  it('rejects payload lengths 0, 1, 2 and 3 at the length field of every payload', () => {
    for (const at of offsets) {
      for (const len of [0, 1, 2, 3]) {
        const b = Buffer.from(msg);
        b.writeUInt16BE(len, at + 2);
        parseError(() => decodeMessage(b), at + 2, /< 4/);
      }
    }
  });

  it('rejects a payload length pointing past the end of the message', () => {
    for (const at of offsets) {
      const b = Buffer.from(msg);
      b.writeUInt16BE(msg.length - at + 1, at + 2);
      parseError(() => decodeMessage(b), at + 2, /exceeds/);
      b.writeUInt16BE(0xffff, at + 2);
      parseError(() => decodeMessage(b), at + 2, /exceeds/);
    }
  });

  it('rejects a payload header cut by the end of the chain', () => {
    const b = Buffer.concat([payload('', PayloadType.NONCE), F.hex('0000')]);
    parseError(() => decodePayloadChain(b, PayloadType.VENDOR, 0, b.length), 4, /truncated/);
  });

  it(`accepts ${Limits.MAX_PAYLOADS} payloads and rejects one more`, () => {
    const chain = (n: number) =>
      Buffer.concat(Array.from({ length: n }, (_, i) => payload('00 00 4000', i === n - 1 ? 0 : PayloadType.NOTIFY)));
    assert.equal(decodeMessage(message(PayloadType.NOTIFY, chain(Limits.MAX_PAYLOADS))).payloads.length, 256);
    const tooMany = message(PayloadType.NOTIFY, chain(Limits.MAX_PAYLOADS + 1));
    parseError(() => decodeMessage(tooMany), IKE_HEADER_LEN + 8 * Limits.MAX_PAYLOADS, /more than 256 payloads/);
  });

  it('rejects a window outside the buffer in decodePayloadChain', () => {
    const b = F.INFORMATIONAL_DELETE_ESP_INNER;
    parseError(() => decodePayloadChain(b, PayloadType.DELETE, 0, b.length + 1));
    parseError(() => decodePayloadChain(b, PayloadType.DELETE, 5, 4));
    parseError(() => decodePayloadChain(b, PayloadType.DELETE, -1, 4));
  });
});

describe('SA payload structure (§3.3)', () => {
  const msg = F.IKE_SA_INIT_REQUEST;
  const sa = IKE_HEADER_LEN; // SA payload header
  const p1 = sa + 4; // proposal 1 (44 bytes)
  const p2 = p1 + 44; // proposal 2
  const mutate = (at: number, bytes: number[]) => {
    const b = Buffer.from(msg);
    bytes.forEach((v, i) => (b[at + i] = v));
    return b;
  };

  it('rejects Last Substruc values that contradict the proposal position', () => {
    parseError(() => decodeMessage(mutate(p1, [0])), p2, /after the proposal marked last/);
    parseError(() => decodeMessage(mutate(p2, [2])), p2 + 44, /marked "more"/);
    parseError(() => decodeMessage(mutate(p1, [1])), p1, /Last Substruc 1/);
  });

  it('rejects proposal numbers that do not start at 1... or do not increase by one', () => {
    parseError(() => decodeMessage(mutate(p1 + 4, [0])), p1 + 4, /proposal number 0/);
    parseError(() => decodeMessage(mutate(p2 + 4, [3])), p2 + 4, /proposal number 3 after 1/);
    parseError(() => decodeMessage(mutate(p2 + 4, [1])), p2 + 4, /proposal number 1 after 1/);
  });

  it('rejects proposal lengths too small or beyond the SA payload', () => {
    parseError(() => decodeMessage(mutate(p1 + 2, [0, 7])), p1 + 2, /proposal length 7/);
    parseError(() => decodeMessage(mutate(p2 + 2, [0, 45])), p2 + 2, /exceeds the SA payload/);
  });

  it('rejects a transform count that differs from the transforms present', () => {
    // Five declared: transform 4 is marked last where "more" is expected.
    parseError(() => decodeMessage(mutate(p1 + 7, [5])), p1 + 8 + 12 + 8 + 8, /transform 4: Last Substruc 0, expected 3/);
    // Five declared and transform 4 marked "more": the proposal ends before transform 5.
    const b = mutate(p1 + 7, [5]);
    b[p1 + 8 + 12 + 8 + 8] = 3;
    parseError(() => decodeMessage(b), p1 + 44, /declares 5 transforms, contains 4/);
    // Three declared: the third transform is marked "more" where the last is expected.
    parseError(() => decodeMessage(mutate(p1 + 7, [3])), p1 + 8 + 12 + 8, /Last Substruc 3, expected 0/);
    parseError(() => decodeMessage(mutate(p1 + 7, [0])), p1 + 8, /bytes after the last transform/);
  });

  it('rejects SPI sizes that do not fit the protocol', () => {
    parseError(() => decodeMessage(mutate(p1 + 6, [4])), p1 + 6, /SPI size 4 invalid for protocol 1/);
    const esp = Buffer.from(F.IKE_AUTH_REQUEST_INNER);
    const espProposal = 19 + 10 + 8 + 25 + 12 + 40 + 20 + 4; // SA payload body in the IKE_AUTH contents
    esp[espProposal + 6] = 8;
    parseError(() => decodePayloadChain(esp, PayloadType.IDi, 0, esp.length), espProposal + 6, /SPI size 8/);
  });

  it('rejects bad transform markers and lengths', () => {
    const t1 = p1 + 8;
    parseError(() => decodeMessage(mutate(t1, [0])), t1, /transform 1: Last Substruc 0, expected 3/);
    parseError(() => decodeMessage(mutate(t1 + 2, [0, 7])), t1 + 2, /transform length 7/);
    parseError(() => decodeMessage(mutate(t1 + 2, [0, 0x40])), t1 + 2, /exceeds its proposal/);
  });

  it('rejects malformed transform attributes', () => {
    const attr = p1 + 8 + 8;
    // Key Length in TLV format (AF=0)
    parseError(() => decodeMessage(mutate(attr, [0x00, 0x0e])), attr, /TV format/);
    // TLV attribute whose length runs past the transform
    parseError(() => decodeMessage(mutate(attr, [0x00, 0x11, 0x00, 0x09])), attr + 2, /exceeds its transform/);
    // TV attribute cut by the transform end (transform length 10): the value is missing at offset 22
    parseError(() => decodeOne(PayloadType.SA, '00 00 0012 01 01 00 01 00 00 000a 01 00 000c 800e'), 22, /TV attribute value/);
  });

  it('rejects an empty SA payload and more than Limits.MAX_PROPOSALS proposals', () => {
    parseError(() => decodeOne(PayloadType.SA, ''), 4, /without proposals/);
    const proposals = Array.from({ length: Limits.MAX_PROPOSALS + 1 }, (_, i) =>
      [i === Limits.MAX_PROPOSALS ? '00' : '02', '00 0008', (i + 1).toString(16).padStart(2, '0'), '01 00 00'].join(''),
    );
    parseError(() => decodeOne(PayloadType.SA, proposals.join('')), 4 + 8 * 64, /more than 64 proposals/);
  });
});

describe('per-payload checks', () => {
  it('nonce: 16..256 bytes accepted, 15 and 257 rejected (§2.10)', () => {
    decodeOne(PayloadType.NONCE, '00'.repeat(16));
    decodeOne(PayloadType.NONCE, '00'.repeat(256));
    parseError(() => decodeOne(PayloadType.NONCE, '00'.repeat(15)), 4, /nonce length 15/);
    parseError(() => decodeOne(PayloadType.NONCE, '00'.repeat(257)), 4, /nonce length 257/);
    parseError(() => decodeOne(PayloadType.NONCE, ''), 4, /nonce length 0/);
  });

  it('KE: group 0 and a short header are rejected; empty key exchange data parses (the engine decides)', () => {
    parseError(() => decodeOne(PayloadType.KE, '0000 0000 aa'), 4, /group 0/);
    const b = payload('001f 0000');
    const [empty] = decodePayloadChain(b, PayloadType.KE, 0, b.length).payloads;
    assert.ok(empty?.type === PayloadType.KE && empty.group === 31 && empty.data.length === 0);
    parseError(() => decodeOne(PayloadType.KE, '001f 00'), 4, /truncated KE header/);
  });

  it('ID, AUTH, CP: a body shorter than the 4-byte fixed part is rejected; CERT/CERTREQ need the encoding byte', () => {
    parseError(() => decodeOne(PayloadType.IDi, '02 0000'), 4, /ID header/);
    parseError(() => decodeOne(PayloadType.IDr, ''), 4, /ID header/);
    parseError(() => decodeOne(PayloadType.AUTH, '02'), 4, /AUTH header/);
    parseError(() => decodeOne(PayloadType.CP, '01 00'), 4, /CP header/);
    parseError(() => decodeOne(PayloadType.CERT, ''), 4, /certificate encoding/);
    parseError(() => decodeOne(PayloadType.CERTREQ, ''), 4, /certificate encoding/);
    decodeOne(PayloadType.IDi, '0d 000000'); // ID_NULL with no data (RFC 7619) is fine
  });

  it('Notify: SPI size must match the protocol (§3.10)', () => {
    decodeOne(PayloadType.NOTIFY, '03 04 4009 c1a2b3d4'); // REKEY_SA for ESP
    decodeOne(PayloadType.NOTIFY, '01 00 4000'); // protocol ignored when there is no SPI
    parseError(() => decodeOne(PayloadType.NOTIFY, '00 04 4009 c1a2b3d4'), 5, /SPI size 4 invalid for protocol 0/);
    parseError(() => decodeOne(PayloadType.NOTIFY, '01 08 4000 0011223344556677'), 5, /protocol 1/);
    parseError(() => decodeOne(PayloadType.NOTIFY, '03 08 4009 0011223344556677'), 5, /SPI size 8/);
    parseError(() => decodeOne(PayloadType.NOTIFY, '03 04 4009 c1a2'), 8, /truncated notify SPI/);
    parseError(() => decodeOne(PayloadType.NOTIFY, '00 00 40'), 4, /Notify header/);
  });

  it('Notify: data lengths of NAT_DETECTION_*, COOKIE, INVALID_KE_PAYLOAD are enforced', () => {
    parseError(() => decodeOne(PayloadType.NOTIFY, '00 00 4004' + '00'.repeat(19)), 8, /data length 19/);
    parseError(() => decodeOne(PayloadType.NOTIFY, '00 00 4005' + '00'.repeat(21)), 8);
    parseError(() => decodeOne(PayloadType.NOTIFY, '00 00 4006'), 8, /data length 0/);
    decodeOne(PayloadType.NOTIFY, '00 00 4006' + '00'.repeat(64));
    parseError(() => decodeOne(PayloadType.NOTIFY, '00 00 4006' + '00'.repeat(65)), 8);
    parseError(() => decodeOne(PayloadType.NOTIFY, '00 00 0011 00'), 8);
    decodeOne(PayloadType.NOTIFY, '00 00 0011 001f');
    parseError(() => decodeOne(PayloadType.NOTIFY, '00 00 402f 000200'), 8);
  });

  it('Delete: SPI size per protocol, count × size = data (§3.11)', () => {
    parseError(() => decodeOne(PayloadType.DELETE, '03 08 0001 0011223344556677'), 5, /SPI size 8/);
    parseError(() => decodeOne(PayloadType.DELETE, '01 04 0001 c1a2b3d4'), 5, /IKE SA delete with SPI size 4/);
    parseError(() => decodeOne(PayloadType.DELETE, '01 00 0001'), 6, /IKE SA delete with 1 SPIs/);
    parseError(() => decodeOne(PayloadType.DELETE, '03 04 0002 c1a2b3d4'), 6, /2 SPIs of 4 bytes but 4 bytes/);
    parseError(() => decodeOne(PayloadType.DELETE, '03 04 0001 c1a2b3d4 00'), 6);
    parseError(() => decodeOne(PayloadType.DELETE, '03 04 ffff'), 6, /65535 SPIs/);
    parseError(() => decodeOne(PayloadType.DELETE, '07 04 0001 c1a2b3d4'), 4, /unknown protocol 7/);
  });

  it('TS: selector lengths 16 (IPv4) and 40 (IPv6), counts and bounds (§3.13.1)', () => {
    const v4 = '07 00 0010 0000 ffff 0a000000 0a0000ff';
    decodeOne(PayloadType.TSi, '01 000000' + v4);
    parseError(() => decodeOne(PayloadType.TSi, '01 000000 07 00 0028 0000 ffff' + '00'.repeat(32)), 10, /length 40 for TS type 7/);
    parseError(() => decodeOne(PayloadType.TSr, '01 000000 08 00 0010 0000 ffff 0a000000 0a0000ff'), 10, /length 16 for TS type 8/);
    parseError(() => decodeOne(PayloadType.TSi, '01 000000 0a 00 0003'), 10, /selector length 3/);
    parseError(() => decodeOne(PayloadType.TSi, '01 000000 07 00 0010 0000 ffff 0a000000'), 10, /exceeds the TS payload/);
    parseError(() => decodeOne(PayloadType.TSi, '02 000000' + v4), 24, /declares 2 selectors, contains 1/);
    parseError(() => decodeOne(PayloadType.TSi, '01 000000' + v4 + v4), 24, /after the last traffic selector/);
    parseError(() => decodeOne(PayloadType.TSi, '41 000000' + v4), 4, /65 traffic selectors/);
    parseError(() => decodeOne(PayloadType.TSi, '01 0000'), 4, /TS header/);
  });

  it('CP: an attribute length past the payload end is rejected', () => {
    parseError(() => decodeOne(PayloadType.CP, '02 000000 0001 0005 0a000102'), 10, /exceeds the CP payload/);
    parseError(() => decodeOne(PayloadType.CP, '02 000000 0001 00'), 8, /attribute header/);
  });

  it('EAP: the EAP Length must equal the payload data (§3.16)', () => {
    decodeOne(PayloadType.EAP, '03 2a 0004'); // Success
    parseError(() => decodeOne(PayloadType.EAP, '01 2a 0006 01'), 6, /EAP length 6/);
    parseError(() => decodeOne(PayloadType.EAP, '01 2a 00'), 4, /minimum 4/);
  });
});

describe('SK and SKF placement and fields', () => {
  it('rejects an SK payload that is not the last payload', () => {
    const b = Buffer.from(F.IKE_AUTH_REQUEST);
    b.writeUInt16BE(0x40, IKE_HEADER_LEN + 2); // SK covers 64 of its 68 bytes
    parseError(() => decodeMessage(b), IKE_HEADER_LEN + 64, /not the last payload/);
  });

  it('rejects SK or SKF inside decrypted contents', () => {
    const inner = Buffer.concat([payload('00 00 4000', PayloadType.SK), payload('00112233')]);
    parseError(() => decodePayloadChain(inner, PayloadType.NOTIFY, 0, inner.length), 8, /inside an encrypted payload/);
    const skf = payload('0001 0001 00112233');
    parseError(() => decodePayloadChain(skf, PayloadType.SKF, 0, skf.length), 0, /inside an encrypted payload/);
  });

  it('rejects fragment number 0, a number above the total and a short SKF header', () => {
    const f = (body: string) => message(PayloadType.SKF, payload(body, PayloadType.IDi));
    decodeMessage(f('0003 0003 00112233'));
    parseError(() => decodeMessage(f('0000 0003 00112233')), 32, /fragment number 0/);
    parseError(() => decodeMessage(f('0004 0003 00112233')), 32, /fragment 4 of 3/);
    parseError(() => decodeMessage(f('0001 00')), 32, /SKF header/);
  });
});

describe('unknown payload types (RFC 7296 §2.5)', () => {
  const nonce = '00'.repeat(16);

  it('skips a non-critical unknown payload and keeps it in `unknown`', () => {
    const body = Buffer.concat([
      payload(nonce, 200), // Nonce, next: type 200
      payload('cafe', PayloadType.NOTIFY), // type 200, C=0
      payload('00 00 4000'), // N(INITIAL_CONTACT)
    ]);
    const d = decodeMessage(message(PayloadType.NONCE, body));
    assert.deepEqual(
      d.payloads.map((p) => p.type),
      [PayloadType.NONCE, PayloadType.NOTIFY],
    );
    assert.deepEqual(d.unknown, [{ type: 200, critical: false, data: F.hex('cafe') }]);
    assert.deepEqual(d.unsupportedCritical, []);
  });

  it('reports critical unknown payloads and still decodes the rest of the chain', () => {
    const body = Buffer.concat([
      payload('aa', 51, true), // type 49 (GSPM, not implemented), C=1, next: GSA (51)
      payload('bb', PayloadType.NONCE, true), // type 51, C=1
      payload(nonce, 1), // Nonce, next: reserved type 1
      payload('', PayloadType.NOTIFY, false), // type 1, C=0
      payload('00 00 4000'),
    ]);
    const d = decodeMessage(message(49, body));
    assert.deepEqual(d.unsupportedCritical, [49, 51]);
    assert.deepEqual(d.unknown, [{ type: 1, critical: false, data: Buffer.alloc(0) }]);
    assert.deepEqual(
      d.payloads.map((p) => p.type),
      [PayloadType.NONCE, PayloadType.NOTIFY],
    );
  });

  it('handles unknown payloads the same way inside decrypted contents', () => {
    const b = Buffer.concat([payload('01', PayloadType.NOTIFY, true), payload('00 00 4000')]);
    const c = decodePayloadChain(b, 250, 0, b.length);
    assert.deepEqual(c.unsupportedCritical, [250]);
    assert.equal(c.payloads.length, 1);
  });

  it('still checks the generic header of unknown payloads', () => {
    const b = Buffer.concat([F.hex('00 00 0002'), payload('00')]);
    parseError(() => decodeMessage(message(200, b)), IKE_HEADER_LEN + 2, /PAYLOAD_200 payload length 2/);
  });
});
