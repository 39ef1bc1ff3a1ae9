/**
 * strongSwan's load-tester plugin as the peer of a benchmark or a test (shared/interop/STRONGSWAN.md
 * §5c): a charon in a lab namespace with the load-tester (fake kernel: CHILD_SAs are negotiated but
 * installed nowhere) that initiates or answers IKE SAs with the plugin's fixed PSK identities (the
 * responder `srv.strongswan.org`, the clients `c<N>-r1.strongswan.org`).
 *
 * The plugin is not packaged by Debian: findPlugin() looks for it (an explicit path, $LOAD_TESTER_SO,
 * ../shared/interop/libstrongswan-load-tester.so beside the repository, the system's plugin folder),
 * and pluginFolder() makes a folder with it and the plugins charon loads, bind-mounted over the
 * system's plugin folder inside charon's own mount namespace.
 */
import { cpSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join, resolve } from 'node:path';
import { CHARON_BIN, LAB_ADDR, parseViciPretty, SWANCTL_BIN, toSwanSas } from '../interop/harness.ts';
import type { Lab, LabProcess, SwanSa } from '../interop/harness.ts';
import { sleep } from './wait.ts';

const ROOT = resolve(import.meta.dirname, '../..');
const PLUGIN_DIR = '/usr/lib/ipsec/plugins';
/** The load-tester's `preshared_key` (both roles). */
export const PSK = 'load-test-psk-0123456789';
const CHARON_LOAD = [
  'random', 'nonce', 'kdf', 'aes', 'sha1', 'sha2', 'hmac', 'gcm', 'pem', 'pkcs1', 'pkcs8', 'x509', 'pubkey', 'openssl',
  'curve25519', 'load-tester', 'kernel-netlink', 'socket-default', 'vici',
];

export function findPlugin(given: string | undefined): string {
  const candidates = [
    given,
    process.env.LOAD_TESTER_SO,
    resolve(ROOT, '../shared/interop/libstrongswan-load-tester.so'),
    join(PLUGIN_DIR, 'libstrongswan-load-tester.so'),
  ].filter((p): p is string => p !== undefined && p !== '');
  for (const p of candidates) if (existsSync(p)) return p;
  throw new Error(`the load-tester plugin was not found (tried ${candidates.join(', ')}); give --plugin PATH`);
}

/** A plugin folder with the plugins charon loads plus the load-tester, bind-mounted over the system's in charon's namespace. */
export function pluginFolder(dir: string, loadTester: string): string {
  const out = join(dir, 'plugins');
  mkdirSync(out, { recursive: true });
  for (const p of CHARON_LOAD) {
    if (p === 'load-tester') continue;
    cpSync(join(PLUGIN_DIR, `libstrongswan-${p}.so`), join(out, `libstrongswan-${p}.so`));
  }
  cpSync(loadTester, join(out, 'libstrongswan-load-tester.so'));
  return out;
}

export interface CharonSpec {
  role: 'initiator' | 'responder';
  proposal: string;
  dir: string;
  /** the load-tester's initiator and responder addresses (default: A initiates, B responds) */
  initiatorAddr?: string;
  responderAddr?: string;
  /**
   * A source address of its own per initiated IKE SA (the plugin's `addrs`): the next address of
   * `range` (`FROM-TO`) on the interface `iface`. charon does not add them (`install_virtual_ip = no`
   * makes its kernel interface report success without doing anything): they must be on the interface
   * before the load starts. Without `addrs` every IKE SA comes from `initiatorAddr`.
   */
  addrs?: { iface: string; range: string };
  /** IKE SA rekey interval in seconds (the plugin's `ike_rekey`; its IKE SAs are deleted if not rekeyed as long again); 0: none */
  ikeRekey?: number;
  /**
   * CHILD_SA lifetime (the plugin's `child_rekey`: rekey after it, hard lifetime twice it). With the
   * fake kernel no expiry event ever reaches charon, so the load-tester itself never rekeys a
   * CHILD_SA; the value shows in what it proposes and accepts only.
   */
  childRekey?: number;
  /** charon's file log level (default 0), and that of its IKE subsystem (default: the same) */
  logLevel?: number;
  ikeLogLevel?: number;
}

export function charonConf(s: CharonSpec): string {
  const ldt = join(s.dir, 'charon.ldt');
  const vici = join(s.dir, 'charon.vici');
  return `charon {
  load = ${CHARON_LOAD.join(' ')}
  port = 500
  port_nat_t = 4500
  install_routes = no
  install_virtual_ip = no
  dos_protection = no
  cookie_threshold = 1000000
  block_threshold = 1000000
  init_limit_half_open = 0
  ikesa_table_size = 65536
  ikesa_table_segments = 16
  ${s.role === 'initiator' ? 'reuse_ikesa = no' : ''}
  filelog {
    bench {
      path = ${join(s.dir, 'charon.log')}
      default = ${s.logLevel ?? 0}${s.ikeLogLevel !== undefined ? `\n      ike = ${s.ikeLogLevel}` : ''}
      append = no
    }
  }
  syslog {
    daemon {
      default = -1
    }
  }
  plugins {
    load-tester {
      enable = yes
      fake_kernel = yes
      initiators = 0
      initiator = ${s.initiatorAddr ?? LAB_ADDR.a.v4}
      responder = ${s.responderAddr ?? LAB_ADDR.b.v4}
      proposal = ${s.proposal}
      esp = aes256gcm16
      initiator_auth = psk
      responder_auth = psk
      preshared_key = ${PSK}
      socket = unix://${ldt}${s.ikeRekey !== undefined ? `\n      ike_rekey = ${s.ikeRekey}` : ''}${s.childRekey !== undefined ? `\n      child_rekey = ${s.childRekey}` : ''}${
  s.addrs ? `\n      addrs_keep = yes\n      addrs_prefix = 32\n      addrs {\n        ${s.addrs.iface} = ${s.addrs.range}\n      }` : ''}
    }
    vici {
      socket = unix://${vici}
    }
  }
}
`;
}

export class CharonProc {
  readonly proc: LabProcess;
  readonly dir: string;
  readonly vici: string;
  readonly ldt: string;

  private constructor(proc: LabProcess, dir: string) {
    this.proc = proc;
    this.dir = dir;
    this.vici = join(dir, 'charon.vici');
    this.ldt = join(dir, 'charon.ldt');
  }

  static async start(lab: Lab, side: 'a' | 'b', s: CharonSpec, plugins: string): Promise<CharonProc> {
    mkdirSync(join(s.dir, 'run'), { recursive: true });
    const conf = join(s.dir, 'strongswan.conf');
    writeFileSync(conf, charonConf(s));
    // `ip netns exec` gives the command its own mount namespace: /run (charon.pid) and the plugin folder are private to it
    const proc = lab.spawn(
      side,
      'sh',
      ['-c', 'mount --bind "$1" "$2" && mount --bind "$3" /run && exec "$4"', 'sh', plugins, PLUGIN_DIR, join(s.dir, 'run'), CHARON_BIN],
      { STRONGSWAN_CONF: conf },
      { name: `charon-${s.role}-${side}-${Date.now()}` },
    );
    const c = new CharonProc(proc, s.dir);
    let exited = false;
    void proc.exited.then(() => { exited = true; });
    const deadline = Date.now() + 15_000;
    while (!existsSync(c.vici) || (s.role === 'initiator' && !existsSync(c.ldt))) {
      if (exited) throw new Error(`charon (${s.role}) exited during start-up:\n${proc.output()}\n${readLog(join(s.dir, 'charon.log'))}`);
      if (Date.now() > deadline) throw new Error(`charon (${s.role}) did not open its sockets within 15 s`);
      await sleep(50);
    }
    return c;
  }

  /** Established IKE SAs (total minus half-open), from swanctl --stats. */
  async established(lab: Lab): Promise<number> {
    const r = await lab.exec('a', SWANCTL_BIN, ['--stats', '--uri', `unix://${this.vici}`], { timeoutMs: 10_000 });
    const m = /IKE_SAs:\s+(\d+)\s+total,\s+(\d+)\s+half-open/.exec(r.stdout);
    if (!m) throw new Error(`swanctl --stats: unexpected output: ${r.stdout}${r.stderr}`);
    return Number(m[1]) - Number(m[2]);
  }

  /** Every IKE SA with its CHILD_SAs, from swanctl --list-sas. */
  async listSas(lab: Lab): Promise<SwanSa[]> {
    const r = await lab.exec('a', SWANCTL_BIN, ['--list-sas', '--pretty', '--uri', `unix://${this.vici}`], { timeoutMs: 60_000 });
    if (r.code !== 0) throw new Error(`swanctl --list-sas exited ${r.code}: ${r.stderr}`);
    return toSwanSas(parseViciPretty(r.stdout));
  }

  stop(): Promise<void> {
    return this.proc.kill('SIGTERM', 5000);
  }
}

export function readLog(p: string): string {
  try {
    return readFileSync(p, 'utf8').split('\n').slice(-30).join('\n');
  } catch {
    return '';
  }
}

/** What the load-tester's control stream reported: `.` initiated, `+` established, `-` failed, `*` retransmitted. */
export interface LoadStream {
  initiated: number;
  established: number;
  failed: number;
  retransmits: number;
  /** ms from the start until the stream closed (every initiation finished), or undefined */
  closedMs?: number;
}

/** Has the load-tester initiate `n` IKE SAs, `delayMs` apart (0: as fast as it can), and follows its control stream. */
export function startLoad(socketPath: string, n: number, t0: number, delayMs = 0): { stats: LoadStream; done: Promise<void>; abort: () => void } {
  const stats: LoadStream = { initiated: 0, established: 0, failed: 0, retransmits: 0 };
  const sock = net.connect(socketPath);
  sock.setEncoding('latin1');
  sock.on('connect', () => sock.write(delayMs > 0 ? `${n} ${delayMs}\n` : `${n}\n`));
  sock.on('data', (chunk: string) => {
    for (let i = 0; i < chunk.length; i++) {
      switch (chunk[i]) {
        case '.': stats.initiated++; break;
        case '+': stats.established++; break;
        case '-': stats.failed++; break;
        case '*': stats.retransmits++; break;
      }
    }
  });
  const done = new Promise<void>((res) => {
    sock.on('close', () => {
      stats.closedMs = performance.now() - t0;
      res();
    });
    sock.on('error', () => res());
  });
  return { stats, done, abort: () => sock.destroy() };
}
