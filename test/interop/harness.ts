/**
 * Interop test harness: real strongSwan peers (Debian packages) in network namespaces.
 *
 * A lab is two network namespaces, A and B, joined by a veth pair:
 *
 *   A: vA 192.0.2.1/24, 2001:db8::1/64   lo: 198.51.100.1/32,   2001:db8:a::1/128
 *   B: vB 192.0.2.2/24, 2001:db8::2/64   lo: 198.51.100.129/32, 2001:db8:b::1/128
 *
 * Each side can run one charon (own strongswan.conf, own vici socket, private /run) or any
 * other process (our daemon). Everything a lab starts is tracked by PID and killed by
 * `destroy()`, which also deletes the namespaces and the lab directory (kept when KEEP_LAB=1).
 *
 * Usage:
 *
 *   test('strongSwan initiates', async (t) => {
 *     if (!requireInterop(t)) return;          // skip, or fail when REQUIRE_INTEROP=1
 *     const lab = await createLab();
 *     t.after(() => lab.destroy());            // runs even when the test fails
 *     const a = await lab.startCharon('a', { swanctlConf, libipsec: true });
 *     ...
 *   });
 *
 * Needs root, iproute2, /usr/lib/ipsec/charon, swanctl and the plugins in CHARON_PLUGINS
 * (.ci/setup-interop.sh installs them).
 *
 * strongSwan 6 (`startCharon(side, { version: 6 })`) runs from the relocatable 6.0.6 build in
 * ../shared/interop/strongswan6 beside the repository (or $STRONGSWAN6_TARBALL), unpacked once into
 * a cache folder under the system's temporary folder (or $STRONGSWAN6_DIR, an unpacked tree);
 * tests that need it call requireInterop6(t).
 */
import { createHash } from 'node:crypto';
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import type { WriteStream } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import type { TestContext } from 'node:test';
import { forEachLine } from '../helpers/lines.ts';
import { sleep, waitFor } from '../helpers/wait.ts';

// Re-exported for the interop tests, which take it from here with the rest of the lab.
export { waitFor };

export type Side = 'a' | 'b';

/** Addresses configured by createLab(). */
export const LAB_ADDR = {
  a: { ifname: 'vA', v4: '192.0.2.1', v6: '2001:db8::1', inner4: '198.51.100.1', inner6: '2001:db8:a::1' },
  b: { ifname: 'vB', v4: '192.0.2.2', v6: '2001:db8::2', inner4: '198.51.100.129', inner6: '2001:db8:b::1' },
} as const;

export const CHARON_BIN = '/usr/lib/ipsec/charon';
export const SWANCTL_BIN = '/usr/sbin/swanctl';
const PLUGIN_DIR = '/usr/lib/ipsec/plugins';

/** charon.load without a kernel backend; kernel-libipsec and/or kernel-netlink are inserted before socket-default. */
const CHARON_PLUGINS_BASE = [
  'random', 'nonce', 'kdf', 'aes', 'sha1', 'sha2', 'hmac', 'gcm', 'pem', 'pkcs1', 'pkcs8', 'x509', 'pubkey',
  'revocation', 'constraints', 'openssl', 'curve25519',
] as const;
/** Every plugin a lab charon may load. */
export const CHARON_PLUGINS = [...CHARON_PLUGINS_BASE, 'kernel-libipsec', 'kernel-netlink', 'socket-default', 'vici'] as const;

/** swanctl credential folders, created empty so swanctl --load-all stays quiet. */
const CRED_DIRS = ['x509', 'x509ca', 'x509ocsp', 'x509aa', 'x509ac', 'x509crl', 'pubkey', 'private', 'rsa', 'ecdsa', 'bliss', 'pkcs8', 'pkcs12'];

const NS_PREFIX = 'viked-';
/** file left in a lab directory kept with KEEP_LAB=1, so stale clean-up leaves it alone */
const KEPT_MARKER = 'KEPT';
const DEFAULT_CMD_TIMEOUT_MS = 20_000;
const LOG_TAIL_LINES = 40;

// ---------------------------------------------------------------------------------------------
// availability

export interface InteropAvailability {
  available: boolean;
  /** what is missing, empty when available */
  missing: string[];
  /** one-line summary for skip / failure messages */
  reason: string;
}

let availabilityCache: InteropAvailability | undefined;

/** Finds an executable in PATH and the sbin folders. */
function findBin(name: string): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(':'), '/usr/sbin', '/sbin', '/usr/bin', '/bin'];
  for (const d of dirs) {
    if (d !== '' && existsSync(join(d, name))) return join(d, name);
  }
  return undefined;
}

/** Whether interop tests can run here: root, iproute2, charon, swanctl, the plugins, /dev/net/tun. */
export function interopAvailable(): InteropAvailability {
  if (availabilityCache !== undefined) return availabilityCache;
  const missing: string[] = [];
  if (process.platform !== 'linux') missing.push('Linux');
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) missing.push('root privileges');
  if (findBin('ip') === undefined) missing.push('ip (iproute2)');
  if (!existsSync(CHARON_BIN)) missing.push(`${CHARON_BIN} (strongswan-charon)`);
  if (!existsSync(SWANCTL_BIN)) missing.push(`${SWANCTL_BIN} (strongswan-swanctl)`);
  for (const p of CHARON_PLUGINS) {
    if (!existsSync(join(PLUGIN_DIR, `libstrongswan-${p}.so`))) missing.push(`strongSwan plugin ${p}`);
  }
  if (!existsSync('/dev/net/tun')) missing.push('/dev/net/tun');
  const available = missing.length === 0;
  availabilityCache = {
    available,
    missing,
    reason: available ? 'available' : `missing ${missing.join(', ')} (tests need root; .ci/setup-interop.sh installs the packages)`,
  };
  return availabilityCache;
}

/**
 * Call first in every interop test. Returns true when the test can run. Otherwise the test is
 * skipped with the reason and false is returned, or, when REQUIRE_INTEROP=1, this throws so the
 * test fails and says what is missing.
 */
export function requireInterop(t: TestContext): boolean {
  const st = interopAvailable();
  if (st.available) return true;
  if (process.env.REQUIRE_INTEROP === '1') {
    throw new Error(`interop tests are required (REQUIRE_INTEROP=1) but cannot run: ${st.reason}`);
  }
  t.skip(`interop not available: ${st.reason}`);
  return false;
}

// ---------------------------------------------------------------------------------------------
// strongSwan 6

/** The strongSwan 6 build beside the repository (CI copies shared/ next to the clone). */
const SS6_TARBALL_DEFAULT = resolve(import.meta.dirname, '../../../shared/interop/strongswan6/strongswan-6.0.6-debian12-x86_64.tar.xz');
/** charon 6's plugins (all built into its libraries); kernel backends are inserted as for 5.9.8. */
const CHARON6_PLUGINS_BASE = [
  'random', 'nonce', 'kdf', 'drbg', 'aes', 'sha1', 'sha2', 'sha3', 'hmac', 'gcm', 'pem', 'pkcs1', 'pkcs8', 'x509', 'pubkey',
  'revocation', 'constraints', 'openssl', 'curve25519', 'chapoly', 'ml',
] as const;

export interface StrongSwan6 {
  /** the unpacked tree (bin/, sbin/, libexec/, lib/) */
  root: string;
  charon: string;
  swanctl: string;
}

let ss6Cache: StrongSwan6 | { error: string } | undefined;

/**
 * The strongSwan 6 tree: $STRONGSWAN6_DIR as it is, or the tarball unpacked into
 * <tmp>/viked-strongswan6-<hash> (once; concurrent test files unpack to a private folder and
 * rename it into place).
 */
export function strongSwan6(): StrongSwan6 | { error: string } {
  if (ss6Cache !== undefined) return ss6Cache;
  const check = (root: string): StrongSwan6 | { error: string } => {
    const t = { root, charon: join(root, 'libexec/ipsec/charon'), swanctl: join(root, 'sbin/swanctl') };
    for (const f of [t.charon, t.swanctl]) if (!existsSync(f)) return { error: `strongSwan 6: ${f} not found` };
    return t;
  };
  if (process.env.STRONGSWAN6_DIR) return (ss6Cache = check(process.env.STRONGSWAN6_DIR));
  const tarball = process.env.STRONGSWAN6_TARBALL || SS6_TARBALL_DEFAULT;
  if (!existsSync(tarball)) return (ss6Cache = { error: `strongSwan 6 tarball ${tarball} not found (../shared/interop/strongswan6 beside the repository)` });
  const hash = createHash('sha256').update(readFileSync(tarball)).digest('hex').slice(0, 12);
  const cache = join(tmpdir(), `viked-strongswan6-${hash}`);
  if (!existsSync(join(cache, 'strongswan6/sbin/swanctl'))) {
    const tmp = mkdtempSync(join(tmpdir(), `viked-strongswan6-unpack-${process.pid}-`));
    const r = spawnSync('tar', ['-C', tmp, '-xJf', tarball], { encoding: 'utf8' });
    if (r.status !== 0) {
      rmSync(tmp, { recursive: true, force: true });
      return (ss6Cache = { error: `strongSwan 6: unpacking ${tarball} failed: ${r.stderr}` });
    }
    try {
      renameSync(tmp, cache);
    } catch {
      // another test file got there first
      rmSync(tmp, { recursive: true, force: true });
    }
  }
  return (ss6Cache = check(join(cache, 'strongswan6')));
}

/** requireInterop, plus strongSwan 6: skip without it, or fail under REQUIRE_INTEROP=1. */
export function requireInterop6(t: TestContext): boolean {
  if (!requireInterop(t)) return false;
  const ss6 = strongSwan6();
  if (!('error' in ss6)) return true;
  if (process.env.REQUIRE_INTEROP === '1') throw new Error(`interop tests are required (REQUIRE_INTEROP=1) but cannot run: ${ss6.error}`);
  t.skip(ss6.error);
  return false;
}

function ss6OrThrow(): StrongSwan6 {
  const ss6 = strongSwan6();
  if ('error' in ss6) throw new Error(ss6.error);
  return ss6;
}

// ---------------------------------------------------------------------------------------------
// processes

export interface ExecResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface ExecOptions {
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  input?: string;
}

class TimeoutError extends Error {}

function tailLines(text: string, n: number): string {
  const lines = text.split('\n');
  if (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  return lines.slice(-n).join('\n');
}

function readFileOr(path: string, fallback: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return fallback;
  }
}

/** Resolves true when p settles within ms, false otherwise; the timer never outlives the race. */
async function within(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<boolean>((resolve) => { timer = setTimeout(() => resolve(false), ms); });
  try {
    return await Promise.race([p.then(() => true, () => true), expired]);
  } finally {
    clearTimeout(timer);
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function exitOf(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

/** Sends SIGTERM, then SIGKILL after graceMs; resolves when the process has exited. */
async function terminate(child: ChildProcess, graceMs: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
  const exited = exitOf(child);
  child.kill('SIGTERM');
  if (!(await within(exited, graceMs))) {
    child.kill('SIGKILL');
    await within(exited, 2000);
  }
}

/** Runs a command to completion with a timeout (SIGKILL on expiry). */
function run(cmd: string, args: readonly string[], opts: ExecOptions, track?: Set<ChildProcess>): Promise<ExecResult> {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_CMD_TIMEOUT_MS;
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      env: opts.env ?? process.env,
      cwd: opts.cwd,
      stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    });
    track?.add(child);
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout?.on('data', (d: Buffer) => out.push(d));
    child.stderr?.on('data', (d: Buffer) => err.push(d));
    if (opts.input !== undefined) {
      child.stdin?.on('error', () => { /* the command exited without reading its input */ });
      child.stdin?.end(opts.input);
    }
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.on('error', (e) => {
      clearTimeout(timer);
      track?.delete(child);
      reject(new Error(`cannot run ${cmd}: ${e.message}`));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      track?.delete(child);
      const res: ExecResult = {
        code,
        signal,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
      };
      if (timedOut) {
        reject(new TimeoutError(
          `${cmd} ${args.join(' ')} timed out after ${timeoutMs} ms\n--- stdout ---\n${tailLines(res.stdout, 20)}\n--- stderr ---\n${tailLines(res.stderr, 20)}`,
        ));
      } else {
        resolve(res);
      }
    });
  });
}

/** Runs a command synchronously and throws on failure (namespace set-up). */
function mustSync(cmd: string, args: readonly string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 10_000 });
  if (r.error !== undefined) throw new Error(`${cmd} ${args.join(' ')}: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}): ${r.stderr.trim()}`);
  return r.stdout;
}

/** A long-running process started inside a namespace with lab.spawn(). */
export interface LabProcess {
  readonly pid: number;
  readonly name: string;
  readonly stdoutPath: string;
  readonly stderrPath: string;
  /** resolves when the process has exited */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /**
   * Resolves with the first line of stdout or stderr (whole output so far included) that
   * matches re. Rejects on timeout or when the process exits first; the error holds the last lines.
   */
  waitForLine(re: RegExp, timeoutMs?: number): Promise<string>;
  /** all stdout and stderr lines so far, in arrival order */
  output(): string;
  /** SIGTERM (or signal), SIGKILL after graceMs; resolves when exited */
  kill(signal?: NodeJS.Signals, graceMs?: number): Promise<void>;
}

interface LineWaiter {
  re: RegExp;
  resolve: (line: string) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

class LabProcessImpl implements LabProcess {
  readonly pid: number;
  readonly name: string;
  readonly stdoutPath: string;
  readonly stderrPath: string;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  readonly child: ChildProcess;
  private readonly lines: string[] = [];
  private waiters: LineWaiter[] = [];
  private exitInfo: string | undefined;

  constructor(child: ChildProcess, name: string, stdoutPath: string, stderrPath: string) {
    if (child.pid === undefined) throw new Error(`cannot start ${name}`);
    this.child = child;
    this.pid = child.pid;
    this.name = name;
    this.stdoutPath = stdoutPath;
    this.stderrPath = stderrPath;
    const outFile = createWriteStream(stdoutPath);
    const errFile = createWriteStream(stderrPath);
    forEachLine(child.stdout, (l) => this.addLine(l), outFile);
    forEachLine(child.stderr, (l) => this.addLine(l), errFile);
    this.exited = new Promise((resolve) => {
      child.on('close', (code, signal) => {
        outFile.end();
        errFile.end();
        this.exitInfo = signal !== null ? `signal ${signal}` : `code ${code}`;
        const pending = this.waiters;
        this.waiters = [];
        for (const w of pending) {
          clearTimeout(w.timer);
          w.reject(new Error(`${this.name} exited (${this.exitInfo}) before printing a line matching ${w.re}\n${this.tail()}`));
        }
        resolve({ code, signal });
      });
    });
  }

  private addLine(line: string): void {
    this.lines.push(line);
    if (this.waiters.length === 0) return;
    const still: LineWaiter[] = [];
    for (const w of this.waiters) {
      if (w.re.test(line)) {
        clearTimeout(w.timer);
        w.resolve(line);
      } else {
        still.push(w);
      }
    }
    this.waiters = still;
  }

  private tail(): string {
    return `--- last output of ${this.name} (pid ${this.pid}) ---\n${this.lines.slice(-LOG_TAIL_LINES).join('\n')}`;
  }

  waitForLine(pattern: RegExp, timeoutMs = 10_000): Promise<string> {
    // a /g or /y regexp would carry lastIndex from one line to the next
    const re = pattern.global || pattern.sticky ? new RegExp(pattern.source, pattern.flags.replace(/[gy]/g, '')) : pattern;
    for (const l of this.lines) if (re.test(l)) return Promise.resolve(l);
    if (this.exitInfo !== undefined) {
      return Promise.reject(new Error(`${this.name} exited (${this.exitInfo}) without printing a line matching ${re}\n${this.tail()}`));
    }
    return new Promise((resolve, reject) => {
      const w: LineWaiter = {
        re,
        resolve,
        reject,
        timer: setTimeout(() => {
          this.waiters = this.waiters.filter((x) => x !== w);
          reject(new Error(`timed out after ${timeoutMs} ms waiting for ${this.name} to print a line matching ${re}\n${this.tail()}`));
        }, timeoutMs),
      };
      this.waiters.push(w);
    });
  }

  output(): string {
    return this.lines.join('\n');
  }

  async kill(signal: NodeJS.Signals = 'SIGTERM', graceMs = 5000): Promise<void> {
    if (this.exitInfo !== undefined) return;
    if (signal === 'SIGTERM') {
      await terminate(this.child, graceMs);
    } else {
      this.child.kill(signal);
      await within(exitOf(this.child), graceMs);
    }
    await within(this.exited, 1000);
  }
}

// ---------------------------------------------------------------------------------------------
// swanctl --list-sas parsing

/** A vici message as printed by swanctl --pretty: sections, key/values and lists. */
export interface ViciSection {
  [key: string]: string | string[] | ViciSection;
}

/** One top-level vici message of a dump, e.g. label "list-sa event" or "list-sas reply". */
export interface ViciMessage {
  label: string;
  body: ViciSection;
}

/**
 * Parses swanctl's --pretty dump of vici messages (one element per line):
 *   label {            message or section
 *     key = value      key/value (value is the rest of the line, may contain spaces)
 *     key = [          list, one item per line, closed by ]
 *   }
 * The --pretty form is used rather than --raw because --raw puts everything on one line
 * separated by spaces, which is ambiguous for values that contain spaces (e.g. DN identities).
 * Several top-level messages (one per event) are returned in order.
 */
export function parseViciPretty(text: string): ViciMessage[] {
  const messages: ViciMessage[] = [];
  const stack: ViciSection[] = [];
  let list: string[] | undefined;
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim();
    if (line === '') continue;
    const where = () => `line ${i + 1}: ${JSON.stringify(lines[i])}`;
    if (list !== undefined) {
      if (line === ']') list = undefined;
      else list.push(line);
      continue;
    }
    if (line === '}') {
      if (stack.length === 0) throw new Error(`vici dump: unbalanced } at ${where()}`);
      stack.pop();
      continue;
    }
    const kv = /^(\S+) = (.*)$/.exec(line);
    if (kv !== null) {
      const top = stack[stack.length - 1];
      if (top === undefined) throw new Error(`vici dump: key outside a section at ${where()}`);
      if (kv[2] === '[') {
        list = [];
        top[kv[1]] = list;
      } else {
        top[kv[1]] = kv[2];
      }
      continue;
    }
    if (line.endsWith(' {') || line === '{') {
      const name = line.slice(0, -1).trimEnd();
      const section: ViciSection = {};
      const top = stack[stack.length - 1];
      if (top === undefined) messages.push({ label: name, body: section });
      else top[name] = section;
      stack.push(section);
      continue;
    }
    throw new Error(`vici dump: cannot parse ${where()}`);
  }
  if (stack.length !== 0 || list !== undefined) throw new Error('vici dump: truncated (unclosed section or list)');
  return messages;
}

export interface SwanChildSa {
  /** config name (vici "name"); the section key is name-uniqueid */
  name: string;
  uniqueId: string;
  reqid: string;
  state: string;
  mode: string;
  protocol: string;
  /** UDP encapsulation in use */
  encap: boolean;
  /** hex, as swanctl prints it (8 digits, lower case) */
  spiIn: string;
  spiOut: string;
  encrAlg?: string;
  encrKeysize?: number;
  integAlg?: string;
  integKeysize?: number;
  dhGroup?: string;
  localTs: string[];
  remoteTs: string[];
  bytesIn: number;
  bytesOut: number;
  packetsIn: number;
  packetsOut: number;
  raw: ViciSection;
}

export interface SwanSa {
  /** connection name */
  name: string;
  uniqueId: string;
  version: string;
  state: string;
  localHost: string;
  localPort: number;
  localId: string;
  remoteHost: string;
  remotePort: number;
  remoteId: string;
  /** whether this side initiated the IKE_SA */
  initiator: boolean;
  /** IKE SPIs as 16 hex digits */
  spiI: string;
  spiR: string;
  natLocal: boolean;
  natRemote: boolean;
  natFake: boolean;
  encrAlg?: string;
  encrKeysize?: number;
  integAlg?: string;
  integKeysize?: number;
  prfAlg?: string;
  dhGroup?: string;
  children: SwanChildSa[];
  raw: ViciSection;
}

function str(s: ViciSection, k: string): string {
  const v = s[k];
  return typeof v === 'string' ? v : '';
}
function optStr(s: ViciSection, k: string): string | undefined {
  const v = s[k];
  return typeof v === 'string' ? v : undefined;
}
function num(s: ViciSection, k: string): number {
  const v = s[k];
  return typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : 0;
}
function optNum(s: ViciSection, k: string): number | undefined {
  const v = s[k];
  return typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : undefined;
}
function list(s: ViciSection, k: string): string[] {
  const v = s[k];
  return Array.isArray(v) ? [...v] : [];
}
function sub(s: ViciSection, k: string): ViciSection | undefined {
  const v = s[k];
  return typeof v === 'object' && !Array.isArray(v) ? v : undefined;
}

/** Converts the "list-sa event" messages of a --list-sas dump (body: { <ike-name>: {...} }) into SwanSa objects. */
export function toSwanSas(messages: readonly ViciMessage[]): SwanSa[] {
  const out: SwanSa[] = [];
  for (const m of messages) {
    if (m.label !== 'list-sa event') continue;
    for (const [name, ike] of Object.entries(m.body)) {
      if (typeof ike !== 'object' || Array.isArray(ike)) continue;
      const children: SwanChildSa[] = [];
      const cs = sub(ike, 'child-sas') ?? {};
      for (const c of Object.values(cs)) {
        if (typeof c !== 'object' || Array.isArray(c)) continue;
        children.push({
          name: str(c, 'name'),
          uniqueId: str(c, 'uniqueid'),
          reqid: str(c, 'reqid'),
          state: str(c, 'state'),
          mode: str(c, 'mode'),
          protocol: str(c, 'protocol'),
          encap: str(c, 'encap') === 'yes',
          spiIn: str(c, 'spi-in'),
          spiOut: str(c, 'spi-out'),
          encrAlg: optStr(c, 'encr-alg'),
          encrKeysize: optNum(c, 'encr-keysize'),
          integAlg: optStr(c, 'integ-alg'),
          integKeysize: optNum(c, 'integ-keysize'),
          dhGroup: optStr(c, 'dh-group'),
          localTs: list(c, 'local-ts'),
          remoteTs: list(c, 'remote-ts'),
          bytesIn: num(c, 'bytes-in'),
          bytesOut: num(c, 'bytes-out'),
          packetsIn: num(c, 'packets-in'),
          packetsOut: num(c, 'packets-out'),
          raw: c,
        });
      }
      out.push({
        name,
        uniqueId: str(ike, 'uniqueid'),
        version: str(ike, 'version'),
        state: str(ike, 'state'),
        localHost: str(ike, 'local-host'),
        localPort: num(ike, 'local-port'),
        localId: str(ike, 'local-id'),
        remoteHost: str(ike, 'remote-host'),
        remotePort: num(ike, 'remote-port'),
        remoteId: str(ike, 'remote-id'),
        initiator: str(ike, 'initiator') === 'yes',
        spiI: str(ike, 'initiator-spi'),
        spiR: str(ike, 'responder-spi'),
        natLocal: str(ike, 'nat-local') === 'yes',
        natRemote: str(ike, 'nat-remote') === 'yes',
        natFake: str(ike, 'nat-fake') === 'yes',
        encrAlg: optStr(ike, 'encr-alg'),
        encrKeysize: optNum(ike, 'encr-keysize'),
        integAlg: optStr(ike, 'integ-alg'),
        integKeysize: optNum(ike, 'integ-keysize'),
        prfAlg: optStr(ike, 'prf-alg'),
        dhGroup: optStr(ike, 'dh-group'),
        children,
        raw: ike,
      });
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// charon

export interface CharonOptions {
  /** swanctl.conf contents, loaded with swanctl --load-all after start */
  swanctlConf: string;
  /** appended to the generated strongswan.conf; a repeated section merges, later keys win */
  extraStrongswanConf?: string;
  /** kernel-libipsec (user-space ESP over TUN) before kernel-netlink, with install_routes = yes */
  libipsec?: boolean;
  /** extra files relative to the swanctl folder, e.g. { 'x509/a.cert.pem': pem, 'ecdsa/a.key.pem': key } */
  files?: Record<string, string | Uint8Array>;
  /** how long to wait for the vici socket; default 10 s */
  startTimeoutMs?: number;
  /** 5: Debian's 5.9.8 (default); 6: the strongSwan 6 build (see strongSwan6()) */
  version?: 5 | 6;
}

export interface SwanctlActionOptions {
  /** default 20 s */
  timeoutMs?: number;
  /** resolve with the result instead of throwing on a non-zero exit code */
  allowFailure?: boolean;
}

export interface Charon {
  readonly side: Side;
  readonly pid: number;
  /** folder with strongswan.conf, swanctl.conf, credential folders, logs and run/ */
  readonly dir: string;
  readonly logPath: string;
  readonly viciSocket: string;
  /** runs swanctl against this charon; never throws on a non-zero exit code */
  swanctl(args: string[], opts?: { timeoutMs?: number }): Promise<ExecResult>;
  /** replaces swanctl.conf and runs swanctl --load-all */
  loadConf(swanctlConf: string): Promise<void>;
  initiate(child: string, opts?: SwanctlActionOptions & { ike?: string }): Promise<ExecResult>;
  /** brings up the IKE_SA of a connection without a CHILD_SA (childless, RFC 6023) */
  initiateIke(ike: string, opts?: SwanctlActionOptions): Promise<ExecResult>;
  terminateIke(name: string, opts?: SwanctlActionOptions): Promise<ExecResult>;
  terminateChild(name: string, opts?: SwanctlActionOptions): Promise<ExecResult>;
  /** swanctl --list-sas, parsed; optionally only the IKE_SAs of one connection */
  listSas(ike?: string): Promise<SwanSa[]>;
  /** contents of the charon log file (filelog, default 1, ike 2) */
  log(): string;
  /** the last n lines of the log */
  logTail(n?: number): string;
  /** SIGTERM, SIGKILL after 5 s */
  stop(): Promise<void>;
}

function strongswanConf(dir: string, libipsec: boolean, extra: string, version: 5 | 6 = 5): string {
  const base = version === 6 ? CHARON6_PLUGINS_BASE : CHARON_PLUGINS_BASE;
  const load = [...base, ...(libipsec ? ['kernel-libipsec'] : []), 'kernel-netlink', 'socket-default', 'vici'];
  const vici = `unix://${join(dir, 'charon.vici')}`;
  return `# generated by test/interop/harness.ts
charon {
  load = ${load.join(' ')}
  port = 500
  port_nat_t = 4500
  install_routes = ${libipsec ? 'yes' : 'no'}
  install_virtual_ip = no
  # fail fast in tests: about 11 s until an unanswered request is given up
  retransmit_timeout = 1.0
  retransmit_base = 1.4
  retransmit_tries = 4
  filelog {
    lab {
      path = ${join(dir, 'charon.log')}
      time_format = %T
      default = 1
      ike = 2
      ike_name = yes
      flush_line = yes
      append = no
    }
  }
  syslog {
    daemon {
      default = -1
    }
  }
  plugins {
    vici {
      socket = ${vici}
    }
  }
}
swanctl {
  socket = ${vici}
}
${extra}
`;
}

class CharonImpl implements Charon {
  readonly side: Side;
  readonly pid: number;
  readonly dir: string;
  readonly logPath: string;
  readonly viciSocket: string;
  readonly proc: LabProcessImpl;
  private readonly lab: LabImpl;
  private readonly env: NodeJS.ProcessEnv;
  private readonly swanctlBin: string;

  constructor(lab: LabImpl, side: Side, dir: string, proc: LabProcessImpl, swanctlBin = SWANCTL_BIN) {
    this.lab = lab;
    this.swanctlBin = swanctlBin;
    this.side = side;
    this.dir = dir;
    this.proc = proc;
    this.pid = proc.pid;
    this.logPath = join(dir, 'charon.log');
    this.viciSocket = join(dir, 'charon.vici');
    this.env = { ...process.env, STRONGSWAN_CONF: join(dir, 'strongswan.conf') };
  }

  log(): string {
    return readFileOr(this.logPath, '');
  }

  logTail(n = LOG_TAIL_LINES): string {
    const stdout = tailLines(this.proc.output(), 10);
    return `--- last ${n} lines of ${this.logPath} ---\n${tailLines(this.log(), n)}` +
      (stdout !== '' ? `\n--- charon stdout/stderr ---\n${stdout}` : '');
  }

  swanctl(args: string[], opts: { timeoutMs?: number } = {}): Promise<ExecResult> {
    return run(this.swanctlBin, args, { env: this.env, timeoutMs: opts.timeoutMs }, this.lab.procs);
  }

  /** runs swanctl; throws unless it exits 0 (or allowFailure), with its output and the log tail */
  private async action(args: string[], opts: SwanctlActionOptions = {}): Promise<ExecResult> {
    const timeoutMs = opts.timeoutMs ?? DEFAULT_CMD_TIMEOUT_MS;
    let r: ExecResult;
    try {
      r = await this.swanctl(args, { timeoutMs });
    } catch (e) {
      throw new Error(`charon ${this.side}: ${(e as Error).message}\n${this.logTail()}`);
    }
    if (r.code !== 0 && opts.allowFailure !== true) {
      throw new Error(
        `charon ${this.side}: swanctl ${args.join(' ')} exited ${r.code ?? r.signal}\n` +
        `--- swanctl output ---\n${tailLines(r.stdout + r.stderr, 30)}\n${this.logTail()}`,
      );
    }
    return r;
  }

  async loadConf(swanctlConf: string): Promise<void> {
    const file = join(this.dir, 'swanctl.conf');
    writeFileSync(file, swanctlConf);
    await this.action(['--load-all', '--noprompt', '--file', file]);
  }

  initiate(child: string, opts: SwanctlActionOptions & { ike?: string } = {}): Promise<ExecResult> {
    const args = ['--initiate', '--child', child];
    if (opts.ike !== undefined) args.push('--ike', opts.ike);
    return this.action(args, opts);
  }

  initiateIke(ike: string, opts: SwanctlActionOptions = {}): Promise<ExecResult> {
    return this.action(['--initiate', '--ike', ike], opts);
  }

  terminateIke(name: string, opts: SwanctlActionOptions = {}): Promise<ExecResult> {
    return this.action(['--terminate', '--ike', name], opts);
  }

  terminateChild(name: string, opts: SwanctlActionOptions = {}): Promise<ExecResult> {
    return this.action(['--terminate', '--child', name], opts);
  }

  async listSas(ike?: string): Promise<SwanSa[]> {
    const args = ['--list-sas', '--pretty'];
    if (ike !== undefined) args.push('--ike', ike);
    const r = await this.action(args);
    try {
      return toSwanSas(parseViciPretty(r.stdout));
    } catch (e) {
      throw new Error(`charon ${this.side}: ${(e as Error).message}\n--- swanctl output ---\n${r.stdout}`);
    }
  }

  async stop(): Promise<void> {
    await this.proc.kill('SIGTERM', 5000);
    this.lab.charons.delete(this.side);
  }
}

// ---------------------------------------------------------------------------------------------
// lab

export interface LabOptions {
  /** short tag added to the lab directory name */
  tag?: string;
  /**
   * Use these existing namespaces as sides a and b (e.g. the peer and VPP namespaces of
   * test/helpers/real-vpp.ts) instead of creating a pair: no veth or address is set up, and
   * destroy() stops the lab's processes but leaves the namespaces to whoever made them.
   */
  namespaces?: { a: string; b: string };
}

export interface Lab {
  /** lab directory (under os.tmpdir()); removed by destroy() unless KEEP_LAB=1 */
  readonly dir: string;
  /** network namespace names */
  readonly ns: { readonly a: string; readonly b: string };
  readonly addr: typeof LAB_ADDR;
  startCharon(side: Side, opts: CharonOptions): Promise<Charon>;
  /**
   * Starts cmd inside the side's namespace (`ip netns exec NS cmd ...args`). stdout and stderr go to
   * files in the lab directory. env is added to the current environment.
   */
  spawn(side: Side, cmd: string, args: readonly string[], env?: NodeJS.ProcessEnv, opts?: { cwd?: string; name?: string }): LabProcess;
  /**
   * Runs cmd to completion inside the side's namespace (env is added to the current environment).
   * Never throws on a non-zero exit code; throws on timeout (default 20 s).
   */
  exec(side: Side, cmd: string, args: readonly string[], opts?: ExecOptions): Promise<ExecResult>;
  /** kills every process of the lab, deletes the namespaces and the directory; safe to call twice */
  destroy(): Promise<void>;
}

let labCounter = 0;
let staleChecked = false;
const liveLabs = new Set<LabImpl>();
let exitHookInstalled = false;

function netnsList(ip: string): string[] {
  const r = spawnSync(ip, ['netns', 'list'], { encoding: 'utf8', timeout: 10_000 });
  if (r.status !== 0) return [];
  return r.stdout.split('\n').map((l) => l.trim().split(/\s+/)[0]).filter((n) => n !== undefined && n !== '');
}

/** PIDs of the processes in a namespace (the namespace is ours: the name carries our prefix). */
function netnsPids(ip: string, ns: string): number[] {
  const r = spawnSync(ip, ['netns', 'pids', ns], { encoding: 'utf8', timeout: 10_000 });
  if (r.status !== 0) return [];
  return r.stdout.split('\n').filter((l) => /^\d+$/.test(l.trim())).map((l) => Number(l.trim()));
}

/** Kills whatever still runs in the namespace, by PID, then deletes it. Synchronous: also used on process exit. */
function removeNetnsSync(ip: string, ns: string): void {
  for (const pid of netnsPids(ip, ns)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  spawnSync(ip, ['netns', 'del', ns], { timeout: 10_000 });
}

/** Removes namespaces left behind by lab runs whose process is gone. */
function removeStaleNamespaces(ip: string): void {
  for (const ns of netnsList(ip)) {
    const m = /^viked-(\d+)-/.exec(ns);
    if (m === null) continue;
    const pid = Number(m[1]);
    if (pid === process.pid || isAlive(pid)) continue;
    removeNetnsSync(ip, ns);
  }
}

/** Removes lab directories of runs whose process is gone, unless kept on purpose with KEEP_LAB=1. */
function removeStaleDirs(): void {
  let entries: string[];
  try {
    entries = readdirSync(tmpdir());
  } catch {
    return;
  }
  for (const e of entries) {
    const m = /^viked-lab-(\d+)-/.exec(e);
    if (m === null) continue;
    const pid = Number(m[1]);
    if (pid === process.pid || isAlive(pid) || existsSync(join(tmpdir(), e, KEPT_MARKER))) continue;
    rmSync(join(tmpdir(), e), { recursive: true, force: true });
  }
}

function exitCleanup(): void {
  for (const lab of liveLabs) lab.destroySync();
}

class LabImpl implements Lab {
  readonly dir: string;
  readonly ns: { readonly a: string; readonly b: string };
  readonly addr = LAB_ADDR;
  readonly ip: string;
  readonly procs = new Set<ChildProcess>();
  readonly charons = new Map<Side, CharonImpl>();
  /** false when the namespaces were given (LabOptions.namespaces): they are not ours to delete */
  readonly ownsNamespaces: boolean;
  private spawnCounter = 0;
  private destroyed = false;

  constructor(ip: string, dir: string, n: number, given?: { a: string; b: string }) {
    this.ip = ip;
    this.dir = dir;
    this.ownsNamespaces = given === undefined;
    this.ns = given ? { a: given.a, b: given.b } : { a: `${NS_PREFIX}${process.pid}-${n}-a`, b: `${NS_PREFIX}${process.pid}-${n}-b` };
  }

  setUpSync(): void {
    const ip = this.ip;
    const { a, b } = this.ns;
    mustSync(ip, ['netns', 'add', a]);
    mustSync(ip, ['netns', 'add', b]);
    mustSync(ip, ['link', 'add', LAB_ADDR.a.ifname, 'netns', a, 'type', 'veth', 'peer', 'name', LAB_ADDR.b.ifname, 'netns', b]);
    for (const side of ['a', 'b'] as const) {
      const n = this.ns[side];
      const ad = LAB_ADDR[side];
      mustSync(ip, ['-n', n, 'link', 'set', 'lo', 'up']);
      mustSync(ip, ['-n', n, 'addr', 'add', `${ad.v4}/24`, 'dev', ad.ifname]);
      mustSync(ip, ['-n', n, 'addr', 'add', `${ad.v6}/64`, 'dev', ad.ifname, 'nodad']);
      mustSync(ip, ['-n', n, 'addr', 'add', `${ad.inner4}/32`, 'dev', 'lo']);
      mustSync(ip, ['-n', n, 'addr', 'add', `${ad.inner6}/128`, 'dev', 'lo']);
      mustSync(ip, ['-n', n, 'link', 'set', ad.ifname, 'up']);
    }
  }

  /** veth operstate turns UP asynchronously after `link set up`; wait for it on both ends. */
  async waitLinksUp(timeoutMs: number): Promise<void> {
    for (const side of ['a', 'b'] as const) {
      const path = ['-n', this.ns[side], '-br', 'link', 'show', 'dev', LAB_ADDR[side].ifname];
      await waitFor(`${LAB_ADDR[side].ifname} in ${this.ns[side]} to be UP`, async () => {
        const r = await run(this.ip, path, { timeoutMs: 5000 });
        return r.code === 0 && /\sUP\s/.test(r.stdout);
      }, timeoutMs, 20);
    }
  }

  private nsOf(side: Side): string {
    if (side !== 'a' && side !== 'b') throw new Error(`unknown side ${String(side)}`);
    if (this.destroyed) throw new Error('lab already destroyed');
    return this.ns[side];
  }

  private startProcess(side: Side, cmd: string, args: readonly string[], env: NodeJS.ProcessEnv, cwd: string | undefined, name: string): LabProcessImpl {
    const ns = this.nsOf(side);
    const child = spawn(this.ip, ['netns', 'exec', ns, cmd, ...args], { env, cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    this.procs.add(child);
    child.on('error', () => { /* reported through exit / waitForLine */ });
    child.on('close', () => this.procs.delete(child));
    return new LabProcessImpl(child, name, join(this.dir, `${name}.stdout.log`), join(this.dir, `${name}.stderr.log`));
  }

  spawn(side: Side, cmd: string, args: readonly string[], env: NodeJS.ProcessEnv = {}, opts: { cwd?: string; name?: string } = {}): LabProcess {
    const name = opts.name ?? `${side}-${basename(cmd)}-${++this.spawnCounter}`;
    return this.startProcess(side, cmd, args, { ...process.env, ...env }, opts.cwd, name);
  }

  exec(side: Side, cmd: string, args: readonly string[], opts: ExecOptions = {}): Promise<ExecResult> {
    const ns = this.nsOf(side);
    return run(this.ip, ['netns', 'exec', ns, cmd, ...args], { ...opts, env: { ...process.env, ...opts.env } }, this.procs);
  }

  async startCharon(side: Side, opts: CharonOptions): Promise<Charon> {
    this.nsOf(side);
    if (this.charons.has(side)) throw new Error(`a charon already runs on side ${side}`);
    const dir = join(this.dir, `charon-${side}`);
    mkdirSync(join(dir, 'run'), { recursive: true });
    for (const d of CRED_DIRS) mkdirSync(join(dir, d), { recursive: true });
    for (const [rel, content] of Object.entries(opts.files ?? {})) {
      const p = join(dir, rel);
      if (!p.startsWith(dir + '/')) throw new Error(`file ${rel} is outside the charon folder`);
      mkdirSync(dirname(p), { recursive: true });
      writeFileSync(p, content, { mode: 0o600 });
    }
    // a socket left by an earlier charon on this side (stop() + restart) must not count as ready
    rmSync(join(dir, 'charon.vici'), { force: true });
    const confPath = join(dir, 'strongswan.conf');
    const version = opts.version ?? 5;
    const ss6 = version === 6 ? ss6OrThrow() : undefined;
    writeFileSync(confPath, strongswanConf(dir, opts.libipsec === true, opts.extraStrongswanConf ?? '', version));
    // ip netns exec gives the command its own (slave) mount namespace: /run is private to this charon,
    // so its /run/charon.pid does not clash with other charons.
    const proc = this.startProcess(
      side,
      'sh',
      ['-c', 'mount --bind "$1" /run && exec "$2"', 'sh', join(dir, 'run'), ss6?.charon ?? CHARON_BIN],
      { ...process.env, STRONGSWAN_CONF: confPath },
      undefined,
      `charon-${side}`,
    );
    const charon = new CharonImpl(this, side, dir, proc, ss6?.swanctl);
    this.charons.set(side, charon);
    const deadline = Date.now() + (opts.startTimeoutMs ?? 10_000);
    let exited = false;
    void proc.exited.then(() => { exited = true; });
    while (!existsSync(charon.viciSocket)) {
      if (exited) throw new Error(`charon ${side} exited during start-up\n${charon.logTail()}`);
      if (Date.now() > deadline) {
        throw new Error(`charon ${side}: vici socket ${charon.viciSocket} did not appear within ${opts.startTimeoutMs ?? 10_000} ms\n${charon.logTail()}`);
      }
      await sleep(50);
    }
    await charon.loadConf(opts.swanctlConf);
    return charon;
  }

  async destroy(): Promise<void> {
    if (this.destroyed) return;
    this.destroyed = true;
    await Promise.all([...this.procs].map((c) => terminate(c, 3000)));
    this.finish();
  }

  /** Synchronous variant for process exit: SIGKILL only. */
  destroySync(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    for (const c of this.procs) {
      if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    }
    this.finish();
  }

  private finish(): void {
    if (this.ownsNamespaces) {
      removeNetnsSync(this.ip, this.ns.a);
      removeNetnsSync(this.ip, this.ns.b);
    }
    liveLabs.delete(this);
    if (process.env.KEEP_LAB === '1') {
      writeFileSync(join(this.dir, KEPT_MARKER), 'kept because KEEP_LAB=1\n');
      console.log(`KEEP_LAB=1: lab directory kept at ${this.dir}`);
    } else {
      rmSync(this.dir, { recursive: true, force: true });
    }
  }
}

/**
 * Creates the two namespaces with the veth pair and addresses (see LAB_ADDR), or takes two given
 * namespaces as they are (LabOptions.namespaces). Register
 * `t.after(() => lab.destroy())` right after this call. Throws when interop is not available.
 */
export async function createLab(opts: LabOptions = {}): Promise<Lab> {
  const st = interopAvailable();
  if (!st.available) throw new Error(`cannot create an interop lab: ${st.reason}`);
  const ip = findBin('ip');
  if (ip === undefined) throw new Error('ip (iproute2) not found');
  if (!staleChecked) {
    staleChecked = true;
    removeStaleNamespaces(ip);
    removeStaleDirs();
  }
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.on('exit', exitCleanup);
  }
  const tag = opts.tag !== undefined ? `${opts.tag.replace(/[^A-Za-z0-9_.-]/g, '_')}-` : '';
  const dir = mkdtempSync(join(tmpdir(), `viked-lab-${process.pid}-${tag}`));
  const lab = new LabImpl(ip, dir, ++labCounter, opts.namespaces);
  liveLabs.add(lab);
  if (opts.namespaces) {
    const have = new Set(netnsList(ip));
    const absent = [opts.namespaces.a, opts.namespaces.b].filter((n) => !have.has(n));
    if (absent.length > 0) {
      lab.destroySync();
      throw new Error(`cannot use namespaces that do not exist: ${absent.join(', ')}`);
    }
    return lab;
  }
  try {
    lab.setUpSync();
    await lab.waitLinksUp(5000);
  } catch (e) {
    lab.destroySync();
    throw e;
  }
  return lab;
}
