/**
 * Traffic selector sets (src/ikev2/sa/ts.ts): narrowing what a peer proposes to what the
 * configuration allows (RFC 7296 §2.9: the responder answers with a subset of what was proposed,
 * here every non-empty intersection), the initiator's subset check of the answer, and the
 * conversions between the wire, config, dataplane and text forms.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { TsType } from '../../src/ikev2/constants.ts';
import type { TrafficSelector } from '../../src/ikev2/codec/types.ts';
import { bigIntToBytes, bytesToBigInt, ipToBytes } from '../../src/common/addr.ts';
import {
  intersect,
  isSubset,
  narrow,
  narrowInstallable,
  selForHost,
  selFromSpec,
  selFromWire,
  selToRange,
  selToString,
  selToWire,
  type Sel,
} from '../../src/ikev2/sa/ts.ts';

const V4_MAX = (1n << 32n) - 1n;
const V6_MAX = (1n << 128n) - 1n;
const TCP = 6;
const UDP = 17;
const ANY_PORT: [number, number] = [0, 65535];
const OPAQUE: [number, number] = [65535, 0];

function addr(text: string): bigint {
  const b = ipToBytes(text);
  if (!b) throw new Error(`not an address: ${text}`);
  return bytesToBigInt(b);
}

/** A selector from start..end (inclusive), any protocol and port unless given. */
function S(start: string, end = start, protocol = 0, [startPort, endPort]: [number, number] = ANY_PORT): Sel {
  const family = start.includes(':') ? 6 : 4;
  return { family, start: addr(start), end: addr(end), protocol, startPort, endPort };
}

const show = (l: Sel[]): string => `[${l.map(selToString).join(', ')}]`;

test('selFromSpec, selForHost: config and host forms become numeric bounds', () => {
  assert.deepEqual(selFromSpec({ family: 4, start: '10.0.0.0', end: '10.0.0.255', protocol: TCP, startPort: 80, endPort: 443 }), {
    family: 4,
    start: 0x0a000000n,
    end: 0x0a0000ffn,
    protocol: TCP,
    startPort: 80,
    endPort: 443,
  });
  assert.deepEqual(selFromSpec({ family: 6, start: '::', end: 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', protocol: 0, startPort: 0, endPort: 65535 }), {
    family: 6,
    start: 0n,
    end: V6_MAX,
    protocol: 0,
    startPort: 0,
    endPort: 65535,
  });
  // `dynamic`: the one address, every protocol and port
  assert.deepEqual(selForHost('192.0.2.7'), { family: 4, start: 0xc0000207n, end: 0xc0000207n, protocol: 0, startPort: 0, endPort: 65535 });
  assert.deepEqual(selForHost('2001:db8::1'), { family: 6, start: (0x20010db8n << 96n) | 1n, end: (0x20010db8n << 96n) | 1n, protocol: 0, startPort: 0, endPort: 65535 });
  // an IPv4-mapped IPv6 address stays IPv6 (16 bytes on the wire)
  assert.equal(selForHost('::ffff:192.0.2.7').family, 6);
});

test('wire form: IPv4 and IPv6 ranges round-trip; other selector types and odd lengths are dropped', () => {
  for (const s of [
    S('10.0.0.0', '10.0.0.255', TCP, [80, 80]),
    S('0.0.0.0', '255.255.255.255'),
    S('192.0.2.1'),
    S('2001:db8::', '2001:db8::ffff', UDP, [500, 4500]),
    S('::', 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff'),
    S('10.0.0.0', '10.0.0.255', 0, OPAQUE),
  ]) {
    const w = selToWire(s);
    assert.equal(w.tsType, s.family === 4 ? TsType.TS_IPV4_ADDR_RANGE : TsType.TS_IPV6_ADDR_RANGE);
    assert.equal(w.start.length, s.family === 4 ? 4 : 16);
    assert.equal(w.end.length, s.family === 4 ? 4 : 16);
    assert.deepEqual(selFromWire(w), s, selToString(s));
  }
  assert.deepEqual(selToWire(S('10.1.2.3', '10.1.2.9', TCP, [1, 2])), {
    tsType: TsType.TS_IPV4_ADDR_RANGE,
    ipProto: TCP,
    startPort: 1,
    endPort: 2,
    start: Buffer.from([10, 1, 2, 3]),
    end: Buffer.from([10, 1, 2, 9]),
  });
  const base: TrafficSelector = { tsType: TsType.TS_IPV4_ADDR_RANGE, ipProto: 0, startPort: 0, endPort: 65535, start: Buffer.alloc(4), end: Buffer.alloc(4, 0xff) };
  assert.ok(selFromWire(base));
  assert.equal(selFromWire({ ...base, tsType: TsType.TS_FC_ADDR_RANGE }), undefined);
  assert.equal(selFromWire({ ...base, tsType: TsType.TS_SECLABEL }), undefined);
  assert.equal(selFromWire({ ...base, start: Buffer.alloc(16) }), undefined, 'IPv4 type with a 16-byte start');
  assert.equal(selFromWire({ ...base, end: Buffer.alloc(3) }), undefined, 'IPv4 type with a 3-byte end');
  assert.equal(selFromWire({ ...base, tsType: TsType.TS_IPV6_ADDR_RANGE }), undefined, 'IPv6 type with 4-byte addresses');
});

test('selToRange gives the dataplane canonical address text', () => {
  assert.deepEqual(selToRange(S('2001:db8::', '2001:db8::ffff', UDP, [53, 53])), {
    family: 6,
    start: '2001:db8::',
    end: '2001:db8::ffff',
    protocol: UDP,
    startPort: 53,
    endPort: 53,
  });
  assert.deepEqual(selToRange({ family: 4, start: 0n, end: V4_MAX, protocol: 0, startPort: 0, endPort: 65535 }), {
    family: 4,
    start: '0.0.0.0',
    end: '255.255.255.255',
    protocol: 0,
    startPort: 0,
    endPort: 65535,
  });
});

test('selToString: prefixes where the range is one, ranges otherwise, protocol and ports when restricted', () => {
  const cases: [Sel, string][] = [
    [S('10.0.0.0', '10.0.0.255'), '10.0.0.0/24'],
    [S('0.0.0.0', '255.255.255.255'), '0.0.0.0/0'],
    [S('192.0.2.1'), '192.0.2.1/32'],
    [S('10.0.0.2', '10.0.0.3'), '10.0.0.2/31'],
    // two addresses, but not on a /31 boundary
    [S('10.0.0.1', '10.0.0.2'), '10.0.0.1-10.0.0.2'],
    [S('10.0.0.1', '10.0.0.9'), '10.0.0.1-10.0.0.9'],
    [S('::', 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff'), '::/0'],
    [S('2001:db8::1'), '2001:db8::1/128'],
    [S('2001:db8::', '2001:db8::ffff'), '2001:db8::/112'],
    [S('10.0.0.0', '10.0.0.255', TCP), '10.0.0.0/24[tcp]'],
    [S('10.0.0.0', '10.0.0.255', TCP, [80, 80]), '10.0.0.0/24[tcp/80]'],
    [S('10.0.0.0', '10.0.0.255', UDP, [1000, 2000]), '10.0.0.0/24[udp/1000-2000]'],
    [S('10.0.0.0', '10.0.0.255', 1), '10.0.0.0/24[icmp]'],
    [S('2001:db8::1', '2001:db8::1', 58), '2001:db8::1/128[ipv6-icmp]'],
    [S('10.0.0.0', '10.0.0.255', 99, [1, 2]), '10.0.0.0/24[99/1-2]'],
    [S('10.0.0.0', '10.0.0.255', UDP, OPAQUE), '10.0.0.0/24[udp/opaque]'],
  ];
  for (const [s, want] of cases) assert.equal(selToString(s), want);
});

test('intersect: nested, overlapping, touching, adjacent and disjoint address ranges (IPv4 and IPv6)', () => {
  // nested: the inner range
  assert.deepEqual(intersect(S('10.0.0.0', '10.0.255.255'), S('10.0.1.0', '10.0.1.255')), S('10.0.1.0', '10.0.1.255'));
  assert.deepEqual(intersect(S('10.0.1.0', '10.0.1.255'), S('10.0.0.0', '10.0.255.255')), S('10.0.1.0', '10.0.1.255'));
  // overlapping: the common part
  assert.deepEqual(intersect(S('10.0.0.0', '10.0.0.100'), S('10.0.0.50', '10.0.0.200')), S('10.0.0.50', '10.0.0.100'));
  assert.deepEqual(intersect(S('2001:db8::', '2001:db8::ff'), S('2001:db8::80', '2001:db8::1:0')), S('2001:db8::80', '2001:db8::ff'));
  // touching at one address: that address
  assert.deepEqual(intersect(S('10.0.0.0', '10.0.0.10'), S('10.0.0.10', '10.0.0.20')), S('10.0.0.10'));
  // adjacent and disjoint: nothing
  assert.equal(intersect(S('10.0.0.0', '10.0.0.127'), S('10.0.0.128', '10.0.0.255')), undefined);
  assert.equal(intersect(S('10.0.0.0', '10.0.0.255'), S('10.9.0.0', '10.9.0.255')), undefined);
  assert.equal(intersect(S('2001:db8::', '2001:db8::ffff'), S('2001:db8:1::', '2001:db8:1::ffff')), undefined);
  // single addresses
  assert.deepEqual(intersect(S('192.0.2.1'), S('192.0.2.0', '192.0.2.255')), S('192.0.2.1'));
  assert.deepEqual(intersect(S('192.0.2.1'), S('192.0.2.1')), S('192.0.2.1'));
  assert.equal(intersect(S('192.0.2.1'), S('192.0.2.2')), undefined);
  // the whole address space keeps the other side
  assert.deepEqual(intersect(S('0.0.0.0', '255.255.255.255'), S('10.0.0.0', '10.255.255.255')), S('10.0.0.0', '10.255.255.255'));
  assert.deepEqual(intersect(S('0.0.0.0', '255.255.255.255'), S('0.0.0.0', '255.255.255.255')), { ...S('0.0.0.0', '255.255.255.255'), start: 0n, end: V4_MAX });
  assert.deepEqual(intersect(S('::', 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff'), S('::1')), S('::1'));
  // the ends of the space
  assert.deepEqual(intersect(S('0.0.0.0', '255.255.255.255'), S('255.255.255.255')), S('255.255.255.255'));
  assert.deepEqual(intersect(S('0.0.0.0', '255.255.255.255'), S('0.0.0.0')), S('0.0.0.0'));
});

test('intersect: IPv4 and IPv6 never meet, not even 0.0.0.0/0 and ::/0 or ::ffff:0:0/96', () => {
  assert.equal(intersect(S('0.0.0.0', '255.255.255.255'), S('::', 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff')), undefined);
  // same numeric bounds, different family
  assert.equal(intersect({ ...S('0.0.0.0', '0.0.0.255'), family: 6 }, S('0.0.0.0', '0.0.0.255')), undefined);
  assert.equal(intersect(S('::ffff:10.0.0.0', '::ffff:10.0.0.255'), S('10.0.0.0', '10.0.0.255')), undefined);
});

test('intersect: protocols', () => {
  const net = ['10.0.0.0', '10.0.0.255'] as const;
  assert.equal(intersect(S(...net, 0), S(...net, TCP))?.protocol, TCP, 'any ∩ tcp = tcp');
  assert.equal(intersect(S(...net, TCP), S(...net, 0))?.protocol, TCP, 'tcp ∩ any = tcp');
  assert.equal(intersect(S(...net, TCP), S(...net, TCP))?.protocol, TCP);
  assert.equal(intersect(S(...net, 0), S(...net, 0))?.protocol, 0);
  assert.equal(intersect(S(...net, TCP), S(...net, UDP)), undefined, 'tcp ∩ udp = nothing');
  assert.equal(intersect(S(...net, 1), S(...net, 58)), undefined, 'icmp ∩ ipv6-icmp = nothing');
});

test('intersect: port ranges, and OPAQUE ports meet only OPAQUE or any', () => {
  const p = (a: [number, number], b: [number, number]): [number, number] | undefined => {
    const r = intersect(S('10.0.0.1', '10.0.0.1', UDP, a), S('10.0.0.1', '10.0.0.1', UDP, b));
    return r && [r.startPort, r.endPort];
  };
  assert.deepEqual(p(ANY_PORT, [80, 80]), [80, 80]);
  assert.deepEqual(p([80, 80], ANY_PORT), [80, 80]);
  assert.deepEqual(p([1000, 2000], [1500, 3000]), [1500, 2000]);
  assert.deepEqual(p([1500, 3000], [1000, 2000]), [1500, 2000]);
  assert.deepEqual(p([1000, 2000], [2000, 3000]), [2000, 2000], 'touching port ranges share one port');
  assert.deepEqual(p([1000, 3000], [1500, 1600]), [1500, 1600]);
  assert.deepEqual(p([0, 0], ANY_PORT), [0, 0]);
  assert.deepEqual(p([65535, 65535], ANY_PORT), [65535, 65535]);
  assert.equal(p([80, 80], [443, 443]), undefined);
  assert.equal(p([1000, 1999], [2000, 3000]), undefined, 'adjacent port ranges');
  // OPAQUE (start 65535, end 0; RFC 7296 §3.13.1)
  assert.deepEqual(p(OPAQUE, ANY_PORT), OPAQUE);
  assert.deepEqual(p(ANY_PORT, OPAQUE), OPAQUE);
  assert.deepEqual(p(OPAQUE, OPAQUE), OPAQUE);
  assert.equal(p(OPAQUE, [80, 80]), undefined);
  assert.equal(p([1, 65534], OPAQUE), undefined);
  assert.equal(p([65535, 65535], OPAQUE), undefined);
  // the addresses must still overlap for the ports to matter
  assert.equal(intersect(S('10.0.0.1', '10.0.0.1', 0, OPAQUE), S('10.0.0.2', '10.0.0.2', 0, OPAQUE)), undefined);
});

test('narrow: every non-empty intersection, in the order the peer proposed, without duplicates', () => {
  const A = S('10.1.0.0', '10.1.255.255');
  const B = S('10.2.0.0', '10.2.255.255');
  const C = S('2001:db8::', '2001:db8::ffff:ffff');
  // nested and overlapping
  assert.deepEqual(narrow([S('10.0.0.0', '10.255.255.255')], [A]), [A]);
  assert.deepEqual(narrow([S('10.1.128.0', '10.2.127.255')], [A, B]), [S('10.1.128.0', '10.1.255.255'), S('10.2.0.0', '10.2.127.255')]);
  // disjoint: nothing is left
  assert.deepEqual(narrow([S('192.0.2.0', '192.0.2.255')], [A, B]), []);
  // several proposed, several allowed: the proposed order wins
  assert.deepEqual(narrow([B, A], [A, B]), [B, A]);
  assert.deepEqual(narrow([S('0.0.0.0', '255.255.255.255')], [B, A]), [B, A]);
  // mixed families: each part only meets its own family
  assert.deepEqual(narrow([S('0.0.0.0', '255.255.255.255'), S('::', 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff')], [C]), [C]);
  assert.deepEqual(narrow([C, A], [A]), [A]);
  assert.deepEqual(narrow([C], [A, B]), []);
  // the same result from two proposals is listed once
  assert.deepEqual(narrow([A, A], [A]), [A]);
  assert.deepEqual(narrow([S('10.1.0.0', '10.1.0.255'), S('10.1.0.0', '10.1.255.255')], [S('10.1.0.0', '10.1.0.255')]), [S('10.1.0.0', '10.1.0.255')]);
  // results that differ only in protocol or ports are kept apart
  const tcp80 = S('10.1.0.0', '10.1.255.255', TCP, [80, 80]);
  const udp53 = S('10.1.0.0', '10.1.255.255', UDP, [53, 53]);
  assert.deepEqual(narrow([A], [tcp80, udp53]), [tcp80, udp53]);
  // empty inputs
  assert.deepEqual(narrow([], [A]), []);
  assert.deepEqual(narrow([A], []), []);
  assert.deepEqual(narrow([], []), []);
});

test('narrow (RFC 7296 §2.9): the triggering packet selector is narrowed like the others', () => {
  // TSi = (the packet 192.0.2.43 tcp/8080, the whole /24); the policy allows 192.0.2.0/25 for TCP.
  const trigger = S('192.0.2.43', '192.0.2.43', TCP, [8080, 8080]);
  const whole = S('192.0.2.0', '192.0.2.255');
  const allowed = [S('192.0.2.0', '192.0.2.127', TCP)];
  assert.deepEqual(narrow([trigger, whole], allowed), [trigger, S('192.0.2.0', '192.0.2.127', TCP)]);
  // the packet outside the policy drops out; the rest still narrows
  const outside = S('192.0.2.200', '192.0.2.200', TCP, [22, 22]);
  assert.deepEqual(narrow([outside, whole], allowed), [S('192.0.2.0', '192.0.2.127', TCP)]);
  // the responder's narrowed answer is acceptable to the initiator
  const answer = narrow([trigger, whole], allowed);
  assert.ok(isSubset(answer, [trigger, whole]));
});

test('isSubset: every inner selector inside one outer selector', () => {
  const net = S('10.0.0.0', '10.0.0.255');
  assert.ok(isSubset([S('10.0.0.0', '10.0.0.127')], [net]), 'nested');
  assert.ok(isSubset([net], [net]), 'equal');
  assert.ok(isSubset([S('10.0.0.7')], [net]), 'one address');
  assert.ok(isSubset([S('10.0.0.0'), S('10.0.0.255')], [net]), 'both ends');
  assert.ok(!isSubset([S('10.0.0.0', '10.0.1.255')], [net]), 'larger');
  assert.ok(!isSubset([S('9.255.255.255', '10.0.0.10')], [net]), 'overlapping below');
  assert.ok(!isSubset([S('10.0.0.200', '10.0.1.0')], [net]), 'overlapping above');
  assert.ok(!isSubset([S('10.0.1.0', '10.0.1.255')], [net]), 'disjoint');
  // each inner selector needs a home; one outside spoils the set
  assert.ok(isSubset([S('10.0.0.1'), S('10.0.1.1')], [net, S('10.0.1.0', '10.0.1.255')]));
  assert.ok(!isSubset([S('10.0.0.1'), S('10.0.2.1')], [net, S('10.0.1.0', '10.0.1.255')]));
  // a range covered only by two adjacent outer selectors together does not count
  assert.ok(!isSubset([S('10.0.0.0', '10.0.1.255')], [net, S('10.0.1.0', '10.0.1.255')]));
  // the whole space
  assert.ok(isSubset([S('0.0.0.0', '255.255.255.255')], [S('0.0.0.0', '255.255.255.255')]));
  assert.ok(isSubset([S('::1')], [S('::', 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff')]));
  assert.ok(!isSubset([S('0.0.0.0', '255.255.255.255')], [net]));
  // families
  assert.ok(!isSubset([S('::ffff:10.0.0.1')], [net]));
  assert.ok(!isSubset([S('10.0.0.1')], [S('::', 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff')]));
  // empty sets: nothing is inside anything; something is never inside nothing
  assert.ok(isSubset([], [net]));
  assert.ok(isSubset([], []));
  assert.ok(!isSubset([net], []));
});

test('isSubset: protocol and ports narrow too, never widen', () => {
  const any = S('10.0.0.0', '10.0.0.255');
  const tcp = S('10.0.0.0', '10.0.0.255', TCP);
  const tcp80 = S('10.0.0.0', '10.0.0.255', TCP, [80, 80]);
  assert.ok(isSubset([tcp], [any]));
  assert.ok(isSubset([tcp80], [tcp]));
  assert.ok(isSubset([tcp80], [any]));
  assert.ok(!isSubset([any], [tcp]), 'any protocol is not within tcp');
  assert.ok(!isSubset([tcp], [tcp80]), 'all ports are not within port 80');
  assert.ok(!isSubset([S('10.0.0.0', '10.0.0.255', UDP)], [tcp]));
  assert.ok(isSubset([S('10.0.0.1', '10.0.0.1', TCP, [1000, 1999])], [S('10.0.0.0', '10.0.0.255', TCP, [1000, 2000])]));
  assert.ok(!isSubset([S('10.0.0.1', '10.0.0.1', TCP, [1000, 2001])], [S('10.0.0.0', '10.0.0.255', TCP, [1000, 2000])]));
  // OPAQUE lies within "any port" and within OPAQUE, and nothing else lies within OPAQUE
  const opaque = S('10.0.0.0', '10.0.0.255', UDP, OPAQUE);
  assert.ok(isSubset([opaque], [S('10.0.0.0', '10.0.0.255', UDP)]));
  assert.ok(isSubset([opaque], [opaque]));
  assert.ok(!isSubset([S('10.0.0.0', '10.0.0.255', UDP)], [opaque]));
  assert.ok(!isSubset([S('10.0.0.0', '10.0.0.255', UDP, [53, 53])], [opaque]));
});

// Properties over a small IPv4 space (so that ranges overlap often) and small port space.
const smallSel = fc
  .record({
    a: fc.integer({ min: 0, max: 63 }),
    b: fc.integer({ min: 0, max: 63 }),
    protocol: fc.constantFrom(0, TCP, UDP),
    p: fc.integer({ min: 0, max: 15 }),
    q: fc.integer({ min: 0, max: 15 }),
    anyPort: fc.boolean(),
  })
  .map(({ a, b, protocol, p, q, anyPort }): Sel => ({
    family: 4,
    start: 0x0a000000n + BigInt(Math.min(a, b)),
    end: 0x0a000000n + BigInt(Math.max(a, b)),
    protocol,
    startPort: anyPort ? 0 : Math.min(p, q),
    endPort: anyPort ? 65535 : Math.max(p, q),
  }));

/** Whether a packet (address offset, protocol, port) matches a selector. */
function matches(s: Sel, a: number, protocol: number, port: number): boolean {
  const x = 0x0a000000n + BigInt(a);
  return x >= s.start && x <= s.end && (s.protocol === 0 || s.protocol === protocol) && port >= s.startPort && port <= s.endPort;
}

test('intersect matches exactly the packets both selectors match, and is symmetric (property)', () => {
  fc.assert(
    fc.property(smallSel, smallSel, (x, y) => {
      const i = intersect(x, y);
      assert.deepEqual(intersect(y, x), i);
      for (let a = 0; a < 64; a++) {
        for (const protocol of [TCP, UDP, 1]) {
          for (const port of [0, 3, 7, 15, 100]) {
            const both = matches(x, a, protocol, port) && matches(y, a, protocol, port);
            assert.equal(i !== undefined && matches(i, a, protocol, port), both, `${selToString(x)} ∩ ${selToString(y)} at .${a} ${protocol}/${port}`);
          }
        }
      }
    }),
    { numRuns: 300 },
  );
});

test('narrow results lie within both what was proposed and what is allowed (property)', () => {
  fc.assert(
    fc.property(fc.array(smallSel, { maxLength: 4 }), fc.array(smallSel, { maxLength: 4 }), (proposed, allowed) => {
      const r = narrow(proposed, allowed);
      assert.ok(isSubset(r, proposed), `${show(r)} within proposed ${show(proposed)}`);
      assert.ok(isSubset(r, allowed), `${show(r)} within allowed ${show(allowed)}`);
      // a proposal that is already within the policy is kept as it is
      if (isSubset(proposed, allowed)) for (const p of proposed) assert.ok(r.some((x) => isSubset([p], [x]) && isSubset([x], [p])), selToString(p));
      // nothing twice
      assert.equal(new Set(r.map(selToString)).size, r.length);
      // empty only when no proposal meets any allowed selector
      assert.equal(r.length === 0, proposed.every((p) => allowed.every((a) => intersect(p, a) === undefined)));
    }),
    { numRuns: 300 },
  );
});

test('narrowInstallable: OPAQUE ports are left out of what we agree to install; nothing left means unacceptable', () => {
  const opaque = S('10.1.0.0', '10.1.0.255', UDP, OPAQUE);
  const plain = S('10.1.0.0', '10.1.0.255', UDP, [53, 53]);
  const any = S('10.1.0.0', '10.1.0.255');
  // narrow keeps the OPAQUE intersection (it is a valid selector) ...
  assert.equal(narrow([opaque], [any]).length, 1);
  // ... but the dataplane cannot match "ports not available": not installable.
  assert.deepEqual(narrowInstallable([opaque], [any]), []);
  assert.equal(show(narrowInstallable([opaque, plain], [any])), show([plain]));
});

test('bytesToBigInt and bigIntToBytes agree with byte-by-byte arithmetic for every size, and invert each other', () => {
  const slow = (b: Uint8Array): bigint => b.reduce((v, x) => (v << 8n) | BigInt(x), 0n);
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 1, maxLength: 20 }), fc.bigInt({ min: 0n, max: (1n << 160n) - 1n }), (bytes, v) => {
      const b = Buffer.from(bytes);
      assert.equal(bytesToBigInt(b), slow(b));
      assert.deepEqual(bigIntToBytes(bytesToBigInt(b), b.length), b);
      // the low bytes of a larger value
      const mask = (1n << BigInt(8 * b.length)) - 1n;
      assert.equal(slow(bigIntToBytes(v, b.length)), v & mask);
    }),
    { numRuns: 2000 },
  );
  assert.equal(bytesToBigInt(Buffer.alloc(16, 0xff)), (1n << 128n) - 1n);
  assert.equal(bytesToBigInt(Buffer.alloc(4, 0xff)), 0xffffffffn);
});

test('selToRange shares one record per content, except a host selector on the peer’s side (one peer’s own)', () => {
  const subnet = S('10.0.0.0', '10.255.255.255');
  assert.equal(selToRange(subnet), selToRange({ ...subnet }), 'a subnet: one shared record');
  const ours = S('192.0.2.1', '192.0.2.1');
  assert.equal(selToRange(ours), selToRange({ ...ours }), 'our own host (local dynamic): shared');
  const peer = S('198.51.100.7', '198.51.100.7');
  const a = selToRange(peer, true);
  const b = selToRange({ ...peer }, true);
  assert.notEqual(a, b, "the peer's host is not cached");
  assert.deepEqual(a, b);
  assert.deepEqual(a, { family: 4, start: '198.51.100.7', end: '198.51.100.7', protocol: 0, startPort: 0, endPort: 65535 });
  assert.ok(Object.isFrozen(a));
  // a subnet on the peer's side is shared all the same
  assert.equal(selToRange(subnet, true), selToRange(subnet));
});
