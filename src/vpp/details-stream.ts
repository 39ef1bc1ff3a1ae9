/**
 * How a dump's details reach whoever streams them: a queue the reader drains at its own pace, and
 * the sink the client pushes details into as they arrive.
 */

/** Where a dump's details go as they arrive. */
export interface DetailsSink {
  /** False once nobody reads them any more (the details that still come are skipped). */
  readonly accepting: boolean;
  push(item: unknown): void;
}

/**
 * The iterator stream() returns: details wait in a queue until they are taken; a reader that waits
 * is handed the next one directly. `open` sends the dump on the first next().
 */
export class DetailsStream<T> implements AsyncIterableIterator<T>, DetailsSink {
  private readonly open: (sink: DetailsSink) => Promise<unknown>;
  private queue: T[] = [];
  private head = 0;
  private started = false;
  /** The dump ended (ping reply, error) or the reader left. */
  private ended = false;
  private error: Error | undefined;
  private waiting: { resolve: (r: IteratorResult<T>) => void; reject: (e: Error) => void } | undefined;
  private left = false;

  constructor(open: (sink: DetailsSink) => Promise<unknown>) {
    this.open = open;
  }

  get accepting(): boolean {
    return !this.left;
  }

  push(item: unknown): void {
    const w = this.waiting;
    if (w) {
      this.waiting = undefined;
      w.resolve({ value: item as T, done: false });
    } else {
      this.queue.push(item as T);
    }
  }

  private end(err: Error | undefined): void {
    if (this.ended) return;
    this.ended = true;
    this.error = err;
    const w = this.waiting;
    if (!w) return;
    this.waiting = undefined;
    this.error = undefined;
    if (err) w.reject(err);
    else w.resolve({ value: undefined, done: true });
  }

  next(): Promise<IteratorResult<T>> {
    if (!this.started) {
      this.started = true;
      this.open(this).then(
        () => this.end(undefined),
        (e: Error) => this.end(e),
      );
    }
    if (this.head < this.queue.length) {
      const value = this.queue[this.head]!;
      this.queue[this.head++] = undefined as T;
      if (this.head === this.queue.length) {
        this.queue = [];
        this.head = 0;
      }
      return Promise.resolve({ value, done: false });
    }
    if (this.ended) {
      const err = this.error;
      this.error = undefined;
      return err ? Promise.reject(err) : Promise.resolve({ value: undefined, done: true });
    }
    return new Promise((resolve, reject) => {
      this.waiting = { resolve, reject };
    });
  }

  /** The reader leaves (break, return, throw in a for-await loop): what is queued and still comes is dropped. */
  return(): Promise<IteratorResult<T>> {
    this.left = true;
    this.queue = [];
    this.head = 0;
    this.end(undefined);
    this.error = undefined;
    return Promise.resolve({ value: undefined, done: true });
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<T> {
    return this;
  }
}

