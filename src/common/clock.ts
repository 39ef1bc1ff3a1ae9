/**
 * Time for the whole daemon: one clock and one timer heap shared by every IKE SA.
 *
 * Timers are plain entries (due time, numeric key, kind) in a binary min-heap; nothing is allocated
 * per SA beyond its entries, and cancelling is lazy: the owner records the due time it still wants
 * and ignores entries that no longer match when they fire. The real scheduler arms a single
 * setTimeout for the earliest entry; the fake one is advanced explicitly by tests.
 */

export interface Clock {
  /** Milliseconds, monotonic. */
  now(): number;
}

export type TimerHandler = (key: number, kind: number, due: number) => void;

interface Entry {
  at: number;
  seq: number;
  key: number;
  kind: number;
}

/** Min-heap ordered by (at, seq). */
export class TimerHeap {
  private heap: Entry[] = [];
  private seq = 0;

  get size(): number {
    return this.heap.length;
  }

  push(at: number, key: number, kind: number): void {
    const e: Entry = { at, seq: this.seq++, key, kind };
    const h = this.heap;
    h.push(e);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!less(h[i]!, h[p]!)) break;
      [h[i], h[p]] = [h[p]!, h[i]!];
      i = p;
    }
  }

  peek(): Entry | undefined {
    return this.heap[0];
  }

  pop(): Entry | undefined {
    const h = this.heap;
    if (h.length === 0) return undefined;
    const top = h[0]!;
    const last = h.pop()!;
    if (h.length > 0) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && less(h[l]!, h[m]!)) m = l;
        if (r < h.length && less(h[r]!, h[m]!)) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m]!, h[i]!];
        i = m;
      }
    }
    return top;
  }

  /** Drop entries the owner no longer wants (keeps the heap from growing with stale entries). */
  compact(keep: (key: number, kind: number, at: number) => boolean): void {
    const kept = this.heap.filter((e) => keep(e.key, e.kind, e.at));
    this.heap = [];
    for (const e of kept) this.push(e.at, e.key, e.kind);
  }
}

function less(a: Entry, b: Entry): boolean {
  return a.at < b.at || (a.at === b.at && a.seq < b.seq);
}

/** A clock plus one shared timer heap. */
export interface Scheduler extends Clock {
  /** Call the handler with (key, kind) at `at` (ms on this clock). */
  schedule(at: number, key: number, kind: number): void;
  setHandler(h: TimerHandler): void;
  /** Number of pending entries (including stale ones not yet compacted). */
  readonly pending: number;
  compact(keep: (key: number, kind: number, at: number) => boolean): void;
  stop(): void;
}

abstract class BaseScheduler implements Scheduler {
  protected heap = new TimerHeap();
  protected handler: TimerHandler = () => {};
  abstract now(): number;
  setHandler(h: TimerHandler): void {
    this.handler = h;
  }
  get pending(): number {
    return this.heap.size;
  }
  schedule(at: number, key: number, kind: number): void {
    this.heap.push(at, key, kind);
    this.rearm();
  }
  compact(keep: (key: number, kind: number, at: number) => boolean): void {
    this.heap.compact(keep);
    this.rearm();
  }
  /** Fire every entry due at or before `t`. */
  protected fire(t: number): void {
    for (;;) {
      const e = this.heap.peek();
      if (!e || e.at > t) break;
      this.heap.pop();
      try {
        this.handler(e.key, e.kind, e.at);
      } catch (err) {
        // A failing timer must not stop the others; the engine logs its own errors.
        queueMicrotask(() => {
          throw err;
        });
      }
    }
  }
  protected rearm(): void {}
  stop(): void {}
}

/** Scheduler on the process clock with a single setTimeout for the earliest entry. */
export class RealScheduler extends BaseScheduler {
  private timer: NodeJS.Timeout | undefined;
  private armedAt = Infinity;
  private stopped = false;
  private readonly origin = performance.now();

  now(): number {
    return Math.floor(performance.now() - this.origin);
  }

  protected override rearm(): void {
    if (this.stopped) return;
    const e = this.heap.peek();
    if (!e) {
      if (this.timer) clearTimeout(this.timer);
      this.timer = undefined;
      this.armedAt = Infinity;
      return;
    }
    if (this.timer && this.armedAt <= e.at) return;
    if (this.timer) clearTimeout(this.timer);
    this.armedAt = e.at;
    const delay = Math.max(0, e.at - this.now());
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.armedAt = Infinity;
      this.fire(this.now());
      this.rearm();
    }, Math.min(delay, 2 ** 31 - 1));
    this.timer.unref();
  }

  override stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }
}

/** Scheduler for tests: time moves only when advance() is called. */
export class FakeScheduler extends BaseScheduler {
  private t: number;
  constructor(start = 0) {
    super();
    this.t = start;
  }
  now(): number {
    return this.t;
  }
  /** Move time forward by ms, firing timers in order (each sees now() == its due time). */
  advance(ms: number): void {
    const target = this.t + ms;
    for (;;) {
      const e = this.heap.peek();
      if (!e || e.at > target) break;
      this.t = Math.max(this.t, e.at);
      this.fire(this.t);
    }
    this.t = target;
  }
}

/** Source of randomness for SPIs, nonces, jitter. Tests inject a deterministic one. */
export type RandomSource = (n: number) => Buffer;
