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

test('limitHeapGrowth makes V8 size the old generation at 1.2× what survived a full collection (with and without)', () => {
  // V8 reports the factor it grew the old generation's limit by after each full collection
  // (--trace-gc-verbose: "[HeapController] factor F based on ..."); left alone it picks its own.
  const heapUrl = new URL('../../src/daemon/heap.ts', import.meta.url).href;
  const script = (limit: boolean): string => `
    const { limitHeapGrowth } = await import(${JSON.stringify(heapUrl)});
    ${limit ? 'limitHeapGrowth();' : ''}
    const live = [];
    for (let i = 0; i < 300000; i++) live.push({ a: i, b: [i] });
    globalThis.gc();`;
  const factors = (limit: boolean): string[] => {
    const out = execFileSync(process.execPath, ['--expose-gc', '--trace-gc-verbose', '--input-type=module', '-e', script(limit)], { encoding: 'utf8', maxBuffer: 64 << 20 });
    return [...out.matchAll(/\[HeapController\] factor ([0-9.]+)/g)].map((m) => m[1]!);
  };
  const limited = factors(true);
  const free = factors(false);
  assert.ok(limited.length > 0 && free.length > 0, 'V8 reported its growth factor');
  assert.deepEqual([...new Set(limited)], ['1.2'], `with the limit: ${limited.join(', ')}`);
  assert.ok(free.some((f) => f !== '1.2'), `without it V8 picks its own factor: ${free.join(', ')}`);
});

test('limitHeapGrowth sets V8 growing factor and refuses nonsense', () => {
  const set: string[] = [];
  limitHeapGrowth(HEAP_GROWING_PERCENT, (f) => set.push(f));
  limitHeapGrowth(35, (f) => set.push(f));
  assert.deepEqual(set, ['--heap-growing-percent=20', '--heap-growing-percent=35']);
  // node started with its own setting: that one stays
  assert.equal(limitHeapGrowth(HEAP_GROWING_PERCENT, (f) => set.push(f), ['--max-semi-space-size=4', '--heap-growing-percent=50']), false);
  assert.equal(set.length, 2);
  assert.throws(() => limitHeapGrowth(0, () => {}), RangeError);
  assert.throws(() => limitHeapGrowth(2.5, () => {}), RangeError);
});
