/**
 * Memory helpers of the crypto module: keep() (copies for values an SA keeps, in blocks of kept
 * values only) and pooledRandom() (small random values cut from blocks drawn from the source).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ARENA_SIZE, keep, keepConcat } from '../../src/ikev2/crypto/keep.ts';
import { POOL_SIZE, pooledRandom } from '../../src/ikev2/crypto/random.ts';

test('keep(): an equal copy that does not share bytes with the original or with other kept values', () => {
  const a = Buffer.from('0011223344556677', 'hex');
  const ka = keep(a);
  assert.deepEqual(ka, a);
  a.fill(0xff);
  assert.equal(ka.toString('hex'), '0011223344556677', 'the original changed, the copy did not');
  const kb = keep(Buffer.alloc(16, 7));
  kb.fill(1);
  assert.equal(ka.toString('hex'), '0011223344556677', 'writing one kept value leaves the others alone');
  // not a view into node's shared Buffer pool
  assert.ok(ka.buffer.byteLength <= ARENA_SIZE);
  assert.notEqual(ka.buffer, Buffer.from('x').buffer);
});

test('keep(): empty values, values up to a block and large values', () => {
  assert.equal(keep(Buffer.alloc(0)).length, 0);
  const many = Array.from({ length: 200 }, (_, i) => keep(Buffer.alloc(33, i)));
  many.forEach((k, i) => assert.deepEqual(k, Buffer.alloc(33, i)));
  const big = keep(Buffer.alloc(4000, 9));
  assert.equal(big.buffer.byteLength, 4000, 'a large value has memory of its own');
  assert.deepEqual(big, Buffer.alloc(4000, 9));
});

test('pooledRandom(): small requests are cut from blocks of POOL_SIZE, each value its own bytes', () => {
  const asked: number[] = [];
  let counter = 0;
  const source = (n: number): Buffer => {
    asked.push(n);
    return Buffer.from(Array.from({ length: n }, () => counter++ & 0xff));
  };
  const r = pooledRandom(source);
  const a = r(32);
  const b = r(8);
  assert.equal(a.length, 32);
  assert.equal(b.length, 8);
  assert.deepEqual(asked, [POOL_SIZE], 'one block for both');
  assert.equal(b[0], 32, 'the next bytes of the block, none handed out twice');
  b.fill(0);
  assert.equal(a[31], 31, 'writing one value leaves the other alone');
  // a block is used up before the next is drawn
  for (let used = 40; used + 32 <= POOL_SIZE; used += 32) r(32);
  assert.deepEqual(asked, [POOL_SIZE]);
  r(32);
  assert.deepEqual(asked, [POOL_SIZE, POOL_SIZE]);
  // large requests go to the source as they are
  assert.equal(r(1000).length, 1000);
  assert.deepEqual(asked, [POOL_SIZE, POOL_SIZE, 1000]);
});

test('keepConcat(): one kept copy of the parts in order; empty parts and an empty result', () => {
  const parts = [Buffer.from('0102', 'hex'), Buffer.alloc(0), Buffer.from('030405', 'hex')];
  const k = keepConcat(parts);
  assert.equal(k.toString('hex'), '0102030405');
  parts[0]!.fill(0);
  assert.equal(k.toString('hex'), '0102030405', 'a copy');
  assert.equal(keepConcat([]).length, 0);
  assert.equal(keepConcat([Buffer.alloc(0)]).length, 0);
  const big = keepConcat([Buffer.alloc(300, 1), Buffer.alloc(300, 2)]);
  assert.equal(big.buffer.byteLength, 600, 'a large value has memory of its own');
});
