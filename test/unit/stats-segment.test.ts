/**
 * The stats segment reader against hand-built segment images laid out as VPP 26.10 lays out its
 * shared header, directory and combined counters (src/vlib/stats/shared.h, vppinfra vectors).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, symlinkSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bufferSource, fileSource, findStatsSegment, StatsSegment, StatsSegmentError, type SegmentSource } from '../../src/vpp/stats-segment.ts';

const BASE = 0x7f12_3400_0000; // VPP's mapping address of the segment (pointers in the image are absolute)

interface ImageSpec {
  /** Directory entries: name, type and, for combined counters, per-thread [packets, bytes][] vectors. */
  entries: { name: string; type: number; threads?: [number, number][][]; value?: number }[];
  epoch?: number;
  inProgress?: number;
  size?: number;
}

/** Writes a vector's u32 length 8 bytes before its data at `at` (a vec_header_t). */
function vecHeader(img: Buffer, at: number, len: number): void {
  img.writeUInt32LE(len, at - 8);
  img.writeUInt8(0, at - 4); // hdr_size etc.
}

function u64(img: Buffer, at: number, v: number): void {
  img.writeBigUInt64LE(BigInt(v), at);
}

/** Lays the segment out by hand: header at 0, directory at 4096, counters after it. */
function buildImage(spec: ImageSpec): Buffer {
  const img = Buffer.alloc(spec.size ?? 1 << 20);
  const dir = 4096;
  u64(img, 0, 2); // version
  u64(img, 8, BASE);
  u64(img, 16, spec.epoch ?? 7);
  u64(img, 24, spec.inProgress ?? 0);
  u64(img, 32, BASE + dir);
  vecHeader(img, dir, spec.entries.length);
  let free = dir + spec.entries.length * 144 + 64;
  const alloc = (n: number): number => {
    const at = free + 8; // room for the vector header
    free = at + n + 8;
    free = (free + 15) & ~15;
    return at;
  };
  spec.entries.forEach((e, i) => {
    const at = dir + i * 144;
    img.writeUInt32LE(e.type, at);
    img.write(e.name, at + 16, 'latin1');
    if (e.threads) {
      const per = alloc(e.threads.length * 8);
      vecHeader(img, per, e.threads.length);
      e.threads.forEach((counters, t) => {
        const vec = alloc(counters.length * 16);
        vecHeader(img, vec, counters.length);
        counters.forEach(([p, b], k) => {
          u64(img, vec + k * 16, p);
          u64(img, vec + k * 16 + 8, b);
        });
        u64(img, per + t * 8, BASE + vec);
      });
      u64(img, at + 8, BASE + per);
    } else {
      u64(img, at + 8, e.value ?? 0);
    }
  });
  return img;
}

const COMBINED = 3;
const SIMPLE = 2;

test('combined counters are summed over threads, at the requested stat indexes', () => {
  const t0: [number, number][] = [
    [1, 100],
    [2, 200],
    [3, 300],
    [4, 2 ** 40 + 5],
  ];
  const t1: [number, number][] = [
    [10, 1000],
    [20, 2000],
  ];
  const img = buildImage({
    entries: [
      { name: '/sys/vector_rate', type: 1, value: 5 },
      { name: '/net/ipsec/sa/lost', type: SIMPLE },
      { name: '/net/ipsec/sa', type: COMBINED, threads: [t0, t1] },
    ],
  });
  const seg = new StatsSegment(bufferSource(img));
  const v = seg.readCombined('/net/ipsec/sa', [3, 1, 0, 9]);
  assert.deepEqual([...v.packets], [4, 22, 11, 0]);
  assert.deepEqual([...v.bytes], [2 ** 40 + 5, 2200, 1100, 0]);
  // the directory index is remembered and still checked by name
  const again = seg.readCombined('/net/ipsec/sa', [2]);
  assert.deepEqual([...again.packets], [3]);
});

function spyReads(img: Buffer): { src: SegmentSource; reads: { len: number; pos: number }[] } {
  const reads: { len: number; pos: number }[] = [];
  const src = bufferSource(img);
  return { reads, src: { size: src.size, read: (b, len, pos) => (reads.push({ len, pos }), src.read(b, len, pos)), close: () => {} } };
}

/** The reads of counter data (not the header, directory entries or vector lengths). */
function counterReads(reads: { len: number; pos: number }[]): { len: number; pos: number }[] {
  return reads.filter((r) => r.len >= 16 && r.len !== 144 && r.len !== 40 && r.len !== 8 && r.len !== 4);
}

test('indexes within a few MB of each other are read with one pread of their range, in any order', () => {
  const counters: [number, number][] = Array.from({ length: 20_000 }, (_, i) => [i, i * 10]);
  const img = buildImage({ entries: [{ name: '/net/ipsec/sa', type: COMBINED, threads: [counters] }], size: 1 << 20 });
  const { src, reads } = spyReads(img);
  const seg = new StatsSegment(src);
  const idx = [19_999, 5, 6, 10_000, 7, 5];
  const v = seg.readCombined('/net/ipsec/sa', idx);
  assert.deepEqual([...v.packets], idx);
  assert.deepEqual([...v.bytes], idx.map((i) => i * 10));
  assert.deepEqual(counterReads(reads).map((r) => r.len), [(19_999 - 5 + 1) * 16]);
});

test('indexes spread over more than 8 MB of counters are read in separate spans, and land in their places', () => {
  const n = 600_000; // 9.6 MB of counters
  const counters: [number, number][] = Array.from({ length: n }, (_, i) => [i, i * 10]);
  const img = buildImage({ entries: [{ name: '/net/ipsec/sa', type: COMBINED, threads: [counters] }], size: 11 << 20 });
  const { src, reads } = spyReads(img);
  const seg = new StatsSegment(src);
  const idx = [n - 1, 5, 6, 300_000, 7, n + 5];
  const v = seg.readCombined('/net/ipsec/sa', idx);
  assert.deepEqual([...v.packets], [n - 1, 5, 6, 300_000, 7, 0]);
  assert.deepEqual([...v.bytes], [(n - 1) * 10, 50, 60, 3_000_000, 70, 0]);
  // three spans (5..7, 300000, n − 1), none of them the whole vector
  const big = counterReads(reads);
  assert.equal(big.length, 3, JSON.stringify(big));
  assert.ok(big.every((r) => r.len <= 3 * 16));
});

test('a segment VPP is changing is read again; one that never settles is an error for now', () => {
  const img = buildImage({ entries: [{ name: '/net/ipsec/sa', type: COMBINED, threads: [[[1, 2]]] }] });
  const src = bufferSource(img);
  let headerReads = 0;
  // the epoch moves once between the start and the end of the first read
  const moving: SegmentSource = {
    size: src.size,
    read: (b, len, pos) => {
      if (pos === 0 && len === 40 && ++headerReads === 2) img.writeBigUInt64LE(8n, 16);
      return src.read(b, len, pos);
    },
    close: () => {},
  };
  const seg = new StatsSegment(moving);
  assert.deepEqual([...seg.readCombined('/net/ipsec/sa', [0]).packets], [1]);
  assert.equal(seg.retries, 1);

  const busy = buildImage({ inProgress: 1, entries: [{ name: '/net/ipsec/sa', type: COMBINED, threads: [[[1, 2]]] }] });
  assert.throws(
    () => new StatsSegment(bufferSource(busy)).readCombined('/net/ipsec/sa', [0]),
    (e: unknown) => e instanceof StatsSegmentError && e.transient,
  );
});

test('malformed segments are errors, never reads outside the segment', () => {
  const ok = buildImage({ entries: [{ name: '/net/ipsec/sa', type: COMBINED, threads: [[[1, 2]]] }] });
  const cases: [string, (img: Buffer) => void, RegExp][] = [
    ['no such counter', (img) => img.write('/net/ipsec/xx', 4096 + 16, 'latin1'), /has no \/net\/ipsec\/sa/],
    ['wrong type', (img) => img.writeUInt32LE(SIMPLE, 4096), /not a combined counter/],
    ['directory pointer outside', (img) => u64(img, 32, BASE + 2 ** 30), /directory points outside/],
    ['directory pointer below base', (img) => u64(img, 32, BASE - 4096), /directory points outside/],
    ['directory longer than the segment', (img) => img.writeUInt32LE(0xffffff, 4096 - 8), /runs past/],
    ['counter pointer outside', (img) => u64(img, 4096 + 8, 12), /points outside/],
    ['impossible thread count', (img) => img.writeUInt32LE(1e6, Number(img.readBigUInt64LE(4096 + 8) - BigInt(BASE)) - 8), /thread count/],
  ];
  for (const [what, spoil, re] of cases) {
    const img = Buffer.from(ok);
    spoil(img);
    assert.throws(() => new StatsSegment(bufferSource(img)).readCombined('/net/ipsec/sa', [0]), re, what);
  }
  assert.throws(() => new StatsSegment(bufferSource(Buffer.alloc(16))), /too small/);
  // a counter vector that ends past the segment
  const short = buildImage({ entries: [{ name: '/net/ipsec/sa', type: COMBINED, threads: [[[1, 2]]] }], size: 8192 });
  const per = Number(short.readBigUInt64LE(4096 + 8) - BigInt(BASE));
  const vec = Number(short.readBigUInt64LE(per) - BigInt(BASE));
  short.writeUInt32LE(100_000, vec - 8);
  assert.throws(() => new StatsSegment(bufferSource(short)).readCombined('/net/ipsec/sa', [0]), /runs past/);
});

test('findStatsSegment picks the memfd named "stat segment" among a process\'s fds', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'statseg-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  mkdirSync(join(dir, '42/fd'), { recursive: true });
  symlinkSync('/dev/null', join(dir, '42/fd/0'));
  symlinkSync('/memfd:buffers-numa-0 (deleted)', join(dir, '42/fd/7'));
  symlinkSync('/memfd:stat segment (deleted)', join(dir, '42/fd/6'));
  assert.deepEqual(findStatsSegment(42, dir), { path: join(dir, '42/fd/6') });
  const none = findStatsSegment(43, dir);
  assert.ok('error' in none && /cannot list/.test(none.error));
  mkdirSync(join(dir, '44/fd'), { recursive: true });
  const empty = findStatsSegment(44, dir);
  assert.ok('error' in empty && /no stats segment memfd/.test(empty.error));
  // a real file works as the source too
  const f = join(dir, 'seg');
  writeFileSync(f, buildImage({ entries: [{ name: '/net/ipsec/sa', type: COMBINED, threads: [[[5, 6]]] }] }));
  const seg = new StatsSegment(fileSource(f));
  t.after(() => seg.close());
  assert.deepEqual([...seg.readCombined('/net/ipsec/sa', [0]).bytes], [6]);
});
