import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { canonicalIp, formatIp, parseIPv4, parseIPv6, parseTrafficSelector, TsError, tsToString } from '../../src/config/ts.ts';
import type { TsSpec } from '../../src/config/ts.ts';

const ALL = { protocol: 0, startPort: 0, endPort: 65535 };

test('traffic selector forms from swanctl.conf local_ts/remote_ts', () => {
  const cases: [string, TsSpec | 'dynamic'][] = [
    ['10.0.0.0/24', { family: 4, start: '10.0.0.0', end: '10.0.0.255', ...ALL }],
    ['10.1.0.1-10.1.0.9', { family: 4, start: '10.1.0.1', end: '10.1.0.9', ...ALL }],
    ['2001:db8::/64', { family: 6, start: '2001:db8::', end: '2001:db8::ffff:ffff:ffff:ffff', ...ALL }],
    ['0.0.0.0/0[tcp/80]', { family: 4, start: '0.0.0.0', end: '255.255.255.255', protocol: 6, startPort: 80, endPort: 80 }],
    ['10.0.0.0/8[udp/1000-2000]', { family: 4, start: '10.0.0.0', end: '10.255.255.255', protocol: 17, startPort: 1000, endPort: 2000 }],
    ['dynamic', 'dynamic'],
    // a single address is a /32 (/128), host bits of a prefix are masked off as strongSwan does
    ['192.0.2.7', { family: 4, start: '192.0.2.7', end: '192.0.2.7', ...ALL }],
    ['192.0.2.7/24', { family: 4, start: '192.0.2.0', end: '192.0.2.255', ...ALL }],
    ['::1', { family: 6, start: '::1', end: '::1', ...ALL }],
    // protocol by number, "any", ports "any", service names
    ['10.0.0.0/8[17]', { family: 4, start: '10.0.0.0', end: '10.255.255.255', protocol: 17, startPort: 0, endPort: 65535 }],
    ['::/0[any/53]', { family: 6, start: '::', end: 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', protocol: 0, startPort: 53, endPort: 53 }],
    ['10.0.0.1[tcp/any]', { family: 4, start: '10.0.0.1', end: '10.0.0.1', protocol: 6, startPort: 0, endPort: 65535 }],
    ['10.0.0.1[tcp/https]', { family: 4, start: '10.0.0.1', end: '10.0.0.1', protocol: 6, startPort: 443, endPort: 443 }],
    ['10.0.0.1[ipv6-icmp]', { family: 4, start: '10.0.0.1', end: '10.0.0.1', protocol: 58, startPort: 0, endPort: 65535 }],
    ['  10.0.0.0/24  ', { family: 4, start: '10.0.0.0', end: '10.0.0.255', ...ALL }],
  ];
  for (const [text, want] of cases) assert.deepEqual(parseTrafficSelector(text), want, text);
});

test('traffic selector errors name the offending part', () => {
  const cases: [string, RegExp][] = [
    ['', /empty/],
    ['10.0.0.256/24', /'10\.0\.0\.256' is not an IP address/],
    ['10.0.0.0/33', /'33' is not a prefix length \(0\.\.32\)/],
    ['2001:db8::/129', /prefix length \(0\.\.128\)/],
    ['10.0.0.9-10.0.0.1', /ends before it starts/],
    ['10.0.0.1-2001:db8::1', /mixes IPv4 and IPv6/],
    ['0.0.0.0/0[foo/1]', /unknown protocol 'foo'/],
    ['0.0.0.0/0[300]', /protocol 300 .* out of range/],
    ['0.0.0.0/0[tcp/70000]', /port 70000 .* out of range/],
    ['0.0.0.0/0[tcp/90-80]', /port range .* ends before it starts/],
    ['0.0.0.0/0[tcp/foo]', /'foo' .* not a port number/],
    ['0.0.0.0/0[tcp/opaque]', /OPAQUE/],
    ['0.0.0.0/0[tcp', /one "\[\.\.\.\]" at the end/],
    ['0.0.0.0/0[tcp]x', /one "\[\.\.\.\]" at the end/],
    ['dynamic[tcp/80]', /'dynamic' is not supported/],
    ['fe80::1%eth0', /zone ids/],
    ['[tcp/80]', /no address part/],
    ['host.example.net', /not an IP address/],
    ['010.0.0.1', /not an IP address/],
  ];
  for (const [text, re] of cases) {
    assert.throws(() => parseTrafficSelector(text), (e: unknown) => e instanceof TsError && re.test(e.message), text);
  }
});

test('tsToString: prefix when the range is one, a range otherwise, strongSwan-style suffix', () => {
  const s = (t: string) => {
    const p = parseTrafficSelector(t);
    assert.notEqual(p, 'dynamic');
    return tsToString(p as TsSpec);
  };
  assert.equal(s('10.0.0.0/24'), '10.0.0.0/24');
  assert.equal(s('10.0.0.0-10.0.0.255'), '10.0.0.0/24');
  assert.equal(s('10.0.0.1-10.0.0.9'), '10.0.0.1-10.0.0.9');
  assert.equal(s('10.0.0.1'), '10.0.0.1/32');
  assert.equal(s('0.0.0.0-255.255.255.255'), '0.0.0.0/0');
  assert.equal(s('2001:db8::-2001:db8::ffff'), '2001:db8::/112');
  assert.equal(s('0.0.0.0/0[tcp/80]'), '0.0.0.0/0[tcp/80]');
  assert.equal(s('10.0.0.0/8[udp/1000-2000]'), '10.0.0.0/8[udp/1000-2000]');
  assert.equal(s('10.0.0.0/8[udp]'), '10.0.0.0/8[udp]');
  assert.equal(s('10.0.0.0/8[any/53]'), '10.0.0.0/8[any/53]');
  assert.equal(s('10.0.0.0/8[99/1-2]'), '10.0.0.0/8[99/1-2]');
  assert.equal(
    tsToString({ family: 4, start: '10.0.0.0', end: '10.0.0.127', protocol: 6, startPort: 0, endPort: 65535 }),
    '10.0.0.0/25[tcp]',
  );
});

test('tsToString output parses back to the same selector (property)', () => {
  const v4 = fc.tuple(fc.integer({ min: 0, max: 0xffffffff }), fc.integer({ min: 0, max: 0xffffffff }));
  const ports = fc.tuple(fc.integer({ min: 0, max: 65535 }), fc.integer({ min: 0, max: 65535 }));
  fc.assert(
    fc.property(v4, fc.integer({ min: 0, max: 255 }), ports, ([a, b], proto, [p, q]) => {
      const lo = Math.min(a, b);
      const hi = Math.max(a, b);
      const ip = (n: number) => formatIp(Buffer.from([n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255]));
      const t: TsSpec = { family: 4, start: ip(lo), end: ip(hi), protocol: proto, startPort: Math.min(p, q), endPort: Math.max(p, q) };
      assert.deepEqual(parseTrafficSelector(tsToString(t)), t);
    }),
    { numRuns: 300 },
  );
});

test('IPv6 text is canonical as RFC 5952 section 4 and 5 require', () => {
  // RFC 5952 §4.1 (leading zeros), §4.2.1-4.2.3 (longest run, first on a tie, no single group), §4.3 (lower case), §5 (mapped)
  const cases: [string, string][] = [
    ['2001:0db8::0001', '2001:db8::1'],
    ['2001:db8:0:0:0:0:2:1', '2001:db8::2:1'],
    ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'],
    ['2001:0:0:1:0:0:0:1', '2001:0:0:1::1'],
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
    ['2001:DB8::ABCD', '2001:db8::abcd'],
    ['::ffff:192.0.2.1', '::ffff:192.0.2.1'],
    ['0:0:0:0:0:0:0:0', '::'],
    ['1::', '1::'],
  ];
  for (const [text, want] of cases) assert.equal(canonicalIp(text), want, text);
  for (const bad of ['1:2:3:4:5:6:7:8:9', '1::2::3', ':1:2', '12345::', 'g::1', '1.2.3.4::', '::1.2.3']) {
    assert.equal(parseIPv6(bad), undefined, bad);
  }
  for (const bad of ['1.2.3', '1.2.3.4.5', '256.0.0.1', '01.2.3.4', '1..2.3', '1.2.3.4 ', '']) {
    assert.equal(parseIPv4(bad), undefined, bad);
  }
});
