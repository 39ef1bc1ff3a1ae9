/**
 * `npm run demo`: the VPP emulator and two vpp-iked daemons on loopback, with three tunnels between
 * them, then a clean stop.
 *
 *   daemon A: 127.0.0.1 and a second local IPv6 address, dataplane = vpp (the emulator), initiates
 *   daemon B: 127.0.0.2 and ::1 on other ports, dataplane = memory, responds
 *   tunnels:  v4-psk (PSK over IPv4), v6-psk (PSK over IPv6), v4-natt (PSK over IPv4, NAT-T forced: encap = yes)
 *
 * Prints `vpp-ikectl list-sas` of both daemons and `vpp-ikectl vpp-sas` of A (what the emulator
 * holds, as VPP reports it), stops the daemons with SIGTERM (A removes its SAs from VPP, checked against the
 * emulator) and exits 0 only if every tunnel came up and every process stopped with exit code 0.
 *
 * As root A uses the IKE ports 500/4500 and B 10500/14500; otherwise (or with --port-base N) A uses
 * N/N+1 and B N+2/N+3, N = 20500 by default.
 *
 * VPP (like the emulator) refuses a tunnel SA whose source and destination are the same address, so
 * the IPv6 tunnel cannot run ::1 to ::1: A takes another IPv6 address of this host (a global or ULA
 * one; traffic to ::1 stays inside the host). Without one (or with --temp-ipv6), as root, the demo
 * adds fd00:7ea:de30::a/128 to lo for its duration (--ipv6 ADDR chooses the address instead).
 *
 * Whatever ends the demo (success, failure, an exception, SIGINT, SIGTERM or SIGHUP), the processes
 * it started are killed and the address it added to lo is removed. Usage errors exit 2.
 *
 *   node tools/demo.ts [--port-base N] [--timeout SECONDS] [--ipv6 ADDR | --temp-ipv6] [--keep] [--help]
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { isIPv6 } from 'node:net';
import { networkInterfaces, tmpdir } from 'node:os';
import { spawnSync } from 'node:child_process';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { controlRequest } from '../src/control/server.ts';
import type { IkeView } from '../src/control/views.ts';
import { VppClient } from '../src/vpp/client.ts';

const USAGE = `usage: node tools/demo.ts [--port-base N] [--timeout SECONDS] [--ipv6 ADDR | --temp-ipv6] [--keep] [--help]
  --port-base N      IKE ports: A uses N and N+1, B N+2 and N+3 (default: 500/4500 and 10500/14500 as root, else 20500)
  --timeout SECONDS  how long the tunnels may take to come up (default 20)
  --ipv6 ADDR        daemon A's IPv6 address, a local address other than ::1 (default: the first global or ULA one)
  --temp-ipv6        (root) add fd00:7ea:de30::a/128 to lo for the run and use it, even if the host has another address
  --keep             keep the configs and logs of the run
`;

const ROOT = resolve(import.meta.dirname, '..');
const NODE = process.execPath;
const IKECTL = join(ROOT, 'src/cli/ikectl.ts');
const U32_MAX = 0xffffffff;

interface Side {
  name: 'A' | 'B';
  v4: string;
  v6: string;
  port: number;
  natPort: number;
  dir: string;
  socket: string;
}

interface Tunnel {
  name: string;
  family: 4 | 6;
  encap: boolean;
  /** ids and subnets: [A, B] */
  ids: [string, string];
  nets: [string, string];
}

const TUNNELS: Tunnel[] = [
  { name: 'v4-psk', family: 4, encap: false, ids: ['a.demo', 'b.demo'], nets: ['10.1.0.0/24', '10.2.0.0/24'] },
  { name: 'v6-psk', family: 6, encap: false, ids: ['a6.demo', 'b6.demo'], nets: ['fd00:a::/64', 'fd00:b::/64'] },
  { name: 'v4-natt', family: 4, encap: true, ids: ['a-natt.demo', 'b-natt.demo'], nets: ['10.1.2.0/24', '10.2.2.0/24'] },
];

function config(me: Side, peer: Side, dataplane: 'vpp' | 'memory', vppSocket: string): string {
  const a = me.name === 'A';
  const i = a ? 0 : 1;
  const conns = TUNNELS.map(
    (t) => `  ${t.name} {
    local_addrs = ${t.family === 4 ? me.v4 : me.v6}
    remote_addrs = ${t.family === 4 ? peer.v4 : peer.v6}
    local_port = ${me.port}
    remote_port = ${peer.port}
    proposals = aes256gcm16-prfsha256-x25519
    encap = ${t.encap && a ? 'yes' : 'no'}
    local {
      auth = psk
      id = ${t.ids[i]}
    }
    remote {
      auth = psk
      id = ${t.ids[1 - i]}
    }
    children {
      net {
        local_ts = ${t.nets[i]}
        remote_ts = ${t.nets[1 - i]}
        esp_proposals = aes256gcm16
        start_action = ${a ? 'start' : 'none'}
      }
    }
  }
`,
  ).join('');
  const secrets = TUNNELS.map(
    (t) => `  ike-${t.name} {
    id-a = ${t.ids[0]}
    id-b = ${t.ids[1]}
    secret = "demo-${t.name}-0123456789abcdef"
  }
`,
  ).join('');
  return `# vpp-iked demo, daemon ${me.name}
daemon {
  listen = ${me.v4}, ${me.v6}
  port = ${me.port}
  port_nat_t = ${me.natPort}
  control_socket = ${me.socket}
  dataplane = ${dataplane}
  log_level = info
  stop_timeout = 5s
}
vpp {
  socket = ${vppSocket}
}
connections {
${conns}}
secrets {
${secrets}}
`;
}

const children = new Set<ChildProcess>();

function start(name: string, args: string[], logFile: string): { proc: ChildProcess; exited: Promise<number | string> } {
  const proc = spawn(NODE, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(proc);
  const log = createWriteStream(logFile);
  proc.stdout?.pipe(log, { end: false });
  proc.stderr?.pipe(log, { end: false });
  const exited = new Promise<number | string>((res) =>
    proc.on('close', (code, signal) => {
      children.delete(proc);
      log.end();
      res(code ?? `signal ${signal}`);
    }),
  );
  proc.on('error', (e) => process.stderr.write(`demo: cannot start ${name}: ${e.message}\n`));
  return { proc, exited };
}

function ikectl(socket: string, args: string[]): Promise<{ code: number | null; out: string }> {
  return new Promise((res) => {
    const p = spawn(NODE, [IKECTL, '--socket', socket, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr.on('data', (d: Buffer) => (out += d.toString()));
    p.on('close', (code) => res({ code, out }));
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

async function waitFor<T>(what: string, until: number, f: () => Promise<T | undefined>): Promise<T> {
  let last = '';
  for (;;) {
    try {
      const v = await f();
      if (v !== undefined) return v;
    } catch (e) {
      last = `: ${(e as Error).message}`;
    }
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}${last}`);
    await sleep(100);
  }
}

function tail(file: string, n = 15): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-n).join('\n');
  } catch {
    return '(no log)';
  }
}

/** A tunnel is up when both daemons list it ESTABLISHED with its CHILD_SA INSTALLED, SPIs crosswise, encap as configured. */
function tunnelProblems(a: IkeView[], b: IkeView[]): string[] {
  const problems: string[] = [];
  for (const t of TUNNELS) {
    const ia = a.filter((s) => s.name === t.name && s.state === 'ESTABLISHED');
    const ib = b.filter((s) => s.name === t.name && s.state === 'ESTABLISHED');
    if (ia.length !== 1 || ib.length !== 1) {
      problems.push(`${t.name}: IKE SA not established on both sides`);
      continue;
    }
    const ca = ia[0]!.child_sas.find((c) => c.state === 'INSTALLED');
    const cb = ib[0]!.child_sas.find((c) => c.state === 'INSTALLED');
    if (!ca || !cb) problems.push(`${t.name}: CHILD_SA not installed on both sides`);
    else if (ca.spi_in !== cb.spi_out || ca.spi_out !== cb.spi_in) problems.push(`${t.name}: SPIs do not match`);
    else if (ca.encap !== t.encap || cb.encap !== t.encap) problems.push(`${t.name}: UDP encapsulation is ${ca.encap}, expected ${t.encap}`);
  }
  return problems;
}

/** A local IPv6 address other than ::1 and link-local ones, usable as a second loopback-like address. */
function secondIpv6(): string | undefined {
  for (const list of Object.values(networkInterfaces())) {
    for (const i of list ?? []) {
      if (i.family !== 'IPv6' || i.internal) continue;
      const a = i.address.toLowerCase();
      if (a === '::1' || a.startsWith('fe8') || a.startsWith('fe9') || a.startsWith('fea') || a.startsWith('feb')) continue;
      return a;
    }
  }
  return undefined;
}

const TEMP_V6 = 'fd00:7ea:de30::a';

/** What must be undone however the demo ends (see cleanup()). */
const state: { dir: string | undefined; keepDir: boolean; addedV6: boolean } = { dir: undefined, keepDir: false, addedV6: false };

/**
 * Kills the processes the demo started, removes the address it added to lo and (unless kept) its
 * directory. Synchronous and idempotent: it runs from the normal end, signal handlers and 'exit'.
 */
function cleanup(): void {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  if (state.addedV6) {
    state.addedV6 = false;
    spawnSync('ip', ['-6', 'addr', 'del', `${TEMP_V6}/128`, 'dev', 'lo'], { stdio: 'ignore' });
  }
  if (state.dir !== undefined && !state.keepDir) rmSync(state.dir, { recursive: true, force: true });
  state.dir = undefined;
}

class UsageError extends Error {}

function parseOptions(argv: string[]): { portBase?: number; timeout: number; ipv6?: string; tempIpv6: boolean; keep: boolean; help: boolean } {
  let values;
  try {
    values = parseArgs({
      args: argv,
      options: {
        'port-base': { type: 'string' },
        keep: { type: 'boolean', default: false },
        timeout: { type: 'string', default: '20' },
        ipv6: { type: 'string' },
        'temp-ipv6': { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    }).values;
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  const out: ReturnType<typeof parseOptions> = { timeout: 20, tempIpv6: values['temp-ipv6'], keep: values.keep, help: values.help };
  if (values['port-base'] !== undefined) {
    const n = /^[0-9]{1,5}$/.test(values['port-base']) ? Number(values['port-base']) : NaN;
    if (!(n >= 1 && n <= 65532)) throw new UsageError(`--port-base must be a port number (1..65532), not '${values['port-base']}'`);
    out.portBase = n;
  }
  const t = /^[0-9]{1,6}(\.[0-9]{1,3})?$/.test(values.timeout) ? Number(values.timeout) : NaN;
  if (!(t > 0 && t <= 3600)) throw new UsageError(`--timeout must be a number of seconds (more than 0, at most 3600), not '${values.timeout}'`);
  out.timeout = t;
  if (values.ipv6 !== undefined) {
    if (!isIPv6(values.ipv6) || values.ipv6 === '::1') throw new UsageError(`--ipv6 must be a local IPv6 address other than ::1, not '${values.ipv6}'`);
    if (out.tempIpv6) throw new UsageError('--ipv6 and --temp-ipv6 exclude each other');
    out.ipv6 = values.ipv6;
  }
  return out;
}

interface VppDump {
  sas?: { ours: boolean; spi: string }[];
  tunnel_protections?: unknown[];
}

async function main(): Promise<number> {
  let values: ReturnType<typeof parseOptions>;
  try {
    values = parseOptions(process.argv.slice(2));
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    process.stderr.write(`demo: ${e.message}\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const root = typeof process.getuid === 'function' && process.getuid() === 0;
  const ports: [number, number, number, number] =
    values.portBase !== undefined
      ? [values.portBase, values.portBase + 1, values.portBase + 2, values.portBase + 3]
      : root
        ? [500, 4500, 10500, 14500]
        : [20500, 20501, 20502, 20503];
  const until = Date.now() + values.timeout * 1000;
  const dir = mkdtempSync(join(tmpdir(), 'vpp-iked-demo-'));
  state.dir = dir;
  state.keepDir = values.keep;
  const vppSocket = join(dir, 'vpp-api.sock');
  let v6 = values.ipv6 ?? (values.tempIpv6 ? undefined : secondIpv6());
  if (v6 === undefined) {
    if (!root) {
      process.stderr.write(
        values.tempIpv6
          ? 'demo: --temp-ipv6 needs root (it adds an address to lo)\n'
          : 'demo: this host has no IPv6 address besides ::1; pass --ipv6 ADDR or run as root (the demo then adds one to lo)\n',
      );
      return 1;
    }
    const r = spawnSync('ip', ['-6', 'addr', 'add', `${TEMP_V6}/128`, 'dev', 'lo', 'nodad'], { encoding: 'utf8' });
    if (r.status !== 0) {
      process.stderr.write(`demo: cannot add ${TEMP_V6} to lo: ${r.error?.message ?? r.stderr}\n`);
      return 1;
    }
    v6 = TEMP_V6;
    state.addedV6 = true;
  }
  const addedV6 = state.addedV6;
  const A: Side = { name: 'A', v4: '127.0.0.1', v6, port: ports[0], natPort: ports[1], dir, socket: join(dir, 'a.sock') };
  const B: Side = { name: 'B', v4: '127.0.0.2', v6: '::1', port: ports[2], natPort: ports[3], dir, socket: join(dir, 'b.sock') };
  const say = (s: string): void => void process.stdout.write(`${s}\n`);
  say(`vpp-iked demo in ${dir}${root ? '' : ' (not root: IKE on non-standard ports)'}`);
  say(`  daemon A: ${A.v4}, [${A.v6}]${addedV6 ? ' (added to lo for the demo)' : ''} ports ${A.port}/${A.natPort}, dataplane vpp (emulator at ${vppSocket})`);
  say(`  daemon B: ${B.v4}, [${B.v6}] ports ${B.port}/${B.natPort}, dataplane memory`);
  writeFileSync(join(dir, 'a.conf'), config(A, B, 'vpp', vppSocket));
  writeFileSync(join(dir, 'b.conf'), config(B, A, 'memory', vppSocket));

  let ok = false;
  const procs: { name: string; proc: ChildProcess; exited: Promise<number | string>; log: string }[] = [];
  try {
    const emuLog = join(dir, 'vpp-emulator.log');
    const emu = start('vpp-emulator', [join(ROOT, 'src/vpp/emulator/main.ts'), '--socket', vppSocket, '--quiet'], emuLog);
    procs.push({ name: 'vpp-emulator', ...emu, log: emuLog });
    await waitFor('the VPP emulator', until, async () => (readFileSync(emuLog, 'utf8').includes('listening') ? true : undefined));
    say('VPP emulator up');
    // B (the responder) first, so A's first IKE_SA_INIT finds it listening.
    for (const [side, conf] of [[B, 'b.conf'], [A, 'a.conf']] as const) {
      const log = join(dir, `daemon-${side.name}.log`);
      const d = start(`daemon ${side.name}`, [join(ROOT, 'src/main.ts'), '--config', join(dir, conf), '--foreground'], log);
      procs.push({ name: `daemon ${side.name}`, ...d, log });
      await waitFor(`daemon ${side.name}'s control socket`, until, async () => {
        await controlRequest(side.socket, 'stats', {}, undefined, undefined, 2000);
        return true;
      });
      say(`daemon ${side.name} up`);
    }
    let problems: string[] = [];
    try {
      await waitFor('the tunnels', until, async () => {
        const sas: IkeView[][] = [];
        for (const s of [A, B]) {
          const l: IkeView[] = [];
          await controlRequest(s.socket, 'list-sas', {}, (x) => l.push(x as IkeView));
          sas.push(l);
        }
        problems = tunnelProblems(sas[0]!, sas[1]!);
        if (problems.length > 0) return undefined;
        const dump = (await controlRequest(A.socket, 'vpp-sas')) as VppDump;
        const ours = (dump.sas ?? []).filter((s) => s.ours).length;
        if (ours !== 2 * TUNNELS.length) {
          problems = [`VPP holds ${ours} of our SAs, expected ${2 * TUNNELS.length}`];
          return undefined;
        }
        return true;
      });
    } catch (e) {
      throw new Error(`${(e as Error).message}\n  ${problems.join('\n  ')}`);
    }
    say(`all ${TUNNELS.length} tunnels up: ${TUNNELS.map((t) => `${t.name}${t.encap ? ' (UDP-encapsulated)' : ''}`).join(', ')}\n`);
    for (const [s, cmd] of [
      [A, 'list-sas'],
      [B, 'list-sas'],
      [A, 'vpp-sas'],
    ] as const) {
      const r = await ikectl(s.socket, [cmd]);
      say(`$ vpp-ikectl --socket ${s.socket} ${cmd}     # daemon ${s.name}`);
      say(r.out.trimEnd());
      say('');
      if (r.code !== 0) throw new Error(`vpp-ikectl ${cmd} on ${s.name} exited ${r.code}`);
    }
    // Stop: A first (it tells B and removes its SAs from VPP), then B, then the emulator.
    for (const name of ['daemon A', 'daemon B']) {
      const p = procs.find((x) => x.name === name)!;
      p.proc.kill('SIGTERM');
      const code = await p.exited;
      say(`${name} stopped (SIGTERM), exit code ${code}`);
      if (code !== 0) throw new Error(`${name} exited ${code}\n${tail(p.log)}`);
    }
    const client = new VppClient({ socket: vppSocket, reconnect: false });
    await client.start();
    const left = await client.dump('ipsec_sa_v5_dump', { sa_id: U32_MAX });
    await client.close();
    say(`SAs left in VPP after daemon A stopped: ${left.length}`);
    if (left.length !== 0) throw new Error('daemon A left SAs in VPP');
    const emuProc = procs.find((x) => x.name === 'vpp-emulator')!;
    emuProc.proc.kill('SIGTERM');
    const ecode = await emuProc.exited;
    say(`vpp-emulator stopped (SIGTERM), exit code ${ecode}`);
    if (ecode !== 0) throw new Error(`vpp-emulator exited ${ecode}`);
    ok = true;
  } catch (e) {
    process.stderr.write(`\ndemo FAILED: ${(e as Error).message}\n`);
    for (const p of procs) process.stderr.write(`--- ${p.name} (${p.log}) ---\n${tail(p.log)}\n`);
  } finally {
    state.keepDir = values.keep || !ok;
    if (state.keepDir) say(`files kept in ${dir}`);
    cleanup();
  }
  say(ok ? 'demo OK' : 'demo FAILED');
  return ok ? 0 : 1;
}

// Whatever ends the demo, the processes it started end with it and lo loses the address it got:
// signals (exit code 128 + the signal number), an exception, a closed stdout pipe, a normal exit.
for (const [signal, code] of [
  ['SIGINT', 130],
  ['SIGTERM', 143],
  ['SIGHUP', 129],
] as const) {
  process.on(signal, () => {
    process.stderr.write(`\ndemo: ${signal}: stopping the processes it started\n`);
    cleanup();
    process.exit(code);
  });
}
process.on('exit', cleanup);
process.stdout.on('error', () => {});

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`demo: ${e instanceof Error ? e.stack : String(e)}\n`);
    state.keepDir = true;
    cleanup();
    process.exit(1);
  },
);
