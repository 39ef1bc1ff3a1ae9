/**
 * The shared timer heap (src/common/clock.ts): entries come out by due time, entries due at the same
 * time in the order they were pushed, through growth, shrinking and compaction; the fake scheduler
 * fires them in that order.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeScheduler, TimerHeap } from '../../src/common/clock.ts';

test('10,000 random entries pop in (due time, push order) order, the heap grown and shrunk on the way', () => {
  const h = new TimerHeap();
  const pushed: { at: number; key: number; kind: number; n: number }[] = [];
  let x = 12345;
  const rnd = (): number => ((x = (x * 1103515245 + 12345) & 0x7fffffff), x);
  for (let n = 0; n < 10_000; n++) {
    const e = { at: rnd() % 500, key: (rnd() % 100_000) - 50, kind: rnd() % 10, n };
    pushed.push(e);
    h.push(e.at, e.key, e.kind);
  }
  assert.equal(h.size, 10_000);
  const want = [...pushed].sort((a, b) => a.at - b.at || a.n - b.n);
  for (const w of want) {
    assert.equal(h.peekAt(), w.at);
    const e = h.pop()!;
    assert.deepEqual([e.at, e.key, e.kind], [w.at, w.key, w.kind]);
  }
  assert.equal(h.size, 0);
  assert.equal(h.pop(), undefined);
  assert.equal(h.peek(), undefined);
  assert.equal(h.peekAt(), Infinity);
});

test('compact() keeps what the owner wants, in order, and the heap works on afterwards', () => {
  const h = new TimerHeap();
  for (let i = 0; i < 5000; i++) h.push(1000 - (i % 1000), i, i % 3);
  h.compact((key, kind) => kind === 1 && key % 7 === 0);
  const left: number[] = [];
  h.push(0, -1, 2);
  assert.deepEqual(h.peek(), { at: 0, seq: 5000, key: -1, kind: 2 });
  h.pop();
  for (let e = h.pop(); e; e = h.pop()) {
    assert.equal(e.kind, 1);
    assert.equal(e.key % 7, 0);
    left.push(e.at);
  }
  assert.equal(left.length, [...Array(5000).keys()].filter((i) => i % 3 === 1 && i % 7 === 0).length);
  assert.deepEqual(left, [...left].sort((a, b) => a - b));
});

test('the fake scheduler fires entries due at the same time in the order they were scheduled', () => {
  const s = new FakeScheduler(0);
  const fired: string[] = [];
  s.setHandler((key, kind, due) => fired.push(`${key}/${kind}@${due}`));
  s.schedule(20, 1, 1);
  s.schedule(10, 2, 2);
  s.schedule(20, 3, 3);
  s.schedule(10, 4, 4);
  s.advance(15);
  assert.deepEqual(fired, ['2/2@10', '4/4@10']);
  s.advance(10);
  assert.deepEqual(fired, ['2/2@10', '4/4@10', '1/1@20', '3/3@20']);
  assert.equal(s.pending, 0);
});
