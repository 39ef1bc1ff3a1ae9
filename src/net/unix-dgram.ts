/**
 * Unix datagram sockets (AF_UNIX, SOCK_DGRAM), which Node's own `net`/`dgram` modules do not offer.
 * Used for systemd's notification socket ($NOTIFY_SOCKET) and for VPP's punt sockets.
 *
 * Backed by the `node-unix-socket` package: a Node-API addon whose prebuilt binaries come as npm
 * packages (no build step, no download at install time). The addon is loaded on first use, so a
 * machine without it only loses the features that need it; `unixDgramUnavailable()` says why.
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

type Addon = typeof import('node-unix-socket');
type AddonSocket = InstanceType<Addon['DgramSocket']>;

/** Largest datagram `send()` accepts (and the receiver delivers in full). */
export const UNIX_DGRAM_MAX = 65535;
/** sun_path is 108 bytes including the terminating NUL. */
export const UNIX_PATH_MAX = 107;

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
  close: [];
}

export interface BindOptions {
  /** File mode of the socket (default 0o660). */
  mode?: number;
}

/**
 * One unix datagram socket. Create it, optionally `bind()` it to a path (to receive, and so that
 * receivers see where a datagram came from), `send()` datagrams to paths, `close()` it.
 */
export class UnixDgramSocket extends EventEmitter<UnixDgramSocketEvents> {
  private readonly sock: AddonSocket;
  private boundPath: string | undefined;
  /** Inode of the socket file bind() made, so close() removes only that file. */
  private boundIno: number | bigint | undefined;
  private closed = false;

  constructor() {
    super();
    const { DgramSocket } = load();
    this.sock = new DgramSocket();
    this.sock.on('data', (data: Buffer, from: string) => {
      if (!this.closed) this.emit('message', data, from === '' ? undefined : from);
    });
    this.sock.on('error', (e: Error) => {
      // The addon closes the socket before it reports a receive error.
      const path = this.boundPath ?? '(unbound)';
      this.markClosed();
      this.emit('error', new UnixDgramError('receive on', path, e.message));
    });
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
    try {
      this.sock.bind(path);
    } catch (e) {
      throw new UnixDgramError('bind', path, (e as Error).message);
    }
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
   * When the receiver's queue is full the datagram waits until it has room.
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
    return new Promise<void>((resolve, reject) => {
      try {
        this.sock.sendTo(buf, 0, buf.length, path, (err) => {
          if (err) reject(new UnixDgramError('send to', path, err.message));
          else resolve();
        });
      } catch (e) {
        reject(new UnixDgramError('send to', path, (e as Error).message));
      }
    });
  }

  /**
   * Closes the socket and removes the file it was bound to (unless another socket has been bound
   * at that path since). Datagrams still queued are dropped.
   */
  close(): void {
    if (this.closed) return;
    try {
      this.sock.close();
    } finally {
      this.markClosed();
    }
  }

  private markClosed(): void {
    if (this.closed) return;
    this.closed = true;
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
