/**
 * Which connection answers an IKE_AUTH (ConfigIndex.forAuth): the peer's identity against each
 * connection's remote identity (exact, wildcard, %any), the identity the peer asks of us (IDr)
 * against our local one, addresses, and the order of the configuration on a tie; and which PSK
 * (ConfigIndex.psk) a pair of identities uses.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigIndex } from '../../src/ikev2/sa/config-index.ts';
import { parseIdentity } from '../../src/config/identity.ts';
import { conn, psk } from '../helpers/engine-pair.ts';
import { parseProposals } from '../../src/ikev2/crypto/proposals.ts';

const side = (id: string) => ({ auth: 'psk' as const, id, certs: [], cacerts: [] });
const id = (s: string) => parseIdentity(s);

test('the exact remote identity wins over a wildcard, a wildcard over %any; a pattern that does not parse matches nothing', () => {
  const ix = new ConfigIndex(
    [
      conn('any', { remote: side('%any') }),
      conn('wild', { remote: side('*.branch.example.net') }),
      conn('exact', { remote: side('hq.branch.example.net') }),
      conn('dn', { remote: side('C=CH, O=strongSwan, CN=*') }),
      conn('broken', { remote: side('C=CH, XX=1') }),
    ],
    [],
  );
  assert.equal(ix.forAuth('192.0.2.2', '192.0.2.1', id('C=CH, O=strongSwan, CN=x'))?.name, 'dn');
  assert.equal(ix.forAuth('192.0.2.2', '192.0.2.1', id('hq.branch.example.net'))?.name, 'exact');
  assert.equal(ix.forAuth('192.0.2.2', '192.0.2.1', id('HQ.Branch.Example.NET'))?.name, 'exact', 'FQDNs compare case-insensitively');
  assert.equal(ix.forAuth('192.0.2.2', '192.0.2.1', id('s1.branch.example.net'))?.name, 'wild');
  assert.equal(ix.forAuth('192.0.2.2', '192.0.2.1', id('C=CH, O=strongSwan, CN=moon'))?.name, 'dn');
  assert.equal(ix.forAuth('192.0.2.2', '192.0.2.1', id('C=CH, O=other, CN=moon'))?.name, 'any');
  assert.equal(ix.forAuth('192.0.2.2', '192.0.2.1', id('branch.example.net'))?.name, 'any', 'the wildcard needs a label before the suffix');
  assert.equal(ix.forAuth('192.0.2.2', '192.0.2.1', id('peer@example.net'))?.name, 'any');
});

test('the identity the peer asks of us must match our local one; without %any nothing else answers', () => {
  const ix = new ConfigIndex(
    [
      conn('gw-a', { local: side('a.gw.example.net'), remote: side('*.example.net') }),
      conn('gw-b', { local: side('b.gw.example.net'), remote: side('*.example.net') }),
      conn('gw-any', { local: side('%any'), remote: side('peer.example.org') }),
    ],
    [],
  );
  const peer = id('s1.example.net');
  assert.equal(ix.forAuth('192.0.2.2', '192.0.2.1', peer)?.name, 'gw-a', 'no IDr: the first in the configuration');
  assert.equal(ix.forAuth('192.0.2.2', '192.0.2.1', peer, id('b.gw.example.net'))?.name, 'gw-b');
  assert.equal(ix.forAuth('192.0.2.2', '192.0.2.1', peer, id('c.gw.example.net')), undefined);
  assert.equal(ix.forAuth('192.0.2.2', '192.0.2.1', id('peer.example.org'), id('anything.example'))?.name, 'gw-any', 'a local %any answers any IDr');
});

test('addresses narrow the candidates; a connection with remote addresses wins a tie', () => {
  const ix = new ConfigIndex(
    [
      conn('anywhere', { remote: side('*.example.net') }),
      conn('site', { remoteAddrs: ['198.51.100.0/24'], remote: side('*.example.net') }),
      conn('other-side', { localAddrs: ['192.0.2.99'], remote: side('exact.example.net') }),
    ],
    [],
  );
  assert.equal(ix.forAuth('192.0.2.2', '198.51.100.7', id('s1.example.net'))?.name, 'site');
  assert.equal(ix.forAuth('192.0.2.2', '203.0.113.7', id('s1.example.net'))?.name, 'anywhere');
  assert.equal(ix.forAuth('192.0.2.2', '203.0.113.7', id('exact.example.net'))?.name, 'anywhere', 'the exact match is on another local address');
  assert.equal(ix.forAuth('192.0.2.99', '203.0.113.7', id('exact.example.net'))?.name, 'other-side');
});

test('a subnet as remote id accepts peers whose IPv4 identity lies in it', () => {
  const ix = new ConfigIndex([conn('branches', { remote: side('10.0.0.0/8') }), conn('exact', { remote: side('192.0.2.77') })], []);
  assert.equal(ix.forAuth('192.0.2.2', '198.51.100.1', id('10.20.30.40'))?.name, 'branches');
  assert.equal(ix.forAuth('192.0.2.2', '198.51.100.1', id('192.0.2.77'))?.name, 'exact');
  assert.equal(ix.forAuth('192.0.2.2', '198.51.100.1', id('11.0.0.1')), undefined);
});

test('PSK: the peer\'s id over ours, exact over wildcard, ids in any case, wildcard and subnet ids, a secret without ids last', () => {
  const secret = (ix: ConfigIndex, l: string, r: string) => ix.psk(l, r)?.toString();
  const ix = new ConfigIndex(
    [conn('a')],
    [
      psk([], 'for-everyone'),
      psk(['gw.example.org'], 'ours-exact'),
      psk(['*.example.net'], 'peers-wild'),
      psk(['hq.example.net'], 'peers-exact'),
      psk(['10.0.0.0/8'], 'peers-subnet'),
      psk(['*.example.org', 'peer@example.com'], 'mixed'),
    ],
  );
  assert.equal(secret(ix, 'gw.example.org', 'hq.example.net'), 'peers-exact');
  assert.equal(secret(ix, 'gw.example.org', 'HQ.Example.NET'), 'peers-exact', 'FQDN ids compare case-insensitively');
  assert.equal(secret(ix, 'gw.example.org', 's7.example.net'), 'peers-wild', 'the peer by pattern (4) over ours exactly (2)');
  assert.equal(secret(ix, 'GW.EXAMPLE.ORG', 'unknown.example'), 'ours-exact');
  assert.equal(secret(ix, 'gw.example.org', '10.1.2.3'), 'peers-subnet');
  assert.equal(secret(ix, 'other.example', 'Peer@Example.com'), 'mixed');
  assert.equal(secret(ix, 'x.example.org', 'unknown.example'), 'mixed', 'ours by pattern (1) over a secret without ids (0)');
  assert.equal(secret(ix, 'nobody.example', 'unknown.example'), 'for-everyone');
  const tie = new ConfigIndex([conn('a')], [psk(['*.example.net'], 'first'), psk(['*.net'], 'second')]);
  assert.equal(secret(tie, 'gw', 's1.example.net'), 'first', 'equal scores: the first in the configuration');
  assert.equal(new ConfigIndex([conn('a')], [psk(['a.example'], 'only')]).psk('b.example', 'c.example'), undefined);
});

test('%any spelt * or 0.0.0.0 is %any: it ranks below patterns, whatever its place in the file', () => {
  const ix = new ConfigIndex([conn('star', { remote: side('*') }), conn('wild', { remote: side('*.example.net') }), conn('zeros', { remote: side('0.0.0.0') })], []);
  assert.equal(ix.forAuth('192.0.2.2', '192.0.2.1', id('s1.example.net'))?.name, 'wild');
  assert.equal(ix.forAuth('192.0.2.2', '192.0.2.1', id('other.example'))?.name, 'star', 'the first of the %any ones');
});

test('an exact DN as remote id matches the peer\'s DN attribute by attribute, case-insensitively where strongSwan does', () => {
  const ix = new ConfigIndex([conn('moon', { remote: side('C=CH, O=strongSwan, CN=moon.strongswan.org') }), conn('any', { remote: side('%any') })], []);
  assert.equal(ix.forAuth('192.0.2.2', '192.0.2.1', id('C=CH, O=strongSwan, CN=moon.strongswan.org'))?.name, 'moon');
  assert.equal(ix.forAuth('192.0.2.2', '192.0.2.1', id('C=ch, O=STRONGSWAN, CN=Moon.StrongSwan.org'))?.name, 'moon');
  assert.equal(ix.forAuth('192.0.2.2', '192.0.2.1', id('C=CH, O=strongSwan, CN=sun.strongswan.org'))?.name, 'any');
});

test('PSK: a secret with id %any applies to everyone, as weakly as one without ids', () => {
  const ix = new ConfigIndex([conn('a')], [psk(['%any'], 'anyone'), psk(['*.branch.example.net'], 'branches'), psk(['gw.example.org'], 'ours')]);
  assert.equal(ix.psk('gw.example.org', 's1.branch.example.net')?.toString(), 'branches');
  assert.equal(ix.psk('other.example', 's1.branch.example.net')?.toString(), 'branches');
  assert.equal(ix.psk('gw.example.org', 'stranger.example')?.toString(), 'ours');
  assert.equal(ix.psk('other.example', 'stranger.example')?.toString(), 'anyone');
  const first = new ConfigIndex([conn('a')], [psk([], 'no-ids'), psk(['%any'], 'any-id')]);
  assert.equal(first.psk('a.example', 'b.example')?.toString(), 'no-ids', 'a tie: the first in the file');
});

test('IKE_SA_INIT candidates: of the connections for any remote address, the first of each proposals and local addresses, in order', () => {
  const gcm = parseProposals('aes256gcm16-prfsha256-x25519', 'ike');
  const cbc = parseProposals('aes128-sha256-modp3072', 'ike');
  const conns = [
    conn('p0', { proposals: gcm }),
    conn('p1', { proposals: cbc }),
    conn('p2', { proposals: gcm, localAddrs: ['192.0.2.2'] }),
    ...Array.from({ length: 20_000 }, (_, i) => conn(`peer${i}`, { proposals: i % 2 ? gcm : cbc })),
    conn('other-local', { proposals: gcm, localAddrs: ['198.51.100.1'] }),
    conn('by-address', { proposals: cbc, remoteAddrs: ['203.0.113.9'] }),
    conn('by-range', { proposals: cbc, remoteAddrs: ['203.0.113.0/24'] }),
  ];
  const idx = new ConfigIndex(conns, []);
  assert.deepEqual(idx.forInit('192.0.2.2', '203.0.113.7').map((c) => c.name), ['by-range', 'p0', 'p1', 'p2']);
  assert.deepEqual(idx.forInit('192.0.2.2', '203.0.113.9').map((c) => c.name), ['by-address', 'by-range', 'p0', 'p1', 'p2']);
  assert.deepEqual(idx.forInit('198.51.100.1', '192.0.2.50').map((c) => c.name), ['p0', 'p1', 'other-local']);
  // every connection is still there for IKE_AUTH's choice by identity
  assert.equal(idx.get('peer19999')?.name, 'peer19999');
});
