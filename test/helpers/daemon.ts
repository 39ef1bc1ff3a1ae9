/**
 * Runs real vpp-iked processes for integration and interop tests.
 *
 * startDaemon() writes a config file into a fresh folder (daemon section generated from the options,
 * connections/secrets text as given), starts `node src/main.ts --config FILE --foreground` either
 * directly (loopback tests) or inside a lab namespace (lab.spawn), and resolves once the control
 * socket answers. The returned handle runs vpp-ikectl against it (text or --json), and stop() sends
 * SIGTERM and asserts the daemon exits with code 0.
 *
 * The control socket is a unix socket in the file system, so vpp-ikectl runs in the test's own
 * namespace even when the daemon lives in a lab namespace.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import assert from 'node:assert/strict';
import { controlRequest } from '../../src/control/server.ts';
import type { IkeView } from '../../src/control/views.ts';
import type { Lab, LabProcess, Side } from '../interop/harness.ts';
import { forEachLine } from './lines.ts';
import { sleep } from './wait.ts';

export const ROOT = resolve(import.meta.dirname, '../..');
export const NODE = join(ROOT, 'node_modules/.bin/node');
export const DAEMON_MAIN = join(ROOT, 'src/main.ts');
export const IKECTL_MAIN = join(ROOT, 'src/cli/ikectl.ts');

export type IkeSaJson = IkeView;
export type ChildSaJson = IkeView['child_sas'][number];

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs a Node script of this repository to completion (SIGKILL after timeoutMs). */
export function runNode(script: string, args: readonly string[], timeoutMs = 30_000): Promise<RunResult> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(NODE, [script, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => err.push(d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolvePromise({ code, signal, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') });
    });
  });
}

/** `vpp-iked --check --config FILE`. */
export function checkConfig(file: string): Promise<RunResult> {
  return runNode(DAEMON_MAIN, ['--check', '--config', file]);
}

export interface DaemonSectionOptions {
  listen: string[];
  port?: number;
  portNatT?: number;
  controlSocket: string;
  logLevel?: string;
  /** more `key = value` lines for the daemon section */
  extra?: string;
}

/** The `daemon { }` section for a test daemon (memory dataplane). */
export function daemonSection(o: DaemonSectionOptions): string {
  return `daemon {
  listen = ${o.listen.join(', ')}
  port = ${o.port ?? 500}
  port_nat_t = ${o.portNatT ?? 4500}
  control_socket = ${o.controlSocket}
  log_level = ${o.logLevel ?? 'debug'}
  dataplane = memory
${o.extra ?? ''}}
`;
}

export interface StartOptions {
  /** short name, used for the folder and the log file */
  name: string;
  listen: string[];
  port?: number;
  portNatT?: number;
  logLevel?: string;
  /** more `key = value` lines for the generated daemon section */
  daemonExtra?: string;
  /** connections and secrets sections (the daemon section is generated) */
  conf: string;
  /** the script to run (default src/main.ts; bin/vpp-iked.js runs what an installation runs) */
  main?: string;
  /** run inside a lab namespace (interop); otherwise directly in the test's namespace */
  lab?: Lab;
  side?: Side;
  /** parent folder for the daemon's folder; default: a new temp folder (removed by stop() unless KEEP_LAB=1) */
  parentDir?: string;
  startTimeoutMs?: number;
}

export interface ProcessLike {
  readonly pid: number;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  output(): string;
}

export interface Monitor {
  events(): Record<string, unknown>[];
  stop(): Promise<void>;
}

export interface DaemonHandle {
  readonly name: string;
  readonly dir: string;
  readonly configPath: string;
  readonly socket: string;
  readonly proc: ProcessLike;
  /** vpp-ikectl COMMAND... against this daemon; never throws on a non-zero exit code */
  ctl(args: readonly string[]): Promise<RunResult>;
  /** vpp-ikectl COMMAND... --json; asserts exit code 0 and parses stdout */
  json<T = unknown>(args: readonly string[]): Promise<T>;
  listSas(ike?: string): Promise<IkeSaJson[]>;
  /** `vpp-ikectl monitor --json` in the background: the events it printed so far, and a way to stop it */
  monitor(): Promise<Monitor>;
  /** daemon log so far (pino JSON lines and stderr) */
  logs(): string;
  /** SIGTERM; asserts a clean exit (code 0) within timeoutMs */
  stop(timeoutMs?: number): Promise<void>;
  /** SIGKILL (for crash scenarios); resolves when gone */
  kill(): Promise<void>;
  /** Writes a new config file (for reload tests). */
  rewrite(conf: string): void;
}

/** Direct child process with the output collected in memory and in a file. */
class LocalProcess implements ProcessLike {
  readonly pid: number;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  readonly child: ChildProcess;
  private readonly lines: string[] = [];

  constructor(child: ChildProcess, logFile: string) {
    if (child.pid === undefined) throw new Error('daemon did not start');
    this.child = child;
    this.pid = child.pid;
    const file = createWriteStream(logFile);
    const keep = (line: string): void => void this.lines.push(line);
    forEachLine(child.stdout, keep, file);
    forEachLine(child.stderr, keep, file);
    this.exited = new Promise((res) => child.on('close', (code, signal) => {
      file.end();
      res({ code, signal });
    }));
  }

  output(): string {
    return this.lines.join('\n');
  }
}

const live = new Set<ChildProcess>();
let exitHook = false;

/** Keeps `child` in the set of processes SIGKILLed when the test process exits, until it closes. */
function track(child: ChildProcess): void {
  live.add(child);
  child.on('close', () => live.delete(child));
  if (!exitHook) {
    exitHook = true;
    process.on('exit', () => {
      for (const c of live) c.kill('SIGKILL');
    });
  }
}

/**
 * Asks the control socket for `stats` every 50 ms until it answers. Before each attempt `gone()`
 * says whether the daemon has exited (the message to fail with); after `timeoutMs`, `late()` gives
 * the error.
 */
async function untilControlAnswers(socket: string, timeoutMs: number, gone: () => string | undefined, late: () => Error): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const why = gone();
    if (why !== undefined) throw new Error(why);
    try {
      await controlRequest(socket, 'stats');
      return;
    } catch {
      // not up yet
    }
    if (Date.now() > deadline) throw late();
    await sleep(50);
  }
}

function tail(s: string, n = 40): string {
  return s.split('\n').slice(-n).join('\n');
}

/** Starts a daemon and waits until its control socket answers. */
export async function startDaemon(o: StartOptions): Promise<DaemonHandle> {
  const ownDir = o.parentDir === undefined;
  const parent = o.parentDir ?? mkdtempSync(join(tmpdir(), 'viked-it-'));
  const dir = join(parent, o.name);
  mkdirSync(dir, { recursive: true });
  const socket = join(dir, 'control.sock');
  const configPath = join(dir, 'vpp-iked.conf');
  const write = (conf: string): void =>
    writeFileSync(configPath, daemonSection({ listen: o.listen, port: o.port, portNatT: o.portNatT, controlSocket: socket, logLevel: o.logLevel, extra: o.daemonExtra }) + conf);
  write(o.conf);
  const args = [o.main ?? DAEMON_MAIN, '--config', configPath, '--foreground'];
  let proc: ProcessLike;
  let signal: (sig: NodeJS.Signals) => void;
  if (o.lab) {
    const lp: LabProcess = o.lab.spawn(o.side ?? 'b', NODE, args, {}, { cwd: ROOT, name: `vpp-iked-${o.name}` });
    proc = lp;
    signal = (sig) => {
      try {
        process.kill(lp.pid, sig);
      } catch {
        // already gone
      }
    };
  } else {
    const child = spawn(NODE, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    track(child);
    proc = new LocalProcess(child, join(dir, 'daemon.log'));
    signal = (sig) => child.kill(sig);
  }
  let exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  void proc.exited.then((e) => {
    exit = e;
  });
  await untilControlAnswers(
    socket,
    o.startTimeoutMs ?? 15_000,
    () => (exit ? `vpp-iked ${o.name} exited (${exit.code ?? exit.signal}) during start-up\n${tail(proc.output())}` : undefined),
    () => {
      signal('SIGKILL');
      return new Error(`vpp-iked ${o.name}: control socket ${socket} did not answer in time\n${tail(proc.output())}`);
    },
  );

  const ctl = (a: readonly string[]): Promise<RunResult> => runNode(IKECTL_MAIN, ['--socket', socket, ...a], 60_000);
  const handle: DaemonHandle = {
    name: o.name,
    dir,
    configPath,
    socket,
    proc,
    ctl,
    async json<T>(a: readonly string[]): Promise<T> {
      const r = await ctl([...a, '--json']);
      assert.equal(r.code, 0, `vpp-ikectl ${a.join(' ')} on ${o.name} exited ${r.code}: ${r.stderr}\n${tail(proc.output(), 20)}`);
      try {
        return JSON.parse(r.stdout) as T;
      } catch (e) {
        throw new Error(`vpp-ikectl ${a.join(' ')} --json printed no JSON: ${(e as Error).message}\n${r.stdout}`);
      }
    },
    listSas(ike?: string): Promise<IkeSaJson[]> {
      return handle.json<IkeSaJson[]>(ike === undefined ? ['list-sas'] : ['list-sas', '--ike', ike]);
    },
    async monitor(): Promise<Monitor> {
      // The daemon does not acknowledge a subscription: time one vpp-ikectl round trip (start-up,
      // connect, answer) and give the monitor twice that to subscribe.
      const t0 = Date.now();
      await ctl(['stats']);
      const settle = Math.max(300, 2 * (Date.now() - t0));
      const child = spawn(NODE, [IKECTL_MAIN, '--socket', socket, 'monitor', '--json'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
      track(child);
      const lines: string[] = [];
      forEachLine(child.stdout, (l) => {
        if (l.trim() !== '') lines.push(l);
      });
      const closed = new Promise<void>((r) => child.on('close', () => r()));
      await sleep(settle);
      return {
        events: () => lines.map((l) => JSON.parse(l) as Record<string, unknown>),
        async stop(): Promise<void> {
          child.kill('SIGTERM');
          await closed;
        },
      };
    },
    logs: () => proc.output(),
    async stop(timeoutMs = 12_000): Promise<void> {
      if (!exit) {
        signal('SIGTERM');
        const t = setTimeout(() => signal('SIGKILL'), timeoutMs);
        await proc.exited;
        clearTimeout(t);
      }
      const e = await proc.exited;
      if (ownDir && process.env.KEEP_LAB !== '1') rmSync(parent, { recursive: true, force: true });
      assert.deepEqual(e, { code: 0, signal: null }, `vpp-iked ${o.name} did not stop cleanly\n${tail(proc.output())}`);
    },
    async kill(): Promise<void> {
      signal('SIGKILL');
      await proc.exited;
    },
    rewrite: write,
  };
  return handle;
}

/** Writes text to a file in a new temp folder, for --check tests; returns the path. */
export function tempFile(name: string, text: string): { path: string; cleanup: () => void } {
  const d = mkdtempSync(join(tmpdir(), 'viked-cfg-'));
  const path = join(d, name);
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, text);
  return { path, cleanup: () => rmSync(d, { recursive: true, force: true }) };
}

export interface RawDaemon {
  readonly proc: ProcessLike;
  readonly configPath: string;
  signal(sig: NodeJS.Signals): void;
  /** Resolves once `controlSocket` answers (rejects if the daemon exits first or after timeoutMs). */
  waitForControl(controlSocket: string, timeoutMs?: number): Promise<void>;
}

/**
 * Starts `vpp-iked --config FILE --foreground` with a config file written as given (the daemon section
 * included) and extra environment variables (e.g. NOTIFY_SOCKET); output goes to dir/daemon.log too.
 */
export function spawnDaemonWithConfig(dir: string, configText: string, env: NodeJS.ProcessEnv = {}): RawDaemon {
  mkdirSync(dir, { recursive: true });
  const configPath = join(dir, 'vpp-iked.conf');
  writeFileSync(configPath, configText);
  const child = spawn(NODE, [DAEMON_MAIN, '--config', configPath, '--foreground'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  track(child);
  const proc = new LocalProcess(child, join(dir, 'daemon.log'));
  let exited = false;
  void proc.exited.then(() => (exited = true));
  return {
    proc,
    configPath,
    signal: (sig) => void child.kill(sig),
    waitForControl(controlSocket: string, timeoutMs = 15_000): Promise<void> {
      return untilControlAnswers(
        controlSocket,
        timeoutMs,
        () => (exited ? `vpp-iked exited during start-up\n${tail(proc.output())}` : undefined),
        () => new Error(`control socket ${controlSocket} did not answer in time\n${tail(proc.output())}`),
      );
    },
  };
}
