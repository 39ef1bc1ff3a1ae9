/**
 * Classification of UDP datagrams on IKE sockets: non-ESP marker and NAT-keepalive (RFC 3948
 * §2.2, §2.3), plain IKE on port 500 (RFC 7296 §2.23).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { addNonEspMarker, classifyDatagram } from '../../src/net/framing.ts';
import { decodeMessage } from '../../src/ikev2/codec/message.ts';
import * as F from './codec-fixtures.ts';

describe('classifyDatagram on the NAT-T port (marker expected)', () => {
  it('strips the four-byte non-ESP marker from an IKE message without copying', () => {
    const wire = addNonEspMarker(F.IKE_SA_INIT_REQUEST);
    const d = classifyDatagram(wire, true);
    assert.equal(d.kind, 'ike');
    if (d.kind !== 'ike') return;
    assert.deepEqual(d.ike, F.IKE_SA_INIT_REQUEST);
    assert.equal(d.ike.buffer, wire.buffer);
    assert.equal(d.ike.byteOffset, wire.byteOffset + 4);
    assert.equal(decodeMessage(d.ike).payloads.length, 8);
  });

  it('recognises a single 0xFF byte as a NAT-keepalive (RFC 3948 §2.3)', () => {
    assert.deepEqual(classifyDatagram(F.hex('ff'), true), { kind: 'keepalive' });
  });

  it('treats a non-zero first word as ESP (an SPI)', () => {
    assert.deepEqual(classifyDatagram(F.hex('c1a2b3d4 00000001 00112233'), true), { kind: 'esp' });
    assert.deepEqual(classifyDatagram(F.hex('00000001 00000001'), true), { kind: 'esp' });
    assert.deepEqual(classifyDatagram(F.hex('ff000000'), true), { kind: 'esp' });
  });

  it('rejects datagrams too short for a marker or for an IKE header after it', () => {
    for (const h of ['', '00', 'ff00', '000000', 'fe']) {
      assert.equal(classifyDatagram(F.hex(h), true).kind, 'invalid', h);
    }
    const short = Buffer.concat([Buffer.alloc(4), F.IKE_AUTH_REQUEST.subarray(0, 27)]);
    const d = classifyDatagram(short, true);
    assert.equal(d.kind, 'invalid');
    if (d.kind === 'invalid') assert.match(d.reason, /27 bytes after the marker/);
  });
});

describe('classifyDatagram on port 500 (no marker)', () => {
  it('returns the datagram itself as the IKE message', () => {
    const d = classifyDatagram(F.IKE_AUTH_REQUEST, false);
    assert.equal(d.kind, 'ike');
    if (d.kind === 'ike') assert.equal(d.ike, F.IKE_AUTH_REQUEST);
  });

  it('does not strip or interpret markers and keepalives', () => {
    const wire = addNonEspMarker(F.IKE_AUTH_REQUEST);
    const d = classifyDatagram(wire, false);
    assert.equal(d.kind, 'ike');
    if (d.kind === 'ike') assert.equal(d.ike.length, wire.length);
    assert.equal(classifyDatagram(F.hex('ff'), false).kind, 'invalid');
  });

  it('rejects a datagram shorter than an IKE header', () => {
    assert.equal(classifyDatagram(F.IKE_AUTH_REQUEST.subarray(0, 27), false).kind, 'invalid');
  });
});

describe('addNonEspMarker', () => {
  it('prepends four zero bytes and leaves the input untouched', () => {
    const ike = Buffer.from(F.IKE_AUTH_REQUEST);
    const out = addNonEspMarker(ike);
    assert.equal(out.length, ike.length + 4);
    assert.deepEqual(out.subarray(0, 4), Buffer.alloc(4));
    assert.deepEqual(out.subarray(4), F.IKE_AUTH_REQUEST);
    assert.deepEqual(ike, F.IKE_AUTH_REQUEST);
  });
});
