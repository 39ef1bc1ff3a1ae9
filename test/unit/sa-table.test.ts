/**
 * The IKE SA table (src/ikev2/sa/table.ts): admission at the limit (half-open SAs a peer started go
 * first, oldest first, then SAs whose peer stopped answering, then 'full'), and the indexes by SPI,
 * by the initiator's half-open key, by peer identities and by connection through add, established
 * and remove.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadConfigText } from '../../src/config/load.ts';
import type { ConnectionConfig } from '../../src/config/types.ts';
import { IkeSa } from '../../src/ikev2/sa/ike-sa.ts';
import { SaTable, spiKey } from '../../src/ikev2/sa/table.ts';

function connections(): Map<string, ConnectionConfig> {
  const conn = (name: string): string => `  ${name} {
    remote_addrs = 198.51.100.1
    local {
      auth = psk
      id = ${name}.a.test
    }
    remote {
      auth = psk
      id = ${name}.b.test
    }
    children {
      net {
        local_ts = 10.0.0.0/24
        remote_ts = 10.1.0.0/24
      }
    }
  }
`;
  const r = loadConfigText(`connections {\n${conn('c1')}${conn('c2')}}\nsecrets {\n  ike-1 {\n    secret = s3cr3t-s3cr3t\n  }\n}\n`, 'T');
  assert.deepEqual(r.errors.map(String), []);
  return new Map(r.config!.connections.map((c) => [c.name, c]));
}

const CONNS = connections();

function spi(n: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(n));
  return b;
}

let nextId = 1;

/**
 * An IKE SA as the engine makes one: a responder SA (the peer started it) gets our SPI in spiR, an
 * initiator SA in spiI. `ids` are the identities it authenticates with.
 */
function mkSa(o: { initiator?: boolean; conn?: string; ids?: [string, string]; ourSpi?: number } = {}): IkeSa {
  const id = nextId++;
  const initiator = o.initiator ?? false;
  const ours = spi(o.ourSpi ?? 0x5a000000 + id);
  const theirs = spi(0xa5000000 + id);
  const sa = new IkeSa(id, initiator, initiator ? ours : theirs, { addr: '192.0.2.1', port: 500 }, { addr: `198.51.100.${id % 250}`, port: 500 }, 1000 + id);
  if (!initiator) sa.spiR = ours;
  if (o.conn !== undefined) sa.conn = CONNS.get(o.conn)!;
  if (o.ids) [sa.localId, sa.remoteId] = o.ids;
  return sa;
}

/** A responder SA, half-open until established(), with its half-open key. */
function responder(t: SaTable, o: { conn?: string; ids?: [string, string] } = {}): IkeSa {
  const sa = mkSa(o);
  sa.halfOpenKey = `${sa.remote.addr}|${sa.spiI.toString('hex')}`;
  t.add(sa, sa.halfOpenKey);
  return sa;
}

/** A responder SA that completed IKE_AUTH. */
function established(t: SaTable, o: { conn?: string; ids?: [string, string] } = {}): IkeSa {
  const sa = responder(t, { conn: 'c1', ids: ['a.test', 'b.test'], ...o });
  t.established(sa, sa.halfOpenKey);
  return sa;
}

test('admission is ok under the limit, without evicting anything', () => {
  const t = new SaTable(3);
  assert.equal(t.admission(), 'ok');
  const ho = responder(t);
  established(t);
  assert.equal(t.size, 2);
  assert.equal(t.admission(), 'ok', 'room for one more although one SA is half-open');
  assert.equal(t.get(ho.id), ho);
});

test('at the limit the oldest half-open SA is evicted first, then the next oldest', () => {
  const t = new SaTable(4);
  const live = established(t);
  const ho1 = responder(t);
  const ho2 = responder(t);
  const ho3 = responder(t);
  assert.equal(t.halfOpenCount, 3);
  assert.deepEqual(t.admission(), { evict: ho1, reason: 'half-open' });
  // admission() only names the SA: the caller removes it
  assert.equal(t.size, 4);
  assert.deepEqual(t.admission(), { evict: ho1, reason: 'half-open' });
  t.remove(ho1, ho1.halfOpenKey);
  assert.equal(t.admission(), 'ok');
  responder(t);
  assert.deepEqual(t.admission(), { evict: ho2, reason: 'half-open' });
  t.remove(ho2, ho2.halfOpenKey);
  responder(t);
  assert.deepEqual(t.admission(), { evict: ho3, reason: 'half-open' });
  assert.equal(t.get(live.id), live);
});

test('an SA that completed authentication is no longer a half-open candidate', () => {
  const t = new SaTable(2);
  const a = responder(t, { conn: 'c1', ids: ['a.test', 'b.test'] });
  const b = responder(t);
  t.established(a, a.halfOpenKey);
  assert.equal(t.halfOpenCount, 1);
  assert.deepEqual(t.admission(), { evict: b, reason: 'half-open' });
  t.established(b, b.halfOpenKey);
  assert.equal(t.halfOpenCount, 0);
  assert.equal(t.admission(), 'full');
});

test('our own half-open SAs (initiator) are never evicted', () => {
  const t = new SaTable(2);
  const mine1 = mkSa({ initiator: true, conn: 'c1' });
  const mine2 = mkSa({ initiator: true, conn: 'c2' });
  t.add(mine1);
  t.add(mine2);
  assert.equal(t.halfOpenCount, 0);
  assert.equal(t.admission(), 'full');
});

test('without half-open SAs, unresponsive ones go, oldest first; then the table is full', () => {
  const t = new SaTable(3);
  const a = established(t);
  const b = established(t);
  const c = established(t);
  assert.equal(t.admission(), 'full', 'live tunnels are never dropped to make room');
  t.setUnresponsive(b, true);
  t.setUnresponsive(a, true);
  assert.deepEqual(t.admission(), { evict: b, reason: 'unresponsive' }, 'b stopped answering first');
  // marking again does not make it younger
  t.setUnresponsive(b, true);
  assert.deepEqual(t.admission(), { evict: b, reason: 'unresponsive' });
  // b answers again: a is the candidate; when b stops answering again it is the youngest
  t.setUnresponsive(b, false);
  assert.deepEqual(t.admission(), { evict: a, reason: 'unresponsive' });
  t.setUnresponsive(b, true);
  assert.deepEqual(t.admission(), { evict: a, reason: 'unresponsive' });
  t.remove(a);
  assert.equal(t.admission(), 'ok');
  const d = established(t);
  assert.deepEqual(t.admission(), { evict: b, reason: 'unresponsive' });
  t.setUnresponsive(b, false);
  assert.equal(t.admission(), 'full');
  // an unknown SA answering again changes nothing
  t.setUnresponsive(mkSa(), false);
  assert.equal(t.admission(), 'full');
  for (const sa of [b, c, d]) assert.equal(t.get(sa.id), sa);
});

test('half-open SAs go before unresponsive ones, whichever came first', () => {
  const t = new SaTable(3);
  const slow = established(t);
  t.setUnresponsive(slow, true);
  const ho = responder(t);
  established(t);
  assert.deepEqual(t.admission(), { evict: ho, reason: 'half-open' });
  t.remove(ho, ho.halfOpenKey);
  established(t);
  assert.deepEqual(t.admission(), { evict: slow, reason: 'unresponsive' });
  // our own SA waiting for an answer to IKE_SA_INIT is unresponsive too and can go
  t.remove(slow);
  const mine = mkSa({ initiator: true, conn: 'c2' });
  t.add(mine);
  assert.equal(t.admission(), 'full');
  t.setUnresponsive(mine, true);
  assert.deepEqual(t.admission(), { evict: mine, reason: 'unresponsive' });
});

test('a removed SA is no candidate any more (half-open or unresponsive)', () => {
  const t = new SaTable(2);
  const ho = responder(t);
  const slow = established(t);
  t.setUnresponsive(slow, true);
  t.setUnresponsive(ho, true);
  t.remove(ho, ho.halfOpenKey);
  established(t);
  assert.deepEqual(t.admission(), { evict: slow, reason: 'unresponsive' });
  t.remove(slow);
  established(t);
  assert.equal(t.admission(), 'full');
  assert.equal(t.halfOpenCount, 0);
});

test('a limit of one; a changed limit applies to the next admission', () => {
  const t = new SaTable(1);
  const ho = responder(t);
  assert.deepEqual(t.admission(), { evict: ho, reason: 'half-open' });
  t.established(ho, ho.halfOpenKey);
  assert.equal(t.admission(), 'full');
  t.limit = 2;
  assert.equal(t.admission(), 'ok');
  established(t);
  assert.equal(t.admission(), 'full');
  t.limit = 1;
  assert.equal(t.admission(), 'full');
});

test('add() keeps every SA, also beyond the limit (an IKE SA and its rekeyed successor)', () => {
  const limit = 5;
  const t = new SaTable(limit);
  const all: IkeSa[] = [];
  for (let i = 0; i < 2 * limit; i++) all.push(established(t));
  assert.equal(t.size, 2 * limit);
  for (const sa of all) {
    assert.equal(t.get(sa.id), sa);
    assert.equal(t.bySpiBuf(sa.ourSpi), sa);
  }
  assert.equal(t.peers('a.test', 'b.test').size, 2 * limit);
  assert.equal(t.ofConnection('c1').size, 2 * limit);
});

test('indexes follow a responder SA through add, established and remove', () => {
  const t = new SaTable(10);
  const sa = mkSa({ conn: 'c1' });
  const key = '198.51.100.9|0011223344556677';
  t.add(sa, key);
  assert.equal(t.size, 1);
  assert.equal(t.get(sa.id), sa);
  assert.equal(t.bySpiBuf(sa.spiR), sa, 'found by our (responder) SPI');
  assert.equal(t.bySpiBuf(sa.spiI), undefined, 'not by the peer SPI');
  assert.equal(t.bySpiBuf(Buffer.from(sa.spiR)), sa, 'by value, not by Buffer identity');
  assert.equal(t.halfOpenByInit(key), sa);
  assert.equal(t.halfOpenCount, 1);
  // not yet authenticated: no identity, not counted for its connection
  assert.equal(t.ofConnection('c1').size, 0);
  assert.equal(t.peers('', '').size, 0);

  sa.localId = 'a.test';
  sa.remoteId = 'b.test';
  t.established(sa, key);
  assert.equal(t.halfOpenByInit(key), undefined, 'retransmitted IKE_SA_INIT no longer maps to it');
  assert.equal(t.halfOpenCount, 0);
  assert.deepEqual([...t.peers('a.test', 'b.test')], [sa]);
  assert.equal(t.peers('b.test', 'a.test').size, 0, 'identities are ordered (local, remote)');
  assert.deepEqual([...t.ofConnection('c1')], [sa]);
  assert.equal(t.ofConnection('c2').size, 0);
  assert.equal(t.get(sa.id), sa);
  assert.equal(t.bySpiBuf(sa.spiR), sa);

  t.remove(sa, key);
  assert.equal(t.size, 0);
  assert.equal(t.get(sa.id), undefined);
  assert.equal(t.bySpiBuf(sa.spiR), undefined);
  assert.equal(t.peers('a.test', 'b.test').size, 0);
  assert.equal(t.ofConnection('c1').size, 0);
  assert.equal(t.admission(), 'ok');
  // removing twice, or an SA never added, is harmless
  t.remove(sa, key);
  t.remove(mkSa({ conn: 'c2', ids: ['x', 'y'] }), 'nope');
  assert.equal(t.size, 0);
});

test('indexes follow an initiator SA: found by spiI, counted for its connection from the start', () => {
  const t = new SaTable(10);
  const sa = mkSa({ initiator: true, conn: 'c2' });
  t.add(sa);
  assert.equal(t.bySpiBuf(sa.spiI), sa);
  assert.equal(t.halfOpenCount, 0);
  assert.deepEqual([...t.ofConnection('c2')], [sa], 'so the connection is not initiated twice');
  sa.localId = 'c2.a.test';
  sa.remoteId = 'c2.b.test';
  t.established(sa);
  assert.deepEqual([...t.ofConnection('c2')], [sa], 'still once');
  assert.deepEqual([...t.peers('c2.a.test', 'c2.b.test')], [sa]);
  t.remove(sa);
  assert.equal(t.ofConnection('c2').size, 0);
  assert.equal(t.peers('c2.a.test', 'c2.b.test').size, 0);
  assert.equal(t.bySpiBuf(sa.spiI), undefined);
  // an SA without a connection (not matched yet) is fine too
  const bare = mkSa({ initiator: true });
  t.add(bare);
  t.established(bare);
  assert.equal(t.ofConnection('c1').size + t.ofConnection('c2').size, 0);
  t.remove(bare);
  assert.equal(t.size, 0);
});

test('several SAs per peer pair and per connection; removing one leaves the others', () => {
  const t = new SaTable(10);
  const a = established(t, { conn: 'c1', ids: ['gw', 'peer'] });
  const b = established(t, { conn: 'c1', ids: ['gw', 'peer'] });
  const c = established(t, { conn: 'c2', ids: ['gw', 'other'] });
  assert.deepEqual(new Set(t.peers('gw', 'peer')), new Set([a, b]));
  assert.deepEqual(new Set(t.ofConnection('c1')), new Set([a, b]));
  assert.deepEqual([...t.peers('gw', 'other')], [c]);
  t.remove(a, a.halfOpenKey);
  assert.deepEqual([...t.peers('gw', 'peer')], [b]);
  assert.deepEqual([...t.ofConnection('c1')], [b]);
  assert.deepEqual([...t.ofConnection('c2')], [c]);
  t.remove(b, b.halfOpenKey);
  assert.equal(t.peers('gw', 'peer').size, 0);
  assert.equal(t.ofConnection('c1').size, 0);
  assert.deepEqual([...t.peers('gw', 'other')], [c]);
});

test('identity pairs do not run into each other', () => {
  const t = new SaTable(10);
  const x = established(t, { ids: ['a', 'bc'] });
  const y = established(t, { ids: ['ab', 'c'] });
  assert.deepEqual([...t.peers('a', 'bc')], [x]);
  assert.deepEqual([...t.peers('ab', 'c')], [y]);
  assert.equal(t.peers('abc', '').size, 0);
  assert.equal(t.peers('', 'abc').size, 0);
});

test('removing an SA leaves a newer SA that took over its SPI or half-open key alone', () => {
  const t = new SaTable(10);
  const old = mkSa({ ourSpi: 0x77 });
  t.add(old, 'k');
  const successor = mkSa({ ourSpi: 0x77 });
  t.add(successor, 'k');
  assert.equal(t.bySpiBuf(spi(0x77)), successor);
  assert.equal(t.halfOpenByInit('k'), successor);
  t.remove(old, 'k');
  assert.equal(t.bySpiBuf(spi(0x77)), successor);
  assert.equal(t.halfOpenByInit('k'), successor);
  assert.equal(t.get(successor.id), successor);
  assert.equal(t.get(old.id), undefined);
  t.remove(successor, 'k');
  assert.equal(t.bySpiBuf(spi(0x77)), undefined);
  assert.equal(t.halfOpenByInit('k'), undefined);
});

test('spiKey reads the 8-byte SPI as one unsigned number', () => {
  assert.equal(spiKey(spi(0)), 0n);
  assert.equal(spiKey(Buffer.from('0102030405060708', 'hex')), 0x0102030405060708n);
  assert.equal(spiKey(Buffer.alloc(8, 0xff)), (1n << 64n) - 1n);
  assert.notEqual(spiKey(Buffer.from('0000000000000001', 'hex')), spiKey(Buffer.from('0100000000000000', 'hex')));
});

test('a peer pair with one SA, then three, then one again, then none: peers() always lists exactly the live ones', () => {
  const t = new SaTable(10);
  const a = established(t, { ids: ['gw', 'peer'] });
  const b = established(t, { ids: ['gw', 'peer'] });
  const c = established(t, { ids: ['gw', 'peer'] });
  assert.deepEqual(new Set(t.peers('gw', 'peer')), new Set([a, b, c]));
  t.remove(b, b.halfOpenKey);
  assert.deepEqual(new Set(t.peers('gw', 'peer')), new Set([a, c]));
  t.remove(a, a.halfOpenKey);
  assert.deepEqual([...t.peers('gw', 'peer')], [c]);
  t.remove(a, a.halfOpenKey);
  assert.deepEqual([...t.peers('gw', 'peer')], [c], 'removing an SA twice changes nothing');
  const d = established(t, { ids: ['gw', 'peer'] });
  assert.deepEqual(new Set(t.peers('gw', 'peer')), new Set([c, d]));
  t.remove(c, c.halfOpenKey);
  t.remove(d, d.halfOpenKey);
  assert.equal(t.peers('gw', 'peer').size, 0);
});
