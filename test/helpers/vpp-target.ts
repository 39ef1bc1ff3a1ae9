/**
 * Where the VPP back-end contract tests run: the VPP emulator (src/vpp/emulator/) or a real VPP
 * (test/helpers/real-vpp.ts), behind one interface, so that one test body with the same
 * assertions runs against both:
 *
 *   contract('p2p: ...', async (t, vpp) => {
 *     const { dp, done } = await vpp.dataplane({ unnumbered: 'loop0' });
 *     ...
 *     const v = await vpp.view();            // what VPP reports through its API
 *     assert.equal(v.sas.size, 2);
 *   });
 *
 * defines "p2p: ... [emulator]" and "p2p: ... [real VPP]" (--test-name-pattern '\[real VPP\]' runs
 * one side). Tests that need what only the emulator can do (hold, drop or fail requests, read its
 * internal tables) use it directly (test/helpers/vpp-dataplane.ts) and say so in their names.
 *
 * Both targets have the same interfaces: local0, the uplink (`vpp.uplink`: host-eth0 on the
 * emulator, host-<veth> on the real VPP) with 192.0.2.2/24 and 2001:db8::2/64, loop0 with
 * 198.51.100.129/32 and 2001:db8:b::1/128, and loop1 without addresses, all up, in table 0.
 *
 * The emulator: a new one per test. The real VPP: one per test file, started by the first test
 * that needs it (a failed start fails every real-VPP test; without root or VPP they are skipped, or
 * fail under REQUIRE_VPP=1), stopped after the file's last test. Before each test it is brought
 * back to that state through the API (ipsec interfaces, protections, SAs, SPDs, routes through
 * ipsec interfaces, the VRF tables in TEST_TABLES, loop1's VRF); when that cannot be done (an SA
 * that stays locked, an interface missing) VPP is restarted. Tests use VRF tables from TEST_TABLES
 * only. VPP_PREFIX / VPP_RUN_SCRIPT choose the VPP (see real-vpp.ts).
 */
import { after, test, type TestContext } from 'node:test';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startEmulator, type EmulatorHandle, type EmulatorOptions } from '../../src/vpp/emulator/server.ts';
import { VppDataplane, type VppDataplaneOptions } from '../../src/dataplane/vpp/index.ts';
import { VppClient, type VppClientOptions, type VppRequestOptions } from '../../src/vpp/client.ts';
import type { VppDumpName, VppRequestBody, VppRequestName } from '../../src/vpp/api.ts';
import { AF_IP6, apiAddressText } from '../../src/vpp/address.ts';
import { spdEntryV2 } from '../../src/dataplane/vpp/spd.ts';
import { unixSocketTransport, type VppConnection, type VppTransport } from '../../src/vpp/transport.ts';
import { requireVpp, startVppLab, VPP_LAB_ADDR, type VppLab } from './real-vpp.ts';
import { ExtraApi } from './vpp-extra-api.ts';

export type TargetName = 'emulator' | 'real VPP';

/** The VRF tables (besides 0) the contract tests may use; the real VPP's reset removes them. */
export const TEST_TABLES: readonly number[] = [3, 5, 7, 5 + 2 ** 24];

const U32_MAX = 0xffffffff;
const EMU_UPLINK = 'host-eth0';
const LOOP_ADDRESSES = [`${VPP_LAB_ADDR.vpp.inner4}/32`, `${VPP_LAB_ADDR.vpp.inner6}/128`];
const UPLINK_ADDRESSES = [`${VPP_LAB_ADDR.vpp.v4}/24`, `${VPP_LAB_ADDR.vpp.v6}/64`];

// ---------------------------------------------------------------------------------------------
// what VPP reports

export interface ItfView {
  swIfIndex: number;
  name: string;
  adminUp: boolean;
  /** Set for ipsec interfaces (ipsec_itf_dump). */
  ipsec?: { instance: number; mode: number };
}

export interface SaView {
  id: number;
  spi: number;
  protocol: number;
  crypto: number;
  cryptoKey: Buffer;
  integ: number;
  integKey: Buffer;
  flags: number;
  /** As ipsec_sa_v5_dump reports it (byte-reversed against the add request). */
  salt: number;
  udpSrc: number;
  udpDst: number;
  window: number;
  tunnelSrc: string | null;
  tunnelDst: string | null;
  tunnelTable: number | null;
  swIfIndex: number;
}

export interface ProtView {
  swIfIndex: number;
  nh: string;
  saOut: number;
  saIn: number[];
}

export interface PolicyView {
  priority: number;
  isOutbound: boolean;
  isIpv6: boolean;
  saId: number;
  policy: number;
  protocol: number;
  raddrStart: string;
  raddrStop: string;
  laddrStart: string;
  laddrStop: string;
  rportStart: number;
  rportStop: number;
  lportStart: number;
  lportStop: number;
}

export interface RouteView {
  tableId: number;
  isIp6: boolean;
  prefix: string;
  len: number;
  paths: { swIfIndex: number; nh: string }[];
}

export interface VppView {
  /** Every interface, by sw_if_index. */
  interfaces: ItfView[];
  sas: Map<number, SaView>;
  protections: ProtView[];
  /** SPD id → its entries (ipsec_spd_dump order). */
  spds: Map<number, PolicyView[]>;
  /** sw_if_index → the pool index of the SPD bound to it (ipsec_spd_interface_dump; not the SPD id). */
  spdBindings: Map<number, number>;
  /**
   * The routes in tables 0 and TEST_TABLES that have a path through an ipsec interface or through
   * an interface that no longer exists (VPP's own and connected routes are left out).
   */
  routes: RouteView[];
}

export function itfNamed(v: VppView, name: string): ItfView | undefined {
  return v.interfaces.find((i) => i.name === name);
}

export function ipsecItfs(v: VppView): ItfView[] {
  return v.interfaces.filter((i) => i.ipsec);
}

/** The SPD id bound to sw_if_index, when VPP's pool index can be told apart (one SPD in VPP). */
export function boundSpd(v: VppView, swIfIndex: number): number | undefined {
  if (!v.spdBindings.has(swIfIndex)) return undefined;
  if (v.spds.size !== 1) throw new Error('boundSpd: ipsec_spd_interface_dump names SPDs by pool index; only one SPD can be told');
  return [...v.spds.keys()][0];
}

/** A JSON text of everything in the view, in a stable order (for before/after comparisons). */
export function viewText(v: VppView): string {
  const sas = [...v.sas.values()].sort((a, b) => a.id - b.id).map((s) => ({ ...s, cryptoKey: s.cryptoKey.toString('hex'), integKey: s.integKey.toString('hex') }));
  const spds = [...v.spds].sort((a, b) => a[0] - b[0]);
  const routes = [...v.routes].sort((a, b) => routeKey(a).localeCompare(routeKey(b)));
  const prots = [...v.protections].sort((a, b) => a.swIfIndex - b.swIfIndex || a.nh.localeCompare(b.nh));
  return JSON.stringify({ interfaces: v.interfaces, sas, protections: prots, spds, spdBindings: [...v.spdBindings].sort((a, b) => a[0] - b[0]), routes });
}

function routeKey(r: RouteView): string {
  return `${r.tableId}|${r.isIp6}|${r.prefix}/${r.len}`;
}

/** Reads what VPP holds through its API. */
export async function readView(c: VppClient): Promise<VppView> {
  const [ifs, itfs, sas, prots, spdList, bindings] = await Promise.all([
    c.dump('sw_interface_dump', { sw_if_index: U32_MAX, name_filter_valid: false, name_filter: '' }),
    c.dump('ipsec_itf_dump', { sw_if_index: U32_MAX }),
    c.dump('ipsec_sa_v5_dump', { sa_id: U32_MAX }),
    c.dump('ipsec_tunnel_protect_dump', { sw_if_index: U32_MAX }),
    c.dump('ipsec_spds_dump', {}),
    c.dump('ipsec_spd_interface_dump', { spd_index: 0, spd_index_valid: 0 }),
  ]);
  const ipsecBySw = new Map(itfs.map((d) => [d.itf.sw_if_index, { instance: d.itf.user_instance ?? U32_MAX, mode: d.itf.mode }]));
  const interfaces: ItfView[] = ifs
    .map((i) => {
      const v: ItfView = { swIfIndex: i.sw_if_index, name: i.interface_name, adminUp: (i.flags & 1) !== 0 };
      const ip = ipsecBySw.get(i.sw_if_index);
      if (ip) v.ipsec = ip;
      return v;
    })
    .sort((a, b) => a.swIfIndex - b.swIfIndex);
  const spds = new Map<number, PolicyView[]>();
  const entries = await Promise.all(spdList.map((d) => c.dump('ipsec_spd_dump', { spd_id: d.spd_id, sa_id: U32_MAX })));
  spdList.forEach((d, i) => {
    spds.set(
      d.spd_id,
      entries[i]!.map(({ entry }) => {
        // As the back end reads it: an entry with any IPv6 address is IPv6 (VPP reports :: as IPv4).
        const e = spdEntryV2(entry);
        const isIpv6 = e.remote_address_start.af === AF_IP6;
        return {
        priority: e.priority,
        isOutbound: e.is_outbound,
        isIpv6,
        saId: e.sa_id,
        policy: e.policy,
        protocol: e.protocol,
        raddrStart: text(e.remote_address_start),
        raddrStop: text(e.remote_address_stop),
        laddrStart: text(e.local_address_start),
        laddrStop: text(e.local_address_stop),
        rportStart: e.remote_port_start,
        rportStop: e.remote_port_stop,
        lportStart: e.local_port_start,
        lportStop: e.local_port_stop,
        };
      }),
    );
  });
  const known = new Set(interfaces.map((i) => i.swIfIndex));
  const ours = (sw: number): boolean => sw !== U32_MAX && (ipsecBySw.has(sw) || !known.has(sw));
  const routes: RouteView[] = [];
  for (const table of [0, ...TEST_TABLES]) {
    for (const isIp6 of [false, true]) {
      for (const d of await c.dump('ip_route_dump', { table: { table_id: table, is_ip6: isIp6, name: '' } })) {
        const r = d.route;
        if (!r.paths.some((p) => ours(p.sw_if_index))) continue;
        routes.push({
          tableId: r.table_id,
          isIp6,
          prefix: text(r.prefix.address),
          len: r.prefix.len,
          paths: r.paths.map((p) => ({ swIfIndex: p.sw_if_index, nh: text({ af: isIp6 ? 1 : 0, un: p.nh.address }) })),
        });
      }
    }
  }
  return {
    interfaces,
    sas: new Map(
      sas.map((d) => {
        const e = d.entry;
        const tun = (e.flags & 4) !== 0;
        const s: SaView = {
          id: e.sad_id,
          spi: e.spi,
          protocol: e.protocol,
          crypto: e.crypto_algorithm,
          cryptoKey: Buffer.from(e.crypto_key.data.subarray(0, e.crypto_key.length)),
          integ: e.integrity_algorithm,
          integKey: Buffer.from(e.integrity_key.data.subarray(0, e.integrity_key.length)),
          flags: e.flags,
          salt: e.salt,
          udpSrc: e.udp_src_port ?? 0,
          udpDst: e.udp_dst_port ?? 0,
          window: e.anti_replay_window_size ?? 0,
          tunnelSrc: tun ? text(e.tunnel.src) : null,
          tunnelDst: tun ? text(e.tunnel.dst) : null,
          tunnelTable: tun ? e.tunnel.table_id : null,
          swIfIndex: d.sw_if_index,
        };
        return [e.sad_id, s];
      }),
    ),
    protections: prots.map((d) => ({ swIfIndex: d.tun.sw_if_index, nh: text(d.tun.nh), saOut: d.tun.sa_out, saIn: [...d.tun.sa_in] })),
    spds,
    spdBindings: new Map(bindings.map((d) => [d.sw_if_index, d.spd_index])),
    routes,
  };
}

function text(a: Parameters<typeof apiAddressText>[0]): string {
  return apiAddressText(a, '?');
}

// ---------------------------------------------------------------------------------------------
// recording what a client sends

export interface Sent {
  name: string;
  msg: Record<string, unknown>;
}

/**
 * Records every request and dump `client` sends from now on (names and bodies, in order), on the
 * client's side: the same on both targets.
 */
export function recordRequests(client: VppClient): Sent[] {
  const log: Sent[] = [];
  const request = client.request.bind(client);
  const stream = client.stream.bind(client);
  client.request = <N extends VppRequestName>(name: N, body: VppRequestBody<N>, options?: VppRequestOptions) => {
    log.push({ name, msg: { ...body } });
    return request(name, body, options);
  };
  client.stream = <N extends VppDumpName>(name: N, body: VppRequestBody<N>, options?: VppRequestOptions) => {
    log.push({ name, msg: { ...body } });
    return stream(name, body, options);
  };
  return log;
}

// ---------------------------------------------------------------------------------------------
// the targets

export interface DataplaneOpts {
  unnumbered?: string;
  policyIface?: string;
  dp?: Partial<VppDataplaneOptions>;
  requestTimeoutMs?: number;
}

export interface VppTarget {
  readonly name: TargetName;
  /** The API socket. */
  readonly socket: string;
  /** The NIC VPP owns: host-eth0 on the emulator, host-<veth> on the real VPP. */
  readonly uplink: string;
  /** The emulator (its internal tables, fault injection); undefined on the real VPP. */
  readonly emu: EmulatorHandle | undefined;
  /** A VPP back end on this target, as the daemon would run it, with fast reconnects; closed after the test. */
  dataplane(o?: DataplaneOpts): Promise<{ dp: VppDataplane; socket: string; done: () => Promise<void> }>;
  /** A connected client of its own (no reconnects), closed after the test. */
  raw(): Promise<VppClient>;
  /** What VPP holds, read through its API. */
  view(): Promise<VppView>;
  /** The interface's VRF tables and the interface it is unnumbered to, read through the API. */
  interfaceConfig(name: string): Promise<{ unnumberedTo: string | undefined; table4: number; table6: number }>;
  /** The interface's sw_if_index (throws when VPP has none of that name). */
  swIfIndex(name: string): Promise<number>;
  /**
   * VPP restarts (the emulator: empty tables; the real VPP: killed and started again) and comes
   * back with its interfaces; `loopbacks: false`: with the uplink only, as before a startup-config
   * created the loopbacks. `idBase`: the emulator's new message ids (the real VPP keeps its own).
   */
  restart(o?: { loopbacks?: boolean; idBase?: number }): Promise<void>;
  /** VPP goes away (its API socket stops answering) ... */
  stop(): Promise<void>;
  /** ... and comes back empty, with its interfaces. */
  start(): Promise<void>;
  /** The API connections of this test's dataplanes break; VPP keeps running with its tables. */
  dropConnections(): Promise<void>;
  /** Creates loop0 (up, with its addresses) after restart({ loopbacks: false }). */
  addLoopback0(): Promise<void>;
  /**
   * VPP sends `count` pings (ICMP echo with VPP's 60 bytes of data: 96-byte IPv4 / 116-byte IPv6 packets) to `dst` from its
   * own stack: the real VPP with its `ping` command (one every 10 ms), the emulator by counting them
   * on the outbound SA its routes and protections lead to (what it models of forwarding).
   */
  ping(dst: string, count: number): Promise<void>;
}

type Body = (t: TestContext, vpp: VppTarget) => Promise<void>;

/** One test body, run against the emulator and against the real VPP. */
export function contract(name: string, body: Body, opts: { timeout?: number } = {}): void {
  hookSharedVpp();
  test(`${name} [emulator]`, { timeout: opts.timeout ?? 30_000 }, async (t) => {
    await body(t, await emulatorTarget(t));
  });
  test(`${name} [real VPP]`, { timeout: opts.timeout ?? 60_000 }, async (t) => {
    if (!requireVpp(t)) return;
    await body(t, await realTarget(t));
  });
}

// ---------------------------------------------------------------------------------------------
// common parts

let sockN = 0;
function sockPath(): string {
  return join(tmpdir(), `vpp-target-${process.pid}-${sockN++}.sock`);
}

/** A transport whose connections the test can cut (VPP keeps running). */
function cuttable(socket: string): { transport: VppTransport; cut: () => void } {
  const base = unixSocketTransport(socket);
  const live = new Set<VppConnection>();
  return {
    transport: {
      connect(h) {
        let current = h;
        const conn = base.connect({
          open: () => h.open(),
          data: (c) => current.data(c),
          close: (e) => {
            live.delete(conn);
            current.close(e);
          },
        });
        live.add(conn);
        return {
          write: (f) => conn.write(f),
          cork: () => conn.cork(),
          uncork: () => conn.uncork(),
          destroy: () => conn.destroy(),
          setHandlers: (next) => {
            current = next;
          },
        };
      },
    },
    cut: () => {
      for (const c of [...live]) c.destroy();
    },
  };
}

interface Parts {
  name: TargetName;
  socket: () => string;
  uplink: string;
  emu: () => EmulatorHandle | undefined;
  restart: VppTarget['restart'];
  stop: () => Promise<void>;
  start: () => Promise<void>;
  dropConnections: (cutOurs: () => void) => Promise<void>;
  addLoopback0: () => Promise<void>;
  ping: (dst: string, count: number) => Promise<void>;
}

function makeTarget(t: TestContext, p: Parts): VppTarget {
  const closers: (() => Promise<void>)[] = [];
  const cuts: (() => void)[] = [];
  t.after(async () => {
    for (const c of closers.reverse()) await c().catch(() => undefined);
  });
  const raw = async (): Promise<VppClient> => {
    const c = new VppClient({ socket: p.socket(), healthCheckMs: 0, reconnect: false, requestTimeoutMs: 10_000 });
    await c.connect();
    closers.push(() => c.close());
    return c;
  };
  const withClient = async <T>(fn: (c: VppClient) => Promise<T>): Promise<T> => {
    const c = new VppClient({ socket: p.socket(), healthCheckMs: 0, reconnect: false, requestTimeoutMs: 10_000 });
    await c.connect();
    try {
      return await fn(c);
    } finally {
      await c.close();
    }
  };
  const swIfIndex = (c: VppClient, name: string): Promise<number> =>
    c.dump('sw_interface_dump', { sw_if_index: U32_MAX, name_filter_valid: true, name_filter: name }).then((l) => {
      const hit = l.find((d) => d.interface_name === name);
      if (!hit) throw new Error(`VPP has no interface named ${name}`);
      return hit.sw_if_index;
    });
  return {
    name: p.name,
    get socket() {
      return p.socket();
    },
    uplink: p.uplink,
    get emu() {
      return p.emu();
    },
    async dataplane(o: DataplaneOpts = {}) {
      const socket = p.socket();
      const cut = cuttable(socket);
      cuts.push(cut.cut);
      const clientOptions: Omit<VppClientOptions, 'socket' | 'logger'> = {
        healthCheckMs: 0,
        reconnectMinMs: 20,
        reconnectMaxMs: 200,
        requestTimeoutMs: o.requestTimeoutMs ?? 3000,
        ...(p.name === 'real VPP' ? { transport: cut.transport } : {}),
      };
      const dp = new VppDataplane({
        socket,
        clientOptions,
        replayIntervalMs: 10,
        resyncRetryMinMs: 20,
        resyncRetryMaxMs: 100,
        ...(o.unnumbered ? { unnumberedInterface: o.unnumbered } : {}),
        ...(o.policyIface ? { policyInterface: o.policyIface } : {}),
        // the emulator's stats segment is in this process, among other emulators' (tests run several)
        ...(p.emu() ? { statsSegment: p.emu()!.statsPath } : {}),
        ...o.dp,
      });
      let closed = false;
      const done = async (): Promise<void> => {
        if (closed) return;
        closed = true;
        await dp.close();
      };
      closers.push(done);
      await dp.start();
      return { dp, socket, done };
    },
    raw,
    view: () => withClient(readView),
    interfaceConfig: (name) =>
      withClient(async (c) => {
        const sw = await swIfIndex(c, name);
        const ifs = await c.dump('sw_interface_dump', { sw_if_index: U32_MAX, name_filter_valid: false, name_filter: '' });
        const api = await ExtraApi.open(p.socket());
        try {
          const lender = (await api.unnumbered()).get(sw);
          return {
            unnumberedTo: lender === undefined ? undefined : (ifs.find((i) => i.sw_if_index === lender)?.interface_name ?? `sw_if_index ${lender}`),
            table4: await api.table(sw, false),
            table6: await api.table(sw, true),
          };
        } finally {
          api.close();
        }
      }),
    swIfIndex: (name) => withClient((c) => swIfIndex(c, name)),
    restart: p.restart,
    stop: p.stop,
    start: p.start,
    dropConnections: () => p.dropConnections(() => cuts.forEach((c) => c())),
    addLoopback0: p.addLoopback0,
    ping: p.ping,
  };
}

// ---------------------------------------------------------------------------------------------
// the emulator

const EMU_INTERFACES = [EMU_UPLINK, 'loop0', 'loop1'];
const EMU_ADDRESSES = { [EMU_UPLINK]: UPLINK_ADDRESSES, loop0: LOOP_ADDRESSES };

async function emulatorTarget(t: TestContext): Promise<VppTarget> {
  const socket = sockPath();
  const options: EmulatorOptions = { socket, interfaces: EMU_INTERFACES, addresses: EMU_ADDRESSES };
  let emu: EmulatorHandle | undefined = await startEmulator(options);
  const target = makeTarget(t, {
    name: 'emulator',
    socket: () => socket,
    uplink: EMU_UPLINK,
    emu: () => emu,
    restart: async (o = {}) => {
      if (!emu) throw new Error('the emulator is stopped');
      await emu.restart({ interfaces: o.loopbacks === false ? [EMU_UPLINK] : EMU_INTERFACES, ...(o.idBase !== undefined ? { idBase: o.idBase } : {}) });
    },
    stop: async () => {
      await emu?.close();
      emu = undefined;
    },
    start: async () => {
      if (emu) throw new Error('the emulator is running');
      emu = await startEmulator(options);
    },
    dropConnections: async () => {
      await emu?.dropConnections();
    },
    addLoopback0: async () => {
      if (!emu) throw new Error('the emulator is stopped');
      emu.state.addInterface('loop0', 'Loopback', true, LOOP_ADDRESSES);
    },
    ping: async (dst, count) => {
      if (!emu) throw new Error('the emulator is stopped');
      emu.state.sendPackets(dst, count, dst.includes(':') ? 116 : 96);
    },
  });
  // After the target's own clean-up (its dataplanes and clients).
  t.after(() => emu?.close());
  return target;
}

// ---------------------------------------------------------------------------------------------
// the real VPP

let shared: Promise<VppLab> | undefined;
const sharedCleanups: (() => Promise<void>)[] = [];
let hooked = false;

/** Registers the file-level hook that stops the shared real VPP (called while the file's tests are defined). */
function hookSharedVpp(): void {
  if (hooked) return;
  hooked = true;
  after(async () => {
    for (const c of sharedCleanups.splice(0).reverse()) await c();
  });
}

/** After `lab.startVpp()`: the uplink as at the lab's start, then the loopbacks unless `loopbacks` is false. */
async function configure(lab: VppLab, loopbacks: boolean): Promise<void> {
  if (loopbacks) {
    await lab.configure();
    await lab.ctl('create', 'loopback', 'interface');
    await lab.ctl('set', 'interface', 'state', 'loop1', 'up');
    return;
  }
  await lab.ctl('create', 'host-interface', 'name', lab.vppIf);
  await lab.ctl('set', 'interface', 'mtu', '1500', lab.hostIf);
  await lab.ctl('set', 'interface', 'state', lab.hostIf, 'up');
  for (const a of UPLINK_ADDRESSES) await lab.ctl('set', 'interface', 'ip', 'address', lab.hostIf, a);
}

async function restartLab(lab: VppLab, loopbacks = true): Promise<void> {
  await lab.kill('SIGKILL');
  await lab.startVpp();
  await configure(lab, loopbacks);
}

async function sharedLab(): Promise<VppLab> {
  shared ??= (async () => {
    const lab = await startVppLab({ after: (fn) => sharedCleanups.push(fn) });
    await lab.ctl('create', 'loopback', 'interface');
    await lab.ctl('set', 'interface', 'state', 'loop1', 'up');
    return lab;
  })();
  return shared;
}

/**
 * Brings the shared VPP back to its state at start (see the file header) through the API; restarts
 * it when that is not possible.
 */
async function resetReal(lab: VppLab): Promise<void> {
  const c = new VppClient({ socket: lab.apiSocket, healthCheckMs: 0, reconnect: false, requestTimeoutMs: 10_000 });
  let clean = false;
  try {
    await c.connect();
    clean = await cleanUp(c, lab.hostIf);
  } catch {
    clean = false;
  } finally {
    await c.close();
  }
  if (!clean) await restartLab(lab);
}

/** Removes what tests leave in VPP; true when VPP is back where it started. */
async function cleanUp(c: VppClient, uplink: string): Promise<boolean> {
  const ifs = await c.dump('sw_interface_dump', { sw_if_index: U32_MAX, name_filter_valid: false, name_filter: '' });
  const byName = new Map(ifs.map((i) => [i.interface_name, i.sw_if_index]));
  const base = ['local0', uplink, 'loop0', 'loop1'];
  if (base.some((n) => !byName.has(n))) return false;
  const ok = (p: Promise<unknown>): Promise<unknown> => p.catch(() => undefined);
  // SPDs: entries first (they lock their SAs), then the SPD (which unbinds it).
  for (const s of await c.dump('ipsec_spds_dump', {})) {
    for (const { entry } of await c.dump('ipsec_spd_dump', { spd_id: s.spd_id, sa_id: U32_MAX })) {
      await ok(c.request('ipsec_spd_entry_add_del_v2', { is_add: false, entry }));
    }
    await ok(c.request('ipsec_spd_add_del', { is_add: false, spd_id: s.spd_id }));
  }
  for (const p of await c.dump('ipsec_tunnel_protect_dump', { sw_if_index: U32_MAX })) {
    await ok(c.request('ipsec_tunnel_protect_del', { sw_if_index: p.tun.sw_if_index, nh: p.tun.nh }));
  }
  const itfs = await c.dump('ipsec_itf_dump', { sw_if_index: U32_MAX });
  for (const i of itfs) await ok(c.request('ipsec_itf_delete', { sw_if_index: i.itf.sw_if_index }));
  for (const s of await c.dump('ipsec_sa_v5_dump', { sa_id: U32_MAX })) await ok(c.request('ipsec_sad_entry_del', { id: s.entry.sad_id }));
  // Routes through interfaces other than the lab's (ipsec interfaces, or ones that are gone): the
  // whole API entry (a path naming a deleted interface cannot be deleted by path).
  const keep = new Set([U32_MAX, ...base.map((n) => byName.get(n)!)]);
  for (const table of [0, ...TEST_TABLES]) {
    for (const isIp6 of [false, true]) {
      for (const d of await c.dump('ip_route_dump', { table: { table_id: table, is_ip6: isIp6, name: '' } })) {
        if (d.route.paths.every((p) => keep.has(p.sw_if_index))) continue;
        const r = d.route;
        await ok(c.request('ip_route_add_del', { is_add: false, is_multipath: false, route: { table_id: r.table_id, stats_index: 0, prefix: r.prefix, paths: [] } }));
      }
    }
  }
  for (const n of base) {
    const sw = byName.get(n)!;
    if (n === 'local0') continue;
    await ok(c.request('sw_interface_set_unnumbered', { sw_if_index: U32_MAX, unnumbered_sw_if_index: sw, is_add: false }));
  }
  const loop1 = byName.get('loop1')!;
  for (const isIp6 of [false, true]) await ok(c.request('sw_interface_set_table', { sw_if_index: loop1, is_ipv6: isIp6, vrf_id: 0 }));
  for (const table of TEST_TABLES) {
    for (const isIp6 of [false, true]) await ok(c.request('ip_table_add_del', { is_add: false, table: { table_id: table, is_ip6: isIp6, name: '' } }));
  }
  const [sas, left, spds, prots] = await Promise.all([
    c.dump('ipsec_sa_v5_dump', { sa_id: U32_MAX }),
    c.dump('ipsec_itf_dump', { sw_if_index: U32_MAX }),
    c.dump('ipsec_spds_dump', {}),
    c.dump('ipsec_tunnel_protect_dump', { sw_if_index: U32_MAX }),
  ]);
  const ifsAfter = await c.dump('sw_interface_dump', { sw_if_index: U32_MAX, name_filter_valid: false, name_filter: '' });
  const allUp = ifsAfter.filter((i) => base.includes(i.interface_name) && i.interface_name !== 'local0').every((i) => (i.flags & 1) !== 0);
  return sas.length === 0 && left.length === 0 && spds.length === 0 && prots.length === 0 && allUp && ifsAfter.length === base.length;
}

async function realTarget(t: TestContext): Promise<VppTarget> {
  const lab = await sharedLab();
  await resetReal(lab);
  let running = true;
  return makeTarget(t, {
    name: 'real VPP',
    socket: () => lab.apiSocket,
    uplink: lab.hostIf,
    emu: () => undefined,
    restart: async (o = {}) => {
      await restartLab(lab, o.loopbacks !== false);
      running = true;
    },
    stop: async () => {
      await lab.kill('SIGKILL');
      running = false;
    },
    start: async () => {
      if (running) throw new Error('VPP is running');
      await lab.startVpp();
      await configure(lab, true);
      running = true;
    },
    dropConnections: async (cutOurs) => {
      cutOurs();
    },
    addLoopback0: async () => {
      await lab.ctl('create', 'loopback', 'interface');
      await lab.ctl('set', 'interface', 'state', 'loop0', 'up');
      for (const a of LOOP_ADDRESSES) await lab.ctl('set', 'interface', 'ip', 'address', 'loop0', a);
    },
    ping: async (dst, count) => {
      await lab.ctl('ping', dst, 'repeat', String(count), 'interval', '0.01');
    },
  });
}
