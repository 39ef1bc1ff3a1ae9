import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { IdType } from '../../src/ikev2/constants.ts';
import {
  ID_ANY,
  ID_IPV4_ADDR_RANGE,
  ID_IPV4_ADDR_SUBNET,
  IdentityError,
  identityMatches,
  identityToString,
  parseIdentity,
} from '../../src/config/identity.ts';

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');

test('identity types and encodings (strongSwan test_identification.c string_data)', () => {
  // Expected encodings from strongswan/src/libstrongswan/tests/suites/test_identification.c
  const cases: [string, number, Buffer][] = [
    ['192.168.1.1', IdType.ID_IPV4_ADDR, hex('c0a80101')],
    ['fec0::1', IdType.ID_IPV6_ADDR, hex('fec00000000000000000000000000001')],
    ['fec0::', IdType.ID_IPV6_ADDR, hex('fec00000000000000000000000000000')],
    ['alice@strongswan.org', IdType.ID_RFC822_ADDR, Buffer.from('alice@strongswan.org')],
    ['alice', IdType.ID_FQDN, Buffer.from('alice')],
    ['@strongswan.org', IdType.ID_FQDN, Buffer.from('strongswan.org')],
    ['@#deadbeef', IdType.ID_KEY_ID, hex('deadbeef')],
    ['@#deadbee', IdType.ID_KEY_ID, hex('0deadbee')],
    ['C=', IdType.ID_DER_ASN1_DN, hex('300b 3109 3007 0603550406 1300')],
    ['C=CH', IdType.ID_DER_ASN1_DN, hex('300d 310b 3009 0603550406 13024348')],
    ['C=CH,', IdType.ID_DER_ASN1_DN, hex('300d 310b 3009 0603550406 13024348')],
    ['C=CH, ', IdType.ID_DER_ASN1_DN, hex('300d 310b 3009 0603550406 13024348')],
    ['IPv4:#c0a80101', IdType.ID_IPV4_ADDR, hex('c0a80101')],
    ['email:tester', IdType.ID_RFC822_ADDR, Buffer.from('tester')],
    ['{1}:#c0a80101', IdType.ID_IPV4_ADDR, hex('c0a80101')],
    ['{99}:somedata', 99, Buffer.from('somedata')],
    // our additions: explicit types, @@
    ['fqdn:user@host', IdType.ID_FQDN, Buffer.from('user@host')],
    ['@@user', IdType.ID_RFC822_ADDR, Buffer.from('user')],
    ['keyid:#0102', IdType.ID_KEY_ID, hex('0102')],
    ['ipv4:192.0.2.1', IdType.ID_IPV4_ADDR, hex('c0000201')],
  ];
  for (const [text, type, data] of cases) {
    const id = parseIdentity(text);
    assert.equal(id.type, type, text);
    assert.deepEqual(id.data, data, text);
  }
  for (const any of ['%any', '%any6', '*', '0.0.0.0', '::', '0::0']) {
    assert.equal(parseIdentity(any).type, ID_ANY, any);
    assert.equal(parseIdentity(any).data.length, 0, any);
  }
});

test('DN encoding: attribute OIDs, string types as strongSwan atodn()', () => {
  const id = parseIdentity('C=CH, O=strongSwan, CN=moon.strongswan.org');
  // SEQUENCE { SET { SEQ { 2.5.4.6 PrintableString "CH" } } SET { SEQ { 2.5.4.10 PrintableString "strongSwan" } }
  //            SET { SEQ { 2.5.4.3 PrintableString "moon.strongswan.org" } } }
  assert.deepEqual(
    id.data,
    hex(
      '3040 310b 3009 0603550406 13024348' +
        ' 3113 3011 060355040a 130a 7374726f6e675377616e' +
        ' 311c 301a 0603550403 1313 6d6f6f6e2e7374726f6e677377616e2e6f7267',
    ),
  );
  // E= is an IA5String (1.2.840.113549.1.9.1), non-printable text becomes a UTF8String
  const e = parseIdentity('E=a@b.c, CN=Jörg');
  assert.deepEqual(e.data, hex('3026 3114 3012 06092a864886f70d010901 1605 6140622e63 310e 300c 0603550403 0c054ac3b67267'));
  // openssl-style "/" separators
  assert.deepEqual(parseIdentity('/C=CH/O=strongSwan/CN=moon.strongswan.org').data, id.data);
});

test('identity equality as strongSwan test_equals (DN spelling variants, case)', () => {
  const a = parseIdentity('C=CH, E=moon@strongswan.org, CN=moon');
  for (const same of [
    'C=CH, E=moon@strongswan.org, CN=moon',
    'C==CH , E==moon@strongswan.org , CN==moon',
    '  C=CH, E=moon@strongswan.org, CN=moon  ',
    'C=ch, E=moon@STRONGSWAN.ORG, CN=Moon',
    '/C=CH/E=moon@strongswan.org/CN=moon',
    ' / C=CH / E=moon@strongswan.org / CN=moon',
  ]) {
    assert.ok(identityMatches(same, a), same);
  }
  for (const other of [
    'C=CH/E=moon@strongswan.org/CN=moon',
    'C=CH E=moon@strongswan.org CN=moon',
    'C=CN, E=moon@strongswan.org, CN=moon',
    'E=moon@strongswan.org, C=CH, CN=moon',
  ]) {
    assert.ok(!identityMatches(other, a), other);
  }
  const f = parseIdentity('ipsec.strongswan.org');
  assert.ok(identityMatches('IPSEC.strongswan.org', f));
  assert.ok(identityMatches('ipsec.strongSwan.ORG', f));
  assert.ok(!identityMatches('strongswan.org', f));
});

test('wildcard matching as strongSwan test_matches / test_matches_string', () => {
  const dn = parseIdentity('C=CH, E=moon@strongswan.org, CN=moon');
  assert.ok(identityMatches('C=CH, E=*, CN=moon', dn));
  assert.ok(identityMatches('C=*, E=*, CN=*', dn));
  assert.ok(!identityMatches('C=CH, E=*@strongswan.org, CN=moon', dn));
  assert.ok(!identityMatches('C=*, E=*, CN=*, O=BADInc', dn));
  assert.ok(!identityMatches('C=*, E=*', dn));
  assert.ok(!identityMatches('C=*, E=a@b.c, CN=*', dn));
  assert.ok(identityMatches('%any', dn));

  const mail = parseIdentity('moon@strongswan.org');
  assert.ok(identityMatches('moon@strongswan.org', mail));
  assert.ok(identityMatches('*@strongswan.org', mail));
  for (const no of ['*@*.org', '*@*', '*strongswan.org', '*.org', 'moon@*', '**']) assert.ok(!identityMatches(no, mail), no);
  assert.ok(identityMatches('*', mail));
  assert.ok(identityMatches('%any', mail));

  const fqdn = parseIdentity('vpn.strongswan.org');
  for (const yes of ['vpn.strongswan.org', '*.strongswan.org', '*strongswan.org', '*.org', '*', '%any', '*.STRONGSWAN.org']) {
    assert.ok(identityMatches(yes, fqdn), yes);
  }
  for (const no of ['*.strongswan.*', '*vpn.strongswan.org', 'vpn.strongswan.*', '**']) assert.ok(!identityMatches(no, fqdn), no);

  // %any as the identity only matches %any patterns (strongSwan test_matches_any)
  const any = parseIdentity('%any');
  assert.ok(identityMatches('%any', any));
  assert.ok(identityMatches('*', any));
  assert.ok(!identityMatches('moon@strongswan.org', any));
  assert.ok(!identityMatches('vpn.strongswan.org', any));

  // binary types match exactly
  assert.ok(identityMatches('192.168.1.1', parseIdentity('192.168.1.1')));
  assert.ok(!identityMatches('192.168.1.2', parseIdentity('192.168.1.1')));
  assert.ok(!identityMatches('@#12345678', parseIdentity('@#12345679')));
  // a pattern that does not parse matches nothing
  assert.ok(!identityMatches('foo=bar', fqdn));
});

test('address block patterns match addresses inside them (strongSwan test_matches_range)', () => {
  const a = parseIdentity('192.168.1.1');
  assert.equal(parseIdentity('192.168.1.0/24').type, ID_IPV4_ADDR_SUBNET);
  assert.equal(parseIdentity('192.168.1.0-192.168.1.64').type, ID_IPV4_ADDR_RANGE);
  for (const yes of ['0.0.0.0/0', '192.168.1.1/32', '192.168.1.0/24', '192.168.1.1-192.168.1.1', '192.168.1.0-192.168.1.64']) {
    assert.ok(identityMatches(yes, a), yes);
  }
  for (const no of ['192.168.1.0/32', '192.168.0.0/24', '192.168.1.2-192.168.1.64', 'foo@bar']) assert.ok(!identityMatches(no, a), no);
  const b = parseIdentity('fec0::1');
  for (const yes of ['::/0', 'fec0::1/128', 'fec0::/120', 'fec0::1-fec0::1', 'fec0::0-fec0::5']) assert.ok(identityMatches(yes, b), yes);
  for (const no of ['fec0::/128', 'fec0::100/120', 'fec0::4001-fec0::4ffe']) assert.ok(!identityMatches(no, b), no);
  assert.equal(identityToString(parseIdentity('192.168.1.0/24')), '192.168.1.0/24');
  assert.equal(identityToString(parseIdentity('fec0::1-fec0::4fff')), 'fec0::1-fec0::4fff');
});

test('bad identities are rejected with a reason (where strongSwan would silently make a key id)', () => {
  const cases: [string, RegExp][] = [
    ['', /empty/],
    ['foo=bar', /unknown attribute 'foo'/],
    ['C=CH, O', /has no '='/],
    ['C=CH,,O=x', /empty RDN/],
    ['10.0.0.256', /not an IPv4 address/],
    ['1.2.3.4.5', /not an IPv4 address/],
    ['fec0:', /not an IPv6 address/],
    ['2001:db8::zz', /not an IPv6 address \(write keyid:/],
    ['@#xyz', /not hex data/],
    ['@', /empty/],
    ['host name', /blanks/],
    ['{300}:x', /out of range/],
    ['ipv4:300.1.1.1', /not an IPv4 address/],
    ['10.0.0.0/33', /prefix length/],
    ['a\u0001b', /control characters/],
    ['x'.repeat(5000), /longer than/],
  ];
  for (const [text, re] of cases) {
    assert.throws(() => parseIdentity(text), (e: unknown) => e instanceof IdentityError && re.test(e.message), JSON.stringify(text));
  }
});

test('identityToString round-trips through parseIdentity', () => {
  for (const text of [
    '192.0.2.1',
    '2001:db8::1',
    'gw.example.net',
    'user@example.net',
    'C=CH, O=strongSwan, CN=moon.strongswan.org',
    'C=CH, E=moon@strongswan.org, CN=Jörg',
    '@#0a1b2c',
    '%any',
    'fqdn:user@host',
    'fqdn:10.1.2.3',
    'rfc822:tester',
    '{99}:somedata',
  ]) {
    const id = parseIdentity(text);
    const back = parseIdentity(identityToString(id));
    assert.equal(back.type, id.type, text);
    assert.deepEqual(back.data, id.data, text);
  }
  assert.equal(identityToString(parseIdentity('cn=x, o=y')), 'CN=x, O=y');
  assert.equal(identityToString(parseIdentity('@@user')), 'rfc822:user');
});

test('identities from the wire never make identityToString or matching throw', () => {
  // strongSwan test_printf_hook: C=CH followed by a NULL where the 2nd OID should be
  const broken = { type: IdType.ID_DER_ASN1_DN, data: hex('3020311e3009060355040613024348301105035504' + '0a130a7374726f6e675377616e') };
  assert.equal(identityToString(broken), '(invalid ID_DER_ASN1_DN)');
  assert.equal(identityToString({ type: IdType.ID_IPV4_ADDR, data: Buffer.alloc(0) }), '{1}:#');
  assert.equal(identityToString({ type: IdType.ID_RFC822_ADDR, data: hex('fafbfcfd40737472') }), '????@str');
  fc.assert(
    fc.property(fc.constantFrom(1, 2, 3, 5, 9, 10, 11, 4, 7, 200), fc.uint8Array({ maxLength: 80 }), (type, bytes) => {
      const id = { type, data: Buffer.from(bytes) };
      const s = identityToString(id);
      assert.equal(typeof s, 'string');
      identityMatches('C=*, CN=*', id);
      identityMatches('*.example.net', id);
      identityMatches('10.0.0.0/8', id);
    }),
    { numRuns: 500 },
  );
});

test('identityToString shows bytes outside printable ASCII as ?', () => {
  assert.equal(identityToString({ type: IdType.ID_FQDN, data: Buffer.from('gw.example.net') }), 'gw.example.net');
  assert.equal(identityToString({ type: IdType.ID_FQDN, data: Buffer.from([0x61, 0x00, 0x62, 0x7f, 0xc3, 0xa9]) }), 'a?b???');
  assert.equal(identityToString({ type: IdType.ID_RFC822_ADDR, data: Buffer.from('ops@example.net') }), 'ops@example.net');
});
