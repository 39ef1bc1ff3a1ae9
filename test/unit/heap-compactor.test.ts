/**
 * The daemon's compaction after a burst (src/daemon/heap.ts): once per burst of new IKE SAs, on the
 * first quiet tick, never while SAs keep coming or after a small burst; after a configuration load
 * that grew the heap by LOAD_COMPACT_MIN, a memory-reducing one that gives the pages back; and the
 * cap on V8's old-generation growth that keeps a burst's garbage smaller.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { BURST_MIN, BurstCompactor, HEAP_GROWING_PERCENT, limitHeapGrowth, LOAD_COMPACT_MIN, QUIET_MAX } from '../../src/daemon/heap.ts';

test('one full collection on the first quiet tick after a burst', () => {
  let calls = 0;
  const c = new BurstCompactor((reduce) => {
    assert.equal(reduce, false, 'a plain full collection after a burst of SAs');
    calls++;
  });
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

test('after a configuration load: one memory-reducing collection when the heap grew by LOAD_COMPACT_MIN, none otherwise', () => {
  const calls: boolean[] = [];
  const c = new BurstCompactor((reduce) => calls.push(reduce));
  const mb = 1024 * 1024;
  assert.equal(c.afterLoad(100 * mb, 100 * mb + LOAD_COMPACT_MIN - 1), undefined, 'a small configuration');
  assert.equal(c.afterLoad(100 * mb, 90 * mb), undefined, 'the heap shrank');
  assert.deepEqual(calls, []);
  const r = c.afterLoad(100 * mb, 100 * mb + LOAD_COMPACT_MIN);
  assert.ok(r);
  assert.equal(r.newSas, 0);
  assert.deepEqual(calls, [true]);
  assert.equal(c.compactions, 1);
});

test('the memory-reducing collection gives the emptied heap back where a plain one keeps it committed', () => {
  // Child processes: what this test runner has allocated must not blur the figures.
  const heapUrl = new URL('../../src/daemon/heap.ts', import.meta.url).href;
  const run = (how: 'load' | 'burst'): { grown: number; after: number; ran: boolean } => {
    const script = `
      const { BurstCompactor, BURST_MIN } = await import(${JSON.stringify(heapUrl)});
      const c = new BurstCompactor();
      let junk = [];
      for (let i = 0; i < 400000; i++) junk.push({ a: 'x' + i, b: [i, i + 1], c: { d: i } });
      const keep = junk.filter((_, i) => i % 10 === 0);
      junk = undefined;
      const grown = process.memoryUsage().heapTotal;
      const r = ${how === 'load' ? 'c.afterLoad(0, grown)' : '(c.tick(BURST_MIN), c.tick(BURST_MIN))'};
      process.stdout.write(JSON.stringify({ grown, after: process.memoryUsage().heapTotal, ran: r !== undefined, kept: keep.length }));`;
    return JSON.parse(execFileSync(process.execPath, ['--max-semi-space-size=4', '--input-type=module', '-e', script], { encoding: 'utf8' })) as { grown: number; after: number; ran: boolean };
  };
  const load = run('load');
  const burst = run('burst');
  assert.ok(load.ran && burst.ran);
  assert.ok(load.grown > 60 * 1024 * 1024, `the garbage grew the heap (${load.grown} bytes)`);
  assert.ok(load.after < load.grown / 2, `memory-reducing: committed heap ${load.grown} -> ${load.after} bytes`);
  assert.ok(burst.after > 2 * load.after, `plain: committed heap ${burst.grown} -> ${burst.after} bytes, against ${load.after}`);
});
