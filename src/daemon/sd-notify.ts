/**
 * sd_notify(3) for the daemon: tells systemd when start-up is complete (READY=1), what the daemon is
 * doing (STATUS=...), that a reload started (RELOADING=1 with MONOTONIC_USEC) and finished (READY=1),
 * that it is stopping (STOPPING=1), and keeps the watchdog fed when the unit sets WatchdogSec=.
 *
 * Each message is one datagram of newline-separated assignments, sent from the daemon's own process
 * straight to the unix datagram socket named by $NOTIFY_SOCKET (so the unit can keep the default
 * NotifyAccess=main). Messages leave one at a time, in the order they were sent; a socket is open
 * only while messages are waiting.
 *
 * Without NOTIFY_SOCKET in the environment (not started by systemd with Type=notify) every call is a
 * silent no-op. A socket that cannot be reached (missing, nobody reading, no permission), an
 * abstract socket name ("@...", which the unix datagram module cannot address) or a machine without
 * unix datagram sockets is logged once as a warning and turns notification off; other send errors
 * are logged once and the next message is tried. Nothing here ever stops the daemon.
 */
import { UnixDgramError, UnixDgramSocket, unixDgramUnavailable } from '../net/unix-dgram.ts';

export interface NotifyLog {
  warn(obj: object, msg: string): void;
  debug(obj: object, msg: string): void;
}

export interface SdNotifyOptions {
  /** Environment to read NOTIFY_SOCKET / WATCHDOG_USEC / WATCHDOG_PID from (default: process.env). */
  env?: NodeJS.ProcessEnv;
  /** @deprecated Not used: messages are sent to NOTIFY_SOCKET directly, without a helper program. */
  command?: string;
  log?: NotifyLog;
  /** A message the socket has not taken after this long is given up (default 5000 ms). */
  sendTimeoutMs?: number;
}

type Fields = Record<string, string | number>;

const NOOP_LOG: NotifyLog = { warn() {}, debug() {} };

/** CLOCK_MONOTONIC in microseconds (what MONOTONIC_USEC= carries; Node's hrtime reads that clock). */
export function monotonicUsec(): bigint {
  return process.hrtime.bigint() / 1000n;
}

export class SdNotify {
  /** True when NOTIFY_SOCKET is set and has not been found unusable. */
  enabled: boolean;
  private readonly socket: string | undefined;
  private readonly env: NodeJS.ProcessEnv;
  private readonly log: NotifyLog;
  private readonly sendTimeoutMs: number;
  private readonly queue: string[] = [];
  private running = false;
  private sock: UnixDgramSocket | undefined;
  private idleWaiters: (() => void)[] = [];
  private watchdogTimer: NodeJS.Timeout | undefined;
  private warned = false;
  /** Messages the notification socket has taken (for tests and diagnostics). */
  sent = 0;

  constructor(opts: SdNotifyOptions = {}) {
    this.env = opts.env ?? process.env;
    const s = this.env.NOTIFY_SOCKET;
    this.socket = s !== undefined && s !== '' ? s : undefined;
    this.enabled = this.socket !== undefined;
    this.log = opts.log ?? NOOP_LOG;
    this.sendTimeoutMs = opts.sendTimeoutMs ?? 5000;
  }

  /** Start-up (or a reload) is complete. */
  ready(status?: string): void {
    this.send(status === undefined ? { READY: 1 } : { READY: 1, STATUS: status });
  }

  status(status: string): void {
    this.send({ STATUS: status });
  }

  /** A reload begins; follow it with ready() when it is done (also when it was refused). */
  reloading(status?: string): void {
    const f: Fields = { RELOADING: 1, MONOTONIC_USEC: monotonicUsec().toString() };
    if (status !== undefined) f.STATUS = status;
    this.send(f);
  }

  stopping(status?: string): void {
    this.stopWatchdog();
    this.send(status === undefined ? { STOPPING: 1 } : { STOPPING: 1, STATUS: status });
  }

  /**
   * Feeds the watchdog at half the interval systemd asks for (WATCHDOG_USEC), when the request is
   * meant for this process (WATCHDOG_PID unset or ours). No-op otherwise.
   */
  startWatchdog(): void {
    if (!this.enabled || this.watchdogTimer) return;
    const usec = Number(this.env.WATCHDOG_USEC ?? '');
    const pid = this.env.WATCHDOG_PID;
    if (!Number.isFinite(usec) || usec <= 0) return;
    if (pid !== undefined && pid !== '' && Number(pid) !== process.pid) return;
    const every = Math.max(100, Math.floor(usec / 2000));
    this.watchdogTimer = setInterval(() => this.send({ WATCHDOG: 1 }), every);
    this.watchdogTimer.unref();
  }

  stopWatchdog(): void {
    if (this.watchdogTimer) clearInterval(this.watchdogTimer);
    this.watchdogTimer = undefined;
  }

  /** Queues one message (assignments in the given order). */
  send(fields: Fields): void {
    if (!this.enabled) return;
    const lines: string[] = [];
    for (const [k, v] of Object.entries(fields)) {
      // One assignment per line in the datagram: a newline inside a value would start another one.
      lines.push(`${k}=${String(v).replace(/[\r\n]+/g, ' ')}`);
    }
    this.queue.push(lines.join('\n'));
    if (!this.running) void this.drain();
  }

  /** Resolves when every queued message has been handed over (or after timeoutMs). */
  flush(timeoutMs = 2000): Promise<void> {
    if (!this.running && this.queue.length === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const t = setTimeout(done, timeoutMs);
      t.unref();
      function done(): void {
        clearTimeout(t);
        resolve();
      }
      this.idleWaiters.push(done);
    });
  }

  /** Sends the queued messages one after the other, then closes the socket. */
  private async drain(): Promise<void> {
    this.running = true;
    try {
      for (let msg = this.queue.shift(); msg !== undefined && this.enabled; msg = this.queue.shift()) {
        const problem = await this.sendOne(msg);
        if (problem === undefined) {
          this.sent++;
          this.log.debug({ message: msg.replaceAll('\n', ' ') }, 'notified systemd');
        } else {
          if (problem.permanent) this.enabled = false;
          if (!this.warned) {
            this.warned = true;
            this.log.warn(
              { socket: this.socket, err: problem.message },
              `could not notify systemd (sd_notify); ${problem.permanent ? 'readiness and status are not reported' : 'will keep trying'}`,
            );
          }
        }
      }
    } finally {
      this.sock?.close();
      this.sock = undefined;
      if (!this.enabled) this.queue.length = 0;
      this.running = false;
    }
    const w = this.idleWaiters;
    this.idleWaiters = [];
    for (const f of w) f();
  }

  /** Sends one datagram; undefined when it was taken, else what went wrong and whether it will last. */
  private async sendOne(msg: string): Promise<{ message: string; permanent: boolean } | undefined> {
    const path = this.socket!;
    if (path.startsWith('@')) {
      return { message: `NOTIFY_SOCKET ${path} is an abstract socket name, which cannot be addressed here (only socket paths)`, permanent: true };
    }
    if (!this.sock) {
      const why = unixDgramUnavailable();
      if (why !== undefined) return { message: why, permanent: true };
      try {
        this.sock = new UnixDgramSocket();
      } catch (e) {
        return { message: (e as Error).message, permanent: true };
      }
    }
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        this.sock.send(Buffer.from(msg, 'utf8'), path),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`the socket did not take the message within ${this.sendTimeoutMs} ms`)), this.sendTimeoutMs);
        }),
      ]);
      return undefined;
    } catch (e) {
      const code = e instanceof UnixDgramError ? e.code : undefined;
      if (code === undefined) {
        // A send that never completed stays queued in the socket: start over with a new one.
        this.sock.close();
        this.sock = undefined;
      }
      const permanent = code === 'ENOENT' || code === 'ECONNREFUSED' || code === 'EACCES' || code === 'ENOTSOCK' ||
        code === 'EPROTOTYPE' || code === 'ENOTDIR' || code === 'ENAMETOOLONG' || code === 'EAFNOSUPPORT' || code === 'EINVAL';
      return { message: (e as Error).message, permanent };
    } finally {
      clearTimeout(timer);
    }
  }
}
