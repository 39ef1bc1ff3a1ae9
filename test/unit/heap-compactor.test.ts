/**
 * The daemon's compaction after a burst (src/daemon/heap.ts): once per burst of new IKE SAs, on the
 * first quiet tick, never while SAs keep coming or after a small burst; and the cap on V8's
 * old-generation growth that keeps a burst's garbage smaller.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { BURST_MIN, BurstCompactor, HEAP_GROWING_PERCENT, limitHeapGrowth, QUIET_MAX } from '../../src/daemon/heap.ts';

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

test('limitHeapGrowth makes V8 collect the old generation more often as it grows (same workload, with and without)', () => {
  // A burst shaped like the daemon's: a growing live set (established SAs) while short-lived
  // records keep being replaced (half-open SAs). V8 reports each full collection (--trace-gc).
  const heapUrl = new URL('../../src/daemon/heap.ts', import.meta.url).href;
  const script = (limit: boolean): string => `
    const { limitHeapGrowth } = await import(${JSON.stringify(heapUrl)});
    ${limit ? 'limitHeapGrowth();' : ''}
    const live = []; const ring = new Array(3000);
    for (let i = 0; i < 2000000; i++) {
      live.push({ a: i, b: 'x' + i, c: [i, i] });
      ring[i % 3000] = { big: new Array(20).fill(i), s: 'y' + i };
    }`;
  const fullCollections = (limit: boolean): number => {
    const out = execFileSync(process.execPath, ['--trace-gc', '--input-type=module', '-e', script(limit)], { encoding: 'utf8', maxBuffer: 64 << 20 });
    return out.split('\n').filter((l) => l.includes('Mark-Compact')).length;
  };
  const free = fullCollections(false);
  const limited = fullCollections(true);
  assert.ok(limited > free, `full collections while the heap grew to ~300 MB: ${limited} with the limit, ${free} without`);
});

test('limitHeapGrowth sets V8 growing factor and refuses nonsense', () => {
  const set: string[] = [];
  limitHeapGrowth(HEAP_GROWING_PERCENT, (f) => set.push(f));
  limitHeapGrowth(35, (f) => set.push(f));
  assert.deepEqual(set, ['--heap-growing-percent=20', '--heap-growing-percent=35']);
  assert.throws(() => limitHeapGrowth(0, () => {}), RangeError);
  assert.throws(() => limitHeapGrowth(2.5, () => {}), RangeError);
});
