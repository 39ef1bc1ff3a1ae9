/**
 * src/net/punt.ts against hand-written frames laid out as VPP's punt socket carries them
 * (descriptor: u32 sw_if_index, u32 action, little-endian; then Ethernet, IP, UDP, payload), a
 * frame captured from VPP 26.10, every malformed case the parser drops, the packets the builder
 * writes (golden bytes with checksums computed independently, re-verified here by summing), and
 * properties: random or mutated bytes never throw; build → parse returns what was built.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { buildPuntFrame, parsePuntFrame, PUNT_MAX_IP_PACKET, type PuntParseResult } from '../../src/net/punt.ts';

const hex = (s: string): Buffer => Buffer.from(s.replace(/[\s|]/g, ''), 'hex');

/** RFC 1071 sum, written here independently of the code under test: 0 over a correct packet. */
function rfc1071(...parts: Buffer[]): number {
  const b = Buffer.concat(parts);
  let s = 0;
  for (let i = 0; i < b.length; i += 2) s += (b[i]! << 8) | (i + 1 < b.length ? b[i + 1]! : 0);
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return ~s & 0xffff;
}

function okPacket(r: PuntParseResult) {
  assert.ok(r.ok, r.ok ? '' : `dropped: ${r.reason}`);
  return r.packet;
}

function dropped(r: PuntParseResult, re: RegExp): void {
  assert.ok(!r.ok, 'dropped');
  assert.match(r.reason, re);
}

const DESC = '01000000 00000000'; // sw_if_index 1, action 0 (little-endian)
const ETH4 = '02fe55a651a2 4ee614b7b872 0800';
const ETH6 = '02fe55a651a2 4ee614b7b872 86dd';

/** IPv4 frame: header fields as given (checksum not checked by the parser), then UDP. */
function v4(o: { vihl?: string; total?: number; flags?: string; proto?: string; udp?: string; payload?: string; extra?: string } = {}): Buffer {
  const payload = o.payload ?? '68656c6c6f2d696b65'; // "hello-ike"
  const udp = o.udp ?? `01f4 01f4 ${(8 + payload.length / 2).toString(16).padStart(4, '0')} 0000`;
  const total = o.total ?? 20 + (udp.replace(/\s/g, '').length + payload.length) / 2;
  return hex(
    `${DESC} ${ETH4} ${o.vihl ?? '45'} 00 ${total.toString(16).padStart(4, '0')} 0000 ${o.flags ?? '0000'} 40 ${o.proto ?? '11'} 0000 c0000201 c0000202 ${udp} ${payload} ${o.extra ?? ''}`,
  );
}

/** IPv6 frame: 2001:db8::1 → 2001:db8::2, next header and extension bytes as given. */
function v6(o: { plen?: number; nh?: string; ext?: string; udp?: string; payload?: string } = {}): Buffer {
  const payload = o.payload ?? '696b652d7636'; // "ike-v6"
  const udp = o.udp ?? `01f4 01f4 ${(8 + payload.length / 2).toString(16).padStart(4, '0')} 0000`;
  const ext = o.ext ?? '';
  const plen = o.plen ?? (ext.replace(/\s/g, '').length + udp.replace(/\s/g, '').length + payload.length) / 2;
  return hex(
    `${DESC} ${ETH6} 60000000 ${plen.toString(16).padStart(4, '0')} ${o.nh ?? '11'} 40 20010db8000000000000000000000001 20010db8000000000000000000000002 ${ext} ${udp} ${payload}`,
  );
}

describe('parsePuntFrame', () => {
  test('a frame captured from VPP 26.10 (UDP/500 from 192.0.2.1, partial UDP checksum)', () => {
    const frame = hex(
      '01000000 00000000 | 02fe55a651a2 4ee614b7b872 0800 | 4500 0025 2b69 4000 4011 8b5b c0000201 c0000202 | 01f4 01f4 0011 8426 | 68656c6c6f2d696b65',
    );
    const p = okPacket(parsePuntFrame(frame));
    assert.deepEqual(
      { ...p, payload: p.payload.toString() },
      { swIfIndex: 1, action: 0, family: 4, src: '192.0.2.1', dst: '192.0.2.2', srcPort: 500, dstPort: 500, payload: 'hello-ike' },
    );
    assert.equal(p.payload.buffer, frame.buffer, 'the payload is a view, not a copy');
  });

  test('IPv6, sw_if_index and action in little-endian, RFC 5952 addresses', () => {
    const f = v6();
    f.writeUInt32LE(0x01020304, 0);
    f.writeUInt32LE(7, 4);
    const p = okPacket(parsePuntFrame(f));
    assert.equal(p.swIfIndex, 0x01020304);
    assert.equal(p.action, 7);
    assert.equal(p.family, 6);
    assert.equal(p.src, '2001:db8::1');
    assert.equal(p.dst, '2001:db8::2');
    assert.equal(p.payload.toString(), 'ike-v6');
  });

  test('UDP/4500 keeps the non-ESP marker in the payload', () => {
    const p = okPacket(parsePuntFrame(v4({ udp: '1194 1194 0010 0000', payload: '000000006b65796b' })));
    assert.equal(p.srcPort, 4500);
    assert.deepEqual([...p.payload.subarray(0, 4)], [0, 0, 0, 0]);
  });

  test('IPv4 options, Ethernet padding after the packet, 802.1Q tags, IPv6 extension headers, link = ip', () => {
    // IHL 6: one 4-byte option (NOP x4)
    const withOpt = hex(`${DESC} ${ETH4} 46 00 0021 0000 0000 40 11 0000 c0000201 c0000202 01010101 01f4 01f4 0009 0000 41`);
    assert.equal(okPacket(parsePuntFrame(withOpt)).payload.toString(), 'A');
    // 10 bytes of padding after a 29-byte packet
    assert.equal(okPacket(parsePuntFrame(Buffer.concat([v4({ payload: '41' }), Buffer.alloc(10)]))).payload.toString(), 'A');
    // one VLAN tag and a QinQ pair
    const tagged = hex(`${DESC} 02fe55a651a2 4ee614b7b872 8100 0064 0800 4500 001d 0000 0000 4011 0000 c0000201 c0000202 01f4 01f4 0009 0000 41`);
    assert.equal(okPacket(parsePuntFrame(tagged)).src, '192.0.2.1');
    const qinq = hex(`${DESC} 02fe55a651a2 4ee614b7b872 88a8 0064 8100 00c8 86dd 60000000 0009 11 40 ${'00'.repeat(15)}01 ${'00'.repeat(15)}02 01f4 01f4 0009 0000 41`);
    assert.equal(okPacket(parsePuntFrame(qinq)).dst, '::2');
    // hop-by-hop (8 bytes, PadN) then destination options (8 bytes) then UDP
    const ext = okPacket(parsePuntFrame(v6({ nh: '00', ext: '3c00 0104 00000000 1100 0104 00000000' })));
    assert.equal(ext.payload.toString(), 'ike-v6');
    // no L2 header
    const ip = v4().subarray(8 + 14);
    const bare = Buffer.concat([hex(DESC), ip]);
    assert.equal(okPacket(parsePuntFrame(bare, { link: 'ip' })).payload.toString(), 'hello-ike');
    assert.equal(okPacket(parsePuntFrame(Buffer.concat([hex(DESC), v6().subarray(22)]), { link: 'ip' })).family, 6);
  });

  test('truncation anywhere is dropped with a reason', () => {
    dropped(parsePuntFrame(Buffer.alloc(0)), /truncated: 0 bytes, shorter than the 8-byte punt descriptor/);
    dropped(parsePuntFrame(hex('01000000 000000')), /truncated.*descriptor/);
    dropped(parsePuntFrame(hex(`${DESC} 02fe55a651a2`)), /shorter than an Ethernet header/);
    dropped(parsePuntFrame(hex(`${DESC} 02fe55a651a2 4ee614b7b872 8100 00`)), /VLAN tag cut short/);
    dropped(parsePuntFrame(v4().subarray(0, 8 + 14 + 19)), /shorter than an IPv4 header/);
    dropped(parsePuntFrame(v4().subarray(0, 8 + 14 + 20 + 8 + 3)), /truncated: IPv4 total length 37, 31 bytes present/);
    dropped(parsePuntFrame(v4({ vihl: '4f' })), /truncated: IPv4 header of 60 bytes/);
    dropped(parsePuntFrame(v6().subarray(0, 8 + 14 + 39)), /shorter than an IPv6 header/);
    dropped(parsePuntFrame(v6().subarray(0, v6().length - 1)), /truncated: IPv6 payload length 14, 13 bytes present/);
    dropped(parsePuntFrame(v4({ udp: '01f4 01f4', payload: '' })), /4 bytes of IP payload, shorter than a UDP header/);
    dropped(parsePuntFrame(v6({ nh: '00', ext: '11', udp: '', payload: '' })), /extension header 0 cut short/);
    dropped(parsePuntFrame(v6({ nh: '00', ext: '1102 0000 00000000', udp: '', payload: '' })), /extension header 0 of 24 bytes overruns/);
    dropped(parsePuntFrame(hex(DESC), { link: 'ip' }), /no IP header/);
  });

  test('wrong IP header length and total length', () => {
    dropped(parsePuntFrame(v4({ vihl: '44' })), /wrong IPv4 header length 16/);
    dropped(parsePuntFrame(v4({ total: 19 })), /wrong IPv4 total length 19/);
    dropped(parsePuntFrame(v6({ plen: 0 })), /wrong IPv6 payload length 0/);
    dropped(parsePuntFrame(v4({ vihl: '65' })), /ethertype says IPv4 but the IP version is 6/);
    dropped(parsePuntFrame(Buffer.concat([hex(DESC), hex('5500')]), { link: 'ip' }), /not IP: version 5/);
  });

  test('wrong UDP length', () => {
    dropped(parsePuntFrame(v4({ udp: '01f4 01f4 0007 0000' })), /wrong UDP length 7 \(at least 8\)/);
    dropped(parsePuntFrame(v4({ udp: '01f4 01f4 0100 0000' })), /wrong UDP length 256: the IP packet carries 17 bytes of UDP/);
    dropped(parsePuntFrame(v4({ udp: '01f4 01f4 0009 0000' })), /wrong UDP length 9: the IP packet carries 17/);
    dropped(parsePuntFrame(v6({ udp: '01f4 01f4 0020 0000' })), /wrong UDP length 32/);
  });

  test('not UDP, not IP', () => {
    dropped(parsePuntFrame(v4({ proto: '06' })), /not UDP: IP protocol 6/);
    dropped(parsePuntFrame(v4({ proto: '32' })), /not UDP: IP protocol 50/);
    dropped(parsePuntFrame(v6({ nh: '3a' })), /not UDP: IPv6 next header 58/);
    dropped(parsePuntFrame(v6({ nh: '3b' })), /no next header/);
    dropped(parsePuntFrame(hex(`${DESC} 02fe55a651a2 4ee614b7b872 0806 0001 0800 0604 0001`)), /not IP: ethertype 0x0806/);
    const deep = Array.from({ length: 8 }, () => '3c00 0104 00000000').join(' ');
    dropped(parsePuntFrame(v6({ nh: '3c', ext: deep })), /too many IPv6 extension headers/);
  });

  test('fragments are dropped (VPP reassembles before punting)', () => {
    dropped(parsePuntFrame(v4({ flags: '2000' })), /IPv4 fragment \(offset 0, more fragments\)/);
    dropped(parsePuntFrame(v4({ flags: '00b9' })), /IPv4 fragment \(offset 1480\)/);
    assert.ok(parsePuntFrame(v4({ flags: '4000' })).ok, 'DF alone is not a fragment');
    dropped(parsePuntFrame(v6({ nh: '2c', ext: '11 00 0001 12345678' })), /IPv6 fragment \(offset 0, more fragments\)/);
    dropped(parsePuntFrame(v6({ nh: '2c', ext: '11 00 05c8 12345678', udp: '', payload: '' })), /IPv6 fragment \(offset 1480\)/);
    dropped(parsePuntFrame(v6({ nh: '2c', ext: '1100', udp: '', payload: '' })), /fragment header cut short/);
  });

  test('an unknown descriptor version is dropped', () => {
    dropped(parsePuntFrame(v4(), { headerVersion: 2 }), /unknown punt descriptor version 2/);
    dropped(parsePuntFrame(v4(), { headerVersion: 0 }), /unknown punt descriptor version 0/);
  });
});

describe('buildPuntFrame', () => {
  test('IPv4 golden bytes: descriptor (action 1 = IPv4 routed), header checksum, UDP checksum', () => {
    const r = buildPuntFrame({ swIfIndex: 1, src: '192.0.2.2', dst: '192.0.2.1', srcPort: 500, dstPort: 500, payload: Buffer.from('answer') });
    assert.ok(r.ok);
    const golden = hex(
      // sw_if_index 1, action 1 (little-endian)
      '01000000 01000000' +
        // v4 IHL 5, TOS 0, total 34, id 0, no flags, TTL 64, UDP, checksum, 192.0.2.2 → 192.0.2.1
        '4500 0022 0000 0000 4011 f6c7 c0000202 c0000201' +
        // 500 → 500, length 14, checksum
        '01f4 01f4 000e 3d8e' +
        '616e73776572',
    );
    assert.equal(r.frame.toString('hex'), golden.toString('hex'));
    const ip = r.frame.subarray(8);
    assert.equal(rfc1071(ip.subarray(0, 20)), 0, 'IPv4 header checksum verifies');
    const pseudo = Buffer.concat([ip.subarray(12, 20), hex('0011 000e')]);
    assert.equal(rfc1071(pseudo, ip.subarray(20)), 0, 'UDP checksum verifies over the pseudo-header');
  });

  test('IPv6 golden bytes: action 2, no header checksum, mandatory UDP checksum', () => {
    const r = buildPuntFrame({
      swIfIndex: 7,
      src: '2001:db8::2',
      dst: '2001:db8:0:0::1',
      srcPort: 4500,
      dstPort: 4500,
      payload: Buffer.concat([Buffer.alloc(4), Buffer.from('answer6')]),
    });
    assert.ok(r.ok);
    const golden = hex(
      '07000000 02000000' +
        // version 6, class 0, flow 0; payload length 19; next header UDP; hop limit 64
        '60000000 0013 11 40' +
        '20010db8000000000000000000000002 20010db8000000000000000000000001' +
        '1194 1194 0013 10d3' +
        '00000000 616e7377657236',
    );
    assert.equal(r.frame.toString('hex'), golden.toString('hex'));
    const ip = r.frame.subarray(8);
    const pseudo = Buffer.concat([ip.subarray(8, 40), hex('00000013 00000011')]);
    assert.equal(rfc1071(pseudo, ip.subarray(40)), 0, 'UDP checksum verifies over the IPv6 pseudo-header');
  });

  test('TTL and IPv4 identification; DF is never set', () => {
    const r = buildPuntFrame({ swIfIndex: 0, src: '198.51.100.1', dst: '203.0.113.9', srcPort: 1, dstPort: 2, payload: Buffer.alloc(0), ttl: 9, ipId: 0xbeef });
    assert.ok(r.ok);
    const ip = r.frame.subarray(8);
    assert.equal(ip.readUInt16BE(4), 0xbeef);
    assert.equal(ip.readUInt16BE(6), 0, 'no DF, no fragment offset');
    assert.equal(ip[8], 9);
    assert.equal(rfc1071(ip.subarray(0, 20)), 0);
  });

  test('a UDP checksum that computes to zero is sent as 0xffff', () => {
    const base = { swIfIndex: 1, src: '192.0.2.2', dst: '192.0.2.1', srcPort: 500, dstPort: 500 };
    const first = buildPuntFrame({ ...base, payload: Buffer.alloc(2) });
    assert.ok(first.ok);
    // Adding the checksum value as a payload word makes the sum all ones: the computed checksum is 0.
    const word = Buffer.alloc(2);
    word.writeUInt16BE(first.frame.readUInt16BE(8 + 20 + 6));
    const r = buildPuntFrame({ ...base, payload: word });
    assert.ok(r.ok);
    assert.equal(r.frame.readUInt16BE(8 + 20 + 6), 0xffff);
    const ip = r.frame.subarray(8);
    assert.equal(rfc1071(Buffer.concat([ip.subarray(12, 20), hex('0011 000a')]), ip.subarray(20)), 0);
  });

  test('refuses IP packets above 2048 bytes (one VPP buffer), bad addresses, ports and fields', () => {
    const base = { swIfIndex: 1, src: '192.0.2.2', dst: '192.0.2.1', srcPort: 500, dstPort: 500 };
    assert.equal(PUNT_MAX_IP_PACKET, 2048);
    const at = buildPuntFrame({ ...base, payload: Buffer.alloc(2048 - 28) });
    assert.ok(at.ok && at.frame.length === 8 + 2048, 'exactly 2048 bytes of IPv4 is fine');
    const over = buildPuntFrame({ ...base, payload: Buffer.alloc(2048 - 27) });
    assert.ok(!over.ok && /IP packet of 2049 bytes exceeds the 2048 bytes/.test(over.reason), JSON.stringify(over));
    const v6at = buildPuntFrame({ ...base, src: '2001:db8::2', dst: '2001:db8::1', payload: Buffer.alloc(2048 - 48) });
    assert.ok(v6at.ok);
    const v6over = buildPuntFrame({ ...base, src: '2001:db8::2', dst: '2001:db8::1', payload: Buffer.alloc(2048 - 47) });
    assert.ok(!v6over.ok && /2049 bytes/.test(v6over.reason));
    const raised = buildPuntFrame({ ...base, payload: Buffer.alloc(3000), maxIpBytes: 4096 });
    assert.ok(raised.ok, 'a larger limit (buffers data-size) is honoured');
    const bad: [Partial<Parameters<typeof buildPuntFrame>[0]>, RegExp][] = [
      [{ src: '192.0.2.300' }, /source 192\.0\.2\.300 is not an IP address/],
      [{ dst: 'host' }, /destination host is not an IP address/],
      [{ dst: '2001:db8::1' }, /different families/],
      [{ srcPort: 65536 }, /ports/],
      [{ dstPort: -1 }, /ports/],
      [{ swIfIndex: 2 ** 32 }, /sw_if_index/],
      [{ ttl: 0 }, /TTL 0/],
      [{ ipId: 70000 }, /identification/],
    ];
    for (const [o, re] of bad) {
      const r = buildPuntFrame({ ...base, payload: Buffer.from('x'), ...o });
      assert.ok(!r.ok, JSON.stringify(o));
      assert.match(r.reason, re);
    }
  });
});

describe('properties', () => {
  test('random bytes never throw, with either link type and any descriptor version', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), fc.constantFrom<'ethernet' | 'ip'>('ethernet', 'ip'), fc.integer({ min: 0, max: 3 }), (bytes, link, headerVersion) => {
        const r = parsePuntFrame(bytes, { link, headerVersion });
        assert.equal(typeof r.ok, 'boolean');
        if (!r.ok) assert.ok(r.reason.length > 0);
      }),
      { numRuns: 3000 },
    );
  });

  test('mutated valid frames never throw', () => {
    const seeds = [v4(), v6(), v6({ nh: '00', ext: '1100 0104 00000000' })];
    fc.assert(
      fc.property(fc.constantFrom(...seeds), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 6 }), fc.nat(), (seed, flips, cut) => {
        const f = Buffer.from(seed);
        for (const [i, v] of flips) f[i % f.length] = v;
        parsePuntFrame(f.subarray(0, f.length - (cut % 8)));
      }),
      { numRuns: 3000 },
    );
  });

  test('build → (VPP adds Ethernet, action 0) → parse returns what was built, checksums verify', () => {
    const v4addr = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((a) => a.join('.'));
    const v6addr = fc.uint8Array({ minLength: 16, maxLength: 16 }).map((b) => Array.from({ length: 8 }, (_, i) => ((b[2 * i]! << 8) | b[2 * i + 1]!).toString(16)).join(':'));
    const pair = fc.oneof(fc.tuple(v4addr, v4addr), fc.tuple(v6addr, v6addr));
    fc.assert(
      fc.property(pair, fc.nat(0xffff), fc.nat(0xffff), fc.uint8Array({ maxLength: 1900 }), fc.nat(), ([src, dst], sp, dp, payload, ifIndex) => {
        const r = buildPuntFrame({ swIfIndex: ifIndex, src, dst, srcPort: sp, dstPort: dp, payload });
        assert.ok(r.ok, r.ok ? '' : r.reason);
        const ip = r.frame.subarray(8);
        const is4 = !src.includes(':');
        const ulen = 8 + payload.length;
        if (is4) assert.equal(rfc1071(ip.subarray(0, 20)), 0);
        const pseudo = is4
          ? Buffer.concat([ip.subarray(12, 20), Buffer.from([0, 17, ulen >> 8, ulen & 0xff])])
          : Buffer.concat([ip.subarray(8, 40), Buffer.from([0, 0, ulen >> 8, ulen & 0xff, 0, 0, 0, 17])]);
        assert.equal(rfc1071(pseudo, ip.subarray(is4 ? 20 : 40)), 0);
        const punted = Buffer.concat([Buffer.alloc(8), hex(is4 ? ETH4 : ETH6), ip]);
        punted.writeUInt32LE(ifIndex >>> 0, 0);
        const p = okPacket(parsePuntFrame(punted));
        assert.equal(p.swIfIndex, ifIndex >>> 0);
        assert.equal(p.family, is4 ? 4 : 6);
        assert.equal(p.srcPort, sp);
        assert.equal(p.dstPort, dp);
        assert.ok(p.payload.equals(payload));
        const back = buildPuntFrame({ swIfIndex: 0, src: p.src, dst: p.dst, srcPort: sp, dstPort: dp, payload });
        assert.ok(back.ok && back.frame.subarray(8).equals(ip), 'the parsed addresses are the built ones');
      }),
      { numRuns: 500 },
    );
  });
});
