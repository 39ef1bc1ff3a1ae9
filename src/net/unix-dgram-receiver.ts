/**
 * The receiving thread of a UnixDgramSocket made with `receiveThread` (see unix-dgram.ts): it owns
 * the bound socket and does nothing but read it, so that datagrams leave the kernel's queue as they
 * arrive whatever the event loop is busy with. What it reads goes to the main thread in batches,
 * one message per wake-up.
 *
 * Protocol with the main thread (workerData.state: an Int32Array over a SharedArrayBuffer, slot 0 the
 * status, then the UTF-8 text of a bind error):
 *   main → { op: 'bind', path }   status becomes BOUND, or FAILED with the error text
 *   main → { op: 'close' }        the socket is closed, then status becomes CLOSED; the thread
 *                                 stays (idle, not keeping the process alive) until the process ends
 *   thread → { data: Uint8Array[], from: string[] }   datagrams, in order
 *   thread → { error: string }    receiving failed; the socket is closed
 * The status changes are announced with Atomics.notify: the main thread waits for them (bind and
 * close are synchronous there, also from a process 'exit' handler).
 *
 * The socket is always closed before this thread can end: a thread that ends with the addon's
 * socket still open takes the whole process down (libuv's loop cannot be closed). And the thread
 * does not end before the process does: when a thread that loaded the addon ends, the addon closes
 * every socket it made in the process, the event loop's own (the punt socket's sending side,
 * systemd's notification socket) among them, from this thread; the event loop closing one of them
 * afterwards aborts the process. At the process's exit nothing runs on the event loop any more.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { createRequire } from 'node:module';
import { setPriority } from 'node:os';
import { RECEIVER_STATUS as STATUS, RECEIVER_TEXT_AT, RECEIVER_WORD } from './unix-dgram.ts';

type Addon = typeof import('node-unix-socket');

/**
 * The nice value this thread asks for (Linux: per thread): ahead of the event loop and the crypto
 * threads when the cores are busy, so that it reads as datagrams arrive. Allowed to root, with
 * CAP_SYS_NICE, or under an RLIMIT_NICE that permits it (the systemd unit's LimitNICE=); otherwise
 * the thread keeps the process's priority.
 */
export const READER_NICE = -5;

function run(): void {
  const port = parentPort;
  if (!port) return;
  try {
    setPriority(0, READER_NICE);
  } catch {
    // not permitted: the default priority
  }
  const { state: shared, queueLimit } = workerData as { state: SharedArrayBuffer; queueLimit: number };
  const words = new Int32Array(shared, 0, 3);
  const text = new Uint8Array(shared, RECEIVER_TEXT_AT);
  const set = (s: number, why?: string): void => {
    if (why !== undefined) {
      const n = new TextEncoder().encodeInto(why.slice(0, 300), text.subarray(0, text.length - 1)).written;
      text[n] = 0;
    }
    Atomics.store(words, RECEIVER_WORD.STATUS, s);
    Atomics.notify(words, RECEIVER_WORD.STATUS);
  };

  let sock: InstanceType<Addon['DgramSocket']> | undefined;
  let open = false;
  const closeSocket = (): void => {
    if (!open) return;
    open = false;
    try {
      sock?.close();
    } catch {
      // already closed by the addon (after a receive error)
    }
  };
  // Whatever goes wrong here, the socket goes first (see the top of this file).
  process.on('uncaughtException', (e) => {
    closeSocket();
    port.postMessage({ error: `receiving thread failed: ${e instanceof Error ? e.message : String(e)}` });
  });

  let data: Uint8Array[] = [];
  let from: string[] = [];
  const flush = (): void => {
    if (data.length === 0) return;
    port.postMessage({ data, from });
    data = [];
    from = [];
  };

  port.on('message', (m: { op: 'bind'; path: string } | { op: 'close' }) => {
    if (m.op === 'close') {
      flush();
      closeSocket();
      // libuv finishes closing the socket's handle at the end of this loop iteration: CLOSED only
      // after that (a timer runs in the next one), since the main thread may end the process, and
      // this thread with it, as soon as it reads CLOSED
      setTimeout(() => set(STATUS.CLOSED), 0);
      return;
    }
    try {
      const { DgramSocket } = createRequire(import.meta.url)('node-unix-socket') as Addon;
      sock = new DgramSocket();
      open = true;
      sock.on('data', (d: Buffer, f: string) => {
        // bounded: what the event loop has not taken yet, counted across threads
        if (Atomics.load(words, RECEIVER_WORD.QUEUED) >= queueLimit) {
          Atomics.add(words, RECEIVER_WORD.DROPPED, 1);
          return;
        }
        Atomics.add(words, RECEIVER_WORD.QUEUED, 1);
        // the addon reads until the queue is empty, one event per datagram: one message for them all
        if (data.length === 0) setImmediate(flush);
        data.push(d);
        from.push(f);
      });
      sock.on('error', (e: Error) => {
        open = false; // the addon closed it
        flush();
        port.postMessage({ error: e.message });
      });
      sock.bind(m.path);
      set(STATUS.BOUND);
    } catch (e) {
      closeSocket();
      set(STATUS.FAILED, (e as Error).message);
    }
  });
}

run();
