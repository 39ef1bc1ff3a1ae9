/**
 * A reader of VPP's stats segment: the shared memory where VPP keeps its counters (startup.conf
 * `statseg`). VPP hands the segment's memfd to clients over its stats socket (SCM_RIGHTS); Node
 * cannot receive a file descriptor there, so the segment is opened through
 * `/proc/<vpe_pid>/fd/<n>` (the memfd named "stat segment"; control_ping_reply carries vpe_pid),
 * which needs the rights to look into VPP's process (root, or CAP_SYS_PTRACE). It is read with
 * positioned reads, never mapped, and every pointer is checked against the segment's size.
 *
 * The layout (VPP 26.10, src/vlib/stats/shared.h; all little-endian, pointers are addresses in
 * VPP's own mapping and become offsets by subtracting the header's `base`):
 *
 *   header at 0:   u64 version, u64 base, u64 epoch, u64 in_progress, u64 directory_vector
 *   directory:     a vector of 144-byte entries: u32 type (+4 pad), u64 data/index/value, char name[128]
 *   vector:        the u32 element count sits 8 bytes before the vector's first element
 *   combined counter (type 3): vector (one per thread) of pointers to vectors of
 *                  { u64 packets, u64 bytes }, indexed by the object's stat index
 *
 * A read is consistent when `in_progress` was 0 and `epoch` did not change while it ran (VPP bumps
 * the epoch whenever it moves vectors); otherwise it is tried again, a few times.
 */
import { closeSync, fstatSync, openSync, readdirSync, readlinkSync, readSync } from 'node:fs';

export const STAT_DIR_TYPE_COUNTER_VECTOR_COMBINED = 3;
export const STATS_HEADER_SIZE = 40;
export const STATS_ENTRY_SIZE = 144;
export const STATS_NAME_SIZE = 128;
/** Bytes of one combined counter (u64 packets, u64 bytes). */
export const COMBINED_SIZE = 16;
/** Name of the ipsec SA counters (combined, indexed by the stat_index SA add replies carry). */
export const IPSEC_SA_COUNTERS = '/net/ipsec/sa';

/**
 * The memfd VPP creates for its stats segment, as /proc shows the link (the VPP emulator's segment
 * is a deleted file named "stat segment").
 */
const SEGMENT_LINK = /(^\/memfd:|\/)stat segment( \(deleted\))?$/;

/** Indexes closer together than this (counters) are read in one pread. */
const SPAN_GAP = 4096;
/** Largest single pread of a sparse span (bytes). */
const MAX_READ = 1 << 20;
/** Up to this many bytes, the whole range the requested indexes span is read in one pread. */
const DENSE_READ = 8 << 20;
/** Attempts at a consistent read before giving up for now. */
const ATTEMPTS = 5;
/** Directory entries read per pread while looking for a name. */
const DIR_CHUNK = 512;

export class StatsSegmentError extends Error {
  override readonly name = 'StatsSegmentError';
  /** VPP was changing the segment all the while: a later read may succeed. */
  readonly transient: boolean;
  constructor(message: string, transient = false) {
    super(message);
    this.transient = transient;
  }
}

/** Packets and bytes summed over VPP's threads, per requested stat index. */
export interface CombinedValues {
  packets: Float64Array;
  bytes: Float64Array;
}

/** Where positioned reads come from (a file descriptor, or a buffer in tests). */
export interface SegmentSource {
  readonly size: number;
  /** Reads `len` bytes at `pos` into `buf` at 0; returns the bytes read. */
  read(buf: Buffer, len: number, pos: number): number;
  close(): void;
}

export function fileSource(path: string): SegmentSource {
  const fd = openSync(path, 'r');
  try {
    const size = fstatSync(fd).size;
    return {
      size,
      read: (buf, len, pos) => readSync(fd, buf, 0, len, pos),
      close: () => closeSync(fd),
    };
  } catch (e) {
    closeSync(fd);
    throw e;
  }
}

export function bufferSource(image: Buffer): SegmentSource {
  return {
    size: image.length,
    read: (buf, len, pos) => image.copy(buf, 0, pos, Math.min(image.length, pos + len)),
    close: () => {},
  };
}

/**
 * The path of VPP's stats segment memfd in /proc (`/proc/<pid>/fd/<n>`), or why there is none. The
 * file's link names a memfd "stat segment"; `pid` is VPP's as its API reports it (vpe_pid).
 */
export function findStatsSegment(pid: number, proc = '/proc'): { path: string } | { error: string } {
  const dir = `${proc}/${pid}/fd`;
  let fds: string[];
  try {
    fds = readdirSync(dir);
  } catch (e) {
    return { error: `cannot list ${dir}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}` };
  }
  for (const fd of fds) {
    let link: string;
    try {
      link = readlinkSync(`${dir}/${fd}`);
    } catch {
      continue;
    }
    if (SEGMENT_LINK.test(link)) return { path: `${dir}/${fd}` };
  }
  return { error: `VPP (pid ${pid}) has no stats segment memfd in ${dir}` };
}

function u64(b: Buffer, o: number): number {
  return b.readUInt32LE(o) + b.readUInt32LE(o + 4) * 0x1_0000_0000;
}

export class StatsSegment {
  private readonly src: SegmentSource;
  private readonly hdr = Buffer.alloc(STATS_HEADER_SIZE);
  private readonly entry = Buffer.alloc(STATS_ENTRY_SIZE);
  private scratch = Buffer.alloc(64 * 1024);
  /** Directory index of each name found so far (checked again on every use). */
  private readonly dirIndex = new Map<string, number>();
  /** Consistent reads that had to be tried again (VPP was changing the segment). */
  retries = 0;

  constructor(src: SegmentSource) {
    this.src = src;
    if (src.size < STATS_HEADER_SIZE) throw new StatsSegmentError(`stats segment too small (${src.size} bytes)`);
  }

  get size(): number {
    return this.src.size;
  }

  close(): void {
    this.src.close();
  }

  /**
   * Packets and bytes of a combined counter (summed over threads) at each of `indexes`; an index
   * beyond the counter's vectors counts 0. Throws StatsSegmentError when the segment does not hold
   * the counter or is malformed, or when no consistent read succeeded.
   */
  readCombined(name: string, indexes: readonly number[]): CombinedValues {
    for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
      const h = this.header();
      if (h.inProgress !== 0) {
        this.retries++;
        continue;
      }
      const out = this.readCombinedOnce(name, indexes, h.base, h.dir);
      const after = this.header();
      if (after.epoch === h.epoch && after.inProgress === 0) return out;
      this.retries++;
    }
    throw new StatsSegmentError('the stats segment kept changing while it was read', true);
  }

  private header(): { epoch: number; inProgress: number; base: number; dir: number } {
    this.readAt(this.hdr, STATS_HEADER_SIZE, 0);
    return { base: u64(this.hdr, 8), epoch: u64(this.hdr, 16), inProgress: u64(this.hdr, 24), dir: u64(this.hdr, 32) };
  }

  /** Reads exactly `len` bytes at `pos` (bounds-checked) into `buf`. */
  private readAt(buf: Buffer, len: number, pos: number): void {
    if (!Number.isSafeInteger(pos) || pos < 0 || len < 0 || pos + len > this.src.size) {
      throw new StatsSegmentError(`read of ${len} bytes at ${pos} is outside the stats segment (${this.src.size} bytes)`);
    }
    let done = 0;
    while (done < len) {
      const n = this.src.read(done === 0 ? buf : buf.subarray(done), len - done, pos + done);
      if (n <= 0) throw new StatsSegmentError(`short read of the stats segment at ${pos + done}`);
      done += n;
    }
  }

  /** A pointer of VPP's turned into an offset in the segment (0 < offset < size). */
  private offset(ptr: number, base: number, what: string): number {
    const off = ptr - base;
    if (!Number.isSafeInteger(off) || off <= 8 || off >= this.src.size) throw new StatsSegmentError(`${what} points outside the stats segment`);
    return off;
  }

  /** Element count of the vector at `off`. */
  private vecLen(off: number): number {
    this.readAt(this.hdr, 4, off - 8);
    const n = this.hdr.readUInt32LE(0);
    // the header buffer is re-read at the start of every attempt, so using it here is safe
    return n;
  }

  private buf(len: number): Buffer {
    if (this.scratch.length < len) this.scratch = Buffer.alloc(Math.max(len, this.scratch.length * 2));
    return this.scratch;
  }

  /** The directory entry `name`: its index, type and data pointer. */
  private lookup(name: string, base: number, dirPtr: number): { type: number; data: number } {
    const dir = this.offset(dirPtr, base, 'the directory');
    const count = this.vecLen(dir);
    if (dir + count * STATS_ENTRY_SIZE > this.src.size) throw new StatsSegmentError('the directory runs past the stats segment');
    const want = Buffer.from(name, 'latin1');
    const matches = (b: Buffer, at: number): boolean =>
      b.compare(want, 0, want.length, at + 16, at + 16 + want.length) === 0 && b[at + 16 + want.length] === 0;
    const known = this.dirIndex.get(name);
    if (known !== undefined && known < count) {
      this.readAt(this.entry, STATS_ENTRY_SIZE, dir + known * STATS_ENTRY_SIZE);
      if (matches(this.entry, 0)) return { type: this.entry.readUInt32LE(0), data: u64(this.entry, 8) };
    }
    this.dirIndex.delete(name);
    for (let i = 0; i < count; i += DIR_CHUNK) {
      const n = Math.min(DIR_CHUNK, count - i);
      const b = this.buf(n * STATS_ENTRY_SIZE);
      this.readAt(b, n * STATS_ENTRY_SIZE, dir + i * STATS_ENTRY_SIZE);
      for (let j = 0; j < n; j++) {
        const at = j * STATS_ENTRY_SIZE;
        if (!matches(b, at)) continue;
        this.dirIndex.set(name, i + j);
        return { type: b.readUInt32LE(at), data: u64(b, at + 8) };
      }
    }
    throw new StatsSegmentError(`the stats segment has no ${name}`);
  }

  private readCombinedOnce(name: string, indexes: readonly number[], base: number, dirPtr: number): CombinedValues {
    const e = this.lookup(name, base, dirPtr);
    if (e.type !== STAT_DIR_TYPE_COUNTER_VECTOR_COMBINED) throw new StatsSegmentError(`${name} is not a combined counter (type ${e.type})`);
    const packets = new Float64Array(indexes.length);
    const bytes = new Float64Array(indexes.length);
    const per = this.offset(e.data, base, name);
    const threads = this.vecLen(per);
    if (threads > 4096 || per + threads * 8 > this.src.size) throw new StatsSegmentError(`${name} has an impossible thread count (${threads})`);
    const ptrs = Buffer.alloc(threads * 8);
    this.readAt(ptrs, threads * 8, per);
    let lo = Infinity;
    let hi = -1;
    for (const i of indexes) {
      if (i < lo) lo = i;
      if (i > hi) hi = i;
    }
    let order: number[] | undefined;
    for (let t = 0; t < threads; t++) {
      const vec = this.offset(u64(ptrs, t * 8), base, `${name} thread ${t}`);
      const len = this.vecLen(vec);
      if (vec + len * COMBINED_SIZE > this.src.size) throw new StatsSegmentError(`${name} thread ${t} runs past the stats segment`);
      const top = Math.min(hi, len - 1); // indexes at or past `len` are not yet validated by VPP: 0
      if (top < lo) continue;
      if ((top - lo + 1) * COMBINED_SIZE <= DENSE_READ) {
        // one pread of the range the indexes span (cheaper than sorting them, up to a few MB)
        const b = this.buf((top - lo + 1) * COMBINED_SIZE);
        this.readAt(b, (top - lo + 1) * COMBINED_SIZE, vec + lo * COMBINED_SIZE);
        for (let pos = 0; pos < indexes.length; pos++) {
          const i = indexes[pos]!;
          if (i > top) continue;
          const at = (i - lo) * COMBINED_SIZE;
          packets[pos] = packets[pos]! + u64(b, at);
          bytes[pos] = bytes[pos]! + u64(b, at + 8);
        }
        continue;
      }
      // Sparse over a large range: positions sorted by index, nearby counters read in one pread.
      order ??= Array.from(indexes.keys()).sort((a, b) => indexes[a]! - indexes[b]!);
      let k = 0;
      while (k < order.length) {
        const first = indexes[order[k]!]!;
        if (first >= len) break;
        // extend the span while the next index is close and the read stays bounded
        let last = first;
        let m = k + 1;
        while (m < order.length) {
          const next = indexes[order[m]!]!;
          if (next >= len || next - last > SPAN_GAP || (next - first + 1) * COMBINED_SIZE > MAX_READ) break;
          last = next;
          m++;
        }
        const span = (last - first + 1) * COMBINED_SIZE;
        const b = this.buf(span);
        this.readAt(b, span, vec + first * COMBINED_SIZE);
        for (let q = k; q < m; q++) {
          const pos = order[q]!;
          const at = (indexes[pos]! - first) * COMBINED_SIZE;
          packets[pos] = packets[pos]! + u64(b, at);
          bytes[pos] = bytes[pos]! + u64(b, at + 8);
        }
        k = m;
      }
    }
    return { packets, bytes };
  }
}
