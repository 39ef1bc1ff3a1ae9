/**
 * Where the daemon's log lines go: a file descriptor, stdout by default (journald under systemd).
 *
 * A line is handed to write(2) on libuv's thread pool at once when no write is under way; lines that
 * come while one is under way are gathered and go out together in the next, so a burst (thousands of
 * peers coming back at once) costs few writes and never blocks the event loop. `intervalMs` > 0
 * holds lines back up to that long to gather them even when the output is idle.
 *
 * Bounded: lines that would take what waits past `maxPendingBytes` (a reader that stopped reading)
 * are dropped and counted, and once the writes catch up a warning line says how many. A write that
 * fails (a full disk behind a redirected stdout) is tried again every second. When the output is
 * gone for good (EPIPE, EBADF) every later line is dropped and counted; the daemon goes on either
 * way. At exit what waits is written synchronously (`writeOutAtExit`, hooked to the process's
 * `exit` by `createLogs`).
 */
import { write as fsWrite, writeSync } from 'node:fs';

export interface LineWriterOptions {
  /** longest a line waits before its batch is written (ms); 0 (the default): written at once when no write is under way */
  intervalMs?: number;
  /** with `intervalMs` > 0: a batch this large is written without waiting (bytes, counted as UTF-16 units) */
  batchBytes?: number;
  /** most that may wait, the batch being written included; lines past it are dropped */
  maxPendingBytes?: number;
}

/** EAGAIN (a non-blocking descriptor whose reader is behind): the batch is tried again this much later. */
const RETRY_MS = 10;
/** Another failure that may pass (ENOSPC, EIO): the batch is tried again this much later. */
const RETRY_FAILED_MS = 1000;
/** At exit, how long a batch already on the thread pool gets to land before what waits is written. */
const EXIT_GRACE_MS = 20;
/** Errors after which the output never takes a line again. */
const GONE: ReadonlySet<string> = new Set(['EPIPE', 'EBADF', 'EINVAL', 'ECONNRESET', 'ENOTCONN']);

function lineCount(b: string | Buffer): number {
  let n = 0;
  for (let i = b.indexOf('\n'); i !== -1; i = b.indexOf('\n', i + 1)) n++;
  return n;
}

export class LineWriter {
  private parts: string[] = [];
  private waiting = 0;
  /** the batch being written: the string handed to write(2), or after a partial write its unwritten tail */
  private out: string | Buffer | undefined;
  private timer: NodeJS.Timeout | undefined;
  private broken = false;
  private droppedSince = 0;
  /** lines dropped since start */
  dropped = 0;
  /** write(2) calls made */
  writes = 0;
  private readonly intervalMs: number;
  private readonly batchBytes: number;
  private readonly maxPendingBytes: number;
  private readonly kick = (): void => {
    this.timer = undefined;
    this.start();
  };
  private readonly written = (err: NodeJS.ErrnoException | null, n: number): void => this.onWritten(err, n);

  private readonly fd: number;

  constructor(fd: number, o: LineWriterOptions = {}) {
    this.fd = fd;
    this.intervalMs = o.intervalMs ?? 0;
    this.batchBytes = o.batchBytes ?? 64 * 1024;
    this.maxPendingBytes = o.maxPendingBytes ?? 16 * 1024 * 1024;
  }

  /** pino's destination interface: one serialised line, newline included. */
  write(line: string): boolean {
    if (this.broken || this.waiting + (this.out?.length ?? 0) + line.length > this.maxPendingBytes) {
      this.dropped++;
      this.droppedSince++;
      return false;
    }
    this.parts.push(line);
    this.waiting += line.length;
    if (this.out !== undefined) return true;
    if (this.waiting >= this.batchBytes || this.intervalMs === 0) {
      if (this.timer !== undefined) clearTimeout(this.timer);
      this.timer = undefined;
      this.start();
    } else if (this.timer === undefined) {
      this.timer = setTimeout(this.kick, this.intervalMs);
      this.timer.unref();
    }
    return true;
  }

  /**
   * pino's `logger.flush(cb)`: `cb` once everything written so far is out, could not be written
   * (the output is gone), or `timeoutMs` passed (a reader that stopped reading). Keeps the process
   * alive until then.
   */
  flush(cb?: (err?: Error) => void, timeoutMs = 2000): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    this.start();
    if (!cb) return;
    const deadline = Date.now() + timeoutMs;
    const check = (): void => {
      if (this.out === undefined && (this.parts.length === 0 || this.broken)) cb();
      else if (Date.now() >= deadline) cb(new Error('log output did not take the lines in time'));
      else setTimeout(check, 2);
    };
    check();
  }

  /**
   * Write what waits now, blocking: for the process's `exit` (the daemon's own exits wait for
   * `flush` first). Not named `flushSync`: pino would call that after every `fatal` line. A batch
   * already handed to the thread pool cannot be waited for here; its write gets up to EXIT_GRACE_MS
   * to land first, so that the lines keep their order. A reader that stopped reading holds the exit
   * until it reads again (or the service manager kills the process).
   */
  writeOutAtExit(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.broken) return;
    const s = this.take();
    if (s === undefined) return;
    if (this.out !== undefined) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, EXIT_GRACE_MS);
    const buf = Buffer.from(s, 'utf8');
    let off = 0;
    for (let tries = 0; off < buf.length && tries < 1000; tries++) {
      try {
        off += writeSync(this.fd, buf, off, buf.length - off);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EAGAIN') return;
      }
    }
  }

  /** The waiting lines as one string, with the count of dropped lines first when there were some. */
  private take(): string | undefined {
    if (this.parts.length === 0 && this.droppedSince === 0) return undefined;
    let s = this.parts.length === 1 ? this.parts[0]! : this.parts.join('');
    this.parts = [];
    this.waiting = 0;
    if (this.droppedSince > 0) {
      s = `{"level":"warn","time":"${new Date().toISOString()}","pid":${process.pid},"dropped":${this.droppedSince},"msg":"log lines dropped: the log output did not keep up"}\n${s}`;
      this.droppedSince = 0;
    }
    return s;
  }

  private start(): void {
    if (this.out !== undefined || this.broken) return;
    this.out = this.take();
    if (this.out === undefined) return;
    this.send(this.out);
  }

  /** One write(2) of `out` on the thread pool (a string goes as UTF-8 without a Buffer of ours). */
  private send(out: string | Buffer): void {
    this.writes++;
    if (typeof out === 'string') fsWrite(this.fd, out, null, 'utf8', this.written);
    else fsWrite(this.fd, out, 0, out.length, null, this.written);
  }

  private onWritten(err: NodeJS.ErrnoException | null, n: number): void {
    const out = this.out!;
    if (err) {
      if (GONE.has(err.code ?? '')) {
        // the output is gone for good: nothing can be logged any more; count what is lost
        this.broken = true;
        this.dropped += this.parts.length + lineCount(out);
        this.parts = [];
        this.waiting = 0;
        this.out = undefined;
        return;
      }
      // EAGAIN (a non-blocking output whose reader is behind): again soon; anything else (ENOSPC,
      // EIO: a full or failing disk behind a redirected stdout): again each second, new lines
      // waiting meanwhile up to the bound
      setTimeout(() => this.send(out), err.code === 'EAGAIN' ? RETRY_MS : RETRY_FAILED_MS).unref();
      return;
    }
    const bytes = typeof out === 'string' ? Buffer.byteLength(out, 'utf8') : out.length;
    if (n < bytes) {
      // a partial write (a pipe or socket that took part of it): the rest, as bytes
      this.out = (typeof out === 'string' ? Buffer.from(out, 'utf8') : out).subarray(n);
      this.send(this.out);
      return;
    }
    this.out = undefined;
    if (this.waiting >= this.batchBytes || this.droppedSince > 0 || (this.intervalMs === 0 && this.parts.length > 0)) this.start();
    else if (this.parts.length > 0 && this.timer === undefined) {
      this.timer = setTimeout(this.kick, this.intervalMs);
      this.timer.unref();
    }
  }
}
