/**
 * The daemon's compaction after a burst (src/daemon/heap.ts): once per burst of new IKE SAs, on the
 * first quiet tick, never while SAs keep coming or after a small burst.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BURST_MIN, BurstCompactor, QUIET_MAX } from '../../src/daemon/heap.ts';

test('one full collection on the first quiet tick after a burst', () => {
  let calls = 0;
  const c = new BurstCompactor(() => calls++);
  assert.equal(c.tick(BURST_MIN / 2), undefined, 'the first tick counts from 0: still coming');
  assert.equal(c.tick(BURST_MIN + 100), undefined, 'still coming');
  assert.equal(calls, 0);
  const done = c.tick(BURST_MIN + 100 + QUIET_MAX - 1);
  assert.ok(done, 'quiet after the burst: compacted');
  assert.equal(done.newSas, BURST_MIN + 100, 'the busy ticks\' SAs');
  assert.equal(calls, 1);
  assert.equal(c.tick(BURST_MIN + 100 + QUIET_MAX), undefined, 'once per burst');
  assert.equal(calls, 1);
  assert.equal(c.compactions, 1);
});

test('no collection after a small burst or a steady trickle of new SAs', () => {
  let calls = 0;
  const c = new BurstCompactor(() => calls++);
  let n = 0;
  for (let i = 0; i < 500; i++) c.tick((n += QUIET_MAX - 1)); // a trickle: quiet ticks adding up to more than BURST_MIN
  assert.ok(n > BURST_MIN);
  assert.equal(calls, 0);
  c.tick((n += BURST_MIN / 2)); // a small burst
  c.tick(n);
  assert.equal(calls, 0);
  c.tick((n += BURST_MIN)); // a burst
  c.tick(n); // then quiet
  assert.equal(calls, 1);
});

test('the runtime allows the full collection', () => {
  const c = new BurstCompactor();
  assert.equal(c.available, true);
  c.tick(BURST_MIN);
  const r = c.tick(BURST_MIN);
  assert.ok(r && r.heap > 0 && r.rss > 0 && r.ms >= 0);
});
