/**
 * Unix datagram sockets (AF_UNIX, SOCK_DGRAM), which Node's own `net`/`dgram` modules do not offer.
 * Used for systemd's notification socket ($NOTIFY_SOCKET) and for VPP's punt sockets.
 *
 * Backed by the `node-unix-socket` package: a Node-API addon whose prebuilt binaries come as npm
 * packages (no build step, no download at install time). The addon is loaded on first use, so a
 * machine without it only loses the features that need it; `unixDgramUnavailable()` says why.
 *
 * Sending never blocks and never stops receiving. The addon, when a datagram does not fit into the
 * receiver's queue (net.unix.max_dgram_qlen datagrams, 10 by default), keeps it and switches its
 * socket from waiting for datagrams to waiting for writability, and never switches back: that socket
 * receives nothing more and, since an unconnected datagram socket always looks writable, spins the
 * CPU. So each UnixDgramSocket receives on one addon socket and sends from another; a send the
 * kernel does not take at once retires the sending socket (closing it drops the addon's copy) and
 * the datagram waits in our own bounded queue, tried again on a short backoff timer (1 ms doubling
 * to 50 ms; Linux tells no writability to an unconnected sender), in order, until it goes, the
 * socket is closed, or it has waited too long. The first sending socket of a bound UnixDgramSocket
 * is bound to the same path (bound first, its file then replaced by the receiving socket's), so
 * receivers see that path as the sender; a sending socket that replaces it sends unnamed (VPP's
 * punt socket and systemd's notify socket do not look at the sender).
 *
 * With `receiveThread`, the bound socket lives in a thread of its own (unix-dgram-receiver.ts) that
 * only reads it and hands the datagrams to the event loop in batches: a sender whose socket buffer
 * is small (VPP's punt socket has 64 KiB, about a hundred IKE datagrams in flight) loses nothing
 * while the event loop is busy, collecting garbage or waiting for a core. bind() and close() stay
 * synchronous (they wait for the thread), and the thread's socket is closed before the process exits.
 *
 * Limits of this implementation:
 * - Paths only: names in the abstract namespace (`@name` / a leading NUL byte) are refused, because
 *   the addon always passes the full sockaddr_un length and so cannot address them.
 * - At most 65535 bytes per datagram: the addon receives into a 65535-byte buffer and would cut
 *   longer datagrams short without telling, so `send()` refuses longer ones.
 * - An open socket keeps the Node event loop alive until `close()`.
 *
 * Every failure is an exception (or a rejected promise) whose message names the path.
 */
import { EventEmitter } from 'node:events';
import { chmodSync, lstatSync, unlinkSync } from 'node:fs';
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';

type Addon = typeof import('node-unix-socket');
type AddonSocket = InstanceType<Addon['DgramSocket']>;

/** Largest datagram `send()` accepts (and the receiver delivers in full). */
export const UNIX_DGRAM_MAX = 65535;
/** sun_path is 108 bytes including the terminating NUL. */
export const UNIX_PATH_MAX = 107;
/** Datagrams that may wait for room in a receiver's queue, by default. */
export const SEND_QUEUE_LIMIT = 1024;
/** How long a datagram may wait for room in a receiver's queue, by default. */
export const SEND_WAIT_MS = 10_000;
const RETRY_MIN_MS = 1;
const RETRY_MAX_MS = 50;
/** How long bind() waits for the receiving thread to start and bind. */
const THREAD_BIND_MS = 10_000;
/** How long close() (and the process's exit) waits for the receiving thread to close its socket. */
const THREAD_CLOSE_MS = 2_000;

/** States of a receiving thread, in the first word of the memory it shares with the event loop. */
export const RECEIVER_STATUS = { STARTING: 0, BOUND: 1, FAILED: 2, CLOSED: 3 } as const;
/**
 * That memory, as 32-bit words: the state, the datagrams handed to the event loop and not taken yet,
 * the datagrams dropped because that many waited already; then (from byte RECEIVER_TEXT_AT) the
 * text of a bind error.
 */
export const RECEIVER_WORD = { STATUS: 0, QUEUED: 1, DROPPED: 2 } as const;
export const RECEIVER_TEXT_AT = 12;
const RECEIVER_STATE_BYTES = RECEIVER_TEXT_AT + 1024;
/** Datagrams the receiving thread hands on before the event loop took them, at most (then it drops). */
export const RECEIVER_QUEUE_LIMIT = 16_384;
/**
 * How the receiving thread starts: its module loaded by a dynamic import, so that a module that
 * fails to load reports FAILED with the reason at once (the event loop waits in Atomics.wait and
 * would not see the thread's error event).
 */
const RECEIVER_BOOT = `const { workerData } = require('node:worker_threads');
import(workerData.url).catch((e) => {
  const text = new Uint8Array(workerData.state, ${RECEIVER_TEXT_AT});
  const n = new TextEncoder().encodeInto('receiving thread: ' + String(e && e.message || e).slice(0, 300), text.subarray(0, text.length - 1)).written;
  text[n] = 0;
  const st = new Int32Array(workerData.state, 0, 1);
  Atomics.store(st, 0, ${RECEIVER_STATUS.FAILED});
  Atomics.notify(st, 0);
});`;

let addon: Addon | undefined;
let loadError: string | undefined;

function load(): Addon {
  if (addon) return addon;
  if (loadError !== undefined) throw new Error(`unix datagram sockets are not available: ${loadError}`);
  try {
    addon = createRequire(import.meta.url)('node-unix-socket') as Addon;
    return addon;
  } catch (e) {
    loadError = `cannot load node-unix-socket (${(e as Error).message.split('\n')[0]})`;
    throw new Error(`unix datagram sockets are not available: ${loadError}`);
  }
}

/** Why unix datagram sockets cannot be used here, or undefined when they can. */
export function unixDgramUnavailable(): string | undefined {
  try {
    load();
    return undefined;
  } catch (e) {
    return (e as Error).message;
  }
}

/** errno names for the strerror() texts the addon reports (it gives no code). */
const ERRNO_BY_TEXT: Readonly<Record<string, string>> = {
  'No such file or directory': 'ENOENT',
  'Connection refused': 'ECONNREFUSED',
  'Permission denied': 'EACCES',
  'Address already in use': 'EADDRINUSE',
  'Socket operation on non-socket': 'ENOTSOCK',
  'Protocol wrong type for socket': 'EPROTOTYPE',
  'Message too long': 'EMSGSIZE',
  'Resource temporarily unavailable': 'EAGAIN',
  'No buffer space available': 'ENOBUFS',
  'Not a directory': 'ENOTDIR',
  'Read-only file system': 'EROFS',
  'Bad file descriptor': 'EBADF',
};

/** An error from a unix datagram socket operation; `code` is the errno name when known. */
export class UnixDgramError extends Error {
  override readonly name = 'UnixDgramError';
  readonly code: string | undefined;
  readonly path: string;
  constructor(op: string, path: string, cause: string, code?: string) {
    super(`unix datagram ${op} ${path}: ${cause}`);
    this.path = path;
    this.code = code ?? ERRNO_BY_TEXT[cause.replace(/ \(os error \d+\)$/, '')];
  }
}

function checkPath(op: string, path: string): void {
  if (typeof path !== 'string' || path === '') throw new UnixDgramError(op, JSON.stringify(path), 'empty path', 'EINVAL');
  if (path.startsWith('@') || path.startsWith('\0')) {
    throw new UnixDgramError(op, path, 'abstract socket names are not supported (only filesystem paths)', 'EAFNOSUPPORT');
  }
  if (path.includes('\0')) throw new UnixDgramError(op, JSON.stringify(path), 'path contains a NUL byte', 'EINVAL');
  if (Buffer.byteLength(path) > UNIX_PATH_MAX) {
    throw new UnixDgramError(op, path, `path longer than ${UNIX_PATH_MAX} bytes`, 'ENAMETOOLONG');
  }
}

export interface UnixDgramSocketEvents {
  /** A datagram arrived; `from` is the sender's bound path, undefined for an unbound sender. */
  message: [data: Buffer, from: string | undefined];
  /** Receiving failed; the socket is closed. */
  error: [err: Error];
  /** A datagram to `path` found the receiver's queue full: it waits in our queue (`queued` datagrams). */
  sendBlocked: [path: string, queued: number];
  close: [];
}

export interface BindOptions {
  /** File mode of the socket (default 0o660). */
  mode?: number;
}

export interface UnixDgramOptions {
  /** Datagrams that may wait for room in receivers' queues (default SEND_QUEUE_LIMIT); more are refused with ENOBUFS. */
  sendQueueLimit?: number;
  /** How long a datagram may wait for room (default SEND_WAIT_MS); then send() rejects with ETIMEDOUT. */
  sendWaitMs?: number;
  /** Receive in a thread of its own (see the top of this file); default false. */
  receiveThread?: boolean;
  /** receiveThread: datagrams handed on and not taken by the event loop yet, at most (default RECEIVER_QUEUE_LIMIT). */
  receiveQueueLimit?: number;
}

/** What became of sends that did not go at once. */
export interface UnixDgramSendStats {
  /** Sends that found the receiver's queue full (and waited in ours). */
  blocked: number;
  /** Datagrams refused because our queue held sendQueueLimit already. */
  queueFull: number;
  /** Datagrams given up after waiting sendWaitMs. */
  timedOut: number;
}

/** A datagram waiting for room. */
interface Waiting {
  buf: Buffer;
  path: string;
  since: number;
  resolve: () => void;
  reject: (e: Error) => void;
}

/** Where a UnixDgramSocket receives: on the event loop, or in a thread of its own. */
interface Receiver {
  bind(path: string): void;
  close(): void;
  /** Datagrams dropped before the event loop saw them (the thread's hand-over queue was full). */
  readonly dropped: number;
}

type OnMessage = (data: Buffer, from: string | undefined) => void;
type OnError = (message: string) => void;

/** The addon's socket on the event loop. */
class LoopReceiver implements Receiver {
  private readonly sock: AddonSocket;
  constructor(onMessage: OnMessage, onError: OnError) {
    const { DgramSocket } = load();
    this.sock = new DgramSocket();
    this.sock.on('data', (data: Buffer, from: string) => onMessage(data, from === '' ? undefined : from));
    // The addon closes the socket before it reports a receive error.
    this.sock.on('error', (e: Error) => onError(e.message));
  }
  readonly dropped = 0;
  bind(path: string): void {
    this.sock.bind(path);
  }
  close(): void {
    this.sock.close();
  }
}

/** The addon's socket in a thread of its own (unix-dgram-receiver.ts). */
class ThreadReceiver implements Receiver {
  private readonly shared = new SharedArrayBuffer(RECEIVER_STATE_BYTES);
  private readonly words = new Int32Array(this.shared, 0, 3);
  private worker: Worker | undefined;
  private closing = false;
  /** Closes the thread's socket when the process exits with it still open (a thread's open socket would abort the exit). */
  private readonly onExit = (): void => this.close();

  private readonly onMessage: OnMessage;
  private readonly onError: OnError;
  private readonly queueLimit: number;

  constructor(onMessage: OnMessage, onError: OnError, queueLimit: number) {
    load(); // fail here, as the event loop's receiver does, when the addon is missing
    this.onMessage = onMessage;
    this.onError = onError;
    this.queueLimit = queueLimit;
  }

  get dropped(): number {
    return Atomics.load(this.words, RECEIVER_WORD.DROPPED);
  }

  bind(path: string): void {
    // one thread per socket: a socket whose bind failed or that was closed is not bound again
    if (this.worker !== undefined || this.closing) throw new Error('the receiving thread is bound or closed already');
    const url = new URL(import.meta.url.endsWith('.js') ? './unix-dgram-receiver.js' : './unix-dgram-receiver.ts', import.meta.url).href;
    // no execArgv: the thread runs its own module whatever the process was started with (`node -e` would give it that code instead)
    const worker = new Worker(RECEIVER_BOOT, { eval: true, workerData: { state: this.shared, url, queueLimit: this.queueLimit }, execArgv: [] });
    this.worker = worker;
    worker.on('message', (m: { data: Uint8Array[]; from: string[] } | { error: string }) => {
      if (this.closing) return;
      if ('error' in m) {
        this.stop();
        this.onError(m.error);
        return;
      }
      Atomics.sub(this.words, RECEIVER_WORD.QUEUED, m.data.length);
      for (let i = 0; i < m.data.length; i++) {
        const d = m.data[i]!;
        const f = m.from[i];
        this.onMessage(Buffer.from(d.buffer, d.byteOffset, d.byteLength), f === '' || f === undefined ? undefined : f);
      }
    });
    worker.on('error', (e) => {
      if (this.closing) return;
      this.stop();
      this.onError(`receiving thread failed: ${e.message}`);
    });
    worker.on('exit', (code) => {
      if (this.closing) return;
      this.stop();
      this.onError(`receiving thread exited (code ${code})`);
    });
    worker.postMessage({ op: 'bind', path });
    Atomics.wait(this.words, RECEIVER_WORD.STATUS, RECEIVER_STATUS.STARTING, THREAD_BIND_MS);
    const st = Atomics.load(this.words, RECEIVER_WORD.STATUS);
    if (st === RECEIVER_STATUS.BOUND) {
      process.on('exit', this.onExit);
      return;
    }
    const why = st === RECEIVER_STATUS.FAILED ? this.errorText() : `the receiving thread did not bind within ${THREAD_BIND_MS / 1000} s`;
    this.close();
    throw new Error(why);
  }

  close(): void {
    if (this.closing) return;
    this.stop();
  }

  /**
   * Has the thread close its socket (waiting for it); the thread stays, idle and not keeping the
   * process alive (unix-dgram-receiver.ts says why). Nothing it sends is delivered after this.
   */
  private stop(): void {
    this.closing = true;
    process.off('exit', this.onExit);
    const w = this.worker;
    if (!w) return;
    this.worker = undefined;
    const st = Atomics.load(this.words, RECEIVER_WORD.STATUS);
    if (st === RECEIVER_STATUS.BOUND || st === RECEIVER_STATUS.STARTING) {
      w.postMessage({ op: 'close' });
      Atomics.wait(this.words, RECEIVER_WORD.STATUS, st, THREAD_CLOSE_MS);
      if (Atomics.load(this.words, RECEIVER_WORD.STATUS) === st && st === RECEIVER_STATUS.BOUND) {
        // Not answered: the thread is stuck; leave it rather than abort the process by terminating it.
        w.unref();
        return;
      }
    }
    w.unref();
  }

  private errorText(): string {
    const bytes = new Uint8Array(this.shared, RECEIVER_TEXT_AT);
    const end = bytes.indexOf(0);
    return new TextDecoder().decode(bytes.slice(0, end < 0 ? bytes.length : end));
  }
}

/**
 * One unix datagram socket. Create it, optionally `bind()` it to a path (to receive, and so that
 * receivers see where a datagram came from), `send()` datagrams to paths, `close()` it.
 */
export class UnixDgramSocket extends EventEmitter<UnixDgramSocketEvents> {
  /** Receives (bound by bind()); never sends, so nothing a send does can stop it reading. */
  private readonly rx: Receiver;
  /** Sends; replaced whenever a send does not go at once (see the top of this file). */
  private tx: AddonSocket | undefined;
  private boundPath: string | undefined;
  /** Inode of the socket file bind() made, so close() removes only that file. */
  private boundIno: number | bigint | undefined;
  private closed = false;
  private queueLimit: number;
  private waitMs: number;
  private readonly waiting: Waiting[] = [];
  private retryTimer: NodeJS.Timeout | undefined;
  private retryDelay = RETRY_MIN_MS;
  readonly sendStats: UnixDgramSendStats = { blocked: 0, queueFull: 0, timedOut: 0 };

  constructor(opts: UnixDgramOptions = {}) {
    super();
    this.queueLimit = Math.max(1, opts.sendQueueLimit ?? SEND_QUEUE_LIMIT);
    this.waitMs = Math.max(0, opts.sendWaitMs ?? SEND_WAIT_MS);
    const onMessage: OnMessage = (data, from) => {
      if (!this.closed) this.emit('message', data, from);
    };
    const onError: OnError = (message) => {
      const path = this.boundPath ?? '(unbound)';
      this.markClosed();
      this.emit('error', new UnixDgramError('receive on', path, message));
    };
    this.rx = opts.receiveThread ? new ThreadReceiver(onMessage, onError, Math.max(1, opts.receiveQueueLimit ?? RECEIVER_QUEUE_LIMIT)) : new LoopReceiver(onMessage, onError);
  }

  /** Datagrams received and dropped before the event loop saw them (receiveThread: RECEIVER_QUEUE_LIMIT were waiting). */
  get receiveDropped(): number {
    return this.rx.dropped;
  }

  /** Datagrams waiting for room in a receiver's queue. */
  get queued(): number {
    return this.waiting.length;
  }

  /** The path this socket is bound to. */
  get path(): string | undefined {
    return this.boundPath;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /**
   * Binds to `path`. A socket file left there (by a process that is gone) is removed first; any
   * other kind of file is not touched and the bind fails. The socket gets `mode` (default 0o660).
   */
  bind(path: string, opts: BindOptions = {}): void {
    checkPath('bind', path);
    if (this.closed) throw new UnixDgramError('bind', path, 'socket is closed', 'EBADF');
    if (this.boundPath !== undefined) throw new UnixDgramError('bind', path, `already bound to ${this.boundPath}`, 'EINVAL');
    let st: ReturnType<typeof lstatSync> | undefined;
    try {
      st = lstatSync(path);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw new UnixDgramError('bind', path, (e as Error).message, (e as NodeJS.ErrnoException).code);
    }
    if (st) {
      if (!st.isSocket()) throw new UnixDgramError('bind', path, 'a file that is not a socket is in the way', 'EEXIST');
      try {
        unlinkSync(path);
      } catch (e) {
        throw new UnixDgramError('bind', path, `cannot remove the old socket: ${(e as Error).message}`, (e as NodeJS.ErrnoException).code);
      }
    }
    // The sending socket takes the path first (its name is what receivers see), then gives the file
    // up to the receiving socket: datagrams to the path reach that one.
    const tx = this.newTx();
    try {
      tx.bind(path);
      unlinkSync(path);
      this.rx.bind(path);
    } catch (e) {
      tx.close();
      throw new UnixDgramError('bind', path, (e as Error).message, (e as NodeJS.ErrnoException).code);
    }
    this.retireTx();
    this.tx = tx;
    this.boundPath = path;
    try {
      this.boundIno = lstatSync(path).ino;
      chmodSync(path, opts.mode ?? 0o660);
    } catch (e) {
      throw new UnixDgramError('chmod', path, (e as Error).message, (e as NodeJS.ErrnoException).code);
    }
  }

  /**
   * Sends one datagram to the socket bound at `path`. Resolves once the kernel has taken it;
   * rejects (UnixDgramError with `code`, e.g. ENOENT or ECONNREFUSED) when it cannot be delivered.
   * When the receiver's queue is full the datagram waits in ours (behind any already waiting) and is
   * tried again: it rejects with ENOBUFS when our queue is full, ETIMEDOUT after waiting
   * `sendWaitMs`, EBADF when the socket is closed first. Receiving goes on meanwhile. `data` must
   * not change until the promise settles.
   */
  send(data: Uint8Array, path: string): Promise<void> {
    try {
      checkPath('send to', path);
      if (this.closed) throw new UnixDgramError('send to', path, 'socket is closed', 'EBADF');
      if (data.length > UNIX_DGRAM_MAX) {
        throw new UnixDgramError('send to', path, `${data.length} bytes, more than the ${UNIX_DGRAM_MAX} a datagram may have here`, 'EMSGSIZE');
      }
    } catch (e) {
      return Promise.reject(e as Error);
    }
    const buf = Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.length);
    if (this.waiting.length === 0) {
      const r = this.attempt(buf, path);
      if (r === 'sent') return Promise.resolve();
      if (r !== 'blocked') return Promise.reject(r);
    } else if (this.waiting.length >= this.queueLimit) {
      this.sendStats.queueFull++;
      return Promise.reject(new UnixDgramError('send to', path, `the receiver's queue is full and ${this.waiting.length} datagrams wait already`, 'ENOBUFS'));
    }
    return new Promise<void>((resolve, reject) => {
      this.waiting.push({ buf, path, since: performance.now(), resolve, reject });
      this.blocked(path);
    });
  }

  /** One datagram could not go (now, or again): counted, and the next try scheduled. */
  private blocked(path: string): void {
    this.sendStats.blocked++;
    this.emit('sendBlocked', path, this.waiting.length);
    this.scheduleRetry();
  }

  private scheduleRetry(): void {
    if (this.retryTimer !== undefined || this.closed) return;
    const delay = this.retryDelay;
    this.retryDelay = Math.min(RETRY_MAX_MS, this.retryDelay * 2);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.pump();
    }, delay);
  }

  /**
   * Changes how many datagrams may wait for room and for how long (from now on, for those waiting
   * too): a daemon that stops raises both so that every peer's Delete goes, at the receiver's pace.
   */
  setSendLimits(queueLimit: number, waitMs: number): void {
    this.queueLimit = Math.max(1, queueLimit);
    this.waitMs = Math.max(0, waitMs);
  }

  /** Sends what waits, in order, until the receiver is full again. */
  private pump(): void {
    let progressed = false;
    while (!this.closed && this.waiting.length > 0) {
      const w = this.waiting[0]!;
      if (performance.now() - w.since > this.waitMs) {
        this.waiting.shift();
        this.sendStats.timedOut++;
        w.reject(new UnixDgramError('send to', w.path, `the receiver's queue stayed full for ${this.waitMs} ms`, 'ETIMEDOUT'));
        continue;
      }
      const r = this.attempt(w.buf, w.path);
      if (r === 'blocked') {
        // a receiver that took some is reading: look again soon rather than after a longer wait
        if (progressed) this.retryDelay = RETRY_MIN_MS;
        this.scheduleRetry();
        return;
      }
      progressed = true;
      this.waiting.shift();
      if (r === 'sent') w.resolve();
      else w.reject(r);
    }
    this.retryDelay = RETRY_MIN_MS;
  }

  /**
   * Hands one datagram to the sending socket. The addon reports a datagram the kernel took (or
   * refused) before sendTo returns; one it kept for later means the receiver is full: that socket
   * is closed (with the addon's copy) before it can spin, and 'blocked' returned.
   */
  private attempt(buf: Buffer, path: string): 'sent' | 'blocked' | UnixDgramError {
    let tx: AddonSocket;
    try {
      tx = this.tx ?? (this.tx = this.newTx());
    } catch (e) {
      return new UnixDgramError('send to', path, (e as Error).message, (e as NodeJS.ErrnoException).code);
    }
    let result: 'pending' | 'sent' | UnixDgramError = 'pending';
    let returned = false;
    try {
      tx.sendTo(buf, 0, buf.length, path, (err) => {
        if (returned) return;
        result = err ? new UnixDgramError('send to', path, err.message) : 'sent';
      });
    } catch (e) {
      result = new UnixDgramError('send to', path, (e as Error).message);
    }
    returned = true;
    if (result !== 'pending') return result;
    this.retireTx();
    return 'blocked';
  }

  private newTx(): AddonSocket {
    const { DgramSocket } = load();
    const tx = new DgramSocket();
    // Nothing can address it (no file of its own), so it never receives; errors are not ours to report.
    tx.on('error', () => {});
    return tx;
  }

  private retireTx(): void {
    const tx = this.tx;
    this.tx = undefined;
    try {
      tx?.close();
    } catch {
      // already closed
    }
  }

  /**
   * Closes the socket and removes the file it was bound to (unless another socket has been bound
   * at that path since). Datagrams still waiting are dropped (their send() rejects with EBADF).
   */
  close(): void {
    if (this.closed) return;
    try {
      this.rx.close();
    } finally {
      this.markClosed();
    }
  }

  private markClosed(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.retryTimer !== undefined) clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    this.retireTx();
    for (const w of this.waiting.splice(0)) w.reject(new UnixDgramError('send to', w.path, 'socket is closed', 'EBADF'));
    if (this.boundPath !== undefined) {
      try {
        if (lstatSync(this.boundPath).ino === this.boundIno) unlinkSync(this.boundPath);
      } catch {
        // already gone
      }
    }
    this.emit('close');
  }
}
