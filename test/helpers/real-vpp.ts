/**
 * A real FD.io VPP for a test, inside a network namespace, with a peer namespace on a veth pair:
 *
 *   peer netns:  <vethA> 192.0.2.1/24, 2001:db8::1/64            lo 198.51.100.1/32, 2001:db8:a::1/128
 *   VPP netns:   <vethB> owned by VPP as host-<vethB> (af_packet, MTU 1500):
 *                192.0.2.2/24, 2001:db8::2/64; loop0 198.51.100.129/32, 2001:db8:b::1/128
 *
 * The VPP netns kernel never answers for VPP's addresses (arp_ignore, no IPv6 on vethB), so the
 * peer reaches 192.0.2.2 / 2001:db8::2 only through VPP. The API socket, VPP's punt socket, the
 * CLI socket and the logs are in the lab folder; unix sockets are files, so the test process (in
 * the root netns) talks to VPP through them.
 *
 * Which VPP:
 *   - VPP_PREFIX=DIR: DIR/bin/vpp and DIR/bin/vppctl (e.g. /usr for a distro install); the
 *     startup.conf is written here;
 *   - otherwise the run script: VPP_RUN_SCRIPT, else ../shared/vpp/run-vpp.sh beside the
 *     repository (it unpacks the VPP tarball next to it once, into $VPP_HOME).
 * Needs root, iproute2, and VPP's runtime libraries (libunwind8; .ci/setup-vpp.sh installs it).
 *
 *   test('...', async (t) => {
 *     if (!requireVpp(t)) return;          // skip with the reason, or fail when REQUIRE_VPP=1
 *     const lab = await startVppLab(t);    // stopped and removed in t.after
 *     await lab.ctl('show', 'interface');
 *   });
 *
 * A gateway test can kill VPP (lab.kill()), start it again (lab.startVpp(): VPP answers its API
 * with none of the lab's interfaces) and then configure it as at the start (lab.configure()), the
 * way a gateway's startup configuration re-creates its interfaces a moment after VPP is up.
 * `punt: false` starts VPP without `punt { socket }` (VPP then refuses punt registrations).
 * Other tools can use the lab's namespaces (test/interop/harness.ts: createLab({ namespaces })).
 *
 * Everything a lab makes (VPP process, namespaces, folder) is removed in t.after, also when the test
 * fails; KEEP_LAB=1 keeps the folder (with VPP's log). Labs left by a killed test run are cleaned up
 * when the next lab starts.
 */
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TestContext } from 'node:test';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const LAB_PREFIX = 'viked-vpp-';
const CMD_TIMEOUT_MS = 20_000;

export const VPP_LAB_ADDR = {
  peer: { v4: '192.0.2.1', v6: '2001:db8::1', inner4: '198.51.100.1', inner6: '2001:db8:a::1' },
  vpp: { v4: '192.0.2.2', v6: '2001:db8::2', inner4: '198.51.100.129', inner6: '2001:db8:b::1' },
} as const;

// ---------------------------------------------------------------------------------------------
// which VPP, and whether it can run here

interface VppSource {
  kind: 'prefix' | 'script';
  /** prefix: the folder with bin/vpp; script: run-vpp.sh */
  path: string;
}

function findBin(name: string): string | undefined {
  for (const d of [...(process.env.PATH ?? '').split(':'), '/usr/sbin', '/sbin', '/usr/bin', '/bin']) {
    if (d !== '' && existsSync(join(d, name))) return join(d, name);
  }
  return undefined;
}

function vppSource(): VppSource | { missing: string } {
  const prefix = process.env.VPP_PREFIX;
  if (prefix) {
    for (const b of ['bin/vpp', 'bin/vppctl']) {
      if (!existsSync(join(prefix, b))) return { missing: `${join(prefix, b)} (VPP_PREFIX)` };
    }
    return { kind: 'prefix', path: resolve(prefix) };
  }
  const script = process.env.VPP_RUN_SCRIPT ? resolve(process.env.VPP_RUN_SCRIPT) : resolve(ROOT, '../shared/vpp/run-vpp.sh');
  if (!existsSync(script)) return { missing: `${script} (set VPP_RUN_SCRIPT or VPP_PREFIX)` };
  return { kind: 'script', path: script };
}

let availability: { ok: true; source: VppSource } | { ok: false; reason: string } | undefined;

/** Whether a real VPP lab can start here; the reason when not. */
export function vppAvailable(): { ok: true; source: VppSource } | { ok: false; reason: string } {
  if (availability) return availability;
  const missing: string[] = [];
  if (process.platform !== 'linux') missing.push('Linux');
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) missing.push('root privileges');
  if (findBin('ip') === undefined) missing.push('ip (iproute2)');
  const src = vppSource();
  if ('missing' in src) missing.push(src.missing);
  const ld = spawnSync('ldconfig', ['-p'], { encoding: 'utf8' });
  if (ld.error === undefined && !/libunwind\.so\.8\b/.test(ld.stdout)) missing.push('libunwind8 (apt-get install libunwind8)');
  availability = missing.length === 0 && !('missing' in src)
    ? { ok: true, source: src }
    : { ok: false, reason: `missing ${missing.join(', ')} (.ci/setup-vpp.sh installs the packages; tests need root)` };
  return availability;
}

/**
 * Call first in every real-VPP test: true when it can run; otherwise the test is skipped with the
 * reason, or fails when REQUIRE_VPP=1.
 */
export function requireVpp(t: TestContext): boolean {
  const a = vppAvailable();
  if (a.ok) return true;
  if (process.env.REQUIRE_VPP === '1') throw new Error(`real VPP tests are required (REQUIRE_VPP=1) but cannot run: ${a.reason}`);
  t.skip(`real VPP not available: ${a.reason}`);
  return false;
}

// ---------------------------------------------------------------------------------------------
// commands

export interface CmdResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion (SIGKILL after timeoutMs). */
export function run(cmd: string, args: readonly string[], opts: { timeoutMs?: number; env?: NodeJS.ProcessEnv; input?: string } = {}): Promise<CmdResult> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(cmd, args, { env: opts.env ?? process.env, stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout?.on('data', (d: Buffer) => out.push(d));
    child.stderr?.on('data', (d: Buffer) => err.push(d));
    if (opts.input !== undefined) child.stdin?.end(opts.input);
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, opts.timeoutMs ?? CMD_TIMEOUT_MS);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(new Error(`cannot run ${cmd}: ${e.message}`));
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      const r = { code, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') };
      if (timedOut) reject(new Error(`${cmd} ${args.join(' ')} timed out after ${opts.timeoutMs ?? CMD_TIMEOUT_MS} ms\n${r.stdout}${r.stderr}`));
      else resolvePromise(r);
    });
  });
}

function mustSync(cmd: string, args: readonly string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 10_000 });
  if (r.error !== undefined) throw new Error(`${cmd} ${args.join(' ')}: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}): ${r.stderr.trim()}`);
  return r.stdout;
}

/** Whether pid is a running process (a zombie, killed but not yet reaped, is not). */
function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/**
 * Whether VPP's CLI reported an error: vppctl itself exits 0, and a failed command prints
 * "<command words>: <message>" (e.g. "set interface ip address: unknown interface ...").
 */
function cliFailed(cmd: readonly string[], out: string): boolean {
  const full = cmd.join(' ');
  return out.split('\n').some((line) => {
    const i = line.indexOf(': ');
    if (i <= 0) return false;
    const head = line.slice(0, i).trim();
    return head !== '' && (full === head || full.startsWith(`${head} `));
  });
}

// ---------------------------------------------------------------------------------------------
// the lab

export interface VppLab {
  /** The lab folder: startup.conf, sockets, logs. */
  readonly dir: string;
  /** VPP's binary API socket. */
  readonly apiSocket: string;
  /** VPP's own punt socket (where answers are written). */
  readonly puntSocket: string;
  /** The namespaces: the peer's and VPP's. */
  readonly peerNs: string;
  readonly vppNs: string;
  /** The peer's veth, and the VPP side's veth and its VPP interface name (host-<veth>). */
  readonly peerIf: string;
  readonly vppIf: string;
  readonly hostIf: string;
  /** The running VPP's pid (a new one after startVpp()). */
  readonly vppPid: number;
  /** Kills VPP (SIGKILL by default) and waits until it is gone. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Starts VPP again (after kill()); resolves once its CLI answers, before any interface exists. */
  startVpp(): Promise<void>;
  /**
   * Creates the host-interface (MTU 1500), loop0 and their addresses, as at the lab's start, then
   * runs the `extra` CLI commands: all in one `exec` of a command file, the way VPP runs its
   * startup-config. Rejects when a command fails.
   */
  configure(extra?: readonly string[]): Promise<void>;
  /** One VPP CLI command; rejects when the CLI reports an error. */
  ctl(...cmd: string[]): Promise<string>;
  /** Runs a command inside the peer namespace. */
  inPeer(cmd: string, args: readonly string[], opts?: { timeoutMs?: number; input?: string }): Promise<CmdResult>;
  /** VPP's CPU time so far (user + system, in seconds), from /proc. */
  cpuSeconds(): number;
  /** The end of VPP's log files, for failure messages. */
  logTail(lines?: number): string;
}

export interface VppLabOptions {
  /** Text appended to startup.conf (as VPP_EXTRA_CONF). */
  extraConf?: string;
  /** Whether startup.conf has `punt { socket DIR/punt.sock }` (default true). */
  punt?: boolean;
  /**
   * net.unix.max_dgram_qlen of VPP's namespace, set before VPP starts: how many datagrams a Unix
   * datagram socket made there (VPP's punt socket, a daemon's run there) holds (kernel default 10).
   */
  unixDgramQlen?: number;
}

/** What owns a lab: its after() hook stops VPP and removes the lab (a TestContext, or node:test's `{ after }`). */
export interface LabOwner {
  after(fn: () => Promise<void>): void;
}

let labCounter = 0;

interface LabRecord {
  owner: number;
  namespaces: string[];
  prefix?: string;
}

/** Removes labs whose test process is gone (a run that was killed): their VPP and namespaces. */
async function cleanStale(source: VppSource): Promise<void> {
  let names: string[];
  try {
    names = readdirSync(tmpdir()).filter((n) => n.startsWith(LAB_PREFIX));
  } catch {
    return;
  }
  for (const n of names) {
    const dir = join(tmpdir(), n);
    let rec: LabRecord;
    try {
      rec = JSON.parse(readFileSync(join(dir, 'lab.json'), 'utf8')) as LabRecord;
    } catch {
      continue;
    }
    if (isAlive(rec.owner) || existsSync(join(dir, 'KEPT'))) continue;
    await stopVpp(dir, source);
    for (const ns of rec.namespaces) spawnSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
    rmSync(dir, { recursive: true, force: true });
  }
}

function vppPidOf(dir: string): number | undefined {
  try {
    const pid = Number(readFileSync(join(dir, 'vpp.pid'), 'utf8').trim());
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** Stops the VPP whose pid is recorded in dir (only if that pid is still a vpp binary). */
async function stopVpp(dir: string, source: VppSource): Promise<void> {
  if (source.kind === 'script') {
    await run('bash', [source.path, 'stop', dir]).catch(() => undefined);
    return;
  }
  const pid = vppPidOf(dir);
  if (pid === undefined || !isAlive(pid)) return;
  let exe = '';
  try {
    exe = readlinkSync(`/proc/${pid}/exe`).replace(/ \(deleted\)$/, '');
  } catch {
    return;
  }
  if (exe !== resolve(source.path, 'bin/vpp')) return;
  process.kill(pid, 'SIGTERM');
  for (let i = 0; i < 50 && isAlive(pid); i++) await sleep(100);
  if (isAlive(pid)) process.kill(pid, 'SIGKILL');
}

function startupConf(dir: string, extra: string, punt: boolean): string {
  return `unix {
  nodaemon
  cli-listen ${dir}/cli.sock
  log ${dir}/vpp.log
  cli-no-pager
  nocolor
}
api-segment { prefix ${LAB_PREFIX}${process.pid}-${labCounter} }
socksvr { socket-name ${dir}/api.sock }
${punt ? `punt { socket ${dir}/punt.sock }\n` : ''}statseg { socket-name ${dir}/stats.sock size 32M }
memory { main-heap-size 256M }
buffers {
  buffers-per-numa 16384
  page-size 4k
}
plugins {
  plugin linux_cp_plugin.so { disable }
  plugin linux_nl_plugin.so { disable }
}
${extra}
`;
}

/**
 * The folder with bin/vpp of the run script's VPP (unpacked on first use): for a startup.conf the
 * script does not write.
 */
async function scriptVppPrefix(script: string): Promise<string> {
  const home = process.env.VPP_HOME ?? '/var/tmp/vpp-26.10';
  const prefix = join(home, 'vpp');
  if (!existsSync(join(prefix, 'bin/vpp'))) {
    // `ctl` unpacks VPP before it runs vppctl (which then finds no VPP: that is fine here).
    await run('bash', [script, 'ctl', join(tmpdir(), `${LAB_PREFIX}no-such-lab`), 'show', 'version'], { timeoutMs: 120_000 }).catch(() => undefined);
    if (!existsSync(join(prefix, 'bin/vpp'))) throw new Error(`${script} did not unpack VPP into ${home}`);
  }
  return prefix;
}

/** Starts VPP for `dir` inside netns `ns`; resolves with its pid once the CLI answers. */
async function startVpp(dir: string, ns: string, source: VppSource, extra: string, punt = true): Promise<number> {
  if (source.kind === 'script' && !punt) return startVpp(dir, ns, { kind: 'prefix', path: await scriptVppPrefix(source.path) }, extra, punt);
  if (source.kind === 'script') {
    const r = await run('bash', [source.path, 'start', dir, ns], { env: { ...process.env, VPP_EXTRA_CONF: extra }, timeoutMs: 60_000 });
    if (r.code !== 0) throw new Error(`run-vpp.sh start failed (${r.code}): ${r.stderr.trim()}\n${tailOf(join(dir, 'vpp.out'), 20)}`);
    const pid = vppPidOf(dir);
    if (pid === undefined) throw new Error(`run-vpp.sh started VPP but left no pid in ${dir}/vpp.pid`);
    return pid;
  }
  writeFileSync(join(dir, 'startup.conf'), startupConf(dir, extra, punt));
  const out = openSync(join(dir, 'vpp.out'), 'a');
  const child = spawn('ip', ['netns', 'exec', ns, join(source.path, 'bin/vpp'), '-c', join(dir, 'startup.conf')], {
    stdio: ['ignore', out, out],
    detached: false,
  });
  closeSync(out);
  if (child.pid === undefined) throw new Error('cannot start VPP');
  // `ip netns exec` execs the program, so the child's pid is VPP's.
  writeFileSync(join(dir, 'vpp.pid'), `${child.pid}\n`);
  child.unref();
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (child.exitCode !== null || !isAlive(child.pid)) throw new Error(`VPP exited during start-up\n${tailOf(join(dir, 'vpp.out'), 20)}`);
    if (existsSync(join(dir, 'api.sock'))) {
      const r = await run(join(source.path, 'bin/vppctl'), ['-s', join(dir, 'cli.sock'), 'show', 'version']).catch(() => undefined);
      if (r && /^vpp /m.test(r.stdout)) return child.pid;
    }
    if (Date.now() > deadline) {
      process.kill(child.pid, 'SIGKILL');
      throw new Error(`VPP did not answer within 20 s\n${tailOf(join(dir, 'vpp.out'), 20)}`);
    }
    await sleep(100);
  }
}

function tailOf(path: string, n: number): string {
  try {
    const lines = readFileSync(path, 'utf8').split('\n');
    return lines.slice(-n - 1).join('\n');
  } catch {
    return '';
  }
}

/**
 * Starts the lab (namespaces, veth, VPP with the host-interface, addresses and loop0) and arranges
 * for t.after to stop VPP and remove everything. Call requireVpp(t) first. `t` may also be any
 * object with an after() hook, e.g. `{ after }` of node:test for one lab shared by a whole file.
 */
export async function startVppLab(t: LabOwner, opts: VppLabOptions = {}): Promise<VppLab> {
  const a = vppAvailable();
  if (!a.ok) throw new Error(`real VPP not available: ${a.reason}`);
  const source = a.source;
  await cleanStale(source);

  const n = ++labCounter;
  const tag = `${process.pid % 100000}x${n}`;
  const peerNs = `vkvpp-${tag}-peer`;
  const vppNs = `vkvpp-${tag}-vpp`;
  const peerIf = `vkp${tag}`; // at most 15 characters: vkp + 5 + x + digits
  const vppIf = `vkv${tag}`;
  const dir = mkdtempSync(join(tmpdir(), `${LAB_PREFIX}${process.pid}-`));
  const rec: LabRecord = { owner: process.pid, namespaces: [peerNs, vppNs] };
  if (source.kind === 'prefix') rec.prefix = source.path;
  writeFileSync(join(dir, 'lab.json'), JSON.stringify(rec));

  let vppPid: number | undefined;
  const cleanup = async (): Promise<void> => {
    await stopVpp(dir, source);
    for (const ns of [peerNs, vppNs]) spawnSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
    if (process.env.KEEP_LAB === '1') writeFileSync(join(dir, 'KEPT'), '');
    else rmSync(dir, { recursive: true, force: true });
  };
  t.after(cleanup);

  const vppctl = source.kind === 'prefix' ? join(source.path, 'bin/vppctl') : undefined;
  const ctl = async (...cmd: string[]): Promise<string> => {
    const r = vppctl
      ? await run(vppctl, ['-s', join(dir, 'cli.sock'), ...cmd])
      : await run('bash', [source.path, 'ctl', dir, ...cmd]);
    const text = r.stdout + r.stderr;
    if (r.code !== 0 || cliFailed(cmd, text)) throw new Error(`vppctl ${cmd.join(' ')}: ${text.trim() || `exit ${r.code}`}`);
    return r.stdout;
  };

  try {
    mustSync('ip', ['netns', 'add', peerNs]);
    mustSync('ip', ['netns', 'add', vppNs]);
    mustSync('ip', ['link', 'add', peerIf, 'type', 'veth', 'peer', 'name', vppIf]);
    mustSync('ip', ['link', 'set', peerIf, 'netns', peerNs]);
    mustSync('ip', ['link', 'set', vppIf, 'netns', vppNs]);
    // VPP owns the addresses: the VPP netns kernel must not answer ARP or ND on the veth.
    mustSync('ip', ['netns', 'exec', vppNs, 'sysctl', '-qw', `net.ipv4.conf.${vppIf}.arp_ignore=8`]);
    mustSync('ip', ['netns', 'exec', vppNs, 'sysctl', '-qw', `net.ipv6.conf.${vppIf}.disable_ipv6=1`]);
    mustSync('ip', ['-n', peerNs, 'addr', 'add', `${VPP_LAB_ADDR.peer.v4}/24`, 'dev', peerIf]);
    mustSync('ip', ['-n', peerNs, 'addr', 'add', `${VPP_LAB_ADDR.peer.v6}/64`, 'dev', peerIf, 'nodad']);
    mustSync('ip', ['-n', peerNs, 'addr', 'add', `${VPP_LAB_ADDR.peer.inner4}/32`, 'dev', 'lo']);
    mustSync('ip', ['-n', peerNs, 'addr', 'add', `${VPP_LAB_ADDR.peer.inner6}/128`, 'dev', 'lo', 'nodad']);
    for (const ns of [peerNs, vppNs]) mustSync('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    mustSync('ip', ['-n', peerNs, 'link', 'set', peerIf, 'up']);
    mustSync('ip', ['-n', vppNs, 'link', 'set', vppIf, 'up']);

    const extra = opts.extraConf ?? process.env.VPP_EXTRA_CONF ?? '';
    const punt = opts.punt ?? true;
    if (opts.unixDgramQlen !== undefined) mustSync('ip', ['netns', 'exec', vppNs, 'sysctl', '-qw', `net.unix.max_dgram_qlen=${opts.unixDgramQlen}`]);
    vppPid = await startVpp(dir, vppNs, source, extra, punt);
    const hostIf = `host-${vppIf}`;
    const configure = async (extra: readonly string[] = []): Promise<void> => {
      const cmds = [
        `create host-interface name ${vppIf}`,
        // Right away: VPP defaults to 9000, and one frame above the veth's MTU wedges the TX ring.
        `set interface mtu 1500 ${hostIf}`,
        `set interface state ${hostIf} up`,
        `set interface ip address ${hostIf} ${VPP_LAB_ADDR.vpp.v4}/24`,
        `set interface ip address ${hostIf} ${VPP_LAB_ADDR.vpp.v6}/64`,
        'create loopback interface',
        'set interface state loop0 up',
        `set interface ip address loop0 ${VPP_LAB_ADDR.vpp.inner4}/32`,
        `set interface ip address loop0 ${VPP_LAB_ADDR.vpp.inner6}/128`,
        ...extra,
      ];
      const file = join(dir, 'configure.cli');
      writeFileSync(file, `${cmds.join('\n')}\n`);
      const out = await ctl('exec', file);
      const failed = cmds.filter((c) => cliFailed(c.split(' '), out));
      if (failed.length > 0) throw new Error(`VPP configuration failed (${failed.join('; ')}):\n${out.trim()}`);
    };
    await configure();

    return {
      dir,
      apiSocket: join(dir, 'api.sock'),
      puntSocket: join(dir, 'punt.sock'),
      peerNs,
      vppNs,
      peerIf,
      vppIf,
      hostIf,
      get vppPid(): number {
        return vppPid!;
      },
      async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
        const pid = vppPid!;
        if (!isAlive(pid)) return;
        process.kill(pid, signal);
        for (let i = 0; i < 100 && isAlive(pid); i++) await sleep(50);
        if (isAlive(pid)) throw new Error(`VPP (pid ${pid}) did not exit after ${signal}`);
      },
      async startVpp(): Promise<void> {
        if (isAlive(vppPid!)) throw new Error(`VPP (pid ${vppPid}) is still running`);
        vppPid = await startVpp(dir, vppNs, source, extra, punt);
      },
      configure,
      ctl,
      inPeer: (cmd, args, o = {}) => run('ip', ['netns', 'exec', peerNs, cmd, ...args], o),
      cpuSeconds(): number {
        const f = readFileSync(`/proc/${vppPid!}/stat`, 'utf8');
        const fields = f.slice(f.lastIndexOf(')') + 2).split(' ');
        // utime and stime are fields 14 and 15 of /proc/PID/stat (11 and 12 after "(comm) ")
        return (Number(fields[11]) + Number(fields[12])) / 100;
      },
      logTail: (lines = 30) => `--- vpp.out ---\n${tailOf(join(dir, 'vpp.out'), lines)}\n--- vpp.log ---\n${tailOf(join(dir, 'vpp.log'), lines)}`,
    };
  } catch (e) {
    const log = `\n--- vpp.out ---\n${tailOf(join(dir, 'vpp.out'), 20)}`;
    throw new Error(`${(e as Error).message}${vppPid !== undefined ? log : ''}`);
  }
}

/**
 * The `daemon` and `vpp` blocks of a vpp-iked on this lab's gateway: IKE through VPP's punt socket
 * (`iked-punt.sock` in the lab's folder), SAs into VPP, loop0 lending its address to ipsec
 * interfaces. `daemon` and `vpp` add lines to their blocks.
 */
export function gatewayDaemonConf(vpp: VppLab, o: { daemon?: readonly string[]; vpp?: readonly string[] } = {}): string {
  return [
    'daemon {',
    '  transport = punt',
    '  dataplane = vpp',
    ...(o.daemon ?? []).map((l) => `  ${l}`),
    '}',
    'vpp {',
    `  socket = ${vpp.apiSocket}`,
    `  punt_socket = ${gatewayPuntSocket(vpp)}`,
    '  unnumbered_interface = loop0',
    ...(o.vpp ?? []).map((l) => `  ${l}`),
    '}',
  ].join('\n');
}

/** Where gatewayDaemonConf() has vpp-iked bind its punt socket. */
export function gatewayPuntSocket(vpp: VppLab): string {
  return join(vpp.dir, 'iked-punt.sock');
}

