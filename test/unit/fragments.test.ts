/**
 * IKE fragmentation (RFC 7383) pieces: fragment sizes as strongSwan reads them, the IKE message
 * budget of a datagram, and the reassembly of fragments split by IkeCipher with loss, duplication
 * and reordering, within its limits.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { IkeCipher, IntegrityError } from '../../src/ikev2/crypto/protect.ts';
import { encrAlg, prfAlg } from '../../src/ikev2/crypto/suites.ts';
import type { IkeSuite } from '../../src/ikev2/crypto/prf.ts';
import { decodeMessage } from '../../src/ikev2/codec/message.ts';
import type { IkeHeader, SkfPayload } from '../../src/ikev2/codec/types.ts';
import { EncrId, ExchangeType, HeaderFlag, KeId, PayloadType, PrfId } from '../../src/ikev2/constants.ts';
import { DEFAULT_FRAGMENT_LIMITS, fragmentSizeFor, ikeBudget, Reassembly, type FragmentLimits } from '../../src/ikev2/engine/fragments.ts';

const suite: IkeSuite = { encr: encrAlg(EncrId.AES_GCM_16, 256)!, prf: prfAlg(PrfId.HMAC_SHA2_256)!, integ: null, ke: KeId.CURVE25519 };

function ciphers(): { ini: IkeCipher; res: IkeCipher } {
  const keys = {
    skD: randomBytes(32),
    skAi: Buffer.alloc(0),
    skAr: Buffer.alloc(0),
    skEi: randomBytes(suite.encr.keymatLen),
    skEr: randomBytes(suite.encr.keymatLen),
    skPi: randomBytes(32),
    skPr: randomBytes(32),
  };
  return { ini: new IkeCipher(suite, keys, true, randomBytes), res: new IkeCipher(suite, keys, false, randomBytes) };
}

const header: IkeHeader = {
  spiI: Buffer.from('0102030405060708', 'hex'),
  spiR: Buffer.from('1112131415161718', 'hex'),
  nextPayload: PayloadType.SKF,
  version: 0x20,
  exchange: ExchangeType.IKE_AUTH,
  flags: HeaderFlag.INITIATOR,
  messageId: 1,
  length: 0,
};

function skfOf(datagram: Buffer): SkfPayload {
  const p = decodeMessage(datagram).payloads[0]!;
  assert.equal(p.type, PayloadType.SKF);
  return p as SkfPayload;
}

/** Split `plain` into fragments of at most `budget` bytes, as a peer would send them. */
function split(plain: Buffer, budget: number, mid = 1) {
  const { ini, res } = ciphers();
  const datagrams = ini.sealFragments({ ...header, messageId: mid }, PayloadType.IDi, plain, budget);
  return { res, datagrams };
}

/** Feed datagrams through precheck → decrypt → add, as the engine does; returns what came out. */
function feed(res: IkeCipher, datagrams: Buffer[], limits: FragmentLimits = DEFAULT_FRAGMENT_LIMITS) {
  let r: Reassembly | undefined;
  const drops: string[] = [];
  let done: { firstType: number; plain: Buffer } | undefined;
  for (const d of datagrams) {
    const skf = skfOf(d);
    const mid = d.readUInt32BE(20);
    const early = Reassembly.precheck(r, mid, skf.fragmentNumber, skf.totalFragments, limits);
    if (early) {
      drops.push(early);
      continue;
    }
    const plain = res.openFragment(d, skf);
    if (r && (r.mid !== mid || skf.totalFragments > r.total)) {
      drops.push('superseded');
      r = undefined;
    }
    r ??= new Reassembly(mid, skf.totalFragments, 0);
    const out = r.add(skf.fragmentNumber, skf.innerType, plain, limits);
    if (out.kind === 'drop') {
      drops.push(out.reason);
      if (out.reason !== 'duplicate') r = undefined;
    } else if (out.kind === 'done') {
      done = { firstType: out.firstType, plain: out.plain };
      r = undefined;
    }
  }
  return { done, drops, pending: r };
}

test('fragment sizes follow strongSwan: 1280 for both families by default, 0 = 576 for IPv4 and 1280 for IPv6, per-family values win, the transport caps', () => {
  assert.equal(fragmentSizeFor(4, 1280, undefined), 1280);
  assert.equal(fragmentSizeFor(6, 1280, undefined), 1280);
  assert.equal(fragmentSizeFor(4, 0, undefined), 576);
  assert.equal(fragmentSizeFor(6, 0, undefined), 1280);
  assert.equal(fragmentSizeFor(4, 1280, 1000), 1000);
  assert.equal(fragmentSizeFor(4, 1280, 0), 1280);
  assert.equal(fragmentSizeFor(6, 9000, undefined, 2048), 2048);
  assert.equal(fragmentSizeFor(6, 1000, undefined, 2048), 1000);
});

test('the IKE budget of a datagram: IP and UDP headers, and the non-ESP marker unless a port is 500', () => {
  assert.equal(ikeBudget(1280, 4, 500, 500), 1280 - 20 - 8);
  assert.equal(ikeBudget(1280, 6, 500, 500), 1280 - 40 - 8);
  assert.equal(ikeBudget(1280, 4, 4500, 4500), 1280 - 20 - 8 - 4);
  assert.equal(ikeBudget(1280, 6, 4500, 500), 1280 - 40 - 8);
  assert.equal(ikeBudget(1280, 4, 10500, 14500), 1280 - 20 - 8 - 4);
  assert.equal(ikeBudget(30, 6, 500, 500), 1);
});

test('split and reassembled: in order, reversed, shuffled, with every fragment twice; each datagram within the budget', () => {
  const plain = randomBytes(3000);
  for (const budget of [228, 500, 1000, 1252]) {
    const { res, datagrams } = split(plain, budget);
    assert.ok(datagrams.length > 1);
    for (const d of datagrams) assert.ok(d.length <= budget, `${d.length} <= ${budget}`);
    const orders = [datagrams, [...datagrams].reverse(), [...datagrams].sort(() => Math.random() - 0.5), datagrams.flatMap((d) => [d, d])];
    for (const order of orders) {
      const { done, drops } = feed(res, order);
      assert.ok(done, `budget ${budget}: reassembled`);
      assert.equal(done.firstType, PayloadType.IDi, 'Next Payload of fragment 1');
      assert.ok(done.plain.equals(plain));
      assert.ok(drops.every((x) => x === 'duplicate'));
      assert.equal(drops.length, order.length - datagrams.length > 0 ? datagrams.length - 1 : 0);
    }
  }
});

test('a lost fragment keeps the set incomplete; the retransmitted set completes it, its other fragments dropped as duplicates', () => {
  const plain = randomBytes(2000);
  const { res, datagrams } = split(plain, 500);
  const n = datagrams.length;
  const lossy = datagrams.filter((_, i) => i !== 2);
  const first = feed(res, lossy);
  assert.equal(first.done, undefined);
  assert.equal(first.pending?.count, n - 1);
  // The whole set again (a retransmission): the state of the first pass continues.
  const r = first.pending!;
  let done: Buffer | undefined;
  let dups = 0;
  for (const d of datagrams) {
    const skf = skfOf(d);
    const early = Reassembly.precheck(r, 1, skf.fragmentNumber, skf.totalFragments, DEFAULT_FRAGMENT_LIMITS);
    if (early) {
      assert.equal(early, 'duplicate');
      dups++;
      continue;
    }
    const out = r.add(skf.fragmentNumber, skf.innerType, res.openFragment(d, skf), DEFAULT_FRAGMENT_LIMITS);
    if (out.kind === 'done') done = out.plain;
  }
  assert.equal(dups, n - 1);
  assert.ok(done?.equals(plain));
});

test('Total Fragments: a higher total restarts the set, a lower one is dropped (RFC 7383 §2.6)', () => {
  const plain = randomBytes(2000);
  const { ini, res } = ciphers();
  const big = ini.sealFragments(header, PayloadType.IDi, plain, 1000); // fewer fragments
  const small = ini.sealFragments(header, PayloadType.IDi, plain, 400); // more fragments
  assert.ok(small.length > big.length);
  // Started with large fragments, the sender switches to smaller ones: start over.
  const up = feed(res, [big[0]!, ...small]);
  assert.deepEqual(up.drops, ['superseded']);
  assert.ok(up.done?.plain.equals(plain));
  // Started with small ones; a stale large one arrives: dropped, the set completes.
  const down = feed(res, [small[0]!, big[1]!, ...small.slice(1)]);
  assert.deepEqual(down.drops, ['stale_total']);
  assert.ok(down.done?.plain.equals(plain));
});

test('limits: fragment number out of range, more fragments than allowed, more bytes than allowed', () => {
  const limits = { ...DEFAULT_FRAGMENT_LIMITS, maxFragments: 4, maxBytes: 1500 };
  assert.equal(Reassembly.precheck(undefined, 1, 0, 3, limits), 'invalid');
  assert.equal(Reassembly.precheck(undefined, 1, 4, 3, limits), 'invalid');
  assert.equal(Reassembly.precheck(undefined, 1, 1, 5, limits), 'too_many');
  assert.equal(Reassembly.precheck(undefined, 1, 1, 4, limits), undefined);
  // 3 fragments of 2000 bytes of plaintext: the second pushes the set over 1,500 bytes.
  const { res, datagrams } = split(randomBytes(2000), 800);
  assert.equal(datagrams.length, 3);
  const out = feed(res, datagrams, limits);
  assert.equal(out.done, undefined);
  assert.deepEqual(out.drops, ['too_big']);
  const r = new Reassembly(1, 2, 0);
  assert.deepEqual(r.add(1, 35, Buffer.alloc(1000), limits), { kind: 'more' });
  assert.deepEqual(r.add(1, 35, Buffer.alloc(1000), limits), { kind: 'drop', reason: 'duplicate', discarded: 1 });
  assert.deepEqual(r.add(2, 0, Buffer.alloc(501), limits), { kind: 'drop', reason: 'too_big', discarded: 2 });
  assert.equal(r.bytes, 1000, 'nothing of the refused fragment kept');
});

test('a fragment of another message ID does not join the set under way', () => {
  const plain = randomBytes(1500);
  const { ini, res } = ciphers();
  const a = ini.sealFragments({ ...header, messageId: 1 }, PayloadType.IDi, plain, 500);
  const b = ini.sealFragments({ ...header, messageId: 2 }, PayloadType.IDi, plain, 500);
  const out = feed(res, [a[0]!, ...b]);
  assert.deepEqual(out.drops, ['superseded']);
  assert.ok(out.done?.plain.equals(plain));
});

test('an SKF fragment with a bad ICV is refused before it could be kept', () => {
  const { res, datagrams } = split(randomBytes(1200), 500);
  const bad = Buffer.from(datagrams[1]!);
  bad[bad.length - 1]! ^= 1;
  assert.throws(() => res.openFragment(bad, skfOf(bad)), IntegrityError);
  // The genuine fragments still reassemble.
  assert.ok(feed(res, datagrams).done);
});
