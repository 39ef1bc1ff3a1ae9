/**
 * Giving back the memory of a burst. While thousands of peers come up at once the JavaScript heap
 * grows with the handshakes' short-lived objects; once they are done V8 keeps those pages (node runs
 * no idle-time collection): at 50,000 IKE SAs 40–50 MB more than the SAs need. When a burst of new
 * IKE SAs is over (at least BURST_MIN new SAs in busy ticks, then a quiet tick), one full
 * collection compacts the heap; V8 releases the emptied pages shortly after (in one run at 50,000,
 * 30 s after the burst: 162 MB of heap committed and 331 MB RSS, against 186 and 355 MB without). It
 * pauses the event loop once: 170 ms at 50,000 SAs, 50 ms at 10,000, below any peer's retransmission
 * timeout. Loading a configuration of thousands of connections leaves garbage of the same kind; a
 * memory-reducing collection after the load gives it back (10,000 connections: 152 → 108 MB RSS
 * before the first SA).
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/**
 * How far V8 lets the old generation grow past what survived its last full collection, in percent.
 * Left to itself V8 picks a factor of up to 4× from its own speed estimates, and during a burst the
 * handshakes' objects that outlive a young-generation collection (a half-open SA waits a round trip
 * for its IKE_AUTH) pile up in the old generation until the next full collection: at 50,000 new
 * IKE SAs, 336–363 MB RSS right after the last one. Growing by 20% at most keeps it at 311–320 MB
 * (bench/vs-strongswan.ts, four runs); the extra marking runs on V8's helper threads (30–70 µs per
 * new IKE SA at 50,000).
 */
export const HEAP_GROWING_PERCENT = 20;

/**
 * Caps V8's old-generation growth for the whole process (every thread's heap); see
 * HEAP_GROWING_PERCENT. A `--heap-growing-percent` given to node on its command line wins (returns
 * false then).
 */
export function limitHeapGrowth(
  percent: number = HEAP_GROWING_PERCENT,
  setFlags: (flags: string) => void = setFlagsFromString,
  nodeArgs: readonly string[] = process.execArgv,
): boolean {
  if (!Number.isInteger(percent) || percent < 1) throw new RangeError(`heap growth must be a positive whole percentage (got ${percent})`);
  if (nodeArgs.some((a) => /^--heap[-_]growing[-_]percent\b/.test(a))) return false;
  setFlags(`--heap-growing-percent=${percent}`);
  return true;
}

/** Growth of V8's committed heap over a configuration load that makes it worth compacting after (bytes). */
export const LOAD_COMPACT_MIN = 16 * 1024 * 1024;

/** New IKE SAs since the last compaction that make a burst worth compacting after. */
export const BURST_MIN = 2000;
/** A tick with fewer new IKE SAs than this is quiet. */
export const QUIET_MAX = 16;

/** What a compaction found (V8 gives the emptied pages back after it returns, so no "after"). */
export interface Compaction {
  newSas: number;
  /** V8's committed heap and the process's RSS before it, bytes. */
  heap: number;
  rss: number;
  /** How long the event loop paused. */
  ms: number;
}

/**
 * V8's full collection, made callable once (undefined where the runtime refuses); with `reduce`, in
 * its memory-reducing form (the one V8 runs before it gives up on an allocation: every page
 * compacted, the emptied ones unmapped before it returns). After loading 10,000 connections a plain
 * one left 66 of 67 MB of heap committed, the memory-reducing one 27 MB (25 MB in use) in 67 ms.
 * After a burst of 50,000 IKE SAs, where the heap is mostly the SAs, the memory-reducing one paused
 * the event loop for 294 ms against 170 for a plain one, for no clear gain in RSS.
 */
function fullGc(): ((reduce: boolean) => void) | undefined {
  try {
    setFlagsFromString('--expose-gc');
    const gc: unknown = runInNewContext('gc');
    if (typeof gc !== 'function') return undefined;
    const reducing = { type: 'major', execution: 'sync', flavor: 'last-resort' };
    return (reduce) => void (reduce ? (gc as (o: object) => void)(reducing) : (gc as () => void)());
  } catch {
    return undefined;
  }
}

export class BurstCompactor {
  private readonly gc: ((reduce: boolean) => void) | undefined;
  private last = 0;
  private grown = 0;
  compactions = 0;

  constructor(gc: ((reduce: boolean) => void) | undefined = fullGc()) {
    this.gc = gc;
  }

  /** Whether compaction is possible in this runtime. */
  get available(): boolean {
    return this.gc !== undefined;
  }

  /**
   * Called on a steady tick with the count of IKE SAs established so far (0 when the compactor was
   * made); compacts (and says what it did) on the first quiet tick after a burst.
   */
  tick(established: number): Compaction | undefined {
    const added = Math.max(0, established - this.last);
    this.last = established;
    // only busy ticks make a burst: a steady trickle of new peers never triggers a collection
    if (added >= QUIET_MAX) {
      this.grown += added;
      return undefined;
    }
    if (this.grown < BURST_MIN || this.gc === undefined) return undefined;
    const newSas = this.grown;
    this.grown = 0;
    return this.compact(newSas, false);
  }

  /**
   * After a configuration was loaded (and indexed): compacts when V8's committed heap grew by
   * LOAD_COMPACT_MIN or more since `heapBefore` (process.memoryUsage().heapTotal before the load).
   * Parsing a file of thousands of connections leaves several times their size in garbage, which V8
   * would otherwise keep committed: 10,000 connections, 78 MB of RSS, 25 of it the configuration.
   */
  afterLoad(heapBefore: number, heapNow: number = process.memoryUsage().heapTotal): Compaction | undefined {
    if (this.gc === undefined || heapNow - heapBefore < LOAD_COMPACT_MIN) return undefined;
    return this.compact(0, true);
  }

  private compact(newSas: number, reduce: boolean): Compaction {
    const before = process.memoryUsage();
    const t0 = performance.now();
    this.gc!(reduce);
    const ms = performance.now() - t0;
    this.compactions++;
    return { newSas, heap: before.heapTotal, rss: before.rss, ms };
  }
}
