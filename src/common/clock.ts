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

/**
 * Min-heap ordered by (at, seq). Entries live in parallel typed arrays (about 25 bytes each) rather
 * than one object each: with a few timers per IKE SA, 50,000 SAs keep some 150,000 entries.
 */
export class TimerHeap {
  private at = new Float64Array(64);
  private seqs = new Float64Array(64);
  private keys = new Float64Array(64);
  private kinds = new Uint8Array(64);
  private n = 0;
  private seq = 0;

  get size(): number {
    return this.n;
  }

  push(at: number, key: number, kind: number): void {
    if (this.n === this.at.length) this.grow(this.n * 2);
    let i = this.n++;
    this.set(i, at, this.seq++, key, kind);
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.less(i, p)) break;
      this.swap(i, p);
      i = p;
    }
  }

  /** Due time of the earliest entry (Infinity when there is none). */
  peekAt(): number {
    return this.n > 0 ? this.at[0]! : Infinity;
  }

  peek(): Entry | undefined {
    return this.n > 0 ? this.entry(0) : undefined;
  }

  pop(): Entry | undefined {
    if (this.n === 0) return undefined;
    const top = this.entry(0);
    const last = --this.n;
    if (last > 0) {
      this.set(0, this.at[last]!, this.seqs[last]!, this.keys[last]!, this.kinds[last]!);
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < this.n && this.less(l, m)) m = l;
        if (r < this.n && this.less(r, m)) m = r;
        if (m === i) break;
        this.swap(i, m);
        i = m;
      }
    }
    if (this.at.length > 1024 && this.n < this.at.length / 4) this.grow(this.at.length / 2);
    return top;
  }

  /** Drop entries the owner no longer wants (keeps the heap from growing with stale entries). */
  compact(keep: (key: number, kind: number, at: number) => boolean): void {
    const kept: Entry[] = [];
    for (let i = 0; i < this.n; i++) {
      if (keep(this.keys[i]!, this.kinds[i]!, this.at[i]!)) kept.push(this.entry(i));
    }
    kept.sort((a, b) => a.at - b.at || a.seq - b.seq);
    this.n = 0;
    if (this.at.length > 64 && kept.length < this.at.length / 4) this.grow(Math.max(64, kept.length * 2));
    // sorted by (at, seq) is a valid heap; the entries keep their order among equal due times
    for (const e of kept) this.set(this.n++, e.at, e.seq, e.key, e.kind);
  }

  private entry(i: number): Entry {
    return { at: this.at[i]!, seq: this.seqs[i]!, key: this.keys[i]!, kind: this.kinds[i]! };
  }

  private set(i: number, at: number, seq: number, key: number, kind: number): void {
    this.at[i] = at;
    this.seqs[i] = seq;
    this.keys[i] = key;
    this.kinds[i] = kind;
  }

  private less(a: number, b: number): boolean {
    const x = this.at[a]!;
    const y = this.at[b]!;
    return x < y || (x === y && this.seqs[a]! < this.seqs[b]!);
  }

  private swap(a: number, b: number): void {
    const { at, seqs, keys, kinds } = this;
    const t0 = at[a]!, t1 = seqs[a]!, t2 = keys[a]!, t3 = kinds[a]!;
    at[a] = at[b]!;
    seqs[a] = seqs[b]!;
    keys[a] = keys[b]!;
    kinds[a] = kinds[b]!;
    at[b] = t0;
    seqs[b] = t1;
    keys[b] = t2;
    kinds[b] = t3;
  }

  private grow(cap: number): void {
    const resize = <A extends Float64Array | Uint8Array>(old: A, make: (n: number) => A): A => {
      const a = make(cap);
      a.set(old.subarray(0, Math.min(this.n, cap)));
      return a;
    };
    this.at = resize(this.at, (n) => new Float64Array(n));
    this.seqs = resize(this.seqs, (n) => new Float64Array(n));
    this.keys = resize(this.keys, (n) => new Float64Array(n));
    this.kinds = resize(this.kinds, (n) => new Uint8Array(n));
  }
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
    while (this.heap.peekAt() <= t) {
      const e = this.heap.pop()!;
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
    const at = this.heap.peekAt();
    if (at === Infinity) {
      if (this.timer) clearTimeout(this.timer);
      this.timer = undefined;
      this.armedAt = Infinity;
      return;
    }
    if (this.timer && this.armedAt <= at) return;
    if (this.timer) clearTimeout(this.timer);
    this.armedAt = at;
    const delay = Math.max(0, at - this.now());
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
      const at = this.heap.peekAt();
      if (at > target) break;
      this.t = Math.max(this.t, at);
      this.fire(this.t);
    }
    this.t = target;
  }
}

/** Source of randomness for SPIs, nonces, jitter. Tests inject a deterministic one. */
export type RandomSource = (n: number) => Buffer;
