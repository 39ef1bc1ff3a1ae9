/**
 * sd_notify(3) for the daemon: tells systemd when start-up is complete (READY=1), what the daemon is
 * doing (STATUS=...), that a reload started (RELOADING=1 with MONOTONIC_USEC) and finished (READY=1),
 * that it is stopping (STOPPING=1), and keeps the watchdog fed when the unit sets WatchdogSec=.
 *
 * Node cannot open AF_UNIX datagram sockets, so each message is handed to `systemd-notify`
 * (systemd-notify(1)) with the assignments as arguments. The message then comes from a child process,
 * which is why the unit needs NotifyAccess=all; systemd-notify waits (BARRIER=1) until the manager
 * has read the message, so it is attributed to the unit even though the sender exits at once.
 * Messages leave one at a time, in the order they were sent.
 *
 * Without NOTIFY_SOCKET in the environment (not started by systemd with Type=notify) every call is a
 * silent no-op. A missing systemd-notify binary or a failed send is logged once as a warning and never
 * stops the daemon.
 */
import { spawn } from 'node:child_process';

export interface NotifyLog {
  warn(obj: object, msg: string): void;
  debug(obj: object, msg: string): void;
}

export interface SdNotifyOptions {
  /** Environment to read NOTIFY_SOCKET / WATCHDOG_USEC / WATCHDOG_PID from (default: process.env). */
  env?: NodeJS.ProcessEnv;
  /** The sender program (default: `systemd-notify` from PATH). */
  command?: string;
  log?: NotifyLog;
  /** A sender still running after this long is killed (default 5000 ms). */
  sendTimeoutMs?: number;
}

type Fields = Record<string, string | number>;

const NOOP_LOG: NotifyLog = { warn() {}, debug() {} };

/** CLOCK_MONOTONIC in microseconds (what MONOTONIC_USEC= carries; Node's hrtime reads that clock). */
export function monotonicUsec(): bigint {
  return process.hrtime.bigint() / 1000n;
}

export class SdNotify {
  /** True when NOTIFY_SOCKET is set and the sender has not been found missing. */
  enabled: boolean;
  private readonly socket: string | undefined;
  private readonly env: NodeJS.ProcessEnv;
  private readonly command: string;
  private readonly log: NotifyLog;
  private readonly sendTimeoutMs: number;
  private readonly queue: string[][] = [];
  private running = false;
  private idleWaiters: (() => void)[] = [];
  private watchdogTimer: NodeJS.Timeout | undefined;
  private warned = false;
  /** Messages handed to the sender that it reported as sent (for tests and diagnostics). */
  sent = 0;

  constructor(opts: SdNotifyOptions = {}) {
    this.env = opts.env ?? process.env;
    const s = this.env.NOTIFY_SOCKET;
    this.socket = s !== undefined && s !== '' ? s : undefined;
    this.enabled = this.socket !== undefined;
    this.command = opts.command ?? 'systemd-notify';
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
    const args: string[] = [];
    for (const [k, v] of Object.entries(fields)) {
      // One assignment per line in the datagram: a newline inside a value would start another one.
      args.push(`${k}=${String(v).replace(/[\r\n]+/g, ' ')}`);
    }
    this.queue.push(args);
    if (!this.running) this.next();
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

  private next(): void {
    const args = this.queue.shift();
    if (!args || !this.enabled) {
      this.running = false;
      this.queue.length = 0;
      const w = this.idleWaiters;
      this.idleWaiters = [];
      for (const f of w) f();
      return;
    }
    this.running = true;
    let finished = false;
    let stderr = '';
    const child = spawn(this.command, args, {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...this.env, NOTIFY_SOCKET: this.socket },
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), this.sendTimeoutMs);
    timer.unref();
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (d: string) => {
      if (stderr.length < 2000) stderr += d;
    });
    const finish = (problem: string | undefined, missing = false): void => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      if (problem === undefined) {
        this.sent++;
        this.log.debug({ message: args.join(' ') }, 'notified systemd');
      } else if (!this.warned) {
        this.warned = true;
        this.log.warn({ command: this.command, err: problem }, 'could not notify systemd (sd_notify); readiness and status are not reported');
      }
      if (missing) this.enabled = false;
      this.next();
    };
    child.once('error', (e: NodeJS.ErrnoException) => finish(e.message, e.code === 'ENOENT' || e.code === 'EACCES'));
    child.once('close', (code, signal) => {
      if (code === 0) finish(undefined);
      else finish(`${this.command} exited ${code ?? signal}${stderr ? `: ${stderr.trim()}` : ''}`);
    });
  }
}
